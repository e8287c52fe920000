"""EL109: a ``train(self, mode)`` override of an nn.Module that breaks ``train()``/``eval()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.module import ModuleContext, ProjectClass
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.frontend.cfg import FunctionGraph, StepKind
from evallint.frontend.names import dotted_name
from evallint.frontend.nodes import child_nodes
from evallint.frontend.source import SourceModule
from evallint.lines import split_lines
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import builds_mode_dependent_module

# Decorators of a ``train`` that is no override with a body of its own: a static or class method,
# a property, a typing stub (``@overload``) or an abstract method.
_NOT_AN_OVERRIDE = frozenset({"staticmethod", "classmethod", "property", "overload", "abstractmethod"})
# Builtins that look at ``self`` without switching anything.
_INSPECTING_BUILTINS = frozenset({"isinstance", "issubclass", "hasattr", "type", "id", "len", "print",
                                  "repr", "str"})
# Methods of ``self`` an override may call without setting any mode (reading parameters to
# freeze them, registering a buffer).
_HARMLESS_SELF_METHODS = torch_api.NOT_FORWARD_METHODS - torch_api.MODULE_TREE_METHODS


class TrainOverrideBroken(Rule):
    code = "EL109"
    name = "train-override-broken"
    summary = ("A `train(mode)` override that drops `mode`, returns None, or leaves its children in "
               "their mode")
    what_it_does = (
        "Checks `def train(self, mode=True)` overrides of `nn.Module` subclasses (a class whose base "
        "is not known counts when the override calls `super().train(...)`; `def train(self, *args, "
        "**kwargs)` counts when it passes them to `super().train`). It finds three mistakes: "
        "`super().train()` (or `nn.Module.train(self)`) called without `mode`; a path that returns "
        "None (falling off the end, a bare `return` or `return None`); and an override that neither "
        "calls `super().train(...)` nor reaches every child (a loop over `self.children()`/"
        "`self.modules()`, `self.apply(...)`) while some Dropout/BatchNorm child built in the class "
        "is never touched. Quiet for overrides that call `super().train(mode)` and then keep a "
        "frozen part in eval mode, for a deliberate `super().train(False)` (a network that always "
        "stays in eval mode), for children reached through a method of `self` the rule cannot "
        "follow, and for `train` methods whose first parameter is not a mode "
        "(`train(self, trainer=None)`, `train(self)` of a trainer class). A body that switches no "
        "mode at all is taken as a deliberately frozen module: only a missing `return self` is "
        "reported there."
    )
    why_bad = (
        "`model.eval()` is `model.train(False)`: it runs the override. One that calls "
        "`super().train()` without `mode` puts the model and all its children back in train mode, "
        "so evaluation runs with dropout on and BatchNorm updating its statistics. `nn.Module.train` "
        "returns `self`, and code relies on it: `model = model.eval()` or "
        "`model.eval().to(device)` gets None from an override that does not return `self`. An "
        "override that only sets `self.training` and some submodules leaves the other children in "
        "the mode they were in: the model looks switched, its Dropout/BatchNorm layers are not."
    )
    fix_safety = (
        "The fix passes the mode parameter (`super().train(mode)`) and returns `self` where the "
        "override returns None (`return self` added at its end, or replacing a bare `return`); both "
        "are safe. An override that skips children has no automatic fix: only you know which parts "
        "should stay frozen."
    )
    fix_applicability = Applicability.SAFE
    INVALID = (
        '''from torch import nn


class Classifier(nn.Module):
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, num_classes))

    def train(self, mode=True):  # EL109: returns None: `model = model.eval()` breaks
        super().train()  # EL109: without `mode`, `model.eval()` puts the model in train mode
        self.backbone.eval()
''',
    )
    VALID = (
        '''from torch import nn


class Classifier(nn.Module):
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, num_classes))

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # the frozen backbone keeps its BatchNorm statistics
        return self
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        context = ctx.analysis.context
        for graph in context.graphs:
            override = _train_override(context, graph)
            if override is not None:
                yield from self._check_override(ctx, context, override)

    def _check_override(self, ctx: RuleContext, context: ModuleContext,
                        override: "_Override") -> Iterator[Diagnostic]:
        source = context.source
        node, body = override.node, override.body
        method = f"`{_class_label(override.cls)}.train()`"
        for call in body.parent_calls_without_mode:
            written = " ".join(source.code_for(call).split())
            replacement = _with_mode(source, call, override)
            yield ctx.diagnostic(
                self, call,
                f"{method} calls `{written}` without `{override.mode}`: `model.eval()` runs it and "
                f"puts the model and its children back in train mode; pass it: `{replacement}`",
                fix=Fix(f"Pass `{override.mode}`", (Edit(source.span_of(call), replacement),)))
        for statement in _returns_of_none(override.graph):
            yield ctx.diagnostic(
                self, statement,
                f"`{source.code_for(statement).strip()}` in {method} returns None: `model.eval()` "
                f"and `model.train()` then return None, so `model = model.eval()` or "
                f"`model.eval().to(device)` break; return `{override.self_name}`",
                fix=Fix(f"Return `{override.self_name}`",
                        (Edit(source.span_of(statement), f"return {override.self_name}"),)))
        if _falls_off_the_end(override.graph) and not _is_stub(node):
            edit = _return_self_at_end(source, node, override.self_name)
            yield ctx.diagnostic(
                self, node.name,
                f"{method} can end without `return {override.self_name}`: `model.eval()` and "
                "`model.train()` then return None, so `model = model.eval()` or "
                f"`model.eval().to(device)` break; add `return {override.self_name}` at its end",
                fix=Fix(f"Add `return {override.self_name}`", (edit,)) if edit is not None else None)
        missed = _children_left_alone(override)
        if missed:
            names = ", ".join(f"`{override.self_name}.{name}`" for name in missed[:3])
            more = f" and {len(missed) - 3} more" if len(missed) > 3 else ""
            keep = "keeps its mode" if len(missed) == 1 else "keep their mode"
            they = "it still runs" if len(missed) == 1 else "they still run"
            yield ctx.diagnostic(
                self, node.name,
                f"{method} neither calls `super().train({override.mode})` nor sets every child: "
                f"{names}{more} {keep}: after `model.eval()` {they} in train mode (dropout on, "
                f"BatchNorm on batch statistics); call `super().train({override.mode})` first, then "
                "switch the parts that must stay frozen")


@dataclass
class _Body:
    """What a train override's own code does (nested functions and classes left out)."""

    parent_calls: list[cst.Call] = field(default_factory=list)
    parent_calls_without_mode: list[cst.Call] = field(default_factory=list)
    mentioned: set[str] = field(default_factory=set)  # X of every ``self.X`` the code reads
    sets_a_mode: bool = False  # ``self.training = ...``, ``<child>.train(...)``/``.eval()``
    whole_tree: bool = False  # ``self.children()``/``self.modules()``/``self.apply(...)``
    opaque: bool = False  # a call that may set the children for all we know


