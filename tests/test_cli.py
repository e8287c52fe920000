"""The command line as users run it: commands, options, exit codes, configuration, noqa.

A few cases go through ``python -m evallint`` in a subprocess; the rest use click's CliRunner.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from evallint.rules import all_rules

from cli_snippets import (CLEAN_SCRIPT, EL103_AT, EL103_SCRIPT, EL106_AT, EL106_SCRIPT,
                          EL201_AT, EL201_SCRIPT, TRAIN_EL101_AT, TRAIN_SCRIPT, UNCLOSED_LINE,
                          UNCLOSED_SCRIPT, UTILS_LEAKING, findings, run, run_json, write)


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    """Every test runs in its own folder, so paths in the output are the relative ones given."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def codes_of(data: list[dict]) -> set[str]:
    return {d["code"] for d in data}


# -- python -m evallint (subprocess) ---------------------------------------------------------

def _python_m(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evallint", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_python_m_clean_file_exits_0(tmp_path):
    write(tmp_path, {"predict.py": CLEAN_SCRIPT})
    proc = _python_m(tmp_path, "check", "--no-cache", "predict.py")
    assert proc.returncode == 0, proc.stderr
    assert "All checks passed!" in proc.stdout


def test_python_m_findings_exit_1(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    proc = _python_m(tmp_path, "check", "--no-cache", "--output-format", "concise", "predict.py")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("predict.py:6:11: EL103 ")


def test_python_m_unknown_code_exits_2(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    proc = _python_m(tmp_path, "check", "--select", "EL999", "predict.py")
    assert proc.returncode == 2
    assert "EL999" in proc.stderr
    assert proc.stdout == ""


# -- exit codes ------------------------------------------------------------------------------

def test_clean_file_exit_0(tmp_path):
    write(tmp_path, {"predict.py": CLEAN_SCRIPT})
    result = run("check", "--no-cache", "predict.py")
    assert result.exit_code == 0
    assert "All checks passed!" in result.stdout


def test_findings_exit_1_with_summary(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "predict.py")
    assert result.exit_code == 1
    assert "predict.py:6:11: EL103" in result.stdout
    assert "Found 1 finding." in result.stdout
    assert "All checks passed!" not in result.stdout


def test_exit_zero_reports_but_exits_0(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "--exit-zero", "predict.py")
    assert result.exit_code == 0
    assert "EL103" in result.stdout


@pytest.mark.parametrize("option", ["--select", "--ignore", "--extend-select"])
@pytest.mark.parametrize("code", ["EL999", "XY1", "E"])
def test_unknown_code_on_command_line_exits_2(tmp_path, option, code):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", option, code, "predict.py")
    assert result.exit_code == 2
    assert code in result.stderr
    assert "EL103" not in result.stdout


def test_unknown_config_key_exits_2_and_names_it(tmp_path):
    write(tmp_path, {"pyproject.toml": '[project]\nname = "x"\n\n[tool.evallint]\nselct = ["EL1"]\n',
                     "predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "predict.py")
    assert result.exit_code == 2
    assert "selct" in result.stderr
    assert "EL103" not in result.stdout


def test_unknown_code_in_config_exits_2(tmp_path):
    write(tmp_path, {"pyproject.toml": '[tool.evallint]\nignore = ["EL777"]\n',
                     "predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "predict.py")
    assert result.exit_code == 2
    assert "EL777" in result.stderr


def test_unreadable_config_exits_2(tmp_path):
    write(tmp_path, {"pyproject.toml": "[tool.evallint\nselect = \n", "predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "predict.py")
    assert result.exit_code == 2
    assert "pyproject.toml" in result.stderr


def test_explicit_config_file(tmp_path):
    write(tmp_path, {"conf/evallint.toml": 'select = ["EL106"]\n', "predict.py": EL103_SCRIPT,
                     "evaluate.py": EL106_SCRIPT})
    _, data = run_json("--no-cache", "predict.py", "evaluate.py")
    assert codes_of(data) == {"EL103", "EL106"}
    _, data = run_json("--no-cache", "--config", "conf/evallint.toml", "predict.py", "evaluate.py")
    assert codes_of(data) == {"EL106"}


def test_missing_explicit_config_exits_2(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "--config", "nope.toml", "predict.py")
    assert result.exit_code == 2
    assert "nope.toml" in result.stderr


def test_stdin_cannot_be_mixed_with_paths(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "-", "predict.py", input=CLEAN_SCRIPT)
    assert result.exit_code == 2


# -- files that do not parse -----------------------------------------------------------------

def test_syntax_error_is_el001_and_other_files_still_linted(tmp_path):
    write(tmp_path, {"broken.py": UNCLOSED_SCRIPT, "predict.py": EL103_SCRIPT})
    result, data = run_json("--no-cache", "broken.py", "predict.py")
    assert result.exit_code == 1
    broken = [d for d in data if d["path"] == "broken.py"]
    assert [(d["code"], d["name"], d["line"]) for d in broken] == [("EL001", "syntax-error", UNCLOSED_LINE)]
    assert ("predict.py", *EL103_AT) in findings(data)


def test_syntax_error_alone_exits_1_not_2(tmp_path):
    write(tmp_path, {"broken.py": UNCLOSED_SCRIPT})
    result = run("check", "--no-cache", "--output-format", "concise", "broken.py")
    assert result.exit_code == 1
    assert re.match(rf"broken\.py:{UNCLOSED_LINE}:\d+: EL001 ", result.stdout)


# The position of a parse error should be where Python reports it. evallint takes libcst's
# ``raw_line`` / ``raw_column``, which point at a later token for parser errors and are always
# 1:1 for tokenizer errors.
PARSE_ERRORS = {
    "missing_colon": ("import torch\nimport torchvision\n\nmodel = torchvision.models.resnet18()\n"
                      "model.eval()\nwith torch.no_grad()\n    out = model(torch.randn(1, 3, 224, 224))\n"
                      "print(out)\n", 6),
    "keyword_as_target": ("import torch\n\nmodel = torch.nn.Linear(2, 2)\nclass = model.eval()\n"
                          "print(model)\n", 4),
    "unmatched_paren": ("import torch\n\nmodel = torch.nn.Linear(2, 2)\nmodel.eval())\nprint(model)\n", 4),
}


@pytest.mark.parametrize("name", sorted(PARSE_ERRORS))
def test_syntax_error_reported_at_error_line(tmp_path, name):
    text, line = PARSE_ERRORS[name]
    with pytest.raises(SyntaxError) as python_error:
        compile(text, "broken.py", "exec")
    assert python_error.value.lineno == line  # the test's own premise
    write(tmp_path, {"broken.py": text})
    result, data = run_json("--no-cache", "broken.py")
    assert [(d["code"], d["line"]) for d in data] == [("EL001", line)]


def test_non_utf8_file_is_el001(tmp_path):
    (tmp_path / "latin.py").write_bytes(b"import torch\n# r\xe9sum\xe9 of the model\nmodel = torch.nn.Linear(2, 2)\n")
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result, data = run_json("--no-cache", "latin.py", "predict.py")
    assert result.exit_code == 1
    assert [d["code"] for d in data if d["path"] == "latin.py"] == ["EL001"]
    assert ("predict.py", *EL103_AT) in findings(data)


def test_el001_cannot_be_ignored(tmp_path):
    write(tmp_path, {"broken.py": UNCLOSED_SCRIPT,
                     "pyproject.toml": '[tool.evallint]\nignore = ["EL001"]\n'
                                       'per-file-ignores = { "broken.py" = ["EL0"] }\n'})
    for extra in ([], ["--ignore", "EL001"], ["--ignore", "ALL"], ["--select", "EL2"]):
        result, data = run_json("--no-cache", *extra, "broken.py")
        assert result.exit_code == 1, extra
        assert codes_of(data) == {"EL001"}, extra


def test_el001_only_skipped_by_exclude(tmp_path):
    write(tmp_path, {"broken.py": UNCLOSED_SCRIPT, "pyproject.toml": '[tool.evallint]\nexclude = ["broken.py"]\n'})
    result, data = run_json("--no-cache", "broken.py")
    assert result.exit_code == 0
    assert data == []


# -- rule selection --------------------------------------------------------------------------

@pytest.fixture
def mixed(tmp_path):
    """Files with EL101 (cross-file), EL103, EL106 and EL201 findings."""
    write(tmp_path, {"train.py": TRAIN_SCRIPT, "utils.py": UTILS_LEAKING, "predict.py": EL103_SCRIPT,
                     "evaluate.py": EL106_SCRIPT, "metrics.py": EL201_SCRIPT})
    return tmp_path


def test_default_selection(mixed):
    result, data = run_json("--no-cache", ".")
    assert result.exit_code == 1
    assert findings(data) == {("train.py", *TRAIN_EL101_AT), ("predict.py", *EL103_AT),
                              ("evaluate.py", *EL106_AT), ("metrics.py", *EL201_AT)}


def test_select_prefix(mixed):
    result, data = run_json("--no-cache", "--select", "EL2", ".")
    assert result.exit_code == 1
    assert codes_of(data) == {"EL201"}


def test_select_exact_codes_comma_separated(mixed):
    _, data = run_json("--no-cache", "--select", "el103, EL106", ".")
    assert codes_of(data) == {"EL103", "EL106"}


@pytest.mark.parametrize(("ignore", "left"), [("EL101", {"EL103", "EL106", "EL201"}),
                                              ("EL1", {"EL201"}), ("ALL", set())])
def test_ignore_code(mixed, ignore, left):
    result, data = run_json("--no-cache", "--ignore", ignore, ".")
    assert codes_of(data) == left
    assert result.exit_code == (1 if left else 0)


def test_ignore_in_config(mixed):
    write(mixed, {"pyproject.toml": '[tool.evallint]\nignore = ["EL201", "EL103"]\n'})
    _, data = run_json("--no-cache", ".")
    assert codes_of(data) == {"EL101", "EL106"}


def test_ignore_in_config_with_select(mixed):
    # The documented example: select a prefix, ignore one code of it.
    write(mixed, {"pyproject.toml": '[tool.evallint]\nselect = ["EL1"]\nignore = ["EL103"]\n'})
    _, data = run_json("--no-cache", ".")
    assert codes_of(data) == {"EL101", "EL106"}


def test_ignore_prefix_with_more_specific_select(mixed):
    _, data = run_json("--no-cache", "--ignore", "EL1", "--select", "EL101,EL2", ".")
    assert codes_of(data) == {"EL101", "EL201"}


def test_select_in_config_and_extend_select_on_command_line(mixed):
    write(mixed, {"pyproject.toml": '[tool.evallint]\nselect = ["EL106"]\n'})
    _, data = run_json("--no-cache", ".")
    assert codes_of(data) == {"EL106"}
    _, data = run_json("--no-cache", "--extend-select", "EL2", ".")
    assert codes_of(data) == {"EL106", "EL201"}
    # --select on the command line replaces the configured selection.
    _, data = run_json("--no-cache", "--select", "EL103", ".")
    assert codes_of(data) == {"EL103"}


NOQA_SCRIPT = """\
import torch
import torchvision

model = torchvision.models.resnet18()
model.eval()
with torch.no_grad():
    out = model(torch.randn(1, 3, 224, 224))  # noqa: EL103
"""


def test_extend_select_el002_reports_unused_noqa(tmp_path):
    write(tmp_path, {"predict.py": NOQA_SCRIPT})
    result, data = run_json("--no-cache", "predict.py")
    assert result.exit_code == 0 and data == []
    result, data = run_json("--no-cache", "--extend-select", "EL002", "predict.py")
    assert result.exit_code == 1
    assert [(d["code"], d["line"], d["severity"]) for d in data] == [("EL002", 7, "warning")]
    assert "EL103" in data[0]["message"]
    assert data[0]["column"] == NOQA_SCRIPT.splitlines()[6].index("# noqa") + 1


def test_select_all_includes_opt_in_rules(tmp_path):
    write(tmp_path, {"predict.py": NOQA_SCRIPT})
    _, data = run_json("--no-cache", "--select", "ALL", "predict.py")
    assert codes_of(data) == {"EL002"}


# -- rule and rules --------------------------------------------------------------------------

def test_rule_documentation_sections():
    result = run("rule", "EL101")
    assert result.exit_code == 0
    text = result.stdout
    sections = ["What it does", "Why is this bad?", "Example", "Use instead", "Fix safety"]
    positions = [text.find(section) for section in sections]
    assert all(p >= 0 for p in positions), text
    assert positions == sorted(positions)
    assert "eval-mode-leaks-into-training" in text
    assert "model.train()" in text  # the example code is there


def test_rule_by_name_and_lowercase_code():
    by_name = run("rule", "inference-in-train-mode")
    by_code = run("rule", "el103")
    assert by_name.exit_code == by_code.exit_code == 0
    assert by_name.stdout == by_code.stdout
    assert "EL103" in by_code.stdout


def test_unknown_rule_exits_2():
    result = run("rule", "nope")
    assert result.exit_code == 2
    assert "nope" in result.stderr


def test_rules_lists_every_code():
    result = run("rules")
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if re.match(r"EL\d{3}\b", line)}
    assert set(rows) == {rule.code for rule in all_rules()}
    for rule in all_rules():
        assert rule.name in rows[rule.code]
    assert rows["EL002"].split()[2] == "off"
    assert rows["EL101"].split()[2] == "on"
    assert rows["EL001"].split()[2] == "always"
    assert rows["EL106"].split()[3] == "safe"
    assert rows["EL201"].split()[3] == "unsafe"


def test_version():
    from evallint import __version__

    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


# -- output options --------------------------------------------------------------------------

def test_statistics_counts(tmp_path):
    write(tmp_path, {"a.py": EL103_SCRIPT, "b.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT})
    result = run("check", "--no-cache", "--statistics", ".")
    assert result.exit_code == 1
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines == [["2", "EL103", "[ ] inference-in-train-mode"],
                     ["1", "EL106", "[*] mode-method-not-called"]]


def test_statistics_json(tmp_path):
    import json

    write(tmp_path, {"a.py": EL103_SCRIPT, "b.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "--statistics", "--output-format", "json", ".")
    assert json.loads(result.stdout) == [
        {"code": "EL103", "name": "inference-in-train-mode", "count": 2, "fixable": False}]


def test_quiet_omits_summary(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "clean.py": CLEAN_SCRIPT})
    result = run("check", "--no-cache", "--quiet", "predict.py")
    assert result.exit_code == 1
    assert "predict.py:6:11: EL103" in result.stdout
    assert "Found" not in result.output
    quiet_clean = run("check", "--no-cache", "-q", "clean.py")
    assert quiet_clean.exit_code == 0
    assert "All checks passed!" not in quiet_clean.output


def test_text_output_shows_source_line_and_marker(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    lines = run("check", "--no-cache", "predict.py").stdout.splitlines()
    source = "6 |     out = model(torch.randn(1, 3, 224, 224))"
    assert source in lines
    marker = lines[lines.index(source) + 1]
    assert marker == "  | " + " " * 10 + "^" * len("model(torch.randn(1, 3, 224, 224))") + " EL103"
    assert "  = train mode from here: predict.py:4:9" in lines


def test_text_snippet_with_form_feed_shows_right_line(tmp_path):
    text = EL106_SCRIPT.replace("\n\n\ndef", "\n\x0c\n\ndef")  # a page break, as in GNU-style code
    write(tmp_path, {"evaluate.py": text})
    result = run("check", "--no-cache", "evaluate.py")
    assert "evaluate.py:5:5: EL106" in result.stdout
    assert "5 |     model.eval" in result.stdout


def test_concise_format(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT})
    result = run("check", "--no-cache", "--output-format", "concise", ".")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(r"[\w./]+\.py:\d+:\d+: EL\d{3} .+", line), line
    assert lines[0].startswith("evaluate.py:5:5: EL106 [*] ")  # [*]: fixable
    assert lines[1].startswith("predict.py:6:11: EL103 `model` ")


def test_github_format(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT, "pyproject.toml":
                     '[tool.evallint]\nextend-select = ["EL002"]\n',
                     "noqa.py": NOQA_SCRIPT})
    result = run("check", "--no-cache", "--output-format", "github", ".")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.startswith(("::error ", "::warning "))
        properties = line.split(" ", 1)[1].split("::", 1)[0].split(",")
        assert {p.split("=", 1)[0] for p in properties} >= {"file", "line", "col"}
    by_file = {re.search(r"file=([^,:]+)", line).group(1): line for line in lines}
    assert set(by_file) == {"predict.py", "evaluate.py", "noqa.py"}
    assert by_file["predict.py"].startswith("::error ")
    assert "line=6," in by_file["predict.py"] and "col=11," in by_file["predict.py"]
    assert "::EL103 " in by_file["predict.py"]
    assert by_file["noqa.py"].startswith("::warning ")  # EL002 is a warning
    assert "line=7," in by_file["noqa.py"]


# -- standard input --------------------------------------------------------------------------

def test_stdin(tmp_path):
    result = run("check", "--output-format", "concise", "-", input=EL103_SCRIPT)
    assert result.exit_code == 1
    assert result.stdout.startswith("-:6:11: EL103 ")
    assert not (tmp_path / ".evallint_cache").exists()


def test_stdin_clean(tmp_path):
    result = run("check", "-", input=CLEAN_SCRIPT)
    assert result.exit_code == 0
    assert "All checks passed!" in result.stdout


def test_stdin_filename_used_in_output(tmp_path):
    result, data = run_json("--stdin-filename", "scripts/predict.py", "-", input=EL103_SCRIPT)
    assert result.exit_code == 1
    assert findings(data) == {("scripts/predict.py", *EL103_AT)}
    assert data[0]["related"][0]["path"] == "scripts/predict.py"


def test_stdin_filename_per_file_ignores(tmp_path):
    write(tmp_path, {"pyproject.toml": '[tool.evallint.per-file-ignores]\n"scripts/*" = ["EL103"]\n'})
    ignored = run("check", "--stdin-filename", "scripts/predict.py", "-", input=EL103_SCRIPT)
    assert ignored.exit_code == 0
    kept = run("check", "--stdin-filename", "src/predict.py", "-", input=EL103_SCRIPT)
    assert kept.exit_code == 1


def test_stdin_syntax_error(tmp_path):
    result, data = run_json("-", input=UNCLOSED_SCRIPT)
    assert result.exit_code == 1
    assert [(d["code"], d["path"], d["line"]) for d in data] == [("EL001", "-", UNCLOSED_LINE)]


# -- configuration and discovery -------------------------------------------------------------

def test_per_file_ignores_and_exclude(tmp_path):
    write(tmp_path, {
        "pyproject.toml": ('[tool.evallint]\nexclude = ["generated/", "legacy_*.py"]\n\n'
                           '[tool.evallint.per-file-ignores]\n"scripts/*" = ["EL103"]\n'
                           '"notebooks_export/**" = ["EL1"]\n'),
        "src/predict.py": EL103_SCRIPT,
        "scripts/predict.py": EL103_SCRIPT,
        "scripts/evaluate.py": EL106_SCRIPT,
        "notebooks_export/deep/predict.py": EL103_SCRIPT,
        "generated/predict.py": EL103_SCRIPT,
        "legacy_predict.py": EL103_SCRIPT,
    })
    result, data = run_json("--no-cache", ".")
    assert result.exit_code == 1
    assert findings(data) == {("src/predict.py", *EL103_AT), ("scripts/evaluate.py", *EL106_AT)}


def test_exclude_applies_to_files_named_explicitly(tmp_path):
    write(tmp_path, {"pyproject.toml": '[tool.evallint]\nexclude = ["generated/"]\n',
                     "generated/predict.py": EL103_SCRIPT, "predict.py": EL103_SCRIPT})
    result, data = run_json("--no-cache", "generated/predict.py", "predict.py")
    assert findings(data) == {("predict.py", *EL103_AT)}


def test_config_found_from_subfolder(tmp_path, monkeypatch):
    write(tmp_path, {"pyproject.toml": '[tool.evallint]\nselect = ["EL106"]\n',
                     "pkg/predict.py": EL103_SCRIPT, "pkg/evaluate.py": EL106_SCRIPT})
    monkeypatch.chdir(tmp_path / "pkg")
    _, data = run_json("--no-cache", ".")
    assert findings(data) == {("evaluate.py", *EL106_AT)}


def test_gitignored_files_skipped_when_walking(tmp_path):
    write(tmp_path, {".gitignore": "scratch_*.py\nexperiments/\n",
                     "predict.py": EL103_SCRIPT, "scratch_predict.py": EL103_SCRIPT,
                     "experiments/run1/predict.py": EL103_SCRIPT,
                     "src/scratch_predict.py": EL103_SCRIPT, "src/predict.py": EL103_SCRIPT})
    (tmp_path / ".git").mkdir()
    _, data = run_json("--no-cache", ".")
    assert {d["path"] for d in data} == {"predict.py", "src/predict.py"}


def test_virtualenv_and_tool_folders_skipped(tmp_path):
    write(tmp_path, {
        "predict.py": EL103_SCRIPT,
        ".venv/lib/python3.11/site-packages/torchlib/predict.py": EL103_SCRIPT,
        "venv/lib/predict.py": EL103_SCRIPT,
        "myenv/lib/predict.py": EL103_SCRIPT,  # a virtualenv under any name: has pyvenv.cfg
        "myenv/pyvenv.cfg": "home = /usr/bin\n",
        "build/lib/predict.py": EL103_SCRIPT,
        "__pycache__/predict.py": EL103_SCRIPT,
        ".git/hooks/predict.py": EL103_SCRIPT,
    })
    _, data = run_json("--no-cache", ".")
    assert {d["path"] for d in data} == {"predict.py"}


def test_folder_walk_takes_notebooks_and_ignores_other_files(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "predict.txt": EL103_SCRIPT, "notes.md": EL103_SCRIPT})
    _, data = run_json("--no-cache", ".")
    assert {d["path"] for d in data} == {"predict.py"}


# -- noqa ------------------------------------------------------------------------------------

def test_noqa_with_code_suppresses(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT.replace(
        "224, 224))\n", "224, 224))  # noqa: EL103 - calibration wants batch statistics\n")})
    result, data = run_json("--no-cache", "predict.py")
    assert result.exit_code == 0
    assert data == []


def test_noqa_with_other_code_does_not_suppress(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT.replace("224, 224))\n", "224, 224))  # noqa: EL201\n")})
    result, data = run_json("--no-cache", "predict.py")
    assert result.exit_code == 1
    assert findings(data) == {("predict.py", *EL103_AT)}


def test_noqa_on_other_line_does_not_suppress(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT.replace("no_grad():\n", "no_grad():  # noqa: EL103\n")})
    _, data = run_json("--no-cache", "predict.py")
    assert findings(data) == {("predict.py", *EL103_AT)}


def test_bare_noqa_suppresses(tmp_path):
    write(tmp_path, {"evaluate.py": EL106_SCRIPT.replace("    model.eval\n", "    model.eval  # noqa\n"),
                     "predict.py": EL103_SCRIPT})
    result, data = run_json("--no-cache", "--extend-select", "EL002", ".")
    # EL106 silenced; a bare noqa is never "unused" (it may be meant for another tool).
    assert findings(data) == {("predict.py", *EL103_AT)}
    assert result.exit_code == 1


def test_noqa_suppresses_train_step_finding(tmp_path):
    write(tmp_path, {"train.py": TRAIN_SCRIPT.replace("model.train()\n", "model.train()  # noqa: EL101\n"),
                     "utils.py": UTILS_LEAKING})
    result, data = run_json("--no-cache", "train.py")
    assert result.exit_code == 0, data


def test_noqa_cannot_silence_el001(tmp_path):
    text = "import torch\n\nmodel = torch.nn.Linear(2, 2)\n  model.eval()  # noqa\n"
    write(tmp_path, {"broken.py": text, "broken2.py": text.replace("# noqa", "# noqa: EL001")})
    result, data = run_json("--no-cache", "broken.py", "broken2.py")
    assert result.exit_code == 1
    assert {(d["path"], d["code"], d["line"]) for d in data} == {("broken.py", "EL001", 4),
                                                                 ("broken2.py", "EL001", 4)}


def test_disable_file_keeps_el001(tmp_path):
    write(tmp_path, {"predict.py": "# evallint: disable-file\n" + EL103_SCRIPT,
                     "broken.py": "# evallint: disable-file\n" + UNCLOSED_SCRIPT})
    _, data = run_json("--no-cache", ".")
    assert [(d["path"], d["code"]) for d in data] == [("broken.py", "EL001")]


def test_disable_file_with_codes(tmp_path):
    text = "# evallint: disable-file=EL201\n" + EL103_SCRIPT + "\n\n" + EL201_SCRIPT.replace("import torch\n", "")
    write(tmp_path, {"predict.py": text})
    _, data = run_json("--no-cache", "predict.py")
    assert codes_of(data) == {"EL103"}
    write(tmp_path, {"predict.py": text.replace("EL201", "EL201,EL103")})
    result, data = run_json("--no-cache", "predict.py")
    assert data == [] and result.exit_code == 0


def test_unknown_code_in_noqa_is_el002(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT.replace("224, 224))\n", "224, 224))  # noqa: EL103, EL999, E501\n")})
    _, data = run_json("--no-cache", "predict.py")
    assert data == []
    _, data = run_json("--no-cache", "--extend-select", "EL002", "predict.py")
    assert [(d["code"], d["line"]) for d in data] == [("EL002", 6)]
    assert "EL999" in data[0]["message"] and "E501" not in data[0]["message"]
    assert [e["content"] for e in data[0]["fix"]["edits"]] == ["# noqa: EL103, E501"]
