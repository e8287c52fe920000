"""EL106: ``model.eval`` / ``model.train`` written without parentheses."""

from __future__ import annotations

from typing import Iterator

from evallint.analysis.ops import BareModeReference
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import linted_functions


class ModeMethodNotCalled(Rule):
    code = "EL106"
    name = "mode-method-not-called"
    summary = "`model.eval` without parentheses does nothing"
    what_it_does = "Finds `model.eval` and `model.train` used as statements without the call."
    why_bad = (
        "The statement only looks the method up and throws it away: the model stays in the mode "
        "it was in, and nothing warns you."
    )
    fix_safety = "The fix adds the missing `()`; it is safe."
    fix_applicability = Applicability.SAFE
    INVALID = (
        '''import torch

def evaluate(model, loader):
    model.eval  # EL106: the mode does not change
    with torch.no_grad():
        return [model(x) for x, _ in loader]
''',
    )
    VALID = (
        '''import torch

def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        return [model(x) for x, _ in loader]
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        source = ctx.analysis.source
        for analysis in linted_functions(ctx.analysis):
            for op in analysis.ops_of(BareModeReference):
                span = source.span_of(op.node)
                end = Span(span.end_line, span.end_column, span.end_line, span.end_column)
                yield ctx.diagnostic(
                    self, op.node,
                    f"`{op.key}.{op.method}` without parentheses does nothing; call "
                    f"`{op.key}.{op.method}()`",
                    fix=Fix("Add the missing `()`", (Edit(end, "()"),)))
