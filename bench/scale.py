#!/usr/bin/env python3
"""Speed and memory of `evallint check` on real libraries, against LibCST, TorchFix, Ruff and flake8.

    python bench/scale.py DIR                      # everything (the whole-tree parts take 30+ minutes)
    python bench/scale.py DIR --quick              # slice, one file and generated modules only
    python bench/scale.py DIR --only tree --libraries skorch,poutyne   # some parts, some libraries
    python bench/scale.py DIR --runs 5 --table-out perf.md

DIR holds the libraries pinned in bench/libraries.txt (fetched there with real_libraries.py's `fetch`
when missing). TorchFix, Ruff and flake8 are installed on demand into DIR/_tools_venv (evallint skips
virtualenvs); a tool that cannot be installed is skipped with a note.

evallint's bytecode is written first, as installing a wheel does. Every measurement is a fresh
process (start-up counts) run under GNU time: wall time, and the peak
resident memory of the largest single process of the tree (workers included). Parts (`--only`):

  slice        a fixed ~100-file project (the packages of SLICE_LIBRARIES copied into one temporary
               project): evallint cold (--no-cache) and warm (cache filled, nothing changed), the LibCST
               parse-all floor, TorchFix, Ruff and flake8, interleaved for --runs rounds; medians.
  one-file     `evallint check ONE_FILE` (a training loop of the slice) cold and warm, and Ruff on it.
  generated    synthetic PyTorch modules of 10k, 20k and 40k lines: time per 1,000 lines, and what a
               per-file time limit does to the largest (if evallint has one).
  tree         all libraries in one run at their common folder, and each library alone, each against
               its LibCST floor (run once).
  determinism  findings per file of each library alone vs in the tree, and the tree with --jobs 1.

The LibCST floor is `libcst.parse_module` on every .py/.pyi file the run covers, over a process pool
of os.cpu_count() workers, in a fresh process. The final markdown table (what | measured | target |
status) is printed and, with --table-out, written for the README's Performance section.
Run with the Python that has evallint installed (e.g. .venv/bin/python); the script itself uses only
the standard library.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from real_libraries import fetch, libraries, project_dir

SCRIPT = Path(__file__).resolve()
GNU_TIME = "/usr/bin/time"
PARTS = ("slice", "one-file", "generated", "tree", "determinism")
QUICK_PARTS = ("slice", "one-file", "generated")
SLICE_LIBRARIES = ("stable-baselines3", "poutyne")
ONE_FILE = "stable_baselines3/ppo/ppo.py"  # PPO.train(): a training loop, in the slice
GENERATED_SIZES = (10_000, 20_000, 40_000)
TOOLS = ("torchfix", "ruff", "flake8")
MAX_RSS_MB = 400


@dataclass
class Run:
    seconds: float
    peak_mb: float  # the largest single process of the tree
    output: str = ""


@dataclass
class Row:
    what: str
    measured: str
    target: str
    met: bool | None  # None: not measured


@dataclass
class Bench:
    root: Path  # DIR, with the libraries
    work: Path  # a temporary folder for copies, lists, caches and outputs
    runs: int
    tools: dict[str, Path]
    chosen: list[tuple[str, str]]  # libraries of the tree and determinism parts
    findings: dict[tuple[str, int | None], dict[str, list[str]]] = field(default_factory=dict)
    timings: dict[tuple[str, int | None], Run] = field(default_factory=dict)


# ---- running and measuring -------------------------------------------------------------------

def measure(command: list[str], cwd: Path, keep_output: bool = False) -> Run:
    """Run ``command`` once under GNU time; exit codes other than 0 and 1 (findings) stop the script."""
    with tempfile.TemporaryDirectory(prefix="evallint-rss-") as folder:
        report = Path(folder) / "peak"
        start = time.perf_counter()
        proc = subprocess.run([GNU_TIME, "-q", "-f", "%M", "-o", str(report), *command], cwd=cwd,
                              stdout=subprocess.PIPE if keep_output else subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        seconds = time.perf_counter() - start
        peak_kb = int(report.read_text().split()[-1])
    if proc.returncode not in (0, 1):
        sys.exit(f"`{' '.join(command)}` (in {cwd}) exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return Run(seconds, peak_kb / 1024, proc.stdout or "")


def interleave(commands: dict[str, tuple[list[str], Path]], runs: int) -> dict[str, list[Run]]:
    """Each command once per round, in turn, for ``runs`` rounds: load hits all alike."""
    results: dict[str, list[Run]] = {name: [] for name in commands}
    for round_ in range(1, runs + 1):
        for name, (command, cwd) in commands.items():
            results[name].append(measure(command, cwd))
        print(f"  round {round_}/{runs}: " + ", ".join(f"{n} {r[-1].seconds:.2f} s" for n, r in results.items()),
              flush=True)
    return results


def median(runs: list[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def peak(runs: list[Run]) -> float:
    return max(r.peak_mb for r in runs)


def evallint(*args: str, fmt: str = "concise") -> list[str]:
    return [sys.executable, "-m", "evallint", "check", "--quiet", "--output-format", fmt, *args]


def compile_evallint() -> None:
    """Write evallint's bytecode, as `pip install` of a wheel does: an editable install under
    PYTHONDONTWRITEBYTECODE would otherwise compile every module again in every measured run."""
    import compileall

    import evallint

    compileall.compile_dir(str(Path(evallint.__file__).parent), quiet=1)


def covered_files(folder: Path) -> list[Path]:
    """The .py/.pyi files `evallint check FOLDER` lints, found the way the command finds them."""
    from evallint.config import load_config
    from evallint.discovery import Excluder, discover

    config = load_config(None, folder)
    return [p.resolve() for p in discover([folder], Excluder.from_patterns(config.root, config.exclude))
            if p.suffix in (".py", ".pyi")]


def count_lines(files: list[Path]) -> int:
    return sum(f.read_bytes().count(b"\n") for f in files)


def floor_command(bench: Bench, label: str, files: list[Path]) -> list[str]:
    """The LibCST parse-all floor of ``files``: this script's `parse-all` in a fresh process."""
    listing = bench.work / "lists" / f"{label}.txt"
    listing.parent.mkdir(exist_ok=True)
    listing.write_text("".join(f"{f}\n" for f in files))
    return [sys.executable, str(SCRIPT), "parse-all", str(listing)]


