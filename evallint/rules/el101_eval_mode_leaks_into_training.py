"""EL101: a training step can run while the model it trains is in eval mode."""

from __future__ import annotations

from typing import Iterator

from evallint.diagnostics import Diagnostic
from evallint.rules.base import Rule, RuleContext
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
        for leak in eval_leaks(ctx.analysis):
            name = code_of(current, _receiver(leak))
            source = describe_origin(leak.evals[0], current)
            severity, notes = severity_for(leak.analysis, leak.key)
            related = [r for origin in leak.evals for r in related_for(origin, "eval mode set here")]
            if leak.hoisted:
                for train in leak.hoisted:
                    yield ctx.diagnostic(
                        self, train.node,
                        f"`{code_of(current, train.node)}` runs once, before the loop; {source} "
                        f"switches `{leak.key}` to eval mode inside the loop, so later iterations "
                        "train in eval mode. Call `.train()` at the top of the loop body",
                        related=tuple(related), severity=severity, notes=notes)
            else:
                yield ctx.diagnostic(
                    self, leak.step.node,
                    f"`{name}` can train `{leak.key}` in eval mode, set by {source}; "
                    f"call `{leak.key}.train()` before the training step",
                    related=tuple(related), severity=severity, notes=notes)


def _receiver(leak):  # the training step expression, for the message
    return leak.step.node
