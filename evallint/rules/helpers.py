"""Pieces several rules share: describing where a mode came from, severity, grouping."""

from __future__ import annotations

import os
from typing import Iterable

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.dataflow import FunctionAnalysis
from evallint.analysis.file_analysis import FileAnalysis
from evallint.analysis.module import External, ModuleContext, ProjectClass
from evallint.analysis.interpret import FunctionOps, function_ops, literal_value
from evallint.analysis.ops import Bind, Forward, Mode, Op, SetMode, TrainingFlagAssigned, ValueKind
from evallint.analysis.state import Fact, Origin
from evallint.diagnostics import Severity
from evallint.frontend.cfg import Loop
from evallint.frontend.nodes import child_nodes


def display_path(context: ModuleContext) -> str:
    path = context.path
    if os.path.isabs(path):
        try:
            relative = os.path.relpath(path)
            if not relative.startswith(".."):
                return relative
        except ValueError:
            pass
    return path


def where(context: ModuleContext, node: cst.CSTNode, current: ModuleContext) -> str:
    line = context.source.span_of(node).line
    return f"line {line}" if context is current else f"{display_path(context)}:{line}"


def code_of(context: ModuleContext, node: cst.CSTNode) -> str:
    text = " ".join(context.source.code_for(node).split())  # one line, for every output format
    return text if len(text) <= 40 else text[:37] + "..."


def describe_origin(origin: Origin, current: ModuleContext) -> str:
    """``model.eval() at line 12`` or ``validate(...) at line 40 (model.eval() at utils.py:8)``."""
    text = f"`{code_of(origin.context, _call_node(origin.op))}` at {where(origin.context, origin.op.node, current)}"
    inner = origin.innermost()
    if inner is not origin:
        text += f" ({'`' + code_of(inner.context, inner.op.node) + '`'} at {where(inner.context, inner.op.node, current)})"
    return text


def _call_node(op: Op) -> cst.CSTNode:
    return op.node


def related_for(origin: Origin, note: str) -> list[tuple[ModuleContext, cst.CSTNode, str]]:
    """Related locations of a fact: the call on the way and where the mode was set."""
    related = []
    current: Origin | None = origin
    while current is not None:
        if current.via is None:
            related.append((current.context, current.op.node, note))
        else:
            related.append((current.context, current.op.node, "called here"))
        current = current.via
    return [(context.source, node, text) for context, node, text in related]


def origins(facts: Iterable[Fact], mode: Mode) -> list[Origin]:
    found = [f.origin for f in facts if f.mode is mode and f.origin is not None]
    return sorted(found, key=lambda o: (o.op.step.order, id(o.op)))


def known_origins(facts: Iterable[Fact], mode: Mode) -> list[Origin]:
    """Origins of ``mode`` that the analysis saw happen (not an unknown load)."""
    return [o for o in origins(facts, mode) if not (
        isinstance(o.innermost().op, Bind) and o.innermost().op.mode is Mode.UNKNOWN)]


def loop_group(op: Op, training_loops: set[Loop]) -> Loop | None:
    """The outermost enclosing loop that has no training step (None: the function body)."""
    for loop in op.step.loops:
        if loop not in training_loops:
            return loop
    return None


def is_mode_override(analysis: FunctionAnalysis) -> bool:
    """A ``def train(self, mode=True)`` override of an nn.Module: exempt from every rule."""
    graph = analysis.graph
    if graph.class_name is None or not graph.name.endswith(".train"):
        return False
    cls = analysis.context.class_of_graph(graph)
    return cls is not None and analysis.context.is_module_class(cls)


def linted_functions(file: FileAnalysis) -> list[FunctionAnalysis]:
    return [a for a in file.functions if not is_mode_override(a)]


def severity_for(analysis: FunctionAnalysis, key: str) -> tuple[Severity, tuple[str, ...]]:
    """Warning when the model's class is in the project and has no mode-dependent layer."""
    classes = set()
    for fa in (analysis,):
        for op in fa.ops_of(Bind):
            if op.kind is ValueKind.FRESH and op.key == key and op.model_class is not None:
                classes.add(op.model_class)
    if classes and all(isinstance(c, ProjectClass) and mode_free(c) for c in classes):
        names = ", ".join(sorted({c.qualname for c in classes}))  # type: ignore[union-attr]
        return Severity.WARNING, (
            f"{names} has no Dropout, BatchNorm or other mode-dependent layer, so this has no "
            "effect today; it will once such a layer is added",)
    return Severity.ERROR, ()


