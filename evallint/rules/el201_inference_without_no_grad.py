"""EL201: evaluation forward calls outside any no-grad region."""

from __future__ import annotations

from typing import Iterator

from evallint.analysis.ops import Backward, Forward, GradientUse, Mode
from evallint.analysis.state import Grad
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.frontend.cfg import Loop
from evallint.frontend.source import SourceModule
from evallint.lines import split_lines
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import (
    known_origins, linted_functions, loop_group, origins, part_of_a_model, skip_in_test_code,
)


class InferenceWithoutNoGrad(Rule):
    code = "EL201"
    name = "inference-without-no-grad"
    summary = "Evaluation runs a model in eval mode outside torch.no_grad()"
    what_it_does = (
        "Finds forward calls on a model in eval mode, in a function or loop with no training "
        "step, that run outside any no-grad region (`torch.no_grad()`, `torch.inference_mode()`, "
        "a no-grad decorator, or a caller that only calls the function under no-grad). One "
        "finding per evaluation loop, or per function when the calls are not in a loop. Quiet "
        "where gradients are the point: a function that does not train but calls `backward()` "
        "or `torch.autograd.grad`, sets `requires_grad` on inputs, or freezes parameters (in a "
        "function that trains, an evaluation loop is judged by itself). Quiet too in test code "
        "(unless `test-code = \"strict\"`) and in a model's own computation (nn.Module methods "
        "and helpers only they call)."
    )
    why_bad = (
        "Autograd records a graph for every forward call and keeps the activations alive for a "
        "backward pass that never comes: evaluation takes more memory (often the difference "
        "between fitting a batch or not) and more time."
    )
    fix_safety = (
        "The fix wraps the loop in `with torch.no_grad():` (or decorates the function with "
        "`@torch.no_grad()`). It is unsafe: code that needs gradients of the outputs later would "
        "break, which the analysis cannot always see."
    )
    fix_applicability = Applicability.UNSAFE
    INVALID = (
        '''import torch

def evaluate(model, loader):
    model.eval()
    correct = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()  # EL201: autograd records for nothing
    return correct
''',
    )
    VALID = (
        '''import torch

@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    correct = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
    return correct
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        file = ctx.analysis
        for analysis in linted_functions(file):
            if skip_in_test_code(analysis, ctx.settings) or part_of_a_model(file, analysis):
                continue
            gradient_ops = [*analysis.ops_of(GradientUse), *analysis.ops_of(Backward)]
            if gradient_ops and not analysis.trains():
                continue  # gradients are the point of this function (saliency, adversarial inputs)
            training_loops = analysis.loops_with_training()
            seen: set[Loop | None] = set()
            for op in analysis.ops_of(Forward):
                if not analysis.is_inference(op):
                    continue
                facts = analysis.facts(op, op.key)
                if not known_origins(facts, Mode.EVAL) or origins(facts, Mode.TRAIN):
                    continue
                if not self.grad_surely_enabled(file, analysis, op):
                    continue
                group = loop_group(op, training_loops)
                if group in seen or (group is not None and any(group in g.step.loops for g in gradient_ops)):
                    continue  # one finding per loop; a loop that computes gradients needs them
                seen.add(group)
                fix = self.fix(ctx, analysis, group)
                where = "this loop" if group is not None else (
                    "this script" if analysis.graph.is_module else "this function")
                yield ctx.diagnostic(
                    self, op.node,
                    f"`{op.key}` is in eval mode but runs outside `torch.no_grad()`: autograd "
                    f"records a graph for nothing; wrap {where} in `torch.no_grad()`",
                    fix=fix)

    @staticmethod
    def grad_surely_enabled(file, analysis, op) -> bool:
        lexical = analysis.lexical_grad(op)
        if lexical is not None:
            return False  # a region decides: no-grad, explicit enable_grad, or unknown
        states = {state for state, _ in analysis.grad_states(op)}
        if not states <= {Grad.ENABLED, Grad.ENTRY}:
            return False
        if Grad.ENTRY in states and (file.only_called_without_grad(analysis.graph) or
                                     analysis.graph.region is not None):
            return False
        return True

    def fix(self, ctx: RuleContext, analysis, group: Loop | None) -> Fix | None:
        source = ctx.analysis.source
        no_grad = _no_grad_spelling(ctx.analysis.context)
        if no_grad is None:
            return None
        if group is not None:
            return _wrap_in_with(source, group.node, no_grad)
        if analysis.graph.is_module:
            return None
        span = source.span_of(analysis.graph.node)
        indent = " " * (span.column - 1)
        return Fix(f"Decorate the function with `@{no_grad}`",
                   (Edit(Span(span.line, span.column, span.line, span.column),
                         f"@{no_grad}\n{indent}"),), Applicability.UNSAFE)


def _no_grad_spelling(context) -> str | None:
    """How this module can spell ``torch.no_grad()`` with its own imports."""
    for local, imported in context.imports.names.items():
        if imported.level == 0 and imported.qualified == "torch":
            return f"{local}.no_grad()"
    for local, imported in context.imports.names.items():
        if imported.level == 0 and imported.qualified == "torch.no_grad":
            return f"{local}()"
    return None


def _wrap_in_with(source: SourceModule, loop, no_grad: str) -> Fix:
    span = source.span_of(loop)
    lines = split_lines(source.text, keepends=True)
    indent = " " * (span.column - 1)
    unit = source.module.default_indent
    body = lines[span.line - 1:span.end_line]
    first = body[0][span.column - 1:]
    rest = [unit + line if line.strip() else line for line in body[1:]]
    tail = "" if body[-1].endswith("\n") else ""
    content = f"with {no_grad}:\n{indent}{unit}{first}" + "".join(rest) + tail
    end_line = span.end_line
    end_column = len(lines[end_line - 1].rstrip("\r\n")) + 1
    return Fix(f"Wrap the loop in `with {no_grad}:`",
               (Edit(Span(span.line, span.column, end_line, end_column), content.rstrip("\r\n")),),
               Applicability.UNSAFE)
