"""Eval mode reaching a training step: the analysis behind EL101 (caller) and EL102 (callee)."""

from __future__ import annotations

from dataclasses import dataclass, field

from evallint.analysis.dataflow import FunctionAnalysis
from evallint.analysis.file_analysis import FileAnalysis
from evallint.analysis.keys import is_within
from evallint.analysis.module import ProjectFunction
from evallint.analysis.ops import Backward, Call, Mode, Op, SetMode
from evallint.analysis.state import Origin
from evallint.analysis.summary import summarize
from evallint.rules.helpers import is_mode_switcher, known_origins, linted_functions, origins


@dataclass
class Leak:
    """In ``analysis``, ``key`` can be trained at ``step`` while in eval mode set at ``evals``."""

    analysis: FunctionAnalysis
    key: str
    step: Op
    evals: list[Origin]
    # train() calls, or calls of a mode switcher (``model.train_start()``), that run only once
    hoisted: list[Op] = field(default_factory=list)


def eval_leaks(file: FileAnalysis) -> list[Leak]:
    """Every model, per function, that a training step can train in eval mode (cached)."""
    cache_key = ("eval_leaks", file)
    if cache_key not in file.context.cache:
        leaks = [leak for analysis in linted_functions(file) for leak in _leaks_in(analysis)]
        file.context.cache[cache_key] = leaks
    return file.context.cache[cache_key]  # type: ignore[return-value]


def _leaks_in(analysis: FunctionAnalysis) -> list[Leak]:
    steps = analysis.training_steps()
    if not steps:
        return []
    backwards = [op for op in steps if isinstance(op, Backward)]
    # "The first training step": the backward() when there is one, else the optimizer step().
    candidates = sorted(backwards or steps, key=lambda op: op.step.order)
    if backwards:
        candidates += sorted((op for op in steps if not isinstance(op, Backward) and
                              op.step.loop not in {b.step.loop for b in backwards}),
                             key=lambda op: op.step.order)
    by_key: dict[str, Leak] = {}
    for op in candidates:
        for key in sorted(analysis.trained_keys(op)):
            facts = analysis.facts(op, key)
            evals = known_origins(facts, Mode.EVAL)
            if not evals:
                continue
            leak = by_key.get(key)
            if leak is None:
                leak = by_key[key] = Leak(analysis, key, op, [])
            for origin in evals:
                if origin not in leak.evals:
                    leak.evals.append(origin)
            for train in origins(facts, Mode.TRAIN):
                if _is_hoisted(analysis, train, op, evals) and train.op not in leak.hoisted:
                    leak.hoisted.append(train.op)  # type: ignore[arg-type]
    return list(by_key.values())


def _is_hoisted(analysis: FunctionAnalysis, train: Origin, step: Op, evals: list[Origin]) -> bool:
    """Is ``train`` a train() call (or a call of a mode switcher that sets train mode) outside a
    loop in which eval mode is set before ``step``?"""
    if train.context is not analysis.context:
        return False
    if not (isinstance(train.op, SetMode) and train.via is None or
            isinstance(train.op, Call) and is_mode_switcher(train.op.function)):
        return False
    train_loops = set(train.op.step.loops)
    step_loops = set(step.step.loops)
    return any(loop in step_loops and loop not in train_loops
               for origin in evals for loop in origin.op.step.loops)


@dataclass
class SiblingLeak:
    """A public method (``predict``) leaves ``self.<attr>`` in eval mode, set at ``origin``, and a
    public sibling (``fit``) trains it in whatever mode it finds it, at ``step``: a user's
    ``fit(); predict(); fit()`` trains in eval mode."""

    leaving: FunctionAnalysis
    origin: Origin
    trainer: FunctionAnalysis
    step: Op
    key: str


def sibling_leaks(file: FileAnalysis) -> list[SiblingLeak]:
    """Eval-mode leaks between public methods of one class (not framework-managed classes,
    whose framework sets the mode before training)."""
    context = file.context
    by_class: dict[str, list[FunctionAnalysis]] = {}
    for analysis in linted_functions(file):
        name = analysis.graph.name.rpartition(".")[2]
        cls = context.class_of_graph(analysis.graph)
        if cls is None or name.startswith("_") or context.is_framework_managed(cls) \
                or context.is_lightning_class(cls):
            continue
        by_class.setdefault(analysis.graph.class_name, []).append(analysis)
    switchers = {a for methods in by_class.values() for a in methods
                 if is_mode_switcher(ProjectFunction(context, a.graph))}
    found: list[SiblingLeak] = []
    for methods in by_class.values():
        trained = {a: _trained_at_entry(a) for a in methods}
        for leaving in methods:
            if leaving in switchers:
                continue  # ``val_start()``: switching is its job
            summary = summarize(context, leaving.graph, {})
            if summary is None:
                continue
            for key, facts in summary.exit_modes.items():
                for origin in known_origins(facts, Mode.EVAL):
                    inner = origin.innermost()
                    if inner.context is not context or not isinstance(inner.op, SetMode):
                        continue
                    trainer = next(((a, op) for a, steps in trained.items() if a is not leaving
                                    for trained_key, op in steps
                                    if trained_key == key or is_within(key, trained_key)), None)
                    if trainer is not None:
                        found.append(SiblingLeak(leaving, origin, trainer[0], trainer[1], key))
    return found


def _trained_at_entry(analysis: FunctionAnalysis) -> list[tuple[str, Op]]:
    """``self.<attr>`` keys the method trains in the mode its caller left them in, with the
    first training step that does."""
    found: dict[str, Op] = {}
    for op in sorted(analysis.training_steps(), key=lambda o: o.step.order):
        for key in analysis.trained_keys(op):
            if key.startswith("self.") and key not in found and \
                    any(f.mode is Mode.ENTRY for f in analysis.facts(op, key)):
                found[key] = op
    return list(found.items())
