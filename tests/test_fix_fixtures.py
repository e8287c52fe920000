"""The fix fixtures (``fixtures/fixes/<CODE>/<name>.in.*`` -> ``<name>.out.*``): ``--fix
--unsafe-fixes`` on a copy of each input gives exactly the expected output; the result compiles,
has no applicable fix left, and a second ``--fix`` changes nothing."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from evallint.fixes import applicable
from evallint.notebooks import extract
from evallint.rules.base import expected_findings

from cli_snippets import run, run_json
from helpers import found, lint_file

FIXES = Path(__file__).resolve().parent.parent / "fixtures" / "fixes"
PAIRS = sorted(p for p in FIXES.rglob("*.in.*"))


def out_of(path: Path) -> Path:
    return path.with_name(path.name.replace(".in.", ".out."))


def copy_of(path: Path, folder: Path) -> Path:
    """The input under its plain name (``x.in.py`` -> ``x.py``) in ``folder``."""
    copy = folder / path.name.replace(".in.", ".")
    shutil.copyfile(path, copy)
    return copy


def module_text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return extract(text).text if path.suffix == ".ipynb" else text


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_input_has_an_output():
    assert PAIRS, "no fix fixtures found"
    for path in PAIRS:
        assert out_of(path).is_file(), f"{path.name} has no {out_of(path).name}"
    assert sorted(FIXES.rglob("*.out.*")) == sorted(out_of(p) for p in PAIRS)


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: str(p.relative_to(FIXES)))
def test_fix_fixture(path: Path, tmp_path: Path):
    code = path.parent.name
    copy = copy_of(path, tmp_path)
    before = lint_file(copy)
    if path.suffix == ".py":  # the `# ELxxx` markers of the input are its findings
        assert found(before) == expected_findings(path.read_text(encoding="utf-8"))
    fixable = [d for d in before if d.code == code and applicable(d, unsafe=True)]
    if path.name.startswith("nofix_"):
        assert not fixable and any(d.code == code for d in before)
    else:
        assert fixable, f"no {code} finding with a fix in {path.name}"

    result = run("check", "--no-cache", "--fix", "--unsafe-fixes", "--exit-zero", copy.name)
    assert result.exit_code == 0, result.output
    assert copy.read_text(encoding="utf-8") == out_of(path).read_text(encoding="utf-8")
    compile(module_text(copy), str(copy), "exec")
    after = lint_file(copy)
    assert not [d for d in after if applicable(d, unsafe=True)]
    assert not [d for d in after if d.code == code and d.fix is not None]

    fixed = copy.read_bytes()
    again = run("check", "--no-cache", "--fix", "--unsafe-fixes", "--exit-zero", copy.name)
    assert again.exit_code == 0 and copy.read_bytes() == fixed
    assert "fixed" not in again.stdout  # nothing was applied the second time


@pytest.mark.parametrize("path", [p for p in PAIRS if not p.name.startswith("nofix_")],
                         ids=lambda p: str(p.relative_to(FIXES)))
def test_diff_of_fix_fixture_writes_nothing(path: Path, tmp_path: Path):
    copy = copy_of(path, tmp_path)
    result = run("check", "--no-cache", "--diff", "--unsafe-fixes", copy.name)
    assert result.exit_code == 1
    assert result.stdout.startswith(f"--- a/{copy.name}")
    assert copy.read_bytes() == path.read_bytes()


STRICT = "[tool.evallint]\nstrict-restore = true\n"


def _flag_fixtures_copied(root: Path) -> None:
    """Every ``fixtures/<folder>/flag_*.py`` into ``root/<folder>/`` (a ``_strict`` folder with
    its setting)."""
    for path in sorted(FIXES.parent.glob("EL*/flag_*.py")):
        folder = root / path.parent.name
        if not folder.is_dir():
            folder.mkdir()
            if folder.name.endswith("_strict"):
                (folder / "pyproject.toml").write_text(STRICT, encoding="utf-8")
        shutil.copyfile(path, folder / path.name)


def _lint_each_folder(root: Path, *options: str) -> list[dict]:
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        _, data = run_json("--no-cache", *options, str(folder.relative_to(root)))
        found += data
    return found


def _fix_each_folder(root: Path) -> None:
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        result = run("check", "--no-cache", "--fix", "--unsafe-fixes", "--exit-zero", str(folder.relative_to(root)))
        assert result.exit_code == 0, result.output


def test_fix_every_flag_fixture(tmp_path: Path):
    """``--fix --unsafe-fixes`` over copies of all ``fixtures/EL*/flag_*.py`` (each rule's folder
    as a project of its own): every file still compiles, no finding is left with a fix, no new
    finding appears, and a second run changes nothing."""
    _flag_fixtures_copied(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.py")}
    found = _lint_each_folder(tmp_path, "--unsafe-fixes")
    offered = {d["path"] for d in found if d["fix"] is not None}
    assert offered

    _fix_each_folder(tmp_path)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*.py")}
    changed = {str(p.relative_to(tmp_path)) for p in after if after[p] != before[p]}
    assert changed == offered
    for path, data_bytes in after.items():
        compile(data_bytes, str(path), "exec")
    left = _lint_each_folder(tmp_path, "--unsafe-fixes")
    assert [(d["path"], d["line"], d["code"]) for d in left if d["fix"] is not None] == []
    count = Counter((d["path"], d["code"]) for d in found)
    assert [key for key, n in Counter((d["path"], d["code"]) for d in left).items() if n > count[key]] == []
    _fix_each_folder(tmp_path)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.py")} == after
