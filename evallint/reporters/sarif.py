"""``sarif``: SARIF 2.1.0 for code-scanning services (GitHub code scanning, GitLab, IDEs)."""

from __future__ import annotations

import json
from pathlib import PurePath

from evallint import __version__
from evallint.diagnostics import Span
from evallint.reporters.context import ReportContext
from evallint.rule_docs import rule_markdown
from evallint.rules import all_rules

FORMAT = "sarif"
SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _region(span: Span) -> dict:
    return {"startLine": span.line, "startColumn": span.column,
            "endLine": span.end_line, "endColumn": span.end_column}


def _location(path: str, span: Span) -> dict:
    return {"physicalLocation": {"artifactLocation": {"uri": PurePath(path).as_posix()},
                                 "region": _region(span)}}


def _rule_descriptor(rule) -> dict:
    return {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.summary},
        "fullDescription": {"text": rule.what_it_does},
        "help": {"text": rule.why_bad, "markdown": rule_markdown(rule)},
        "defaultConfiguration": {"level": rule.severity.value, "enabled": rule.default_enabled},
        "properties": {"fixable": rule.fix_applicability is not None},
    }


def _result(d, index: dict[str, int]) -> dict:
    result = {
        "ruleId": d.code,
        "ruleIndex": index[d.code],
        "level": d.severity.value,
        "message": {"text": d.message},
        "locations": [_location(d.path, d.span)],
    }
    if d.cell is not None:
        result["properties"] = {"cell": d.cell}
    if d.related:
        result["relatedLocations"] = [
            {"id": number, **_location(r.path, r.span), "message": {"text": r.message}}
            for number, r in enumerate(d.related, start=1)]
    if d.fix is not None and d.cell is None:
        result["fixes"] = [{
            "description": {"text": d.fix.message},
            "artifactChanges": [{
                "artifactLocation": {"uri": PurePath(d.path).as_posix()},
                "replacements": [{"deletedRegion": _region(e.span),
                                  "insertedContent": {"text": e.content}} for e in d.fix.edits],
            }],
        }]
    return result


def write(diagnostics: list, context: ReportContext) -> None:
    rules = all_rules()
    index = {rule.code: number for number, rule in enumerate(rules)}
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "evallint", "version": __version__,
                                "semanticVersion": __version__,
                                "rules": [_rule_descriptor(rule) for rule in rules]}},
            "columnKind": "unicodeCodePoints",
            "results": [_result(d, index) for d in diagnostics],
        }],
    }
    json.dump(log, context.out, indent=2)
    context.out.write("\n")
