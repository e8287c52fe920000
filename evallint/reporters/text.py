"""``text`` (default): each finding with its source line, a marker under the span, the related
locations that explain it, and a summary; coloured by rich when writing to a terminal (rich is
imported when this format writes, not when the formats are listed)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from evallint.reporters.context import ReportContext, location

if TYPE_CHECKING:
    from rich.console import Console

FORMAT = "text"

STYLES = {"error": "bold red", "warning": "bold yellow"}


def _snippet(console: Console, context: ReportContext, d) -> None:
    from rich.text import Text

    line_text = context.source_line(d.path, d.span.line, d.cell)
    if line_text is None:
        return
    line_text = line_text.expandtabs(1)
    gutter = str(d.span.line)
    pad = " " * len(gutter)
    start = max(d.span.column - 1, 0)
    end = d.span.end_column - 1 if d.span.end_line == d.span.line else len(line_text)
    width = max(1, min(end, len(line_text)) - start)
    console.print(Text(f"{pad} |", style="blue"))
    console.print(Text.assemble((f"{gutter} | ", "blue"), line_text))
    console.print(Text.assemble((f"{pad} | ", "blue"), " " * start,
                                ("^" * width + f" {d.code}", STYLES.get(d.severity.value, "bold"))))
    console.print(Text(f"{pad} |", style="blue"))


def write(diagnostics: list, context: ReportContext) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(file=context.out, highlight=False, soft_wrap=True, emoji=False)
    for d in diagnostics:
        mark = "[*] " if context.fixable(d) else ""
        console.print(Text.assemble(
            (location(d.path, d.span.line, d.span.column, d.cell), "bold"), ": ",
            (d.code, STYLES.get(d.severity.value, "bold")), f" {mark}{d.message}"))
        _snippet(console, context, d)
        for related in d.related:
            console.print(Text.assemble(("  = ", "blue"), f"{related.message}: ",
                                        (f"{related.path}:{related.span.line}:{related.span.column}", "bold")))
        for note in d.notes:
            console.print(Text.assemble(("  = note: ", "blue"), note))
        if d.fix is not None:
            label = "help" if context.fixable(d) else "help (unsafe fix, needs --unsafe-fixes)"
            console.print(Text.assemble((f"  = {label}: ", "blue"), d.fix.message))
        console.print()
    if not context.quiet:
        _summary(console, context, diagnostics)


def _summary(console: Console, context: ReportContext, diagnostics: list) -> None:
    from rich.text import Text

    count = len(diagnostics)
    if context.fixed:  # as Ruff: "Found 5 errors (3 fixed, 2 remaining)."
        total = count + context.fixed
        console.print(Text(f"Found {total} finding{'s' if total != 1 else ''} "
                           f"({context.fixed} fixed, {count} remaining).", style="bold"))
        if not diagnostics:
            return
    elif not diagnostics:
        console.print(Text("All checks passed!", style="bold green"))
        return
    else:
        console.print(Text(f"Found {count} finding{'s' if count != 1 else ''}.", style="bold"))
    fixable = sum(context.fixable(d) for d in diagnostics)
    hidden = sum(context.hidden_fix(d) for d in diagnostics)
    if fixable:
        line = f"[*] {fixable} fixable with the `--fix` option"
        if hidden:
            line += f" ({hidden} hidden fix{'es' if hidden != 1 else ''} can be enabled with `--unsafe-fixes`)"
        console.print(Text(line + "."))
    elif hidden:
        console.print(Text(f"No fixes available ({hidden} hidden fix{'es' if hidden != 1 else ''} "
                           "can be enabled with the `--unsafe-fixes` option)."))
