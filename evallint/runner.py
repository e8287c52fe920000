"""Run the linter over many files: cache look-ups, worker processes, noqa, per-file ignores.

Each file's imports are resolved from its own project root (``Target.root``, see
``analysis.project.RootFinder``). Each process keeps one ``Project`` per root, so a helper module
imported by several linted files is parsed and summarised once per worker; files with different roots
never share one. Files are handed out root by root and folder by folder for that reason.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from evallint import noqa
from evallint.analysis.project import Project, find_root
from evallint.cache import ResultCache, content_hash, file_hash
from evallint.diagnostics import Diagnostic, Span, other_file_path
from evallint.linter import decode, internal_error, lint_source, meta_diagnostic
from evallint.notebooks import NotebookError, extract
from evallint.rules import info_by_code
from evallint.rules.base import RuleSettings

if TYPE_CHECKING:
    import pathspec

# Below this many files to analyse, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 8
# A process that holds more than this after a file drops its parsed modules and analyses (they
# are made again, once, if a later file needs them): memory stays bounded on any tree.
MEMORY_BUDGET = 250 * 2**20
# Seconds one file may take by default before its analysis is stopped (``--file-time-limit``).
DEFAULT_TIME_LIMIT = 60.0


@dataclass(frozen=True)
class Target:
    """One file to lint: ``path`` as shown, ``file`` on disk (for imports), ``text`` if given
    (standard input) instead of read from ``file``, ``root`` the project root its imports are
    resolved from (the command line sets it; else the nearest marker above ``file``, or its
    folder)."""

    path: str
    file: Path
    text: str | None = None
    root: Path | None = None

    @cached_property
    def project_root(self) -> Path:
        return (self.root or find_root(self.file)).resolve()

    @property
    def is_notebook(self) -> bool:
        return self.path.endswith(".ipynb")


@dataclass(frozen=True)
class LintOptions:
    """What every worker needs; plain data so that it pickles. ``per_file_ignores`` globs are
    relative to ``config_root`` (without one, to each file's project root)."""

    codes: tuple[str, ...]
    config_root: Path | None = None
    settings: RuleSettings = RuleSettings()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Hash the project files each analysis read (set by ``lint_targets`` when it has a cache).
    record_dependencies: bool = False
    # Seconds the analysis of one file may take (None: no limit).
    time_limit: float | None = DEFAULT_TIME_LIMIT

    @property
    def unsuppressable(self) -> frozenset[str]:
        by_code = info_by_code()
        return frozenset(code for code in self.codes if by_code[code].always_on)


@dataclass
class FileResult:
    path: str
    diagnostics: list[Diagnostic]
    # Every project file the analysis read, with its content hash (for the cache).
    dependencies: dict[str, str | None] = field(default_factory=dict)
    # Stopped by the time limit: the project's memoised analyses may be half made.
    timed_out: bool = False
    # The content hash of the bytes linted (read from disk; None for given text or unreadable).
    digest: str | None = None


def lint_target(target: Target, project: Project, options: LintOptions) -> FileResult:
    """Lint one file end to end; every failure becomes a finding on that file. The result
    carries the content hash of the bytes read (``FileResult.digest``)."""
    digest = None
    try:
        if target.text is not None:
            text = target.text
        else:
            data = target.file.read_bytes()
            digest = content_hash(data)
            text = decode(data)
    except OSError as error:
        return FileResult(target.path, [meta_diagnostic(
            "EL001", target.path, f"cannot read file: {error.strerror or error}", Span(1, 1, 1, 1))])
    except UnicodeDecodeError as error:
        return FileResult(target.path, [meta_diagnostic(
            "EL001", target.path, f"cannot decode file as UTF-8: {error.reason} at byte {error.start}",
            Span(1, 1, 1, 1))], digest=digest)
    result = _lint_text(target, text, project, options)
    result.digest = digest
    return result


def _lint_text(target: Target, text: str, project: Project, options: LintOptions) -> FileResult:
    try:
        notebook = extract(text) if target.is_notebook else None
    except NotebookError as error:
        return FileResult(target.path, [meta_diagnostic("EL001", target.path, str(error),
                                                        Span(1, 1, 1, 1))])
    try:
        source = notebook.text if notebook else text
        try:
            with _time_limit(options.time_limit):
                found = lint_source(target.path, source, project, options.codes, options.settings,
                                    file=target.file)
        except FileTimeLimit:
            return FileResult(target.path, [meta_diagnostic(
                "EL000", target.path, f"analysis stopped: the file used more than the per-file "
                f"time limit of {options.time_limit:g} s of CPU time (`--file-time-limit`, `file-time-limit` in "
                "the configuration); it was not checked, the other files were", Span(1, 1, 1, 1))],
                timed_out=True)
        found = noqa.apply(found, target.path, source, selected=frozenset(options.codes),
                           unsuppressable=options.unsuppressable)
        found = _drop_per_file_ignores(found, target, options)
        found = [_relative_related(d) for d in found]
        if notebook:
            found = [notebook.to_cell(d) for d in found]
        dependencies = {str(p): file_hash(p) for p in sorted(project.dependencies_of(target.file))} \
            if options.record_dependencies else {}
        return FileResult(target.path, found, dependencies)
    except Exception as error:  # noqa: BLE001 - one bad file must not stop the run
        return FileResult(target.path, [internal_error(target.path, error)])


class FileTimeLimit(BaseException):
    """Raised inside the analysis of a file that took longer than its time limit (not an
    ``Exception``: nothing in the analysis may take it for a failure of its own)."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    """Raise FileTimeLimit in the block once it has used ``seconds`` of CPU time (``ITIMER_PROF``:
    a busy machine does not stop a file that an idle one finishes; only in the main thread of a
    process on systems with SIGPROF, else no limit)."""
    if not seconds or not hasattr(signal, "SIGPROF") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise FileTimeLimit()

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def _resident_bytes() -> int | None:
    """This process's resident memory now (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _lint_within_budget(target: Target, projects: dict[Path, Project], options: LintOptions) -> FileResult:
    """``lint_target`` with this process's ``projects``: only the current root's is kept, and it
    is dropped too past the memory budget."""
    if projects and target.project_root not in projects:
        # Files come root by root (``_batches``): the projects of earlier roots are done with.
        projects.clear()
    project = project_for(projects, target)
    result = lint_target(target, project, options)
    if result.timed_out:
        project.forget_analyses()
    resident = _resident_bytes()
    if resident is not None and resident > _memory_limit[0]:
        projects.clear()
        gc.collect()
        _return_freed_memory()
        # What the process cannot give back it reuses: drop again only once it grows past what
        # it holds now by a quarter of the budget (not after every file).
        _memory_limit[0] = max(MEMORY_BUDGET, (_resident_bytes() or 0) + MEMORY_BUDGET // 4)
    return result


def _return_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the system (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# The resident size past which ``_lint_within_budget`` drops this process's projects.
_memory_limit = [MEMORY_BUDGET]


def _relative_related(diagnostic: Diagnostic) -> Diagnostic:
    """Related locations in other files as ``other_file_path`` shows them; the linted file keeps
    the path the user gave."""
    related = tuple(item if item.path == diagnostic.path else replace(item, path=other_file_path(item.path))
                    for item in diagnostic.related)
    return diagnostic if related == diagnostic.related else replace(diagnostic, related=related)


@lru_cache(maxsize=None)
def _pattern(pattern: str) -> pathspec.GitIgnoreSpec:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines([pattern])


def _drop_per_file_ignores(found: list[Diagnostic], target: Target,
                           options: LintOptions) -> list[Diagnostic]:
    if not options.per_file_ignores:
        return found
    try:
        relative = target.file.resolve().relative_to(options.config_root or target.project_root).as_posix()
    except ValueError:
        relative = target.file.as_posix()
    ignored: list[str] = []
    for pattern, codes in options.per_file_ignores:
        if _pattern(pattern).match_file(relative):
            ignored.extend(codes)
    unsuppressable = options.unsuppressable
    return [d for d in found if d.code in unsuppressable
            or not any(code == "ALL" or d.code.startswith(code) for code in ignored)]


def project_for(projects: dict[Path, Project], target: Target) -> Project:
    """The ``Project`` of ``target``'s root in ``projects`` (one per root), made on first use."""
    root = target.project_root
    project = projects.get(root)
    if project is None:
        project = projects[root] = Project(root)
    return project


# -- worker processes ----------------------------------------------------------------------

_worker_projects: dict[Path, Project] = {}
_worker_options: LintOptions | None = None


def _start_worker(options: LintOptions) -> None:
    global _worker_options
    _worker_projects.clear()
    _worker_options = options


def _lint_in_worker(targets: list[Target]) -> list[FileResult]:
    assert _worker_options is not None
    return [_lint_within_budget(target, _worker_projects, _worker_options) for target in targets]


def _root_order(target: Target) -> tuple[str, str, str]:
    """Root by root, folder by folder: a process keeps one root's parsed modules at a time."""
    return str(target.project_root), str(target.file.parent), target.path


def _batches(targets: Sequence[Target], jobs: int) -> list[list[Target]]:
    """Targets grouped by root and folder, in batches small enough to keep every worker busy."""
    ordered = sorted(targets, key=_root_order)
    size = max(1, min(16, len(ordered) // (jobs * 4) or 1))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def lint_targets(targets: Sequence[Target], options: LintOptions, jobs: int,
                 cache: ResultCache | None = None,
                 on_progress: Callable[[int], None] | None = None,
                 linted: dict[str, str | None] | None = None) -> list[Diagnostic]:
    """Findings of all ``targets``, sorted; cached results are reused and new ones stored.
    ``linted``, when given, receives the content hash of the bytes each file's findings are
    for (None for text given or a file that could not be read), so that a caller that edits
    the files (``--add-noqa``) can tell whether one changed since."""
    options = replace(options, record_dependencies=cache is not None)
    results: list[FileResult] = []
    pending: list[Target] = []
    digests: dict[str, str] = {}
    for target in targets:
        cached = None
        if cache is not None and target.text is None and not target.is_notebook:
            data = _read_bytes(target.file)
            if data is not None:
                digests[target.path] = content_hash(data)
                cached = cache.load(target.path, digests[target.path], root=str(target.project_root))
        if cached is not None:
            results.append(FileResult(target.path, cached, digest=digests[target.path]))
            if on_progress:
                on_progress(1)
        else:
            pending.append(target)

    roots = {target.path: str(target.project_root) for target in pending}
    for result in _run(pending, options, jobs, on_progress):
        results.append(result)
        # Stored under the hash of the bytes linted: the file may have changed since the look-up.
        if cache is not None and result.path in digests and result.digest is not None \
                and not any(d.code == "EL000" for d in result.diagnostics):
            cache.store(result.path, result.digest, result.diagnostics, result.dependencies,
                        root=roots[result.path])
    if linted is not None:
        linted.update((result.path, result.digest) for result in results)
    return sorted((d for r in results for d in r.diagnostics), key=Diagnostic.sort_key)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _run(pending: Sequence[Target], options: LintOptions, jobs: int,
         on_progress: Callable[[int], None] | None) -> Iterable[FileResult]:
    if jobs <= 1 or len(pending) < PARALLEL_THRESHOLD:
        projects: dict[Path, Project] = {}
        for target in sorted(pending, key=_root_order):
            yield _lint_within_budget(target, projects, options)
            if on_progress:
                on_progress(1)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed  # for parallel runs only: slow to import

    with ProcessPoolExecutor(max_workers=jobs, initializer=_start_worker,
                             initargs=(options,)) as pool:
        futures = {pool.submit(_lint_in_worker, batch): batch for batch in _batches(pending, jobs)}
        for future in as_completed(futures):
            batch = futures[future]
            try:
                batch_results = future.result()
            except Exception as error:  # noqa: BLE001 - a crashed worker loses only its batch
                batch_results = [FileResult(t.path, [internal_error(t.path, error)]) for t in batch]
            yield from batch_results
            if on_progress:
                on_progress(len(batch))


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
               (os.cpu_count() or 1))
