"""The GitHub Action (action.yml): its steps run as GitHub would run them, in a small repository.

Each ``run:`` step is run with ``bash --noprofile --norc -eo pipefail`` (GitHub's ``shell: bash``)
after its ``${{ ... }}`` expressions are replaced by the inputs, ``github.action_path`` and the
outputs of earlier steps (read from their ``$GITHUB_OUTPUT`` file); ``if:`` conditions are
evaluated the same way; ``uses:`` steps are not run, only their inputs checked. The install step
runs too, with a stand-in ``python3`` whose virtual environment records what pip is asked to
install (nothing is downloaded) and runs everything else with the Python of these tests.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from cli_snippets import CLEAN_SCRIPT, EL103_SCRIPT, EL106_SCRIPT, write  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")

# The runner's python3, for the install step: `-m venv DIR` makes a DIR/bin/python that logs pip's
# arguments and hands everything else to the Python running these tests (evallint is installed
# there).
FAKE_PYTHON3 = """\
#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  cat > "$3/bin/python" <<'EOF'
#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then shift 2; echo "pip $*" >> "$PIP_LOG"; exit 0; fi
exec "$REAL_PYTHON" "$@"
EOF
  chmod +x "$3/bin/python"
  exit 0
fi
exit 3
"""


class ActionRun:
    """The results of running the action's steps: each step's outputs, stdout and exit code."""

    def __init__(self) -> None:
        self.outputs: dict[str, dict[str, str]] = {}
        self.logs: dict[str, str] = {}
        self.codes: dict[str, int] = {}
        self.uses: list[tuple[str, dict[str, str]]] = []
        self.skipped: list[str] = []


def _value(expression: str, inputs: dict[str, str], run: ActionRun) -> str:
    """The value of a ``${{ }}`` reference this action uses."""
    if expression == "github.action_path":
        return str(REPO)
    if expression.startswith("inputs."):
        return inputs[expression[len("inputs."):]]
    match = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expression)
    if match:
        return run.outputs.get(match.group(1), {}).get(match.group(2), "")
    raise AssertionError(f"expression not understood by this test: {expression}")


def _substitute(text: str, inputs: dict[str, str], run: ActionRun) -> str:
    return EXPRESSION.sub(lambda m: _value(m.group(1), inputs, run), text)


def _condition(expression: str, inputs: dict[str, str], run: ActionRun) -> bool:
    """An ``if:`` of the forms this action uses: references compared to strings with ``==``/``!=``,
    joined by ``&&``/``||``."""
    inner = EXPRESSION.fullmatch(expression.strip())
    text = inner.group(1) if inner else expression
    reference = re.compile(r"\b(?:inputs|steps|github)\.[\w.-]+[\w]")
    python = reference.sub(lambda m: repr(_value(m.group(0), inputs, run)), text)
    python = python.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\s'\w./-]*(?:(?:==|!=|and|or)[\s'\w./-]*)*", python), python
    return bool(eval(python, {"__builtins__": {}}, {}))  # noqa: S307 - our own action's expressions


def run_action(workspace: Path, tmp: Path, **given: str) -> ActionRun:
    inputs = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    assert set(given) <= set(inputs), given
    inputs.update(given)
    stubs = tmp / "stubs"
    stubs.mkdir(exist_ok=True)
    (stubs / "python3").write_text(FAKE_PYTHON3)
    (stubs / "python3").chmod(stat.S_IRWXU)
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    run = ActionRun()
    for number, step in enumerate(ACTION["runs"]["steps"]):
        name = step.get("id", f"step{number}")
        if "if" in step and not _condition(step["if"], inputs, run):
            run.skipped.append(name)
            continue
        if "uses" in step:
            run.uses.append((step["uses"], {k: _substitute(str(v), inputs, run)
                                            for k, v in step.get("with", {}).items()}))
            continue
        assert step["shell"] == "bash"
        outputs = tmp / f"{name}.output"
        outputs.write_text("")
        env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
               "GITHUB_OUTPUT": str(outputs), "GITHUB_WORKSPACE": str(workspace),
               "RUNNER_TEMP": str(runner_temp), "PIP_LOG": str(tmp / "pip.log"),
               "REAL_PYTHON": sys.executable, "NO_COLOR": "1"}
        env.update({key: _substitute(str(value), inputs, run) for key, value in step.get("env", {}).items()})
        script = tmp / f"{name}.sh"
        script.write_text(_substitute(step["run"], inputs, run))
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                              cwd=workspace, env=env, capture_output=True, text=True, timeout=300)
        run.logs[name] = proc.stdout
        run.codes[name] = proc.returncode
        run.outputs[name] = dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)
        if proc.returncode != 0:
            break  # as GitHub stops the job at a failed step
    return run


@pytest.fixture
def workspace(tmp_path):
    folder = tmp_path / "repo"
    write(folder, {"pyproject.toml": '[project]\nname = "demo"\n', "predict.py": EL103_SCRIPT,
                   "clean.py": CLEAN_SCRIPT})
    return folder


def test_action_metadata():
    assert ACTION["runs"]["using"] == "composite"
    assert {name: spec.get("default") for name, spec in ACTION["inputs"].items()} == {
        "paths": ".", "args": "", "output-format": "github", "sarif": "false", "sarif-file": "evallint.sarif"}
    assert ACTION["outputs"]["exit-code"]["value"] == "${{ steps.check.outputs.exit-code }}"
    install = ACTION["runs"]["steps"][0]
    # evallint at the action's own version: the checkout of the action itself.
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}"
    assert re.search(r'-m pip install .*"\$ACTION_PATH"', install["run"])
    # Inputs reach the scripts as environment variables, never pasted into the script's text.
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", "")


def test_action_annotates_and_fails_on_findings(workspace, tmp_path):
    run = run_action(workspace, tmp_path)
    assert run.codes["install"] == 0
    assert (tmp_path / "pip.log").read_text().split() == [
        "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO)]
    assert run.codes["check"] == 0  # records the exit code for the last step
    assert run.outputs["check"]["exit-code"] == "1"
    log = run.logs["check"]
    assert log.startswith("::error title=evallint (EL103),file=predict.py,line=6,col=11,")
    assert "clean.py" not in log
    assert run.skipped == ["upload"] and run.uses == []  # no SARIF upload unless asked
    assert run.codes["result"] == 1  # the job fails
    assert not (workspace / "evallint.sarif").exists()


def test_action_passes_on_a_clean_tree_with_paths_and_args(workspace, tmp_path):
    write(workspace, {"sub/evaluate.py": EL106_SCRIPT})
    run = run_action(workspace, tmp_path, paths="clean.py\nsub", args="--select EL103 --no-cache")
    assert run.outputs["check"]["exit-code"] == "0"
    assert "::" not in run.logs["check"]
    assert run.codes["result"] == 0
    # The same paths with evallint's other findings: `args` reached the command.
    run = run_action(workspace, tmp_path, paths="clean.py sub", args="--select EL106", **{"output-format": "concise"})
    assert run.outputs["check"]["exit-code"] == "1"
    assert run.logs["check"].startswith("sub/evaluate.py:5:5: EL106 ")


def test_action_sarif_upload(workspace, tmp_path):
    run = run_action(workspace, tmp_path, sarif="true", **{"sarif-file": "out/evallint.sarif"})
    assert run.outputs["check"]["exit-code"] == "1"
    assert run.logs["check"].startswith("::error title=evallint (EL103),file=predict.py,")
    sarif = json.loads((workspace / "out" / "evallint.sarif").read_text())
    results = sarif["runs"][0]["results"]
    assert [(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for r in results] == \
        [("EL103", "predict.py")]
    assert run.uses == [("github/codeql-action/upload-sarif@v3",
                         {"sarif_file": "out/evallint.sarif", "category": "evallint"})]
    assert run.codes["result"] == 1  # SARIF uploaded, and the job still fails on the finding
    # --exit-zero in args: findings annotated and uploaded, the job passes.
    run = run_action(workspace, tmp_path, sarif="true", args="--exit-zero")
    assert run.outputs["check"]["exit-code"] == "0" and run.codes["result"] == 0
    assert run.logs["check"].startswith("::error ")
    assert [with_["sarif_file"] for _, with_ in run.uses] == ["evallint.sarif"]


def test_action_usage_error_skips_sarif(workspace, tmp_path):
    run = run_action(workspace, tmp_path, sarif="true", args="--select EL999")
    assert run.outputs["check"]["exit-code"] == "2"
    assert "sarif-file" not in run.outputs["check"] and run.uses == []
    assert run.codes["result"] == 2
