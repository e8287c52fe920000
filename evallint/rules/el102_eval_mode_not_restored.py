"""EL102: a function switches a model it was given to eval mode and does not restore it."""

from __future__ import annotations

from typing import Iterator

from evallint.analysis.ops import Call, Mode, SetMode
from evallint.analysis.summary import summarize
from evallint.diagnostics import Diagnostic
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import (
    code_of, describe_origin, linted_functions, receiver_code, switching_counterpart, switching_site,
    where,
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
                yield ctx.diagnostic(
                    self, site.op.node,
                    f"`{code_of(current, site.op.node)}` is not undone before this function "
                    f"returns, and {describe_origin(origin, current)} lets eval mode reach the "
                    f"training step at {where(current, leak.step.node, current)}; restore the "
                    f"mode ({restore})",
                    related=((current.source, leak.step.node, "training step reached in eval mode"),))
        for sibling in sibling_leaks(ctx.analysis):
            inner = sibling.origin.innermost()
            if id(inner.op) in reported:
                continue
            reported.add(id(inner.op))
            trainer = sibling.trainer.graph.name.rpartition(".")[2]
            leaving = sibling.leaving.graph.name.rpartition(".")[2]
            yield ctx.diagnostic(
                self, inner.op.node,
                f"`{code_of(current, inner.op.node)}` leaves `{sibling.key}` in eval mode when "
                f"`{leaving}()` returns, and `{trainer}()` trains it without calling `.train()` "
                f"(training step at {where(current, sibling.step.node, current)}): "
                f"`{trainer}(); {leaving}(); {trainer}()` trains in eval mode; restore the mode "
                f"in `{leaving}()` or call `{sibling.key}.train()` in `{trainer}()`",
                related=((current.source, sibling.step.node, "trains in the mode it finds"),))
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
                    yield ctx.diagnostic(
                        self, origin.op.node,
                        f"`{code_of(current, origin.op.node)}` switches the caller's `{key}` to "
                        "eval mode and the function can return without restoring it",
                    )
