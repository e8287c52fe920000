"""Project roots: which folder a file's imports are resolved from (``analysis/project.py``).

A file's root is the nearest folder above it with ``pyproject.toml``, ``setup.py``, ``setup.cfg`` or
``.git``; without one, the folder above the outermost package that holds the file, else the file's
folder. Imports are searched beside the file and in every folder above it up to the root. So the
findings of a file never depend on the paths on the command line (pre-commit passes any list of
files; a library linted alone or inside a tree of others gives the same findings).

The layouts are built below ``tmp_path``, which has no marker above it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import pytest

import evallint.runner
from evallint.analysis.project import Project, RootFinder, find_root

from cli_snippets import EL103_AT, EL103_SCRIPT, UTILS_LEAKING, UTILS_RESTORING, findings, run_json, write

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "cross_file" / "sibling_packages"
TRAIN = "runners/train.py"
TRAIN_EL101 = ("runners/train.py", "EL101", 13, 5)


@pytest.fixture
def detector(tmp_path, monkeypatch) -> Path:
    """A copy of fixtures/cross_file/sibling_packages (``setup.py`` is its only marker), as the
    working folder."""
    assert RootFinder().root_of(tmp_path / "x.py") == tmp_path.resolve(), "a root marker above tmp_path"
    project = tmp_path / "detector"
    shutil.copytree(FIXTURE, project)
    monkeypatch.chdir(project)
    return project


def lint(*args: str) -> set[tuple[str, str, int, int]]:
    result, data = run_json("--no-cache", *args)
    assert result.exit_code in (0, 1), result.output
    return findings(data)


def of(path: str, found: set[tuple[str, str, int, int]]) -> set[tuple[str, str, int, int]]:
    return {f for f in found if f[0] == path}


# -- markers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("marker", ["setup.py", "setup.cfg", "pyproject.toml", ".git"])
def test_a_marker_makes_sibling_packages_importable(detector, marker):
    (detector / "setup.py").unlink()
    if marker == ".git":
        (detector / ".git").mkdir()
    else:
        (detector / marker).write_text("", encoding="utf-8")
    # runners/train.py alone, as pre-commit passes it: `evaluation` and `losses` are found above it.
    result, data = run_json("--no-cache", TRAIN)
    assert findings(data) == {TRAIN_EL101}
    assert [(r["path"], r["line"]) for r in data[0]["related"]] == [(TRAIN, 20), ("evaluation/__init__.py", 6)]
    # The look-alike imports an evaluate() that restores train mode.
    assert lint("runners/train_resuming.py") == set()


def test_the_nearest_marker_is_the_root(tmp_path):
    write(tmp_path, {"repo/pyproject.toml": "", "repo/tools/setup.cfg": "", "repo/tools/a/b.py": "",
                     "repo/src/c.py": ""})
    finder = RootFinder()
    assert finder.root_of(tmp_path / "repo/tools/a/b.py") == (tmp_path / "repo/tools").resolve()
    assert finder.root_of(tmp_path / "repo/src/c.py") == (tmp_path / "repo").resolve()


def test_without_a_marker_the_root_is_where_the_outermost_package_is_imported_from(detector):
    (detector / "setup.py").unlink()
    # runners/ is a folder of scripts: the root of train.py is runners/, whatever the arguments,
    # and the sibling packages are not found.
    assert of(TRAIN, lint(".")) == lint(TRAIN) == lint("runners") == set()
    # runners/ as a package: the root is the detector folder, found from any argument.
    (detector / "runners" / "__init__.py").write_text("", encoding="utf-8")
    assert of(TRAIN, lint(".")) == lint(TRAIN) == lint("runners") == {TRAIN_EL101}


def test_find_root_without_marker(tmp_path):
    write(tmp_path, {"a/b/c.py": "", "d.py": ""})
    assert find_root(tmp_path / "a/b/c.py") == (tmp_path / "a/b").resolve()
    assert find_root(tmp_path / "d.py") == tmp_path.resolve()
    write(tmp_path, {"a/b/__init__.py": ""})
    assert find_root(tmp_path / "a/b/c.py") == (tmp_path / "a").resolve()
    write(tmp_path, {"a/__init__.py": ""})
    assert find_root(tmp_path / "a/b/c.py") == tmp_path.resolve()


# -- the findings of a file do not depend on the other paths -------------------------------------

def _setup_py_project(root: Path) -> None:
    """The detector fixture as it is."""


def _no_marker(root: Path) -> None:
    (root / "setup.py").unlink()
    write(root, {"predict.py": EL103_SCRIPT})  # a file argument stands for itself, not its folder


def _tests_folder(root: Path) -> None:
    # No marker: tests/ is a test folder only below the root, so EL103 (lenient in test code)
    # must be reported, or not, the same way whatever else is linted.
    (root / "setup.py").unlink()
    write(root, {"tests/export_check.py": EL103_SCRIPT})


def _outside_the_working_folder(root: Path) -> None:
    """Linted from a sibling folder: evaluation/__init__.py, linted first, carries the path given
    for it (``../detector/...``); imported, it is found by absolute path. Messages and related
    locations of train.py must show it the same way. (pyproject.toml as marker: a marker evallint
    always knew, so the roots were right before, only the paths shown differed.)"""
    (root / "setup.py").unlink()
    (root / "pyproject.toml").write_text("[project]\nname = 'detector'\n", encoding="utf-8")
    (root.parent / "elsewhere").mkdir()
    os.chdir(root.parent / "elsewhere")


# (layout, the file, the other paths): before roots were per file, each of these differed.
LAYOUTS = {
    "setup.py only": (_setup_py_project, TRAIN, ["evaluation", "losses/__init__.py", "runners/train_resuming.py"]),
    "no marker": (_no_marker, TRAIN, ["evaluation/__init__.py", "predict.py"]),
    "no marker, tests folder": (_tests_folder, "tests/export_check.py", ["runners/train_resuming.py"]),
    "outside the working folder": (_outside_the_working_folder, "../detector/runners/train.py",
                                   ["../detector/evaluation/__init__.py"]),
}
EXPECTED = {
    "setup.py only": {TRAIN_EL101},
    "no marker": set(),
    "no marker, tests folder": {("tests/export_check.py", *EL103_AT)},
    "outside the working folder": {("../detector/runners/train.py", "EL101", 13, 5)},
}


def lint_one(path: str, before: Sequence[str] = (), after: Sequence[str] = ()) -> list[dict]:
    """The JSON findings of ``path`` (messages and related locations included), linted with the
    paths ``before`` and ``after`` it on the command line."""
    result, data = run_json("--no-cache", *before, path, *after)
    assert result.exit_code in (0, 1), result.output
    return [d for d in data if d["path"] == path]


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_findings_of_a_file_do_not_depend_on_other_paths(detector, layout):
    make, path, others = LAYOUTS[layout]
    make(detector)  # may change the working folder; the detector fixture's monkeypatch restores it
    alone = lint_one(path)
    assert findings(alone) == EXPECTED[layout]
    # The other paths after it, and before it (linted first, so their modules are already parsed).
    assert lint_one(path, after=others) == alone
    assert lint_one(path, before=others) == alone
    for other in others:
        assert lint_one(path, after=[other]) == lint_one(path, before=[other]) == alone


def test_projects_with_different_roots_never_share_resolution(tmp_path, monkeypatch):
    """Two projects in one run, each with its own ``evaluation`` package: each file's imports go
    to its own project, in-process and in worker processes."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(FIXTURE, tmp_path / "leaky")
    shutil.copytree(FIXTURE, tmp_path / "careful")
    shutil.copy(FIXTURE / "evaluation" / "resuming.py", tmp_path / "careful" / "evaluation" / "__init__.py")
    for number in range(8):  # enough files for worker processes
        write(tmp_path, {f"careful/runners/extra_{number}.py": EL103_SCRIPT})
    monkeypatch.setattr(evallint.runner, "PARALLEL_THRESHOLD", 2)
    for jobs in ("1", "2"):
        both = lint("--jobs", jobs, "leaky", "careful")
        assert {f for f in both if f[1] == "EL101"} == {("leaky/runners/train.py", "EL101", 13, 5)}
        assert len(both) == 1 + 8
    assert lint("careful/runners/train.py") == set()


