"""EL108: a layer inside an nn.Module that never follows ``model.eval()``."""

from __future__ import annotations

import re
from typing import Iterator

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.dataflow import FunctionAnalysis
from evallint.analysis.file_analysis import FileAnalysis
from evallint.analysis.interpret import literal_value
from evallint.analysis.keys import key_of
from evallint.analysis.module import External
from evallint.analysis.ops import (
    Bind, Call, Forward, FunctionalModeLayer, LayerBuiltAndCalled, SetMode, ValueKind,
)
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.frontend.cfg import Block, FunctionGraph, Step
from evallint.frontend.nodes import child_nodes
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import (
    BATCH_STATISTICS, DROPS, argument, code_of, linted_functions, literal_zero,
    mode_dependent_layer,
)

TRAINING_ARGUMENT = "training=self.training"


class LayerIgnoresModelMode(Rule):
    code = "EL108"
    name = "layer-ignores-model-mode"
    summary = "A layer inside a module never follows `model.eval()`"
    what_it_does = (
        "Finds, in the methods of an `nn.Module`, layers whose mode does not follow the model's: "
        "functional dropout (`F.dropout`, `dropout1d/2d/3d`, `alpha_dropout`, "
        "`feature_alpha_dropout`, through any alias of `torch.nn.functional`) and `F.batch_norm` "
        "called without their `training` argument (given by keyword or position); and a module "
        "that holds dropout or BatchNorm (`nn.Dropout*`, `nn.BatchNorm*`, a project module that "
        "reads `self.training`, ...) built inside `forward`, or a method `forward` calls, and "
        "called there. Quiet for an explicit `training=` (`self.training`, or a literal `True` "
        "for Monte Carlo dropout), a literal `p=0`, `F.batch_norm` without running statistics, "
        "code that runs only while training (`if self.training:`, `forward_train`, "
        "`training_step`), classes and methods named for Monte Carlo dropout or uncertainty, "
        "layers assigned to `self.<attr>` (registered, even lazily) or whose mode is set where "
        "they are built, and code outside nn.Module classes."
    )
    why_bad = (
        "`model.eval()` sets `training = False` on the model and its registered submodules, and "
        "only layers that read that flag change. `F.dropout`'s `training` defaults to `True`, so "
        "it keeps dropping activations at evaluation; `F.alpha_dropout`'s defaults to `False`, "
        "so it never drops, not even in training; `F.batch_norm`'s defaults to `False`, so it "
        "never uses batch statistics nor updates the running ones. A module built inside "
        "`forward` is not a registered submodule: `.eval()` never reaches it, it is fresh (in "
        "train mode) on every call, and any parameters it has are re-created untrained each time."
    )
    fix_safety = (
        "The fix adds `training=self.training` to a functional call in a method whose first "
        "parameter is `self`. It is unsafe: it changes what the model computes in eval mode (or, "
        "for `alpha_dropout` and `batch_norm`, in train mode), which is the point, but results "
        "measured before change too. A module built inside `forward` has no automatic fix: build "
        "it once in `__init__` (`self.drop = nn.Dropout(0.5)`) and call that."
    )
    fix_applicability = Applicability.UNSAFE
    INVALID = (
        '''import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(F.dropout(x, 0.5))  # EL108: still drops activations after model.eval()
''',
        '''from torch import nn


class Head(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        norm = nn.BatchNorm1d(x.shape[1])  # EL108: not a submodule: model.eval() never reaches it
        return self.proj(norm(x))
''',
    )
    VALID = (
        '''import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(F.dropout(x, 0.5, training=self.training))
''',
        '''from torch import nn


class Head(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        return self.proj(self.norm(x))
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        file = ctx.analysis
        per_step = _per_step_methods(file)
        for analysis in linted_functions(file):
            method = _module_method(analysis)
            if method is None or _deliberate(analysis.graph, method):
                continue
            for op in analysis.ops_of(FunctionalModeLayer):
                found = self.functional(ctx, analysis, method, op)
                if found is not None:
                    yield found
            if analysis.graph in per_step:
                yield from self.built_in_forward(ctx, analysis, per_step[analysis.graph])

    # -- F.dropout / F.batch_norm without ``training`` -------------------------------------

    def functional(self, ctx: RuleContext, analysis: FunctionAnalysis, method: FunctionGraph,
                   op: FunctionalModeLayer) -> Diagnostic | None:
        call: cst.Call = op.node  # type: ignore[assignment]
        position, keyword, default = torch_api.FUNCTIONAL_MODE_ARGUMENT[op.function]
        if default is None or any(arg.star for arg in call.args) \
                or argument(call, keyword, position) is not None:
            return None  # a required argument (``torch.dropout(x, p, train)``), or given
        if op.function.endswith(".batch_norm"):
            stats = [argument(call, name, index) for index, name in torch_api.BATCH_NORM_RUNNING_STATS]
            if all(value is not None and literal_value(value) == (True, None) for value in stats):
                return None  # no running statistics: batch statistics in either mode
        elif literal_zero(argument(call, torch_api.FUNCTIONAL_DROPOUT_RATE[1],
                                   torch_api.FUNCTIONAL_DROPOUT_RATE[0]), default=False):
            return None  # ``p=0``: drops nothing
        if _only_while_training(analysis, op.step, call):
            return None
        context = analysis.context
        code, function = _call_code(context, call), code_of(context, call.func)
        if op.function.endswith(".batch_norm"):
            effect = ("normalizes with the running statistics in train mode too, and never updates "
                      "them")
        elif default:
            effect = "still drops activations after `model.eval()`"
        else:
            effect = "never drops activations, not even in train mode"
        fix = _training_fix(ctx, analysis.graph, method, call)
        advice = f"pass `{TRAINING_ARGUMENT}`" if fix is not None else \
            "pass the module's mode as `training=` (`self.training`)"
        return ctx.diagnostic(
            self, call,
            f"`{code}` {effect}: `{function}` defaults to `{keyword}={default}`; {advice}", fix=fix)

    # -- a module built inside ``forward`` -------------------------------------------------

    def built_in_forward(self, ctx: RuleContext, analysis: FunctionAnalysis,
                         caller: FunctionGraph | None) -> Iterator[Diagnostic]:
        context, graph = analysis.context, analysis.graph
        for op in analysis.ops_of(LayerBuiltAndCalled):
            if op.mode_set or _only_while_training(analysis, op.step, op.node):
                continue
            effect = mode_dependent_layer(context, op.layer, op.construction)
            if effect is not None:
                yield self.built(ctx, analysis, caller, op.construction, effect, name=None)
        forwards: dict[str, list[Forward]] = {}
        for op in analysis.ops_of(Forward):
            if op.key.isidentifier() and op.key != "self" and isinstance(op.node, cst.Call) \
                    and isinstance(op.node.func, cst.Name):
                forwards.setdefault(op.key, []).append(op)
        for key, calls in forwards.items():
            binds = [op for op in analysis.ops.all() if isinstance(op, Bind) and op.key == key]
            if not binds or key in graph.param_names or any(
                    isinstance(op, SetMode) and op.key == key for op in analysis.ops.all()):
                continue
            effects = [_built_effect(context, bind) for bind in binds]
            if None in effects or not _only_called(graph, key, binds, calls):
                continue
            if all(_only_while_training(analysis, op.step, op.node) for op in calls) \
                    or all(_only_while_training(analysis, bind.step, bind.node) for bind in binds):
                continue
            first = min(binds, key=lambda bind: bind.step.order)
            yield self.built(ctx, analysis, caller, first.node, effects[binds.index(first)], name=key,
                             called=min(calls, key=lambda op: op.step.order).node)

    def built(self, ctx: RuleContext, analysis: FunctionAnalysis, caller: FunctionGraph | None,
              construction: cst.CSTNode, effect: str, name: str | None,
              called: cst.CSTNode | None = None) -> Diagnostic:
        context = analysis.context
        method = _short_name(analysis.graph)
        where = f"`{method}`" if caller is None else \
            f"`{method}` (which `{_short_name(caller)}` calls on every step)"
        consequence = {
            DROPS: "it keeps dropping activations",
            BATCH_STATISTICS: "it keeps normalizing with batch statistics",
        }.get(effect, "its `self.training` stays True")
        attribute = name if name is not None else _attribute_name(construction)
        related = ((context.source, called, "called here"),) if called is not None else ()
        return ctx.diagnostic(
            self, construction,
            f"`{_call_code(context, construction)}` is built and called inside {where}: not "
            f"a registered submodule, `model.eval()` never reaches it, so {consequence} (a new "
            f"one, in train mode, on every call); build it once in `__init__` "
            f"(`self.{attribute} = ...`) and call that",
            related=related)


def _call_code(context, call: cst.CSTNode) -> str:
    """The call as the code spells it, or ``F.dropout2d(...)`` when it spans lines."""
    if isinstance(call, cst.Call) and "\n" in context.source.code_for(call):
        return f"{code_of(context, call.func)}(...)"
    return code_of(context, call)


def _attribute_name(construction: cst.CSTNode) -> str:
    """A name for the attribute that would hold a layer built inline: ``drop_path`` for ``DropPath(0.1)``."""
    func = construction.func if isinstance(construction, cst.Call) else None
    name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower() or "layer"


def _module_method(analysis: FunctionAnalysis) -> FunctionGraph | None:
    """The method of an nn.Module class that is ``analysis``'s function or encloses it."""
    graph: FunctionGraph | None = analysis.graph
    while graph is not None and graph.class_name is None:
        graph = graph.parent
        if graph is not None and graph.is_module:
            return None
    if graph is None:
        return None
    cls = analysis.context.class_of_graph(graph)
    return graph if cls is not None and analysis.context.is_module_class(cls) else None


def _short_name(graph: FunctionGraph) -> str:
    return graph.name.rpartition(".")[2]


def _deliberate(graph: FunctionGraph, method: FunctionGraph) -> bool:
    """Code that runs only while training (``forward_train``, ``training_step``), or that keeps
    dropout on on purpose (``MCDropout``, ``predict_with_uncertainty``)."""
    functions = [part for part in graph.name[len(method.class_name or ""):].split(".")
                 if part and part != "<locals>"]
    classes = (method.class_name or "").split(".")
    return any(torch_api.TRAINING_ONLY_METHOD.search(part) for part in functions) or any(
        torch_api.ALWAYS_ON_DROPOUT.search(part) for part in functions + classes)


def _per_step_methods(file: FileAnalysis) -> dict[FunctionGraph, FunctionGraph | None]:
    """Each class's ``forward`` (mapped to None) and the methods of this file it calls on
    ``self``, directly or through each other (mapped to the ``forward`` that calls them)."""
    found: dict[FunctionGraph, FunctionGraph | None] = {}
    for graph in file.context.graphs:
        if graph.class_name is None or graph.name != f"{graph.class_name}.forward":
            continue
        found.setdefault(graph, None)
        pending = [graph]
        while pending:
            for op in file.analysis_of(pending.pop()).ops_of(Call):
                callee = op.function.graph
                if op.receiver == "self" and op.function.context is file.context \
                        and callee.class_name is not None and callee not in found:
                    found[callee] = graph
                    pending.append(callee)
    return found


def _built_effect(context, bind: Bind) -> str | None:
    """``mode_dependent_layer`` of a module built into a variable (``norm = nn.BatchNorm1d(c)``)."""
    if bind.kind is not ValueKind.FRESH or not isinstance(bind.node, cst.Call) or bind.model_class is None:
        return None
    layer = bind.model_class if not isinstance(bind.model_class, str) else External(bind.model_class)
    return mode_dependent_layer(context, layer, bind.node)


def _only_called(graph: FunctionGraph, name: str, binds: list[Bind], calls: list[Forward]) -> bool:
    """Is the variable ``name`` only assigned (by ``binds``) and called (``calls``)? Any other use
    (``self.layers.append(norm)``, ``norm.train(...)``, handing it to a function, a closure) may
    register it or set its mode."""
    allowed: set[int] = set()
    for bind in binds:
        statement = bind.step.node
        if isinstance(statement, cst.Assign):
            allowed.update(id(target.target) for target in statement.targets)
        elif isinstance(statement, cst.AnnAssign):
            allowed.add(id(statement.target))
        else:
            return False
    allowed.update(id(op.node.func) for op in calls)  # type: ignore[attr-defined]
    stack: list[cst.CSTNode] = [graph.node]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Name) and node.value == name and id(node) not in allowed:
            return False
        stack.extend(child_nodes(node))
    return True


# -- code that runs only while training ---------------------------------------------------------

def _only_while_training(analysis: FunctionAnalysis, step: Step, node: cst.CSTNode) -> bool:
    """Does ``node`` (in ``step``) run only when a training flag is true: inside ``if
    self.training:``, after ``if not self.training: return x``, in ``a if self.training else
    b``, or after ``self.training and``?"""
    cache_key = ("steps_reachable_in_eval", analysis.graph)
    cache = analysis.context.cache
    if cache_key not in cache:
        cache[cache_key] = _steps_reachable_in_eval(analysis.graph)
    return step not in cache[cache_key] or _guarded_in_expression(step.node, node)  # type: ignore[operator]


def _steps_reachable_in_eval(graph: FunctionGraph) -> frozenset[Step]:
    """The steps of ``graph`` reachable without taking a branch that needs a training flag."""
    reached: set[Block] = {graph.entry}
    pending = [graph.entry]
    while pending:
        block = pending.pop()
        for target, condition in block.successors:
            if target in reached or (condition is not None
                                     and _implies_training(condition.test, condition.value)):
                continue
            reached.add(target)
            pending.append(target)
    return frozenset(step for block in reached for step in block.steps)


def _guarded_in_expression(root: cst.CSTNode, target: cst.CSTNode) -> bool:
    path = _path_to(root, target)
    for parent, child in zip(path, path[1:]):
        if isinstance(parent, cst.IfExp):
            if (child is parent.body and _implies_training(parent.test, True)) or \
                    (child is parent.orelse and _implies_training(parent.test, False)):
                return True
        elif isinstance(parent, cst.BooleanOperation) and child is parent.right:
            needs = isinstance(parent.operator, cst.And)  # ``a and b`` runs b only when a is true
            if _implies_training(parent.left, needs):
                return True
    return False


def _path_to(root: cst.CSTNode, target: cst.CSTNode) -> list[cst.CSTNode]:
    """The nodes from ``root`` down to ``target`` (empty when it is not inside)."""
    stack: list[tuple[cst.CSTNode, list[cst.CSTNode]]] = [(root, [root])]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        stack.extend((child, path + [child]) for child in child_nodes(node))
    return []


def _implies_training(test: cst.BaseExpression, value: bool) -> bool:
    """Does ``test`` evaluating to ``value`` mean that the code is training: a training flag set
    (``self.training``, ``is_training``), or an evaluation flag unset (``not deterministic``)?"""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _implies_training(test.expression, not value)
    if isinstance(test, cst.BooleanOperation):
        left, right = _implies_training(test.left, value), _implies_training(test.right, value)
        both = isinstance(test.operator, cst.And) != value  # ``a and b`` false, ``a or b`` true
        return (left and right) if both else (left or right)
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        comparison = test.comparisons[0]
        ok, literal = literal_value(comparison.comparator)
        if ok and isinstance(literal, bool):
            negated = isinstance(comparison.operator, (cst.NotEqual, cst.IsNot))
            if isinstance(comparison.operator, (cst.Equal, cst.Is, cst.NotEqual, cst.IsNot)):
                return _implies_training(test.left, value == (literal != negated))
        return False
    key = key_of(test) if isinstance(test, (cst.Name, cst.Attribute)) else None
    name = key.rpartition(".")[2] if key is not None else ""
    return bool((torch_api.TRAINING_FLAG if value else torch_api.EVALUATION_FLAG).match(name))


# -- the fix --------------------------------------------------------------------------------------

def _training_fix(ctx: RuleContext, graph: FunctionGraph, method: FunctionGraph,
                  call: cst.Call) -> Fix | None:
    """``training=self.training`` after the last argument, where ``self`` is the method's first
    parameter (and no nested function between rebinds it)."""
    node = method.node
    if not isinstance(node, cst.FunctionDef) or not call.args or method.param_names[:1] != ["self"] \
            or any(isinstance(d.decorator, cst.Name) and d.decorator.value in ("staticmethod", "classmethod")
                   for d in node.decorators):
        return None
    scope: FunctionGraph | None = graph
    while scope is not None and scope is not method:
        if "self" in scope.param_names:
            return None
        scope = scope.parent
    last = call.args[-1]
    span = ctx.analysis.source.span_of(last)
    at = Span(span.end_line, span.end_column, span.end_line, span.end_column)
    text = f", {TRAINING_ARGUMENT}"
    if isinstance(last.comma, cst.Comma) and isinstance(last.comma.whitespace_after, cst.ParenthesizedWhitespace):
        text = f",\n{' ' * (span.column - 1)}{TRAINING_ARGUMENT}"  # one argument a line: keep it so
    return Fix(f"Pass `{TRAINING_ARGUMENT}`", (Edit(at, text),), Applicability.UNSAFE)
