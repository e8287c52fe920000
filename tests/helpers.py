"""Test helpers: lint a snippet or a file through the same per-file pipeline the CLI uses."""

from __future__ import annotations

from pathlib import Path

from evallint.analysis.project import Project, find_root
from evallint.diagnostics import Diagnostic
from evallint.rules import all_rules
from evallint.rules.base import RuleSettings
from evallint.runner import LintOptions, Target, lint_target

DEFAULT_CODES = tuple(rule.code for rule in all_rules() if rule.default_enabled)


def lint_file(path: Path, strict_restore: bool = False, extra_codes: tuple[str, ...] = ()) -> list[Diagnostic]:
    """Findings of the default rules (plus ``extra_codes``) in ``path``, noqa comments honoured."""
    root = find_root(path)
    options = LintOptions(codes=tuple(sorted(set(DEFAULT_CODES + extra_codes))),
                          settings=RuleSettings(strict_restore=strict_restore))
    return lint_target(Target(str(path), path, root=root), Project(root), options).diagnostics


def lint_snippet(tmp_path: Path, code: str, name: str = "snippet.py", **kwargs) -> list[Diagnostic]:
    path = tmp_path / name
    path.write_text(code, encoding="utf-8")
    return lint_file(path, **kwargs)


def found(diagnostics: list[Diagnostic]) -> set[tuple[str, int]]:
    return {(d.code, d.span.line) for d in diagnostics}
