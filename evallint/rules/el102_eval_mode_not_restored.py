"""EL102: a function switches a model it was given to eval mode and does not restore it."""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from evallint.analysis.dataflow import FunctionAnalysis
from evallint.analysis.file_analysis import FileAnalysis
from evallint.analysis.keys import is_within, key_of
from evallint.analysis.ops import Call, Forward, Mode, SetMode, Yield
from evallint.analysis.state import Origin
from evallint.analysis.summary import summarize
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.frontend.names import dotted_name, names_read
from evallint.frontend.nodes import child_nodes
from evallint.lines import split_lines
from evallint.rules.base import Rule, RuleContext
from evallint.rules.edits import (
    body_of, bound_keys, fresh_name, indent_of, indent_unit, insert_after, insert_before,
    merge_edits, model_expression, names_in, newline_of, rebound, reindented,
    statement_frames, walk,
)
from evallint.rules.helpers import (
    analysis_holding, code_of, describe_origin, known_module, linted_functions, receiver_code,
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
        "on every exit. Where it goes depends on how the function leaves: at the end when it "
        "falls off its end; just before a final `return` of names and arithmetic; for a final "
        "`return` of a value computed with calls, the value is computed first (`result = ...`), "
        "then the mode restored, then `return result`; when it can leave earlier (a `return` "
        "before its end, a `raise`, a `yield`), in a `finally` block around the rest of the "
        "function (or in the `finally` block of a `try` that already ends it). One fix restores "
        "every model the function leaves in eval mode; a `model.train()` just before the end is "
        "replaced. It is unsafe: code after the call that relied on eval mode would now run in "
        "the caller's mode. No fix where the caller may want the eval mode: the function runs no "
        "model after the `.eval()` (`freeze(model)`), the `.eval()` is all a branch on a "
        "parameter does (`if set_eval_mode: model.eval()`), the model leaves the function "
        "(returned, wrapped, stored), or a function between it and the training loop runs the "
        "model after calling it; nor when the value of `.eval()` is used (`loader = "
        "data.eval()`), the model is rebound after it, or the mode is switched through a method "
        "(`model.val_start()`)."
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
            eligible = [op for op in ops if _restorable_switch(holder, op)]
            fix = restore_fix(ctx.analysis, holder, eligible, ctx.settings) if eligible else None
            for op in eligible:
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
                fixable = site.op if isinstance(site.op, SetMode) \
                    and _restorable(ctx.analysis, origin, site) else None
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


def restore_fix(file: FileAnalysis, analysis: FunctionAnalysis, ops: list[SetMode], settings) -> Fix | None:
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
        frames = statement_frames(function, node)
        expression = model_expression(source, op.key, node.func.value)
        if not frames or expression is None:
            return None
        first = min(first, frames[0].index)
        if expression not in models:
            models.append(expression)
    # The models must mean the same objects from the first ``.eval()`` to every exit.
    bound = bound_keys(body[first:])
    keys = [key_of(cst.parse_expression(m)) or m for m in models]
    if any(rebound(key, bound) for key in keys):
        return None
    if not _runs_something_after(analysis, ops, settings):
        return None  # ``prepare(model)``, ``freeze(model)``: the caller wants the eval mode
    if _escapes(body[first:], keys, set(analysis.graph.global_names)):
        return None  # ``return Wrapper(model)``: the caller uses the model in the mode left
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
    shown = f"the mode of {', '.join(f'`{m}`' for m in models)}"
    lines = split_lines(source.text, keepends=True)
    capture = insert_before(source, body[first], captures)
    indent = indent_of(source, body[first])
    if capture is None or indent is None:
        return None
    form = _exit_form(function, wrapped)
    last = wrapped[-1]
    # A ``model.train()`` that ends the function is what the restore replaces (not when the
    # returned value, computed after it, may run the model).
    redundant = _final_train(source, wrapped, models, lines) if form != "bind" else None
    if form == "end" or form == "before":
        if redundant is not None:
            line = source.span_of(redundant).line
            restore = insert_before(source, redundant, restores)
            restore = restore and Edit(Span(line, 1, line + 1, 1), restore.content)
        elif form == "before":
            restore = insert_before(source, last, restores)
        else:
            restore = insert_after(source, last, restores)
        if restore is None:
            return None
        return Fix(f"Save and restore {shown} at the end of the function",
                   merge_edits([capture, restore]), Applicability.UNSAFE)
    if form == "bind":  # ``return f(model)``: compute the value, restore, return it
        final = last.body[0]  # type: ignore[attr-defined]
        result = fresh_name(taken | set(names), "result")
        keyword, value = source.span_of(final), source.span_of(final.value)
        restore = insert_after(source, last, [*restores, f"return {result}"])
        if restore is None:
            return None
        return Fix(f"Save and restore {shown} before the function returns", merge_edits([
            capture, Edit(Span(keyword.line, keyword.column, value.line, value.column), f"{result} = "),
            restore]), Applicability.UNSAFE)
    if _is_return(last) and _calls_in(last.body[0].value):  # type: ignore[attr-defined]
        redundant = None
    if len(wrapped) == 1 and isinstance(last, cst.Try) and last.finalbody is not None \
            and isinstance(last.finalbody.body, cst.IndentedBlock):
        # ``try: ... finally: cleanup()`` ends the function: restore in its finally block
        restore = insert_after(source, last.finalbody.body.body[-1], restores)
        if restore is None:
            return None
        return Fix(f"Save {shown} and restore it in the `finally` block",
                   merge_edits([capture, restore]), Applicability.UNSAFE)
    unit = indent_unit(source, indent)
    newline = newline_of(source)
    # From the line after the last ``.eval()`` (its comments too, not blank lines) to the end.
    first_line = source.span_of(body[start - 1]).end_line + 1 if start > first \
        else source.span_of(body[first]).line
    last_line = source.span_of(last).end_line
    while first_line < last_line and not lines[first_line - 1].strip():
        first_line += 1
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


def _restorable(file: FileAnalysis, origin: Origin, site: Origin) -> bool:
    """Can the function of ``site`` restore the mode when it returns? Not when a function on the
    way from the training function (``evaluate()`` calling ``site``'s ``predict()``) runs a model
    after that call, relying on the eval mode it left (or when such a function is in another
    file, where this cannot be seen)."""
    chain = [origin]
    while chain[-1] is not site and chain[-1].via is not None:
        chain.append(chain[-1].via)
    for link in chain[1:-1]:
        holder = analysis_holding(file, link.op) if link.context is file.context else None
        if holder is None:
            return False
        loops = set(link.op.step.loops)
        for op in holder.ops.all():
            later = op.step.order > link.op.step.order or bool(loops & set(op.step.loops))
            if later and op is not link.op and (isinstance(op, Forward) or isinstance(op, Call) and (
                    (summary := holder.summary_of(op)) is not None and summary.inferred_at_entry)):
                return False
    return True


def _only_evals(statement: cst.BaseStatement, evals: set[int]) -> bool:
    """A line of nothing but the reported ``.eval()`` calls."""
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, cst.Expr) and id(small.value) in evals for small in statement.body)


