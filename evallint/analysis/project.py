"""The linted project: its root, import resolution to files on disk, and a cache of modules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from evallint.frontend.source import ParseFailure, SourceModule

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext


def find_root(paths: Iterable[Path]) -> Path:
    """The folder with ``pyproject.toml``, else the git root, else the common folder of paths."""
    resolved = [p.resolve() for p in paths] or [Path.cwd().resolve()]
    folders = [p if p.is_dir() else p.parent for p in resolved]
    common = Path(os.path.commonpath([str(f) for f in folders]))
    for marker in ("pyproject.toml", ".git"):
        for folder in (common, *common.parents):
            if (folder / marker).exists():
                return folder
    return common


class Project:
    """Import resolution and parsed modules, shared by all files linted in one process."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._contexts: dict[Path, "ModuleContext | None"] = {}
        self._module_files: dict[tuple[Path, str], Path | None] = {}
        # What searches over every file of the project found (``entry_modes.py``).
        self.cache: dict[object, object] = {}

    def context_for_source(self, path: str, text: str, file: Path) -> "ModuleContext":
        """The module for a file being linted, shown as ``path``; its text may come from stdin
        or a notebook. A module already parsed for an import is reused when the text is the
        same. Raises ParseFailure."""
        from evallint.analysis.module import ModuleContext

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
        found: set[Path] = set()
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
        at the project root and in ``root/src``; relative imports from the importing package.
        Every path looked at, found or not, is added to ``probed`` (the cache must notice a
        helper module that appears later).
        """
        parts = [p for p in dotted.split(".") if p]
        if level:
            base = from_file.parent
            for _ in range(level - 1):
                base = base.parent
            bases = [base]
        else:
            bases = list(dict.fromkeys([from_file.parent, self.root, self.root / "src"]))
        # The base where the longest prefix of ``dotted`` is a module wins: in
        # ``pkg/models/pkg.py``, ``from pkg.layers import X`` is the package, not the file itself.
        best: tuple[Path, list[str]] | None = None
        for base in bases:
            for cut in range(len(parts), -1 if level else 0, -1):
                if best is not None and cut <= len(parts) - len(best[1]):
                    break
                candidate = self._module_file(base, ".".join(parts[:cut]))
                if probed is not None:
                    probed.update(_candidates(base, ".".join(parts[:cut])))
                if candidate is not None:
                    best = candidate, parts[cut:]
                    break
        return best

    def _module_file(self, base: Path, dotted: str) -> Path | None:
        key = (base, dotted)
        if key not in self._module_files:
            self._module_files[key] = next(
                (candidate for candidate in _candidates(base, dotted) if candidate.is_file()), None)
        return self._module_files[key]


def _candidates(base: Path, dotted: str) -> tuple[Path, ...]:
    """The files that could hold module ``dotted`` below ``base``."""
    if not dotted:
        return (base / "__init__.py",)
    relative = Path(*dotted.split("."))
    return (base / relative.with_suffix(".py"), base / relative / "__init__.py")