def parse_one(path: str) -> int:
    import libcst

    try:
        libcst.parse_module(Path(path).read_bytes())
        return 0
    except Exception:  # noqa: BLE001 - a file LibCST cannot parse is counted, not fatal
        return 1


def parse_all(listing: str) -> None:
    """The floor itself (run as `scale.py parse-all LIST`): parse every listed file on all cores."""
    import multiprocessing

    import libcst  # noqa: F401 - imported once here, inherited by the forked workers

    files = Path(listing).read_text().splitlines()
    with multiprocessing.Pool(os.cpu_count()) as pool:
        failures = sum(pool.imap_unordered(parse_one, files, chunksize=4))
    if failures:
        print(f"LibCST could not parse {failures} of {len(files)} files", file=sys.stderr)


# ---- set-up ----------------------------------------------------------------------------------

def setup_tools(root: Path) -> dict[str, Path]:
    """TorchFix, Ruff and flake8 in DIR/_tools_venv, installed when missing; the ones available."""
    venv = root / "_tools_venv"
    binaries = venv / "bin"
    if not (binaries / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    tools = {}
    for name in TOOLS:
        if not (binaries / name).exists():
            proc = subprocess.run([str(binaries / "python"), "-m", "pip", "install", "-q", name],
                                  capture_output=True, text=True, check=False)
            if proc.returncode:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"note: {name} could not be installed ({last}); it is skipped")
                continue
        tools[name] = binaries / name
    return tools


def tool_command(bench: Bench, name: str, path: str) -> list[str]:
    exe = str(bench.tools[name])
    return {"torchfix": [exe, path],
            "ruff": [exe, "check", "--isolated", "--no-cache", path],
            "flake8": [exe, "--isolated", path]}[name]


def versions(bench: Bench) -> str:
    def version(command: list[str]) -> str:
        out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
        found = re.search(r"\d+(?:\.\d+)+", out)
        return found.group(0) if found else "?"

    programs = {"evallint": [sys.executable, "-m", "evallint"]} | {n: [str(e)] for n, e in bench.tools.items()}
    return ", ".join(f"{name} {version([*command, '--version'])}" for name, command in programs.items())


def make_slice(bench: Bench) -> Path:
    """The ~100-file project of the slice parts: SLICE_LIBRARIES' packages, one pyproject.toml."""
    folder = bench.work / "slice"
    if folder.exists():
        return folder
    for name, version in libraries():
        if name in SLICE_LIBRARIES:
            for package in project_dir(bench.root, name, version).iterdir():
                if package.is_dir() and not package.name.endswith(".dist-info"):
                    shutil.copytree(package, folder / package.name)
    (folder / "pyproject.toml").write_text('[project]\nname = "slice"\n\n[tool.evallint]\n')
    return folder