# -- resolution ----------------------------------------------------------------------------------

def test_imports_resolve_in_the_folders_up_to_the_root(tmp_path):
    write(tmp_path, {"proj/setup.py": "", "proj/losses/__init__.py": "", "proj/evaluation.py": "",
                     "proj/exp/metrics.py": "", "proj/exp/runners/metrics.py": "",
                     "proj/exp/runners/train.py": "", "proj/src/shared/util.py": "", "outside.py": ""})
    root = (tmp_path / "proj").resolve()
    project = Project(root)
    train = root / "exp" / "runners" / "train.py"
    probed: set[Path] = set()
    assert project.resolve_module(train, "losses.focal", 0, probed) == (root / "losses" / "__init__.py", ["focal"])
    # Every folder looked in is recorded, so the cache notices a module that appears there later.
    assert {root / "exp" / "runners" / "losses.py", root / "exp" / "losses" / "__init__.py",
            root / "losses.py"} <= probed
    assert project.resolve_module(train, "evaluation.evaluate", 0) == (root / "evaluation.py", ["evaluate"])
    # The nearest folder wins: beside the file, then exp/, then the root, then src/.
    assert project.resolve_module(train, "metrics", 0) == (root / "exp" / "runners" / "metrics.py", [])
    assert project.resolve_module(root / "exp" / "other.py", "metrics", 0) == (root / "exp" / "metrics.py", [])
    assert project.resolve_module(train, "shared.util", 0) == (root / "src" / "shared" / "util.py", [])
    # Nothing above the root.
    probed = set()
    assert project.resolve_module(train, "outside", 0, probed) is None
    assert probed and all(root in p.parents for p in probed)


