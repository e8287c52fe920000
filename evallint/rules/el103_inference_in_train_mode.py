"""EL103: evaluation or inference runs while the model is known to be in train mode."""

from __future__ import annotations

import dataclasses
from typing import Iterator

import libcst as cst

from evallint.analysis import torch_api
from evallint.analysis.dataflow import FunctionAnalysis
from evallint.analysis.keys import head, is_within, key_of
from evallint.analysis.ops import BadModeArgument, Call, Forward, Mode, Op, SetMode
from evallint.analysis.state import Origin
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix
from evallint.frontend.source import SourceModule
from evallint.rules.base import Rule, RuleContext
from evallint.rules.edits import (
    LOOPS, Frame, body_of, bound_keys, contains, insert_after, insert_before, is_docstring,
    jumps_out, key_names, merge_edits, model_expression, outermost_clear, rebound, statement_frames,
)
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
    fix_safety = (
        "The fix puts the model in eval mode where the analysis can tell the right place: "
        "`model.train()` becomes `model.eval()` when that call in the same function is the "
        "only source of train mode and the function never trains the model; `model.eval()` "
        "goes first in the function body when the model is a parameter or `self.<attr>` that "
        "the function never trains; otherwise just before the statement that holds the "
        "inference (the evaluation loop or `with torch.no_grad():` block, as far out as it "
        "holds no training of the model and no place that sets its train mode; inside a loop, "
        "the branch of an `if` that evaluates), and `model.train()` after it when a training "
        "step of the model follows on the same path before any `model.train()`. No fix when "
        "the model cannot be spelled as code (`models[*]`) or is rebound on the way, or when "
        "that block can be left by `break`/`continue`/`return` before training resumes. When "
        "the train mode comes from `model.train(\"eval\")`, EL107's fix goes first. It is "
        "unsafe: code that relied on train mode there (BatchNorm statistics updates, dropout "
        "sampling) changes behaviour, and a caller's model is left in eval mode."
    )
    fix_applicability = Applicability.UNSAFE
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
                    severity=severity, notes=notes, fix=_waiting_for_el107(analysis, trains, eval_fix(analysis, op, key, trains)))


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


# -- the fix ----------------------------------------------------------------------------------

def _waiting_for_el107(analysis: FunctionAnalysis, trains: list[Origin], fix: Fix | None) -> Fix | None:
    """When the train mode comes from ``model.train("eval")``, EL107's fix (``model.eval()``)
    goes first."""
    bad = {id(op.node) for op in analysis.ops_of(BadModeArgument)}
    if fix is None or not any(id(origin.op.node) in bad for origin in trains):
        return fix
    return dataclasses.replace(fix, waits_for=("EL107",))


def eval_fix(analysis: FunctionAnalysis, op: Op, key: str, trains: list[Origin]) -> Fix | None:
    """Put the model in eval mode before this inference (see ``fix_safety``), or None."""
    source = analysis.context.source
    function = analysis.graph.node
    body = body_of(function)
    frames = statement_frames(function, op.node)
    model = model_expression(source, key, _model_node(op, key))
    if body is None or not frames or model is None:
        return None
    if isinstance(op, Call) and key_names(model) != {head(model)}:
        return None  # ``heads[task]`` of the callee: ``task`` means nothing here
    model_key = key_of(cst.parse_expression(model)) or key
    keys = analysis.targets(op, key) | {key, model_key}
    if keys & analysis.ops.other_mode_api:
        return None  # ``model.eval(True)`` elsewhere: the analysis would not see a new ``eval()``
    trained = _training_of(analysis, keys)
    local = [o for o in trains if o.context is analysis.context and o.op in _ops_of(analysis)]
    replaced = _train_call_replaced(source, analysis, op, trains, trained)
    if replaced is not None:
        return replaced
    if not local and not trained and isinstance(function, cst.FunctionDef) \
            and _callers_model(analysis, model_key, body):
        start = 1 if is_docstring(body[0]) and len(body) > 1 else 0
        edit = insert_before(source, body[start], [f"{model}.eval()"])
        return edit and Fix(f"Call `{model}.eval()` at the top of the function", (edit,),
                            Applicability.UNSAFE)
    # The outermost statement around the inference that holds no training of the model, no
    # place its train mode comes from, and no rebinding of its name.
    chosen = outermost_clear(source, frames, [*(t.node for t in trained), *(o.op.node for o in local)],
                             model_key)
    if chosen is None:
        return None
    in_loop = any(isinstance(f.statement, LOOPS) for f in frames[:frames.index(chosen)])
    block: list[cst.BaseStatement] = [chosen.statement]
    if in_loop and isinstance(chosen.statement, cst.If):
        branch = _branch_holding(source, chosen.statement, op.node)
        if branch is not None:  # ``if step % 500 == 0:`` in a training loop: switch inside it
            block = list(branch)
    edits = [insert_before(source, block[0], [f"{model}.eval()"])]
    restores = _training_follows(source, analysis, frames, chosen, keys)
    if restores:
        if jumps_out(block):
            return None  # ``continue`` would skip the ``train()`` after the block
        edits.append(insert_after(source, block[-1], [f"{model}.train()"]))
    if None in edits:
        return None
    around = " and `.train()` after it" if restores else ""
    return Fix(f"Call `{model}.eval()` before the evaluation{around}",
               merge_edits(edits), Applicability.UNSAFE)  # type: ignore[arg-type]


