"""Every fixture script gives exactly the findings its ``# ELxxx`` comments announce.

``fixtures/<CODE>/flag_*.py`` must be flagged, ``quiet_*.py`` must not get that code;
``fixtures/EL102_strict/`` is linted with ``strict-restore``; ``fixtures/cross_file/<project>/``
are small multi-file projects linted file by file (as pre-commit does). ``fixtures/fixes/`` holds
input/output pairs of ``--fix`` (``tests/test_fix_fixtures.py``), not fixtures of this kind.
"""

from pathlib import Path

import pytest

from evallint.rules.base import expected_findings

from helpers import found, lint_file

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
# ``fixtures/fixes/<CODE>/X.in.py`` -> ``X.out.py`` are pairs for ``--fix`` (tests/test_fix_pairs.py).
FILES = sorted(p for p in FIXTURES.rglob("*.py") if p.relative_to(FIXTURES).parts[0] != "fixes")


def folder_code(path: Path) -> str:
    return path.relative_to(FIXTURES).parts[0]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture_findings(path: Path):
    folder = folder_code(path)
    diagnostics = lint_file(path, strict_restore=folder == "EL102_strict")
    assert found(diagnostics) == expected_findings(path.read_text(encoding="utf-8"))
    code = folder.split("_")[0]
    if code.startswith("EL"):
        codes = {c for c, _ in found(diagnostics)}
        if path.name.startswith("flag_"):
            assert code in codes, f"{path.name} must be flagged with {code}"
        elif path.name.startswith("quiet_"):
            assert code not in codes


@pytest.mark.parametrize("folder", sorted({folder_code(p) for p in FILES if folder_code(p).startswith("EL")}))
def test_each_rule_has_flag_and_quiet_fixtures(folder: str):
    names = [p.name for p in (FIXTURES / folder).glob("*.py")]
    assert sum(n.startswith("flag_") for n in names) >= 2
    assert sum(n.startswith("quiet_") for n in names) >= (2 if folder.endswith("strict") else 3)
