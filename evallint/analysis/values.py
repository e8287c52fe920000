"""Where forward inputs come from and where their results go.

Results are followed along the control flow by reaching definitions. A forward whose result reaches a ``backward()`` or ``torch.autograd.grad`` is part of a gradient
computation (``results_reaching``, read by ``FunctionAnalysis.reaches_backward``), and one run on
a dummy tensor to read its output shape is a shape probe (``shape_probes``): neither is an
inference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.keys import head, key_of
from evallint.analysis.ops import Call, Forward, Op
from evallint.frontend.cfg import Step, StepKind
from evallint.frontend.names import names_read
from evallint.frontend.nodes import child_nodes

if TYPE_CHECKING:
    from evallint.analysis.interpret import FunctionOps
    from evallint.analysis.module import ModuleContext

# ``values.append(v)``: the container now holds ``v``.
MUTATING_METHODS = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "put"})


class _Definition:
    """``target = value`` at ``step``; ``weak`` for ``d[k] = v`` and ``xs.append(v)`` (they add
    to what the variable held rather than replace it)."""

    __slots__ = ("name", "step", "value", "weak")

    def __init__(self, name: str, step: Step, value: cst.CSTNode, weak: bool) -> None:
        self.name, self.step, self.value, self.weak = name, step, value, weak


def _definitions(step: Step) -> list[_Definition]:
    node = step.node
    pairs: list[tuple[cst.CSTNode, cst.CSTNode]] = []
    if step.kind is StepKind.LOOP_BIND and step.extra is not None:
        pairs.append((node, step.extra))
    elif step.kind is StepKind.WITH_ITEM and isinstance(step.extra, cst.WithItem) \
            and step.extra.asname is not None:
        pairs.append((step.extra.asname.name, step.extra.item))
    elif isinstance(node, cst.Assign):
        pairs.extend((target.target, node.value) for target in node.targets)
    elif isinstance(node, (cst.AnnAssign, cst.AugAssign)) and node.value is not None:
        pairs.append((node.target, node.value))
    elif isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
        func = node.value.func
        if isinstance(func, cst.Attribute) and func.attr.value in MUTATING_METHODS:
            return [_Definition(name, step, node.value, True) for name in names_read(func.value)]
    found = []
    for target, value in pairs:
        weak = not isinstance(target, (cst.Name, cst.Tuple, cst.List)) or isinstance(node, cst.AugAssign)
        found.extend(_Definition(name, step, value, weak) for name in _target_names(target))
    return found


def _reaching_definitions(graph) -> dict[Step, dict[str, frozenset[_Definition]]]:
    """For every step, the definitions of each variable that reach it (a forward dataflow)."""
    definitions = {step: _definitions(step) for step in graph.steps()}
    predecessors: dict[object, list[object]] = {}
    for block in graph.blocks:
        for target, _ in block.successors:
            predecessors.setdefault(target, []).append(block)
    entry_state: dict[object, dict[str, frozenset[_Definition]]] = {}
    exit_state: dict[object, dict[str, frozenset[_Definition]]] = {}

    def run(block, state: dict[str, frozenset[_Definition]], record: dict | None):
        state = dict(state)
        for step in block.steps:
            if record is not None:
                record[step] = state
            for definition in definitions[step]:
                previous = state.get(definition.name, frozenset()) if definition.weak else frozenset()
                state = {**state, definition.name: previous | {definition}}
        return state

    pending = list(graph.blocks)
    while pending:
        block = pending.pop(0)
        merged: dict[str, frozenset[_Definition]] = {}
        for pred in predecessors.get(block, ()):
            for name, defs in exit_state.get(pred, {}).items():
                merged[name] = merged.get(name, frozenset()) | defs
        entry_state[block] = merged
        out = run(block, merged, None)
        if out != exit_state.get(block):
            exit_state[block] = out
            pending.extend(target for target, _ in block.successors if target not in pending)
    reaching: dict[Step, dict[str, frozenset[_Definition]]] = {}
    for block in graph.blocks:
        run(block, entry_state.get(block, {}), reaching)
    return reaching


def results_reaching(ops: "FunctionOps", sinks: list[Op]) -> frozenset[Op]:
    """The forward ops, and calls of project functions, whose results reach the ``sinks`` ops along
    the control flow: through the definitions of variables that reach each use (a name reused by a
    later loop does not link)."""
    forwards = {op.node: op for op in ops.all()
                if isinstance(op, Forward) or (isinstance(op, Call) and op.phase == "call")}
    if not forwards or not sinks:
        return frozenset()
    reaching = _reaching_definitions(ops.graph)
    found: set[Op] = set()
    seen: set[int] = set()
    pending: list[tuple[cst.CSTNode, Step]] = [(op.node, op.step) for op in sinks]
    while pending:
        node, step = pending.pop()
        stack = [node]
        while stack:
            current = stack.pop()
            if current in forwards:
                found.add(forwards[current])
            stack.extend(child_nodes(current))
        at_step = reaching.get(step, {})
        for name in names_read(node):
            for definition in at_step.get(name, ()):
                if id(definition) not in seen:
                    seen.add(id(definition))
                    pending.append((definition.value, definition.step))
    return frozenset(found)


def _target_names(target: cst.CSTNode) -> list[str]:
    """The variables an assignment target writes (``d[k] = v`` and ``obj.x = v`` write the head)."""
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in _target_names(el.value)]
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    if isinstance(target, cst.Name):
        return [target.value]
    key = key_of(target) if isinstance(target, cst.BaseExpression) else None
    if key is not None:
        return [head(key)]
    if isinstance(target, (cst.Subscript, cst.Attribute)):
        return list(names_read(target.value))
    return []


def results_used(ops: "FunctionOps", forwards: list[Op]) -> frozenset[Op]:
    """The forwards whose result is read: by the statement that holds them (``print(model(x))``,
    ``acc = (model(x).argmax(1) == y)``), or, through the variable they are stored in, by a step
    that this definition reaches. ``out = model(x)`` on a path where ``out`` is never read again
    is not."""
    reaching = _reaching_definitions(ops.graph)
    read: set[tuple[str, Step]] = set()
    for step, state in reaching.items():
        for name in _names_used(step):
            read.update((d.name, d.step) for d in state.get(name, ()))
    found: set[Op] = set()
    for op in forwards:
        holders = [d for d in _definitions(op.step) if not d.weak and _contains(d.value, op.node)]
        if not holders or any((d.name, d.step) in read for d in holders):
            found.add(op)
    return frozenset(found)


def _names_used(step: Step) -> set[str]:
    """The variables a step reads (not the ones it only assigns)."""
    node = step.node
    if step.kind is StepKind.WITH_EXIT or isinstance(node, cst.BaseCompoundStatement):
        return set()  # leaving a ``with`` block reads nothing of its body
    if step.kind is StepKind.LOOP_BIND:
        return names_read(step.extra) if step.extra is not None else set()
    if step.kind is StepKind.WITH_ITEM and isinstance(step.extra, cst.WithItem):
        return names_read(step.extra.item)
    if isinstance(node, (cst.Assign, cst.AnnAssign)):
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        used = names_read(node.value) if node.value is not None else set()
        for target in targets:  # ``d[k] = v`` and ``x.a = v`` read ``d``/``k`` and ``x``
            if not isinstance(target, (cst.Name, cst.Tuple, cst.List)):
                used |= names_read(target)
        return used
    return names_read(node)


def _contains(tree: cst.CSTNode, node: cst.CSTNode) -> bool:
    stack = [tree]
    while stack:
        current = stack.pop()
        if current is node:
            return True
        stack.extend(child_nodes(current))
    return False


def shape_probes(context: "ModuleContext", ops: "FunctionOps") -> frozenset[Forward]:
    """Forwards run only to learn an output size: ``model(x).shape``, or a forward on a dummy
    tensor (``torch.zeros(...)``) in ``__init__`` or a helper named for shapes and sizes."""
    forwards = [op for op in ops.all() if isinstance(op, Forward)]
    if not forwards:
        return frozenset()
    probes: set[Forward] = set()
    name = ops.graph.name.rpartition(".")[2]
    if name == "__init__" or torch_api.SHAPE_HELPER_NAME.search(name):
        dummies = {key for key, value in _assigned_values(ops) if _is_dummy_tensor(context, value)}
        for op in forwards:
            call = op.node
            if isinstance(call, cst.Call) and any(
                    _is_dummy_tensor(context, arg.value) or key_of(arg.value) in dummies
                    for arg in call.args):
                probes.add(op)
    by_call = {op.node: op for op in forwards}
    for step in ops.graph.steps():
        stack = [step.node]
        while stack:
            current = stack.pop()
            if isinstance(current, cst.Attribute) and current.attr.value in torch_api.SHAPE_ATTRIBUTES \
                    and current.value in by_call:
                probes.add(by_call[current.value])
            stack.extend(child_nodes(current))
    return frozenset(probes)


def _assigned_values(ops: "FunctionOps"):
    for step in ops.graph.steps():
        node = step.node
        if isinstance(node, cst.Assign):
            for target in node.targets:
                key = key_of(target.target)
                if key is not None:
                    yield key, node.value


def _is_dummy_tensor(context: "ModuleContext", node: cst.BaseExpression) -> bool:
    """``torch.zeros(1, 3, 224, 224)`` and the like, possibly moved: ``.to(device)``, ``.cuda()``."""
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
            and node.func.attr.value in torch_api.SELF_RETURNING_METHODS:
        node = node.func.value
    return isinstance(node, cst.Call) and context.qualify(node.func) in torch_api.DUMMY_TENSORS
