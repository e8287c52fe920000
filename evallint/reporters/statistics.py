"""``--statistics``: how many findings of each rule, instead of the findings themselves."""

from __future__ import annotations

import json
from collections import Counter

from evallint.reporters.context import ReportContext


def write_statistics(diagnostics: list, context: ReportContext, as_json: bool) -> None:
    counts = Counter(d.code for d in diagnostics)
    names = {d.code: d.name for d in diagnostics}
    fixable = {d.code for d in diagnostics if context.fixable(d)}
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    if as_json:
        json.dump([{"code": code, "name": names[code], "count": count, "fixable": code in fixable}
                   for code, count in rows], context.out, indent=2)
        context.out.write("\n")
        return
    width = max((len(str(count)) for _, count in rows), default=1)
    for code, count in rows:
        mark = "[*]" if code in fixable else "[ ]"
        context.out.write(f"{count:>{width}}\t{code}\t{mark} {names[code]}\n")
