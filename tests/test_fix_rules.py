"""The fixes of single rules on small snippets: which edit, which applicability, and where no fix
is offered because the right edit is not knowable."""

from __future__ import annotations

import pytest

from evallint.diagnostics import Applicability
from evallint.fixes import apply_fixes

from helpers import lint_snippet

EL107_SCRIPT = """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
{call}
"""


def fixed_by(tmp_path, code: str, script: str):
    """(the fix's applicability, the fixed script) of the one ``code`` finding, or (None, None)."""
    [finding] = [d for d in lint_snippet(tmp_path, script) if d.code == code]
    if finding.fix is None:
        return None, None
    result = apply_fixes(script, [finding], unsafe=True)
    assert result.applied == (finding,)
    return finding.fix.applicability, result.text


SAFE, UNSAFE = Applicability.SAFE, Applicability.UNSAFE


@pytest.mark.parametrize("call, expected, applicability", [
    ("model.eval(True)", "model.eval()", SAFE),  # a TypeError today
    ("model.eval(1)", "model.eval()", SAFE),
    ("model.eval('eval')", "model.eval()", SAFE),
    ("model.eval(mode='yes')", "model.eval()", SAFE),
    ("model.train('train')", "model.train()", SAFE),  # the same behaviour, said plainly
    ("model.train(' Training ')", "model.train()", SAFE),
    ("model.train(1)", "model.train()", SAFE),
    ("model.train(2.5)", "model.train()", SAFE),
    ("model.train(0)", "model.eval()", SAFE),
    ("model.train(0.0)", "model.eval()", SAFE),
    ("model.train('')", "model.eval()", SAFE),
    ("model.train('eval')", "model.eval()", UNSAFE),  # the mode changes: train -> eval
    ("model.train(mode='val')", "model.eval()", UNSAFE),
    ("model.train('False')", "model.eval()", UNSAFE),
    ("model.train('no')", "model.eval()", UNSAFE),
    ("model.train('inference')", "model.eval()", UNSAFE),
], ids=lambda value: value if isinstance(value, str) else None)
def test_el107_fix(tmp_path, call, expected, applicability):
    script = EL107_SCRIPT.format(call=call)
    assert fixed_by(tmp_path, "EL107", script) == (applicability, script.replace(call, expected))


@pytest.mark.parametrize("call", [
    "model.eval(False)",  # eval mode, or train mode?
    "model.eval(0)",
    "model.eval('train')",
    "model.eval(None)",
    "model.train('finetune')",  # names no mode
    "model.train(  # which mode\n    'eval')",  # a comment would be lost
])
def test_el107_no_fix_where_the_intent_is_not_knowable(tmp_path, call):
    assert fixed_by(tmp_path, "EL107", EL107_SCRIPT.format(call=call)) == (None, None)


# -- EL104 -------------------------------------------------------------------------------------

EL104_SCRIPT = """\
import torch
from torch import nn

nets = {{"g": nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))}}
model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2))
x = torch.randn(2, 8)
{code}
"""


@pytest.mark.parametrize("code, expected", [
    ("traced = torch.jit.trace(model, x)", "model.eval()\ntraced = torch.jit.trace(model, x)"),
    ("nets['g'].train()\ntorch.onnx.export(nets['g'], x, 'g.onnx')",
     "nets['g'].train()\nnets['g'].eval()\ntorch.onnx.export(nets['g'], x, 'g.onnx')"),
    ("with open('m.onnx', 'wb') as f:\n    torch.onnx.export(model, x, f)",
     "with open('m.onnx', 'wb') as f:\n    model.eval()\n    torch.onnx.export(model, x, f)"),
    ("def export():\n    return torch.jit.trace(model, x)\n\n\nexport()",  # reported at the call
     "def export():\n    return torch.jit.trace(model, x)\n\n\nmodel.eval()\nexport()"),
    ("traced = torch.jit.trace(model, x); traced.save('m.pt')",
     "model.eval()\ntraced = torch.jit.trace(model, x); traced.save('m.pt')"),
    ("if torch.jit.trace(model, x) is not None:\n    pass",
     "model.eval()\nif torch.jit.trace(model, x) is not None:\n    pass"),
], ids=["assign", "subscript", "with_body", "helper_call", "first_of_line", "if_test"])
def test_el104_fix_inserts_eval_before_the_statement(tmp_path, code, expected):
    script = EL104_SCRIPT.format(code=code)
    assert fixed_by(tmp_path, "EL104", script) == (UNSAFE, script.replace(code, expected))


