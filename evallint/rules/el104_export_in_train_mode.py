"""EL104: tracing/exporting/fusing a model that is in train mode."""

from __future__ import annotations

from typing import Iterator

from evallint.analysis.ops import Call, Export, Mode
from evallint.diagnostics import Diagnostic
from evallint.rules.base import Rule, RuleContext
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
            for op, key, action in exports:
                trains = known_origins(analysis.facts(op, key), Mode.TRAIN)
                if not trains or known_mode_free(construction_binds(analysis, key, trains)):
                    continue  # no mode-dependent layer: the exported graph is the same
                severity, notes = severity_for(analysis, key, trains)
                yield ctx.diagnostic(
                    self, op.node,
                    f"{action} `{key}` in train mode (from "
                    f"{describe_origin(trains[0], current)}); call `{key}.eval()` first",
                    related=tuple(related_for(trains[0], "train mode from here")),
                    severity=severity, notes=notes)