def tree_root(bench: Bench) -> Path:
    """The common folder of the chosen libraries: DIR itself, or a copy holding only those."""
    if len(bench.chosen) == len(libraries()):
        return bench.root
    folder = bench.work / "tree"
    if not folder.exists():
        for name, version in bench.chosen:
            shutil.copytree(project_dir(bench.root, name, version), project_dir(folder, name, version))
    return folder


# ---- the parts -------------------------------------------------------------------------------

def versus(one: float, other: float) -> str:
    return f"{one:.2f} s vs {other:.2f} s"


def skipped(what: str, target: str, why: str) -> Row:
    return Row(what, f"not measured: {why}", target, None)


def part_slice(bench: Bench) -> list[Row]:
    folder = make_slice(bench)
    files = covered_files(folder)
    print(f"slice: {', '.join(SLICE_LIBRARIES)}: {len(files)} files, {count_lines(files):,} lines")
    commands = {"evallint cold": (evallint("--no-cache", "."), folder),
                "evallint warm": (evallint("."), folder),
                "libcst floor": (floor_command(bench, "slice", files), folder)}
    commands |= {name: (tool_command(bench, name, "."), folder) for name in bench.tools}
    measure(evallint("."), folder)  # fill the cache for the warm runs
    results = interleave(commands, bench.runs)
    print_details(results)
    cold, warm, floor = (median(results[n]) for n in ("evallint cold", "evallint warm", "libcst floor"))
    what = f"~100-file slice ({len(files)} files)"
    rows = [Row(f"{what}: cold vs LibCST parse-all floor", f"{cold / floor:.2f}× ({versus(cold, floor)})",
                "≤ 0.5×", cold <= 0.5 * floor),
            Row(f"{what}: warm (nothing changed) vs cold", f"{warm / cold:.0%} ({versus(warm, cold)})",
                "≤ 5 %", warm <= 0.05 * cold)]
    versus_torchfix, target = f"{what}: vs TorchFix", "evallint ≥ 40× faster"
    if "torchfix" not in results:
        return [*rows, skipped(versus_torchfix, target, "TorchFix not installed")]
    torchfix = median(results["torchfix"])
    return [*rows, Row(versus_torchfix, f"evallint {torchfix / cold:.1f}× faster (TorchFix {versus(torchfix, cold)})",
                       target, torchfix >= 40 * cold)]


def part_one_file(bench: Bench) -> list[Row]:
    folder = make_slice(bench)
    commands = {"evallint cold": (evallint("--no-cache", ONE_FILE), folder),
                "evallint warm": (evallint(ONE_FILE), folder)}
    if "ruff" in bench.tools:
        commands["ruff"] = (tool_command(bench, "ruff", ONE_FILE), folder)
    print(f"one file: {ONE_FILE} ({count_lines([folder / ONE_FILE])} lines)")
    measure(evallint(ONE_FILE), folder)  # fill the cache
    results = interleave(commands, bench.runs)
    print_details(results)
    cold, warm = median(results["evallint cold"]), median(results["evallint warm"])
    ruff = f"; Ruff {median(results['ruff']):.3f} s" if "ruff" in results else "; Ruff not installed"
    return [Row(f"`evallint check {Path(ONE_FILE).name}` (pre-commit's case)",
                f"{cold:.3f} s cold, {warm:.3f} s warm{ruff}", "≤ 0.25 s", cold <= 0.25)]


GENERATED_HEADER = '''"""Generated by bench/scale.py: PyTorch-style models and training loops, repeated."""
import torch
import torch.nn.functional as F
from torch import nn
'''

GENERATED_BLOCK = '''

class Encoder{i}(nn.Module):
    def __init__(self, width: int = {width}) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.drop = nn.Dropout(0.{digit})
        self.norm = nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.drop(torch.relu(self.proj(x)))
        return self.norm(hidden) + x


def train_epoch_{i}(model, loader, optimizer, device="cpu"):
    model.train()
    total = 0.0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = F.mse_loss(model(inputs), targets)
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total / max(len(loader), 1)


def evaluate_{i}(model, loader):
    model.eval()
{evaluation}
    return sum(losses) / max(len(losses), 1)


def fit_{i}(epochs: int = {epochs}):
    model = Encoder{i}()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0{digit})
    loader = [(torch.randn(8, {width}), torch.randn(8, {width})) for _ in range(4)]
    history = []
    for epoch in range(epochs):
        train_loss = train_epoch_{i}(model, loader, optimizer)
        val_loss = evaluate_{i}(model, loader)
        history.append((epoch, train_loss, val_loss))
    return history
'''

