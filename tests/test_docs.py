"""docs/rules/ and the rule catalogue are generated from the rule classes
(tools/generate_rule_docs.py) and kept current."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evallint.rule_docs import rule_markdown
from evallint.rules import all_rules, rule_infos
from evallint.rules.base import RuleInfo

REPO = Path(__file__).resolve().parent.parent
GENERATOR = REPO / "tools" / "generate_rule_docs.py"
DOCS = REPO / "docs" / "rules"
REGENERATE = "docs/rules/ or the rule catalogue is out of date: run `python tools/generate_rule_docs.py`"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("generate_rule_docs", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_docs_are_up_to_date(generator) -> None:
    assert generator.stale_files(DOCS) == [], REGENERATE
    for name, text in generator.expected_files().items():
        assert (DOCS / name).read_text(encoding="utf-8") == text, f"{name}: {REGENERATE}"


def test_every_rule_has_its_page(generator) -> None:
    for rule in all_rules():
        page = DOCS / f"{rule.code}.md"
        assert page.is_file(), f"{page} is missing: {REGENERATE}"
        text = page.read_text(encoding="utf-8")
        assert rule_markdown(rule).rstrip() in text
        assert text.splitlines()[2] == f"# {rule.code} `{rule.name}`"


def test_index_lists_every_rule_once(generator) -> None:
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| \[(EL\d{3})\]\((EL\d{3})\.md\) \| `([a-z-]+)` \| (\w+) \| ([\w-]+) \|",
                      index, flags=re.MULTILINE)
    assert [row[0] for row in rows] == [rule.code for rule in all_rules()]
    for (code, link, name, default, fixable), rule in zip(rows, all_rules()):
        assert link == code and name == rule.name
        assert default == ("always" if rule.always_on else "on" if rule.default_enabled else "off")
        assert fixable == (rule.fix_applicability.value if rule.fix_applicability else "-")
        assert (DOCS / f"{link}.md").is_file()
    assert sorted(p.stem for p in DOCS.glob("EL*.md")) == [rule.code for rule in all_rules()]


def test_catalogue_matches_the_rule_classes(generator) -> None:
    assert rule_infos() == tuple(RuleInfo.of(rule) for rule in all_rules()), REGENERATE
    assert not generator.catalogue_is_stale(), REGENERATE


def test_check_mode_reports_stale_docs(generator, tmp_path: Path) -> None:
    docs, catalogue = tmp_path / "rules", tmp_path / "catalogue.py"
    output = ["--output", str(docs), "--catalogue", str(catalogue)]
    assert generator.main([*output, "--check"]) == 1
    assert generator.main(output) == 0
    assert generator.main([*output, "--check"]) == 0
    (docs / "EL101.md").write_text("edited by hand\n", encoding="utf-8")
    (docs / "EL999.md").write_text("a rule that no longer exists\n", encoding="utf-8")
    assert generator.stale_files(docs) == ["EL101.md", "EL999.md"]
    assert generator.main([*output, "--check"]) == 1
    generator.main(output)
    assert not (docs / "EL999.md").exists()
    assert generator.stale_files(docs) == []
    catalogue.write_text(catalogue.read_text(encoding="utf-8").replace("always_on=True", "always_on=False"),
                         encoding="utf-8")
    assert generator.catalogue_is_stale(catalogue)
    assert generator.main([*output, "--check"]) == 1
    generator.main(output)
    assert not generator.catalogue_is_stale(catalogue)


def test_check_mode_from_the_command_line() -> None:
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True,
                            text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr + REGENERATE
