"""``--fix``, ``--diff`` and ``--unsafe-fixes`` from the command line, and the fix machinery itself
(``evallint.fixes``): verified to parse, overlapping edits deferred, atomic writes."""

from __future__ import annotations

import os
import stat

import pytest

from evallint import fixes
from evallint.diagnostics import Applicability, Diagnostic, Edit, Fix, Severity, Span
from evallint.fixes import apply_fixes, write_atomically

from cli_snippets import (EL103_AT, EL103_SCRIPT, EL105_SCRIPT, EL106_SCRIPT, EL201_SCRIPT, findings,
                          run, run_json, write)

EL106_FIXED = EL106_SCRIPT.replace("    model.eval\n", "    model.eval()\n")
EL105_FIXED = EL105_SCRIPT.replace("model.training = False\n", "model.eval()\n")
EL201_FIXED = EL201_SCRIPT.replace(
    "    for x, y in loader:\n        correct += (model(x).argmax(1) == y).sum().item()\n",
    "    with torch.no_grad():\n        for x, y in loader:\n"
    "            correct += (model(x).argmax(1) == y).sum().item()\n")


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def parses(text: str) -> bool:
    try:
        compile(text, "<fixed>", "exec")
    except SyntaxError:
        return False
    return True


# -- --fix -----------------------------------------------------------------------------------

def test_fix_adds_missing_call_parentheses(tmp_path):
    path = write(tmp_path, {"evaluate.py": EL106_SCRIPT})["evaluate.py"]
    result = run("check", "--no-cache", "--fix", "evaluate.py")
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == EL106_FIXED
    assert parses(path.read_text(encoding="utf-8"))
    assert "Found 1 finding (1 fixed, 0 remaining)." in result.stdout
    assert "All checks passed!" not in result.stdout
    assert result.stderr == ""
    # Linting again finds nothing.
    again, data = run_json("--no-cache", "evaluate.py")
    assert again.exit_code == 0 and data == []


def test_fix_training_flag_assignment(tmp_path):
    path = write(tmp_path, {"freeze.py": EL105_SCRIPT})["freeze.py"]
    result = run("check", "--no-cache", "--fix", "freeze.py")
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == EL105_FIXED


def test_fix_exit_code_reflects_remaining_findings(tmp_path):
    paths = write(tmp_path, {"evaluate.py": EL106_SCRIPT, "predict.py": EL103_SCRIPT})
    result, data = run_json("--no-cache", "--fix", ".")
    assert result.exit_code == 1
    assert findings(data) == {("predict.py", *EL103_AT)}  # EL103's fix is unsafe: not applied
    assert paths["evaluate.py"].read_text(encoding="utf-8") == EL106_FIXED
    assert paths["predict.py"].read_text(encoding="utf-8") == EL103_SCRIPT


