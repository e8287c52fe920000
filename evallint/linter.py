"""Lint one file: parse, analyse, run the selected rules; never raises for a bad file.

Cheap to import: LibCST, the analysis and the rule classes are imported for the first file that
may matter (``Project.may_matter``), so a run of cache hits and clean files never loads them.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from evallint.diagnostics import Diagnostic, Fix, Span
from evallint.rules import info_by_code, rule_by_code
from evallint.rules.base import RuleContext, RuleSettings

if TYPE_CHECKING:
    from evallint.analysis.project import Project


def lint_source(path: str, text: str, project: Project, codes: Sequence[str],
                settings: RuleSettings = RuleSettings(), file: Path | None = None) -> list[Diagnostic]:
    """Findings of the rules ``codes`` in ``text`` (shown as ``path``; ``file`` locates it in the
    project).

    A file that can lead to no finding (``Project.may_matter``) is not parsed. A file that does not parse
    gives EL001; an unexpected error gives EL000 naming the exception.
    """
    if not project.may_matter(file or Path(path), text):
        return []
    from evallint.analysis.file_analysis import FileAnalysis
    from evallint.frontend.source import ParseFailure

    try:
        try:
            context = project.context_for_source(path, text, file or Path(path))
        except ParseFailure as failure:
            return [meta_diagnostic("EL001", path, f"cannot parse: {failure.message}",
                                    Span(failure.line, failure.column, failure.line, failure.column))]
        except RecursionError:
            return [meta_diagnostic("EL001", path, "cannot parse: nesting too deep", Span(1, 1, 1, 1))]
        ctx = RuleContext(FileAnalysis(context), settings)
        rules = rule_by_code()
        found: list[Diagnostic] = []
        for code in codes:
            if not rules[code].emitted_by_driver:
                found.extend(rules[code]().check(ctx))
        return sorted(set(found), key=Diagnostic.sort_key)
    except Exception as error:  # noqa: BLE001 - one bad file must not stop the run
        return [internal_error(path, error)]


def internal_error(path: str, error: BaseException) -> Diagnostic:
    """EL000 for ``path``, naming the exception and where evallint raised it."""
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    at = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    detail = str(error).splitlines()[0][:200] if str(error) else ""
    return meta_diagnostic("EL000", path, f"internal error: {type(error).__name__}: {detail}{at}; "
                                          "please report this file", Span(1, 1, 1, 1))


def meta_diagnostic(code: str, path: str, message: str, span: Span, fix: Fix | None = None) -> Diagnostic:
    """A finding made by the driver (EL000, EL001, EL002) rather than by a rule's ``check``."""
    rule = info_by_code()[code]
    return Diagnostic(code=code, name=rule.name, message=message, severity=rule.severity,
                      path=path, span=span, fix=fix)


def decode(data: bytes) -> str:
    """Source bytes to text (UTF-8, BOM allowed); raises UnicodeDecodeError."""
    return data.decode("utf-8-sig")
