"""EL101: a training step can run while the model it trains is in eval mode."""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from evallint.analysis.keys import is_within, key_of
from evallint.analysis.module import ModuleContext
from evallint.analysis.ops import Op
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.frontend.cfg import Loop
from evallint.lines import split_lines
from evallint.rules.base import Rule, RuleContext
from evallint.rules.edits import (
    LOOPS, bound_keys, contains, insert_before, is_docstring, is_future_import, model_expression,
    outermost_clear, path_to, rebound, same_cell, statement_frames, suite_of, walk,
)
from evallint.rules.helpers import code_of, describe_origin, related_for, severity_for
from evallint.rules.leaks import eval_leaks


class EvalModeLeaksIntoTraining(Rule):
    code = "EL101"
    name = "eval-mode-leaks-into-training"
    summary = "A training step can run while the model it trains is in eval mode"
    what_it_does = (
        "Finds training steps (`backward()`/`optimizer.step()`) that can run while the model "
        "they train is in eval mode, because an `.eval()` (inline, or in a function called on "
        "the way, such as `validate()`) is not followed by `.train()` before the step. The usual "
        "case: `model.train()` runs once above the epoch loop and validation inside the loop "
        "switches to eval mode, so every epoch after the first trains in eval mode."
    )
    why_bad = (
        "In eval mode Dropout is off and BatchNorm uses (and no longer updates) its running "
        "statistics. Training goes on without error, the model just learns worse: a silent "
        "accuracy loss that is hard to trace."
    )
    fix_safety = (
        "The fix moves the hoisted `model.train()` to the top of the loop that contains the "
        "evaluation; where that is not a plain move, or nothing is hoisted, it puts "
        "`model.train()` before the outermost statement around the training step that holds no "
        "`.eval()` (the batch loop inside an epoch loop that validates, the epoch loop after a "
        "`from_pretrained`). Both wait for EL102's fix in the same file, which restores the "
        "mode where it is switched and often makes them unneeded. It is unsafe: code between "
        "the old place and the new one that relied on train mode would now run in the previous "
        "mode, and a later use of the model that sets no mode itself (an evaluation helper the "
        "analysis cannot see) now finds train mode."
    )
    fix_applicability = Applicability.UNSAFE
    INVALID = (
        '''import torch
from torch import nn

def validate(model, loader):
    model.eval()  # EL102
    with torch.no_grad():
        return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)

model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()  # EL101: runs once; validate() leaves eval mode on
for epoch in range(10):
    for x, y in train_loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    validate(model, val_loader)
''',
    )
    VALID = (
        '''import torch
from torch import nn

def validate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)

model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(10):
    model.train()  # at the top of every epoch
    for x, y in train_loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    validate(model, val_loader)
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        current = ctx.analysis.context
        # one finding per hoisted call: ``model.train_start()`` or ``for k in d: d[k].train()``
        # serves several models
        reported: set[int] = set()
        for leak in eval_leaks(ctx.analysis):
            name = code_of(current, _receiver(leak))
            source = describe_origin(leak.evals[0], current)
            severity, notes = severity_for(leak.analysis, leak.key)
            related = [r for origin in leak.evals for r in related_for(origin, "eval mode set here")]
            if leak.hoisted:
                for train in leak.hoisted:
                    if id(train) in reported:
                        continue
                    reported.add(id(train))
                    yield ctx.diagnostic(
                        self, train.node,
                        f"`{code_of(current, train.node)}` runs before the loop, not in it; {source} "
                        f"switches `{leak.key}` to eval mode inside the loop, so later iterations "
                        f"train in eval mode. Call `{code_of(current, train.node)}` at the top of "
                        "the loop body",
                        related=tuple(related), severity=severity, notes=notes,
                        fix=_move_into_loop(current, train, leak) or _train_before_step(leak))
            else:
                yield ctx.diagnostic(
                    self, leak.step.node,
                    f"`{name}` can train `{leak.key}` in eval mode, set by {source}; "
                    f"call `{leak.key}.train()` before the training step",
                    related=tuple(related), severity=severity, notes=notes,
                    fix=_train_before_step(leak))


# EL102's fix, in the same file, restores the mode where it is switched: often all it takes.
AFTER_EL102 = ("EL102",)


def _receiver(leak):  # the training step expression, for the message
    return leak.step.node


def _move_into_loop(current: ModuleContext, train: Op, leak) -> Fix | None:
    """Delete the hoisted ``model.train()`` line and put it first in the innermost loop that
    holds both the training step and an ``.eval()`` but not the ``train()``. None when either
    place is not a plain line."""
    source = current.source
    statement = train.step.node
    eval_loops = {loop for origin in leak.evals if origin.context is current
                  for loop in origin.op.step.loops}
    loops = [loop for loop in leak.step.step.loops  # outermost first
             if loop not in train.step.loops and loop in eval_loops]
    if not loops or not isinstance(statement, cst.Expr) \
            or any(outer not in leak.step.step.loops for outer in train.step.loops):
        return None  # (``for name in nets: nets[name].train()``: the call needs its loop)
    path = path_to(source.module, statement)
    suite = suite_of(path[-3]) if path is not None and len(path) >= 3 else None
    if suite is None or len(suite) < 2:
        return None  # the only statement of its block
    loop: Loop = loops[-1]
    body = loop.node.body
    if not isinstance(body, cst.IndentedBlock) or not body.body:
        return None
    lines = split_lines(source.text, keepends=True)
    where = source.span_of(statement)
    line = lines[where.line - 1]
    code = source.code_for(train.node).strip()
    rest = line.strip()[len(code):].strip()
    if where.line != where.end_line or not line.strip().startswith(code) or (rest and not rest.startswith("#")):
        return None
    insertion = insert_before(source, body.body[0], [f"{code}  {rest}" if rest else code])
    if insertion is None:
        return None
    return Fix(f"Move `{code}` to the top of the loop body", (
        Edit(Span(where.line, 1, where.line + 1, 1), ""), insertion), Applicability.UNSAFE,
        waits_for=AFTER_EL102)


def _train_before_step(leak) -> Fix | None:
    """``<model>.train()`` on a new line before the outermost statement around the training
    step that holds no place eval mode comes from in this function and no other use of the
    model (the batch loop inside an epoch loop that validates; the epoch loop after a
    ``from_pretrained``; the call of a training helper), moved back to the top of its block
    (the forward pass comes before the step) short of such a place or use."""
    analysis = leak.analysis
    source = analysis.context.source
    function = analysis.graph.node
    frames = statement_frames(function, leak.step.node)
    model = model_expression(source, leak.key)
    if not frames or model is None:
        return None
    evals = [origin.op.node for origin in leak.evals if origin.context is analysis.context]
    # Uses of the model outside the training iteration (the innermost loop around the step)
    # run in the mode they find: an evaluation there must not be switched to train mode.
    loops = [frame.statement for frame in frames if isinstance(frame.statement, LOOPS)]
    uses = [node for node in walk(function) if loops and _names_model(node, leak.key)
            and not contains(source, loops[-1], node)]
    chosen = outermost_clear(source, frames, [*evals, *uses], leak.key)
    if chosen is None:
        return None
    index = chosen.index
    while index > 0:
        before = chosen.suite[index - 1]
        if any(contains(source, before, node) for node in [*evals, *uses]) \
                or rebound(leak.key, bound_keys([before])) or is_docstring(before) or is_future_import(before) \
                or isinstance(before, (cst.FunctionDef, cst.ClassDef)) \
                or not same_cell(source, before, chosen.statement):
            break
        index -= 1
    edit = insert_before(source, chosen.suite[index], [f"{model}.train()"])
    return edit and Fix(f"Call `{model}.train()` before the training", (edit,), Applicability.UNSAFE,
                        waits_for=AFTER_EL102)


def _names_model(node: cst.CSTNode, key: str) -> bool:
    """Is ``node`` the model (``model``) or a part of it (``model.encoder``)?"""
    if not isinstance(node, (cst.Name, cst.Attribute, cst.Subscript)):
        return False
    found = key_of(node)
    return found is not None and (found == key or is_within(found, key))
