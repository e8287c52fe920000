"""A rule's documentation as Markdown, from its class: for `evallint rule`, docs/rules and SARIF."""

from __future__ import annotations

from evallint.rules.base import Rule


def default_label(rule: type[Rule]) -> str:
    """``always``, ``on`` or ``off``: how a rule is selected by default."""
    return "always" if rule.always_on else "on" if rule.default_enabled else "off"


def fix_label(rule: type[Rule]) -> str:
    """``safe``, ``unsafe`` or ``-``: the applicability of a rule's fix."""
    return rule.fix_applicability.value if rule.fix_applicability else "-"


def rule_markdown(rule: type[Rule]) -> str:
    """The page of one rule: What it does / Why is this bad? / Example / Use instead / Fix safety."""
    status = "on by default" if rule.default_enabled else "off by default (opt in with `--extend-select`)"
    if rule.always_on:
        status = "always on; cannot be ignored or suppressed (only `exclude` skips a file)"
    parts = [f"# {rule.code} `{rule.name}`", "", f"{rule.summary}.", "",
             f"Severity: {rule.severity.value}; {status}.", "",
             "## What it does", "", rule.what_it_does, "",
             "## Why is this bad?", "", rule.why_bad, ""]
    if rule.INVALID:
        parts += ["## Example", "", "```python", rule.INVALID[0].rstrip(), "```", ""]
    if rule.VALID:
        parts += ["## Use instead", "", "```python", rule.VALID[0].rstrip(), "```", ""]
    parts += ["## Fix safety", "", rule.fix_safety or "This rule has no automatic fix.", ""]
    return "\n".join(parts)
