"""Pieces several rules share: describing where a mode came from, severity, grouping."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.dataflow import FunctionAnalysis, analyze_function
from evallint.analysis.file_analysis import FileAnalysis
from evallint.analysis.module import External, ModuleContext, ProjectClass, ProjectFunction
from evallint.analysis.interpret import FunctionOps, function_ops, literal_value
from evallint.analysis.ops import (
    Bind, Call, Forward, Mode, Op, SetMode, TrainingFlagAssigned, ValueKind,
)
from evallint.analysis.state import Fact, Origin
from evallint.diagnostics import Severity, other_file_path
from evallint.frontend.cfg import Loop
from evallint.frontend.nodes import child_nodes


def where(context: ModuleContext, node: cst.CSTNode, current: ModuleContext) -> str:
    line = context.source.span_of(node).line
    return f"line {line}" if context is current else f"{other_file_path(context.path)}:{line}"


def code_of(context: ModuleContext, node: cst.CSTNode) -> str:
    text = " ".join(context.source.code_for(node).split())  # one line, for every output format
    return text if len(text) <= 40 else text[:37] + "..."


def receiver_code(context: ModuleContext, op: SetMode) -> str:
    """The model as the code spells it (``state["model"]``) in ``<model>.eval()``."""
    node = op.node
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
        return code_of(context, node.func.value)
    return op.key


def describe_origin(origin: Origin, current: ModuleContext) -> str:
    """``model.eval() at line 12``, ``validate(...) at line 40 (model.eval() at utils.py:8)``,
    or through a chain of calls ``fit(...) at line 9 (through evaluate(...) at line 30,
    model.eval() at line 12)``: the inner call that switches is named too."""
    chain = []
    current_origin: Origin | None = origin
    while current_origin is not None:
        chain.append(f"`{code_of(current_origin.context, current_origin.op.node)}` at "
                     f"{where(current_origin.context, current_origin.op.node, current)}")
        current_origin = current_origin.via
    if len(chain) == 1:
        return chain[0]
    through = "through " if len(chain) > 2 else ""
    return f"{chain[0]} ({through}{', '.join(chain[1:])})"


def is_mode_switcher(function: ProjectFunction, _seen: frozenset = frozenset()) -> bool:
    """A function whose job is to switch modes (``val_start()`` calling ``.eval()`` on its
    parts): it sets modes, directly or through calls, and runs no forward and no training."""
    if function.graph in _seen:
        return False
    analysis = analyze_function(function.context, function.graph)
    if any(True for _ in analysis.ops_of(Forward)) or analysis.trains() or analysis.backpropagates():
        return False
    return any(True for _ in analysis.ops_of(SetMode)) or any(
        is_mode_switcher(op.function, _seen | {function.graph}) for op in analysis.ops_of(Call))


def switching_counterpart(call: Call, mode: Mode) -> str | None:
    """For a call of a mode switcher on an object (``model.val_start()``), a sibling method that
    switches the same parts to ``mode`` (``model.train_start()``), as code to suggest."""
    from evallint.analysis.summary import summarize

    function, receiver = call.function, call.receiver
    cls = function.context.class_of_graph(function.graph)
    switched = summarize(function.context, function.graph, {})
    if cls is None or receiver is None or switched is None or not switched.exit_modes:
        return None
    for graph in function.context.graphs:
        if graph.class_name != cls.qualname or graph is function.graph or graph.name.rpartition(".")[2].startswith("_"):
            continue
        other = summarize(function.context, graph, {})
        if other is not None and switched.exit_modes.keys() <= other.exit_modes.keys() and all(
                {f.mode for f in other.exit_modes[key]} == {mode} for key in switched.exit_modes) \
                and is_mode_switcher(ProjectFunction(function.context, graph)):
            return f"{receiver}.{graph.name.rpartition('.')[2]}()"
    return None


def switching_site(origin: Origin) -> Origin:
    """Where a mode set through a chain of calls belongs: the innermost link, unless it lies in
    a mode switcher, whose call is the site (``self.model.val_start()`` rather than the
    ``.eval()`` calls inside it). The outermost link is never the site."""
    chain = [origin]
    while chain[-1].via is not None:
        chain.append(chain[-1].via)
    index = len(chain) - 1
    while index >= 2 and isinstance(chain[index - 1].op, Call) and is_mode_switcher(chain[index - 1].op.function):
        index -= 1
    return chain[index]


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
    """A ``def train(self, mode=True)`` override of an nn.Module, or a mode-setter like it
    (``set_training_mode(mode)`` that sets ``self.training = mode`` and passes ``mode`` on to its
    children): exempt from every rule."""
    graph = analysis.graph
    if graph.class_name is None:
        return False
    cls = analysis.context.class_of_graph(graph)
    if cls is None or not analysis.context.is_module_class(cls):
        return False
    return graph.name.endswith(".train") or _sets_mode_from_parameter(analysis)


def _sets_mode_from_parameter(analysis: FunctionAnalysis) -> bool:
    params = set(analysis.graph.param_names) - {"self"}
    flags = {op.value.value for op in analysis.ops.all() if isinstance(op, TrainingFlagAssigned)
             and op.key == "self" and isinstance(op.value, cst.Name) and op.value.value in params}
    if not flags:
        return False
    method = analysis.graph.name.rpartition(".")[2]
    for step in analysis.graph.steps():
        node = step.node
        call = node.value if isinstance(node, cst.Expr) else None
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) \
                and call.func.attr.value in ("train", method) and len(call.args) == 1 \
                and isinstance(call.args[0].value, cst.Name) and call.args[0].value.value in flags:
            return True
    return False


def identifiers(analysis: FunctionAnalysis) -> frozenset[str]:
    """Every name and attribute name the function's code mentions (computed once)."""
    cache_key = ("identifiers", analysis.graph)
    cache = analysis.context.cache
    if cache_key not in cache:
        found: set[str] = {analysis.graph.name}
        stack: list[cst.CSTNode] = [analysis.graph.node]
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Name):
                found.add(node.value)
            stack.extend(child_nodes(node))
        cache[cache_key] = frozenset(found)
    return cache[cache_key]  # type: ignore[return-value]


def in_module_method(analysis: FunctionAnalysis) -> bool:
    """A method of an nn.Module: what it calls (a loss, a submodule) runs as part of that model."""
    cls = analysis.context.class_of_graph(analysis.graph)
    return cls is not None and analysis.context.is_module_class(cls)


def part_of_a_model(file: FileAnalysis, analysis: FunctionAnalysis,
                    _seen: frozenset[object] = frozenset()) -> bool:
    """An nn.Module's method, or a helper that only such methods call (directly or through other
    such helpers, in this file): its forward calls run inside the outer model's computation, not
    as an inference of their own."""
    if in_module_method(analysis):
        return True
    sites = file.call_sites.get(analysis.graph)
    if not sites or analysis.graph in _seen:
        return False
    return all(part_of_a_model(file, caller, _seen | {analysis.graph}) for caller, _ in sites)


def linted_functions(file: FileAnalysis) -> list[FunctionAnalysis]:
    return [a for a in file.functions if not is_mode_override(a)]


# pytest's conventions for test code: files, folders, functions and classes.
TEST_FILE = re.compile(r"^(test_\w*|\w+_test|conftest)\.py$")
TEST_FOLDERS = frozenset({"tests", "test"})


def is_test_file(context: ModuleContext) -> bool:
    """``test_*.py``, ``*_test.py``, ``conftest.py``, or a file under ``tests/`` or ``test/``
    (below the project root, so a project that lives in a folder named ``tests`` is not all test)."""
    file = Path(context.file)
    if TEST_FILE.match(file.name):
        return True
    try:
        parts = file.resolve().relative_to(context.project.root).parts[:-1]
    except ValueError:
        parts = file.parts[:-1]
    return any(part in TEST_FOLDERS for part in parts)


def is_test_function(analysis: FunctionAnalysis) -> bool:
    """A ``test_*`` function, or a method of a ``Test*`` class."""
    return any(part.startswith("test_") or part.startswith("Test")
               for part in analysis.graph.name.split("."))


def skip_in_test_code(analysis: FunctionAnalysis, settings) -> bool:
    """EL103 and EL201 stay quiet in test code unless ``test-code = "strict"``: a test that runs a
    fresh model to check shapes is not inference, and gradient waste in a test costs nothing."""
    if settings.strict_test_code:
        return False
    return is_test_file(analysis.context) or is_test_function(analysis)


def construction_binds(analysis: FunctionAnalysis, key: str,
                       origins_seen: Iterable[Origin] = ()) -> list[tuple[Bind, ModuleContext]]:
    """Where the model ``key`` was built: the facts' origins, and constructions in the function."""
    found: list[tuple[Bind, ModuleContext]] = []
    for origin in origins_seen:
        inner = origin.innermost()
        if isinstance(inner.op, Bind) and inner.op.kind is ValueKind.FRESH:
            found.append((inner.op, inner.context))
    for op in analysis.ops_of(Bind):
        if op.kind is ValueKind.FRESH and op.key == key:
            found.append((op, analysis.context))
    return found


def known_mode_free(binds: list[tuple[Bind, ModuleContext]]) -> bool:
    """Is every construction of the model known to hold no mode-dependent layer?"""
    return bool(binds) and all(_built_mode_free(op, context) for op, context in binds)


def deliberate_layer(binds: list[tuple[Bind, ModuleContext]]) -> bool:
    """A single ``nn.Dropout``/``nn.BatchNorm*`` called by itself: its mode is the point."""
    return bool(binds) and all(
        isinstance(op.model_class, str) and torch_api.is_torch_nn_class(op.model_class)
        and torch_api.SINGLE_MODE_LAYERS.match(torch_api.last_part(op.model_class))
        for op, _ in binds)


def builds_mode_dependent_module(context: ModuleContext, call: cst.Call) -> bool:
    """Is ``call`` known to build an nn.Module whose output depends on the mode: a ``torch.nn``
    layer such as Dropout or BatchNorm (or a container holding one, an RNN with dropout), a
    project module class with such a layer, or a model factory? An unknown class is not known."""
    func = call.func
    if not isinstance(func, (cst.Name, cst.Attribute)):
        return False
    symbol = context.resolve(func)
    if isinstance(symbol, ProjectClass):
        return symbol.context.is_module_class(symbol) and not mode_free(symbol)
    if isinstance(symbol, External):
        qualified = symbol.qualified
        if torch_api.is_torch_nn_class(qualified):
            return not (_mode_free_layer(qualified, call) and _arguments_mode_free(context, qualified, call))
        return qualified not in torch_api.NOT_FACTORIES and \
            torch_api.FACTORY_TRAIN_MODE.match(qualified) is not None
    return False


def _built_mode_free(op: Bind, context: ModuleContext) -> bool:
    cls = op.model_class
    if isinstance(cls, ProjectClass):
        return mode_free(cls)
    if isinstance(cls, str) and isinstance(op.node, cst.Call) and torch_api.is_torch_nn_class(cls):
        return _mode_free_layer(cls, op.node) and _arguments_mode_free(context, cls, op.node)
    return False


def severity_for(analysis: FunctionAnalysis, key: str,
                 origins_seen: Iterable[Origin] = ()) -> tuple[Severity, tuple[str, ...]]:
    """Warning when the model is known to have no mode-dependent layer."""
    binds = construction_binds(analysis, key, origins_seen)
    if known_mode_free(binds):
        names = ", ".join(sorted({_class_name(op.model_class) for op, _ in binds}))
        return Severity.WARNING, (
            f"{names} has no Dropout, BatchNorm or other mode-dependent layer, so this has no "
            "effect today; it will once such a layer is added",)
    return Severity.ERROR, ()


def _class_name(cls: object) -> str:
    return cls.qualname if isinstance(cls, ProjectClass) else torch_api.last_part(str(cls))


def mode_free(cls: ProjectClass, _seen: frozenset[int] = frozenset()) -> bool:
    """Does a project nn.Module class contain only layers whose behaviour ignores the mode?

    Its instance methods are read (class- and static methods build other objects), with the
    project helpers they call; a layer that reads ``self.training`` itself (DropPath) depends on
    the mode; containers (Sequential, ModuleList) are judged by what is put in them; a layer
    class held in a variable (``norm_layer(dim)``) is unknown.
    """
    cache_key = ("mode_free", id(cls.node))
    cache = cls.context.cache
    if cache_key not in cache:
        cache[cache_key] = True  # recursion: a class built inside itself
        cache[cache_key] = _body_mode_free(cls.context, cls.node, _seen | {id(cls.node)})
    return cache[cache_key]  # type: ignore[return-value]


def _body_mode_free(context: ModuleContext, root: cst.CSTNode, seen: frozenset[int]) -> bool:
    stack: list[tuple[cst.CSTNode, frozenset[str]]] = [(root, frozenset())]
    while stack:
        node, params = stack.pop()
        if isinstance(node, cst.FunctionDef):
            if _is_class_or_static(node) and node is not root:
                continue
            params = params | {p.name.value for p in (*node.params.params, *node.params.kwonly_params,
                                                       *node.params.posonly_params)
                               if _may_hold_layer_class(p)}
        stack.extend((child, params) for child in child_nodes(node))
        if isinstance(node, cst.Attribute) and node.attr.value == "training" \
                and isinstance(node.value, cst.Name) and node.value.value == "self":
            return False
        if not isinstance(node, cst.Call):
            continue
        func = node.func
        if isinstance(func, cst.Name) and func.value in params:
            return False  # ``norm_layer(dim)``: a layer class from a parameter
        if isinstance(func, (cst.Call, cst.Subscript)) and not _rooted_at_self(func):
            return False  # ``getattr(nn, act)()``, ``LAYERS[name](dim)``
        symbol = context.resolve(func) if isinstance(func, (cst.Name, cst.Attribute)) else None
        if isinstance(symbol, ProjectClass):
            if context.is_module_class(symbol) and not mode_free(symbol, seen):
                return False
        elif isinstance(symbol, ProjectFunction):
            node_id = id(symbol.graph.node)
            if node_id not in seen and not _body_mode_free(symbol.context, symbol.graph.node,
                                                           seen | {node_id}):
                return False  # a helper that builds layers
        elif isinstance(symbol, External) and not _mode_free_layer(symbol.qualified, node):
            return False
    return True


LAYER_PARAMETER = re.compile(r"layer|norm|block|act|module|cell|cls|class|builder|factory|dropout",
                             re.IGNORECASE)


def _may_hold_layer_class(param: cst.Param) -> bool:
    """``norm_layer=nn.BatchNorm2d``, ``block``: a parameter that may hold a layer class (not a
    callback such as ``msg``)."""
    default = param.default
    if isinstance(default, (cst.Name, cst.Attribute)):
        dotted = default.attr.value if isinstance(default, cst.Attribute) else default.value
        if dotted[:1].isupper():
            return True
    return bool(LAYER_PARAMETER.search(param.name.value))


def _rooted_at_self(node: cst.BaseExpression) -> bool:
    while isinstance(node, (cst.Call, cst.Subscript, cst.Attribute)):
        node = node.func if isinstance(node, cst.Call) else node.value
    return isinstance(node, cst.Name) and node.value == "self"


def _arguments_mode_free(context: ModuleContext, qualified: str, call: cst.Call) -> bool:
    """For a container (``nn.Sequential(nn.Conv2d(...), nn.ReLU())``): the layers given to it;
    a starred or variable argument (``nn.Sequential(*layers)``) is not known."""
    if torch_api.last_part(qualified) not in torch_api.CONTAINERS:
        return True
    return all(not arg.star and isinstance(arg.value, (cst.Call, cst.List, cst.Dict, cst.Tuple))
               and _body_mode_free(context, arg.value, frozenset()) for arg in call.args)


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
            return literal_zero(argument(call, "dropout", None), default=True)
        if torch_api.DROPOUT_LAYERS.match(name):
            return literal_zero(argument(call, "p", 0), default=False)  # ``nn.Dropout(0.0)``
        return torch_api.nn_layer_is_model(qualified) is False
    if qualified.startswith("torchvision.ops."):
        return name not in torch_api.TORCHVISION_OPS_MODE_DEPENDENT
    # An unknown class may be a submodule with dropout; plain functions and torch helpers are not.
    return not (name[:1].isupper() and not qualified.startswith(("torch.", "typing.")))


def argument(call: cst.Call, keyword: str, position: int | None) -> cst.BaseExpression | None:
    """The argument of ``call`` given as ``keyword``, or as the ``position``-th positional one."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
    if position is not None and position < len(positional):
        return positional[position].value
    return None


def literal_zero(value: cst.BaseExpression | None, default: bool) -> bool:
    """Is ``value`` a literal 0 (``default`` when there is no value)?"""
    if value is None:
        return default
    return literal_value(value) in ((True, 0), (True, 0.0))


# What a layer that changes with the mode does by itself (``mode_dependent_layer``).
DROPS, BATCH_STATISTICS, READS_TRAINING = "dropout", "batch statistics", "self.training"


def mode_dependent_layer(context: ModuleContext, layer: object, call: cst.Call) -> str | None:
    """What the module built by ``call`` in ``context`` (of the class ``layer``: a ``ProjectClass``
    or an ``External``) does differently in train mode, when that is known: ``DROPS`` (``nn.Dropout(0.5)``,
    torchvision's ``StochasticDepth``), ``BATCH_STATISTICS`` (``nn.BatchNorm2d(c)``, InstanceNorm
    with ``track_running_stats=True``), ``READS_TRAINING`` (a project module whose methods read
    ``self.training``); or what a project module or ``nn.Sequential(...)`` holds. None otherwise:
    ``nn.Dropout(0.0)``, ``nn.BatchNorm1d(c, track_running_stats=False)``, unknown classes."""
    if isinstance(layer, ProjectClass):
        return _class_mode_dependence(layer) if layer.context.is_module_class(layer) else None
    if not isinstance(layer, External):
        return None
    qualified = layer.qualified
    name = torch_api.last_part(qualified)
    if qualified.startswith("torchvision.ops.") and name in torch_api.TORCHVISION_OPS_MODE_DEPENDENT:
        return None if literal_zero(argument(call, "p", 0), default=False) else DROPS
    if not torch_api.is_torch_nn_class(qualified):
        return None
    if name in torch_api.CONTAINERS:
        return next(filter(None, (_built_mode_dependence(context, arg.value)
                                  for arg in call.args if not arg.star)), None)
    if torch_api.DROPOUT_LAYERS.match(name):
        return None if literal_zero(argument(call, "p", 0), default=False) else DROPS
    lazy = name.startswith("Lazy")
    tracking = argument(call, "track_running_stats", 3 if lazy else 4)
    if torch_api.BATCH_NORM_LAYERS.match(name):
        return None if tracking is not None and literal_value(tracking) == (True, False) else BATCH_STATISTICS
    if torch_api.INSTANCE_NORM_LAYERS.match(name):
        return BATCH_STATISTICS if tracking is not None and literal_value(tracking) == (True, True) else None
    return None


def _built_mode_dependence(context: ModuleContext, node: cst.BaseExpression) -> str | None:
    """``mode_dependent_layer`` of a construction written inline (``nn.Sequential(nn.Dropout(0.1))``)."""
    if isinstance(node, (cst.List, cst.Tuple)):
        return next(filter(None, (_built_mode_dependence(context, el.value) for el in node.elements)), None)
    if not isinstance(node, cst.Call) or not isinstance(node.func, (cst.Name, cst.Attribute)):
        return None
    return mode_dependent_layer(context, context.resolve(node.func), node)


def _class_mode_dependence(cls: ProjectClass, _seen: frozenset[int] = frozenset()) -> str | None:
    """A project module class: does it read ``self.training`` in its instance methods, derive
    from a torch.nn dropout or BatchNorm class, or build one (or such a project module) itself?
    Its project base classes count too. Once per class."""
    cache_key = ("mode_dependence", id(cls.node))
    cache = cls.context.cache
    if cache_key in cache:
        return cache[cache_key]  # type: ignore[return-value]
    if id(cls.node) in _seen:
        return None
    seen = _seen | {id(cls.node)}
    found: str | None = None
    for graph in cls.context.graphs:
        if graph.class_name != cls.qualname or _is_class_or_static(graph.node):  # type: ignore[arg-type]
            continue
        found = _body_mode_dependence(cls.context, graph.node, seen)
        if found is not None:
            break
    if found is None:
        for base in cls.context.bases(cls):
            if isinstance(base, ProjectClass) and base.context.is_module_class(base):
                found = _class_mode_dependence(base, seen)
            elif isinstance(base, External) and torch_api.is_torch_nn_class(base.qualified):
                name = torch_api.last_part(base.qualified)
                if torch_api.DROPOUT_LAYERS.match(name):
                    found = DROPS
                elif torch_api.BATCH_NORM_LAYERS.match(name):
                    found = BATCH_STATISTICS
            if found is not None:
                break
    if found is not None or not _seen:  # a negative answer found inside a cycle may be partial
        cache[cache_key] = found
    return found


def _body_mode_dependence(context: ModuleContext, root: cst.CSTNode, seen: frozenset[int]) -> str | None:
    stack: list[cst.CSTNode] = [root]
    while stack:
        node = stack.pop()
        stack.extend(child_nodes(node))
        if isinstance(node, cst.Attribute) and node.attr.value == "training" \
                and isinstance(node.value, cst.Name) and node.value.value == "self":
            return READS_TRAINING
        if not isinstance(node, cst.Call) or not isinstance(node.func, (cst.Name, cst.Attribute)):
            continue
        symbol = context.resolve(node.func)
        if isinstance(symbol, ProjectClass):
            if symbol.context.is_module_class(symbol):
                found = _class_mode_dependence(symbol, seen)
                if found is not None:
                    return found
        elif isinstance(symbol, External):
            found = mode_dependent_layer(context, symbol, node)
            if found is not None:
                return found
    return None


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
    return _self_keys_of_class(context, class_name, "class_model_evidence", _evidence_in)


def _self_keys_of_class(context: ModuleContext, class_name: str, name: str,
                        keys_of: Callable[[FunctionOps], frozenset[str]]) -> frozenset[str]:
    """The ``self.<attr>`` keys that ``keys_of`` finds in any method of the class (once per class)."""
    cache_key = (name, class_name)
    if cache_key not in context.cache:
        context.cache[cache_key] = frozenset(
            key for method in context.graphs if method.class_name == class_name
            for key in keys_of(function_ops(context, method)) if key.startswith("self."))
    return context.cache[cache_key]  # type: ignore[return-value]


def _constructed_in(ops: FunctionOps) -> frozenset[str]:
    return frozenset(op.key for op in ops.all() if isinstance(op, Bind)
                     and op.kind is ValueKind.FRESH and op.model_class is not None)


def known_module(analysis: FunctionAnalysis, key: str, settings) -> bool:
    """Is ``key`` known to be an nn.Module: built from a module class or model factory (in the
    function, or in any method of its class for ``self.<attr>``), ``self`` of a module class, or
    a configured model name? Mode calls alone do not tell."""
    if key in settings.model_names or key.rpartition(".")[2] in settings.model_names:
        return True
    context, graph = analysis.context, analysis.graph
    if key == "self":
        cls = context.class_of_graph(graph)
        return cls is not None and context.is_module_class(cls)
    if key in _constructed_in(analysis.ops):
        return True
    if key.startswith("self.") and graph.class_name is not None:
        return key in _self_keys_of_class(context, graph.class_name, "class_constructed", _constructed_in)
    return False


def is_model_key(analysis: FunctionAnalysis, op: Op, key: str, settings) -> bool:
    """Is ``key`` a model at ``op``: by what the analysis saw, or by a configured name?
    A key whose ``train``/``eval`` is another API is one only if known to be a module."""
    last = key.rpartition(".")[2]
    if key in settings.model_names or last in settings.model_names:
        return True
    if key in analysis.ops.other_mode_api:
        return known_module(analysis, key, settings)
    if any(f.origin is not None and f.mode is not Mode.ENTRY
           and not isinstance(f.origin.op, TrainingFlagAssigned) for f in analysis.facts(op, key)):
        return True
    if key == "self":
        cls = analysis.context.class_of_graph(analysis.graph)
        return cls is not None and analysis.context.is_module_class(cls)
    return key in model_evidence(analysis)


def analysis_holding(file: FileAnalysis, op: Op) -> FunctionAnalysis | None:
    """The analysis of the function (of this file) whose body holds ``op``'s step."""
    cache_key = ("graph_of_step", file)
    cache = file.context.cache
    if cache_key not in cache:
        cache[cache_key] = {id(step): analysis for analysis in file.functions
                            for step in analysis.graph.steps()}
    return cache[cache_key].get(id(op.step))  # type: ignore[union-attr]
