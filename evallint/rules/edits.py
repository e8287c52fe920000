"""Building the edits of multi-line fixes: where a statement sits, which suite holds it, its
indentation, inserting lines, re-indenting a range of lines (never inside a multi-line string),
wrapping statements in a ``with`` block, names a function does not use yet. Each keeps the file's
own indentation and line endings and returns None where the edit is not knowable from the text
(the statement shares its line, a one-line block, ...)."""

from __future__ import annotations

import io
import tokenize
import weakref
from dataclasses import dataclass
from typing import Iterable, Sequence

import libcst as cst
import libcst.helpers

from evallint.analysis.keys import is_within, key_of
from evallint.diagnostics import Edit, Span
from evallint.frontend.nodes import child_nodes
from evallint.frontend.source import SourceModule
from evallint.lines import split_lines
from evallint.notebooks import CELL_END, MASKED_MAGIC

# Nodes that open a scope of their own: what happens inside does not happen in the enclosing body.
SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
LOOPS = (cst.For, cst.While)


@dataclass(frozen=True)
class Frame:
    """One statement on the way from a function body down to a node: ``statement`` is
    ``suite[index]``, a statement on lines of its own; ``owner`` is the node whose body
    ``suite`` is (the function or module, a loop, an ``if``, an ``else``, ...)."""

    statement: cst.BaseStatement
    suite: Sequence[cst.BaseStatement]
    index: int
    owner: cst.CSTNode


def path_to(root: cst.CSTNode, target: cst.CSTNode) -> list[cst.CSTNode] | None:
    """The nodes from ``root`` down to ``target`` (both included), or None if it is not below."""
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


def statement_frames(root: cst.Module | cst.FunctionDef, target: cst.CSTNode) -> list[Frame] | None:
    """The statements on lines of their own that contain ``target``, outermost (a statement of
    ``root``'s body) first; ``if x: model(y)`` ends with the ``if``. None if ``target`` is not in
    ``root``'s body or lies in a nested function, class or lambda."""
    path = path_to(root, target)
    if path is None:
        return None
    frames: list[Frame] = []
    for position, node in enumerate(path):
        if position and isinstance(node, SCOPES):
            return None  # in a nested function, class or lambda
        if not isinstance(node, cst.BaseStatement) or position == 0:
            continue
        parent = path[position - 1]
        if isinstance(parent, cst.Module):
            suite, owner = parent.body, parent
        elif isinstance(parent, cst.IndentedBlock):
            suite, owner = parent.body, path[position - 2]
        else:
            continue  # ``elif``: an If in another If's orelse is part of that statement
        frames.append(Frame(node, suite, _index(suite, node), owner))
    return frames


def _index(suite: Sequence[cst.BaseStatement], node: cst.CSTNode) -> int:
    return next(i for i, statement in enumerate(suite) if statement is node)


def body_of(function: cst.Module | cst.FunctionDef) -> Sequence[cst.BaseStatement] | None:
    """The statements of a function's (or module's) body, None for ``def f(): return x``."""
    if isinstance(function, cst.Module):
        return function.body
    return function.body.body if isinstance(function.body, cst.IndentedBlock) else None


def suite_of(node: cst.CSTNode) -> Sequence[cst.BaseStatement] | None:
    """The statements of a block (an indented block or the module), else None."""
    if isinstance(node, (cst.IndentedBlock, cst.Module)):
        return node.body
    return None


def is_docstring(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 \
        and isinstance(statement.body[0], cst.Expr) \
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))


