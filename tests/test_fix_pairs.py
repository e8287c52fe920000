"""``--fix --unsafe-fixes`` on a copy of each ``fixtures/fixes/<CODE>/X.in.py`` gives ``X.out.py``:
the fixed file compiles, the finding is gone when linted again, and a second ``--fix`` changes
nothing. The same guarantees are checked on copies of every ``fixtures/<CODE>/flag_*.py`` of the
rules whose fixes are tested here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cli_snippets import run, run_json

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PAIRS = sorted((FIXTURES / "fixes").glob("*/*.in.py"))
# Rules whose every flagged fixture is fixed (or left alone) under the guarantees below.
FIXED_RULES = ("EL102", "EL103")
FLAGGED = sorted(p for code in FIXED_RULES for folder in (code, f"{code}_strict")
                 for p in (FIXTURES / folder).glob("flag_*.py"))
STRICT = "[tool.evallint]\nstrict-restore = true\n"


def _fix(name: str) -> None:
    result = run("check", "--no-cache", "--fix", "--unsafe-fixes", "--exit-zero", name)
    assert result.exit_code == 0, result.output


def _compiles(text: str, name: str) -> None:
    compile(text, name, "exec")  # raises SyntaxError


def _codes(name: str) -> list[str]:
    _, data = run_json("--no-cache", name)
    return sorted(d["code"] for d in data)


@pytest.mark.parametrize("source", PAIRS, ids=lambda p: f"{p.parent.name}/{p.name[:-len('.in.py')]}")
def test_fix_gives_the_expected_file(source: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = source.parent.name.split("_")[0]
    expected = source.with_name(source.name.replace(".in.py", ".out.py")).read_text(encoding="utf-8")
    name = source.name.replace(".in.py", ".py")
    target = tmp_path / name
    shutil.copyfile(source, target)
    assert code in _codes(name), f"{source.name} must be flagged with {code}"
    _fix(name)
    fixed = target.read_text(encoding="utf-8")
    assert fixed == expected
    _compiles(fixed, name)
    assert code not in _codes(name)
    _fix(name)
    assert target.read_text(encoding="utf-8") == fixed  # idempotent


@pytest.mark.parametrize("source", FLAGGED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fix_on_flagged_fixtures(source: Path, tmp_path, monkeypatch):
    """Every fix offered on a flagged fixture compiles, removes its finding and is idempotent;
    and no new finding appears."""
    monkeypatch.chdir(tmp_path)
    code = source.parent.name.split("_")[0]
    if source.parent.name.endswith("_strict"):
        (tmp_path / "pyproject.toml").write_text(STRICT, encoding="utf-8")
    target = tmp_path / source.name
    shutil.copyfile(source, target)
    _, before = run_json("--no-cache", source.name)
    fixable = [d for d in before if d["code"] == code and d["fix"] is not None]
    _fix(source.name)
    fixed = target.read_text(encoding="utf-8")
    _compiles(fixed, source.name)
    after = _codes(source.name)
    assert after.count(code) == sum(d["code"] == code for d in before) - len(fixable)
    for other in set(after):
        assert after.count(other) <= sum(d["code"] == other for d in before), f"new {other} finding"
    _fix(source.name)
    assert target.read_text(encoding="utf-8") == fixed
