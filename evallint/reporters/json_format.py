"""``json``: one array of findings, as the output contract describes."""

from __future__ import annotations

import json

from evallint.reporters.context import ReportContext
from evallint.serialize import diagnostic_to_dict

FORMAT = "json"


def write(diagnostics: list, context: ReportContext) -> None:
    json.dump([diagnostic_to_dict(d) for d in diagnostics], context.out, indent=2)
    context.out.write("\n")
