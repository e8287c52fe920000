"""EL104: tracing/exporting/fusing a model that is in train mode."""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from evallint.analysis.keys import key_of
from evallint.analysis.ops import Call, Export, Mode, Op
from evallint.diagnostics import Applicability, Diagnostic, Fix
from evallint.frontend.source import SourceModule
from evallint.rules.base import Rule, RuleContext
from evallint.rules.edits import insert_before, model_expression, path_to, statement_frames
from evallint.rules.helpers import (
    code_of, construction_binds, describe_origin, known_mode_free, known_origins, linted_functions,
    related_for, severity_for,
)


class ExportInTrainMode(Rule):
    code = "EL104"
    name = "export-in-train-mode"
    summary = "A model in train mode is traced, exported or fused"
    what_it_does = (
        "Finds `torch.jit.trace`, `torch.jit.trace_module`, `torch.export.export`, "
        "`torch.onnx.export` and `torch.ao.quantization.fuse_modules` (or its "
        "`torch.quantization` alias) applied to a model known to be in train mode. "
        "`torch.onnx.export(..., training=TrainingMode.EVAL)` is not reported. A LightningModule's "
        "`to_onnx()` is an export too (its `to_torchscript()` switches to eval itself). Across "
        "calls: a method that exports `self` (`torch.onnx.export(self, ...)`) or a helper that "
        "exports the model it is given is judged with the mode the caller's model has, and "
        "reported at the call."
    )
    why_bad = (
        "Tracing and export record the mode they find: dropout and batch statistics get baked "
        "into the graph (`jit.trace` itself warns \"Did you forget call .eval()\"); an exported "
        "program refuses `train()`/`eval()` afterwards; since PyTorch 2.6 `torch.onnx.export` "
        "exports the model as it is; BatchNorm fusion is only valid in eval mode."
    )
    fix_safety = (
        "The fix inserts `model.eval()` (the model as the export call spells it) on a line of "
        "its own before the statement that exports. It is unsafe: the model stays in eval mode "
        "after the export, and code after it that trains or expects train mode would change. "
        "No fix where the export runs only sometimes within its statement (`ok and "
        "torch.onnx.export(...)`, a one-line `if`, an `elif` test, a lambda or comprehension), "
        "or where the model is not a plain name, attribute or subscript."
    )
    fix_applicability = Applicability.UNSAFE
    INVALID = (
        '''import torch
import torchvision

model = torchvision.models.resnet18(num_classes=10)
model.load_state_dict(torch.load("resnet18.pt"))
traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))  # EL104: traced in train mode
traced.save("resnet18.ts")
''',
    )
    VALID = (
        '''import torch
import torchvision

model = torchvision.models.resnet18(num_classes=10)
model.load_state_dict(torch.load("resnet18.pt"))
model.eval()
traced = torch.jit.trace(model, torch.randn(1, 3, 224, 224))
traced.save("resnet18.ts")
''',
    )

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        current = ctx.analysis.context
        for analysis in linted_functions(ctx.analysis):
            exports = [(op, op.key, f"`{op.function}` records") for op in analysis.ops_of(Export)
                       if not op.eval_requested]
            for op in analysis.ops_of(Call):
                summary = analysis.summary_of(op)
                for callee_key in sorted(summary.exported_at_entry if summary is not None else ()):
                    keys = {k for part in analysis.parts(op) for k in analysis.map_key(callee_key, op, part)}
                    exports += [(op, key, f"`{code_of(current, op.node)}` exports") for key in sorted(keys)]
            # One fix per model in a function at a time: the ``eval()`` before its first export may
            # cover the later ones (a re-lint after the fix tells).
            fixed_keys: set[str] = set()
            for op, key, action in sorted(exports, key=lambda item: item[0].step.order):
                trains = known_origins(analysis.facts(op, key), Mode.TRAIN)
                if not trains or known_mode_free(construction_binds(analysis, key, trains)):
                    continue  # no mode-dependent layer: the exported graph is the same
                severity, notes = severity_for(analysis, key, trains)
                fix = _eval_first(ctx.analysis.source, analysis.graph.node, op, key) \
                    if key not in fixed_keys else None
                if fix is not None:
                    fixed_keys.add(key)
                yield ctx.diagnostic(
                    self, op.node,
                    f"{action} `{key}` in train mode (from "
                    f"{describe_origin(trains[0], current)}); call `{key}.eval()` first",
                    related=tuple(related_for(trains[0], "train mode from here")),
                    severity=severity, notes=notes, fix=fix)


# Nodes that make the export conditional within its statement, or put it in another scope or
# block: ``model.eval()`` before the statement would then run when the export does not.
_NOT_ALWAYS = (cst.BaseSuite, cst.BaseStatement, cst.Else, cst.ExceptHandler, cst.Finally,
               cst.Lambda, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp,
               cst.BooleanOperation, cst.IfExp, cst.NamedExpr, cst.Decorator)


def _model_code(source: SourceModule, op: Op, key: str) -> str | None:
    """The model as the code spells it: the export's argument (or receiver) whose key is ``key``;
    for an export through a call, the key itself."""
    if isinstance(op, Export) and isinstance(op.node, cst.Call):
        call = op.node
        candidates = ([call.func.value] if isinstance(call.func, cst.Attribute) else []) + \
            [arg.value for arg in call.args if not arg.star]
        node = next((node for node in candidates if key_of(node) == key), None)
        return model_expression(source, key, node) if node is not None else None
    return model_expression(source, key)


def _eval_first(source: SourceModule, root: cst.CSTNode, op: Op, key: str) -> Fix | None:
    """``<model>.eval()`` on a new line before the statement that exports (or calls the helper
    that exports), when that statement always runs the export."""
    model = _model_code(source, op, key)
    frames = statement_frames(root, op.node)
    if model is None or not frames:
        return None
    statement = frames[-1].statement
    if not isinstance(statement, (cst.SimpleStatementLine, cst.If, cst.With, cst.For)):
        return None
    inner = path_to(statement, op.node)[1:]  # type: ignore[index]
    if isinstance(statement, cst.SimpleStatementLine):
        if not inner or inner[0] is not statement.body[0]:
            return None  # ``x = build(); torch.jit.trace(x, ...)``: the model may come first
        inner = inner[1:]
    if any(isinstance(node, _NOT_ALWAYS) for node in inner[:-1]) or \
            (isinstance(statement, cst.For) and inner[:1] != [statement.iter]):
        return None
    edit = insert_before(source, statement, [f"{model}.eval()"])
    return Fix(f"Call `{model}.eval()` before the export", (edit,), Applicability.UNSAFE) \
        if edit is not None else None
