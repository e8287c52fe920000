"""The finding a rule emits, independent of how it is later formatted."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from enum import Enum


def other_file_path(path: str) -> str:
    """How a location in a file other than the linted one is shown: relative to the working folder
    when below it, else absolute. The same whether the analysis reached the file by absolute path
    (an import) or by the path given for it (a file also linted in this run), so that a file's
    findings do not depend on the other paths linted."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute)
    except ValueError:  # another drive
        return absolute
    return absolute if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


class Applicability(str, Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True)
class Span:
    """A 1-based, end-exclusive range of characters in a file (columns count characters)."""

    line: int
    column: int
    end_line: int
    end_column: int


@dataclass(frozen=True)
class Edit:
    """Replace the text in ``span`` with ``content``."""

    span: Span
    content: str


@dataclass(frozen=True)
class Fix:
    message: str
    edits: tuple[Edit, ...]
    applicability: Applicability = Applicability.SAFE
    # Codes whose fixes in the same file go first: while one of them can be applied, this fix
    # waits for the next round, where the finding is often gone (EL101's ``train()`` after
    # EL102's fix restores the mode at its source).
    waits_for: tuple[str, ...] = ()


@dataclass(frozen=True)
class Related:
    """A secondary location that explains a finding, e.g. where eval mode was set."""

    path: str
    span: Span
    message: str


@dataclass(frozen=True)
class Diagnostic:
    code: str
    name: str
    message: str
    severity: Severity
    path: str
    span: Span
    related: tuple[Related, ...] = ()
    fix: Fix | None = None
    # For notebooks: the 1-based cell number; ``span`` is then relative to that cell.
    cell: int | None = None
    notes: tuple[str, ...] = field(default=())

    def sort_key(self) -> tuple:
        return (self.path, self.cell or 0, self.span.line, self.span.column, self.code)

    def with_path(self, path: str) -> "Diagnostic":
        return replace(self, path=path, related=tuple(
            replace(r, path=path) if r.path == self.path else r for r in self.related))
