"""Each rule's VALID/INVALID examples are its first tests (and its docs)."""

import pytest

from evallint.rules import all_rules
from evallint.rules.base import expected_findings

from helpers import found, lint_snippet

EXAMPLES = [(rule.code, "invalid", i, code) for rule in all_rules() for i, code in enumerate(rule.INVALID)]
EXAMPLES += [(rule.code, "valid", i, code) for rule in all_rules() for i, code in enumerate(rule.VALID)]


@pytest.mark.parametrize("code,kind,index,snippet", EXAMPLES,
                         ids=[f"{c}-{k}-{i}" for c, k, i, _ in EXAMPLES])
def test_example(tmp_path, code, kind, index, snippet):
    result = found(lint_snippet(tmp_path, snippet, extra_codes=(code,)))
    assert result == expected_findings(snippet)
    if kind == "invalid":
        assert any(c == code for c, _ in result), f"{code} example must be flagged"


@pytest.mark.parametrize("rule", [r for r in all_rules() if not r.always_on and r.default_enabled],
                         ids=lambda r: r.code)
def test_every_rule_has_examples(rule):
    assert rule.INVALID and rule.VALID
