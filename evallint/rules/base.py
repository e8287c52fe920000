"""The rule interface: one class per rule holds its metadata, docs, examples and check.

Cheap to import (no LibCST): the configuration and the driver use ``RuleSettings`` and
``RuleInfo`` on runs that parse nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar, Iterator

from evallint.diagnostics import Applicability, Diagnostic, Fix, Related, Severity
from evallint.lines import split_lines

if TYPE_CHECKING:
    import libcst as cst

    from evallint.analysis.file_analysis import FileAnalysis

# A trailing comment ``# EL101`` (or ``# EL101, EL103: why``) marks an expected finding on its
# line, in rule examples and in fixtures alike.
EXPECT_MARKER = re.compile(r"#\s*(EL\d{3}(?:\s*,\s*EL\d{3})*)\b")


def expected_findings(source: str) -> set[tuple[str, int]]:
    """The (code, line) pairs that ``# ELxxx`` comments in ``source`` announce."""
    found: set[tuple[str, int]] = set()
    for lineno, line in enumerate(split_lines(source), start=1):
        for match in EXPECT_MARKER.finditer(line):
            for code in re.split(r"\s*,\s*", match.group(1)):
                found.add((code, lineno))
    return found


@dataclass(frozen=True)
class RuleSettings:
    """What rules read from the configuration."""

    strict_restore: bool = False
    model_names: frozenset[str] = frozenset()
    # ``test-code = "strict"``: EL103/EL201 also in test code (off there by default).
    strict_test_code: bool = False


@dataclass(frozen=True)
class RuleInfo:
    """What selection, configuration, ``# noqa`` and driver findings read of a rule, as plain
    data: ``rules/catalogue.py`` holds one per rule, generated from the classes."""

    code: str
    name: str
    severity: Severity
    default_enabled: bool
    always_on: bool

    @classmethod
    def of(cls, rule: type["Rule"]) -> "RuleInfo":
        return cls(**{item.name: getattr(rule, item.name) for item in fields(cls)})


class RuleContext:
    """What a rule sees of one file: the analysis results and a way to report."""

    def __init__(self, analysis: "FileAnalysis", settings: RuleSettings) -> None:
        self.analysis = analysis
        self.settings = settings

    def diagnostic(
        self,
        rule: "Rule",
        node: cst.CSTNode,
        message: str,
        *,
        related: tuple[tuple[object, cst.CSTNode, str], ...] = (),
        fix: Fix | None = None,
        severity: Severity | None = None,
        notes: tuple[str, ...] = (),
    ) -> Diagnostic:
        """A finding of ``rule`` at ``node``; ``related`` holds (module, node, note) triples."""
        source = self.analysis.source
        return Diagnostic(
            code=rule.code,
            name=rule.name,
            message=message,
            severity=severity or rule.severity,
            path=source.path,
            span=source.span_of(node),
            related=tuple(
                Related(path=mod.path, span=mod.span_of(rel_node), message=note)
                for mod, rel_node, note in related
            ),
            fix=fix,
            notes=notes,
        )


class Rule:
    """Base class of every rule. Subclasses set the class attributes and implement ``check``.

    ``INVALID`` snippets mark each expected finding with a trailing ``# ELxxx`` comment;
    ``VALID`` snippets must produce no finding of this rule. Both are tests and docs: the first
    of each is the "Example" / "Use instead" of ``evallint rule CODE``.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    what_it_does: ClassVar[str]
    why_bad: ClassVar[str]
    fix_safety: ClassVar[str | None] = None
    fix_applicability: ClassVar[Applicability | None] = None
    severity: ClassVar[Severity] = Severity.ERROR
    default_enabled: ClassVar[bool] = True
    # Rules that can be neither selected away nor suppressed (EL000, EL001).
    always_on: ClassVar[bool] = False
    # Findings made by the driver rather than by ``check`` (EL000, EL001, EL002).
    emitted_by_driver: ClassVar[bool] = False
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[str, ...]] = ()

    @property
    def fixable(self) -> bool:
        return self.fix_applicability is not None

    def check(self, ctx: RuleContext) -> Iterator[Diagnostic]:
        """Yield the findings of this rule in the file ``ctx`` describes."""
        raise NotImplementedError