def mode_free(cls: ProjectClass, _seen: frozenset[int] = frozenset()) -> bool:
    """Does a project nn.Module class contain only layers whose behaviour ignores the mode?

    Its instance methods are read (class- and static methods build other objects); a layer that
    reads ``self.training`` itself (DropPath) depends on the mode; containers (Sequential,
    ModuleList) are judged by what is put in them.
    """
    if id(cls.node) in _seen:
        return True
    context = cls.context
    stack: list[cst.CSTNode] = [cls.node]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.FunctionDef) and _is_class_or_static(node):
            continue
        stack.extend(child_nodes(node))
        if isinstance(node, cst.Attribute) and node.attr.value == "training" \
                and isinstance(node.value, cst.Name) and node.value.value == "self":
            return False
        if not isinstance(node, cst.Call):
            continue
        symbol = context.resolve(node.func) if isinstance(node.func, (cst.Name, cst.Attribute)) else None
        if isinstance(symbol, ProjectClass):
            if context.is_module_class(symbol) and not mode_free(symbol, _seen | {id(cls.node)}):
                return False
        elif isinstance(symbol, External) and not _mode_free_layer(symbol.qualified, node):
            return False
    return True


def _is_class_or_static(func: cst.FunctionDef) -> bool:
    return any(isinstance(d.decorator, cst.Name) and d.decorator.value in ("classmethod", "staticmethod")
               for d in func.decorators)


def _mode_free_layer(qualified: str, call: cst.Call) -> bool:
    """Is this construction of an external class one that ignores the mode?"""
    name = torch_api.last_part(qualified)
    if qualified.startswith("torch.nn.functional.") and "dropout" in name:
        return False
    if torch_api.is_torch_nn_class(qualified):
        if name in torch_api.CONTAINERS:
            return True  # judged by the layers built into it
        if name in torch_api.RECURRENT_LAYERS:
            dropout = next((a.value for a in call.args if a.keyword and a.keyword.value == "dropout"), None)
            return dropout is None or literal_value(dropout) in ((True, 0), (True, 0.0))
        return torch_api.nn_layer_is_model(qualified) is False
    if qualified.startswith("torchvision.ops."):
        return name not in torch_api.TORCHVISION_OPS_MODE_DEPENDENT
    # An unknown class may be a submodule with dropout; plain functions and torch helpers are not.
    return not (name[:1].isupper() and not qualified.startswith(("torch.", "typing.")))


def _evidence_in(ops: FunctionOps) -> frozenset[str]:
    keys: set[str] = set()
    for op in ops.all():
        if isinstance(op, (SetMode, Forward)):
            keys.add(op.key)
        elif isinstance(op, Bind) and op.kind is ValueKind.FRESH:
            keys.add(op.key)
        elif isinstance(op, Bind) and op.kind is ValueKind.OPTIMIZER and op.params:
            keys.update(op.params)
    return frozenset(keys)


def model_evidence(analysis: FunctionAnalysis) -> frozenset[str]:
    """Keys shown to be models by mode calls, construction, optimizers or forward calls: in the
    function itself, and for ``self.<attr>`` in any method of its class."""
    context, graph = analysis.context, analysis.graph
    cache_key = ("model_evidence", graph)
    if cache_key not in context.cache:
        keys = _evidence_in(analysis.ops)
        if graph.class_name is not None:
            keys |= _class_evidence(context, graph.class_name)
        context.cache[cache_key] = keys
    return context.cache[cache_key]  # type: ignore[return-value]


def _class_evidence(context: ModuleContext, class_name: str) -> frozenset[str]:
    """The ``self.<attr>`` keys any method of the class shows to be models (once per class)."""
    cache_key = ("class_model_evidence", class_name)
    if cache_key not in context.cache:
        context.cache[cache_key] = frozenset(
            key for method in context.graphs if method.class_name == class_name
            for key in _evidence_in(function_ops(context, method)) if key.startswith("self."))
    return context.cache[cache_key]  # type: ignore[return-value]


def is_model_key(analysis: FunctionAnalysis, op: Op, key: str, settings) -> bool:
    """Is ``key`` a model at ``op``: by what the analysis saw, or by a configured name?"""
    last = key.rpartition(".")[2]
    if key in settings.model_names or last in settings.model_names:
        return True
    if any(f.origin is not None and f.mode is not Mode.ENTRY
           and not isinstance(f.origin.op, TrainingFlagAssigned) for f in analysis.facts(op, key)):
        return True
    if key == "self":
        cls = analysis.context.class_of_graph(analysis.graph)
        return cls is not None and analysis.context.is_module_class(cls)
    return key in model_evidence(analysis)
