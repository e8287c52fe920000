"""Apply the edits that findings carry: non-overlapping, verified to parse, written atomically.

Every run imports this module (reporters ask ``applicable``); LibCST and ``tempfile`` are imported
where a fix is applied."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from evallint.diagnostics import Applicability, Diagnostic, Edit
from evallint.lines import split_lines


@dataclass(frozen=True)
class FixResult:
    text: str
    applied: tuple[Diagnostic, ...]
    # Fixes left out because the result would not parse (or no longer compile).
    refused: tuple[Diagnostic, ...] = ()


class FileChanged(OSError):
    """The file on disk is no longer the one that was read: it is not overwritten."""


def with_bom(original: bytes, text: str) -> str:
    """``text`` to be written in place of the file whose bytes were ``original``: starting with
    the byte-order mark again if the file did (``linter.decode`` drops it)."""
    return "\ufeff" + text if original.startswith(b"\xef\xbb\xbf") else text


def applicable(diagnostic: Diagnostic, unsafe: bool) -> bool:
    fix = diagnostic.fix
    return fix is not None and (unsafe or fix.applicability is Applicability.SAFE)


def _offsets(text: str) -> list[int]:
    """Offset of the start of each line (index 0 is line 1); the last entry is the end."""
    starts = [0]
    for line in split_lines(text, keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _offset(starts: list[int], line: int, column: int) -> int:
    return starts[min(line, len(starts)) - 1] + column - 1


# The edits of one chosen fix: (part, start, end, edit); ``part`` is the cell of a notebook
# (None for a plain file).
Ranges = list[tuple[int | None, int, int, Edit]]


def apply_fixes(text: str, diagnostics: Iterable[Diagnostic], unsafe: bool) -> FixResult:
    """``text`` with the applicable fixes applied. A fix whose edits overlap an earlier fix waits
    for the next round, as does one waiting for a code (``waits_for``) that has a fix applied in
    this round; a fix whose result would not parse (or would no longer compile, when ``text``
    did) is left out, and the others kept."""
    checker = _Checker(lambda parts: parts[None])
    parts, applied, refused = _apply({None: text}, [d for d in diagnostics if d.cell is None], unsafe,
                                     checker)
    return FixResult(parts[None], applied, refused)


def apply_notebook_fixes(raw: str, diagnostics: Iterable[Diagnostic], unsafe: bool) -> FixResult:
    """Notebook JSON ``raw`` with the applicable fixes applied to its code cells (the edits of a
    notebook finding are relative to its cell, see ``NotebookSource.to_cell``); the result must
    parse as the joined module does. Only the changed characters of the JSON text are rewritten."""
    from evallint.notebooks import code_cells, join_cells, with_code_cells

    cells = code_cells(raw)
    parts: dict[int | None, str] = {number: text for number, text in enumerate(cells, start=1)}
    checker = _Checker(lambda texts: join_cells([texts[n] for n in range(1, len(cells) + 1)]).text)
    fixed, applied, refused = _apply(parts, [d for d in diagnostics if d.cell in parts], unsafe, checker)
    if not applied:
        return FixResult(raw, (), refused)
    changed = {number: fixed[number] for number in parts if fixed[number] != parts[number]}
    return FixResult(with_code_cells(raw, changed), applied, refused)  # type: ignore[arg-type]


def _apply(parts: dict[int | None, str], diagnostics: list[Diagnostic], unsafe: bool, checker: "_Checker",
           ) -> tuple[dict[int | None, str], tuple[Diagnostic, ...], tuple[Diagnostic, ...]]:
    """One round: the fixes that wait for no code first, then those whose codes (``waits_for``)
    had no fix kept in this round."""
    starts = {part: _offsets(text) for part, text in parts.items()}
    candidates = [d for d in sorted(diagnostics, key=Diagnostic.sort_key) if applicable(d, unsafe)]
    checker.original = parts
    chosen, refused = _choose(parts, starts, [d for d in candidates if not d.fix.waits_for], [], checker)
    kept_codes = {diagnostic.code for diagnostic, _ in chosen}
    patient = [d for d in candidates
               if d.fix.waits_for and not kept_codes.intersection(d.fix.waits_for)]  # type: ignore[union-attr]
    if patient:
        chosen, refused_later = _choose(parts, starts, patient, chosen, checker)
        refused += refused_later
    result = _edited(parts, chosen, checker) if chosen else None
    if result is None:
        return parts, (), tuple(refused)
    return result, tuple(diagnostic for diagnostic, _ in chosen), tuple(refused)


def _choose(parts: dict[int | None, str], starts: dict[int | None, list[int]], diagnostics: list[Diagnostic],
            chosen: list[tuple[Diagnostic, Ranges]], checker: "_Checker",
            ) -> tuple[list[tuple[Diagnostic, Ranges]], list[Diagnostic]]:
    """``chosen`` and the fixes of ``diagnostics`` whose edits overlap no fix before them (the
    others wait for the next round); if the result would not parse, only those that keep it
    parsing, and the ones left out as refused."""
    picked = list(chosen)
    for diagnostic in diagnostics:
        part = diagnostic.cell
        lines = starts[part]
        ranges = [(part, _offset(lines, e.span.line, e.span.column),
                   _offset(lines, e.span.end_line, e.span.end_column), e)
                  for e in diagnostic.fix.edits]  # type: ignore[union-attr]
        taken = [r for _, fix_ranges in picked for r in fix_ranges]
        if any(part == other_part and (start < other_end and other_start < end or start == other_start)
               for part, start, end, _ in ranges for other_part, other_start, other_end, _ in taken):
            continue
        picked.append((diagnostic, ranges))
    if len(picked) == len(chosen) or _edited(parts, picked, checker) is not None:
        return picked, []
    kept, refused = list(chosen), []  # some fix breaks the file: keep the fixes that do not
    for candidate in picked[len(chosen):]:
        if _edited(parts, kept + [candidate], checker) is not None:
            kept.append(candidate)
        else:
            refused.append(candidate[0])
    return kept, refused


class _Checker:
    """Does an edited text still parse (and compile, if the original did)? ``module`` makes the
    Python module of a set of parts."""

    def __init__(self, module) -> None:
        self.module = module
        self.original: dict | None = None
        self._original_compiles: bool | None = None

    def __call__(self, parts: dict) -> bool:
        import libcst as cst

        text = self.module(parts)
        try:
            cst.parse_module(text)
        except cst.ParserSyntaxError:
            return False
        if self._original_compiles is None:
            self._original_compiles = _compiles(self.module(self.original))
        return not self._original_compiles or _compiles(text)


def _compiles(text: str) -> bool:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not our business
        try:
            compile(text, "<fixed>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
    return True


def _edited(parts: dict[int | None, str], chosen: list[tuple[Diagnostic, Ranges]],
            checker: _Checker) -> dict[int | None, str] | None:
    """``parts`` with the edits of ``chosen`` fixes, or None if the result does not parse."""
    result = dict(parts)
    edits = [r for _, ranges in chosen for r in ranges]
    for part, start, end, edit in sorted(edits, key=lambda item: (str(item[0]), item[1], item[2]),
                                         reverse=True):
        text = result[part]
        result[part] = text[:start] + edit.content + text[end:]
    return result if checker(result) else None


def unified_diff(path: str, before: str, after: str) -> str:
    """A unified diff with ``a/``/``b/`` headers; a last line without a newline is marked as
    ``diff`` does."""
    lines = difflib.unified_diff(split_lines(before, keepends=True), split_lines(after, keepends=True),
                                 fromfile=f"a/{path.lstrip('/')}", tofile=f"b/{path.lstrip('/')}")
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def notebook_diff(path: str, before: str, after: str) -> str:
    """The changes between two versions of a notebook's JSON, cell by cell: one unified diff per
    changed code cell, headed ``a/nb.ipynb:cell 3`` (code cells counted from 1)."""
    from evallint.notebooks import code_cells

    old, new = code_cells(before), code_cells(after)
    return "".join(unified_diff(f"{path}:cell {number}", a, b)
                   for number, (a, b) in enumerate(zip(old, new), start=1) if a != b)


def write_atomically(path: Path, text: str, expected: bytes | None = None) -> None:
    """Replace ``path`` with ``text`` (UTF-8, line endings as given) in one step, through a
    temporary file in the same folder, keeping its permissions; a symbolic link stays one (its
    target is replaced). With ``expected``: raise ``FileChanged`` instead of writing when the file
    no longer holds those bytes (changed by someone else since it was read). On any failure the
    original file is left as it was."""
    import tempfile

    path = Path(os.path.realpath(path))
    mode = path.stat().st_mode
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".evallint")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(temporary, mode & 0o7777)
        if expected is not None and path.read_bytes() != expected:
            raise FileChanged("it changed on disk since it was read")
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise

