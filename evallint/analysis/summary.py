"""Function summaries: what calling a project function does to the caller's models.

A summary speaks in the callee's keys (``model`` for a parameter, ``self.net``, a global);
``FunctionAnalysis.map_key`` translates them at each call site. Recursion is cut: a call to a
function whose summary is being computed has no effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evallint.analysis.dataflow import FunctionAnalysis, analyze_function
from evallint.analysis.interpret import RETURN_KEY, classes_key
from evallint.analysis.keys import head, is_within
from evallint.analysis.ops import Export, Forward, Mode, SetMode, Yield
from evallint.analysis.state import ENTRY, Fact, Grad
from evallint.frontend.cfg import FunctionGraph, StepKind
from evallint.frontend.names import names_read

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext, ProjectClass


@dataclass(frozen=True)
class Summary:
    exit_modes: dict[str, frozenset[Fact]]  # caller-visible keys whose mode the function changes
    # For generators: the same at their ``yield`` (where a ``@contextmanager``'s with body runs).
    yield_modes: dict[str, frozenset[Fact]] | None
    returns: frozenset[Fact] | None  # mode facts of the returned model, if any
    returns_parameter: str | None  # the parameter every return gives back (``unwrap(m)``)
    trains: bool  # an optimizer step is reachable (directly or through calls)
    backpropagates: bool  # a backward is reachable (directly or through calls)
    # A training backward runs in the grad state the caller is in (directly or through calls).
    backward_in_caller_grad: bool
    trained_at_entry: frozenset[str]  # keys trained while in the mode the caller left them in
    forwarded: frozenset[str]  # keys called forward outside no-grad
    inferred_at_entry: frozenset[str]  # keys run for inference in the caller's mode
    inferred_without_grad: frozenset[str]  # ... of which under no-grad (inference wherever called)
    # ... of which in the caller's grad state, outside any no-grad region of the callee's own
    # (in a function whose gradients are not the point): EL201 at the call of an eval model.
    inferred_in_caller_grad: frozenset[str]
    exported_at_entry: frozenset[str]  # keys traced/exported in the mode the caller left them in


_IN_PROGRESS = object()


def summarize(context: "ModuleContext", graph: FunctionGraph, literals: dict[str, object],
              classes: dict[str, "ProjectClass"] | None = None) -> Summary | None:
    """The summary of ``graph`` for these literal arguments and classes of its keys (see
    ``function_ops``); None while it is being computed."""
    relevant = _literal_parameters(context, graph)
    bindings = {name: value for name, value in literals.items() if name in relevant}
    cache_key = ("summary", graph, tuple(sorted(bindings.items(), key=repr)), classes_key(classes))
    cached = context.cache.get(cache_key)
    if cached is _IN_PROGRESS:
        return None
    if cached is not None:
        return cached  # type: ignore[return-value]
    context.cache[cache_key] = _IN_PROGRESS
    try:
        summary = _build(analyze_function(context, graph, bindings, classes))
    finally:
        context.cache.pop(cache_key, None)
    context.cache[cache_key] = summary
    return summary


def _literal_parameters(context: "ModuleContext", graph: FunctionGraph) -> set[str]:
    """Parameters whose literal value at a call site can change the effect (tests, train(x))."""
    cache_key = ("literal_params", graph)
    if cache_key not in context.cache:
        from evallint.analysis.interpret import function_ops

        params = set(graph.param_names)
        used: set[str] = set()
        for step in graph.steps():
            if step.kind is StepKind.TEST:
                used |= names_read(step.node) & params
        for op in function_ops(context, graph).all():
            if isinstance(op, SetMode) and op.restore_var in params:
                used.add(op.restore_var)
        context.cache[cache_key] = used
    return context.cache[cache_key]  # type: ignore[return-value]


def is_external_key(analysis: FunctionAnalysis, key: str) -> bool:
    """Does ``key`` name something the caller gave (parameter, ``self``, global), not a local?"""
    if key == RETURN_KEY:
        return False
    for assigned in analysis.ops.assigned:
        if key == assigned or is_within(key, assigned):
            return False
    name = head(key)
    graph = analysis.graph
    if graph.is_module:
        return False
    if name == "self":
        return graph.class_name is not None
    return True


def _caller_visible_modes(analysis: FunctionAnalysis, parts) -> dict[str, frozenset[Fact]]:
    """The modes that ``parts`` give the keys the caller can see, where they differ from entry."""
    modes: dict[str, frozenset[Fact]] = {}
    for part in parts:
        for key, facts in part.modes.items():
            if is_external_key(analysis, key) and facts != analysis.entry_modes.get(key):
                modes[key] = modes.get(key, frozenset()) | facts
    for key, facts in list(modes.items()):
        # Keys missing from some part were untouched on that path.
        if any(key not in part.modes for part in parts):
            facts |= ENTRY
        if facts == ENTRY:
            del modes[key]
        else:
            modes[key] = facts
    return modes


def _build(analysis: FunctionAnalysis) -> Summary:
    exit_modes = _caller_visible_modes(analysis, analysis.exit_parts)
    returns: frozenset[Fact] = frozenset()
    for part in analysis.exit_parts:
        if RETURN_KEY in part.modes:
            returns |= part.modes[RETURN_KEY]
        else:
            returns |= ENTRY
    yields = [part for op in analysis.ops_of(Yield) for part in analysis.parts(op)]
    trained: set[str] = set()
    for step in analysis.training_steps():
        for key in analysis.trained_keys(step):
            if is_external_key(analysis, key) and \
                    any(f.mode is Mode.ENTRY for f in analysis.facts(step, key)):
                trained.add(key)
    inferred: set[str] = set()
    without_grad: set[str] = set()
    in_caller_grad: set[str] = set()
    gradients_are_the_point = analysis.uses_gradients() and not analysis.trains()
    for op in analysis.ops_of(Forward):
        if is_external_key(analysis, op.key) and analysis.is_inference(op) and \
                any(f.mode is Mode.ENTRY for f in analysis.facts(op, op.key)):
            inferred.add(op.key)
            if analysis.grad_disabled(op):
                without_grad.add(op.key)
            elif analysis.lexical_grad(op) is None and not gradients_are_the_point and \
                    {state for state, _ in analysis.grad_states(op)} == {Grad.ENTRY}:
                in_caller_grad.add(op.key)
    return Summary(
        exit_modes=exit_modes,
        yield_modes=_caller_visible_modes(analysis, yields) if yields else None,
        returns=returns if any(f.mode is not Mode.ENTRY for f in returns) else None,
        returns_parameter=_returned_parameter(analysis),
        trains=analysis.trains(),
        backpropagates=analysis.backpropagates(),
        backward_in_caller_grad=any(
            state == Grad.ENTRY for op in analysis.grad_sensitive_steps()
            for state, _ in analysis.grad_states(op)),
        trained_at_entry=frozenset(trained),
        forwarded=frozenset(k for k in analysis.forwarded_outside_no_grad()
                            if is_external_key(analysis, k)),
        inferred_at_entry=frozenset(inferred),
        inferred_without_grad=frozenset(without_grad),
        inferred_in_caller_grad=frozenset(in_caller_grad),
        exported_at_entry=frozenset(
            op.key for op in analysis.ops_of(Export) if not op.eval_requested
            and is_external_key(analysis, op.key)
            and any(f.mode is Mode.ENTRY for f in analysis.facts(op, op.key))),
    )


def _returned_parameter(analysis: FunctionAnalysis) -> str | None:
    """The parameter that every ``return`` of the function gives back unchanged, if one does."""
    from evallint.analysis.ops import Bind, ValueKind

    returns = [op for op in analysis.ops_of(Bind) if op.key == RETURN_KEY]
    sources = {op.source for op in returns if op.kind is ValueKind.ALIAS}
    if len(returns) and len(sources) == 1 and all(op.kind is ValueKind.ALIAS for op in returns):
        name = next(iter(sources))
        if name in analysis.graph.param_names and name not in analysis.ops.assigned and name != "self":
            return name
    return None


def constructed_mode(cls: "ProjectClass") -> Mode:
    """The mode of a new instance of a project nn.Module class, as its ``__init__`` leaves it.

    Train mode, unless ``__init__`` switches ``self`` (EVAL), or holds submodules it switched or
    was given (a wrapper such as ``AutoShape(model)``: the mode of its parts is not its own).
    """
    import libcst as cst

    from evallint.analysis.ops import Bind, ValueKind

    cache_key = ("constructed_mode", cls.node)
    cache = cls.context.cache
    if cache_key in cache:
        return cache[cache_key]  # type: ignore[return-value]
    cache[cache_key] = Mode.TRAIN  # recursion: a class built inside its own __init__
    mode = Mode.TRAIN
    given: set[str] = set()
    for owner in class_and_bases(cls):
        init = owner.context.functions.get(f"{owner.qualname}.__init__")
        if init is None:
            continue
        analysis = analyze_function(owner.context, init)
        for part in analysis.exit_parts:
            for key, facts in part.modes.items():
                if key != "self" and not key.startswith("self."):
                    continue
                modes = {f.mode for f in facts if f.origin is not None}
                if key == "self" and Mode.EVAL in modes:
                    mode = Mode.EVAL
                elif modes & {Mode.EVAL, Mode.UNKNOWN} and mode is Mode.TRAIN:
                    mode = Mode.UNKNOWN
        # Submodules it was given or loaded (not built), that its methods call forward; a base
        # class's ``__init__`` (``super().__init__(model)``) counts too. ``self.blocks += [block]``
        # extends a container it built.
        given |= {op.key for op in analysis.ops_of(Bind) if op.key.startswith("self.")
                  and op.kind not in (ValueKind.FRESH, ValueKind.NOT_MODEL, ValueKind.OPTIMIZER)
                  and not isinstance(op.step.node, cst.AugAssign)
                  and not _builds_new_module(analysis, op) and not _constructs_external(op)}
    if given and mode is Mode.TRAIN and any(_calls_forward(owner, given) for owner in class_and_bases(cls)):
        mode = Mode.UNKNOWN
    cache[cache_key] = mode
    return mode


def class_and_bases(cls: "ProjectClass") -> list["ProjectClass"]:
    """``cls`` and its project base classes, nearest first."""
    from evallint.analysis.module import ProjectClass

    found: list[ProjectClass] = []
    pending = [cls]
    while pending:
        current = pending.pop(0)
        if any(c.node is current.node for c in found):
            continue
        found.append(current)
        pending.extend(b for b in current.context.bases(current) if isinstance(b, ProjectClass))
    return found


def _constructs_external(bind) -> bool:
    """``self.bert = BertModel(config)``: a class from outside the project, built here; also a
    class looked up by name (``getattr(upsample, cfg.net)(**params)``, ``NETS[name]()``), and
    ``Net() if cfg.use_net else None``."""
    import libcst as cst

    from evallint.analysis.ops import ValueKind

    statement = bind.step.node
    value = statement.value if isinstance(statement, (cst.Assign, cst.AnnAssign)) else None
    return bind.kind is ValueKind.UNKNOWN and value is not None and _builds_object(value)


def _builds_object(value) -> bool:
    import libcst as cst

    from evallint.analysis.interpret import literal_value

    if isinstance(value, cst.IfExp):
        branches = [b for b in (value.body, value.orelse) if not literal_value(b)[0]]
        return bool(branches) and all(_builds_object(b) for b in branches)
    if not isinstance(value, cst.Call):
        return False
    func = value.func
    if isinstance(func, cst.Subscript) or (
            isinstance(func, cst.Call) and isinstance(func.func, cst.Name) and func.func.value == "getattr"):
        return True
    name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
    return name[:1].isupper()


def _builds_new_module(analysis: FunctionAnalysis, bind) -> bool:
    """``self.layers = self._make_layers(cfg)``: a helper that returns a freshly built module."""
    from evallint.analysis.ops import ValueKind

    if bind.kind is not ValueKind.CALL_RESULT or bind.call is None:
        return False
    summary = analysis.summary_of(bind.call)
    if summary is not None and summary.returns is not None \
            and all(fact.mode is Mode.TRAIN for fact in summary.returns):
        return True
    # ``def conv3x3(i, o): return nn.Conv2d(i, o, 3)``: every return builds a layer.
    from evallint.analysis.interpret import function_ops
    from evallint.analysis.ops import Bind

    callee = bind.call.function
    returns = [op for op in function_ops(callee.context, callee.graph).all()
               if isinstance(op, Bind) and op.key == RETURN_KEY]
    return bool(returns) and all(op.kind in (ValueKind.FRESH, ValueKind.NOT_MODEL) for op in returns)


def _calls_forward(cls: "ProjectClass", keys: set[str]) -> bool:
    """Does a method call one of ``keys`` forward, or loop over it (``for m in self.model``)?"""
    from evallint.analysis.interpret import function_ops
    from evallint.analysis.ops import Bind

    prefix = f"{cls.qualname}."
    for name, graph in cls.context.functions.items():
        if name.startswith(prefix) and graph.class_name == cls.qualname:
            if any((isinstance(op, Forward) and op.key in keys)
                   or (isinstance(op, Bind) and op.elements_of in keys)
                   for op in function_ops(cls.context, graph).all()):
                return True
    return False
