"""Where forward inputs come from and where their results go, flow-insensitively.

A forward whose result reaches a ``backward()`` or ``torch.autograd.grad`` is part of a gradient
computation, and one run on a dummy tensor to read its output shape is a shape probe: neither is
an inference (``FunctionAnalysis.feeds_gradient``, ``FunctionAnalysis.is_shape_probe``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.keys import head, key_of
from evallint.analysis.ops import Backward, Forward, GradientUse
from evallint.frontend.cfg import StepKind
from evallint.frontend.names import names_read
from evallint.frontend.nodes import child_nodes

if TYPE_CHECKING:
    from evallint.analysis.interpret import FunctionOps
    from evallint.analysis.module import ModuleContext

# ``values.append(v)``: the container now holds ``v``.
MUTATING_METHODS = frozenset({"append", "extend", "insert", "add", "update", "setdefault", "put"})


def forwards_reaching_gradients(ops: "FunctionOps") -> frozenset[Forward]:
    """The forward ops whose results flow (through variables) into a backward or autograd.grad."""
    sinks = [op.node for op in ops.all() if isinstance(op, Backward)
             or (isinstance(op, GradientUse) and isinstance(op.node, cst.Call))]
    return forwards_reaching(ops, sinks)


def forwards_reaching(ops: "FunctionOps", sinks: list[cst.CSTNode]) -> frozenset[Forward]:
    forwards = {op.node: op for op in ops.all() if isinstance(op, Forward)}
    if not forwards or not sinks:
        return frozenset()
    feeds: dict[str, set[object]] = {}  # variable -> the variables and forwards its value comes from

    def sources(node: cst.CSTNode) -> set[object]:
        found: set[object] = set()
        stack = [node]
        while stack:
            current = stack.pop()
            if current in forwards:
                found.add(forwards[current])
            if isinstance(current, cst.Name):
                found.add(current.value)
            stack.extend(child_nodes(current))
        return found

    def flow(target: cst.CSTNode, value: cst.CSTNode) -> None:
        from_value = sources(value)
        for name in _target_names(target):
            feeds.setdefault(name, set()).update(from_value)

    for step in ops.graph.steps():
        node = step.node
        if step.kind is StepKind.LOOP_BIND and step.extra is not None:
            flow(node, step.extra)
        elif step.kind is StepKind.WITH_ITEM and isinstance(step.extra, cst.WithItem) \
                and step.extra.asname is not None:
            flow(step.extra.asname.name, step.extra.item)
        elif isinstance(node, cst.Assign):
            for target in node.targets:
                flow(target.target, node.value)
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign)) and node.value is not None:
            flow(node.target, node.value)
        elif isinstance(node, cst.Expr) and isinstance(node.value, cst.Call):
            func = node.value.func
            if isinstance(func, cst.Attribute) and func.attr.value in MUTATING_METHODS:
                flow(func.value, node.value)
    reached: set[object] = set()
    pending: list[object] = [s for sink in sinks for s in sources(sink)]
    while pending:
        item = pending.pop()
        if item in reached:
            continue
        reached.add(item)
        if isinstance(item, str):
            pending.extend(feeds.get(item, ()))
    return frozenset(op for op in reached if isinstance(op, Forward))


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
