"""EL203: a training step inside a no-grad region."""

from __future__ import annotations

from typing import Iterator

from evallint.analysis.grad import lexical_grad
from evallint.analysis.ops import Backward, Call, Op
from evallint.analysis.state import Grad
from evallint.diagnostics import Diagnostic
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import code_of, linted_functions, where


class TrainingStepWithoutGrad(Rule):
    code = "EL203"
    name = "training-step-without-grad"
    summary = "A training step runs with gradients disabled"
    what_it_does = (
        "Finds training steps that need gradients (a `backward()` in a function that steps an "
        "optimizer, or a call of a function whose training `backward()` runs in its caller's "
        "grad state) inside `torch.no_grad()`, "
        "`torch.inference_mode()`, a no-grad-decorated function, or after a bare "
        "`torch.set_grad_enabled(False)` on some path. Quiet under a nested "
        "`with torch.enable_grad():`, and for `optimizer.step()` under no-grad (optimizers "
        "update parameters without recording a graph; an optimizer wrapper's `@torch.no_grad()` "
        "`step()` is correct)."
    )
    why_bad = (
        "Under no-grad autograd records nothing: `backward()` raises (\"element 0 of tensors "
        "does not require grad\") or, when some tensor still requires grad, the step learns "
        "nothing from the rest."
    )
    INVALID = (
        '''import torch

def train_epoch(model, loader, optimizer):
    model.train()
    with torch.no_grad():
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()  # EL203: no graph was recorded
            optimizer.step()
''',
    )
    VALID = (
        '''import torch

def train_epoch(model, loader, optimizer):
    model.train()
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        current = ctx.analysis.context
        for analysis in linted_functions(ctx.analysis):
            groups: dict[object, Op] = {}
            for op in sorted(analysis.grad_sensitive_steps(),
                             key=lambda op: (isinstance(op, Call), op.step.order)):
                if not analysis.grad_disabled(op) or _graph_recorded_with_grad(analysis, op):
                    continue
                found = lexical_grad(current, op.step.region, analysis.graph)
                group = found[0] if found is not None else "flow"
                groups.setdefault(group, op)
            for group, op in groups.items():
                if group == "flow":
                    setters = sorted({setter for state, setter in analysis.grad_states(op)
                                      if state == Grad.DISABLED and setter is not None},
                                     key=lambda s: s.step.order)
                    cause = (f"`{code_of(current, setters[0].node)}` at {where(current, setters[0].node, current)}"
                             if setters else "a no-grad caller")
                    related = tuple((current.source, s.node, "gradients disabled here") for s in setters)
                else:
                    cause = f"the no-grad region at {where(current, group.node, current)}"
                    related = ((current.source, group.node, "gradients disabled here"),)
                what = "calls a function that trains" if isinstance(op, Call) else "is a training step"
                yield ctx.diagnostic(
                    self, op.node,
                    f"`{code_of(current, op.node)}` {what} but gradients are disabled by {cause}: "
                    "nothing is learned. Move it out of the region or use `torch.enable_grad()`",
                    related=related)


def _graph_recorded_with_grad(analysis, op: Op) -> bool:
    """``loss = f(model(x))`` then ``with torch.no_grad(): loss.backward()``: the loss's forward
    recorded the graph with grad enabled, so gradients still flow."""
    return isinstance(op, Backward) and any(
        not analysis.grad_disabled(forward) for forward in analysis.forwards_feeding(op)
        if any(fact.origin is not None for fact in analysis.facts(forward, forward.key)))  # models
