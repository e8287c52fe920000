"""Modes a method starts from that no caller sets: ``self.<attr>`` as ``__init__`` leaves it.

An attribute keeps the mode its ``__init__`` gives it in every other method only while nothing
can switch it afterwards: no method of the class (or of its project bases) switches, rebinds,
aliases or hands it on, ``self`` itself is not handed on, the class has no subclass, and no
project file switches an attribute of that name from outside (``trainer.model.eval()``) or reads
it while naming the class. Otherwise it stays unknown. Only classes that cannot be nn.Modules
qualify (a module's ``eval()`` reaches its children). Also here: the mode of a model that
another project module builds at import time (``from models import net``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import libcst as cst

from evallint.analysis.keys import head, is_within, key_of
from evallint.analysis.ops import Bind, Call, Mode, SetMode, TrainingFlagAssigned
from evallint.analysis.state import ENTRY, Fact
from evallint.frontend.cfg import FunctionGraph
from evallint.frontend.nodes import child_nodes

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext, ProjectClass, ProjectFunction

_IN_PROGRESS = object()
ANY = "*"  # every attribute may be switched
# ``other.model``: an attribute read through a name other than ``self`` (not a forward call).
_OUTSIDE_ACCESS = re.compile(r"\b(\w+)\s*\.\s*(?=(\w+)\b(?!\s*\())")
# ``trainer.model.eval()``, ``runner.net.module.train(False)``, ``app.model.training = False``.
_OUTSIDE_SWITCH = re.compile(
    r"\b(\w+)\s*\.\s*(?=(\w+)\s*\.\s*(?:module\s*\.\s*)?(?:eval\s*\(|train\s*\(|training\b))")
_CLASS_NAME = re.compile(r"\b[A-Z]\w*")
_CLASS_BASES = re.compile(r"^[ \t]*class\s+\w+\s*\(([^)]*)\)", re.MULTILINE)
_IMPORT_LINE = re.compile(r"^[ \t]*(?:from|import)\s.*$", re.MULTILINE)
# Past this many files, the project is not searched: every attribute counts as reached.
MAX_PROJECT_FILES = 5000
_SKIPPED_FOLDERS = frozenset({"venv", "site-packages", "node_modules", "build", "dist", "__pycache__"})


def attribute_entry_modes(context: "ModuleContext", graph: FunctionGraph) -> dict[str, frozenset[Fact]]:
    """``self.<attr>`` -> the facts ``__init__`` leaves it with, for a method whose object's
    attributes nothing else switches (empty for anything else)."""
    cls = context.class_of_graph(graph)
    if cls is None or graph.param_names[:1] != ["self"] or _is_static_or_class(graph) \
            or context.may_be_module_class(cls):
        return {}
    init = context.find_method(cls, "__init__")
    if init is None or init.graph is graph or graph in _run_by_init(cls, init):
        return {}
    switched = _switched_attributes(cls, init.graph)
    if ANY in switched:
        return {}
    return {key: facts for key, facts in _init_exit_modes(init.context, init.graph).items()
            if key.partition(".")[2] not in switched}


def imported_modes(context: "ModuleContext", name: str) -> frozenset[Fact]:
    """The known facts of the module-level variable ``name`` once ``context`` is imported (its
    body run with ``__name__`` not ``"__main__"``); none while that is being computed."""
    from evallint.analysis.dataflow import analyze_function

    cache_key = ("imported_modes", name)
    cached = context.cache.get(cache_key)
    if cached is None:
        context.cache[cache_key] = frozenset()  # an import cycle: unknown
        graph = context.functions["<module>"]
        analysis = analyze_function(context, graph, {"__name__": context.dotted_module_name()})
        cached = context.cache[cache_key] = frozenset(
            fact for part in analysis.exit_parts for fact in part.modes.get(name, ())
            if fact.mode is not Mode.ENTRY and fact.origin is not None)
    return cached  # type: ignore[return-value]


def _init_exit_modes(context: "ModuleContext", init: FunctionGraph) -> dict[str, frozenset[Fact]]:
    """The ``self.<attr>`` keys that ``__init__`` sets on every path, with their facts."""
    from evallint.analysis.dataflow import analyze_function

    cache_key = ("init_exit_modes", init)
    cached = context.cache.get(cache_key)
    if cached is _IN_PROGRESS:
        return {}
    if cached is None:
        context.cache[cache_key] = _IN_PROGRESS
        parts = analyze_function(context, init).exit_parts
        found: dict[str, frozenset[Fact]] = {}
        for key in set().union(*(part.modes for part in parts)) if parts else ():
            if head(key) != "self" or key.count(".") != 1 or "[" in key:
                continue
            facts = frozenset().union(*(part.modes.get(key, ENTRY) for part in parts))
            if all(f.mode is not Mode.ENTRY and f.origin is not None for f in facts):
                found[key] = facts
        context.cache[cache_key] = cached = found
    return cached  # type: ignore[return-value]


def _run_by_init(cls: "ProjectClass", init: "ProjectFunction") -> frozenset[FunctionGraph]:
    """The methods ``__init__`` calls on ``self``, directly or through each other: they run
    while the object is being built."""
    from evallint.analysis.interpret import function_ops

    cache_key = ("run_by_init", cls.node)
    cache = cls.context.cache
    if cache_key not in cache:
        found: set[FunctionGraph] = set()
        pending = [(init.context, init.graph)]
        while pending:
            context, graph = pending.pop()
            for op in function_ops(context, graph).all():
                if isinstance(op, Call) and op.receiver == "self" and op.function.graph not in found:
                    found.add(op.function.graph)
                    pending.append((op.function.context, op.function.graph))
        cache[cache_key] = frozenset(found)
    return cache[cache_key]  # type: ignore[return-value]


def _switched_attributes(cls: "ProjectClass", init: FunctionGraph) -> frozenset[str]:
    """Names of the attributes that code other than ``__init__`` may switch (``ANY``: all)."""
    from evallint.analysis.summary import class_and_bases

    cache_key = ("switched_attributes", cls.node)
    cache = cls.context.cache
    if cache_key not in cache:
        outside, subclassed = _reached_from_outside(cls)
        switched = set(outside)
        if subclassed:
            switched.add(ANY)  # a subclass may switch them, or build them otherwise
        methods = ((owner.context, graph) for owner in class_and_bases(cls) for graph in owner.context.graphs
                   if graph is not init and graph.name.startswith(f"{owner.qualname}."))
        for context, graph in methods:
            if ANY in switched:
                break  # nothing more to learn
            switched |= _switched_in(context, graph)
        cache[cache_key] = frozenset(switched)
    return cache[cache_key]  # type: ignore[return-value]


def _switched_in(context: "ModuleContext", graph: FunctionGraph) -> frozenset[str]:
    """Attributes of ``self`` that ``graph`` switches, rebinds, aliases or passes on (once per
    method: a base class's methods serve all its subclasses)."""
    cache_key = ("switched_in", graph)
    if cache_key not in context.cache:
        context.cache[cache_key] = frozenset(_find_switched_in(context, graph))
    return context.cache[cache_key]  # type: ignore[return-value]


def _find_switched_in(context: "ModuleContext", graph: FunctionGraph) -> set[str]:
    from evallint.analysis.interpret import function_ops

    keys: set[str] = set()
    for op in function_ops(context, graph).all():
        if isinstance(op, (SetMode, TrainingFlagAssigned)):
            keys.add(op.key)
        elif isinstance(op, Bind):
            keys.update((op.key, *op.elements, *op.wraps))
            keys.update(k for k in (op.source, op.elements_of) if k is not None)
        elif isinstance(op, Call):
            keys.update(k for k in op.arguments.values() if k is not None)
            keys.update(k for ks in op.element_arguments.values() for k in ks)
            if op.receiver != "self":
                keys.update(k for k in (op.receiver,) if k is not None)
    keys |= _call_arguments(graph.node)
    names: set[str] = set()
    for key in keys:
        if key == "self":
            names.add(ANY)
        elif head(key) == "self" and is_within(key, "self"):
            names.add(key[len("self."):].split(".")[0].split("[")[0])
    return names


def _call_arguments(node: cst.CSTNode) -> set[str]:
    """Keys given as arguments to any call in ``node`` (``fit(self.model)``, ``cb(self)``)."""
    from evallint.analysis.interpret import _strip_self_returning

    found: set[str] = set()
    pending = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, cst.Arg):
            key = key_of(_strip_self_returning(current.value))
            if key is not None:
                found.add(key)
        pending.extend(child_nodes(current))
    return found


