"""Test code: EL103/EL201 are off in pytest-style test files and functions unless
``test-code = "strict"``; the other rules stay on."""

import json
import subprocess
import sys

import pytest

SCRIPT = """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
with torch.no_grad():
    out = model(torch.randn(2, 4))
model.eval
"""


def check(folder, *args):
    proc = subprocess.run([sys.executable, "-m", "evallint", "check", "--no-cache", "--output-format",
                           "json", *args, "."], cwd=folder, capture_output=True, text=True)
    assert proc.returncode in (0, 1), proc.stderr
    return sorted((d["path"], d["code"]) for d in json.loads(proc.stdout))


@pytest.mark.parametrize("relative", ["tests/unit/models.py", "test/models.py", "test_models.py",
                                      "models_test.py", "conftest.py"])
def test_test_files_keep_only_other_rules(tmp_path, relative):
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    assert check(tmp_path) == [(relative, "EL106")]


def test_ordinary_file_and_strict_setting(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "models.py").write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "predict.py").write_text(SCRIPT, encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text("[tool.evallint]\n", encoding="utf-8")
    assert check(tmp_path) == [("predict.py", "EL103"), ("predict.py", "EL106"), ("tests/models.py", "EL106")]
    (tmp_path / "pyproject.toml").write_text('[tool.evallint]\ntest-code = "strict"\n', encoding="utf-8")
    assert check(tmp_path) == [("predict.py", "EL103"), ("predict.py", "EL106"),
                               ("tests/models.py", "EL103"), ("tests/models.py", "EL106")]


def test_project_inside_a_folder_named_tests(tmp_path):
    project = tmp_path / "tests" / "app"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'app'\n", encoding="utf-8")
    (project / "predict.py").write_text(SCRIPT, encoding="utf-8")
    assert check(project) == [("predict.py", "EL103"), ("predict.py", "EL106")]


def test_bad_test_code_value(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.evallint]\ntest-code = "off"\n', encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "evallint", "check", "."], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "test-code" in proc.stderr
