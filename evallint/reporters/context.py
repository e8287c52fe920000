"""What reporters may know besides the findings: where to write, and the linted sources."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from evallint.fixes import applicable
from evallint.lines import split_lines
from evallint.notebooks import NotebookError, extract


@dataclass
class ReportContext:
    """Output stream and options; ``sources`` holds texts not on disk (standard input);
    ``paths`` the files linted (as given), for formats that list files without findings too."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    quiet: bool = False
    unsafe_fixes: bool = False
    sources: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    # With ``--fix``: how many fixes were applied (the findings given are those that remain).
    fixed: int | None = None
    _lines: dict[str, dict] = field(default_factory=dict, repr=False)

    def source_line(self, path: str, line: int, cell: int | None = None) -> str | None:
        """The text of ``line`` (in ``cell`` for notebooks) of ``path``, if it can be read."""
        if path not in self._lines:
            self._lines[path] = self._load(path)
        return self._lines[path].get((cell, line))

    def _load(self, path: str) -> dict:
        try:
            text = self.sources.get(path)
            if text is None:
                text = Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return {}
        if path.endswith(".ipynb"):
            try:
                notebook = extract(text)
            except NotebookError:
                return {}
            lines = split_lines(notebook.text)
            return {origin: lines[i] for i, origin in enumerate(notebook.origin) if i < len(lines)}
        return {(None, number): line for number, line in enumerate(split_lines(text), start=1)}

    def fixable(self, diagnostic) -> bool:
        return applicable(diagnostic, self.unsafe_fixes)

    def hidden_fix(self, diagnostic) -> bool:
        return diagnostic.fix is not None and not self.fixable(diagnostic)


def location(path: str, line: int, column: int, cell: int | None = None) -> str:
    """``path:line:col``, or ``path:cell N:line:col`` in a notebook."""
    return f"{path}:cell {cell}:{line}:{column}" if cell is not None else f"{path}:{line}:{column}"
