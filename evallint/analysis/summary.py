"""Function summaries: what calling a project function does to the caller's models.

A summary speaks in the callee's keys (``model`` for a parameter, ``self.net``, a global);
``FunctionAnalysis.map_key`` translates them at each call site. Recursion is cut: a call to a
function whose summary is being computed has no effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evallint.analysis.dataflow import FunctionAnalysis, analyze_function
from evallint.analysis.interpret import RETURN_KEY
from evallint.analysis.keys import head, is_within
from evallint.analysis.ops import Forward, Mode, SetMode
from evallint.analysis.state import ENTRY, Fact
from evallint.frontend.cfg import FunctionGraph, StepKind

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext


@dataclass(frozen=True)
class Summary:
    exit_modes: dict[str, frozenset[Fact]]  # caller-visible keys whose mode the function changes
    returns: frozenset[Fact] | None  # mode facts of the returned model, if any
    trains: bool  # an optimizer step is reachable (directly or through calls)
    trained_at_entry: frozenset[str]  # keys trained while in the mode the caller left them in
    forwarded: frozenset[str]  # keys called forward outside no-grad
    inferred_at_entry: frozenset[str]  # keys run for inference in the caller's mode
    inferred_without_grad: frozenset[str]  # ... of which under no-grad (inference wherever called)


_IN_PROGRESS = object()


def summarize(context: "ModuleContext", graph: FunctionGraph,
              literals: dict[str, object]) -> Summary | None:
    """The summary of ``graph`` for these literal arguments; None while it is being computed."""
    relevant = _literal_parameters(context, graph)
    bindings = {name: value for name, value in literals.items() if name in relevant}
    cache_key = ("summary", graph, tuple(sorted(bindings.items(), key=repr)))
    cached = context.cache.get(cache_key)
    if cached is _IN_PROGRESS:
        return None
    if cached is not None:
        return cached  # type: ignore[return-value]
    context.cache[cache_key] = _IN_PROGRESS
    try:
        summary = _build(analyze_function(context, graph, bindings))
    finally:
        context.cache.pop(cache_key, None)
    context.cache[cache_key] = summary
    return summary


def _literal_parameters(context: "ModuleContext", graph: FunctionGraph) -> set[str]:
    """Parameters whose literal value at a call site can change the effect (tests, train(x))."""
    cache_key = ("literal_params", graph)
    if cache_key not in context.cache:
        from evallint.analysis.dataflow import _names
        from evallint.analysis.interpret import function_ops

        params = set(graph.param_names)
        used: set[str] = set()
        for step in graph.steps():
            if step.kind is StepKind.TEST:
                used |= _names(step.node) & params
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


def _build(analysis: FunctionAnalysis) -> Summary:
    exit_modes: dict[str, frozenset[Fact]] = {}
    returns: frozenset[Fact] = frozenset()
    for part in analysis.exit_parts:
        for key, facts in part.modes.items():
            if is_external_key(analysis, key):
                exit_modes[key] = exit_modes.get(key, frozenset()) | facts
        if RETURN_KEY in part.modes:
            returns |= part.modes[RETURN_KEY]
        else:
            returns |= ENTRY
    for key, facts in list(exit_modes.items()):
        # Keys missing from some exit part were untouched on that path.
        if any(key not in part.modes for part in analysis.exit_parts):
            facts |= ENTRY
        if facts == ENTRY:
            del exit_modes[key]
        else:
            exit_modes[key] = facts
    trained: set[str] = set()
    for step in analysis.training_steps():
        for key in analysis.trained_keys(step):
            if is_external_key(analysis, key) and \
                    any(f.mode is Mode.ENTRY for f in analysis.facts(step, key)):
                trained.add(key)
    inferred: set[str] = set()
    without_grad: set[str] = set()
    for op in analysis.ops_of(Forward):
        if is_external_key(analysis, op.key) and analysis.is_inference(op) and \
                any(f.mode is Mode.ENTRY for f in analysis.facts(op, op.key)):
            inferred.add(op.key)
            if analysis.grad_disabled(op):
                without_grad.add(op.key)
    return Summary(
        exit_modes=exit_modes,
        returns=returns if any(f.mode is not Mode.ENTRY for f in returns) else None,
        trains=analysis.trains(),
        trained_at_entry=frozenset(trained),
        forwarded=frozenset(k for k in analysis.forwarded_outside_no_grad()
                            if is_external_key(analysis, k)),
        inferred_at_entry=frozenset(inferred),
        inferred_without_grad=frozenset(without_grad),
    )