def _model_node(op: Op, key: str) -> cst.BaseExpression | None:
    """The model as the forward call spells it (``self.net`` in ``self.net(x)`` or
    ``self.net.forward(x)``)."""
    if isinstance(op, Forward) and isinstance(op.node, cst.Call):
        func = op.node.func
        for candidate in (func, func.value if isinstance(func, cst.Attribute) else None):
            if candidate is not None and key_of(candidate) == key:
                return candidate
    return None


def _ops_of(analysis: FunctionAnalysis) -> set[Op]:
    cache_key = ("op_set", analysis.graph, id(analysis.ops))
    cache = analysis.context.cache
    if cache_key not in cache:
        cache[cache_key] = set(analysis.ops.all())
    return cache[cache_key]  # type: ignore[return-value]


def _same_model(keys: set[str], others: set[str]) -> bool:
    return any(a == b or is_within(a, b) or is_within(b, a) for a in keys for b in others)


def _training_of(analysis: FunctionAnalysis, keys: set[str]) -> list[Op]:
    """The training steps of the function that train the model (or may: a call given it)."""
    found = []
    for step in analysis.training_steps():
        if _same_model(keys, analysis.trained_keys(step)) or isinstance(step, Call) and _same_model(
                keys, {k for k in (*step.arguments.values(), step.receiver) if k}):
            found.append(step)
    return found


def _train_call_replaced(source: SourceModule, analysis: FunctionAnalysis, op: Op,
                         trains: list[Origin], trained: list[Op]) -> Fix | None:
    """``model.train()`` where ``model.eval()`` was meant: the only source of the train mode,
    a plain statement of this function, which never trains the model."""
    calls = {id(o.op) for o in trains}
    origin = trains[0]
    if len(calls) != 1 or trained or origin.via is not None or origin.context is not analysis.context \
            or not isinstance(origin.op, SetMode) or origin.op.restore_var is not None \
            or origin.op.chosen_by is not None or origin.op not in _ops_of(analysis):
        return None
    node = origin.op.node
    if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "train" and not node.args):
        return None
    span = source.span_of(node.func.attr)
    receiver = " ".join(source.code_for(node.func.value).split())
    return Fix(f"Call `{receiver}.eval()` instead of `{receiver}.train()`",
               (Edit(span, "eval"),), Applicability.UNSAFE)


def _callers_model(analysis: FunctionAnalysis, key: str, body) -> bool:
    """Is the model a parameter or ``self.<attr>`` that the function never rebinds?"""
    name = head(key)
    if name != "self" and name not in analysis.graph.param_names:
        return False
    return not rebound(key, bound_keys(body))


def _branch_holding(source: SourceModule, statement: cst.If, node: cst.CSTNode):
    """The statements of the branch of an ``if``/``elif``/``else`` that holds ``node``, when it
    is an indented block."""
    current: cst.BaseSuite | cst.If | None = statement
    while isinstance(current, cst.If):
        if contains(source, current.body, node):
            return current.body.body if isinstance(current.body, cst.IndentedBlock) else None
        orelse = current.orelse
        if isinstance(orelse, cst.Else):
            return orelse.body.body if isinstance(orelse.body, cst.IndentedBlock) \
                and contains(source, orelse.body, node) else None
        current = orelse
    return None


def _training_follows(source: SourceModule, analysis: FunctionAnalysis, frames: list[Frame],
                      chosen: Frame, keys: set[str]) -> bool:
    """After ``chosen``, can a training step of the model run, in the mode it finds, before a
    line that sets train mode (``model.train()``, or a call that trains the model and switches
    it to train mode itself, such as ``train_epoch(model)``)? Walks the statements after it,
    around the loops that hold it (back to the top of their body), and out to the enclosing
    statements."""
    in_found_mode = [t for t in analysis.training_steps() if _same_model(keys, analysis.trained_keys(t))]
    setters: list[Op] = [o for o in analysis.ops_of(SetMode) if o.mode is Mode.TRAIN and o.restore_var is None
                         and o.chosen_by is None and _same_model(keys, analysis.targets(o, o.key))]
    setters += [t for t in _training_of(analysis, keys) if t not in in_found_mode]

    def verdict(statement: cst.BaseStatement) -> bool | None:
        if isinstance(statement, cst.SimpleStatementLine) and any(
                contains(source, statement, o.node) for o in setters):
            return False
        if any(contains(source, statement, t.node) for t in in_found_mode):
            return True
        return None

    position = frames.index(chosen)
    for frame in reversed(frames[:position + 1]):
        order = list(frame.suite[frame.index + 1:])
        if _in_loop_body(frame):
            order += list(frame.suite[:frame.index])
        for statement in order:
            found = verdict(statement)
            if found is not None:
                return found
    return False


def _in_loop_body(frame: Frame) -> bool:
    """Is the frame's suite the body of its loop (not its ``else``)?"""
    owner = frame.owner
    return isinstance(owner, LOOPS) and isinstance(owner.body, cst.IndentedBlock) \
        and any(statement is frame.statement for statement in owner.body.body)
