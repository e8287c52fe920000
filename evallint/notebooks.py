"""Jupyter notebooks: their code cells as one Python module, findings and their fixes mapped back
to cells, and fixed cell sources written back into the notebook's JSON text."""

from __future__ import annotations

import difflib
import json
import re
from bisect import bisect_left
from dataclasses import dataclass, field, replace
from itertools import accumulate

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


# What a magic or shell line becomes in the joined module (a cell magic hides its cell).
MASKED_MAGIC = "pass  # magic"


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
                line = f"{indent}{MASKED_MAGIC}"
                masked.add(len(lines) + 1)
            lines.append(line)
            origin.append((code_cell, number))
        lines.append(CELL_END)
        origin.append((code_cell, len(cell_lines) + 1))
    return NotebookSource("\n".join(lines) + "\n", tuple(origin), frozenset(masked))


# -- code cells' sources edited inside the notebook's JSON text (``--fix``, ``--add-noqa``) ------
# One locator (``_locate``) and one writer (``_write``): only changed characters are re-encoded,
# so outputs, metadata, key order, indentation, escapes and the final newline stay byte for byte.

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_decoder = json.JSONDecoder()

# A change to a cell's text: replace characters ``start:end`` with ``text``.
_Change = tuple[int, int, str]


def _skip(raw: str, index: int) -> int:
    return _WHITESPACE.match(raw, index).end()  # type: ignore[union-attr]


def _items(raw: str, index: int, kind: str) -> list[tuple[str | None, int, int]]:
    """(key, start, end) of each value in the JSON object (``kind`` "{") or array ("[", key None)
    at ``raw[index]``."""
    if raw[index] != kind:
        raise NotebookError(f"not a valid notebook: '{kind}' expected at character {index}")
    closing, found = "}" if kind == "{" else "]", []
    index = _skip(raw, index + 1)
    while raw[index] != closing:
        key = None
        if kind == "{":
            key, index = json.decoder.scanstring(raw, index + 1)  # type: ignore[attr-defined]
            index = _skip(raw, _skip(raw, index) + 1)  # after the colon
        end = _decoder.raw_decode(raw, index)[1]
        found.append((key, index, end))
        index = _skip(raw, end)
        index = _skip(raw, index + 1) if raw[index] == "," else index
    return found


@dataclass(frozen=True)
class _Source:
    """A code cell's ``source`` at ``start:end`` of the JSON text: one string or a list of them
    (``strings``: their spans, quotes included; ``values``: what they decode to)."""

    start: int
    end: int
    is_list: bool
    strings: tuple[tuple[int, int], ...]
    values: tuple[str, ...]


def _locate(raw: str) -> list[_Source]:
    """The ``source`` of each code cell of notebook JSON ``raw``, in order (as ``code_cells``)."""
    found = []
    try:
        cells = {key: (a, b) for key, a, b in _items(raw, _skip(raw, 0), "{")}["cells"]
        for _, start, _ in _items(raw, cells[0], "["):
            members = {key: (a, b) for key, a, b in _items(raw, start, "{")} if raw[start] == "{" else {}
            kind = members.get("cell_type")
            if kind is None or json.loads(raw[kind[0]:kind[1]]) != "code":
                continue
            if "source" not in members:
                raise NotebookError("not a valid notebook: a code cell without `source`")
            start, end = members["source"]
            is_list = raw[start] == "["
            strings = tuple((a, b) for _, a, b in _items(raw, start, "[")) if is_list else ((start, end),)
            if any(raw[a] != '"' for a, _ in strings):
                raise NotebookError("not a valid notebook: a code cell's source is not text")
            found.append(_Source(start, end, is_list, strings,
                                 tuple(json.loads(raw[a:b]) for a, b in strings)))
    except (ValueError, KeyError, IndexError) as error:
        raise NotebookError(f"not a valid notebook: {error}") from error
    return found


def _spellings(raw: str, start: int, end: int) -> list[str]:
    """How each character of the JSON string ``raw[start:end]`` is written (escapes as they are)."""
    offsets: list[int] = []
    at = start + 1
    while at < end - 1:
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
    offsets.append(end - 1)
    return [raw[a:b] for a, b in zip(offsets, offsets[1:])]


def _write(raw: str, sources: list[_Source], changes: dict[int, list[_Change]]) -> str:
    """``raw`` with ``changes`` (code cell number -> non-overlapping changes to its text) made. In
    a list of strings, a string still ends where it did (if its last character is kept) and a new
    line break ends one; strings a change does not touch stay as they are."""
    ensure_ascii = raw.isascii()  # an ASCII file stays ASCII

    def escape(text: str) -> str:
        return json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]

    replacements: list[tuple[int, int, str]] = []
    for number, cell_changes in changes.items():
        source, cell_changes = sources[number - 1], sorted(cell_changes)
        if not cell_changes:
            continue
        if not source.strings:  # an empty list
            lines = split_lines(cell_changes[0][2], keepends=True)
            replacements.append((source.start, source.end,
                                 "[" + ", ".join('"' + escape(line) + '"' for line in lines) + "]"))
            continue
        old = "".join(source.values)
        ends = list(accumulate(map(len, source.values)))  # where each string ends in the cell text
        groups: list[list] = []  # [first string, last string, changes]: strings rewritten together
        for s, e, text in cell_changes:
            first = bisect_left(ends, s)
            # At the end of a string, a change goes to the next one if it replaces characters
            # there or inserts at the start of a line; one that removes the line break ending a
            # string takes in the next string (the rest of the line).
            line_start = old[s - 1:s] == "\n" or old[s - 1:s] == "\r" and text[:1] != "\n"
            while first + 1 < len(ends) and ends[first] == s and (s < e or line_start):
                first += 1
            last = bisect_left(ends, e) if s < e else first
            if s < e and ends[last] == e and old[e - 1] in "\r\n" and last + 1 < len(ends):
                last += 1
            if groups and first <= groups[-1][1] + 1:
                groups[-1][1] = max(groups[-1][1], last)
                groups[-1][2].append((s, e, text))
            else:
                groups.append([first, last, [(s, e, text)]])
        replacements += [_rewrite_strings(raw, source, *group, escape) for group in groups]
    pieces, position = [], 0
    for start, end, content in sorted(replacements):
        pieces += [raw[position:start], content]
        position = end
    return "".join(pieces) + raw[position:]


