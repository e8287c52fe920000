"""Node positions, as LibCST's ``PositionProvider`` computes them, at a fraction of its cost.

The provider updates a line/column pair on every token and builds a ``CodeRange`` for every node.
Here code generation only notes, for each node, the index of the token it starts and ends at;
lines and columns are computed once per file, from the tokens, and only for the nodes asked for.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

try:
    from libcst._nodes.internal import CodegenState
except ImportError:  # pragma: no cover - a LibCST that moved it: use PositionProvider instead
    CodegenState = object  # type: ignore[assignment,misc]

NEWLINE = re.compile(r"\r\n?|\n")


class _SyntacticPosition:
    """Context manager for ``record_syntactic_position``, without a generator per node."""

    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: "_TokenIndexState", node: cst.CSTNode,
                 start_node: Optional[cst.CSTNode], end_node: Optional[cst.CSTNode]) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = len(self.state.tokens)

    def __exit__(self, *exc: object) -> None:
        ranges = self.state.ranges
        start = ranges[self.start_node][0] if self.start_node is not None else self.start
        end = ranges[self.end_node][1] if self.end_node is not None else len(self.state.tokens)
        ranges[self.node] = (start, end)


@dataclass(frozen=False)
class _TokenIndexState(CodegenState):
    ranges: dict = field(default_factory=dict)
    _stack: list = field(default_factory=list)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._stack.append(len(self.tokens))

    def after_codegen(self, node: cst.CSTNode) -> None:
        start = self._stack.pop()
        if node not in self.ranges:  # a syntactic position recorded inside wins
            self.ranges[node] = (start, len(self.tokens))

    def pop_trailing_newline(self) -> None:
        """Keep it: positions are taken before the module drops its last newline."""

    def record_syntactic_position(self, node: cst.CSTNode, *, start_node: Optional[cst.CSTNode] = None,
                                  end_node: Optional[cst.CSTNode] = None) -> _SyntacticPosition:
        return _SyntacticPosition(self, node, start_node, end_node)


class Positions:
    """1-based line and 0-based column of each node's start and end, like ``PositionProvider``."""

    def __init__(self, module: cst.Module) -> None:
        self._points: list[tuple[int, int]] | None = None
        if CodegenState is object:  # see the import above
            computed = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
            self._points = []
            self._tokens: list[str] = []
            self._ranges: dict = {}
            for node, code_range in computed.items():
                self._points += [(code_range.start.line, code_range.start.column),
                                 (code_range.end.line, code_range.end.column)]
                self._ranges[node] = (len(self._points) - 2, len(self._points) - 1)
            return
        state = _TokenIndexState(default_indent=module.default_indent,
                                 default_newline=module.default_newline)
        module._codegen(state)
        self._ranges = state.ranges
        self._tokens = state.tokens

    def _boundaries(self) -> list[tuple[int, int]]:
        """(line, column) before each token, and after the last."""
        if self._points is None:
            points = []
            line, column = 1, 0
            for token in self._tokens:
                points.append((line, column))
                if "\n" in token or "\r" in token:
                    segments = NEWLINE.split(token)
                    line += len(segments) - 1
                    column = len(segments[-1])
                else:
                    column += len(token)
            points.append((line, column))
            self._points = points
        return self._points

    def __contains__(self, node: cst.CSTNode) -> bool:
        return node in self._ranges

    def range_of(self, node: cst.CSTNode) -> tuple[tuple[int, int], tuple[int, int]]:
        """((start line, start column), (end line, end column)); raises KeyError for a node
        that is not in the module."""
        start, end = self._ranges[node]
        points = self._boundaries()
        return points[start], points[end]