EVALUATIONS = (  # a third of the blocks evaluate without no_grad (a finding), the rest correctly
    "    with torch.no_grad():\n        losses = [F.mse_loss(model(x), y).item() for x, y in loader]",
    "    losses = [F.mse_loss(model(x), y).item() for x, y in loader]",
    "    with torch.inference_mode():\n        losses = [F.mse_loss(model(x), y).item() for x, y in loader]",
)


def generated_module(lines: int) -> str:
    """About ``lines`` lines of PyTorch-style code: numbered copies of one block, varied a little."""
    parts, count, i = [GENERATED_HEADER], GENERATED_HEADER.count("\n"), 0
    while count < lines:
        block = GENERATED_BLOCK.format(i=i, width=16 + i % 48, digit=1 + i % 9, epochs=1 + i % 5,
                                       evaluation=EVALUATIONS[i % len(EVALUATIONS)])
        parts.append(block)
        count += block.count("\n")
        i += 1
    return "".join(parts)


def per_file_limit_option() -> str | None:
    """A per-file time limit option of `evallint check`, if it has one."""
    help_text = subprocess.run([sys.executable, "-m", "evallint", "check", "--help"],
                               capture_output=True, text=True, check=False).stdout
    found = re.search(r"--[\w-]*(?:timeout|time-limit)[\w-]*", help_text)
    return found.group(0) if found else None


def part_generated(bench: Bench) -> list[Row]:
    folder = bench.work / "generated"
    folder.mkdir(exist_ok=True)
    modules = {}
    for size in GENERATED_SIZES:
        path = folder / f"module_{size // 1000}k.py"
        path.write_text(generated_module(size))
        modules[f"{size // 1000}k lines"] = (path, count_lines([path]))
    commands = {label: (evallint("--no-cache", path.name), folder) for label, (path, _) in modules.items()}
    print(f"generated modules: {', '.join(f'{label} ({n:,})' for label, (_, n) in modules.items())}")
    results = interleave(commands, bench.runs)
    print_details(results)
    per_kline = {label: median(results[label]) / (n / 1000) for label, (_, n) in modules.items()}
    smallest, largest = per_kline[next(iter(per_kline))], per_kline[next(reversed(per_kline))]
    measured = ", ".join(f"{label}: {median(results[label]):.2f} s ({per:.3f} s/1k lines, "
                         f"{peak(results[label]):.0f} MB)" for label, per in per_kline.items())
    return [Row("generated module: time (and peak RSS) vs size", measured,
                "linear (s/1k lines at 40k ≤ 1.5× at 10k)", largest <= 1.5 * smallest),
            limit_row(next(reversed(modules.values()))[0])]


def limit_row(big: Path) -> Row:
    """What a per-file time limit of 1 does to the largest generated module, next to a small file."""
    what, target = "per-file time limit", "a file over it is reported clearly, the run goes on"
    option = per_file_limit_option()
    if option is None:
        print("no per-file limit")
        return Row(what, "no per-file limit (no such option in `evallint check --help`)", target, False)
    small = big.with_name("small.py")
    small.write_text(generated_module(60))  # two blocks: the second evaluates without no_grad
    proc = subprocess.run(evallint("--no-cache", option, "1", big.name, small.name, fmt="json"),
                          cwd=big.parent, capture_output=True, text=True, check=False)
    findings = json.loads(proc.stdout) if proc.returncode in (0, 1) and proc.stdout.strip() else []
    small_linted = any(Path(d["path"]).name == small.name for d in findings)
    reported = big.name in proc.stderr or any(
        Path(d["path"]).name == big.name and re.search(r"time|limit", d["message"], re.IGNORECASE)
        for d in findings)
    said = (proc.stderr.strip() or "nothing on stderr").splitlines()[-1][:160]
    print(f"{option} 1: exit {proc.returncode}; stderr: {said}")
    went_on = "the other file linted" if small_linted else "the other file NOT linted"
    return Row(what, f"`{option} 1` on {big.name}: exit {proc.returncode}, {went_on}, "
               f"{'reported' if reported else 'NOT reported'}; says: {said}", target, small_linted and reported)


