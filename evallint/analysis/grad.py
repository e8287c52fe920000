"""Lexical grad regions: what a ``with`` item or a decorator does to the grad state."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.interpret import is_context_manager, literal_value
from evallint.analysis.module import External, ProjectClass, ProjectFunction
from evallint.frontend.cfg import FunctionGraph, Region
from evallint.frontend.names import dotted_name
from evallint.frontend.nodes import child_nodes

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext


class GradEffect(Enum):
    DISABLED = "disabled"
    ENABLED = "enabled"
    UNKNOWN = "unknown"


# Decorators that never change the grad state.
TRANSPARENT_DECORATORS = frozenset({
    "staticmethod", "classmethod", "property", "abstractmethod", "cached_property", "overload",
    "override", "dataclass", "wraps", "lru_cache", "cache", "contextmanager", "setter", "getter",
    "deleter", "jit", "script", "ignore", "unused", "export", "compile", "register", "fixture",
    "parametrize", "total_ordering", "singledispatch", "abc", "rank_zero_only", "autocast",
})


def lexical_grad(context: "ModuleContext", region: Region | None,
                 graph: FunctionGraph) -> tuple[Region | None, GradEffect] | None:
    """The innermost region that decides the grad state, and its effect; None when none does.
    An opaque ``with ctx:`` leaves it unknown, unless an enclosing region disables grad (in a
    no-grad function, ``with ctx:`` is far more often an autocast or a hook guard than an
    ``enable_grad``)."""
    opaque: tuple[Region, GradEffect] | None = None
    while region is not None:
        effect = region_effect(context, region, graph)
        if effect is GradEffect.UNKNOWN and _is_opaque(context, region):
            opaque = opaque or (region, effect)
        elif effect is not None:
            return (region, effect) if opaque is None or effect is GradEffect.DISABLED else opaque
        region = region.parent
    if opaque is not None:
        return opaque
    if _is_lightning_hook(context, graph):
        return None, GradEffect.UNKNOWN
    return None


def region_effect(context: "ModuleContext", region: Region, graph: FunctionGraph | None = None,
                  bindings: dict[str, object] | None = None) -> GradEffect | None:
    cache_key = ("region", region, tuple(sorted((bindings or {}).items(), key=repr)))
    if cache_key not in context.cache:
        effect = None
        for item in region.items:
            item_effect = _item_effect(context, item, region.is_decorator, graph, bindings or {})
            if item_effect is not None:
                effect = item_effect
        context.cache[cache_key] = effect
    return context.cache[cache_key]  # type: ignore[return-value]


def _item_effect(context: "ModuleContext", item: cst.BaseExpression, is_decorator: bool,
                 graph: FunctionGraph | None, bindings: dict[str, object]) -> GradEffect | None:
    if isinstance(item, cst.IfExp):
        return GradEffect.UNKNOWN
    called = isinstance(item, cst.Call)
    func = item.func if isinstance(item, cst.Call) else item
    symbol = context.resolve(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
    if symbol is None and graph is not None and isinstance(func, cst.Attribute) \
            and isinstance(func.value, cst.Name) and func.value.value == "self":
        cls = context.class_of_graph(graph)
        symbol = context.find_method(cls, func.attr.value) if cls is not None else None  # self.cm(...)
    if isinstance(symbol, External):
        qualified = symbol.qualified
        if qualified in torch_api.NO_GRAD or qualified in torch_api.INFERENCE_MODE:
            if not called and not is_decorator:
                return None  # ``with torch.no_grad:`` fails at run time (EL202)
            if called and qualified in torch_api.INFERENCE_MODE and item.args:  # type: ignore[union-attr]
                ok, value = literal_value(item.args[0].value)  # type: ignore[union-attr]
                if ok and not value:
                    return GradEffect.ENABLED
            return GradEffect.DISABLED
        if qualified in torch_api.ENABLE_GRAD:
            return GradEffect.ENABLED
        if qualified in torch_api.SET_GRAD_ENABLED and called:
            args = item.args  # type: ignore[union-attr]
            ok, value = literal_value(args[0].value) if args else (False, None)
            if not ok and args and isinstance(args[0].value, cst.Name) and args[0].value.value in bindings:
                ok, value = True, bindings[args[0].value.value]  # a parameter given a literal
            if not ok:
                return GradEffect.UNKNOWN
            return GradEffect.ENABLED if value else GradEffect.DISABLED
        if is_decorator and torch_api.last_part(qualified) not in TRANSPARENT_DECORATORS:
            return GradEffect.UNKNOWN
        return None
    if isinstance(symbol, ProjectFunction):
        if called and is_context_manager(symbol):
            effect = _effect_at_yield(symbol, _literal_arguments(item, symbol))  # type: ignore[arg-type]
            if effect is not None:
                return effect
        if _mentions_no_grad(symbol.context, symbol.graph.node):
            return GradEffect.DISABLED
        return None
    if isinstance(symbol, ProjectClass):
        return GradEffect.DISABLED if _mentions_no_grad(symbol.context, symbol.node) else None
    if is_decorator:
        name = dotted_name(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if name is not None and name.rpartition(".")[2] in TRANSPARENT_DECORATORS:
            return None
        return GradEffect.UNKNOWN
    if isinstance(item, cst.Name) or (isinstance(item, cst.Attribute) and symbol is None):
        return GradEffect.UNKNOWN  # ``with ctx:``, ``with self._ctx:``: may be a no-grad context
    return None


def _is_opaque(context: "ModuleContext", region: Region) -> bool:
    """``with ctx:`` or ``with self._ctx:``: every item a bare name or unresolved attribute."""
    return not region.is_decorator and all(
        isinstance(item, cst.Name) and context.resolve(item) is None
        or isinstance(item, cst.Attribute) and context.resolve(item) is None for item in region.items)


def _literal_arguments(call: cst.Call, function: ProjectFunction) -> dict[str, object]:
    """Parameters of ``function`` that ``call`` gives a literal (``cm(False)``, ``cm(training=False)``)."""
    names = function.graph.param_names
    if function.graph.class_name is not None and names[:1] == ["self"]:
        names = names[1:]
    bound: dict[str, object] = {}
    for index, arg in enumerate(call.args):
        if arg.star:
            break
        name = arg.keyword.value if arg.keyword is not None else (names[index] if index < len(names) else None)
        ok, value = literal_value(arg.value)
        if name is not None and ok:
            bound[name] = value
    return bound


def _effect_at_yield(function: ProjectFunction, bindings: dict[str, object]) -> GradEffect | None:
    """The grad state a ``@contextmanager`` generator's ``with`` body runs in: the regions around
    its ``yield``, with the parameters the call gives literals (``set_grad_enabled(training)``)."""
    effects = set()
    for step in function.graph.steps():
        node = step.node
        if not (isinstance(node, cst.Expr) and isinstance(node.value, cst.Yield)):
            continue
        region, effect = step.region, None
        while region is not None and effect is None:
            effect = region_effect(function.context, region, function.graph, bindings)
            region = region.parent
        effects.add(effect)
    return effects.pop() if len(effects) == 1 else None


def _mentions_no_grad(context: "ModuleContext", node: cst.CSTNode) -> bool:
    """Does a project context manager/decorator build a no-grad or inference-mode context?"""
    cache_key = ("mentions_no_grad", node)
    if cache_key not in context.cache:
        found = False
        stack = [node]
        disabling = torch_api.NO_GRAD | torch_api.INFERENCE_MODE
        while stack and not found:
            current = stack.pop()
            if isinstance(current, (cst.Name, cst.Attribute)):
                if context.qualify(current) in disabling:
                    found = True
                continue
            stack.extend(child_nodes(current))
        context.cache[cache_key] = found
    return context.cache[cache_key]  # type: ignore[return-value]


def _is_lightning_hook(context: "ModuleContext", graph: FunctionGraph) -> bool:
    if graph.class_name is None:
        return False
    name = graph.name.rpartition(".")[2]
    if not torch_api.LIGHTNING_HOOKS.match(name):
        return False
    cls = context.class_of_graph(graph)
    return cls is not None and context.is_lightning_class(cls)
