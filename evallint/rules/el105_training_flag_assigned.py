"""EL105: assigning ``model.training`` instead of calling ``train()``/``eval()``."""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from evallint.analysis.interpret import literal_value
from evallint.analysis.ops import TrainingFlagAssigned
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import is_model_key, linted_functions


class TrainingFlagAssignedRule(Rule):
    code = "EL105"
    name = "training-flag-assigned"
    summary = "`model.training = ...` changes only the top module, not its children"
    what_it_does = (
        "Finds assignments to `.training` on a model. `nn.Module.train()`/`.eval()` set the "
        "flag on the module and every child; assigning the attribute changes only the module "
        "itself. Quiet for `self.training = mode` inside a `train(self, mode)` override, on "
        "objects that are not models, in loops over `named_modules()` that set it per module, and "
        "for `new.training = old.training` (a converted layer taking over the flag of the layer "
        "it replaces, as `convert_sync_batchnorm` does)."
    )
    why_bad = (
        "Dropout and BatchNorm layers inside the model read their own `training` flag, which "
        "the assignment leaves unchanged: the model looks switched but behaves as before."
    )
    fix_safety = "The fix replaces `model.training = False` by `model.eval()` (True: `model.train()`); it is safe."
    fix_applicability = Applicability.SAFE
    INVALID = (
        '''import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
model.training = False  # EL105: the Dropout child stays in train mode
with torch.no_grad():
    out = model(torch.randn(2, 4))
''',
    )
    VALID = (
        '''import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
model.eval()
with torch.no_grad():
    out = model(torch.randn(2, 4))
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        source = ctx.analysis.source
        for analysis in linted_functions(ctx.analysis):
            for op in analysis.ops_of(TrainingFlagAssigned):
                if op.in_module_loop or _copies_a_flag(op.value) \
                        or not is_model_key(analysis, op, op.key, ctx.settings):
                    continue
                statement = op.step.node
                fix = None
                ok, value = literal_value(op.value)
                if ok and isinstance(value, bool) and isinstance(statement, cst.Assign) \
                        and len(statement.targets) == 1:
                    receiver = source.code_for(op.node.value)  # type: ignore[attr-defined]
                    span = source.span_of(statement)
                    replacement = f"{receiver}.{'train' if value else 'eval'}()"
                    fix = Fix(f"Replace with `{replacement}`", (Edit(span, replacement),))
                yield ctx.diagnostic(
                    self, statement,
                    f"assigning `{op.key}.training` changes only the top module; its Dropout/"
                    f"BatchNorm children keep their mode: call `{op.key}.eval()` or "
                    f"`{op.key}.train()`", fix=fix)


def _copies_a_flag(value: cst.BaseExpression) -> bool:
    """``new.training = old.training``: the flag handed over to a replacement layer."""
    return isinstance(value, cst.Attribute) and value.attr.value == "training"