def lint_json(bench: Bench, label: str, folder: Path, jobs: int | None) -> tuple[Run, dict[str, list[str]]]:
    """`evallint check --no-cache [--jobs N] FOLDER` (JSON) from the tree's folder, run once per
    (label, jobs) and shared by the tree and determinism parts: its run and its findings per file."""
    key = (label, jobs)
    if key not in bench.timings:
        cwd = tree_root(bench)
        options = ["--no-cache", *(["--jobs", str(jobs)] if jobs else [])]
        run = measure(evallint(*options, str(folder), fmt="json"), cwd, keep_output=True)
        bench.findings[key] = findings_by_file(run.output, cwd)
        run.output = ""
        bench.timings[key] = run
    return bench.timings[key], bench.findings[key]


def findings_by_file(output: str, cwd: Path) -> dict[str, list[str]]:
    """Absolute path -> the file's findings (everything but the path, as sorted JSON strings)."""
    found: dict[str, list[str]] = {}
    for finding in json.loads(output):
        path = str((cwd / finding.pop("path")).resolve())
        found.setdefault(path, []).append(json.dumps(finding, sort_keys=True))
    return {path: sorted(items) for path, items in found.items()}


@dataclass
class Scope:
    label: str
    files: int
    lines: int
    run: Run
    floor: Run

    @property
    def ratio(self) -> float:
        return self.run.seconds / self.floor.seconds

    @property
    def ms_per_kline(self) -> float:
        return self.run.seconds * 1e6 / max(self.lines, 1)


def part_tree(bench: Bench) -> list[Row]:
    root = tree_root(bench)
    folders = {"tree": root} | {name: project_dir(root, name, version) for name, version in bench.chosen}
    print(f"tree: {len(bench.chosen)} libraries at {root}, then each alone (evallint, then its floor)")
    scopes = []
    for label, folder in folders.items():
        files = covered_files(folder)
        run, _ = lint_json(bench, label, folder, None)
        floor = measure(floor_command(bench, label, files), root)
        scopes.append(Scope(label, len(files), count_lines(files), run, floor))
        print(f"  {label}: {len(files)} files, evallint {run.seconds:.1f} s ({run.peak_mb:.0f} MB), "
              f"floor {floor.seconds:.1f} s", flush=True)
    print_table(("scope", "files", "lines", "evallint s", "floor s", "ratio", "s/file", "ms/1k lines", "peak MB"),
                [(s.label, str(s.files), f"{s.lines:,}", f"{s.run.seconds:.1f}", f"{s.floor.seconds:.1f}",
                  f"{s.ratio:.2f}", f"{s.run.seconds / max(s.files, 1):.3f}", f"{s.ms_per_kline:.0f}",
                  f"{s.run.peak_mb:.0f}") for s in scopes])
    tree, alone = scopes[0], scopes[1:]
    what = f"all {len(alone)} libraries, one run ({tree.files} files)"
    worst = max(alone, key=lambda s: s.ratio)
    biggest = max(alone, key=lambda s: s.run.peak_mb)
    within = sum(s.ratio <= 1 for s in alone)
    return [Row(f"{what}: time vs LibCST floor",
                f"{tree.ratio:.2f}× ({versus(tree.run.seconds, tree.floor.seconds)})",
                "≤ 1× (floor on all cores)", tree.ratio <= 1),
            Row(f"{what}: peak RSS per process", f"{tree.run.peak_mb:.0f} MB", f"≤ {MAX_RSS_MB} MB",
                tree.run.peak_mb <= MAX_RSS_MB),
            Row("each library alone: time vs its LibCST floor",
                f"{within} of {len(alone)} within; worst {worst.ratio:.2f}× ({worst.label})",
                "≤ 1× each", within == len(alone)),
            Row("each library alone: peak RSS per process", f"max {biggest.run.peak_mb:.0f} MB ({biggest.label})",
                f"≤ {MAX_RSS_MB} MB", biggest.run.peak_mb <= MAX_RSS_MB),
            flatness_row(scopes)]


def flatness_row(scopes: list[Scope]) -> Row:
    """Time per file flat with project size: per 1,000 lines (files differ in size between
    libraries), the runs over 300 files (the whole tree too) against the median of 100-300 files."""
    what = "time per file, 100 → 3,000+ files"
    target = "flat (ms/1k lines over 300 files ≤ 1.5× median of 100–300)"
    small = [s for s in scopes if 100 <= s.files <= 300]
    large = [s for s in scopes if s.files > 300]
    if not small or not large:
        return skipped(what, target, "needs runs of 100–300 and of over 300 files")
    base = statistics.median(s.ms_per_kline for s in small)
    worst = max(large, key=lambda s: s.ms_per_kline)
    per_file = [s.run.seconds / s.files for s in small + large]
    return Row(what, f"100–300 files: {base:.0f} ms/1k lines (median of {len(small)}); over 300: up to "
                     f"{worst.ms_per_kline:.0f} ({worst.label}, {worst.files} files); "
                     f"s/file {min(per_file):.3f}–{max(per_file):.3f}", target, worst.ms_per_kline <= 1.5 * base)


