"""Which files a run lints: walk folders, skip tool/venv/build folders, .gitignore and ``exclude``.

pathspec is imported only for patterns that exist: a run on named files without ``exclude``
does without it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:
    import pathspec

SKIPPED_FOLDERS = frozenset({
    ".git", ".hg", ".svn", ".tox", ".nox", ".venv", "venv", ".env", "__pycache__", "build", "dist",
    ".eggs", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".evallint_cache", "node_modules",
    "site-packages", ".ipynb_checkpoints",
})
SOURCE_SUFFIXES = (".py", ".pyi", ".ipynb")


@dataclass(frozen=True)
class Excluder:
    """``exclude`` patterns (gitignore syntax) relative to the configuration's folder; ``spec``
    is None without patterns."""

    root: Path
    spec: pathspec.PathSpec | None

    @classmethod
    def from_patterns(cls, root: Path, patterns: Iterable[str]) -> "Excluder":
        patterns = list(patterns)
        if not patterns:
            return cls(root.resolve(), None)
        import pathspec

        return cls(root.resolve(), pathspec.GitIgnoreSpec.from_lines(patterns))

    def excludes(self, path: Path, is_dir: bool = False) -> bool:
        if self.spec is None:
            return False
        try:
            relative = path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            relative = path.as_posix()
        return self.spec.match_file(relative + ("/" if is_dir else ""))


class _GitIgnores:
    """The .gitignore files met on the way down, each applying to its own folder and below."""

    def __init__(self) -> None:
        self._specs: dict[Path, pathspec.PathSpec | None] = {}

    def _spec(self, folder: Path) -> pathspec.PathSpec | None:
        if folder not in self._specs:
            gitignore = folder / ".gitignore"
            spec = None
            if gitignore.is_file():
                import pathspec

                try:
                    lines = gitignore.read_text(encoding="utf-8", errors="replace").splitlines()
                    spec = pathspec.GitIgnoreSpec.from_lines(lines)
                except OSError:
                    spec = None
            self._specs[folder] = spec
        return self._specs[folder]

    def ignores(self, path: Path, is_dir: bool, stop: Path) -> bool:
        """Whether a .gitignore in a folder between ``stop`` (the repository root) and ``path``
        ignores it."""
        for folder in (path.parent, *path.parent.parents):
            spec = self._spec(folder)
            if spec is not None:
                relative = path.relative_to(folder).as_posix() + ("/" if is_dir else "")
                if spec.match_file(relative):
                    return True
            if folder == stop:
                break
        return False


def _repository_root(folder: Path) -> Path:
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


def _is_virtualenv(folder: Path) -> bool:
    return (folder / "pyvenv.cfg").is_file()


def discover(paths: Iterable[Path], excluder: Excluder) -> Iterator[Path]:
    """Files to lint under ``paths``, in a stable order. Files named explicitly are always taken
    unless ``exclude`` matches them (so pre-commit honours ``exclude`` too)."""
    gitignores = _GitIgnores()
    seen: set[Path] = set()
    for given in paths:
        if given.is_file() or not given.exists():
            if not excluder.excludes(given) and given not in seen:
                seen.add(given)
                yield given
            continue
        top = given.resolve()
        stop = _repository_root(top)
        for folder, dirnames, filenames in os.walk(given):
            current = Path(folder)
            resolved = top / current.relative_to(given)
            kept = []
            for name in sorted(dirnames):
                child = resolved / name
                if name in SKIPPED_FOLDERS or _is_virtualenv(child) \
                        or excluder.excludes(child, is_dir=True) \
                        or gitignores.ignores(child, True, stop):
                    continue
                kept.append(name)
            dirnames[:] = kept
            for name in sorted(filenames):
                if not name.endswith(SOURCE_SUFFIXES):
                    continue
                child = resolved / name
                if excluder.excludes(child) or gitignores.ignores(child, False, stop):
                    continue
                path = current / name
                if path not in seen:
                    seen.add(path)
                    yield path
