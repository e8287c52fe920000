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


# -- editing the cells' source in the notebook's JSON text (``check --add-noqa``) ----------------

@dataclass(frozen=True)
class CellEdit:
    """Replace characters ``start:end`` (0-based) of ``line`` of code cell ``cell`` (both 1-based,
    as ``NotebookSource.origin``) with ``content``; ``expected`` is the line's text before."""

    cell: int
    line: int
    start: int
    end: int
    content: str
    expected: str


@dataclass(frozen=True)
class _Literal:
    """A JSON string of the notebook text: its value and where its quotes are (``end`` after the
    closing one)."""

    value: str
    start: int
    end: int


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|Infinity)|NaN|true|false|null")


class _LocatingParser:
    """JSON to Python values, but every string value (not key) as a ``_Literal`` with its place."""

    def __init__(self, text: str) -> None:
        self.text = text

    def parse(self):
        value, end = self._value(_WHITESPACE.match(self.text, 0).end())
        if _WHITESPACE.match(self.text, end).end() != len(self.text):
            raise ValueError("extra data after the notebook")
        return value

    def _value(self, at: int):
        from json.decoder import scanstring

        char = self.text[at:at + 1]
        if char == '"':
            value, end = scanstring(self.text, at + 1)
            return _Literal(value, at, end), end
        if char in ("{", "["):
            closing = "}" if char == "{" else "]"
            items: list = []
            keys: list[str] = []
            at = _WHITESPACE.match(self.text, at + 1).end()
            if self.text[at:at + 1] == closing:
                return ({} if char == "{" else []), at + 1
            while True:
                if char == "{":
                    if self.text[at:at + 1] != '"':
                        raise ValueError(f"a key expected at {at}")
                    key, at = scanstring(self.text, at + 1)
                    at = _WHITESPACE.match(self.text, at).end()
                    if self.text[at:at + 1] != ":":
                        raise ValueError(f"':' expected at {at}")
                    at = _WHITESPACE.match(self.text, at + 1).end()
                    keys.append(key)
                value, at = self._value(at)
                items.append(value)
                at = _WHITESPACE.match(self.text, at).end()
                separator = self.text[at:at + 1]
                if separator == closing:
                    return (dict(zip(keys, items)) if char == "{" else items), at + 1
                if separator != ",":
                    raise ValueError(f"',' or {closing!r} expected at {at}")
                at = _WHITESPACE.match(self.text, at + 1).end()
        match = _SCALAR.match(self.text, at)
        if match is None:
            raise ValueError(f"a value expected at {at}")
        return None, match.end()  # numbers and constants are not needed here


def _raw_offsets(raw: str, literal: _Literal) -> list[int]:
    """For each character of ``literal.value`` (and one past its end), its offset in ``raw``."""
    offsets: list[int] = []
    at = literal.start + 1
    while at < literal.end - 1:
        offsets.append(at)
        if raw[at] != "\\":
            at += 1
        elif raw[at + 1] != "u":
            at += 2
        else:  # a surrogate pair (two escapes) is one character of the value
            code = int(raw[at + 2:at + 6], 16)
            pair = 0xD800 <= code < 0xDC00 and raw[at + 6:at + 8] == "\\u" \
                and 0xDC00 <= int(raw[at + 8:at + 12], 16) < 0xE000
            at += 12 if pair else 6
    offsets.append(literal.end - 1)
    return offsets


def _escape(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def edit_cells(raw: str, edits: list[CellEdit]) -> str:
    """Notebook JSON ``raw`` with ``edits`` made in the source strings of its code cells; the rest
    of the text (indentation, key order, outputs, escapes) stays as it is. Raises NotebookError
    when an edit cannot be made (the line is not the expected text, or spans two strings)."""
    if not edits:
        return raw
    try:
        cells = _LocatingParser(raw).parse()["cells"]
    except (ValueError, KeyError, TypeError, IndexError) as error:
        raise NotebookError(f"not a valid notebook: {error}") from error
    code_cells = [cell for cell in cells if isinstance(cell, dict) and isinstance(cell.get("cell_type"), _Literal)
                  and cell["cell_type"].value == "code"]
    replacements: list[tuple[int, int, str]] = []
    for edit in edits:
        source = code_cells[edit.cell - 1].get("source") if edit.cell <= len(code_cells) else None
        pieces = [source] if isinstance(source, _Literal) else source
        if not isinstance(pieces, list) or not all(isinstance(p, _Literal) for p in pieces):
            raise NotebookError(f"cell {edit.cell} has no source to edit")
        text = "".join(piece.value for piece in pieces)
        lines = split_lines(text, keepends=True)
        if edit.line > len(lines) or lines[edit.line - 1].rstrip("\r\n") != edit.expected:
            raise NotebookError(f"cell {edit.cell}, line {edit.line} is not the line linted")
        line_start = sum(len(line) for line in lines[:edit.line - 1])
        start, end = line_start + edit.start, line_start + edit.end
        # The piece that holds the edit: an insertion at the end of a piece goes to that piece.
        offset = 0
        for piece in pieces:
            if offset <= start and end <= offset + len(piece.value):
                positions = _raw_offsets(raw, piece)
                replacements.append((positions[start - offset], positions[end - offset], _escape(edit.content)))
                break
            offset += len(piece.value)
        else:
            raise NotebookError(f"cell {edit.cell}, line {edit.line} is split over several strings")
    for start, end, content in sorted(replacements, reverse=True):
        raw = raw[:start] + content + raw[end:]
    return raw
