"""One module of the project: its graphs, and resolution of names to project functions/classes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import libcst as cst

from evallint.analysis import torch_api
from evallint.frontend.cfg import FunctionGraph, build_graphs
from evallint.frontend.names import ImportMap, dotted_name
from evallint.frontend.source import SourceModule

if TYPE_CHECKING:
    from evallint.analysis.project import Project


@dataclass(frozen=True, eq=False)
class ProjectFunction:
    context: "ModuleContext"
    graph: FunctionGraph


@dataclass(frozen=True, eq=False)
class ProjectClass:
    context: "ModuleContext"
    qualname: str
    node: cst.ClassDef


@dataclass(frozen=True)
class External:
    """A name from outside the project, by its qualified name (``torch.nn.Linear``)."""

    qualified: str


Symbol = Union[ProjectFunction, ProjectClass, External]


class ModuleContext:
    """A parsed module with its import aliases, graphs and name resolution."""

    def __init__(self, project: "Project", file: Path, source: SourceModule) -> None:
        self.project = project
        self.file = file
        self.source = source
        self.imports = ImportMap.from_module(source.module)
        graphs = build_graphs(source.module)
        self.graphs = graphs.functions
        self.functions = {graph.name: graph for graph in graphs.functions}
        self.classes = graphs.classes
        self._class_facts: dict[tuple[str, str], bool] = {}
        # Paths that name resolution in this module looked at, existing or not (for the cache).
        self.dependencies: set[Path] = set()
        # Filled by the analysis: per-graph interpretation and summaries.
        self.cache: dict[object, object] = {}

    @property
    def rebound_imports(self) -> frozenset[str]:
        """Imported names that the module body assigns a value to (``import model`` then
        ``model = model.Net()``): from then on a variable, not the module."""
        cached = self.cache.get("rebound_imports")
        if cached is None:
            assigned: set[str] = set()
            for statement in self.source.module.body:
                if isinstance(statement, cst.SimpleStatementLine):
                    for small in statement.body:
                        if isinstance(small, cst.Assign):
                            assigned.update(t.target.value for t in small.targets if isinstance(t.target, cst.Name))
            cached = frozenset(name for name in assigned if name in self.imports.names)
            self.cache["rebound_imports"] = cached
        return cached  # type: ignore[return-value]

    @property
    def path(self) -> str:
        return self.source.path

    def qualify(self, node: cst.BaseExpression) -> str | None:
        return self.imports.qualify(node)

    def resolve(self, node: cst.BaseExpression | str) -> Symbol | None:
        """What a name or dotted expression refers to: a project function/class, or external."""
        dotted = node if isinstance(node, str) else dotted_name(node)
        if dotted is None:
            return None
        head = dotted.partition(".")[0]
        if head not in self.imports.names:
            return self.lookup_local(dotted) or self._from_star_imports(dotted)
        imported = self.imports.names[head]
        qualified = self.imports.qualify_dotted(dotted)
        found = self.project.resolve_module(self.file, qualified.lstrip("."), imported.level,
                                            probed=self.dependencies)
        if found is not None:
            file, rest = found
            target = self.project.context_for_file(file)
            if target is not None and rest:
                symbol = target.lookup_local(".".join(rest)) or target._from_star_imports(".".join(rest))
                if symbol is not None:
                    return symbol
                # ``from pkg import name`` where pkg/__init__ re-exports name from a submodule.
                if rest[0] in target.imports.names and target is not self:
                    return target.resolve(".".join(rest))
        return External(qualified.lstrip(".") if not imported.level else qualified)

    def imported_variable(self, name: str) -> tuple["ModuleContext", str] | None:
        """The project module and module-level variable that imported ``name`` stands for
        (``from models import net``), if it is not a function or class there."""
        if name not in self.imports.names:
            return None
        cache_key = ("imported_variable", name)
        if cache_key not in self.cache:
            self.cache[cache_key] = self._imported_variable(name)
        return self.cache[cache_key]  # type: ignore[return-value]

    def _imported_variable(self, name: str) -> tuple["ModuleContext", str] | None:
        imported = self.imports.names[name]
        found = self.project.resolve_module(self.file, self.imports.qualify_dotted(name).lstrip("."),
                                            imported.level, probed=self.dependencies)
        if found is None or len(found[1]) != 1 or not self.project.relevance.may_bind_a_model(found[0], found[1][0]):
            return None
        target = self.project.context_for_file(found[0])
        if target is None or target is self or target.lookup_local(found[1][0]) is not None:
            return None
        return target, found[1][0]

    def _from_star_imports(self, dotted: str, _seen: frozenset[int] = frozenset()) -> Symbol | None:
        """A name that ``from helpers import *`` brings: public, and in ``__all__`` if it has one."""
        head = dotted.partition(".")[0]
        if not self.imports.star_modules or head.startswith("_") or id(self) in _seen:
            return None
        cache_key = ("star", dotted)
        if cache_key not in self.cache:
            self.cache[cache_key] = self._search_star_imports(dotted, head, _seen)
        return self.cache[cache_key]  # type: ignore[return-value]

    def _search_star_imports(self, dotted: str, head: str, _seen: frozenset[int]) -> Symbol | None:
        for star in self.imports.star_modules:
            found = self.project.resolve_module(self.file, star.qualified, star.level, probed=self.dependencies)
            if found is None or found[1]:
                continue
            target = self.project.context_for_file(found[0])
            if target is None or target is self:
                continue
            exported = target.exported_names
            if exported is not None and head not in exported:
                continue
            symbol = target.lookup_local(dotted) or target._from_star_imports(dotted, _seen | {id(self)})
            if symbol is not None:
                return symbol
        return None

    @property
    def exported_names(self) -> frozenset[str] | None:
        """The string literals of a module-level ``__all__ = [...]``, if there is one."""
        if "exported" not in self.cache:
            names = None
            for statement in self.source.module.body:
                if isinstance(statement, cst.SimpleStatementLine):
                    for small in statement.body:
                        if isinstance(small, cst.Assign) and any(
                                isinstance(t.target, cst.Name) and t.target.value == "__all__" for t in small.targets) \
                                and isinstance(small.value, (cst.List, cst.Tuple)):
                            names = frozenset(el.value.evaluated_value for el in small.value.elements
                                              if isinstance(el.value, cst.SimpleString))
            self.cache["exported"] = names
        return self.cache["exported"]  # type: ignore[return-value]

    def lookup_local(self, qualname: str) -> Symbol | None:
        graph = self.functions.get(qualname)
        if graph is not None:
            return ProjectFunction(self, graph)
        node = self.classes.get(qualname)
        if node is not None:
            return ProjectClass(self, qualname, node)
        return None

    # -- classes ---------------------------------------------------------------------------

    def bases(self, cls: ProjectClass) -> list[Symbol]:
        found: list[Symbol] = []
        for arg in cls.node.bases:
            value = arg.value.value if isinstance(arg.value, cst.Subscript) else arg.value  # Generic[T]
            symbol = cls.context.resolve(value)
            if symbol is not None:
                found.append(symbol)
        return found

    def dotted_module_name(self) -> str:
        """``pkg.sub.mod`` for ``<root>/pkg/sub/mod.py`` (a package's ``__init__`` is ``pkg``)."""
        try:
            parts = list(self.file.resolve().relative_to(self.project.root).with_suffix("").parts)
        except ValueError:
            parts = [self.file.stem]
        if parts and parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def is_framework_managed(self, cls: ProjectClass, _seen: frozenset = frozenset()) -> bool:
        """Is ``cls`` (or a base) a framework class whose calls set the mode themselves?"""
        if f"{cls.context.dotted_module_name()}.{cls.qualname}" in torch_api.FRAMEWORK_MANAGED_CLASSES:
            return True
        if id(cls.node) in _seen:
            return False
        for base in self.bases(cls):
            if isinstance(base, External) and torch_api.FRAMEWORK_OBJECTS.match(base.qualified):
                return True
            if isinstance(base, ProjectClass) and \
                    base.context.is_framework_managed(base, _seen | {id(cls.node)}):
                return True
        return False

    def may_be_module_class(self, cls: ProjectClass, _seen: frozenset = frozenset()) -> bool:
        """False when no base of ``cls`` can lead to nn.Module: every base is a project class
        that cannot, or a known non-module (``object``, ``abc.ABC``, ``typing.*``, builtins)."""
        if self.is_module_class(cls):
            return True
        if id(cls.node) in _seen:
            return False
        bases = [arg.value.value if isinstance(arg.value, cst.Subscript) else arg.value
                 for arg in cls.node.bases]
        for base in bases:
            symbol = cls.context.resolve(base)
            if isinstance(symbol, ProjectClass):
                if symbol.context.may_be_module_class(symbol, _seen | {id(cls.node)}):
                    return True
            elif isinstance(symbol, External):
                if not torch_api.NOT_MODULE_BASES.match(symbol.qualified):
                    return True
            elif not (isinstance(base, cst.Name) and base.value in torch_api.BUILTIN_BASES):
                return True  # unresolved: could be anything
        return False

    def class_matches(self, cls: ProjectClass, externals: frozenset[str], prefix: str = "",
                      pattern: "re.Pattern[str] | None" = None, _seen: frozenset = frozenset()) -> bool:
        """Does ``cls`` derive (through project classes) from one of ``externals``, or from a name
        under ``prefix`` (whose last part matches ``pattern`` when one is given)?"""
        key = (cls.qualname, ",".join(sorted(externals)) + prefix + (pattern.pattern if pattern else ""))
        cached = cls.context._class_facts.get(key)
        if cached is not None:
            return cached
        result = False
        if id(cls.node) not in _seen:
            for base in self.bases(cls):
                if isinstance(base, External):
                    if base.qualified in externals or (prefix and base.qualified.startswith(prefix) and (
                            pattern is None or pattern.search(torch_api.last_part(base.qualified)))):
                        result = True
                elif isinstance(base, ProjectClass):
                    result = base.context.class_matches(base, externals, prefix, pattern, _seen | {id(cls.node)})
                if result:
                    break
        cls.context._class_facts[key] = result
        return result

    def is_module_class(self, cls: ProjectClass) -> bool:
        """Derives from nn.Module (or a known subclass: a ``torch.nn`` layer, Lightning, any
        transformers ``*PreTrainedModel`` such as ``BertPreTrainedModel``)."""
        return self.class_matches(cls, torch_api.MODULE_BASES) or \
            self.class_matches(cls, frozenset(), "torch.nn.", torch_api.NN_LAYER_BASE) or \
            self.class_matches(cls, frozenset(), "transformers.", torch_api.PRETRAINED_BASE)

    def is_lightning_class(self, cls: ProjectClass) -> bool:
        return self.class_matches(cls, torch_api.LIGHTNING_BASES)

    def find_method(self, cls: ProjectClass, method: str,
                    _seen: frozenset = frozenset()) -> ProjectFunction | None:
        """The method ``method`` of ``cls`` or of its project base classes."""
        graph = cls.context.functions.get(f"{cls.qualname}.{method}")
        if graph is not None:
            return ProjectFunction(cls.context, graph)
        if id(cls.node) in _seen:
            return None
        for base in self.bases(cls):
            if isinstance(base, ProjectClass):
                found = base.context.find_method(base, method, _seen | {id(cls.node)})
                if found is not None:
                    return found
        return None

    def class_of_graph(self, graph: FunctionGraph) -> ProjectClass | None:
        if graph.class_name is None:
            return None
        return ProjectClass(self, graph.class_name, self.classes[graph.class_name])