def test_fix_with_exit_zero(tmp_path):
    write(tmp_path, {"evaluate.py": EL106_SCRIPT, "predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "--fix", "--exit-zero", ".")
    assert result.exit_code == 0
    assert "EL103" in result.stdout


def test_fix_keeps_file_permissions(tmp_path):
    path = write(tmp_path, {"evaluate.py": EL106_SCRIPT})["evaluate.py"]
    path.chmod(0o754)
    inode_mode = stat.S_IMODE(path.stat().st_mode)
    assert run("check", "--no-cache", "--fix", "evaluate.py").exit_code == 0
    assert path.read_text(encoding="utf-8") == EL106_FIXED
    assert stat.S_IMODE(path.stat().st_mode) == inode_mode == 0o754
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluate.py"]  # no temporary left


MIXED_SCRIPT = """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.Linear(8, 2))
model.load_state_dict(torch.load("mlp.pt"))
traced = torch.jit.trace(model, torch.randn(1, 8))
model.train("eval")
torch.no_grad()
scores = model(torch.randn(4, 8))
print(scores)
"""
MIXED_FIXED = """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1), nn.Linear(8, 2))
model.load_state_dict(torch.load("mlp.pt"))
model.eval()
traced = torch.jit.trace(model, torch.randn(1, 8))
model.eval()
with torch.no_grad():
    scores = model(torch.randn(4, 8))
    print(scores)
"""


def test_line_inserting_fixes_keep_crlf(tmp_path):
    """EL104 inserts a line, EL107 rewrites a call, EL202 opens a block: all in the file's own
    line endings."""
    path = tmp_path / "export.py"
    path.write_bytes(MIXED_SCRIPT.replace("\n", "\r\n").encode())
    result = run("check", "--no-cache", "--fix", "--unsafe-fixes", "export.py")
    assert result.exit_code == 0, result.output
    assert path.read_bytes() == MIXED_FIXED.replace("\n", "\r\n").encode()


def test_fix_keeps_crlf_and_bom(tmp_path):
    crlf = tmp_path / "crlf.py"
    crlf.write_bytes(EL106_SCRIPT.replace("\n", "\r\n").encode())
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbf" + EL106_SCRIPT.encode())
    result = run("check", "--no-cache", "--fix", "crlf.py", "bom.py")
    assert result.exit_code == 0, result.output
    assert crlf.read_bytes() == EL106_FIXED.replace("\n", "\r\n").encode()
    assert bom.read_bytes() == b"\xef\xbb\xbf" + EL106_FIXED.encode()


def test_fix_removes_unused_noqa(tmp_path):
    text = EL106_FIXED.replace("    model.eval()\n", "    model.eval()  # noqa: EL106\n")
    path = write(tmp_path, {"evaluate.py": text})["evaluate.py"]
    result = run("check", "--no-cache", "--extend-select", "EL002", "--fix", "evaluate.py")
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8").splitlines()[4].rstrip() == "    model.eval()"


# -- --diff ----------------------------------------------------------------------------------

def test_diff_prints_unified_diff_and_keeps_file(tmp_path):
    path = write(tmp_path, {"evaluate.py": EL106_SCRIPT})["evaluate.py"]
    result = run("check", "--no-cache", "--diff", "evaluate.py")
    assert result.exit_code == 1
    assert path.read_text(encoding="utf-8") == EL106_SCRIPT
    lines = result.stdout.splitlines()
    assert lines[:2] == ["--- a/evaluate.py", "+++ b/evaluate.py"]
    assert lines[2].startswith("@@ ")
    assert "-    model.eval" in lines
    assert "+    model.eval()" in lines


def test_diff_without_fixable_findings_is_empty(tmp_path):
    path = write(tmp_path, {"predict.py": EL103_SCRIPT})["predict.py"]
    result = run("check", "--no-cache", "--diff", "predict.py")
    assert result.stdout == ""
    assert result.exit_code == 0
    assert path.read_text(encoding="utf-8") == EL103_SCRIPT


# -- unsafe fixes ----------------------------------------------------------------------------

def test_unsafe_fix_not_applied_without_flag(tmp_path):
    path = write(tmp_path, {"metrics.py": EL201_SCRIPT})["metrics.py"]
    result = run("check", "--no-cache", "--fix", "metrics.py")
    assert result.exit_code == 1
    assert path.read_text(encoding="utf-8") == EL201_SCRIPT
    assert "--unsafe-fixes" in result.stdout  # the text output hints at the hidden fix
    assert run("check", "--no-cache", "--diff", "metrics.py").stdout == ""


def test_unsafe_fix_applied_with_flag(tmp_path):
    path = write(tmp_path, {"metrics.py": EL201_SCRIPT})["metrics.py"]
    diff = run("check", "--no-cache", "--diff", "--unsafe-fixes", "metrics.py")
    assert "+    with torch.no_grad():" in diff.stdout.splitlines()
    assert path.read_text(encoding="utf-8") == EL201_SCRIPT
    result = run("check", "--no-cache", "--fix", "--unsafe-fixes", "metrics.py")
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == EL201_FIXED
    assert parses(EL201_FIXED)


def test_concise_marks_only_applicable_fixes(tmp_path):
    write(tmp_path, {"metrics.py": EL201_SCRIPT})
    plain = run("check", "--no-cache", "--output-format", "concise", "metrics.py").stdout
    unsafe = run("check", "--no-cache", "--output-format", "concise", "--unsafe-fixes", "metrics.py").stdout
    assert "EL201 [*]" not in plain
    assert "EL201 [*]" in unsafe


# -- standard input --------------------------------------------------------------------------

def test_fix_stdin_prints_fixed_code(tmp_path):
    result = run("check", "--no-cache", "--fix", "-", input=EL106_SCRIPT)
    assert result.exit_code == 0
    assert result.stdout == EL106_FIXED
    assert list(tmp_path.iterdir()) == []


def test_fix_stdin_reports_remaining_on_stderr(tmp_path):
    text = EL103_SCRIPT + "\n\n" + EL106_SCRIPT.replace("import torch\n", "")
    result = run("check", "--fix", "--output-format", "concise", "--stdin-filename", "infer.py", "-",
                 input=text)
    assert result.exit_code == 1
    assert result.stdout == text.replace("    model.eval\n", "    model.eval()\n")
    assert "infer.py:6:11: EL103 " in result.stderr
    assert "EL106" not in result.stderr


def test_fix_stdin_without_fixes_echoes_input(tmp_path):
    result = run("check", "--fix", "-", input=EL103_SCRIPT)
    assert result.exit_code == 1
    assert result.stdout == EL103_SCRIPT


# -- form feeds and other line separators ----------------------------------------------------

@pytest.mark.parametrize("separator", ["\x0c", "\u2028"], ids=["form_feed", "line_separator"])
def test_fix_with_unusual_line_separator_in_file(tmp_path, separator):
    # A page break line (GNU style) or a U+2028 inside a comment: neither ends a line in Python.
    text = EL106_SCRIPT.replace("import torch\n", f"import torch\n# section{separator}evaluation\n")
    path = tmp_path / "evaluate.py"
    path.write_text(text, encoding="utf-8", newline="")
    run("check", "--no-cache", "--fix", "evaluate.py")
    assert path.read_bytes().decode("utf-8") == text.replace("    model.eval\n", "    model.eval()\n")


# -- evallint.fixes --------------------------------------------------------------------------

SOURCE = """\
import torch


def evaluate(model, loader):
    model.eval
    with torch.no_grad():
        return [model(x) for x, _ in loader]
"""


def _diagnostic(line: int, column: int, end_column: int, content: str, code: str = "EL106",
                applicability: Applicability = Applicability.SAFE) -> Diagnostic:
    span = Span(line, column, line, end_column)
    return Diagnostic(code=code, name="mode-method-not-called", message="test", severity=Severity.ERROR,
                      path="evaluate.py", span=span,
                      fix=Fix("test fix", (Edit(span, content),), applicability))


def test_apply_fixes_applies_a_good_edit():
    good = _diagnostic(5, 15, 15, "()")
    result = apply_fixes(SOURCE, [good], unsafe=False)
    assert result.text == SOURCE.replace("model.eval\n", "model.eval()\n")
    assert result.applied == (good,)


def test_apply_fixes_refuses_result_that_does_not_parse():
    bad = _diagnostic(5, 15, 15, "(")  # `model.eval(`: never closed
    result = apply_fixes(SOURCE, [bad], unsafe=False)
    assert result.text == SOURCE
    assert result.applied == ()


def test_apply_fixes_leaves_out_only_the_fix_that_breaks_the_parse():
    good = _diagnostic(5, 15, 15, "()")
    bad = _diagnostic(6, 5, 9, "wit")  # `wit torch.no_grad():`
    result = apply_fixes(SOURCE, [good, bad], unsafe=False)
    assert result.applied == (good,)
    assert result.refused == (bad,)
    assert result.text == SOURCE.replace("model.eval\n", "model.eval()\n")
    assert apply_fixes(SOURCE, [bad], unsafe=False) == fixes.FixResult(SOURCE, (), (bad,))


def test_apply_fixes_refuses_result_that_no_longer_compiles():
    # `return` at module level parses (LibCST) but does not compile: the file compiled before.
    script = "import torch\nmodel = torch.nn.Linear(2, 2)\nmodel.eval\n"
    span = Span(3, 1, 3, 11)
    bad = Diagnostic("EL106", "mode-method-not-called", "test", Severity.ERROR, "x.py", span,
                     fix=Fix("test", (Edit(span, "return model"),)))
    assert apply_fixes(script, [bad], unsafe=False) == fixes.FixResult(script, (), (bad,))


def test_apply_fixes_skips_overlapping_edits():
    first = _diagnostic(5, 5, 15, "model.eval()")  # replaces `model.eval`
    overlapping = _diagnostic(5, 10, 15, ".train()", code="EL107")  # inside the same range
    elsewhere = _diagnostic(7, 17, 22, "model")  # `model(x)` -> `model(x)`: no change, but applied
    result = apply_fixes(SOURCE, [overlapping, first, elsewhere], unsafe=False)
    assert first in result.applied and elsewhere in result.applied
    assert overlapping not in result.applied
    assert result.text == SOURCE.replace("model.eval\n", "model.eval()\n")


def test_apply_fixes_two_insertions_at_same_point_only_first():
    a = _diagnostic(5, 15, 15, "()")
    b = _diagnostic(5, 15, 15, "()", code="EL107")
    result = apply_fixes(SOURCE, [b, a], unsafe=False)
    assert result.applied == (a,)  # sorted by code: EL106 first
    assert result.text.count("model.eval()") == 1


def test_apply_fixes_unsafe_only_when_asked():
    unsafe = _diagnostic(5, 15, 15, "()", applicability=Applicability.UNSAFE)
    assert apply_fixes(SOURCE, [unsafe], unsafe=False).applied == ()
    assert apply_fixes(SOURCE, [unsafe], unsafe=True).applied == (unsafe,)


def test_unified_diff_format():
    diff = fixes.unified_diff("pkg/evaluate.py", SOURCE, SOURCE.replace("model.eval\n", "model.eval()\n"))
    assert diff.startswith("--- a/pkg/evaluate.py\n+++ b/pkg/evaluate.py\n@@ ")
    assert "-    model.eval\n+    model.eval()\n" in diff


# -- write_atomically ------------------------------------------------------------------------

def test_write_atomically_replaces_content_and_keeps_mode(tmp_path):
    path = tmp_path / "evaluate.py"
    path.write_text(SOURCE, encoding="utf-8")
    path.chmod(0o640)
    write_atomically(path, "x = 1\n")
    assert path.read_text(encoding="utf-8") == "x = 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluate.py"]


def test_write_atomically_failure_leaves_original(tmp_path, monkeypatch):
    path = tmp_path / "evaluate.py"
    path.write_text(SOURCE, encoding="utf-8")

    def failing_replace(src, dst, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fixes.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, SOURCE.replace("model.eval\n", "model.eval()\n"))
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == SOURCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluate.py"]


def test_write_atomically_failure_while_writing(tmp_path, monkeypatch):
    path = tmp_path / "evaluate.py"
    path.write_text(SOURCE, encoding="utf-8")
    real_chmod = os.chmod

    def failing_chmod(target, mode, *args, **kwargs):
        if str(target) != str(path):
            raise PermissionError(1, "Operation not permitted")
        return real_chmod(target, mode, *args, **kwargs)

    monkeypatch.setattr(fixes.os, "chmod", failing_chmod)
    with pytest.raises(PermissionError):
        write_atomically(path, "x = 1\n")
    monkeypatch.undo()
    assert path.read_text(encoding="utf-8") == SOURCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluate.py"]


HOISTED_TRAIN = """\
import torch
from torch import nn


def validate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(model(x).argmax(1).eq(y).sum().item() for x, y in loader)


model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()
for epoch in range(10):
    for x, y in train_loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
    validate(model, val_loader)
"""


def test_el101_fix_moves_train_into_the_epoch_loop_only_with_unsafe_fixes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "train.py"
    path.write_text(HOISTED_TRAIN)
    safe = run("check", "--no-cache", "--fix", "train.py")
    assert path.read_text() == HOISTED_TRAIN and safe.exit_code == 1
    fixed = run("check", "--no-cache", "--select", "EL101", "--fix", "--unsafe-fixes", "train.py")
    assert fixed.exit_code == 0
    assert path.read_text() == HOISTED_TRAIN.replace("model.train()\nfor epoch in range(10):\n",
                                                     "for epoch in range(10):\n    model.train()\n")


# -- EL109: train(mode) overrides ------------------------------------------------------------

EL109_OVERRIDE = """\
from torch import nn


class Detector(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(256, 10))

    def train(self, mode=True):
        super().train()
        self.backbone.eval()  # frozen


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.cache = None

    def train(self, mode: bool = True):
        nn.Module.train(self)
        if mode:
            self.cache = None
            return
        return None


class Head(nn.Module):
    def train(module, training=True): super().train(training)
"""
EL109_FIXED = """\
from torch import nn


class Detector(nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(256, 10))

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # frozen
        return self


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.2)
        self.cache = None

    def train(self, mode: bool = True):
        nn.Module.train(self, mode)
        if mode:
            self.cache = None
            return self
        return self


class Head(nn.Module):
    def train(module, training=True): super().train(training); return module
"""


def test_el109_fix_passes_the_mode_and_returns_self(tmp_path):
    path = write(tmp_path, {"models.py": EL109_OVERRIDE})["models.py"]
    before, data = run_json("--no-cache", "--select", "EL109", "models.py")
    assert findings(data) == {("models.py", "EL109", 10, 9), ("models.py", "EL109", 11, 9),
                              ("models.py", "EL109", 22, 9), ("models.py", "EL109", 25, 13),
                              ("models.py", "EL109", 26, 9), ("models.py", "EL109", 30, 9)}
    assert all(d["fix"] is not None for d in data)
    result = run("check", "--no-cache", "--fix", "models.py")
    assert result.exit_code == 0, result.output
    fixed = path.read_text(encoding="utf-8")
    assert fixed == EL109_FIXED
    assert parses(fixed)
    again, data = run_json("--no-cache", "models.py")
    assert again.exit_code == 0 and data == []


def test_el109_fix_keeps_crlf_and_tab_indentation(tmp_path):
    text = EL109_OVERRIDE.replace("    ", "\t")
    path = tmp_path / "models.py"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    result = run("check", "--no-cache", "--fix", "models.py")
    assert result.exit_code == 0, result.output
    assert path.read_bytes() == EL109_FIXED.replace("    ", "\t").replace("\n", "\r\n").encode()


def test_el109_skipped_children_have_no_fix(tmp_path):
    text = """\
from torch import nn


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.GRU(32, 32, num_layers=2, dropout=0.2)
        self.decoder = nn.GRU(32, 32, num_layers=2, dropout=0.2)

    def train(self, mode=True):
        self.training = mode
        self.encoder.train(mode)
        return self
"""
    path = write(tmp_path, {"seq2seq.py": text})["seq2seq.py"]
    result, data = run_json("--no-cache", "--fix", "seq2seq.py")
    assert result.exit_code == 1
    assert [(d["code"], d["line"], d["fix"]) for d in data] == [("EL109", 10, None)]
    assert "`self.decoder` keeps its mode" in data[0]["message"]
    assert path.read_text(encoding="utf-8") == text


# -- rounds ----------------------------------------------------------------------------------

def _fake_findings(path: str, text: str) -> list[Diagnostic]:
    """A stand-in linter: every ``wrap(...)`` call is a finding whose fix replaces the whole call
    by ``[...]``; nested calls give overlapping fixes, so only the outermost fits in a round."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        start = line.find("wrap(")
        while start != -1:
            depth, end = 0, start + 4
            for end in range(start + 4, len(line)):
                depth += {"(": 1, ")": -1}.get(line[end], 0)
                if depth == 0:
                    break
            span = Span(number, start + 1, number, end + 2)
            inner = line[start + 5:end]
            found.append(Diagnostic("EL106", "mode-method-not-called", "wrap", Severity.ERROR, path, span,
                                    fix=Fix("unwrap", (Edit(span, f"[{inner}]"),))))
            start = line.find("wrap(", start + 1)
    return found


def _use_fake_linter(monkeypatch, findings_of=_fake_findings):
    from evallint import cli
    from evallint.runner import FileResult

    def fake_lint_targets(targets, options, jobs, cache=None, on_progress=None, linted=None):
        from evallint.cache import content_hash

        out = []
        for target in targets:
            data = target.file.read_bytes()
            if linted is not None:
                linted[target.path] = content_hash(data)
            out += findings_of(target.path, data.decode())
        return out

    def fake_lint_target(target, project, options):
        return FileResult(target.path, findings_of(target.path, target.text))

    monkeypatch.setattr(cli, "lint_targets", fake_lint_targets)
    monkeypatch.setattr(cli, "lint_target", fake_lint_target)


def test_overlapping_fixes_are_applied_in_rounds(tmp_path, monkeypatch):
    _use_fake_linter(monkeypatch)
    path = tmp_path / "nested.py"
    path.write_text("value = wrap(wrap(wrap(1)) + wrap(2))\n", encoding="utf-8")
    # Round 1 takes the outermost call only (the others overlap it), round 2 the two inside it
    # (side by side, no overlap), round 3 the last.
    assert [d.span.column for d in _fake_findings("nested.py", path.read_text())] == [9, 14, 19, 30]
    result = run("check", "--no-cache", "--fix", "nested.py")
    assert path.read_text(encoding="utf-8") == "value = [[[1]] + [2]]\n"
    assert result.exit_code == 0
    assert "Found 4 findings (4 fixed, 0 remaining)." in result.stdout


def test_fixes_that_do_not_settle_stop_after_the_bound(tmp_path, monkeypatch):
    from evallint import cli

    def flip_flop(path, text):  # a fix that undoes itself: 1 -> 2 -> 1 -> ...
        span = Span(1, 5, 1, 6)
        new = "2" if text.startswith("x = 1") else "1"
        return [Diagnostic("EL106", "mode-method-not-called", "flip", Severity.ERROR, path, span,
                           fix=Fix("flip", (Edit(span, new),)))]

    _use_fake_linter(monkeypatch, flip_flop)
    path = tmp_path / "flip.py"
    path.write_text("x = 1\n", encoding="utf-8")
    result = run("check", "--no-cache", "--fix", "flip.py")
    assert result.exit_code == 1
    assert f"did not settle after {cli.FIX_ROUNDS} rounds" in result.stderr
    # An even number of rounds brings the text back: nothing to write, nothing counted as fixed.
    assert path.read_text(encoding="utf-8") == "x = 1\n"
    assert "Found 1 finding." in result.stdout


def test_fix_that_breaks_the_file_is_reported(tmp_path, monkeypatch):
    def breaking(path, text):
        span = Span(1, 1, 1, 4)
        return [Diagnostic("EL106", "mode-method-not-called", "break", Severity.ERROR, path, span,
                           fix=Fix("break", (Edit(span, "def"),)))]

    _use_fake_linter(monkeypatch, breaking)
    path = tmp_path / "broken.py"
    path.write_text("x = 1\n", encoding="utf-8")
    result = run("check", "--no-cache", "--fix", "broken.py")
    assert result.exit_code == 1 and path.read_text(encoding="utf-8") == "x = 1\n"
    assert "broken.py:1:1: the fix for EL106 was not applied: the fixed file would not parse" in result.stderr


def test_summary_counts_fixed_and_remaining(tmp_path):
    write(tmp_path, {"evaluate.py": EL106_SCRIPT, "predict.py": EL103_SCRIPT, "freeze.py": EL105_SCRIPT})
    result = run("check", "--no-cache", "--fix", ".")
    assert result.exit_code == 1
    assert "Found 3 findings (2 fixed, 1 remaining)." in result.stdout
    concise = run("check", "--no-cache", "--fix", "--output-format", "concise", ".")
    assert concise.stderr == ""  # nothing left to fix
    (tmp_path / "evaluate.py").write_text(EL106_SCRIPT, encoding="utf-8")
    concise = run("check", "--no-cache", "--fix", "--output-format", "concise", ".")
    assert concise.stderr == "Fixed 1 finding (1 remaining).\n"


# -- the file on disk changes ----------------------------------------------------------------

def test_file_changed_while_fixing_is_not_overwritten(tmp_path, monkeypatch):
    from evallint import cli

    path = write(tmp_path, {"evaluate.py": EL106_SCRIPT})["evaluate.py"]
    edited = EL106_SCRIPT + "\nprint('edited meanwhile')\n"
    real_lint_target = cli.lint_target

    def lint_and_edit(target, project, options):  # the re-lint after a round of fixes
        path.write_text(edited, encoding="utf-8")
        return real_lint_target(target, project, options)

    monkeypatch.setattr(cli, "lint_target", lint_and_edit)
    result, data = run_json("--no-cache", "--fix", "evaluate.py")
    assert path.read_text(encoding="utf-8") == edited
    assert "changed on disk while it was being fixed" in result.stderr
    assert [d["code"] for d in data] == ["EL106"] and result.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluate.py"]


def test_file_changed_after_linting_is_linted_again_before_fixing(tmp_path, monkeypatch):
    from evallint import cli

    path = write(tmp_path, {"evaluate.py": EL106_SCRIPT})["evaluate.py"]
    shifted = "# a header someone added\n# after the lint\n" + EL106_SCRIPT
    real_lint_targets = cli.lint_targets

    def lint_then_edit(*args, **kwargs):
        found = real_lint_targets(*args, **kwargs)
        path.write_text(shifted, encoding="utf-8")
        return found

    monkeypatch.setattr(cli, "lint_targets", lint_then_edit)
    assert run("check", "--no-cache", "--fix", "evaluate.py").exit_code == 0
    # The fix lands on `model.eval`, now two lines lower, not where it was when linted.
    assert path.read_text(encoding="utf-8") == shifted.replace("    model.eval\n", "    model.eval()\n")


def test_write_atomically_refuses_a_file_that_changed(tmp_path):
    path = tmp_path / "evaluate.py"
    path.write_text(SOURCE, encoding="utf-8")
    with pytest.raises(fixes.FileChanged):
        write_atomically(path, "x = 1\n", expected=b"something else")
    assert path.read_text(encoding="utf-8") == SOURCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evaluate.py"]
    write_atomically(path, "x = 1\n", expected=SOURCE.encode())
    assert path.read_text(encoding="utf-8") == "x = 1\n"


def test_fix_through_a_symbolic_link_keeps_the_link(tmp_path):
    target = write(tmp_path, {"real/evaluate.py": EL106_SCRIPT})["real/evaluate.py"]
    link = tmp_path / "evaluate.py"
    link.symlink_to(target)
    assert run("check", "--no-cache", "--fix", "evaluate.py").exit_code == 0
    assert link.is_symlink()
    assert target.read_text(encoding="utf-8") == EL106_FIXED


def test_diff_exit_codes_and_nothing_written(tmp_path):
    paths = write(tmp_path, {"evaluate.py": EL106_SCRIPT, "clean.py": "x = 1\n"})
    result = run("check", "--no-cache", "--diff", ".")
    assert result.exit_code == 1 and result.stdout.startswith("--- a/evaluate.py\n")
    assert paths["evaluate.py"].read_text(encoding="utf-8") == EL106_SCRIPT
    assert run("check", "--no-cache", "--diff", "--exit-zero", ".").exit_code == 0
    assert run("check", "--no-cache", "--diff", "clean.py").exit_code == 0


EL201_MULTILINE_STRING = '''\
import torch


def evaluate(model, loader):
    model.eval()
    correct = 0
    for x, y in loader:
        print("""batch
of inputs""")
        correct += (model(x).argmax(1) == y).sum().item()
    return correct
'''


def test_el201_fix_does_not_reindent_inside_a_multiline_string(tmp_path):
    path = write(tmp_path, {"metrics.py": EL201_MULTILINE_STRING})["metrics.py"]
    result = run("check", "--no-cache", "--fix", "--unsafe-fixes", "metrics.py")
    assert result.exit_code == 0, result.output
    assert path.read_text(encoding="utf-8") == EL201_MULTILINE_STRING.replace(
        '    for x, y in loader:\n        print("""batch\nof inputs""")\n'
        '        correct += (model(x).argmax(1) == y).sum().item()\n',
        '    with torch.no_grad():\n        for x, y in loader:\n            print("""batch\nof inputs""")\n'
        '            correct += (model(x).argmax(1) == y).sum().item()\n')


# -- a fix that waits for another code's fix ---------------------------------------------------

def _finding(code: str, line: int, content: str, waits_for: tuple[str, ...] = ()) -> Diagnostic:
    span = Span(line, 1, line, 1)
    return Diagnostic(code, "name", "message", Severity.ERROR, "x.py", span,
                      fix=Fix("insert", (Edit(span, content),), Applicability.SAFE, waits_for))


def test_fix_waits_while_the_code_it_waits_for_has_a_fix():
    text = "a = 1\nb = 2\n"
    first = _finding("EL102", 1, "# restored\n")
    waiting = _finding("EL101", 2, "# trained\n", waits_for=("EL102",))
    result = apply_fixes(text, [waiting, first], unsafe=False)
    assert result.text == "# restored\na = 1\nb = 2\n"
    assert result.applied == (first,)
    # Next round: nothing of EL102 is left, so the waiting fix goes in.
    alone = apply_fixes(result.text, [_finding("EL101", 3, "# trained\n", waits_for=("EL102",))], unsafe=False)
    assert alone.text == "# restored\na = 1\n# trained\nb = 2\n"


def test_waits_for_survives_the_json_round_trip():
    from evallint.serialize import diagnostic_from_dict, diagnostic_to_dict

    waiting = _finding("EL101", 2, "model.train()\n", waits_for=("EL102",))
    data = diagnostic_to_dict(waiting)
    assert data["fix"]["waits_for"] == ["EL102"]
    assert diagnostic_from_dict(data) == waiting
    assert "waits_for" not in diagnostic_to_dict(_finding("EL106", 1, "()"))["fix"]


EL101_PROBED = """\
import torch


def probe(model, batch):
    model.eval()
    with torch.no_grad():
        return model(batch).mean().item()


def run(model, optimizer, loader, probe_batch):
    for step, (x, y) in enumerate(loader):
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(probe(model, probe_batch))
"""


def test_el101_fix_waits_for_el102_and_applies_without_it(tmp_path):
    path = write(tmp_path, {"loop.py": EL101_PROBED})["loop.py"]
    # Both rules: EL102's restore goes first and removes the leak; no train() is added.
    assert run("check", "--no-cache", "--fix", "--unsafe-fixes", "loop.py").exit_code == 0
    fixed = path.read_text(encoding="utf-8")
    assert "was_training = model.training" in fixed and "model.train()" not in fixed
    # EL101 alone: its own fix, `model.train()` at the top of the loop body (before the forward).
    path.write_text(EL101_PROBED, encoding="utf-8")
    assert run("check", "--no-cache", "--select", "EL101", "--fix", "--unsafe-fixes", "loop.py").exit_code == 0
    assert path.read_text(encoding="utf-8") == EL101_PROBED.replace(
        "    for step, (x, y) in enumerate(loader):\n",
        "    for step, (x, y) in enumerate(loader):\n        model.train()\n")


def test_el101_move_waits_for_el102_in_the_same_file(tmp_path):
    hoisted = EL101_PROBED.replace(
        "    for step, (x, y) in enumerate(loader):\n",
        "    model.train()\n    for step, (x, y) in enumerate(loader):\n")
    path = write(tmp_path, {"loop.py": hoisted})["loop.py"]
    _, data = run_json("--no-cache", "--unsafe-fixes", "loop.py")
    assert sorted((d["code"], d["fix"]["waits_for"] if "waits_for" in d["fix"] else None) for d in data) == [
        ("EL101", ["EL102"]), ("EL102", None)]
    assert [d["fix"]["message"] for d in data if d["code"] == "EL101"] == ["Move `model.train()` to the top of the loop body"]
    assert run("check", "--no-cache", "--fix", "--unsafe-fixes", "loop.py").exit_code == 0
    fixed = path.read_text(encoding="utf-8")
    # The restore went first; the leak is gone, so the hoisted train() stays where it is.
    assert "    model.train()\n    for step" in fixed and "model.train(was_training)" in fixed
