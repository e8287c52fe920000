"""Dotted names of expressions, and import aliases read from the module's own import statements.

This replaces LibCST's QualifiedNameProvider (about 9x the cost of parsing) with a single pass over
import statements: ``import torch as th`` makes ``th.no_grad`` resolve to ``torch.no_grad``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from evallint.frontend.nodes import child_nodes


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
    # ``from helpers import *``: the modules whose public names this one takes.
    star_modules: list[ImportedName] = field(default_factory=list)
    # The imports made at the top level of the module (not inside a function or class body).
    top_level: dict[str, ImportedName] = field(default_factory=dict)

    @classmethod
    def from_module(cls, module: cst.Module) -> "ImportMap":
        """Collect imports from statement bodies only (expressions are never walked)."""
        imports = cls()
        stack: list[tuple[cst.CSTNode, bool]] = [(statement, False) for statement in module.body]
        while stack:
            node, nested = stack.pop()
            if isinstance(node, cst.SimpleStatementLine):
                for small in node.body:
                    if isinstance(small, cst.Import):
                        found = imports._import_names(small)
                    elif isinstance(small, cst.ImportFrom):
                        found = imports._import_from_names(small)
                    else:
                        continue
                    imports.names.update(found)
                    if not nested:
                        imports.top_level.update(found)
            elif isinstance(node, cst.BaseCompoundStatement):
                inner = nested or isinstance(node, (cst.FunctionDef, cst.ClassDef))
                stack.extend((body, inner) for body in _bodies(node))
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

    @staticmethod
    def _import_names(node: cst.Import) -> dict[str, ImportedName]:
        found: dict[str, ImportedName] = {}
        for alias in node.names:
            full = module_name_of(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                found[alias.asname.name.value] = ImportedName(full)
            else:
                head = full.partition(".")[0]
                found[head] = ImportedName(head)
        return found

    def _import_from_names(self, node: cst.ImportFrom) -> dict[str, ImportedName]:
        level = len(node.relative)
        base = module_name_of(node.module) if node.module is not None else ""
        if isinstance(node.names, cst.ImportStar):
            self.star_modules.append(ImportedName(base, level))
            return {}
        found: dict[str, ImportedName] = {}
        for alias in node.names:
            name = module_name_of(alias.name)
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            found[local] = ImportedName(f"{base}.{name}" if base else name, level)
        return found

    def is_imported(self, node: cst.BaseExpression) -> bool:
        dotted = dotted_name(node)
        return dotted is not None and dotted.partition(".")[0] in self.names


def _bodies(node: cst.BaseCompoundStatement) -> list[cst.CSTNode]:
    """The statements directly inside a compound statement (all of its suites)."""
    found: list[cst.CSTNode] = []
    for child in child_nodes(node):
        if isinstance(child, (cst.IndentedBlock, cst.SimpleStatementSuite)):
            found.extend(child.body)
        elif isinstance(child, (cst.Else, cst.Finally, cst.ExceptHandler, cst.ExceptStarHandler,
                                cst.MatchCase, cst.If)):
            found.extend(_bodies(child) if not isinstance(child, cst.If) else [child])
    return found


def names_read(node: cst.CSTNode) -> set[str]:
    """The variables an expression reads: the head of each name or dotted name in it."""
    found: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (cst.Name, cst.Attribute)):
            dotted = dotted_name(current)
            if dotted is not None:
                found.add(dotted.partition(".")[0])
                continue
        stack.extend(child_nodes(current))
    return found
