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
    assert "Fixed 1 finding." in result.stderr
    assert "All checks passed!" in result.stdout
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


def test_notebook_is_not_fixed(tmp_path):
    import json

    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": EL106_SCRIPT.splitlines(keepends=True)}]}
    path = tmp_path / "eval.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    before = path.read_bytes()
    result, data = run_json("--no-cache", "--fix", "eval.ipynb")
    assert result.exit_code == 1
    assert [(d["code"], d["cell"], d["fix"]) for d in data] == [("EL106", 1, None)]
    assert path.read_bytes() == before


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
    assert result.text == SOURCE.replace("model.eval\n", "model.eval()\n")
    assert apply_fixes(SOURCE, [bad], unsafe=False) == fixes.FixResult(SOURCE, ())


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
