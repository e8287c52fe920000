"""Test helpers: lint a snippet or a file through the same entry point the CLI uses."""

from __future__ import annotations

from pathlib import Path

from evallint.analysis.project import Project
from evallint.diagnostics import Diagnostic
from evallint.linter import lint_source
from evallint.rules import all_rules
from evallint.rules.base import RuleSettings

DEFAULT_RULES = tuple(rule for rule in all_rules() if rule.default_enabled)


def lint_file(path: Path, strict_restore: bool = False) -> list[Diagnostic]:
    project = Project.for_paths([path])
    return lint_source(str(path), path.read_text(encoding="utf-8"), project, DEFAULT_RULES,
                       RuleSettings(strict_restore=strict_restore), file=path)


def lint_snippet(tmp_path: Path, code: str, name: str = "snippet.py", **kwargs) -> list[Diagnostic]:
    path = tmp_path / name
    path.write_text(code, encoding="utf-8")
    return lint_file(path, **kwargs)


def found(diagnostics: list[Diagnostic]) -> set[tuple[str, int]]:
    return {(d.code, d.span.line) for d in diagnostics}
