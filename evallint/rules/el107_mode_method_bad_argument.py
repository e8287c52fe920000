"""EL107: ``model.eval(x)`` or ``model.train("eval")``."""

from __future__ import annotations

from typing import Iterator

from evallint.analysis.ops import BadModeArgument
from evallint.diagnostics import Diagnostic
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import code_of, is_model_key, linted_functions


class ModeMethodBadArgument(Rule):
    code = "EL107"
    name = "mode-method-bad-argument"
    summary = "`eval()` takes no argument; `train()` takes a bool"
    what_it_does = (
        "Finds `model.eval(<anything>)` and `model.train(<string or number literal>)` on models."
    )
    why_bad = (
        "`eval()` takes no argument and raises `TypeError`. `train(\"eval\")` is "
        "`train(True)`: any non-empty string is truthy, so the model goes to train mode, the "
        "opposite of what the code says."
    )
    INVALID = (
        '''import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
model.train("eval")  # EL107: a non-empty string is truthy: train mode
''',
    )
    VALID = (
        '''import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
model.train(False)
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        current = ctx.analysis.context
        for analysis in linted_functions(ctx.analysis):
            for op in analysis.ops_of(BadModeArgument):
                if not is_model_key(analysis, op, op.key, ctx.settings):
                    continue
                if op.method == "eval":
                    message = (f"`{code_of(current, op.node)}`: `eval()` takes no argument and "
                               "raises TypeError; use `eval()` or `train(False)`")
                else:
                    message = (f"`{code_of(current, op.node)}`: `train()` takes a bool; a string "
                               "or number is read as its truthiness. Use `train()`/`eval()`")
                yield ctx.diagnostic(self, op.node, message)
