#!/usr/bin/env python3
"""Benchmark `evallint check`: wall time and files per second, cold and warm.

    python bench/bench.py [PATH ...] [--runs N]   # default PATH: the repository's fixtures/
    python bench/bench.py [PATH ...] --profile    # cProfile of one in-process run, top 25

Each timed run is a fresh `python -m evallint check` process (so interpreter start-up and imports
count, as they do for users): N runs with `--no-cache --jobs 1`, N runs with `--no-cache` and the
default number of jobs, then one run to fill the result cache and one timed run with it warm.
Findings do not matter (exit 1 is fine); exit 2 stops the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def count_files(paths: list[Path]) -> int:
    """The files `evallint check PATHS` lints, found the way the command finds them."""
    try:
        from evallint.config import load_config
        from evallint.discovery import Excluder, discover
    except ImportError:  # evallint not importable here: count what it would look at
        return sum(1 for p in paths for f in ([p] if p.is_file() else p.rglob("*"))
                   if f.suffix in (".py", ".pyi", ".ipynb"))
    anchor = paths[0]
    config = load_config(None, anchor if anchor.is_dir() else anchor.parent)
    return sum(1 for _ in discover(paths, Excluder.from_patterns(config.root, config.exclude)))


def default_jobs() -> int:
    try:
        from evallint.runner import default_jobs as jobs
        return jobs()
    except ImportError:
        return os.cpu_count() or 1


def run_check(paths: list[Path], extra: list[str]) -> float:
    command = [sys.executable, "-m", "evallint", "check", "--quiet", "--output-format", "concise",
               *extra, *map(str, paths)]
    start = time.perf_counter()
    result = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        sys.exit(f"`{' '.join(command)}` exited {result.returncode}:\n{result.stderr}")
    return elapsed


def benchmark(paths: list[Path], runs: int) -> None:
    files = count_files(paths)
    jobs = default_jobs()
    rows: list[tuple[str, int, list[float]]] = []
    for label, extra, n in [
        ("cold, --no-cache --jobs 1", ["--no-cache", "--jobs", "1"], runs),
        (f"cold, --no-cache (default jobs: {jobs})", ["--no-cache"], runs),
    ]:
        rows.append((label, n, [run_check(paths, extra) for _ in range(n)]))
    run_check(paths, [])  # fill the cache
    rows.append(("warm cache (default jobs)", 1, [run_check(paths, [])]))

    print(f"evallint check on {', '.join(map(str, paths))}: {files} files; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    header = ("mode", "runs", "best s", "median s", "files/s (median)")
    table = [header] + [(label, str(n), f"{min(t):.3f}", f"{statistics.median(t):.3f}",
                         f"{files / statistics.median(t):.1f}") for label, n, t in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) if j == 0 else cell.rjust(w)
                        for j, (cell, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def profile(paths: list[Path], top: int = 25) -> None:
    """One in-process `evallint check --no-cache --jobs 1` under cProfile."""
    from evallint.cli import main

    profiler = cProfile.Profile()
    args = ["check", "--no-cache", "--jobs", "1", "--quiet", "--output-format", "concise",
            *map(str, paths)]
    with contextlib.redirect_stdout(io.StringIO()):
        profiler.enable()
        try:
            main.main(args, prog_name="evallint", standalone_mode=False)
        except SystemExit as exit_:
            if exit_.code not in (0, 1, None):
                raise
        finally:
            profiler.disable()
    print(f"evallint check on {', '.join(map(str, paths))}: {count_files(paths)} files "
          f"(in-process, --no-cache --jobs 1); top {top} by cumulative time")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="Files and folders (default: fixtures/).")
    parser.add_argument("--runs", "-n", type=int, default=3, help="Timed runs per cold mode (3).")
    parser.add_argument("--profile", action="store_true",
                        help="Profile one in-process run instead, and print the top 25 functions.")
    args = parser.parse_args(argv)
    paths = args.paths or [REPO / "fixtures"]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"no such path: {', '.join(missing)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.profile:
        profile(paths)
    else:
        benchmark(paths, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
