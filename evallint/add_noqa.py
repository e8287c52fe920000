"""``check --add-noqa``: a ``# noqa`` directive for every current finding, so that a repository can
switch evallint on today and fail only on new findings (as Ruff's ``--add-noqa``).

Each directive goes where ``noqa.apply`` looks for it (``NoqaIndex.directive_line``): the first
line of the finding, or, when that line ends inside a multi-line string or a backslash
continuation, the line where the string or the continued line ends. An existing ``# noqa: ...`` on
that line is extended (codes sorted, without duplicates, other tools' codes kept); a bare
``# noqa`` already silences everything and is left alone. Notebook findings get their directive on
the line of their cell, edited inside the notebook's JSON text so that the rest of the file stays
byte for byte as it was."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from evallint import noqa
from evallint.diagnostics import Diagnostic
from evallint.lines import split_lines
from evallint.notebooks import CellEdit, NotebookError, edit_cells, extract

# A lone ``\r`` ends a line for Python but not for ``tokenize`` (which ``noqa`` reads comments with).
LONE_CR = re.compile(r"\r(?!\n)")


@dataclass(frozen=True)
class LineEdit:
    """Replace characters ``start:end`` (0-based) of ``line`` (1-based, without its line ending)."""

    line: int
    start: int
    end: int
    content: str


@dataclass
class Outcome:
    """The new text of a file, how many directives it gained (one per line written or extended),
    and the findings that could not get one: their key in ``wanted`` (line, or (cell, line) in a
    notebook) with the reason."""

    text: str
    directives: int = 0
    unplaced: list[tuple] = field(default_factory=list)


def directive(codes: Iterable[str]) -> str:
    return f"# noqa: {', '.join(sorted(set(codes)))}"


def _line_edit(number: int, text: str, comment: noqa.NoqaComment | None, codes: set[str]) -> LineEdit | None:
    """The edit that makes line ``number`` (``text``, without its ending) suppress ``codes``."""
    if comment is None:
        body = text.rstrip()
        return LineEdit(number, len(body), len(text), "  " + directive(codes))
    if comment.codes is None or codes <= set(comment.codes):
        return None  # a bare ``# noqa`` (or one naming the codes) already suppresses them
    return LineEdit(number, comment.column - 1, comment.end_column - 1, directive({*comment.codes, *codes}))


def plan(text: str, wanted: Mapping[int, Iterable[str]]) -> tuple[list[LineEdit], list[tuple[int, str]]]:
    """The line edits that suppress ``wanted[line]`` (codes of findings starting on ``line``) in the
    Python source ``text``, and the finding lines no directive can be put for."""
    if LONE_CR.search(text):
        return [], [(line, "the file ends lines with a lone carriage return, which `# noqa` comments "
                           "are not read from") for line in sorted(wanted)]
    index = noqa.scan(text)
    if not index.line_ends:
        return [], [(line, "the file cannot be tokenized") for line in sorted(wanted)]
    lines = split_lines(text)
    by_line: dict[int, set[str]] = {}
    unplaced: list[tuple[int, str]] = []
    for line, codes in sorted(wanted.items()):
        target = index.directive_line(line)
        if not 1 <= target <= len(lines):
            unplaced.append((line, "no line of the file can hold its `# noqa`"))
            continue
        by_line.setdefault(target, set()).update(codes)
    edits = [edit for line, codes in sorted(by_line.items())
             if (edit := _line_edit(line, lines[line - 1], index.comments.get(line), codes)) is not None]
    return edits, unplaced


def apply_line_edits(text: str, edits: Iterable[LineEdit]) -> str:
    """``text`` with ``edits`` (at most one per line) applied; line endings are untouched."""
    lines = split_lines(text, keepends=True)
    for edit in edits:
        physical = lines[edit.line - 1]
        body = physical.rstrip("\r\n")
        lines[edit.line - 1] = body[:edit.start] + edit.content + body[edit.end:] + physical[len(body):]
    return "".join(lines)


def add_to_source(text: str, wanted: Mapping[int, Iterable[str]]) -> Outcome:
    """Python source ``text`` with the directives for ``wanted`` (finding line -> codes)."""
    edits, unplaced = plan(text, wanted)
    return Outcome(apply_line_edits(text, edits), len(edits), unplaced)


def add_to_notebook(raw: str, wanted: Mapping[tuple[int, int], Iterable[str]]) -> Outcome:
    """Notebook JSON ``raw`` with the directives for ``wanted`` ((code cell, line in cell) ->
    codes): placed on the joined module as for a Python file, then written into the cells'
    source strings of the JSON text (nothing else of the file changes). ``unplaced`` names
    (cell, line) keys."""
    try:
        notebook = extract(raw)
    except NotebookError as error:
        return Outcome(raw, 0, [(key, str(error)) for key in sorted(wanted)])
    module_line = {origin: number for number, origin in enumerate(notebook.origin, start=1)}
    by_module_line: dict[int, set[str]] = {}
    keys_at: dict[int, list[tuple[int, int]]] = {}
    unplaced: list[tuple] = []
    for key, codes in sorted(wanted.items()):
        if key not in module_line:
            unplaced.append((key, f"cell {key[0]} has no line {key[1]}"))
            continue
        by_module_line.setdefault(module_line[key], set()).update(codes)
        keys_at.setdefault(module_line[key], []).append(key)
    edits, not_placed = plan(notebook.text, by_module_line)
    unplaced += [(key, reason) for line, reason in not_placed for key in keys_at[line]]
    placed = [key for line, keys in keys_at.items() if line not in dict(not_placed) for key in keys]
    module_lines = split_lines(notebook.text)
    cell_edits = [CellEdit(*notebook.origin[e.line - 1], e.start, e.end, e.content,
                           expected=module_lines[e.line - 1]) for e in edits]
    try:
        text = edit_cells(raw, cell_edits)
        # The edited notebook must read as the module with the same edits applied, nothing else.
        if extract(text).text != apply_line_edits(notebook.text, edits):
            raise NotebookError("the notebook's JSON could not be edited in place")
    except NotebookError as error:
        return Outcome(raw, 0, unplaced + [(key, str(error)) for key in sorted(placed)])
    return Outcome(text, len(edits), unplaced)


def wanted_codes(diagnostics: Iterable[Diagnostic], not_suppressible: frozenset[str]) -> dict:
    """Codes to suppress per finding line (``(cell, line)`` in notebooks), leaving out
    ``not_suppressible`` codes."""
    wanted: dict = {}
    for d in diagnostics:
        if d.code in not_suppressible:
            continue
        key = (d.cell, d.span.line) if d.cell is not None else d.span.line
        wanted.setdefault(key, set()).add(d.code)
    return wanted
