"""A parsed source file: text, LibCST module, and positions computed only when reported."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import libcst as cst

from evallint.diagnostics import Span
from evallint.frontend.positions import Positions


def _precise_failure(text: str) -> "ParseFailure | None":
    """Python's own message and position for a file LibCST rejects: LibCST's parser reports
    some errors a few tokens late. None when Python itself accepts the text."""
    try:
        ast.parse(text)
    except SyntaxError as error:
        return ParseFailure(error.msg, error.lineno or 1, error.offset or 1)
    except (ValueError, RecursionError, MemoryError):
        return None
    return None


class ParseFailure(Exception):
    """The file is not valid Python; carries the 1-based position of the error."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(eq=False)
class SourceModule:
    """One parsed file. ``path`` is as the user gave it (or as found on disk for imports)."""

    path: str
    text: str
    module: cst.Module
    _positions: Positions | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, path: str, text: str) -> "SourceModule":
        try:
            module = cst.parse_module(text)
        except cst.ParserSyntaxError as error:
            raise _precise_failure(text) or ParseFailure(
                error.message, error.raw_line, error.raw_column + 1) from error
        return cls(path=path, text=text, module=module)

    def span_of(self, node: cst.CSTNode) -> Span:
        """1-based, end-exclusive span of ``node``; positions are computed on first use only."""
        if self._positions is None:
            self._positions = Positions(self.module)  # falls back to PositionProvider if needed
        if node not in self._positions and isinstance(node, cst.Expr):
            node = node.value  # a statement the CFG made from a branch of ``a() if c else b()``
        (line, column), (end_line, end_column) = self._positions.range_of(node)
        return Span(line, column + 1, end_line, end_column + 1)

    def code_for(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)