@dataclass(frozen=True)
class _FileIndex:
    """What one project file does with attributes it reads through names other than ``self``."""

    switched: frozenset[str]  # ``trainer.model.eval()``: switched, whatever ``trainer`` is
    reached: frozenset[str]  # read in any way but a call (passed on, aliased, assigned)
    class_names: frozenset[str]  # capitalised names it mentions (classes it may hold)
    bases: frozenset[str]  # names it derives classes from


def _reached_from_outside(cls: "ProjectClass") -> tuple[set[str], bool]:
    """(the attributes of ``cls``'s objects that project code may switch from outside: switched
    anywhere, or read in a file that names the class; whether ``cls`` has a subclass). The files
    searched become dependencies of the class's module (findings depend on them)."""
    cache = cls.context.project.cache
    if "attribute_index" not in cache:
        cache["attribute_index"] = _index_project(cls.context.project.root)
    index: dict[Path, _FileIndex] | None = cache["attribute_index"]  # type: ignore[assignment]
    if index is None:
        return {ANY}, True
    cls.context.dependencies.update(index)
    name = cls.qualname.rpartition(".")[2]
    reached: set[str] = set()
    for file in index.values():
        reached |= file.switched
        if name in file.class_names or not name[:1].isupper():
            reached |= file.reached
    return reached, any(name in file.bases for file in index.values())


def _index_project(root: Path) -> dict[Path, _FileIndex] | None:
    files = _project_files(root)
    if files is None:
        return None
    index: dict[Path, _FileIndex] = {}
    for file in files:
        try:
            text = _IMPORT_LINE.sub("", file.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        index[file] = _FileIndex(
            switched=frozenset(attr for name, attr in _OUTSIDE_SWITCH.findall(text) if name != "self"),
            reached=frozenset(attr for name, attr in _OUTSIDE_ACCESS.findall(text) if name != "self"),
            class_names=frozenset(_CLASS_NAME.findall(text)),
            bases=frozenset(part.strip().rpartition(".")[2] for match in _CLASS_BASES.finditer(text)
                            for part in match.group(1).split(",")))
    return index


def _project_files(root: Path) -> list[Path] | None:
    """The project's ``.py`` files (None when there are too many to search)."""
    found: list[Path] = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [s for s in subfolders if not s.startswith(".") and s not in _SKIPPED_FOLDERS]
        found.extend(Path(folder, name).resolve() for name in names if name.endswith(".py"))
        if len(found) > MAX_PROJECT_FILES:
            return None
    return found


def _is_static_or_class(graph: FunctionGraph) -> bool:
    node = graph.node
    return isinstance(node, cst.FunctionDef) and any(
        isinstance(d.decorator, cst.Name) and d.decorator.value in ("staticmethod", "classmethod")
        for d in node.decorators)
