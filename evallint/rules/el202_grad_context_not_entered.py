"""EL202: ``torch.no_grad()`` as a statement, or ``with torch.no_grad:`` without the call."""

from __future__ import annotations

from typing import Iterator

from evallint.analysis.ops import GradContextNotEntered
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.rules.base import Rule, RuleContext
from evallint.rules.edits import with_for_rest_of_block
from evallint.rules.helpers import code_of, linted_functions


class GradContextNotEnteredRule(Rule):
    code = "EL202"
    name = "grad-context-not-entered"
    summary = "A grad-mode context manager is created but never entered"
    what_it_does = (
        "Finds `torch.no_grad()`, `torch.inference_mode()` and `torch.enable_grad()` written as "
        "statements, and `with torch.no_grad:` without the call. (A bare "
        "`torch.set_grad_enabled(False)` is a real function call and is not reported.)"
    )
    why_bad = (
        "Calling `torch.no_grad()` only builds a context manager; without `with` it is dropped "
        "at once and gradients stay on. `with torch.no_grad:` fails at run time."
    )
    fix_safety = (
        "`with torch.no_grad:` gets the missing `()`: safe, the statement could only fail. A "
        "bare `torch.no_grad()` statement becomes `with torch.no_grad():` around the statements "
        "that follow it in its block (re-indented, comments kept): unsafe, since code that runs "
        "there with gradients today (a training step further down, a later `backward()`) would "
        "run without them. No fix when nothing follows the call in its block or when it shares "
        "its line with other code."
    )
    fix_applicability = Applicability.SAFE
    INVALID = (
        '''import torch

def predict(model, x):
    model.eval()
    torch.no_grad()  # EL202: creates a context manager and drops it
    return model(x)  # EL201: so this forward records a graph
''',
    )
    VALID = (
        '''import torch

def predict(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        current = ctx.analysis.context
        source = ctx.analysis.source
        for analysis in linted_functions(ctx.analysis):
            for op in analysis.ops_of(GradContextNotEntered):
                text = code_of(current, op.node)
                if op.called:
                    message = (f"`{text}` creates a context manager and drops it: nothing changes. "
                               f"Use `with {text}:`")
                    call = source.code_for(op.node.value)  # type: ignore[attr-defined]
                    edit = with_for_rest_of_block(source, analysis.graph.node, op.node, call)  # type: ignore[arg-type]
                    fix = Fix(f"Run the rest of the block under `with {call}:`", (edit,),
                              Applicability.UNSAFE) if edit is not None else None
                else:
                    message = f"`with {text}:` is missing the call: use `with {text}():`"
                    span = source.span_of(op.node)
                    end = Span(span.end_line, span.end_column, span.end_line, span.end_column)
                    fix = Fix("Add the missing `()`", (Edit(end, "()"),))
                yield ctx.diagnostic(self, op.node, message, fix=fix)