def test_stdin_file_uses_the_root_of_its_name(detector):
    text = (detector / TRAIN).read_text(encoding="utf-8")
    result, data = run_json("--no-cache", "--stdin-filename", TRAIN, "-", input=text)
    assert findings(data) == {TRAIN_EL101}


# -- the cache -----------------------------------------------------------------------------------

def test_cached_result_is_per_root(detector, monkeypatch):
    """Without a marker, ``detector/runners/train.py`` gets another root once ``runners`` becomes a
    package: the same path and text, other findings; the cache keeps both."""
    (detector / "setup.py").unlink()
    monkeypatch.chdir(detector.parent)
    path = "detector/runners/train.py"
    package = detector / "runners" / "__init__.py"
    for _ in range(2):  # the second round comes from the cache
        package.write_text("", encoding="utf-8")
        _, data = run_json("detector")
        assert of(path, findings(data)) == {(path, "EL101", 13, 5)}
        package.unlink()
        _, data = run_json("detector")
        assert of(path, findings(data)) == set()


def test_a_new_marker_invalidates_the_cached_result(detector):
    (detector / "setup.py").unlink()
    _, data = run_json(TRAIN)
    assert data == []
    (detector / "setup.cfg").write_text("[metadata]\nname = detector\n", encoding="utf-8")
    _, data = run_json(TRAIN)
    assert findings(data) == {TRAIN_EL101}


def test_a_module_appearing_in_a_folder_above_invalidates_the_cached_result(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = (FIXTURE / TRAIN).read_text(encoding="utf-8").replace("from losses import focal_loss\n", "")
    train = train.replace("focal_loss(", "torch.nn.functional.cross_entropy(")
    write(tmp_path, {"setup.py": "", "exp/runners/train.py": train})
    _, data = run_json("exp/runners/train.py")
    assert data == []  # evaluate() unknown
    write(tmp_path, {"exp/evaluation.py": UTILS_LEAKING})
    _, data = run_json("exp/runners/train.py")
    assert {(f[1], f[2]) for f in findings(data)} == {("EL101", 12)}
    write(tmp_path, {"exp/runners/evaluation.py": UTILS_RESTORING})  # nearer, and restores
    _, data = run_json("exp/runners/train.py")
    assert data == []