@pytest.mark.parametrize("code", [
    "if len(x): traced = torch.jit.trace(model, x)",
    "ok = len(x) > 1 and torch.jit.trace(model, x)",
    "traced = torch.jit.trace(model, x) if len(x) else None",
    "traces = [torch.jit.trace(model, x) for _ in range(2)]",
    "if len(x) > 2:\n    pass\nelif torch.jit.trace(model, x):\n    pass",
    "y = 1; traced = torch.jit.trace(model, x)",
], ids=["one_line_if", "and", "if_expression", "comprehension", "elif_test", "second_on_line"])
def test_el104_no_fix_where_the_export_may_not_run(tmp_path, code):
    script = EL104_SCRIPT.format(code=code)
    findings = [d for d in lint_snippet(tmp_path, script) if d.code == "EL104"]
    assert findings and all(d.fix is None for d in findings)


def test_el104_ddp_module_is_spelled_as_exported(tmp_path):
    code = "wrapped = nn.DataParallel(model)\ntorch.onnx.export(wrapped.module, x, 'm.onnx')"
    script = EL104_SCRIPT.format(code=code)
    applicability, fixed = fixed_by(tmp_path, "EL104", script)
    assert fixed == script.replace("torch.onnx", "wrapped.module.eval()\ntorch.onnx")


# -- EL202 -------------------------------------------------------------------------------------

EL202_SCRIPT = """\
import torch


def predict(model, x):
    model.eval()
{body}
"""


@pytest.mark.parametrize("body, expected, applicability", [
    ("    with torch.no_grad:\n        return model(x)", "    with torch.no_grad():\n        return model(x)", SAFE),
    ("    with (torch.inference_mode) as mode:\n        return model(x)",
     "    with (torch.inference_mode()) as mode:\n        return model(x)", SAFE),
    ("    torch.no_grad()  # inference only\n    # one batch\n    y = model(x)\n\n    return y",
     "    with torch.no_grad():  # inference only\n        # one batch\n        y = model(x)\n\n        return y",
     UNSAFE),
    ("    torch.no_grad()\n    y = model(\n        x,\n    )\n    return y",
     "    with torch.no_grad():\n        y = model(\n            x,\n        )\n        return y", UNSAFE),
    ("    torch.no_grad()\n    note = '''first\nsecond'''\n    return model(x), note",
     "    with torch.no_grad():\n        note = '''first\nsecond'''\n        return model(x), note", UNSAFE),
], ids=["with_missing_call", "parenthesized_with_as", "bare_call_keeps_comments", "continuation_lines",
        "multi_line_string"])
def test_el202_fix(tmp_path, body, expected, applicability):
    script = EL202_SCRIPT.format(body=body)
    assert fixed_by(tmp_path, "EL202", script) == (applicability, script.replace(body, expected))


@pytest.mark.parametrize("body", [
    "    y = model(x)\n    torch.no_grad()",  # nothing follows it
    "    torch.no_grad(); y = model(x)\n    return y",  # shares its line
    "    if x is not None: torch.no_grad()\n    return model(x)",  # a one-line block
])
def test_el202_no_fix_for_a_bare_call(tmp_path, body):
    assert fixed_by(tmp_path, "EL202", EL202_SCRIPT.format(body=body)) == (None, None)
