"""Jupyter notebooks: their code cells as one Python module, and findings mapped back to cells."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from evallint.diagnostics import Diagnostic, Related, Span
from evallint.lines import split_lines


# How messages refer to a place in the same file ("set by `model.eval()` at line 12").
LINE_REFERENCE = re.compile(r"\bline (\d+)\b")


class NotebookError(Exception):
    """The file is not a readable notebook."""


@dataclass(frozen=True)
class NotebookSource:
    """The code cells joined into one module; ``origin[i]`` is (cell, line in cell) of line i+1."""

    text: str
    origin: tuple[tuple[int, int], ...]

    def to_cell(self, diagnostic: Diagnostic) -> Diagnostic:
        """The finding with its span (and same-file related spans) relative to its cell."""
        cell, span = self._map(diagnostic.span)
        related = tuple(replace(r, span=self._map(r.span)[1], message=self._cell_note(r))
                        if r.path == diagnostic.path else r for r in diagnostic.related)
        message = LINE_REFERENCE.sub(self._cell_reference, diagnostic.message)
        return replace(diagnostic, span=span, cell=cell, related=related, fix=None, message=message)

    def _cell_reference(self, match: re.Match) -> str:
        number = int(match.group(1))
        if not 1 <= number <= len(self.origin):
            return match.group(0)
        cell, line = self.origin[number - 1]
        return f"cell {cell}, line {line}"

    def _cell_note(self, related: Related) -> str:
        cell, _ = self._map(related.span)
        return f"{related.message} (cell {cell})"

    def _map(self, span: Span) -> tuple[int, Span]:
        last = len(self.origin)
        cell, line = self.origin[min(max(span.line, 1), last) - 1]
        end_cell, end_line = self.origin[min(max(span.end_line, 1), last) - 1]
        if end_cell != cell:
            end_line, end_column = line, span.column
        else:
            end_column = span.end_column
        return cell, Span(line, span.column, end_line, end_column)


# IPython help: ``model?``, ``torch.nn.Module??`` (a line of its own).
HELP_LINE = re.compile(r"^\s*[\w.]+\?{1,2}\s*$")


def _is_magic(line: str) -> bool:
    return line.lstrip().startswith(("%", "!")) or HELP_LINE.match(line) is not None


def extract(raw: str) -> NotebookSource:
    """The code cells of notebook JSON ``raw``. IPython magics and shell lines become comments,
    and a cell magic (``%%time``) hides its whole cell, so that line numbers stay aligned."""
    try:
        notebook = json.loads(raw)
        cells = notebook["cells"]
    except (ValueError, KeyError, TypeError) as error:
        raise NotebookError(f"not a valid notebook: {error}") from error
    lines: list[str] = []
    origin: list[tuple[int, int]] = []
    code_cell = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        code_cell += 1
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else str(source)
        cell_lines = split_lines(text) or [""]
        hidden = cell_lines[0].lstrip().startswith("%%")
        continued = False  # the previous line was a magic ending in a backslash
        for number, line in enumerate(cell_lines, start=1):
            if hidden or continued:
                continued = line.rstrip().endswith("\\")
                line = "# magic"
            elif _is_magic(line):
                continued = line.rstrip().endswith("\\")
                indent = line[: len(line) - len(line.lstrip())]
                line = f"{indent}pass  # magic"
            lines.append(line)
            origin.append((code_cell, number))
        lines.append("")
        origin.append((code_cell, len(cell_lines) + 1))
    return NotebookSource("\n".join(lines) + "\n", tuple(origin))
