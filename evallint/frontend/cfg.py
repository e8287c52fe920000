"""Per-function control-flow graphs built from LibCST.

A graph's blocks hold *steps*: the simple statements and the parts of compound statements that
evaluate expressions (an ``if`` test, a ``for`` loop's iterable and target, a ``with`` item), each
tagged with its enclosing loops and its innermost ``with``/decorator region. The module body is a
function too. Nested functions and methods get graphs of their own; class bodies only contribute
their methods. What the steps *mean* is the analysis layer's business, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator, Sequence, Union

import libcst as cst

from evallint.frontend.names import dotted_name

FunctionNode = Union[cst.FunctionDef, cst.Module]


class StepKind(Enum):
    STATEMENT = "statement"  # a small statement: assignment, expression, return, raise, ...
    TEST = "test"  # the condition of if/elif/while, a match subject or a case guard
    LOOP_ITER = "loop_iter"  # a for loop's iterable, evaluated once before the loop
    LOOP_BIND = "loop_bind"  # a for loop's target, bound at the start of every iteration
    WITH_ITEM = "with_item"  # a with item: its context expression and ``as`` target
    WITH_EXIT = "with_exit"  # the end of a with block (the node is the With statement)


@dataclass(eq=False)
class Loop:
    node: cst.For | cst.While
    parent: "Loop | None"

    def chain(self) -> tuple["Loop", ...]:
        """This loop and its enclosing loops, outermost first."""
        loops: list[Loop] = []
        loop: Loop | None = self
        while loop is not None:
            loops.append(loop)
            loop = loop.parent
        return tuple(reversed(loops))


@dataclass(eq=False)
class Region:
    """A lexical region that may change the grad state: a ``with`` statement or a decorated def."""

    items: tuple[cst.BaseExpression, ...]  # context expressions, or decorator expressions
    node: cst.With | cst.FunctionDef
    parent: "Region | None"
    is_decorator: bool = False


@dataclass(eq=False)
class Step:
    kind: StepKind
    node: cst.CSTNode
    loop: Loop | None
    region: Region | None
    # For LOOP_BIND: the iterable; for WITH_ITEM: the WithItem (the node is its expression);
    # for the TEST of an if/while (statement or ``a if c else b``): that whole statement.
    extra: cst.CSTNode | None = None
    order: int = 0  # position in source order within the function

    @property
    def loops(self) -> tuple[Loop, ...]:
        return self.loop.chain() if self.loop is not None else ()


@dataclass(frozen=True)
class Condition:
    """An edge taken when ``test`` evaluated to ``value``."""

    test: cst.BaseExpression
    value: bool


@dataclass(eq=False)
class Block:
    index: int
    steps: list[Step] = field(default_factory=list)
    successors: list[tuple["Block", Condition | None]] = field(default_factory=list)
    has_predecessors: bool = False

    def link(self, target: "Block", condition: Condition | None = None) -> None:
        if all(existing is not target or cond != condition for existing, cond in self.successors):
            self.successors.append((target, condition))
            target.has_predecessors = True


@dataclass(eq=False)
class FunctionGraph:
    """The control-flow graph of one function (or of the module body)."""

    name: str  # qualified within the module: "train", "Trainer.fit", "<module>"
    node: FunctionNode
    class_name: str | None
    parent: "FunctionGraph | None"
    blocks: list[Block]
    entry: Block
    exit: Block  # normal return
    raise_exit: Block  # an exception leaves the function
    region: Region | None  # decorators of the function
    global_names: frozenset[str] = frozenset()

    @property
    def is_module(self) -> bool:
        return isinstance(self.node, cst.Module)

    @property
    def params(self) -> list[cst.Param]:
        if isinstance(self.node, cst.Module):
            return []
        p = self.node.params
        return [*p.posonly_params, *p.params,
                *([p.star_arg] if isinstance(p.star_arg, cst.Param) else []),
                *p.kwonly_params, *([p.star_kwarg] if p.star_kwarg else [])]

    @property
    def param_names(self) -> list[str]:
        return [param.name.value for param in self.params]

    def steps(self) -> Iterator[Step]:
        for block in self.blocks:
            yield from block.steps


@dataclass
class ModuleGraphs:
    functions: list[FunctionGraph]
    classes: dict[str, cst.ClassDef]  # qualified name in module -> node


def build_graphs(module: cst.Module) -> ModuleGraphs:
    """Graphs of the module body and of every function and method in it."""
    collected: list[FunctionGraph] = []
    classes: dict[str, cst.ClassDef] = {}
    _GraphBuilder(module, "<module>", None, None, None, collected, classes).build()
    return ModuleGraphs(collected, classes)


@dataclass
class _Jumps:
    """Where break/continue go, and which finally bodies a jump must run on the way."""

    break_to: Block | None = None
    continue_to: Block | None = None
    handlers: list[Block] = field(default_factory=list)  # innermost last
    # Pending finally bodies, innermost last, each with the loop depth it belongs to.
    # Bodies to run when leaving early: finally suites, or a With whose exit step must run.
    finallies: list[tuple[Sequence[cst.BaseStatement] | cst.With, int]] = field(default_factory=list)
    loop_depth: int = 0


class _GraphBuilder:
    def __init__(self, node: FunctionNode, name: str, class_name: str | None,
                 parent: FunctionGraph | None, region: Region | None,
                 out: list[FunctionGraph], classes: dict[str, cst.ClassDef]) -> None:
        self.node = node
        self.name = name
        self.class_name = class_name
        self.parent = parent
        self.out = out
        self.classes = classes
        self.blocks: list[Block] = []
        self.loop: Loop | None = None
        self.region = region
        self.jumps = _Jumps()
        self.global_names: set[str] = set()
        self.nested: list[tuple[cst.FunctionDef, str, str | None]] = []
        self.step_order: list[cst.CSTNode] = []

    def new_block(self) -> Block:
        block = Block(len(self.blocks))
        self.blocks.append(block)
        return block

    def build(self) -> FunctionGraph:
        entry = self.new_block()
        exit_block = Block(-1)
        raise_exit = Block(-2)
        self.exit, self.raise_exit = exit_block, raise_exit
        graph = FunctionGraph(self.name, self.node, self.class_name, self.parent, self.blocks,
                              entry, exit_block, raise_exit, self.region)
        self.out.append(graph)
        body = self.node.body if isinstance(self.node, cst.Module) else _suite(self.node.body)
        end = self.statements(body, entry)
        if end is not None:
            end.link(exit_block)
        exit_block.index = len(self.blocks)
        self.blocks.append(exit_block)
        raise_exit.index = len(self.blocks)
        self.blocks.append(raise_exit)
        graph.global_names = frozenset(self.global_names)
        for func, name, class_name in self.nested:
            _GraphBuilder(func, name, class_name, graph, _decorator_region(func), self.out,
                          self.classes).build()
        return graph

    # -- statements -------------------------------------------------------------------------

    def statements(self, body: Sequence[cst.BaseStatement], block: Block | None) -> Block | None:
        for statement in body:
            if block is None:
                return None  # unreachable code after return/raise/break/continue
            block = self.statement(statement, block)
        return block

    def add(self, block: Block, kind: StepKind, node: cst.CSTNode,
            extra: cst.CSTNode | None = None) -> None:
        block.steps.append(Step(kind, node, self.loop, self.region, extra, len(self.step_order)))
        self.step_order.append(node)

    def may_raise(self, block: Block) -> Block:
        """Inside a try: the handlers can see the state here; later steps go in a new block."""
        if not self.jumps.handlers:
            return block
        block.link(self.jumps.handlers[-1])
        following = self.new_block()
        block.link(following)
        return following

    def statement(self, node: cst.BaseStatement, block: Block) -> Block | None:
        block = self.may_raise(block)
        if isinstance(node, cst.SimpleStatementLine):
            for small in node.body:
                result = self.small_statement(small, block)
                if result is None:
                    return None
                block = result
            return self.may_raise(block)
        handler = getattr(self, f"stmt_{type(node).__name__}", None)
        if handler is None:
            raise NotImplementedError(f"statement {type(node).__name__}")
        return handler(node, block)

    def small_statement(self, node: cst.BaseSmallStatement, block: Block) -> Block | None:
        if isinstance(node, (cst.Global, cst.Nonlocal)):
            self.global_names.update(n.name.value for n in node.names)
            return block
        if isinstance(node, cst.Pass):
            return block
        if isinstance(node, cst.Expr) and isinstance(node.value, cst.IfExp):
            return self.conditional_expression(node.value, block)
        self.add(block, StepKind.STATEMENT, node)
        if isinstance(node, cst.Return):
            self.run_finallies(block, 0, self.exit)
            return None
        if isinstance(node, cst.Raise) or _ends_the_program(node):
            if self.jumps.handlers:
                block.link(self.jumps.handlers[-1])
            else:
                self.run_finallies(block, 0, self.raise_exit)
            return None
        if isinstance(node, cst.Break):
            self.run_finallies(block, self.jumps.loop_depth, self.jumps.break_to)
            return None
        if isinstance(node, cst.Continue):
            self.run_finallies(block, self.jumps.loop_depth, self.jumps.continue_to)
            return None
        return block

    def conditional_expression(self, node: cst.IfExp, block: Block) -> Block:
        """``a() if test else b()`` as a statement branches like ``if``, so that the test
        correlates with later tests of the same condition (``model.train() if phase == ...``)."""
        self.add(block, StepKind.TEST, node.test, node)
        after = self.new_block()
        for value, branch in ((True, node.body), (False, node.orelse)):
            start = self.new_block()
            block.link(start, Condition(node.test, value))
            end = self.small_statement(cst.Expr(value=branch), start)
            if end is not None:
                end.link(after)
        return after

    def run_finallies(self, block: Block, depth: int, target: Block | None) -> None:
        """Leave through every pending finally body deeper than ``depth``, then go to target."""
        pending = [body for body, level in self.jumps.finallies if level >= depth]
        saved = self.jumps.finallies
        current: Block | None = block
        for index, body in enumerate(reversed(pending)):
            self.jumps.finallies = saved[: len(saved) - index - 1]
            if isinstance(body, cst.With):
                if current is not None:
                    self.add(current, StepKind.WITH_EXIT, body)
            else:
                current = self.statements(body, current)
        self.jumps.finallies = saved
        if current is not None and target is not None:
            current.link(target)

    def stmt_If(self, node: cst.If, block: Block) -> Block | None:
        self.add(block, StepKind.TEST, node.test, node)
        body = self.new_block()
        block.link(body, Condition(node.test, True))
        after = self.new_block()
        end = self.statements(_suite(node.body), body)
        if end is not None:
            end.link(after)
        orelse = self.new_block()
        block.link(orelse, Condition(node.test, False))
        if isinstance(node.orelse, cst.If):
            end = self.stmt_If(node.orelse, orelse)
        elif isinstance(node.orelse, cst.Else):
            end = self.statements(_suite(node.orelse.body), orelse)
        else:
            end = orelse
        if end is not None:
            end.link(after)
        return after if after.has_predecessors else None

    def loop_body(self, node: cst.For | cst.While, head: Block, after: Block,
                  entry: Block | None = None) -> None:
        saved_loop, saved_jumps = self.loop, self.jumps
        self.loop = Loop(node, saved_loop)
        self.jumps = _Jumps(after, head, saved_jumps.handlers, saved_jumps.finallies,
                            saved_jumps.loop_depth + 1)
        body = self.new_block()
        if isinstance(node, cst.While):
            self.add(head, StepKind.TEST, node.test, node)
            head.link(body, Condition(node.test, True))
        else:
            self.add(body, StepKind.LOOP_BIND, node.target, extra=node.iter)
            head.link(body)
            if _runs_at_least_once(node.iter):
                entry.link(body)
        end = self.statements(_suite(node.body), body)
        if end is not None:
            end.link(head)
        self.loop, self.jumps = saved_loop, saved_jumps

    def stmt_For(self, node: cst.For, block: Block) -> Block | None:
        self.add(block, StepKind.LOOP_ITER, node.iter)
        head = self.new_block()
        if not _runs_at_least_once(node.iter):
            block.link(head)
        after = self.new_block()
        self.loop_body(node, head, after, entry=block)
        return self.loop_else(node, head, after, None)

    def stmt_While(self, node: cst.While, block: Block) -> Block | None:
        head = self.new_block()
        block.link(head)
        after = self.new_block()
        self.loop_body(node, head, after)
        always = isinstance(node.test, (cst.Name, cst.Integer)) and \
            getattr(node.test, "value", None) in ("True", "1")
        return self.loop_else(node, head, after, None if always else Condition(node.test, False))

    def loop_else(self, node: cst.For | cst.While, head: Block, after: Block,
                  exhausted: Condition | None) -> Block | None:
        if isinstance(node, cst.While) and exhausted is None:
            return after if after.has_predecessors else None
        orelse = self.new_block()
        head.link(orelse, exhausted)
        end = self.statements(_suite(node.orelse.body), orelse) if node.orelse else orelse
        if end is not None:
            end.link(after)
        return after if after.has_predecessors else None

    def stmt_With(self, node: cst.With, block: Block) -> Block | None:
        for item in node.items:
            self.add(block, StepKind.WITH_ITEM, item.item, extra=item)
        saved = self.region
        self.region = Region(tuple(item.item for item in node.items), node, saved)
        self.jumps.finallies.append((node, self.jumps.loop_depth))
        end = self.statements(_suite(node.body), block)
        self.jumps.finallies.pop()
        self.region = saved
        if end is not None:
            self.add(end, StepKind.WITH_EXIT, node)
        return end

    def stmt_Try(self, node: cst.Try | cst.TryStar, block: Block) -> Block | None:
        after = self.new_block()
        dispatch = self.new_block()
        saved = self.jumps
        finally_body = _suite(node.finalbody.body) if node.finalbody else None
        inner = _Jumps(saved.break_to, saved.continue_to, [*saved.handlers, dispatch],
                       list(saved.finallies), saved.loop_depth)
        if finally_body is not None:
            inner.finallies.append((finally_body, saved.loop_depth))
        self.jumps = inner
        body = self.new_block()
        block.link(body)
        end = self.statements(_suite(node.body), body)
        # Handlers and else run outside the try's own handlers but inside its finally.
        self.jumps = _Jumps(saved.break_to, saved.continue_to, list(saved.handlers),
                            inner.finallies, saved.loop_depth)
        if end is not None and node.orelse is not None:
            else_block = self.new_block()  # a new block: the try's exception edges end before it
            end.link(else_block)
            end = self.statements(_suite(node.orelse.body), else_block)
        normal_ends = [end] if end is not None else []
        catches_all = False
        for handler in node.handlers:
            handler_block = self.new_block()
            dispatch.link(handler_block)
            if handler.type is None or _is_broad_exception(handler.type):
                catches_all = True
            handler_end = self.statements(_suite(handler.body), handler_block)
            if handler_end is not None:
                normal_ends.append(handler_end)
        if not catches_all:
            # An exception no handler catches runs the finally body and propagates.
            unhandled = self.new_block()
            dispatch.link(unhandled)
            self.jumps = saved
            target = saved.handlers[-1] if saved.handlers else self.raise_exit
            if finally_body is not None:
                unhandled = self.statements(finally_body, unhandled)
            if unhandled is not None:
                unhandled.link(target)
        self.jumps = saved
        for end_block in normal_ends:
            end_block.link(after)
        if finally_body is not None:
            if not normal_ends:
                return None
            return self.statements(finally_body, after)
        return after if normal_ends else None

    stmt_TryStar = stmt_Try

    def stmt_Match(self, node: cst.Match, block: Block) -> Block | None:
        self.add(block, StepKind.TEST, node.subject)
        after = self.new_block()
        irrefutable = False
        for case in node.cases:
            case_block = self.new_block()
            block.link(case_block)
            if case.guard is not None:
                self.add(case_block, StepKind.TEST, case.guard)
            elif isinstance(case.pattern, cst.MatchAs) and case.pattern.pattern is None:
                irrefutable = True
            end = self.statements(_suite(case.body), case_block)
            if end is not None:
                end.link(after)
        if not irrefutable:
            block.link(after)
        return after if after.has_predecessors else None

    def stmt_FunctionDef(self, node: cst.FunctionDef, block: Block) -> Block:
        self.add(block, StepKind.STATEMENT, node)
        prefix = "" if self.name == "<module>" else f"{self.name}.<locals>."
        self.nested.append((node, f"{prefix}{node.name.value}", None))
        return block

    def stmt_ClassDef(self, node: cst.ClassDef, block: Block) -> Block:
        self.add(block, StepKind.STATEMENT, node)
        prefix = "" if self.name == "<module>" else f"{self.name}.<locals>."
        self.add_class(node, f"{prefix}{node.name.value}")
        return block

    def add_class(self, node: cst.ClassDef, class_name: str) -> None:
        self.classes[class_name] = node
        for statement in _suite(node.body):
            if isinstance(statement, cst.FunctionDef):
                self.nested.append((statement, f"{class_name}.{statement.name.value}", class_name))
            elif isinstance(statement, cst.ClassDef):
                self.add_class(statement, f"{class_name}.{statement.name.value}")


# Calls that never return (they raise SystemExit, or end the process).
NO_RETURN_CALLS = frozenset({"exit", "quit", "sys.exit", "os._exit", "os.abort"})


def _ends_the_program(node: cst.BaseSmallStatement) -> bool:
    """``sys.exit(0)``, ``exit()``, ``quit()`` as a statement: control does not go on."""
    return isinstance(node, cst.Expr) and isinstance(node.value, cst.Call) \
        and dotted_name(node.value.func) in NO_RETURN_CALLS


def _suite(body: cst.BaseSuite) -> Sequence[cst.BaseStatement]:
    if isinstance(body, cst.IndentedBlock):
        return body.body
    return [cst.SimpleStatementLine(body=body.body)]  # type: ignore[union-attr]


def _runs_at_least_once(iterable: cst.BaseExpression) -> bool:
    """A for loop is taken to run at least once (unless it iterates an empty literal): the
    paths that skip a training or evaluation loop entirely only blur what the loop does, e.g.
    ``for m in models.values(): m.eval()`` must leave every model in eval mode."""
    if isinstance(iterable, (cst.List, cst.Tuple, cst.Set, cst.Dict)):
        return bool(iterable.elements)
    return True


def _is_broad_exception(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value in ("BaseException", "Exception")


def _decorator_region(func: cst.FunctionDef) -> Region | None:
    if not func.decorators:
        return None
    return Region(tuple(d.decorator for d in func.decorators), func, None, is_decorator=True)