def part_determinism(bench: Bench) -> list[Row]:
    root = tree_root(bench)
    print("determinism: each library alone, the tree, the tree with --jobs 1 (runs shared with `tree`)")
    tree = lint_json(bench, "tree", root, None)[1]
    serial = lint_json(bench, "tree", root, 1)[1]
    alone: dict[str, list[str]] = {}
    for name, version in bench.chosen:
        alone |= lint_json(bench, name, project_dir(root, name, version), None)[1]
    differ_alone, differ_jobs = differing(alone, tree), differing(serial, tree)
    for label, paths in (("alone vs tree", differ_alone), ("--jobs 1 vs default", differ_jobs)):
        for path in paths[:10]:
            print(f"  differs ({label}): {path}")
    return [Row("findings: a library alone vs in the tree, --jobs 1 vs default",
                f"{len(differ_alone)} files differ alone vs tree, {len(differ_jobs)} with --jobs 1 "
                f"(of {len(tree)} files with findings in the tree)", "identical",
                not differ_alone and not differ_jobs)]


def differing(one: dict[str, list[str]], other: dict[str, list[str]]) -> list[str]:
    return sorted(p for p in one.keys() | other.keys() if one.get(p, []) != other.get(p, []))


PART_FUNCTIONS = {"slice": part_slice, "one-file": part_one_file, "generated": part_generated,
                  "tree": part_tree, "determinism": part_determinism}


# ---- output ----------------------------------------------------------------------------------

def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [header, tuple("---" for _ in header), *rows]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines) + "\n"


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print(markdown_table(header, rows), flush=True)


def print_details(results: dict[str, list[Run]]) -> None:
    print_table(("command", "median s", "min s", "max s", "peak MB"),
                [(name, f"{median(runs):.3f}", f"{min(r.seconds for r in runs):.3f}",
                  f"{max(r.seconds for r in runs):.3f}", f"{peak(runs):.0f}") for name, runs in results.items()])


def status(met: bool | None) -> str:
    return {True: "met", False: "not met", None: "not measured"}[met]


# ---- command line ----------------------------------------------------------------------------

def names(text: str, allowed: list[str], what: str) -> list[str]:
    chosen = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(allowed)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["parse-all"]:  # the LibCST floor's own process
        parse_all(argv[1])
        return 0
    known = [name for name, _ in libraries()]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path, help="folder of the fetched libraries (fetched there if missing)")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_PARTS)}")
    parser.add_argument("--only", type=lambda t: names(t, list(PARTS), "part"),
                        help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--libraries", type=lambda t: names(t, known, "library"),
                        help="comma-separated libraries for tree and determinism (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds and repeats (3)")
    parser.add_argument("--table-out", type=Path, help="also write the final table to this file")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not Path(GNU_TIME).is_file():
        sys.exit(f"needs GNU time at {GNU_TIME} (Debian: apt-get install time)")
    root = args.dir.resolve()
    fetch(root)
    parts = args.only or (QUICK_PARTS if args.quick else PARTS)
    chosen = [(n, v) for n, v in libraries() if not args.libraries or n in args.libraries]
    tools = setup_tools(root) if {"slice", "one-file"} & set(parts) else {}
    compile_evallint()
    with tempfile.TemporaryDirectory(prefix="evallint-scale-") as work:
        bench = Bench(root, Path(work), args.runs, tools, chosen)
        caption = (f"Measured {datetime.date.today()} on {os.cpu_count()} CPUs, Python "
                   f"{sys.version.split()[0]}; {versions(bench)}; medians of {args.runs} interleaved rounds "
                   f"(tree parts: one run); load average at start {os.getloadavg()[0]:.1f}.")
        print(caption, flush=True)
        rows = [row for part in PARTS if part in parts for row in PART_FUNCTIONS[part](bench)]
    table = markdown_table(("what", "measured", "target", "status"),
                           [(r.what, r.measured, r.target, status(r.met)) for r in rows])
    print(table)
    if args.table_out:
        args.table_out.write_text(f"{caption}\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
