"""``github``: workflow commands that GitHub Actions shows as annotations on the pull request."""

from __future__ import annotations

from evallint.reporters.context import ReportContext

FORMAT = "github"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def write(diagnostics: list, context: ReportContext) -> None:
    for d in diagnostics:
        level = "error" if d.severity.value == "error" else "warning"
        where = f"cell {d.cell}, " if d.cell is not None else ""
        properties = ",".join([
            f"title={_escape_property(f'evallint ({d.code})')}",
            f"file={_escape_property(d.path)}",
            f"line={d.span.line}", f"col={d.span.column}",
            f"endLine={d.span.end_line}", f"endColumn={d.span.end_column}",
        ])
        message = f"{where}{d.code} {d.message}"
        for related in d.related:
            message += f"\n{related.message}: {related.path}:{related.span.line}:{related.span.column}"
        context.out.write(f"::{level} {properties}::{_escape_data(message)}\n")