@dataclass
class _Override:
    graph: FunctionGraph
    node: cst.FunctionDef
    cls: ProjectClass
    self_name: str
    mode: str
    body: _Body


def _train_override(context: ModuleContext, graph: FunctionGraph) -> _Override | None:
    """``graph`` as a ``train(self, mode)`` override of an nn.Module, or None: its first parameter
    must be a mode (default ``True``/``False``, annotated ``bool``, or named ``mode``), and its class
    an nn.Module, or a class that may be one whose override calls the parent's ``train``."""
    node = graph.node
    if graph.class_name is None or graph.name != f"{graph.class_name}.train" \
            or not isinstance(node, cst.FunctionDef):
        return None
    if any((dotted_name(d.decorator) or "").rpartition(".")[2] in _NOT_AN_OVERRIDE
           for d in node.decorators):
        return None
    positional = [*node.params.posonly_params, *node.params.params]
    cls = context.class_of_graph(graph)
    if not positional or cls is None:
        return None
    self_name = positional[0].name.value
    if len(positional) >= 2 and _is_mode_parameter(positional[1]):
        mode = positional[1].name.value
        body = _read_body(node, self_name)
    elif len(positional) == 1 and isinstance(node.params.star_arg, cst.Param):
        # ``def train(self, *args, **kwargs): super().train(*args, **kwargs)``: the mode passes on
        mode = node.params.star_arg.name.value
        body = _read_body(node, self_name)
        if not body.parent_calls or body.parent_calls_without_mode:
            return None
    else:
        return None
    if not context.is_module_class(cls) and not (body.parent_calls and context.may_be_module_class(cls)):
        return None
    return _Override(graph, node, cls, self_name, mode, body)


def _is_mode_parameter(param: cst.Param) -> bool:
    default = param.default
    if isinstance(default, cst.Name) and default.value in ("True", "False"):
        return True
    annotation = param.annotation
    if annotation is not None and isinstance(annotation.annotation, cst.Name) \
            and annotation.annotation.value == "bool":
        return True
    return param.name.value == "mode"


