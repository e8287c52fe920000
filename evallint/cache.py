"""Per-file result cache: a file's findings are reused while it and every project file its
analysis read (imported evaluation helpers, base classes) are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from evallint import __version__
from evallint.diagnostics import Diagnostic
from evallint.serialize import diagnostic_from_dict, diagnostic_to_dict

CACHE_FOLDER = ".evallint_cache"


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# (path, size, modification time) -> content hash: a helper imported by many files is read once.
_hashes: dict[tuple[str, int, int], str] = {}


def file_hash(path: Path) -> str | None:
    """The content hash of ``path``, or None if it does not exist or cannot be read."""
    try:
        status = path.stat()
        key = (str(path), status.st_size, status.st_mtime_ns)
        if key not in _hashes:
            _hashes[key] = content_hash(path.read_bytes())
        return _hashes[key]
    except OSError:
        return None


class ResultCache:
    """Entries keyed by (evallint version, settings fingerprint, path, project root, content hash).

    The root is the one the file's imports were resolved from: the same path linted from another
    argument (``check proj/`` then ``check proj/runners/`` without a root marker) can have another."""

    def __init__(self, root: Path, fingerprint: str) -> None:
        self.folder = root / CACHE_FOLDER / __version__
        self.fingerprint = fingerprint
        self._seen: dict[str, str | None] = {}

    def _entry(self, path: str, digest: str, root: str) -> Path:
        key = content_hash(f"{self.fingerprint}\0{path}\0{root}\0{digest}".encode())
        return self.folder / key[:2] / f"{key}.json"

    def load(self, path: str, digest: str, root: str = "") -> list[Diagnostic] | None:
        """The cached findings, or None when absent or a dependency changed."""
        try:
            entry = json.loads(self._entry(path, digest, root).read_text(encoding="utf-8"))
            for dependency, expected in entry["dependencies"].items():
                if self._current_hash(dependency) != expected:
                    return None
            return [diagnostic_from_dict(item) for item in entry["diagnostics"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # absent, or damaged: a miss

    def _current_hash(self, dependency: str) -> str | None:
        """``file_hash`` of a dependency, looked at once per run: entries share most of theirs
        (a helper module, the probes of a common import)."""
        if dependency not in self._seen:
            self._seen[dependency] = file_hash(Path(dependency))
        return self._seen[dependency]

    def store(self, path: str, digest: str, diagnostics: list[Diagnostic],
              dependencies: dict[str, str | None], root: str = "") -> None:
        """Write an entry atomically; a cache that cannot be written is silently skipped."""
        import tempfile  # not needed by runs of cache hits

        target = self._entry(path, digest, root)
        payload = {"dependencies": dependencies,
                   "diagnostics": [diagnostic_to_dict(d) for d in diagnostics]}
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            ignore = self.folder.parent / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# Created by evallint\n*\n", encoding="utf-8")
            handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        except OSError:
            return
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(payload, out)
            os.replace(temporary, target)
        except OSError:
            try:
                os.unlink(temporary)
            except OSError:
                pass
