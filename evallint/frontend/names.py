"""Dotted names of expressions, and import aliases read from the module's own import statements.

This replaces LibCST's QualifiedNameProvider (about 9x the cost of parsing) with a single pass over
import statements: ``import torch as th`` makes ``th.no_grad`` resolve to ``torch.no_grad``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst


def dotted_name(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def module_name_of(node: cst.BaseExpression | cst.ImportFrom) -> str:
    """The dotted text of an import's module expression."""
    return dotted_name(node) or ""  # type: ignore[arg-type]


@dataclass(frozen=True)
class ImportedName:
    """Where a local name comes from: ``level`` > 0 for relative imports (``from .x import y``)."""

    qualified: str
    level: int = 0


@dataclass
class ImportMap:
    """Local name -> imported qualified name, for every import in the module."""

    names: dict[str, ImportedName] = field(default_factory=dict)

    @classmethod
    def from_module(cls, module: cst.Module) -> "ImportMap":
        imports = cls()
        module.visit(_ImportCollector(imports.names))
        return imports

    def qualify(self, node: cst.BaseExpression) -> str | None:
        """Absolute dotted name of ``node`` with its head resolved through imports.

        Relative imports keep leading dots (``.engine.validate``); local names stay as they are.
        """
        dotted = dotted_name(node)
        if dotted is None:
            return None
        return self.qualify_dotted(dotted)

    def qualify_dotted(self, dotted: str) -> str:
        head, _, rest = dotted.partition(".")
        imported = self.names.get(head)
        if imported is None:
            return dotted
        base = "." * imported.level + imported.qualified
        return f"{base}.{rest}" if rest else base

    def is_imported(self, node: cst.BaseExpression) -> bool:
        dotted = dotted_name(node)
        return dotted is not None and dotted.partition(".")[0] in self.names


class _ImportCollector(cst.CSTVisitor):
    def __init__(self, names: dict[str, ImportedName]) -> None:
        self.names = names

    def visit_Import(self, node: cst.Import) -> bool:
        for alias in node.names:
            full = module_name_of(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.names[alias.asname.name.value] = ImportedName(full)
            else:
                head = full.partition(".")[0]
                self.names[head] = ImportedName(head)
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if isinstance(node.names, cst.ImportStar):
            return False
        level = len(node.relative)
        base = module_name_of(node.module) if node.module is not None else ""
        for alias in node.names:
            name = module_name_of(alias.name)
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.names[local] = ImportedName(f"{base}.{name}" if base else name, level)
        return False

    # Imports are statements; nothing inside expressions can be one.
    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> bool:
        return any(isinstance(s, (cst.Import, cst.ImportFrom)) for s in node.body)
