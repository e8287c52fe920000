"""EL107: ``model.eval(x)`` or ``model.train("eval")``."""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from evallint.analysis.interpret import literal_value
from evallint.analysis.ops import BadModeArgument
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Span
from evallint.frontend.source import SourceModule
from evallint.rules.base import Rule, RuleContext
from evallint.rules.helpers import code_of, is_model_key, linted_functions

# String arguments that name a mode, or say yes or no (compared lower-cased, without spaces
# around them).
EVAL_WORDS = frozenset({"eval", "evaluate", "evaluation", "test", "testing", "val", "valid",
                        "validate", "validation", "inference", "infer", "predict", "prediction"})
TRAIN_WORDS = frozenset({"train", "training"})
YES_WORDS = frozenset({"true", "yes", "on", "1"})
NO_WORDS = frozenset({"false", "no", "off", "0", "none"})


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
    fix_safety = (
        "Where the argument is a literal that says which mode is meant. Safe where the fixed "
        "call does what the code does today, or what it could not do at all: "
        "`model.eval(True)`/`model.eval(\"eval\")` (a TypeError today) become `model.eval()`, "
        "`model.train(\"train\")`/`model.train(1)` become `model.train()`, `model.train(0)` "
        "becomes `model.eval()`. Unsafe where the mode changes: `model.train(\"eval\")` (or "
        "`\"test\"`, `\"val\"`, `\"False\"`) becomes `model.eval()`, and the code after it, "
        "which ran in train mode so far, then runs in eval mode. No fix for `model.eval(False)`, "
        "`model.eval(x)` or a string that names no mode: the intent is not knowable."
    )
    fix_applicability = Applicability.SAFE
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
                yield ctx.diagnostic(self, op.node, message, fix=_fix(ctx.analysis.source, op))


def _meant_mode(method: str, value: object) -> tuple[str, bool] | None:
    """(the method the call means, does the fixed call keep today's behaviour) for a literal
    argument, or None when the literal does not say which mode is meant."""
    if isinstance(value, str):
        word = value.strip().lower()
        if method == "train" and word == "":
            return "eval", True  # ``train("")`` is ``train(False)``: say so
        if word in EVAL_WORDS:
            meant = "eval"
        elif word in TRAIN_WORDS:
            meant = "train"
        elif word in YES_WORDS | NO_WORDS:  # the answer to "train?" or to "eval?"
            meant = method if word in YES_WORDS else {"train": "eval", "eval": None}[method]
        else:
            return None
    elif isinstance(value, (int, float)):  # (bool too)
        meant = method if value else {"train": "eval", "eval": None}[method]
    else:
        return None
    if method == "eval":
        # ``eval(<anything>)`` raises TypeError today: the call never ran
        return ("eval", True) if meant == "eval" else None
    return meant, meant == ("train" if value else "eval")


def _fix(source: SourceModule, op: BadModeArgument) -> Fix | None:
    call = op.node
    if not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute) or len(call.args) != 1:
        return None
    arg = call.args[0]
    if arg.star or (arg.keyword is not None and arg.keyword.value != "mode"):
        return None
    ok, value = literal_value(arg.value)
    meant = _meant_mode(op.method, value) if ok else None
    if meant is None:
        return None
    method, same_behaviour = meant
    start = source.span_of(call.func.attr)
    end = source.span_of(call)
    if "#" in source.code_for(call)[len(source.code_for(call.func)):]:
        return None  # a comment among the arguments would be lost
    replacement = f"{method}()"
    return Fix(f"Replace with `{code_of_receiver(source, call)}.{replacement}`",
               (Edit(Span(start.line, start.column, end.end_line, end.end_column), replacement),),
               Applicability.SAFE if same_behaviour else Applicability.UNSAFE)


def code_of_receiver(source: SourceModule, call: cst.Call) -> str:
    text = " ".join(source.code_for(call.func.value).split())  # type: ignore[attr-defined]
    return text if len(text) <= 40 else text[:37] + "..."