def _read_body(node: cst.FunctionDef, self_name: str) -> _Body:
    body = _Body()
    stack: list[cst.CSTNode] = [node.body]
    while stack:
        current = stack.pop()
        if isinstance(current, (cst.FunctionDef, cst.ClassDef)):
            continue
        stack.extend(child_nodes(current))
        if isinstance(current, cst.Attribute):
            if isinstance(current.value, cst.Name) and current.value.value == self_name \
                    and current.attr.value != "training":
                body.mentioned.add(current.attr.value)
        elif isinstance(current, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            targets = [t.target for t in current.targets] if isinstance(current, cst.Assign) \
                else [current.target]
            if any(isinstance(t, cst.Attribute) and t.attr.value == "training" for t in targets):
                body.sets_a_mode = True
        elif isinstance(current, cst.Call):
            _read_call(current, self_name, body)
    return body


def _read_call(call: cst.Call, self_name: str, body: _Body) -> None:
    func = call.func
    positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
    passes_self = any(isinstance(arg.value, cst.Name) and arg.value.value == self_name for arg in call.args)
    if not isinstance(func, cst.Attribute):
        if not (isinstance(func, cst.Name) and func.value in _INSPECTING_BUILTINS):
            body.opaque |= passes_self  # ``freeze_stages(self)``, ``getattr(self, name)``
        return
    method, receiver = func.attr.value, func.value
    if _is_super_call(receiver):
        if method == "train":
            body.parent_calls.append(call)
            if not call.args:
                body.parent_calls_without_mode.append(call)
        else:
            body.opaque = True
        return
    if method == "train" and positional and isinstance(positional[0].value, cst.Name) \
            and positional[0].value.value == self_name and not _rooted_at(receiver, self_name):
        body.parent_calls.append(call)  # ``nn.Module.train(self, mode)``
        if len(call.args) == 1:
            body.parent_calls_without_mode.append(call)
        return
    if isinstance(receiver, cst.Name) and receiver.value == self_name:
        if method in torch_api.MODULE_TREE_METHODS:
            body.whole_tree = True
        elif method not in _HARMLESS_SELF_METHODS:
            body.opaque = True  # ``self._freeze_stages()``: may set any child
        return
    if method in ("train", "eval"):
        body.sets_a_mode = True
    body.opaque |= passes_self


def _is_super_call(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "super"


def _rooted_at(node: cst.BaseExpression, name: str) -> bool:
    while isinstance(node, (cst.Attribute, cst.Subscript, cst.Call)):
        node = node.func if isinstance(node, cst.Call) else node.value
    return isinstance(node, cst.Name) and node.value == name


def _with_mode(source: SourceModule, call: cst.Call, override: _Override) -> str:
    """``super().train()`` -> ``super().train(mode)``; ``nn.Module.train(self)`` ->
    ``nn.Module.train(self, mode)``."""
    func = source.code_for(call.func)
    if call.args:
        return f"{func}({override.self_name}, {override.mode})"
    return f"{func}({override.mode})"


def _returns_of_none(graph: FunctionGraph) -> list[cst.Return]:
    """The ``return`` and ``return None`` statements of the function itself, in source order."""
    found: dict[int, cst.Return] = {}
    for step in graph.steps():
        node = step.node
        if step.kind is StepKind.STATEMENT and isinstance(node, cst.Return) and (
                node.value is None or isinstance(node.value, cst.Name) and node.value.value == "None"):
            found.setdefault(id(node), node)
    return list(found.values())


def _is_stub(node: cst.FunctionDef) -> bool:
    """A body of only a docstring and ``...``: a declaration (a protocol, a stub), not code."""
    body = node.body
    if isinstance(body, cst.SimpleStatementSuite):
        smalls: list[cst.CSTNode] = list(body.body)
    else:
        smalls = []
        for statement in body.body:  # type: ignore[union-attr]
            if not isinstance(statement, cst.SimpleStatementLine):
                return False
            smalls += statement.body
    values = [small.value for small in smalls if isinstance(small, cst.Expr)]
    texts = (cst.Ellipsis, cst.SimpleString, cst.ConcatenatedString)
    return len(values) == len(smalls) and any(isinstance(value, cst.Ellipsis) for value in values) \
        and all(isinstance(value, texts) for value in values)


def _falls_off_the_end(graph: FunctionGraph) -> bool:
    """Can the function reach its end without a ``return`` (paths that raise do not count)?"""
    seen: set[int] = set()
    pending = [graph.entry]
    while pending:
        block = pending.pop()
        if block.index in seen:
            continue
        seen.add(block.index)
        if block is graph.exit:
            return True
        if any(step.kind is StepKind.STATEMENT and isinstance(step.node, cst.Return) for step in block.steps):
            continue  # what follows a return in its block runs on the way out (finally)
        pending.extend(successor for successor, _ in block.successors)
    return False


def _return_self_at_end(source: SourceModule, node: cst.FunctionDef, self_name: str) -> Edit | None:
    """``return self`` after the last statement of the function, at its indentation."""
    body = node.body
    if isinstance(body, cst.SimpleStatementSuite):  # ``def train(self, mode=True): ...``
        span = source.span_of(body.body[-1])
        end = Span(span.end_line, span.end_column, span.end_line, span.end_column)
        return Edit(end, f"; return {self_name}")
    if not isinstance(body, cst.IndentedBlock) or not body.body:
        return None
    span = source.span_of(body.body[-1])
    lines = split_lines(source.text)
    indent = lines[span.line - 1][:span.column - 1]
    if indent.strip():
        return None
    column = len(lines[span.end_line - 1]) + 1
    return Edit(Span(span.end_line, column, span.end_line, column),
                f"{source.module.default_newline}{indent}return {self_name}")


def _children_left_alone(override: _Override) -> list[str]:
    """Mode-dependent children (built in the class or its project bases) that an override which
    does not call the parent's ``train`` never touches; empty when it may reach them somehow."""
    body = override.body
    if body.parent_calls or body.whole_tree or body.opaque or not body.sets_a_mode:
        return []
    children = _Children()
    _collect_children(override.cls, override.node, children)
    if children.whole_model_frozen:
        return []
    return [name for name in children.built
            if name not in body.mentioned and name not in children.frozen]


@dataclass
class _Children:
    """What the other methods of a class (and of its project bases) do with its children."""

    built: list[str] = field(default_factory=list)  # ``self.X = <mode-dependent module>(...)``
    # ``self.X.eval()``/``self.X.train(False)`` in ``__init__`` or a ``*freeze*`` method: X is
    # kept in eval mode on purpose, and an override that leaves it alone keeps it there.
    frozen: set[str] = field(default_factory=set)
    whole_model_frozen: bool = False  # ``self.eval()`` there: every child left alone stays frozen


def _collect_children(cls: ProjectClass, skip: cst.FunctionDef, found: _Children,
                      _seen: frozenset[int] = frozenset()) -> None:
    if id(cls.node) in _seen:
        return
    context = cls.context
    statements = cls.node.body.body if isinstance(cls.node.body, cst.IndentedBlock) else ()
    for statement in statements:
        if not isinstance(statement, cst.FunctionDef) or statement is skip:
            continue
        params = [*statement.params.posonly_params, *statement.params.params]
        if not params:
            continue
        self_name = params[0].name.value
        freezes = statement.name.value == "__init__" or "freez" in statement.name.value.lower()
        stack: list[cst.CSTNode] = [statement.body]
        while stack:
            current = stack.pop()
            if isinstance(current, (cst.FunctionDef, cst.ClassDef)):
                continue
            stack.extend(reversed(child_nodes(current)))  # source order
            if isinstance(current, cst.Call):
                if freezes:  # not ``predict()`` switching to eval for a while
                    _note_freezing(current, self_name, found)
                continue
            if isinstance(current, cst.Assign):
                targets = [t.target for t in current.targets]
            elif isinstance(current, cst.AnnAssign) and current.value is not None:
                targets = [current.target]
            else:
                continue
            for target in targets:
                if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) \
                        and target.value.value == self_name \
                        and target.attr.value not in found.built \
                        and isinstance(current.value, cst.Call) \
                        and builds_mode_dependent_module(context, current.value):
                    found.built.append(target.attr.value)
    for base in context.bases(cls):
        if isinstance(base, ProjectClass):
            _collect_children(base, skip, found, _seen | {id(cls.node)})


def _note_freezing(call: cst.Call, self_name: str, found: _Children) -> None:
    """``self.X.eval()``/``self.X.train(False)`` (X is kept frozen on purpose), ``self.eval()``."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value not in ("eval", "train"):
        return
    if func.attr.value == "train" and not (
            len(call.args) == 1 and isinstance(call.args[0].value, cst.Name)
            and call.args[0].value.value == "False"):
        return
    receiver = func.value
    if isinstance(receiver, cst.Name) and receiver.value == self_name:
        found.whole_model_frozen = True
    elif isinstance(receiver, cst.Attribute) and isinstance(receiver.value, cst.Name) \
            and receiver.value.value == self_name:
        found.frozen.add(receiver.attr.value)


def _class_label(cls: ProjectClass) -> str:
    return cls.qualname.rpartition("<locals>.")[2]
