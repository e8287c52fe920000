"""Which files need the full analysis: decided on text alone, before LibCST parses anything.

A file matters if it mentions something a rule reacts to itself (``frontend.text.may_be_relevant``,
and EL108's ``may_ignore_model_mode``),
or if it imports from the project a function that matters: one whose own text mentions such a thing,
or that calls another function of its module (or one its module imports) that matters
(``train(model)`` and ``evaluate(model)`` from a helper module: the caller's loop can leak eval
mode). Classes do not carry relevance to the files that import them: nearly every model class
derives from one that loads weights somewhere. Imported modules are cut into top-level functions
on their text, without parsing, each once per process. ``import pkg.mod``, ``from pkg import mod``
and star imports count when a function of the module matters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evallint.frontend.text import import_statements, may_be_relevant, may_ignore_model_mode

if TYPE_CHECKING:
    from evallint.analysis.project import Project


@dataclass(frozen=True)
class _Definition:
    """A top-level function of a module: whether its own text mentions an anchor, the names its
    code uses, or where it is imported from (``from .x import name``)."""

    anchored: bool
    uses: frozenset[str]
    imported_from: tuple[int, str, str] | None = None  # (level, module, name)


@dataclass
class _ModuleIndex:
    file: Path
    definitions: dict[str, list[_Definition]]
    anchored: bool  # the text mentions an anchor anywhere
    assigned: frozenset[str]  # names assigned by statements at column 0


class Relevance:
    """``may_matter`` for the files of one project, with what each verdict read."""

    def __init__(self, project: "Project") -> None:
        self.project = project
        self._indexes: dict[Path, _ModuleIndex | None] = {}
        # Module -> its top-level names that matter. While a module is being decided (an import
        # cycle), what is known so far.
        self._relevant: dict[Path, frozenset[str]] = {}
        # File -> the project files (and paths probed) its verdict read directly.
        self._reads: dict[Path, set[Path]] = {}

    def may_matter(self, file: Path, text: str) -> bool:
        if may_be_relevant(text) or may_ignore_model_mode(text):
            return True
        self._reads[file] = set()
        return any(self._import_matters(file, level, module, tuple(name for name, _ in names))
                   for level, module, names in import_statements(text))

    def dependencies(self, file: Path) -> set[Path]:
        """Every file the verdict on ``file`` read, transitively."""
        found: set[Path] = set()
        pending = [file]
        while pending:
            for read in self._reads.get(pending.pop(), ()):
                if read not in found:
                    found.add(read)
                    pending.append(read)
        return found

    def _import_matters(self, file: Path, level: int, module: str, names: tuple[str, ...]) -> bool:
        """Does ``from module import names`` (``import module`` without names) in ``file``
        bring in something that matters?"""
        read = self._reads.setdefault(file, set())
        found = self.project.resolve_module(file, module, level, probed=read)
        if found is None or self._index(found[0]) is None:
            return False
        target, rest = found
        read.add(target)
        relevant = self._relevant_names(target)
        if rest or not names or "*" in names:  # ``import pkg.mod``, ``from m import *``
            return bool(relevant)
        index = self._indexes[target]
        for name in names:
            if name in index.definitions:  # type: ignore[union-attr]
                if name in relevant:
                    return True
                continue
            submodule = self.project.resolve_module(file, f"{module}.{name}" if module else name,
                                                    level, probed=read)
            if submodule is not None and not submodule[1] and submodule[0] != target \
                    and self._index(submodule[0]) is not None:  # ``from pkg import trainer``
                read.add(submodule[0])
                if self._relevant_names(submodule[0]):
                    return True
        return False

    def _relevant_names(self, file: Path) -> frozenset[str]:
        """The top-level names of ``file`` that matter: anchored functions, names imported
        from the project that matter, and functions using either (to a fixpoint)."""
        if file in self._relevant:
            return self._relevant[file]
        index = self._indexes[file]
        assert index is not None
        relevant = {name for name, found in index.definitions.items() if any(d.anchored for d in found)}
        self._relevant[file] = frozenset(relevant)  # for import cycles
        for name, found in index.definitions.items():
            if name not in relevant and any(
                    d.imported_from is not None
                    and self._import_matters(file, d.imported_from[0], d.imported_from[1],
                                             (d.imported_from[2],)) for d in found):
                relevant.add(name)
        changed = True
        while changed:
            changed = False
            for name, found in index.definitions.items():
                if name not in relevant and any(d.uses & relevant for d in found):
                    relevant.add(name)
                    changed = True
        self._relevant[file] = frozenset(relevant)
        return self._relevant[file]

    def may_bind_a_model(self, file: Path, name: str) -> bool:
        """Can the body of module ``file`` leave ``name`` as a model in a known mode? Only if it
        assigns ``name`` at the top level and mentions an anchor (``from models import net``
        after ``net.load_state_dict(...)`` there). Saves parsing every module a name comes from."""
        index = self._index(file)
        return index is not None and index.anchored and name in index.assigned

    def _index(self, file: Path) -> _ModuleIndex | None:
        if file not in self._indexes:
            self._indexes[file] = _index_module(file)
        return self._indexes[file]


# A line at column 0 that starts a top-level statement (not a closing bracket or a string).
_TOP_LEVEL_LINE = re.compile(r"^(?:@|[A-Za-z_])", re.MULTILINE)
_FUNCTION = re.compile(r"(?:async[ \t]+)?def[ \t]+(\w+)")
_WORD = re.compile(r"[A-Za-z_]\w*")
_ASSIGNED = re.compile(r"^([A-Za-z_]\w*)[ \t]*(?::[^=\n]*)?=(?!=)", re.MULTILINE)


def _index_module(file: Path) -> _ModuleIndex | None:
    """The top-level functions of ``file`` and the names it imports, cut at the lines that
    start at column 0 (no parse: a string spanning lines at column 0 may cut a function short)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    definitions: dict[str, list[_Definition]] = {}
    starts = [match.start() for match in _TOP_LEVEL_LINE.finditer(text)] + [len(text)]
    decorated = None
    for start, end in zip(starts, starts[1:]):
        chunk = text[start:end]
        if chunk.startswith("@"):
            decorated = start if decorated is None else decorated
            continue
        function = _FUNCTION.match(chunk)
        if function:
            source = text[decorated if decorated is not None else start:end]
            definitions.setdefault(function.group(1), []).append(
                _Definition(may_be_relevant(source), frozenset(_WORD.findall(source))))
        elif chunk.startswith("from"):
            for level, module, names in import_statements(chunk):
                for name, local in names:
                    if name != "*":
                        definitions.setdefault(local, []).append(
                            _Definition(False, frozenset(), (level, module, name)))
        decorated = None
    return _ModuleIndex(file, definitions, may_be_relevant(text), frozenset(_ASSIGNED.findall(text)))
