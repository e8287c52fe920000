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


def applicable(diagnostic: Diagnostic, unsafe: bool) -> bool:
    fix = diagnostic.fix
    return fix is not None and diagnostic.cell is None and (
        unsafe or fix.applicability is Applicability.SAFE)


def _offsets(text: str) -> list[int]:
    """Offset of the start of each line (index 0 is line 1)."""
    starts = [0]
    for line in split_lines(text, keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _offset(starts: list[int], line: int, column: int) -> int:
    return starts[min(line, len(starts)) - 1] + column - 1


def apply_fixes(text: str, diagnostics: Iterable[Diagnostic], unsafe: bool) -> FixResult:
    """``text`` with the applicable fixes applied. A fix whose edits overlap an earlier fix waits
    for the next round; a fix whose result would not parse is left out (and the others kept)."""
    starts = _offsets(text)
    chosen: list[tuple[Diagnostic, list[tuple[int, int, Edit]]]] = []
    for diagnostic in sorted(diagnostics, key=Diagnostic.sort_key):
        if not applicable(diagnostic, unsafe):
            continue
        ranges = [(_offset(starts, e.span.line, e.span.column),
                   _offset(starts, e.span.end_line, e.span.end_column), e) for e in diagnostic.fix.edits]
        taken = [r for _, fix_ranges in chosen for r in fix_ranges]
        if any(start < other_end and other_start < end or start == other_start
               for start, end, _ in ranges for other_start, other_end, _ in taken):
            continue
        chosen.append((diagnostic, ranges))
    result = _edited(text, chosen)
    if result is None:  # some fix breaks the file: keep the fixes that do not
        kept: list[tuple[Diagnostic, list[tuple[int, int, Edit]]]] = []
        for candidate in chosen:
            if _edited(text, kept + [candidate]) is not None:
                kept.append(candidate)
        chosen = kept
        result = _edited(text, chosen)
    if not chosen or result is None:
        return FixResult(text, ())
    return FixResult(result, tuple(diagnostic for diagnostic, _ in chosen))


def _edited(text: str, chosen: list) -> str | None:
    """``text`` with the edits of ``chosen`` fixes, or None if that does not parse."""
    import libcst as cst

    result = text
    edits = [r for _, ranges in chosen for r in ranges]
    for start, end, edit in sorted(edits, key=lambda item: (item[0], item[1]), reverse=True):
        result = result[:start] + edit.content + result[end:]
    try:
        cst.parse_module(result)
    except cst.ParserSyntaxError:
        return None
    return result


def unified_diff(path: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(split_lines(before, keepends=True), split_lines(after, keepends=True),
                                        fromfile=f"a/{path.lstrip('/')}", tofile=f"b/{path.lstrip('/')}"))


class FileChanged(OSError):
    """The file on disk is no longer the one that was read: it was not overwritten."""


def with_bom(original: bytes, text: str) -> str:
    """``text`` to be written in place of the file whose bytes were ``original``: starting with
    the byte-order mark again if the file did (``linter.decode`` drops it)."""
    return "\ufeff" + text if original.startswith(b"\xef\xbb\xbf") else text


def write_atomically(path: Path, text: str, expected: bytes | None = None) -> None:
    """Replace ``path`` with ``text`` (UTF-8, line endings as they are in ``text``) in one step,
    keeping its permissions; on any failure the original file is left as it was. With
    ``expected`` (the bytes the new text was made from), raise ``FileChanged`` instead of writing
    when the file no longer holds them (it was edited since it was read)."""
    import tempfile

    mode = path.stat().st_mode
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".evallint")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(temporary, mode & 0o7777)
        # Compared as late as possible: what is left is the moment between this read and the rename.
        if expected is not None and path.read_bytes() != expected:
            raise FileChanged("it changed on disk since it was read; not overwritten")
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
