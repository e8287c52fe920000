"""EL103: evaluation or inference runs while the model is known to be in train mode."""

from __future__ import annotations

from typing import Iterator

from evallint.analysis import torch_api
from evallint.analysis.ops import Call, Forward, Mode, Op, SetMode
from evallint.diagnostics import Diagnostic
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import (
    code_of, construction_binds, deliberate_layer, describe_origin, identifiers, known_mode_free,
    known_origins, linted_functions, part_of_a_model, related_for, severity_for,
    skip_in_test_code,
)


class InferenceInTrainMode(Rule):
    code = "EL103"
    name = "inference-in-train-mode"
    summary = "The model runs evaluation or inference while it is in train mode"
    what_it_does = (
        "Finds forward calls made for evaluation or inference (inside a no-grad region, or in a "
        "function or loop with no training step) on a model known to be in train mode: freshly "
        "constructed or loaded and never `.eval()`'d, or after `.train()` with no `.eval()` in "
        "between. A model whose mode is unknown (a function parameter) is not reported, nor one "
        "that the same function put in train mode itself without training it: that train mode "
        "is asked for (re-estimating BatchNorm statistics, Monte Carlo dropout, gradient checks, "
        "tests of train-mode behaviour). Not inference either: a forward whose result reaches "
        "`backward()` or `torch.autograd.grad`, a shape probe (`model(torch.zeros(...)).shape`), "
        "a call inside an nn.Module's own methods (a loss or submodule is part of that model), a "
        "single Dropout/BatchNorm layer called by itself, and a no-grad pass of a model that the "
        "same loop trains (features cached for gradient accumulation). Models known to hold no "
        "mode-dependent layer are not reported (the output cannot differ), nor test code unless "
        "`test-code = \"strict\"`."
    )
    why_bad = (
        "In train mode Dropout randomly zeroes activations and BatchNorm normalises with the "
        "statistics of the current batch (and updates its running averages). Predictions are "
        "noisy and depend on the batch; metrics are wrong."
    )
    INVALID = (
        '''import torch
from torch import nn

model = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.Linear(16, 2))
model.load_state_dict(torch.load("model.pt"))
with torch.no_grad():
    preds = model(batch)  # EL103: still in train mode
''',
    )
    VALID = (
        '''import torch
from torch import nn

model = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.Linear(16, 2))
model.load_state_dict(torch.load("model.pt"))
model.eval()
with torch.no_grad():
    preds = model(batch)
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        current = ctx.analysis.context
        for analysis in linted_functions(ctx.analysis):
            if skip_in_test_code(analysis, ctx.settings) or part_of_a_model(ctx.analysis, analysis):
                continue
            seen: set[tuple[object, str]] = set()

            for op, key in _inference_uses(analysis):
                trains = known_origins(analysis.facts(op, key), Mode.TRAIN)
                if not trains or _train_mode_chosen_here(analysis, key, trains, op):
                    continue
                binds = construction_binds(analysis, key, trains)
                if known_mode_free(binds) or deliberate_layer(binds):
                    continue  # the output cannot differ, or the layer's own mode is the point
                group = (op.step.loop, key)
                if group in seen:
                    continue
                seen.add(group)
                severity, notes = severity_for(analysis, key, trains)
                how = "runs inference" if isinstance(op, Forward) else \
                    f"is used for inference by `{code_of(current, op.node)}`"
                yield ctx.diagnostic(
                    self, op.node,
                    f"`{key}` {how} while in train mode (from {describe_origin(trains[0], current)}); "
                    f"call `{key}.eval()` first",
                    related=tuple(related_for(trains[0], "train mode from here")),
                    severity=severity, notes=notes)


def _train_mode_chosen_here(analysis, key: str, trains: list, op: Op) -> bool:
    """``model.train()`` by this very function, which never trains that model, where the code
    says the train mode is the point: it backpropagates through that model, puts it back in eval
    mode afterwards, or re-estimates BatchNorm statistics or samples with dropout (``momentum``,
    ``reset_running_stats``, ``mc_samples``, ...). A plain evaluation that calls ``train()``
    instead of ``eval()`` is reported."""
    if not all(origin.via is None and isinstance(origin.op, SetMode) for origin in trains):
        return False
    model = analysis.targets(op, key)  # ``model = self.model``: one model under two names
    if model & analysis.trained_anywhere():
        return False
    if _gradient_computation_on(analysis, model):
        return True
    restores_eval = any(mode_op.mode is Mode.EVAL and mode_op.step.order > op.step.order
                        and model & analysis.targets(mode_op, mode_op.key)
                        for mode_op in analysis.ops_of(SetMode))
    return restores_eval or bool(torch_api.DELIBERATE_TRAIN_MODE.search(" ".join(identifiers(analysis))))


def _gradient_computation_on(analysis, model: set[str]) -> bool:
    """Does the function backpropagate through a forward of ``model`` (its tracked keys), direct
    or through a helper given the model (``logits = self._forward(model, x)``)? Then the train
    mode it set is for that gradient computation (a training step whose optimizer steps
    elsewhere), and its other passes belong to it."""
    return any(analysis.feeds_gradient(op) for op in analysis.ops_of(Forward)
               if model & analysis.targets(op, op.key)) or any(
        analysis.feeds_gradient(op) for op in analysis.ops_of(Call)
        if any(model & analysis.targets(op, k) for k in (*op.arguments.values(), op.receiver) if k))


def _inference_uses(analysis) -> Iterator[tuple[Op, str]]:
    """Forward calls for inference, and calls of functions that run inference on an argument."""
    uses: list[tuple[Op, str]] = []
    for op in analysis.ops_of(Forward):
        if analysis.is_inference(op):
            uses.append((op, op.key))
    for op in analysis.ops_of(Call):
        summary = analysis.summary_of(op)
        if summary is None or analysis.feeds_gradient(op):
            continue  # ``out = forward_helper(model, x)`` whose result is backpropagated
        # A callee's no-grad forward is inference wherever it is called; one that is inference
        # only because the callee has no training step may feed a loss that the caller trains on.
        keys = summary.inferred_at_entry if analysis.is_inference(op) else summary.inferred_without_grad
        for callee_key in sorted(keys):
            for part in analysis.parts(op):
                for key in analysis.map_key(callee_key, op, part):
                    uses.append((op, key))
    uses.sort(key=lambda use: use[0].step.order)
    yield from uses