def walk(node: cst.CSTNode, into_scopes: bool = False) -> Iterable[cst.CSTNode]:
    """``node`` and every node below it, not entering nested functions, classes and lambdas
    (unless ``into_scopes``)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current is not node and isinstance(current, SCOPES) and not into_scopes:
            continue
        stack.extend(child_nodes(current))


def bound_keys(nodes: Iterable[cst.CSTNode]) -> set[str]:
    """The names and keys (``self.model``, ``run['model']``) that ``nodes`` assign, as targets of
    assignments, loops, ``with ... as``, ``except ... as``, walrus, imports, ``del``, ``def`` and
    ``class``; names whose binding cannot be keyed are given by their head name."""
    found: set[str] = set()

    def add_target(target: cst.CSTNode) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                add_target(element.value)
        elif isinstance(target, cst.StarredElement):
            add_target(target.value)
        else:
            key = key_of(target)  # type: ignore[arg-type]
            if key is not None:
                found.add(key)
            else:
                found.update(_heads(target))

    for root in nodes:
        for node in walk(root, into_scopes=True):
            if isinstance(node, cst.Assign):
                for target in node.targets:
                    add_target(target.target)
            elif isinstance(node, (cst.AnnAssign, cst.AugAssign)):
                add_target(node.target)
            elif isinstance(node, (cst.For, cst.CompFor)):
                add_target(node.target)
            elif isinstance(node, cst.WithItem) and node.asname is not None:
                add_target(node.asname.name)
            elif isinstance(node, cst.ExceptHandler) and node.name is not None:
                add_target(node.name.name)
            elif isinstance(node, cst.NamedExpr):
                add_target(node.target)
            elif isinstance(node, cst.Del):
                add_target(node.target)
            elif isinstance(node, (cst.FunctionDef, cst.ClassDef)) and node is not root:
                found.add(node.name.value)
            elif isinstance(node, (cst.Import, cst.ImportFrom)) and not isinstance(node.names, cst.ImportStar):
                for alias in node.names:
                    name = alias.asname.name if alias.asname is not None else alias.name
                    found.update(_heads(name))
    return found


def _heads(node: cst.CSTNode) -> set[str]:
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        node = node.value
    return {node.value} if isinstance(node, cst.Name) else set()


def rebound(key: str, keys: set[str]) -> bool:
    """Does assigning ``keys`` change what ``key`` denotes (``model``, or ``self`` for
    ``self.net``, or ``self.net`` itself)? A variable index (``d[k]``) counts as a name read."""
    names = {key, *key_names(key)}
    return any(bound == key or is_within(key, bound) or bound in names for bound in keys)


def key_names(key: str) -> set[str]:
    """The variables a key reads: its head and the names in its subscripts."""
    expression = parse_key(key)
    if expression is None:
        return set()
    return {node.value for node in walk(expression) if isinstance(node, cst.Name)}


def parse_key(key: str) -> cst.BaseExpression | None:
    """``key`` as an expression, when it is one that denotes the same object as the key."""
    try:
        expression = cst.parse_expression(key)
    except (cst.ParserSyntaxError, ValueError):
        return None
    return expression if key_of(expression) == key else None


def model_expression(source: SourceModule, key: str, node: cst.BaseExpression | None = None) -> str | None:
    """How to spell the model in a new statement: the code of ``node`` (the model as the code
    writes it) when it is a plain name/attribute/subscript chain, else the key when it is valid
    code; None when neither is (``d[*]``, a call)."""
    if node is not None and key_of(node) is not None and not any(
            isinstance(n, cst.Call) for n in walk(node)):
        return " ".join(source.code_for(node).split())
    return key if parse_key(key) is not None else None


def contains(source: SourceModule, outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
    """Does ``outer``'s text contain ``inner``'s?"""
    a, b = source.span_of(outer), source.span_of(inner)
    return (a.line, a.column) <= (b.line, b.column) and (b.end_line, b.end_column) <= (a.end_line, a.end_column)


def outermost_clear(source: SourceModule, frames: list[Frame], nodes: Iterable[cst.CSTNode],
                    key: str) -> Frame | None:
    """The outermost of ``frames`` whose statement holds none of ``nodes`` and rebinds nothing
    ``key`` reads: a line put before it runs after those of ``nodes`` that come before it, on
    every pass through the loops around it, and names the same object as at ``frames[-1]``."""
    nodes = list(nodes)
    for frame in frames:
        if not any(contains(source, frame.statement, node) for node in nodes) \
                and not rebound(key, bound_keys([frame.statement])):
            return frame
    return None


def jumps_out(nodes: Iterable[cst.CSTNode]) -> bool:
    """Can control leave ``nodes`` other than by falling through: a ``return``, ``raise``,
    ``yield``, or a ``break``/``continue`` of a loop outside them?"""
    for root in nodes:
        stack: list[tuple[cst.CSTNode, bool]] = [(root, False)]
        while stack:
            node, in_loop = stack.pop()
            if isinstance(node, SCOPES):
                continue
            if isinstance(node, (cst.Return, cst.Raise, cst.Yield)):
                return True
            if isinstance(node, (cst.Break, cst.Continue)) and not in_loop:
                return True
            inner = in_loop or isinstance(node, LOOPS)
            if isinstance(node, LOOPS):  # a loop's else runs outside it
                stack.extend((child, True) for child in child_nodes(node) if child is not node.orelse)
                if node.orelse is not None:
                    stack.append((node.orelse, in_loop))
            else:
                stack.extend((child, inner) for child in child_nodes(node))
    return False


# -- text -------------------------------------------------------------------------------------

def newline_of(source: SourceModule) -> str:
    return source.module.default_newline


def lines_of(source: SourceModule) -> list[str]:
    return split_lines(source.text, keepends=True)


def last_line(span: Span) -> int:
    """The last line a span covers (one ending at the start of a line does not cover it)."""
    return span.end_line - 1 if span.end_column == 1 and span.end_line > span.line else span.end_line


def indent_of(source: SourceModule, node: cst.CSTNode) -> str | None:
    """The indentation of the line ``node`` starts on, when ``node`` is the first thing on it."""
    span = source.span_of(node)
    line = split_lines(source.text)[span.line - 1]
    prefix = line[:span.column - 1]
    return prefix if not prefix.strip() else None


def first_line_node(statement: cst.CSTNode) -> cst.CSTNode:
    """The node on ``statement``'s first line: its first decorator for a decorated ``def`` or
    ``class`` (whose own span starts at the keyword), else itself."""
    decorators = getattr(statement, "decorators", None)
    return decorators[0] if decorators else statement


def insert_before(source: SourceModule, statement: cst.CSTNode, code: Sequence[str]) -> Edit | None:
    """Lines of ``code`` inserted above ``statement`` (above its decorators), at its indentation."""
    statement = first_line_node(statement)
    indent = indent_of(source, statement)
    if indent is None:
        return None
    line = source.span_of(statement).line
    newline = newline_of(source)
    return Edit(Span(line, 1, line, 1), "".join(f"{indent}{text}{newline}" for text in code))


def insert_after(source: SourceModule, statement: cst.CSTNode, code: Sequence[str]) -> Edit | None:
    """Lines of ``code`` inserted below ``statement`` (its last line), at its indentation."""
    indent = indent_of(source, first_line_node(statement))
    if indent is None:
        return None
    end = source.span_of(statement).end_line
    lines = split_lines(source.text, keepends=True)
    newline = newline_of(source)
    text = "".join(f"{indent}{line}{newline}" for line in code)
    if end >= len(lines):  # the last line of the file
        last = lines[-1]
        if last.endswith(("\n", "\r")):
            return Edit(Span(end + 1, 1, end + 1, 1), text)
        return Edit(Span(end, len(last) + 1, end, len(last) + 1), newline + text.rstrip("\r\n"))
    return Edit(Span(end + 1, 1, end + 1, 1), text)


def string_continuation_lines(text: str) -> set[int] | None:
    """The 1-based lines that begin inside a string literal (the second and later lines of a
    multi-line string); None when the text does not tokenize."""
    inside: set[int] = set()
    depth, start = 0, 0
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                inside.update(range(token.start[0] + 1, token.end[0] + 1))
            elif fstring_start is not None and token.type == fstring_start:
                if depth == 0:
                    start = token.start[0]
                depth += 1
            elif fstring_end is not None and token.type == fstring_end:
                depth -= 1
                if depth == 0 and token.end[0] > start:
                    inside.update(range(start + 1, token.end[0] + 1))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return inside


_STRING_LINES: "weakref.WeakKeyDictionary[SourceModule, set[int] | None]" = weakref.WeakKeyDictionary()


def reindented(source: SourceModule, first: int, last: int, unit: str) -> str | None:
    """Lines ``first``..``last`` (1-based, with their line ends) with ``unit`` put in front of
    each one that holds code or a comment, except lines that begin inside a string; None when
    the file cannot be tokenized."""
    if source not in _STRING_LINES:
        _STRING_LINES[source] = string_continuation_lines(source.text)
    in_string = _STRING_LINES[source]
    if in_string is None:
        return None
    lines = split_lines(source.text, keepends=True)
    return "".join(line if not line.strip() or number in in_string else unit + line
                   for number, line in enumerate(lines[first - 1:last], start=first))


def indent_unit(source: SourceModule, indent: str = "") -> str:
    """One more level of indentation below ``indent``, in the file's own style (a tab below a
    tab-indented line even in a file indented with spaces, and the other way round)."""
    unit = source.module.default_indent
    if not unit or unit.strip():
        unit = "    "
    if "\t" in indent and "\t" not in unit:
        return "\t"
    if indent and "\t" not in indent and "\t" in unit:
        return "    "
    return unit


def fresh_name(taken: set[str], base: str) -> str:
    """``base``, or ``base_1``, ``base_2``, ... : the first one not in ``taken``."""
    if base not in taken:
        return base
    number = 1
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"


def names_in(node: cst.CSTNode) -> set[str]:
    """Every name the code of ``node`` mentions, nested scopes included."""
    return {n.value for n in walk(node, into_scopes=True) if isinstance(n, cst.Name)}


def merge_edits(edits: Sequence[Edit]) -> tuple[Edit, ...]:
    """Edits in order of position, where an insertion at the very place another edit starts is
    joined with it (the insertion first): the fix machinery orders edits only by position."""
    merged: list[Edit] = []
    for edit in sorted(edits, key=lambda e: (e.span.line, e.span.column, e.span.end_line, e.span.end_column)):
        previous = merged[-1] if merged else None
        if previous is not None and (previous.span.line, previous.span.column) == (edit.span.line, edit.span.column) \
                and (previous.span.end_line, previous.span.end_column) == (previous.span.line, previous.span.column):
            merged[-1] = Edit(edit.span, previous.content + edit.content)
        else:
            merged.append(edit)
    return tuple(merged)


def _line_end(text: str) -> str:
    return text[len(text.rstrip("\r\n")):]


def wrap_in_with(source: SourceModule, statement: cst.CSTNode, header: str) -> Edit | None:
    """``statement`` (with its decorators) moved into ``with <header>:`` at its place."""
    first = first_line_node(statement)
    indent = indent_of(source, first)
    if indent is None:
        return None
    start, end = source.span_of(first), source.span_of(statement)
    end_line = last_line(end)
    lines = lines_of(source)
    body = reindented(source, start.line, end_line, indent_unit(source, indent))
    if body is None:
        return None
    newline = _line_end(lines[start.line - 1]) or newline_of(source)
    content = f"with {header}:{newline}{body}"
    content = content[:len(content) - len(_line_end(content))]
    return Edit(Span(start.line, start.column, end_line, len(lines[end_line - 1].rstrip("\r\n")) + 1),
                content)


def cell_lines(source: SourceModule, line: int) -> tuple[int, int]:
    """The lines ``first``..``last`` of the notebook cell that holds ``line`` (the joined module
    ends each cell with a ``CELL_END`` line); the whole text outside a notebook."""
    lines = lines_of(source)
    if not source.path.endswith(".ipynb"):
        return 1, len(lines)
    markers = [number for number, text in enumerate(lines, start=1) if text.rstrip("\r\n") == CELL_END]
    first = max((n for n in markers if n < line), default=0) + 1
    last = min((n for n in markers if n >= line), default=len(lines) + 1) - 1
    return first, last


def _within_cell(source: SourceModule, line: int, statements: list[cst.CSTNode]) -> list[cst.CSTNode]:
    """In a notebook, the module-level ``statements`` up to the end of the cell that holds ``line``."""
    last = cell_lines(source, line)[1]
    return [s for s in statements if source.span_of(s).line <= last]


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
    statements = suite_of(block)
    if not isinstance(line_node, cst.SimpleStatementLine) or len(line_node.body) != 1 or statements is None:
        return None
    following = list(statements[_index(statements, line_node) + 1:])
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
    end_line = last_line(source.span_of(following[-1]))
    body = reindented(source, span.line + 1, end_line, indent_unit(source, indent))
    if body is None:
        return None
    newline = _line_end(lines[span.line - 1]) or newline_of(source)
    content = f"{indent}with {header}:{after}{newline}{body}"
    content = content[:len(content) - len(_line_end(content))]
    return Edit(Span(span.line, 1, end_line, len(lines[end_line - 1].rstrip("\r\n")) + 1), content)


def is_future_import(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and any(
        isinstance(s, cst.ImportFrom) and isinstance(s.module, cst.Name) and s.module.value == "__future__"
        for s in statement.body)


def same_cell(source: SourceModule, a: cst.CSTNode, b: cst.CSTNode) -> bool:
    """Are ``a`` and ``b`` in one cell (always, outside a notebook)?"""
    return cell_lines(source, source.span_of(a).line) == cell_lines(source, source.span_of(b).line)


def _imported_modules(statement: cst.BaseStatement) -> list[str] | None:
    """The modules a top-level import line imports from (``from torch import nn``: ``torch``),
    None when it is not an import line or a ``from __future__`` one."""
    if not isinstance(statement, cst.SimpleStatementLine):
        return None
    modules: list[str] = []
    for small in statement.body:
        if isinstance(small, cst.Import):
            modules += [cst.helpers.get_full_name_for_node(a.name) or "" for a in small.names]
        elif isinstance(small, cst.ImportFrom) and small.module is not None and not small.relative:
            name = cst.helpers.get_full_name_for_node(small.module) or ""
            if name == "__future__":
                return None
            modules.append(name)
        else:
            return None
    return modules


def import_edit(source: SourceModule, line: str, module: str, near: cst.CSTNode) -> Edit | None:
    """The import ``line`` (of ``module``) added to the module's imports: before the first import
    from ``module`` (``import torch`` above ``from torch import nn``), else below the first run
    of imports, else above the first statement after a docstring and ``from __future__``. In a
    notebook, where a fix stays in one cell: at the top of the cell that holds ``near``."""
    body = list(source.module.body)
    if source.path.endswith(".ipynb"):
        start = cell_lines(source, source.span_of(near).line)[0]
        lines = lines_of(source)
        first = next((st for st in body if source.span_of(st).line >= start
                      and lines[source.span_of(st).line - 1].strip() != MASKED_MAGIC), None)
        return insert_before(source, first, [line]) if first is not None else None
    imports = [(statement, modules) for statement in body
               if (modules := _imported_modules(statement)) is not None]
    same = next((st for st, modules in imports if any(m.split(".")[0] == module for m in modules)), None)
    if same is not None:
        return insert_before(source, same, [line])
    if imports:
        last = body.index(imports[0][0])
        while last + 1 < len(body) and _imported_modules(body[last + 1]) is not None:
            last += 1
        return insert_after(source, body[last], [line])
    first = next((st for st in body if not is_docstring(st) and not is_future_import(st)), None)
    return insert_before(source, first, [line]) if first is not None else None
