"""EL102: a function switches a model it was given to eval mode and does not restore it."""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from evallint.analysis.dataflow import FunctionAnalysis
from evallint.analysis.file_analysis import FileAnalysis
from evallint.analysis.keys import key_of
from evallint.analysis.ops import Call, Forward, Mode, SetMode, Yield
from evallint.analysis.summary import summarize
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.lines import split_lines
from evallint.rules.base import Rule, RuleContext
from evallint.rules.edits import (
    body_of, bound_keys, fresh_name, indent_of, indent_unit, insert_after, insert_before,
    merge_edits, model_expression, names_in, newline_of, rebound, reindented,
    statement_frames, walk,
)
from evallint.rules.helpers import (
    analysis_holding, code_of, describe_origin, linted_functions, receiver_code,
    switching_counterpart, switching_site, where,
)
from evallint.rules.leaks import eval_leaks, sibling_leaks


class EvalModeNotRestored(Rule):
    code = "EL102"
    name = "eval-mode-not-restored"
    summary = "A function switches a model it was given to eval mode and can return without restoring it"
    what_it_does = (
        "Finds functions that call `.eval()` on a model that belongs to their caller (a "
        "parameter, `self.<attr>`, a global) and can return without switching it back "
        "(`model.train()` on every exit, `was_training = model.training ... "
        "model.train(was_training)`, or `try/finally`). By default it reports only when a call "
        "of the function inside a training loop in the same file lets eval mode reach a "
        "training step (the callee side of EL101), or when a public method of a class leaves "
        "`self.<attr>` in eval mode and a public sibling method trains it without calling "
        "`.train()` (`fit(); predict(); fit()`). With `strict-restore = true` it reports "
        "every such function, for library code that others call."
    )
    why_bad = (
        "The caller's model stays in eval mode after the call. If the caller trains next, "
        "Dropout stays off and BatchNorm stays frozen: the model trains worse without any error."
    )
    fix_safety = (
        "The fix saves the mode before the `.eval()` (`was_training = model.training`, under a "
        "name the function does not use yet) and restores it with `model.train(was_training)` "
        "on every exit: in a `finally` block around the rest of the function when it can leave "
        "early (a `return` before its end, a `raise`, a `yield`) or returns a value computed "
        "with calls (so the value is computed before the mode is restored), otherwise as the "
        "last statement, or just before a final `return` of names and arithmetic. It is unsafe: "
        "code after the call that relied on eval mode would now run in the caller's mode, and "
        "a restore the function already had (`model.train()`) is followed by the caller's mode "
        "instead. No fix when the model's name is rebound after the `.eval()`, the `.eval()` is "
        "in a function that only prepares the model for its caller, or through a mode-switching "
        "method (`model.val_start()`)."
    )
    fix_applicability = Applicability.UNSAFE
    INVALID = (
        '''import torch

def evaluate(model, loader):
    model.eval()  # EL102: the caller's model stays in eval mode
    with torch.no_grad():
        return [model(x) for x, _ in loader]

def fit(model, opt, train_loader, val_loader, epochs):
    model.train()  # EL101
    for _ in range(epochs):
        for x, y in train_loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
        evaluate(model, val_loader)
''',
    )
    VALID = (
        '''import torch

def evaluate(model, loader):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return [model(x) for x, _ in loader]
    finally:
        model.train(was_training)

def fit(model, opt, train_loader, val_loader, epochs):
    model.train()
    for _ in range(epochs):
        for x, y in train_loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
        evaluate(model, val_loader)
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        # Findings first, fixes after: one fix restores every model a function leaves in eval
        # mode, so it needs all of that function's findings.
        findings = list(self.findings(ctx))
        by_function: dict[object, list[SetMode]] = {}
        for _, _, _, op in findings:
            if op is not None:
                holder = analysis_holding(ctx.analysis, op)
                if holder is not None:
                    by_function.setdefault(holder, []).append(op)
        fixes: dict[object, Fix | None] = {}
        for holder, ops in by_function.items():
            fix = restore_fix(ctx.analysis, holder, ops)
            for op in ops:
                fixes[id(op)] = fix
        for node, message, related, op in findings:
            yield ctx.diagnostic(self, node, message, related=related,
                                 fix=fixes.get(id(op)) if op is not None else None)

    def findings(self, ctx: RuleContext) -> Iterator[tuple[cst.CSTNode, str, tuple, SetMode | None]]:
        """(where, message, related, the ``.eval()`` a fix can restore) of each finding."""
        current = ctx.analysis.context
        reported: set[int] = set()
        for leak in eval_leaks(ctx.analysis):
            for origin in leak.evals:
                site = switching_site(origin)
                if site is origin or site.context is not current or id(site.op) in reported:
                    continue
                if isinstance(site.op, SetMode) and site.op.mode is Mode.EVAL:
                    model = receiver_code(current, site.op)
                    restore = f"`{model}.train()` on every exit, or save `{model}.training` " \
                        "and `try/finally`"
                elif isinstance(site.op, Call):
                    counterpart = switching_counterpart(site.op, Mode.TRAIN)
                    restore = f"call `{counterpart}` on every exit" if counterpart else \
                        "switch it back to train mode on every exit"
                else:
                    continue
                reported.add(id(site.op))
                # A fix restores the mode in the function that ran the evaluation: the one the
                # training function called, not a helper of it that only prepares the model.
                fixable = site.op if isinstance(site.op, SetMode) and origin.via is site else None
                yield (site.op.node,
                       f"`{code_of(current, site.op.node)}` is not undone before this function "
                       f"returns, and {describe_origin(origin, current)} lets eval mode reach the "
                       f"training step at {where(current, leak.step.node, current)}; restore the "
                       f"mode ({restore})",
                       ((current.source, leak.step.node, "training step reached in eval mode"),),
                       fixable)
        for sibling in sibling_leaks(ctx.analysis):
            inner = sibling.origin.innermost()
            if id(inner.op) in reported:
                continue
            reported.add(id(inner.op))
            trainer = sibling.trainer.graph.name.rpartition(".")[2]
            leaving = sibling.leaving.graph.name.rpartition(".")[2]
            fixable = inner.op if sibling.origin.via is None else None  # set in ``leaving`` itself
            yield (inner.op.node,
                   f"`{code_of(current, inner.op.node)}` leaves `{sibling.key}` in eval mode when "
                   f"`{leaving}()` returns, and `{trainer}()` trains it without calling `.train()` "
                   f"(training step at {where(current, sibling.step.node, current)}): "
                   f"`{trainer}(); {leaving}(); {trainer}()` trains in eval mode; restore the mode "
                   f"in `{leaving}()` or call `{sibling.key}.train()` in `{trainer}()`",
                   ((current.source, sibling.step.node, "trains in the mode it finds"),),
                   fixable)
        if not ctx.settings.strict_restore:
            return
        for analysis in linted_functions(ctx.analysis):
            if analysis.graph.is_module:
                continue
            summary = summarize(current, analysis.graph, {})
            if summary is None:
                continue
            for key, facts in summary.exit_modes.items():
                for fact in facts:
                    origin = fact.origin
                    if fact.mode is not Mode.EVAL or origin is None or origin.via is not None \
                            or not isinstance(origin.op, SetMode) or id(origin.op) in reported \
                            or key not in analysis.targets(origin.op, origin.op.key):
                        continue
                    reported.add(id(origin.op))
                    yield (origin.op.node,
                           f"`{code_of(current, origin.op.node)}` switches the caller's `{key}` to "
                           "eval mode and the function can return without restoring it",
                           (), origin.op)


def restore_fix(file: FileAnalysis, analysis: FunctionAnalysis, ops: list[SetMode]) -> Fix | None:
    """Save each model's mode before its ``.eval()`` and restore it on every exit of the function
    (see ``fix_safety``). None when that cannot be said in code (module level, a one-line body,
    a model spelled with a call or rebound later, a function that only switches modes)."""
    source = file.source
    function = analysis.graph.node
    body = body_of(function) if isinstance(function, cst.FunctionDef) else None
    if body is None:
        return None
    models: list[str] = []  # the receivers, as the code spells them, in order
    first = len(body)
    for op in sorted(ops, key=lambda o: o.step.order):
        node = op.node
        if not (isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)):
            return None
        expression = model_expression(source, op.key, node.func.value)
        frames = statement_frames(function, node)
        if expression is None or not frames:
            return None
        first = min(first, frames[0].index)
        if expression not in models:
            models.append(expression)
    # The models must mean the same objects from the first ``.eval()`` to every exit.
    bound = bound_keys(body[first:])
    if any(rebound(key_of(cst.parse_expression(m)) or m, bound) for m in models):
        return None
    if not _runs_something_after(analysis, ops):
        return None  # ``prepare(model)``: its caller evaluates after it returns
    evals = {id(op.node) for op in ops}
    start = first
    while start < len(body) and _only_evals(body[start], evals):
        start += 1
    wrapped = list(body[start:])
    if not wrapped:
        return None
    taken = names_in(function)
    names: list[str] = []
    for _ in models:
        names.append(fresh_name(taken | set(names), "was_training"))
    captures = [f"{name} = {model}.training" for name, model in zip(names, models)]
    restores = [f"{model}.train({name})" for name, model in zip(names, models)]
    shown = f"`{captures[0]}` ... `{restores[0]}`" if len(models) == 1 else \
        f"the mode of {', '.join(f'`{m}`' for m in models)}"
    lines = split_lines(source.text, keepends=True)
    # A ``model.train()`` that ends the function is what the restore replaces.
    redundant = _final_train(source, wrapped, models, lines)
    if _plain_exits(function, wrapped):
        last = wrapped[-1]
        if redundant is not None:
            line = source.span_of(redundant).line
            restore = insert_before(source, redundant, restores)
            restore = restore and Edit(Span(line, 1, line + 1, 1), restore.content)
        elif _is_return(last):
            restore = insert_before(source, last, restores)
        else:
            restore = insert_after(source, last, restores)
        capture = insert_before(source, body[first], captures)
        if restore is None or capture is None:
            return None
        return Fix(f"Save and restore {shown} at the end of the function",
                   merge_edits([capture, restore]), Applicability.UNSAFE)
    indent = indent_of(source, body[first])
    if indent is None:
        return None
    unit = indent_unit(source)
    newline = newline_of(source)
    # From the line after the last ``.eval()`` (its comments too) to the end of the function.
    first_line = source.span_of(body[start - 1]).end_line + 1 if start > first \
        else source.span_of(body[first]).line
    last_line = source.span_of(wrapped[-1]).end_line
    if redundant is not None:  # the finally block restores the mode
        line = source.span_of(redundant).line
        parts = [reindented(source, first_line, line - 1, unit), reindented(source, line + 1, last_line, unit)]
        inner = None if None in parts else "".join(parts)  # type: ignore[arg-type]
    else:
        inner = reindented(source, first_line, last_line, unit)
    if inner is None:
        return None
    if not inner.endswith(("\n", "\r")):
        inner += newline
    content = f"{indent}try:{newline}{inner}{indent}finally:{newline}" + "".join(
        f"{indent}{unit}{line}{newline}" for line in restores)
    end = Span(last_line + 1, 1, last_line + 1, 1) if last_line < len(lines) else \
        Span(last_line, len(lines[-1]) + 1, last_line, len(lines[-1]) + 1)
    edits = [Edit(Span(first_line, 1, end.line, end.column), content)]
    capture = insert_before(source, body[first], captures)
    if capture is None:
        return None
    return Fix(f"Save and restore {shown} in a `finally` block",
               merge_edits([capture, *edits]), Applicability.UNSAFE)


def _final_train(source, wrapped: list[cst.BaseStatement], models: list[str],
                 lines: list[str]) -> cst.BaseStatement | None:
    """The last statement, or the last before a final ``return``, when it is a line of its own
    that only calls ``<model>.train()`` on one of ``models``: a restore to train mode that the
    saved mode replaces."""
    candidates = wrapped[-2:-1] if _is_return(wrapped[-1]) else wrapped[-1:]
    for statement in candidates:
        if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1
                and isinstance(statement.body[0], cst.Expr)):
            continue
        call = statement.body[0].value
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) \
                and call.func.attr.value == "train" and not call.args \
                and " ".join(source.code_for(call.func.value).split()) in models:
            span = source.span_of(statement)
            if span.line == span.end_line and lines[span.line - 1].strip() == source.code_for(call).strip():
                return statement
    return None


def _only_evals(statement: cst.BaseStatement, evals: set[int]) -> bool:
    """A line of nothing but the reported ``.eval()`` calls."""
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, cst.Expr) and id(small.value) in evals for small in statement.body)


def _runs_something_after(analysis: FunctionAnalysis, ops: list[SetMode]) -> bool:
    """Does the function run a model, call a project function or yield (the body of a ``with``
    block) after its first ``.eval()``? A function that only switches modes and returns leaves
    the evaluation to its caller, who needs the eval mode it set."""
    order = min(op.step.order for op in ops)
    return any(isinstance(op, (Forward, Call, Yield)) and op.step.order > order for op in analysis.ops.all())


def _is_return(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 \
        and isinstance(statement.body[0], cst.Return)


def _plain_exits(function: cst.FunctionDef, wrapped: list[cst.BaseStatement]) -> bool:
    """Can the restore go at the end, without ``try``: the statements after the ``.eval()``
    leave only by falling off the end or by a final ``return`` whose value needs no call (names,
    attributes, arithmetic), and the function is no generator?"""
    if any(isinstance(node, cst.Yield) for node in walk(function)):
        return False  # a generator: it may never run to its end
    last = wrapped[-1]
    final = last.body[0] if _is_return(last) else None  # type: ignore[attr-defined]
    for statement in wrapped:
        for node in walk(statement):
            if isinstance(node, cst.Raise) or isinstance(node, cst.Return) and node is not final:
                return False
    if final is not None and final.value is not None:
        return not any(isinstance(node, (cst.Call, cst.Await, cst.Yield, cst.Lambda, cst.ListComp,
                                         cst.SetComp, cst.DictComp, cst.GeneratorExp))
                       for node in walk(final.value))
    return True
