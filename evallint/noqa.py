"""``# noqa`` comments: which findings they suppress, and which of them suppress nothing (EL002)."""

from __future__ import annotations

import bisect
import io
import re
import tokenize
from dataclasses import dataclass

from evallint.diagnostics import Diagnostic, Edit, Fix, Span
from evallint.lines import split_lines
from evallint.linter import meta_diagnostic
from evallint.rules import info_by_code

NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)
# ``# evallint: disable-file=EL201,EL103`` (or ``disable-file`` alone: every rule) for the file.
FILE_DISABLE = re.compile(r"#\s*evallint:\s*disable-file\b(?:\s*=\s*(?P<codes>[A-Z0-9,\s]+))?",
                          re.IGNORECASE)


@dataclass(frozen=True)
class NoqaComment:
    line: int
    column: int  # 1-based column of the ``#``
    end_column: int
    codes: tuple[str, ...] | None  # None: a bare ``# noqa`` suppresses every code


# Tokens that can span lines and hold no comment: strings, and (Python 3.12+) the parts of f-strings
# and (3.14+) t-strings between their start and end tokens.
_STRING_STARTS = {getattr(tokenize, name) for name in ("FSTRING_START", "TSTRING_START") if hasattr(tokenize, name)}
_STRING_ENDS = {getattr(tokenize, name) for name in ("FSTRING_END", "TSTRING_END") if hasattr(tokenize, name)}


@dataclass(frozen=True)
class NoqaIndex:
    """What the comments of a file say: the ``# noqa`` of each line, the codes ``# evallint:
    disable-file`` turns off (``{"ALL"}``: every code; None: no such comment), and the lines a
    comment can end (``line_ends``, sorted; empty when the file does not tokenize)."""

    comments: dict[int, NoqaComment]
    disabled: set[str] | None
    line_ends: tuple[int, ...]

    def directive_line(self, line: int) -> int:
        """The line whose ``# noqa`` applies to a finding that starts on ``line``: that line, unless
        it cannot hold a comment (it ends inside a multi-line string or is continued by a
        backslash); then the first line after it that can, where the string or the continued
        line ends (as in Ruff and flake8)."""
        at = bisect.bisect_left(self.line_ends, line)
        return self.line_ends[at] if at < len(self.line_ends) else line


def scan(text: str) -> NoqaIndex:
    """Tokenize ``text`` once for its noqa comments, its file-level disables and its line ends."""
    found: dict[int, NoqaComment] = {}
    disabled: set[str] | None = None
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return NoqaIndex(found, None, ())
    ends: set[int] = set()
    inside: set[int] = set()  # lines that end within a multi-line string
    opened: list[int] = []  # start lines of the f-strings (3.12+) being read
    for token in tokens:
        kind = token.type
        if kind in (tokenize.NEWLINE, tokenize.NL):
            ends.add(token.start[0])
        elif kind in _STRING_STARTS:
            opened.append(token.start[0])
        elif kind in _STRING_ENDS and opened:
            inside.update(range(opened.pop(), token.end[0]))
        elif kind == tokenize.STRING and token.end[0] > token.start[0]:
            inside.update(range(token.start[0], token.end[0]))
        if kind != tokenize.COMMENT:
            continue
        file_match = FILE_DISABLE.match(token.string)
        if file_match:
            codes = file_match.group("codes")
            disabled = (disabled or set()) | (
                {c.upper() for c in re.split(r"[\s,]+", codes) if c} if codes else {"ALL"})
        # A noqa may follow another comment on the line (``# type: ignore  # noqa: EL101``).
        match = NOQA.search(token.string, file_match.end() if file_match else 0)
        if match is None:
            continue
        codes = match.group("codes")
        parsed = tuple(c.upper() for c in re.split(r"[\s,]+", codes) if c) if codes else None
        line, column = token.start
        found[line] = NoqaComment(line, column + 1 + match.start(), column + 1 + match.end(), parsed)
    return NoqaIndex(found, disabled, tuple(sorted(ends - inside)))


def _suppresses(comment: NoqaComment, code: str) -> bool:
    return comment.codes is None or code in comment.codes


def apply(diagnostics: list[Diagnostic], path: str, text: str, selected: frozenset[str],
          unsuppressable: frozenset[str]) -> list[Diagnostic]:
    """Drop the findings a ``# noqa`` on their first line suppresses (or, when that line ends inside
    a multi-line string or a backslash continuation, on the line where it ends:
    ``NoqaIndex.directive_line``); when EL002 is among the ``selected`` codes, add it for each
    selected (or unknown) code in a noqa comment of ``path`` that suppressed nothing."""
    report_unused = "EL002" in selected
    if not (diagnostics or report_unused) or ("noqa" not in text and "evallint:" not in text):
        return diagnostics  # nothing to suppress or to report: no need to tokenize
    index = scan(text)
    by_line, disabled = index.comments, index.disabled
    if disabled:
        diagnostics = [d for d in diagnostics if d.code in unsuppressable
                       or not ("ALL" in disabled or d.code in disabled)]
    used: dict[int, set[str]] = {}
    kept = []
    for diagnostic in diagnostics:
        line = index.directive_line(diagnostic.span.line)
        comment = by_line.get(line)
        if comment is not None and diagnostic.code not in unsuppressable \
                and _suppresses(comment, diagnostic.code):
            used.setdefault(line, set()).add(diagnostic.code)
            continue
        kept.append(diagnostic)
    if report_unused:
        kept.extend(_unused(by_line, used, path, selected, text))
    return kept


def _unused(by_line: dict[int, NoqaComment], used: dict[int, set[str]], path: str,
            selected: frozenset[str], text: str):
    known = info_by_code()
    for line, comment in sorted(by_line.items()):
        if comment.codes is None:
            continue  # a bare noqa may be meant for another tool
        unknown = [c for c in comment.codes if c.startswith("EL") and c not in known]
        # A code of a rule that is not selected in this run may be needed by another run.
        unused = [c for c in comment.codes if c in selected and c not in used.get(line, ())]
        if not unused and not unknown:
            continue
        remaining = [c for c in comment.codes if c not in unused and c not in unknown]
        span = Span(line, comment.column, line, comment.end_column)
        replacement = f"# noqa: {', '.join(remaining)}" if remaining else ""
        removed = span
        if not remaining:  # remove the whole directive, with the spaces before it
            before = split_lines(text)[line - 1][: comment.column - 1]
            removed = Span(line, len(before.rstrip()) + 1, line, comment.end_column)
        problems = []
        if unused:
            problems.append(f"unused: {', '.join(unused)}")
        if unknown:
            problems.append(f"unknown: {', '.join(unknown)}")
        yield meta_diagnostic("EL002", path, f"Unused `noqa` directive ({'; '.join(problems)})", span,
                              Fix("Remove the unused codes" if remaining else "Remove the `noqa` directive",
                                  (Edit(removed, replacement),)))