def _runs_something_after(analysis: FunctionAnalysis, ops: list[SetMode], settings) -> bool:
    """Does the function run one of the models it switched (a forward of it, of a part known to
    be a module, or of a function that runs it) or yield (the body of a ``with`` block) after
    its first ``.eval()``? A function that only switches modes (and freezes parameters,
    computes statistics, say) leaves the model to its caller in the mode it set."""
    order = min(op.step.order for op in ops)
    models = {target for op in ops for target in analysis.targets(op, op.key) | {op.key}}

    def switched(keys) -> bool:
        return any(k == m or is_within(k, m) or is_within(m, k) for k in keys for m in models)

    def runs_model(op: Forward) -> bool:
        keys = analysis.targets(op, op.key) | {op.key}
        return any(k == m or is_within(m, k) for k in keys for m in models) or \
            switched(keys) and known_module(analysis, op.key, settings)  # ``self.encoder(x)``

    for op in analysis.ops.all():
        if op.step.order <= order or not analysis.reachable(op):
            continue
        if isinstance(op, Yield) or isinstance(op, Forward) and runs_model(op):
            return True
        if isinstance(op, Call) and (summary := analysis.summary_of(op)) is not None:
            keys = {caller for callee in summary.forwarded | summary.inferred_at_entry
                    for part in analysis.parts(op) for caller in analysis.map_key(callee, op, part)}
            if switched(keys) or op.receiver is not None and switched({op.receiver}) and summary.forwarded:
                return True
    return False


def _restorable_switch(analysis: FunctionAnalysis, op: SetMode) -> bool:
    """Can a fix restore the mode this ``.eval()`` sets? It must be a statement of its own (not
    ``loader = data.eval()``, whose value is used and whose receiver may be no module at all),
    not chosen by the caller through a parameter (``if set_eval_mode: model.eval()``, a branch
    that only switches modes), and not guarded by a test of the model itself (``if
    isinstance(net, nn.Module):``, ``if model is not None:``), where reading ``net.training``
    before the test could fail."""
    function = analysis.graph.node
    if not isinstance(function, cst.FunctionDef) or op.chosen_by is not None:
        return False
    frames = statement_frames(function, op.node)
    if not frames or not _switch_statement(frames[-1].statement, op.node):
        return False
    model = key_of(op.node.func.value) or op.key  # type: ignore[attr-defined]
    for frame in frames[:-1]:
        test = getattr(frame.statement, "test", None)
        if test is not None and _tests_model(test, model):
            return False
    if len(frames) < 2 or not isinstance(frames[-2].statement, cst.If):
        return True
    params = set(analysis.graph.param_names) - {"self", "cls"}
    return not (names_read(frames[-2].statement.test) & params
                and all(_mode_switch_line(statement) for statement in frames[-1].suite))


