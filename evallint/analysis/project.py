"""The linted project: its root, import resolution to files on disk, and a cache of modules.

LibCST (``frontend.source``) is imported where a module is parsed, not here: deciding that a file
needs no analysis (``may_matter``) must not pay for it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext
    from evallint.analysis.relevance import Relevance


# Files that mark the top of a project: imports of the files below are resolved from there.
ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


class RootFinder:
    """The project root of each linted file, for resolving its imports.

    The nearest folder at or above the file that holds a marker (``pyproject.toml``, ``setup.py``,
    ``setup.cfg``, ``.git``); without one, the folder above the outermost package holding the
    file (``pkg/sub/mod.py`` with ``pkg/__init__.py`` and ``pkg/sub/__init__.py``: the folder of
    ``pkg``, where Python would import it from); else the file's own folder. A file's root thus
    depends on the file and the filesystem only, never on the paths on the command line.
    Look-ups are remembered per folder: make one finder per run.
    """

    def __init__(self) -> None:
        self._marked: dict[Path, Path | None] = {}

    def root_of(self, file: Path) -> Path:
        folder = file.resolve().parent
        marked = self._marked_folder(folder)
        if marked is not None:
            return marked
        while (folder / "__init__.py").is_file() and folder.parent != folder:
            folder = folder.parent
        return folder

    def _marked_folder(self, folder: Path) -> Path | None:
        """The nearest folder at or above ``folder`` holding a marker, or None."""
        if folder not in self._marked:
            if any((folder / marker).exists() for marker in ROOT_MARKERS):
                self._marked[folder] = folder
            else:
                self._marked[folder] = None if folder.parent == folder else self._marked_folder(folder.parent)
        return self._marked[folder]


def find_root(file: Path) -> Path:
    """The project root of ``file`` (see ``RootFinder``)."""
    return RootFinder().root_of(file)


class Project:
    """Import resolution and parsed modules below one project root, shared by all files with
    that root linted in one process (files with another root get their own ``Project``)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._contexts: dict[Path, "ModuleContext | None"] = {}
        self._module_files: dict[tuple[Path, str], Path | None] = {}
        # What searches over every file of the project found (``entry_modes.py``).
        self.cache: dict[object, object] = {}
        self._search_folders: dict[Path, tuple[Path, ...]] = {}
        self._folder_entries: dict[Path, frozenset[str]] = {}
        self._absent_candidates: dict[tuple[Path, str], tuple[Path, ...]] = {}
        self._resolved: dict[tuple[Path, str, int],
                             tuple[tuple[Path, tuple[str, ...]] | None, tuple[Path, ...]]] = {}
        self._relevance: "Relevance | None" = None

    def may_matter(self, file: Path, text: str) -> bool:
        """Can the analysis of ``file`` (with this text) lead to a finding? See ``relevance.py``."""
        return self.relevance.may_matter(file.resolve(), text)

    @property
    def relevance(self) -> "Relevance":
        if self._relevance is None:
            from evallint.analysis.relevance import Relevance

            self._relevance = Relevance(self)
        return self._relevance

    def forget_analyses(self) -> None:
        """Drop every memoised analysis (summaries, relevance, searches) but keep the parsed
        modules: after an analysis was stopped half-way, what it memoised may be half made."""
        for context in self._contexts.values():
            if context is not None:
                context.cache.clear()
        self.cache.clear()
        self._relevance = None

    def context_for_source(self, path: str, text: str, file: Path) -> "ModuleContext":
        """The module for a file being linted, shown as ``path``; its text may come from stdin
        or a notebook. A module already parsed for an import is reused when the text is the
        same. Raises ParseFailure."""
        from evallint.analysis.module import ModuleContext
        from evallint.frontend.source import SourceModule

        file = file.resolve()
        context = self._contexts.get(file)
        if context is not None and context.source.text == text:
            context.source.path = path
            return context
        context = ModuleContext(self, file, SourceModule.parse(path, text))
        self._contexts[file] = context
        return context

    def context_for_file(self, file: Path) -> "ModuleContext | None":
        """The module at ``file``, parsed once per process; None if it cannot be read or parsed."""
        file = file.resolve()
        if file in self._contexts:
            return self._contexts[file]
        from evallint.analysis.module import ModuleContext
        from evallint.frontend.source import ParseFailure, SourceModule

        context: ModuleContext | None = None
        try:
            text = file.read_text(encoding="utf-8")
            context = ModuleContext(self, file, SourceModule.parse(str(file), text))
        except (OSError, UnicodeDecodeError, ParseFailure, RecursionError):
            context = None
        self._contexts[file] = context
        return context

    def dependencies_of(self, file: Path) -> set[Path]:
        """Every project file that the analysis of ``file`` read so far, transitively."""
        found: set[Path] = self._relevance.dependencies(file.resolve()) if self._relevance else set()
        pending = [file.resolve()]
        while pending:
            context = self._contexts.get(pending.pop())
            if context is None:
                continue
            for dependency in context.dependencies:
                if dependency not in found:
                    found.add(dependency)
                    pending.append(dependency)
        found.discard(file.resolve())
        return found

    def resolve_module(self, from_file: Path, dotted: str, level: int,
                       probed: set[Path] | None = None) -> tuple[Path, list[str]] | None:
        """The project file that ``dotted`` (imported from ``from_file``) names, and the rest.

        ``utils.evaluate`` -> (``.../utils.py``, ["evaluate"]). Searched beside the importing file,
        in each folder above it up to the project root (``runners/train.py`` importing the sibling
        package ``losses``), then in ``root/src``; the longest module path wins, the nearest folder
        among equals. Relative imports from
        the importing package.
        Every path looked at, found or not, is added to ``probed`` (the cache must notice a
        helper module that appears later). Remembered per folder, name and level: this runs for
        every name that an import binds, each time it is used.
        """
        key = (from_file.parent, dotted, level)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = self._resolved[key] = self._search(from_file.parent, dotted, level)
        found, probes = resolved
        if probed is not None:
            probed.update(probes)
        return (found[0], list(found[1])) if found is not None else None

    def _search(self, folder: Path, dotted: str, level: int) \
            -> tuple[tuple[Path, tuple[str, ...]] | None, tuple[Path, ...]]:
        """What ``resolve_module`` finds, and the paths it looked at."""
        parts = [p for p in dotted.split(".") if p]
        if level:
            base = folder
            for _ in range(level - 1):
                base = base.parent
            bases: tuple[Path, ...] = (base,)
        else:
            bases = self._folders_to_search(folder)
        # The longest module path wins, the nearest folder among equals: in ``pkg/models/pkg.py``,
        # ``from pkg.layers import X`` is the package ``pkg`` (found higher up), not the file itself.
        probes: list[Path] = []
        best: tuple[Path, tuple[str, ...]] | None = None
        for base in bases:
            if not level and parts and parts[0] not in self._entries(base):
                probes += self._absent(base, parts[0])  # ``import torch``: no ``torch`` here
                continue
            for cut in range(len(parts), -1 if level else 0, -1):
                if best is not None and cut <= len(parts) - len(best[1]):
                    break
                module = ".".join(parts[:cut])
                candidates = _candidates(base, module)
                probes.extend(candidates)
                candidate = self._module_file(base, module, candidates)
                if candidate is not None:
                    best = candidate, tuple(parts[cut:])
                    break
        return best, tuple(probes)

    def _absent(self, base: Path, name: str) -> tuple[Path, ...]:
        """The files that would hold top-level module ``name`` in ``base`` (memoised: they are
        probed for every import of ``torch`` from every folder)."""
        key = (base, name)
        found = self._absent_candidates.get(key)
        if found is None:
            found = self._absent_candidates[key] = _candidates(base, name)
        return found

    def _entries(self, folder: Path) -> frozenset[str]:
        """The module names in ``folder``: its ``.py`` files and sub-folders (memoised)."""
        found = self._folder_entries.get(folder)
        if found is None:
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            found = self._folder_entries[folder] = frozenset(
                name[:-3] if name.endswith(".py") else name for name in names)
        return found

    def _folders_to_search(self, folder: Path) -> tuple[Path, ...]:
        """``folder``, the folders above it up to the root, then ``root/src``."""
        found = self._search_folders.get(folder)
        if found is None:
            chain = [folder]
            if self.root in folder.parents:
                chain.extend(folder.parents[:len(folder.parts) - len(self.root.parts)])
            found = tuple(dict.fromkeys([*chain, self.root, self.root / "src"]))
            self._search_folders[folder] = found
        return found

    def _module_file(self, base: Path, dotted: str, candidates: tuple[Path, ...]) -> Path | None:
        key = (base, dotted)
        if key not in self._module_files:
            self._module_files[key] = next((candidate for candidate in candidates if candidate.is_file()), None)
        return self._module_files[key]


def _candidates(base: Path, dotted: str) -> tuple[Path, ...]:
    """The files that could hold module ``dotted`` below ``base``."""
    if not dotted:
        return (base / "__init__.py",)
    relative = Path(*dotted.split("."))
    return (base / relative.with_suffix(".py"), base / relative / "__init__.py")
