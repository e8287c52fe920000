"""Eval mode reaching a training step: the analysis behind EL101 (caller) and EL102 (callee)."""

from __future__ import annotations

from dataclasses import dataclass, field

from evallint.analysis.dataflow import FunctionAnalysis
from evallint.analysis.file_analysis import FileAnalysis
from evallint.analysis.ops import Backward, Call, Mode, Op, SetMode
from evallint.analysis.state import Origin
from evallint.rules.helpers import known_origins, linted_functions, origins


@dataclass
class Leak:
    """In ``analysis``, ``key`` can be trained at ``step`` while in eval mode set at ``evals``."""

    analysis: FunctionAnalysis
    key: str
    step: Op
    evals: list[Origin]
    hoisted: list[Op] = field(default_factory=list)  # train() calls (or helpers) that run only once


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
    """Is ``train`` a train() call, or a call that sets train mode (``model.train_start()``),
    outside a loop in which eval mode is set before ``step``?"""
    direct = isinstance(train.op, SetMode) and train.via is None
    if train.context is not analysis.context or not (direct or isinstance(train.op, Call)):
        return False
    train_loops = set(train.op.step.loops)
    step_loops = set(step.step.loops)
    return any(loop in step_loops and loop not in train_loops
               for origin in evals for loop in origin.op.step.loops)