def _tests_model(test: cst.BaseExpression, model: str) -> bool:
    """Does ``test`` look at the model object (or what holds it), other than its ``.training``
    flag: ``isinstance(net, nn.Module)``, ``self.ema is not None``?"""
    stack: list[cst.CSTNode] = [test]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Name, cst.Attribute, cst.Subscript)):
            key = key_of(node)
            if key is not None and key != "self" and (key == model or is_within(model, key)):
                return True
            if key is not None and (key == f"{model}.training" or key.startswith("self.")
                                    or key == "self"):
                continue  # ``if self.training:``, ``if self.use_ema:``
        stack.extend(child_nodes(node))
    return False


def _mode_switch_line(statement: cst.BaseStatement) -> bool:
    """``model.eval()``, ``model.train(False)``: a line that only switches modes."""
    return isinstance(statement, cst.SimpleStatementLine) and all(
        isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)
        and isinstance(small.value.func, cst.Attribute) and small.value.func.attr.value in ("eval", "train")
        for small in statement.body)


def _switch_statement(statement: cst.BaseStatement, node: cst.CSTNode) -> bool:
    """Is ``node`` (``model.eval()`` or ``model.train(False)``) a statement of its own, its
    value unused?"""
    return isinstance(statement, cst.SimpleStatementLine) and any(
        isinstance(small, cst.Expr) and small.value is node for small in statement.body) \
        and isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute)


def _escapes(statements, keys: list[str], global_names: set[str]) -> bool:
    """Does a model (or an object built around it: ``Wrapper(model)``, ``(model, x)``, a local
    name for one) leave the function after its ``.eval()``: returned, or stored in an attribute,
    a subscript or a global? (A ``yield`` hands it to the body of a ``with`` block, before the
    restore.) Its caller would then use it in the mode this function
    left it in. Results of calls that run the model or take it as an argument (``model(x)``,
    ``model.encode(x)``, ``accuracy(model, loader)``) are outputs, not the model; classes
    (``Wrapper(model)``) keep it."""
    tainted = set(keys)
    nodes = [node for statement in statements for node in walk(statement)]
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.NamedExpr)) \
                    and node.value is not None and _holds_model(node.value, tainted):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) \
                    else [node.target]
                for target in targets:
                    if not isinstance(target, cst.Name) or target.value in global_names:
                        return True  # ``self.wrapper = Wrapper(model)``
                    if target.value not in tainted:
                        tainted.add(target.value)
                        changed = True
    return any(isinstance(node, cst.Return) and node.value is not None
               and _holds_model(node.value, tainted) for node in nodes)


def _holds_model(expression: cst.CSTNode, tainted: set[str]) -> bool:
    """Does the value of ``expression`` hold one of the ``tainted`` objects (not just outputs
    computed from them)?"""
    stack = [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Lambda, cst.FunctionDef, cst.ClassDef)):
            continue
        if isinstance(node, (cst.Name, cst.Attribute, cst.Subscript)):
            key = key_of(node)
            if key is not None and any(key == t or is_within(key, t) for t in tainted):
                return True
        if isinstance(node, cst.Call):
            name = dotted_name(node.func) if isinstance(node.func, (cst.Name, cst.Attribute)) else None
            if name is not None and name.rpartition(".")[2].lstrip("_")[:1].isupper():
                stack.extend(arg.value for arg in node.args)  # ``Wrapper(model)`` holds it
            continue
        if isinstance(node, cst.Attribute):
            continue  # ``out.logits``: an attribute of something that is not the model
        stack.extend(child_nodes(node))
    return False


def _is_return(statement: cst.BaseStatement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 \
        and isinstance(statement.body[0], cst.Return)


def _exit_form(function: cst.FunctionDef, wrapped: list[cst.BaseStatement]) -> str:
    """How the statements after the ``.eval()`` leave the function, which decides where the
    restore goes: ``"end"`` (they fall off the end), ``"before"`` (a final ``return`` of names,
    attributes and arithmetic: restore before it), ``"bind"`` (a final ``return`` of a value
    computed with calls: compute it, restore, return it), ``"try"`` (an earlier ``return``, a
    ``raise``, or a generator, which may never run to its end)."""
    if any(isinstance(node, cst.Yield) for node in walk(function)):
        return "try"
    last = wrapped[-1]
    final = last.body[0] if _is_return(last) else None  # type: ignore[attr-defined]
    for statement in wrapped:
        for node in walk(statement):
            if isinstance(node, cst.Raise) or isinstance(node, cst.Return) and node is not final:
                return "try"
    if final is None:
        return "end"
    return "bind" if _calls_in(final.value) else "before"


def _calls_in(expression: cst.CSTNode | None) -> bool:
    """Can evaluating ``expression`` run code (a call, a comprehension, an await)?"""
    return expression is not None and any(
        isinstance(node, (cst.Call, cst.Await, cst.Yield, cst.Lambda, cst.ListComp, cst.SetComp,
                          cst.DictComp, cst.GeneratorExp)) for node in walk(expression))
