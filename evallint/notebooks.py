"""Jupyter notebooks: their code cells as one Python module, findings and their fixes mapped back
to cells, and fixed cell sources written back into the notebook's JSON text."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from evallint.diagnostics import Diagnostic, Edit, Fix, Related, Span
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
    # Lines of ``text`` (1-based) that stand for a masked magic, shell or cell-magic line.
    masked: frozenset[int] = field(default=frozenset())

    def to_cell(self, diagnostic: Diagnostic) -> Diagnostic:
        """The finding with its span (and same-file related spans) relative to its cell; its fix
        with edits relative to that cell too, or dropped (with a note saying why) when an edit
        would touch a masked magic line or another cell."""
        cell, span = self._map(diagnostic.span)
        related = tuple(replace(r, span=self._map(r.span)[1], message=self._cell_note(r))
                        if r.path == diagnostic.path else r for r in diagnostic.related)
        message = LINE_REFERENCE.sub(self._cell_reference, diagnostic.message)
        fix, why_not = self._cell_fix(diagnostic.fix, cell) if diagnostic.fix else (None, None)
        notes = diagnostic.notes + ((why_not,) if why_not else ())
        return replace(diagnostic, span=span, cell=cell, related=related, fix=fix, message=message,
                       notes=notes)

    def _cell_fix(self, fix: Fix, cell: int) -> tuple[Fix | None, str | None]:
        edits = []
        last = len(self.origin)
        for edit in fix.edits:
            span = edit.span
            # An edit that ends at the start of a line does not change that line.
            end_line = span.end_line - 1 if span.end_column == 1 and span.end_line > span.line \
                else span.end_line
            if any(line in self.masked for line in range(span.line, end_line + 1)):
                return None, (f"the fix ({fix.message}) is not applied in notebooks here: it "
                              "would change a line holding an IPython magic")
            start_cell, start = self.origin[min(max(span.line, 1), last) - 1]
            end_cell, end = self.origin[min(max(span.end_line, 1), last) - 1]
            if start_cell != cell or end_cell != cell:
                return None, (f"the fix ({fix.message}) is not applied in notebooks here: its "
                              "edits reach into another cell")
            edits.append(Edit(Span(start, span.column, end, span.end_column), edit.content))
        return replace(fix, edits=tuple(edits)), None

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


# The line that ends each cell in the joined module (the percent format's cell marker): rules can
# keep an edit within its cell (``rules/edits.py``).
CELL_END = "# %%"

# IPython help: ``model?``, ``torch.nn.Module??`` (a line of its own).
HELP_LINE = re.compile(r"^\s*[\w.]+\?{1,2}\s*$")


def _is_magic(line: str) -> bool:
    return line.lstrip().startswith(("%", "!")) or HELP_LINE.match(line) is not None


def extract(raw: str) -> NotebookSource:
    """The code cells of notebook JSON ``raw`` as one module (see ``join_cells``)."""
    return join_cells(code_cells(raw))


def code_cells(raw: str) -> list[str]:
    """The source text of each code cell of notebook JSON ``raw``, in order."""
    try:
        notebook = json.loads(raw)
        cells = notebook["cells"]
    except (ValueError, KeyError, TypeError) as error:
        raise NotebookError(f"not a valid notebook: {error}") from error
    if not isinstance(cells, list):
        raise NotebookError("not a valid notebook: `cells` is not a list")
    return [_cell_text(cell.get("source", "")) for cell in cells
            if isinstance(cell, dict) and cell.get("cell_type") == "code"]


def _cell_text(source: object) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def join_cells(cells: list[str]) -> NotebookSource:
    """Code cell texts as one module, each followed by a ``CELL_END`` comment line. IPython magics
    and shell lines become ``pass`` statements, and a cell magic (``%%time``) hides its whole cell
    (as comments), so that line numbers stay aligned; those lines are ``masked``."""
    lines: list[str] = []
    origin: list[tuple[int, int]] = []
    masked: set[int] = set()
    for code_cell, text in enumerate(cells, start=1):
        cell_lines = split_lines(text) or [""]
        hidden = cell_lines[0].lstrip().startswith("%%")
        continued = False  # the previous line was a magic ending in a backslash
        for number, line in enumerate(cell_lines, start=1):
            if hidden or continued:
                continued = line.rstrip().endswith("\\")
                line = "# magic"
                masked.add(len(lines) + 1)
            elif _is_magic(line):
                continued = line.rstrip().endswith("\\")
                indent = line[: len(line) - len(line.lstrip())]
                line = f"{indent}pass  # magic"
                masked.add(len(lines) + 1)
            lines.append(line)
            origin.append((code_cell, number))
        lines.append(CELL_END)
        origin.append((code_cell, len(cell_lines) + 1))
    return NotebookSource("\n".join(lines) + "\n", tuple(origin), frozenset(masked))


# -- writing cell sources back -----------------------------------------------------------------

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def with_code_cells(raw: str, sources: dict[int, str]) -> str:
    """Notebook JSON ``raw`` with the source of the code cells in ``sources`` (1-based code cell
    number -> text) replaced. Only those ``source`` values change: everything else (outputs,
    metadata, key order, indentation, escapes, the final newline) stays byte for byte. A source
    kept as a list of lines stays one, written in the list's own layout; unchanged lines keep
    their original spelling."""
    spans = _code_source_spans(raw)
    ensure_ascii = raw.isascii()
    pieces: list[str] = []
    position = 0
    for number, (start, end) in enumerate(spans, start=1):
        if number not in sources:
            continue
        pieces += [raw[position:start], _source_value(raw[start:end], sources[number], ensure_ascii)]
        position = end
    pieces.append(raw[position:])
    return "".join(pieces)


def _skip(raw: str, index: int) -> int:
    return _WHITESPACE.match(raw, index).end()  # type: ignore[union-attr]


_decoder = json.JSONDecoder()


def _value_end(raw: str, index: int) -> int:
    return _decoder.raw_decode(raw, index)[1]


def _members(raw: str, index: int) -> dict[str, tuple[int, int]]:
    """Key -> (start, end) of its value, for the JSON object at ``raw[index]``."""
    found: dict[str, tuple[int, int]] = {}
    if raw[index] != "{":
        raise NotebookError("not a valid notebook: an object was expected")
    index = _skip(raw, index + 1)
    if raw[index] == "}":
        return found
    while True:
        key, index = json.decoder.scanstring(raw, index + 1)  # type: ignore[attr-defined]
        index = _skip(raw, index)
        start = _skip(raw, index + 1)  # after the colon
        end = _value_end(raw, start)
        found[key] = (start, end)
        index = _skip(raw, end)
        if raw[index] == "}":
            return found
        index = _skip(raw, index + 1)  # after the comma


def _elements(raw: str, index: int) -> list[tuple[int, int]]:
    """(start, end) of each element of the JSON array at ``raw[index]``."""
    found: list[tuple[int, int]] = []
    if raw[index] != "[":
        raise NotebookError("not a valid notebook: an array was expected")
    index = _skip(raw, index + 1)
    if raw[index] == "]":
        return found
    while True:
        end = _value_end(raw, index)
        found.append((index, end))
        index = _skip(raw, end)
        if raw[index] == "]":
            return found
        index = _skip(raw, index + 1)


def _code_source_spans(raw: str) -> list[tuple[int, int]]:
    """Where the ``source`` value of each code cell lies in ``raw`` (code cells in order)."""
    cells = _members(raw, _skip(raw, 0))["cells"]
    spans = []
    for start, _ in _elements(raw, cells[0]):
        if raw[start] != "{":
            continue
        members = _members(raw, start)
        kind = members.get("cell_type")
        if kind is None or json.loads(raw[kind[0]:kind[1]]) != "code":
            continue
        if "source" not in members:
            raise NotebookError("not a valid notebook: a code cell without `source`")
        spans.append(members["source"])
    return spans


def _source_value(old: str, text: str, ensure_ascii: bool) -> str:
    """The JSON for cell source ``text``, in the form of the value ``old`` (a string or a list of
    lines, each ending in its newline but the last)."""
    if not old.startswith("["):
        return json.dumps(text, ensure_ascii=ensure_ascii)
    elements = _elements(old, 0)
    spelled = {json.loads(old[a:b]): old[a:b] for a, b in elements}  # keep unchanged lines as written
    if elements:
        opening = old[1:elements[0][0]]
        closing = old[elements[-1][1]:-1]
        separator = old[elements[0][1]:elements[1][0]] if len(elements) > 1 else "," + opening
    else:
        opening, closing, separator = "", "", ", "
    lines = split_lines(text, keepends=True)
    if not lines:
        return "[]"
    return "[" + opening + separator.join(
        spelled.get(line) or json.dumps(line, ensure_ascii=ensure_ascii) for line in lines) + closing + "]"


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
