"""Terminal behaviour: colour (and NO_COLOR), the progress bar on large runs, model-names."""

import json

from click.testing import CliRunner

from evallint import cli
from evallint.cli import main

from cli_snippets import EL103_SCRIPT

RED = "\x1b[1;31m"


def lint(tmp_path, env, *args):
    (tmp_path / "infer.py").write_text(EL103_SCRIPT)
    runner = CliRunner(env=env)
    return runner.invoke(main, ["check", "--no-cache", str(tmp_path / "infer.py"), *args],
                         catch_exceptions=False)


def test_colour_when_forced(tmp_path):
    result = lint(tmp_path, {"FORCE_COLOR": "1", "NO_COLOR": None})
    assert RED in result.stdout


def test_no_colour_with_no_color(tmp_path):
    result = lint(tmp_path, {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "EL103" in result.stdout
    assert "\x1b[31m" not in result.stdout and RED not in result.stdout


def test_no_colour_when_piped(tmp_path):
    result = lint(tmp_path, {"FORCE_COLOR": None, "NO_COLOR": None, "TTY_COMPATIBLE": None})
    assert "EL103" in result.stdout and "\x1b[" not in result.stdout


def write_files(tmp_path, count):
    for index in range(count):
        (tmp_path / f"script_{index}.py").write_text(EL103_SCRIPT)


def test_progress_bar_on_large_runs_to_a_terminal(tmp_path, monkeypatch):
    write_files(tmp_path, 5)
    monkeypatch.setattr(cli, "PROGRESS_THRESHOLD", 3)
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    result = CliRunner(env={"FORCE_COLOR": "1"}).invoke(
        main, ["check", "--no-cache", "--jobs", "1", "--output-format", "json", str(tmp_path)])
    assert "Linting" in result.stderr
    assert len(json.loads(result.stdout)) == 5  # the report itself is untouched


def test_no_progress_bar_for_small_runs_quiet_or_pipes(tmp_path, monkeypatch):
    write_files(tmp_path, 5)
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: True)
    small = CliRunner().invoke(main, ["check", "--no-cache", str(tmp_path)])
    assert "Linting" not in small.stderr
    monkeypatch.setattr(cli, "PROGRESS_THRESHOLD", 3)
    quiet = CliRunner().invoke(main, ["check", "--no-cache", "--quiet", str(tmp_path)])
    assert "Linting" not in quiet.stderr
    monkeypatch.setattr(cli, "_stderr_is_terminal", lambda: False)
    piped = CliRunner().invoke(main, ["check", "--no-cache", str(tmp_path)])
    assert "Linting" not in piped.stderr


def test_model_names_makes_a_parameter_a_model(tmp_path):
    (tmp_path / "freeze.py").write_text(
        "import torch\n\n\ndef freeze(backbone):\n    backbone.training = False\n")
    runner = CliRunner()
    plain = runner.invoke(main, ["check", "--no-cache", "--output-format", "json", str(tmp_path)])
    assert json.loads(plain.stdout) == []
    (tmp_path / "pyproject.toml").write_text('[tool.evallint]\nmodel-names = ["backbone"]\n')
    named = runner.invoke(main, ["check", "--no-cache", "--output-format", "json", str(tmp_path)])
    assert [(d["code"], d["line"]) for d in json.loads(named.stdout)] == [("EL105", 5)]
