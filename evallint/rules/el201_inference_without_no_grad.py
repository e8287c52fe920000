"""EL201: evaluation forward calls outside any no-grad region."""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from evallint.analysis.grad import GradEffect
from evallint.analysis.ops import Backward, Call, Forward, GradContextNotEntered, GradientUse, Mode
from evallint.analysis.state import Grad
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.frontend.cfg import Loop
from evallint.frontend.source import SourceModule
from evallint.rules.base import Rule, RuleContext
from evallint.rules.edits import (
    import_edit, indent_of, merge_edits, newline_of, statement_frames, walk, with_for_rest_of_block,
    wrap_in_with,
)
from evallint.rules.helpers import (
    code_of, known_origins, linted_functions, loop_group, origins, part_of_a_model,
    skip_in_test_code, where,
)


class InferenceWithoutNoGrad(Rule):
    code = "EL201"
    name = "inference-without-no-grad"
    summary = "Evaluation runs a model in eval mode outside torch.no_grad()"
    what_it_does = (
        "Finds forward calls on a model in eval mode, in a function or loop with no training "
        "step, that run outside any no-grad region (`torch.no_grad()`, `torch.inference_mode()`, "
        "a no-grad decorator, or a caller that only calls the function under no-grad). One "
        "finding per evaluation loop, or per function when the calls are not in a loop. Across "
        "calls too: a helper that runs the model it is given outside no-grad, called with a "
        "model in eval mode outside no-grad (`model.eval(); measure(model, x)`), is reported "
        "once, at the call when the helper is also called under no-grad elsewhere (or lives in "
        "another file), else at the helper's first forward. Quiet "
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
        "The fix wraps the loop in `with torch.no_grad():` (a statement of a script, or the "
        "call that runs the model, when there is no loop), or decorates the function with "
        "`@torch.no_grad()` (also where the block holds a `yield`: the decorator re-enters "
        "no-grad at each resume; no fix for a coroutine); it adds `import torch` when the "
        "module has no top-level name for it (in a notebook, at the top of the finding's cell, "
        "below its magics). It waits for EL202's fix when the model runs "
        "where a `torch.no_grad` is created but never entered: entering it may be all that is "
        "needed. It is unsafe: code that "
        "needs gradients of the outputs later would break, which the analysis cannot always see."
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
        reported_callees: set[Forward] = set()
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
                if self.in_gradient_loop(op, group, training_loops, gradient_ops) or group in seen:
                    continue  # one finding per loop; a loop that computes gradients needs them
                seen.add(group)
                fix = self.fix(ctx, analysis, group, op)
                scope = "this loop" if group is not None else (
                    "this script" if analysis.graph.is_module else "this function")
                yield ctx.diagnostic(
                    self, op.node,
                    f"`{op.key}` is in eval mode but runs outside `torch.no_grad()`: autograd "
                    f"records a graph for nothing; wrap {scope} in `torch.no_grad()`",
                    fix=fix)
            yield from self.across_calls(ctx, analysis, seen, gradient_ops, reported_callees)

    def across_calls(self, ctx: RuleContext, analysis, seen: set, gradient_ops: list,
                     reported_callees: set) -> Iterator[Diagnostic]:
        """A helper given the eval-mode model runs it outside no-grad, and so does this call
        (``model.eval(); timings = measure(model, x)``). Reported at the call when the helper
        is called under no-grad elsewhere (or lives in another file), else at its first forward.
        Not when the call's result is returned: the caller may need its gradients (LPIPS as a loss)."""
        file = ctx.analysis
        current = file.context
        training_loops = analysis.loops_with_training()
        for op in analysis.ops_of(Call):
            summary = analysis.summary_of(op)
            if summary is None or not summary.inferred_in_caller_grad or analysis.feeds_gradient(op) \
                    or not self.grad_surely_enabled(file, analysis, op) or analysis.reaches_return(op):
                continue  # a result handed back to the caller may be differentiated there
            group = loop_group(op, training_loops)
            if self.in_gradient_loop(op, group, training_loops, gradient_ops) or group in seen:
                continue
            for callee_key in sorted(summary.inferred_in_caller_grad):
                keys = sorted({key for part in analysis.parts(op) for key in analysis.map_key(callee_key, op, part)})
                model = next((key for key in keys if known_origins(analysis.facts(op, key), Mode.EVAL)
                              and not origins(analysis.facts(op, key), Mode.TRAIN)), None)
                if model is None:
                    continue
                seen.add(group)
                call = code_of(current, op.node)
                callee = self.callee_site(file, op, callee_key)
                if callee is None:
                    scope = "this loop" if group is not None else "the call"
                    yield ctx.diagnostic(
                        self, op.node,
                        f"`{model}` is in eval mode and `{call}` runs it outside `torch.no_grad()`: "
                        f"autograd records a graph for nothing; wrap {scope} in `torch.no_grad()`",
                        fix=self.fix(ctx, analysis, group, op, wrap_statement=True))
                elif callee not in reported_callees:
                    reported_callees.add(callee)
                    callee_analysis = file.analysis_of(op.function.graph)
                    yield ctx.diagnostic(
                        self, callee.node,
                        f"`{callee.key}` runs outside `torch.no_grad()`, and `{call}` at "
                        f"{where(current, op.node, current)} calls this with `{model}` in eval mode: "
                        f"autograd records a graph for nothing; decorate "
                        f"`{op.function.graph.name.rpartition('.')[2]}` with `@torch.no_grad()`",
                        related=((current.source, op.node, "called here in eval mode"),),
                        fix=self.fix(ctx, callee_analysis, None, callee))
                break

    @staticmethod
    def in_gradient_loop(op, group: Loop | None, training_loops: set, gradient_ops: list) -> bool:
        """Is ``op`` in a loop that computes gradients: a training loop (its periodic
        evaluation is EL103's), or an evaluation loop that itself backpropagates?"""
        if op.step.loop is not None and op.step.loop in training_loops:
            return True
        return group is not None and any(group in g.step.loops for g in gradient_ops)

    @staticmethod
    def callee_site(file, op: Call, callee_key: str) -> Forward | None:
        """The helper's first forward of ``callee_key``, when the fix belongs in the helper: it
        is in this file and no call of it in this file runs under no-grad."""
        graph = op.function.graph
        if op.function.context is not file.context or graph.is_module:
            return None
        for caller, site in file.call_sites.get(graph, []):
            if caller.lexical_grad(site) is GradEffect.DISABLED or caller.grad_disabled(site):
                return None
        callee = file.analysis_of(graph)
        forwards = [f for f in callee.ops_of(Forward) if f.key == callee_key and callee.is_inference(f)]
        return min(forwards, key=lambda f: f.step.order) if forwards else None

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

    def fix(self, ctx: RuleContext, analysis, group: Loop | None, op, wrap_statement: bool = False) -> Fix | None:
        """Wrap the loop (``group``) in ``with torch.no_grad():``; else in a script, or for a call
        (``wrap_statement``), the statement that runs the model; else decorate the function (also
        when the block holds a ``yield``: torch's decorator re-enters no-grad at each resume).
        ``import torch`` comes with it when the module has no name for ``torch``."""
        source = ctx.analysis.source
        no_grad, imported = _no_grad_spelling(ctx.analysis.context)
        if no_grad is None:
            return None
        function = analysis.graph.node
        coroutine = isinstance(function, cst.FunctionDef) and function.asynchronous is not None
        region, what = None, ""
        if group is not None:
            region, what = group.node, "the loop"
        elif analysis.graph.is_module or wrap_statement:
            frames = statement_frames(function, op.node)
            if not frames:
                return None
            region, what = frames[-1].statement, "the statement"
        if region is not None and _suspends(region):
            region = None  # no-grad would stay on for the code that runs meanwhile
        if region is not None:
            edits = [wrap_in_with(source, region, no_grad)]
            message = f"Wrap {what} in `with {no_grad}:`"
        elif coroutine or analysis.graph.is_module:
            return None  # torch's decorator does not reach into a coroutine
        else:
            indent = indent_of(source, function)
            line = source.span_of(function).line
            edits = [None if indent is None else
                     Edit(Span(line, 1, line, 1), f"{indent}@{no_grad}{newline_of(source)}")]
            message = f"Decorate the function with `@{no_grad}`"
        if not imported:
            edits.append(import_edit(source, "import torch", "torch", op.node))
            message += " (and `import torch`)"
        if None in edits:
            return None
        waits = ("EL202",) if _left_to_el202(source, analysis, op) else ()
        return Fix(message, merge_edits(edits), Applicability.UNSAFE, waits)  # type: ignore[arg-type]


def _suspends(region: cst.CSTNode) -> bool:
    """Does ``region`` hold a ``yield`` or ``await`` (of its own function)?"""
    return any(isinstance(node, (cst.Yield, cst.Await)) for node in walk(region))


def _no_grad_spelling(context) -> tuple[str | None, bool]:
    """How the module can spell ``torch.no_grad()`` with its top-level imports (not those inside
    a function), and whether that needs no new import: ``torch.no_grad()`` with an ``import
    torch`` to add when the top level imports no ``torch``; None when it imports something else
    under that name."""
    top_level = context.imports.top_level
    for local, imported in top_level.items():
        if imported.level == 0 and imported.qualified == "torch":
            return f"{local}.no_grad()", True
    for local, imported in top_level.items():
        if imported.level == 0 and imported.qualified == "torch.no_grad":
            return f"{local}()", True
    return (None, False) if "torch" in top_level else ("torch.no_grad()", False)


def _left_to_el202(source: SourceModule, analysis, op) -> bool:
    """Does EL202's fix put ``op`` under a grad context: it runs inside ``with torch.no_grad:``
    (missing its call) or after a bare ``torch.no_grad()`` in its block? Then that fix goes
    first; this one on top would only add a second ``no_grad``."""
    not_entered = list(analysis.ops_of(GradContextNotEntered))
    if not not_entered:
        return False
    region = op.step.region
    while region is not None:
        if not region.is_decorator and any(not g.called and any(g.node is item for item in region.items)
                                           for g in not_entered):
            return True
        region = region.parent
    line = source.span_of(op.node).line
    for g in not_entered:
        if g.called:
            edit = with_for_rest_of_block(source, analysis.graph.node, g.node, "_")
            if edit is not None and edit.span.line < line <= edit.span.end_line:
                return True
    return False
