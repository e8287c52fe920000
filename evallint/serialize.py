"""Findings to and from the JSON objects of the output contract (also the cache format)."""

from __future__ import annotations

from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Related, Severity, Span


def _span_fields(span: Span) -> dict:
    return {"line": span.line, "column": span.column, "end_line": span.end_line,
            "end_column": span.end_column}


def _span(item: dict) -> Span:
    return Span(item["line"], item["column"], item.get("end_line", item["line"]),
                item.get("end_column", item["column"]))


def diagnostic_to_dict(diagnostic: Diagnostic) -> dict:
    """The JSON object of one finding; ``cell``, ``notes`` and a fix's ``waits_for`` appear only
    when set."""
    fix = diagnostic.fix
    data = {
        "code": diagnostic.code,
        "name": diagnostic.name,
        "message": diagnostic.message,
        "severity": diagnostic.severity.value,
        "path": diagnostic.path,
        **_span_fields(diagnostic.span),
        "related": [{"path": r.path, **_span_fields(r.span), "message": r.message}
                    for r in diagnostic.related],
        "fix": None if fix is None else {
            "applicability": fix.applicability.value,
            "message": fix.message,
            "edits": [{**_span_fields(e.span), "content": e.content} for e in fix.edits],
            **({"waits_for": list(fix.waits_for)} if fix.waits_for else {}),
        },
    }
    if diagnostic.cell is not None:
        data["cell"] = diagnostic.cell
    if diagnostic.notes:
        data["notes"] = list(diagnostic.notes)
    return data


def diagnostic_from_dict(data: dict) -> Diagnostic:
    fix = data.get("fix")
    return Diagnostic(
        code=data["code"], name=data["name"], message=data["message"],
        severity=Severity(data["severity"]), path=data["path"], span=_span(data),
        related=tuple(Related(r["path"], _span(r), r["message"]) for r in data["related"]),
        fix=None if fix is None else Fix(
            fix["message"], tuple(Edit(_span(e), e["content"]) for e in fix["edits"]),
            Applicability(fix["applicability"]), tuple(fix.get("waits_for", ()))),
        cell=data.get("cell"), notes=tuple(data.get("notes", ())),
    )
