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
