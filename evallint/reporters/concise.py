"""``concise``: one line per finding, ``path:line:col: CODE [*] message`` (as flake8 and Ruff)."""

from __future__ import annotations

from evallint.reporters.context import ReportContext, location

FORMAT = "concise"


def write(diagnostics: list, context: ReportContext) -> None:
    for d in diagnostics:
        mark = "[*] " if context.fixable(d) else ""
        context.out.write(f"{location(d.path, d.span.line, d.span.column, d.cell)}: "
                          f"{d.code} {mark}{d.message}\n")
