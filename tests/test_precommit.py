"""The pre-commit hook (.pre-commit-hooks.yaml) works end to end, through `pre-commit try-repo`.

`try-repo` on a local path only takes committed and tracked-but-modified files (untracked files,
such as a hook manifest not yet committed, are left out of its shadow commit), so the test copies
the working tree of this repository into a fresh git repository with one commit and tries that.
pre-commit then builds a new virtualenv and pip-installs evallint into it, which needs a package
index (the machine's pip configuration is inherited); when that cannot work here the test skips,
saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

FLAGGED = """\
import torch
import torchvision

model = torchvision.models.resnet18(num_classes=10)
x = torch.randn(8, 3, 224, 224)
with torch.no_grad():
    out = model(x)
print(out.argmax(1))
"""

CLEAN = """\
import torch
import torchvision

model = torchvision.models.resnet18(num_classes=10)
model.eval()
x = torch.randn(8, 3, 224, 224)
with torch.no_grad():
    out = model(x)
print(out.argmax(1))
"""

# Folders of the work tree that are not part of the source (and can be large).
_NOT_SOURCE = {".git", ".venv", "venv", ".tox", ".nox", "__pycache__", ".pytest_cache",
               ".evallint_cache", ".mypy_cache", ".ruff_cache", "build", "dist", "node_modules"}

# Signs in pre-commit's output that the hook's environment could not be built (no index, no
# network, no virtualenv support), as opposed to the hook running and failing.
_ENV_FAILURES = ("An unexpected error has occurred", "CalledProcessError", "Could not find a version",
                 "No matching distribution", "Failed to establish a new connection",
                 "Network is unreachable", "Temporary failure in name resolution",
                 "ProxyError", "ERROR: Could not install packages", "ensurepip",
                 "error: subprocess-exited-with-error")


def _pre_commit() -> list[str]:
    try:
        import pre_commit  # noqa: F401
    except ImportError:
        pytest.skip("pre-commit is not installed (pip install -e '.[test]')")
    return [sys.executable, "-m", "pre_commit"]


def _git(*args: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=cwd, env=env, check=True,
                   capture_output=True, text=True)


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {name for name in names
            if name in _NOT_SOURCE or name.endswith(".egg-info")
            or (Path(folder, name) / "pyvenv.cfg").is_file()}


def _git_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    for key in [k for k in env if k.startswith(("GIT_", "PRE_COMMIT"))]:
        del env[key]
    env.update({
        "GIT_AUTHOR_NAME": "evallint tests", "GIT_AUTHOR_EMAIL": "tests@example.invalid",
        "GIT_COMMITTER_NAME": "evallint tests", "GIT_COMMITTER_EMAIL": "tests@example.invalid",
        # Everything pre-commit keeps (its store, try-repo's temporary folder) stays in tmp_path.
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "TMPDIR": str(tmp_path / "tmp"),
        "PRE_COMMIT_COLOR": "never", "NO_COLOR": "1",
    })
    for folder in ("pre-commit-home", "tmp"):
        (tmp_path / folder).mkdir(exist_ok=True)
    return env


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """A committed copy of this repository's work tree, and a project repository to lint."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    if not (REPO / ".pre-commit-hooks.yaml").is_file():
        pytest.fail(".pre-commit-hooks.yaml is missing from the repository root")
    tmp_path = tmp_path_factory.mktemp("precommit")
    env = _git_env(tmp_path)
    hooks = tmp_path / "evallint-repo"
    shutil.copytree(REPO, hooks, ignore=_ignore)
    _git("init", "-q", cwd=hooks, env=env)
    _git("add", "-A", cwd=hooks, env=env)
    _git("commit", "-q", "--no-verify", "-m", "snapshot of the work tree", cwd=hooks, env=env)

    project = tmp_path / "project"
    project.mkdir()
    (project / "train_flagged.py").write_text(FLAGGED, encoding="utf-8")
    (project / "train_clean.py").write_text(CLEAN, encoding="utf-8")
    _git("init", "-q", cwd=project, env=env)
    _git("add", "-A", cwd=project, env=env)
    _git("commit", "-q", "--no-verify", "-m", "training scripts", cwd=project, env=env)
    return hooks, project, env


def _try_repo(hook_repo: tuple[Path, Path, dict[str, str]], file: str) -> subprocess.CompletedProcess:
    hooks, project, env = hook_repo
    command = [*_pre_commit(), "try-repo", str(hooks), "evallint", "--verbose", "--files", file]
    try:
        result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                                timeout=600)
    except subprocess.TimeoutExpired:
        pytest.skip("pre-commit could not build the hook's environment within 10 minutes")
    output = result.stdout + result.stderr
    if result.returncode not in (0, 1) or "evallint" not in output.split("Using config:")[-1] \
            or any(sign in output for sign in _ENV_FAILURES):
        pytest.skip(f"pre-commit could not build the hook's environment here "
                    f"(exit {result.returncode}):\n{output[-3000:]}")
    return result


def test_hook_fails_on_a_flagged_training_script(hook_repo) -> None:
    result = _try_repo(hook_repo, "train_flagged.py")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Failed" in output, output
    assert "EL103" in output, output
    assert "train_flagged.py:7:11" in output, output


def test_hook_passes_on_a_clean_training_script(hook_repo) -> None:
    result = _try_repo(hook_repo, "train_clean.py")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Passed" in output, output
    assert "EL103" not in output, output