def _rewrite_strings(raw: str, source: _Source, first: int, last: int, changes: list[_Change],
                     escape) -> tuple[int, int, str]:
    """The replacement for strings ``first..last`` of ``source`` with ``changes`` made; characters
    not changed keep their spelling."""
    base = sum(map(len, source.values[:first]))
    values = source.values[first:last + 1]
    old, string_ends = "".join(values), {end - 1 for end in accumulate(map(len, values))}
    old_spelling = [spelled for a, b in source.strings[first:last + 1] for spelled in _spellings(raw, a, b)]
    atoms: list[tuple[str, str, int | None]] = []  # (character, spelling, index in ``old`` if kept)
    position = 0
    for s, e, new in changes + [(base + len(old), base + len(old), "")]:
        atoms += [(old[k], old_spelling[k], k) for k in range(position, s - base)]
        atoms += [(char, escape(char), None) for char in new]
        position = e - base
    strings, current = [], ""
    for index, (char, spelled, k) in enumerate(atoms):
        current += spelled
        after = atoms[index + 1] if index + 1 < len(atoms) else ("", "", None)
        line_end = char == "\n" or char == "\r" and after[0] != "\n"
        kept_end = k in string_ends
        if source.is_list and (line_end and (k is None or kept_end) or kept_end and after[2] == k + 1):
            strings.append(f'"{current}"')
            current = ""
    if current or not source.is_list:
        strings.append(f'"{current}"')
    (start, _), (_, end) = source.strings[first], source.strings[last]
    if strings:
        if len(source.strings) > 1:  # the list's own layout
            separator = raw[source.strings[0][1]:source.strings[1][0]]
        else:
            separator = "," + raw[source.start + 1:source.strings[0][0]]
        return start, end, separator.join(strings)
    if last + 1 < len(source.strings):  # removed strings go with the separator after them
        return start, source.strings[last + 1][0], ""
    if first > 0:  # or before them
        return source.strings[first - 1][1], end, ""
    return source.start, source.end, "[]"


def _changes(old: str, new: str) -> list[_Change]:
    """Changes that turn ``old`` into ``new``: from a line diff, a replaced line changing only
    where it differs."""
    a, b = split_lines(old, keepends=True), split_lines(new, keepends=True)
    a_at, b_at = list(accumulate(map(len, a), initial=0)), list(accumulate(map(len, b), initial=0))
    changes: list[_Change] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        blocks = [(i, i + 1, j, j + 1) for i, j in zip(range(i1, i2), range(j1, j2))] \
            if i2 - i1 == j2 - j1 else [(i1, i2, j1, j2)]
        for i, i_end, j, j_end in blocks if tag != "equal" else ():
            start, end, text = a_at[i], a_at[i_end], new[b_at[j]:b_at[j_end]]
            while start < end and text and old[start] == text[0]:
                start, text = start + 1, text[1:]
            while start < end and text and old[end - 1] == text[-1]:
                end, text = end - 1, text[:-1]
            if start < end or text:
                changes.append((start, end, text))
    return changes


def with_code_cells(raw: str, sources: dict[int, str]) -> str:
    """Notebook JSON ``raw`` with the text of the code cells in ``sources`` (1-based code cell
    number -> text) replaced; only the characters that differ are rewritten."""
    located = _locate(raw)
    return _write(raw, located, {number: _changes("".join(located[number - 1].values), text)
                                 for number, text in sources.items()})


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


def edit_cells(raw: str, edits: list[CellEdit]) -> str:
    """Notebook JSON ``raw`` with ``edits`` made in its code cells. Raises NotebookError when an
    edit cannot be made (the line is not the expected text, or the edit spans two strings)."""
    if not edits:
        return raw
    sources = _locate(raw)
    changes: dict[int, list[_Change]] = {}
    for edit in edits:
        if not 1 <= edit.cell <= len(sources):
            raise NotebookError(f"cell {edit.cell} has no source to edit")
        values = sources[edit.cell - 1].values
        lines = split_lines("".join(values), keepends=True)
        if edit.line > len(lines) or lines[edit.line - 1].rstrip("\r\n") != edit.expected:
            raise NotebookError(f"cell {edit.cell}, line {edit.line} is not the line linted")
        start = sum(map(len, lines[:edit.line - 1])) + edit.start
        end = start + edit.end - edit.start
        bounds = list(accumulate(map(len, values), initial=0))
        if not any(a <= start and end <= b for a, b in zip(bounds, bounds[1:])):
            raise NotebookError(f"cell {edit.cell}, line {edit.line} is split over several strings")
        changes.setdefault(edit.cell, []).append((start, end, edit.content))
    return _write(raw, sources, changes)
