"""Text edits that several rules' fixes are made of: a statement line inserted before another,
statements wrapped in a ``with`` block. Each keeps the file's own indentation and line endings,
never re-indents the inside of a multi-line string, and returns None where the edit is not
knowable from the text (the statement shares its line, a one-line block, ...)."""

from __future__ import annotations

import io
import tokenize
from typing import Sequence

import libcst as cst

from evallint.diagnostics import Edit, Span
from evallint.frontend.nodes import child_nodes
from evallint.frontend.source import SourceModule
from evallint.lines import split_lines
from evallint.notebooks import CELL_END


def path_to(root: cst.CSTNode, target: cst.CSTNode) -> list[cst.CSTNode] | None:
    """The nodes from ``root`` down to ``target`` (both included), or None if it is not inside."""
    stack: list[tuple[cst.CSTNode, int]] = [(root, 0)]
    path: list[cst.CSTNode] = []
    while stack:
        node, depth = stack.pop()
        del path[depth:]
        path.append(node)
        if node is target:
            return path
        stack.extend((child, depth + 1) for child in reversed(child_nodes(node)))
    return None


def body_of(node: cst.CSTNode) -> Sequence[cst.CSTNode] | None:
    """The statements of a block (an indented block or the module), else None."""
    if isinstance(node, (cst.IndentedBlock, cst.Module)):
        return node.body
    return None


def lines_of(source: SourceModule) -> list[str]:
    return split_lines(source.text, keepends=True)


def indent_of(source: SourceModule, statement: cst.CSTNode) -> str | None:
    """The indentation of the line ``statement`` starts, if nothing but it precedes it there."""
    span = source.span_of(statement)
    before = lines_of(source)[span.line - 1][:span.column - 1]
    return before if not before.strip() else None


def last_line(span: Span) -> int:
    """The last line a span covers (one ending at the start of a line does not cover it)."""
    return span.end_line - 1 if span.end_column == 1 and span.end_line > span.line else span.end_line


def insert_line_before(source: SourceModule, statement: cst.CSTNode, code: str) -> Edit | None:
    """``code`` as a statement of its own on a new line before ``statement``, at its indentation."""
    indent = indent_of(source, statement)
    if indent is None:
        return None
    line = source.span_of(statement).line
    return Edit(Span(line, 1, line, 1), f"{indent}{code}{source.module.default_newline}")


def string_continuation_lines(source: SourceModule) -> frozenset[int] | None:
    """Lines that begin inside a multi-line string (their text is the string's, not code: adding
    indentation there would change the string); None if the text does not tokenize."""
    inside: set[int] = set()
    starts: list[int] = []  # f-string starts (Python 3.12 tokenizes their parts)
    try:
        for token in tokenize.generate_tokens(io.StringIO(source.text).readline):
            name = tokenize.tok_name[token.type]
            if name == "FSTRING_START":
                starts.append(token.start[0])
            elif name == "FSTRING_END":
                inside.update(range(starts.pop() + 1, token.end[0] + 1))
            elif token.type == tokenize.STRING and token.end[0] > token.start[0]:
                inside.update(range(token.start[0] + 1, token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError, IndexError):
        return None
    return frozenset(inside)


def indent_unit(source: SourceModule, indent: str) -> str:
    """One more level of indentation below ``indent``, in the file's own style."""
    unit = source.module.default_indent
    if "\t" in indent and "\t" not in unit:
        return "\t"
    if indent and "\t" not in indent and "\t" in unit:
        return "    "
    return unit


def indented(source: SourceModule, first: int, last: int, unit: str) -> str | None:
    """Lines ``first``..``last`` (1-based, inclusive, with their line endings) with ``unit`` in
    front of each that holds code or a comment; blank lines and lines inside multi-line strings
    stay as they are. None if the file does not tokenize."""
    strings = string_continuation_lines(source)
    if strings is None:
        return None
    out = []
    for number, line in enumerate(lines_of(source)[first - 1:last], start=first):
        out.append(line if not line.strip() or number in strings else unit + line)
    return "".join(out)


def _line_end(text: str) -> str:
    return text[len(text.rstrip("\r\n")):]


def wrap_in_with(source: SourceModule, first: cst.CSTNode, last: cst.CSTNode, header: str) -> Edit | None:
    """Statements ``first``..``last`` of one block moved into ``with <header>:`` at their place."""
    indent = indent_of(source, first)
    if indent is None:
        return None
    start, end = source.span_of(first), source.span_of(last)
    end_line = last_line(end)
    lines = lines_of(source)
    body = indented(source, start.line, end_line, indent_unit(source, indent))
    if body is None:
        return None
    newline = _line_end(lines[start.line - 1]) or source.module.default_newline
    content = f"with {header}:{newline}{body}"
    content = content[:len(content) - len(_line_end(content))]
    return Edit(Span(start.line, start.column, end_line, len(lines[end_line - 1].rstrip("\r\n")) + 1),
                content)


def _within_cell(source: SourceModule, line: int, statements: list[cst.CSTNode]) -> list[cst.CSTNode]:
    """In a notebook, the module-level ``statements`` up to the end of the cell that holds
    ``line`` (the joined module ends each cell with a ``CELL_END`` line)."""
    if not source.path.endswith(".ipynb"):
        return statements
    lines = lines_of(source)
    end = next((number for number in range(line + 1, len(lines) + 1)
                if lines[number - 1].rstrip("\r\n") == CELL_END), len(lines) + 1)
    return [s for s in statements if source.span_of(s).line < end]


def with_for_rest_of_block(source: SourceModule, root: cst.CSTNode, statement: cst.BaseSmallStatement,
                           header: str) -> Edit | None:
    """Turn the statement ``statement`` (alone on its line) into ``with <header>:`` whose body is
    every statement after it in its block (at the top level of a notebook: in its cell),
    re-indented; a comment after it stays on the ``with`` line. None when nothing follows it, or
    when it shares its line or sits in a one-line block."""
    path = path_to(root, statement)
    if path is None or len(path) < 3:
        return None
    line_node, block = path[-2], path[-3]
    statements = body_of(block)
    if not isinstance(line_node, cst.SimpleStatementLine) or len(line_node.body) != 1 or statements is None:
        return None
    following = list(statements[statements.index(line_node) + 1:])
    span = source.span_of(statement)
    if isinstance(block, cst.Module):
        following = _within_cell(source, span.line, following)
    indent = indent_of(source, statement)
    if not following or indent is None or span.end_line != span.line:
        return None
    lines = lines_of(source)
    after = lines[span.line - 1][span.end_column - 1:].rstrip("\r\n")
    if after.strip() and not after.lstrip().startswith("#"):
        return None
    end = source.span_of(following[-1])
    end_line = last_line(end)
    body = indented(source, span.line + 1, end_line, indent_unit(source, indent))
    if body is None:
        return None
    newline = _line_end(lines[span.line - 1]) or source.module.default_newline
    content = f"{indent}with {header}:{after}{newline}{body}"
    content = content[:len(content) - len(_line_end(content))]
    return Edit(Span(span.line, 1, end_line, len(lines[end_line - 1].rstrip("\r\n")) + 1), content)
