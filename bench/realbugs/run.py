#!/usr/bin/env python3
"""The real-bugs instrument: lint the buggy and the fixed commit of each case in cases.tsv.

    python bench/realbugs/run.py CHECKOUTS_DIR [--fetch-from MIRROR_DIR] [--only ID[,ID...]] [--jobs N]

For each case the buggy and the fixed commit of its repository are extracted (once; an existing folder
is reused) into CHECKOUTS_DIR/<id>/buggy and CHECKOUTS_DIR/<id>/fixed with
`git --git-dir=<mirror> archive <sha> | tar -x`, where <mirror> is the git directory of the snapshot in
MIRROR_DIR/<owner>+<name>/ (default MIRROR_DIR: /work/.mirror). Each checkout gets an empty `.git`
folder standing for a clone's (the project root marker) and is then linted as a whole
project with `python -m evallint check --no-cache --exit-zero --output-format json .` (cwd at the
checkout root, the interpreter running this script).

Verdicts per case:
  found  the buggy commit has a finding with the case's code in the case's path within +-2 lines of the
         expected line;
  quiet  the fixed commit has no finding with that code in the fixed file's corresponding region: the
         expected line is carried over to the fixed file through a line diff, and the region is the
         innermost function (def) around the carried-over line, or +-15 lines of it at module level.

Prints one row per case, the misses with the nearby findings, and the totals. Exit status 0 unless the
script itself fails. Fetched code stays in CHECKOUTS_DIR; nothing of it belongs in this repository.
"""

from __future__ import annotations

import argparse
import ast
import csv
import difflib
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases.tsv"
LINE_SLACK = 2  # a buggy-side finding counts within this many lines of the expected one
MODULE_WINDOW = 15  # fixed-side region at module level: this many lines either side


@dataclass
class Case:
    id: str
    repo: str
    buggy: str
    fixed: str
    path: str
    line: int
    code: str
    description: str


@dataclass
class Result:
    case: Case
    found: bool | None = None  # None: could not be decided (error)
    quiet: bool | None = None
    buggy_hits: list[dict] = field(default_factory=list)  # same code, same path, any line
    buggy_here: list[dict] = field(default_factory=list)  # any code within the slack of the line
    fixed_hits: list[dict] = field(default_factory=list)  # same code inside the fixed region
    fixed_region: tuple[int, int] | None = None
    error: str = ""
    skipped: int = 0  # files absent from the snapshot (large blobs), left out of the checkouts
    seconds: float = 0.0


def read_cases(path: Path) -> list[Case]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            Case(r["id"], r["repo"], r["buggy"], r["fixed"], r["path"], int(r["line"]), r["code"], r["description"])
            for r in reader
        ]


def git_dir(mirror_root: Path, repo: str) -> Path:
    """The git directory of the snapshot `fetch` made: <root>/<owner>+<name>/repo (bare, or with .git)."""
    base = mirror_root / repo.replace("/", "+")
    for cand in (base / "repo" / ".git", base / "repo", base / ".git", base):
        if (cand / "objects").is_dir() and (cand / "HEAD").exists():
            return cand
    raise FileNotFoundError(f"no git snapshot of {repo} under {base}")


def materialise(gdir: Path, sha: str, dest: Path) -> int:
    """Extract commit `sha` into `dest` (skipped when `dest` exists). Returns how many files were left out.

    `git archive | tar -x` first; snapshots lack their largest blobs (data files, videos), which makes
    git archive fail, so then every blob that is present is written one by one and the rest skipped.
    """
    if dest.is_dir():
        return 0
    tmp = dest.with_name(dest.name + ".part")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    archive = subprocess.run(["git", f"--git-dir={gdir}", "archive", "--format=tar", sha], capture_output=True)
    skipped = 0
    if archive.returncode == 0:
        tar = subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, capture_output=True)
        if tar.returncode != 0:
            raise RuntimeError(f"tar -x failed: {tar.stderr.decode(errors='replace').strip()}")
    else:
        skipped = extract_present_blobs(gdir, sha, tmp)
    tmp.rename(dest)
    return skipped


def extract_present_blobs(gdir: Path, sha: str, into: Path) -> int:
    tree = subprocess.run(["git", f"--git-dir={gdir}", "ls-tree", "-r", "-z", "--full-tree", sha],
                          capture_output=True, check=True).stdout.split(b"\0")
    entries = []
    for item in tree:
        if not item:
            continue
        meta, path = item.split(b"\t", 1)
        mode, kind, obj = meta.split()
        if kind == b"blob" and mode != b"120000":  # regular files only: no symlinks, no submodules
            entries.append((obj.decode(), path.decode(errors="surrogateescape")))
    proc = subprocess.run(["git", f"--git-dir={gdir}", "cat-file", "--batch"],
                          input="".join(f"{obj}\n" for obj, _ in entries).encode(), capture_output=True, check=True)
    out, pos, skipped = proc.stdout, 0, 0
    for obj, path in entries:
        nl = out.index(b"\n", pos)
        header = out[pos:nl].split()
        pos = nl + 1
        if len(header) < 3 or header[1] != b"blob":  # "<sha> missing"
            skipped += 1
            continue
        size = int(header[2])
        target = into / path
        if ".." in Path(path).parts or Path(path).is_absolute():
            skipped += 1
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(out[pos:pos + size])
        pos += size + 1  # content and its trailing newline
    return skipped


def lint(checkout: Path) -> list[dict]:
    (checkout / ".git").mkdir(exist_ok=True)  # the clone's root marker: the checkout is one project
    proc = subprocess.run(
        [sys.executable, "-m", "evallint", "check", "--no-cache", "--exit-zero", "--output-format", "json", "."],
        cwd=checkout, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"evallint exited {proc.returncode} in {checkout}: {proc.stderr.strip()[-400:]}")
    out = proc.stdout.strip()
    return json.loads(out) if out else []


def norm(p: str) -> str:
    return p[2:] if p.startswith("./") else p


def carry_line(old: list[str], new: list[str], line: int) -> int:
    """The line of `new` that corresponds to 1-based `line` of `old` (nearest unchanged anchor)."""
    sm = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    i = line - 1
    best = None
    for a, b, size in sm.get_matching_blocks():
        if a <= i < a + size:
            return b + (i - a) + 1
        if a + size <= i:
            best = b + size + (i - (a + size))  # after this block: shift by its offset
    return max(1, min(len(new), (best if best is not None else i) + 1))


def region(source: str, line: int) -> tuple[int, int]:
    """Innermost def around `line`, else +-MODULE_WINDOW lines."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        tree = None
    best = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                end = node.end_lineno or node.lineno
                if start <= line <= end and (best is None or end - start < best[1] - best[0]):
                    best = (start, end)
    return best or (max(1, line - MODULE_WINDOW), line + MODULE_WINDOW)


def run_case(case: Case, checkouts: Path, mirror_root: Path) -> Result:
    res = Result(case)
    t0 = time.monotonic()
    try:
        gdir = git_dir(mirror_root, case.repo)
        root = checkouts / case.id
        buggy, fixed = root / "buggy", root / "fixed"
        res.skipped = materialise(gdir, case.buggy, buggy) + materialise(gdir, case.fixed, fixed)

        findings = [f for f in lint(buggy) if norm(f["path"]) == case.path]
        res.buggy_hits = [f for f in findings if f["code"] == case.code]
        res.buggy_here = [f for f in findings if abs(f["line"] - case.line) <= LINE_SLACK]
        res.found = any(abs(f["line"] - case.line) <= LINE_SLACK for f in res.buggy_hits)

        fixed_file = fixed / case.path
        if not fixed_file.is_file():
            res.error = "path missing in the fixed commit"
            res.quiet = None
        else:
            old = (buggy / case.path).read_text(errors="replace").splitlines()
            new_src = fixed_file.read_text(errors="replace")
            mapped = carry_line(old, new_src.splitlines(), case.line)
            res.fixed_region = region(new_src, mapped)
            lo, hi = res.fixed_region
            res.fixed_hits = [f for f in lint(fixed)
                              if norm(f["path"]) == case.path and f["code"] == case.code and lo <= f["line"] <= hi]
            res.quiet = not res.fixed_hits
    except Exception as exc:  # a broken case must not stop the others
        res.error = f"{type(exc).__name__}: {exc}"
    res.seconds = time.monotonic() - t0
    return res


def mark(v: bool | None) -> str:
    return {True: "yes", False: "NO", None: "?"}[v]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkouts", type=Path, help="folder for the extracted commits (created if missing)")
    ap.add_argument("--fetch-from", type=Path, default=Path("/work/.mirror"), metavar="MIRROR_DIR",
                    help="folder holding the git snapshots as <owner>+<name>/ (default: /work/.mirror)")
    ap.add_argument("--cases", type=Path, default=CASES, help="cases file (default: cases.tsv next to this script)")
    ap.add_argument("--only", default="", help="comma-separated case ids to run")
    ap.add_argument("--jobs", type=int, default=2, help="cases linted at once (each evallint run is itself parallel)")
    args = ap.parse_args(argv)

    cases = read_cases(args.cases)
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c.id in wanted]
    args.checkouts.mkdir(parents=True, exist_ok=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda c: run_case(c, args.checkouts, args.fetch_from), cases))

    w = max([len(r.case.id) for r in results] + [2])
    print(f"{'id':<{w}}  code   {'path:line':<58} found  quiet  secs")
    for r in results:
        loc = f"{r.case.path}:{r.case.line}"
        if len(loc) > 58:
            loc = "…" + loc[-57:]
        print(f"{r.case.id:<{w}}  {r.case.code}  {loc:<58} {mark(r.found):<5}  {mark(r.quiet):<5}  {r.seconds:5.1f}"
              + (f"  [{r.error}]" if r.error else "")
              + (f"  ({r.skipped} large files absent from the snapshot)" if r.skipped else ""))

    details = [r for r in results if r.found is False or r.quiet is False or r.error]
    if details:
        print("\nDetails (misses, noisy fixes, errors):")
    for r in details:
        print(f"- {r.case.id} ({r.case.code} expected at {r.case.path}:{r.case.line})")
        if r.error:
            print(f"    error: {r.error}")
        if r.found is False:
            same = ", ".join(str(f["line"]) for f in r.buggy_hits) or "none"
            print(f"    buggy: {r.case.code} findings in the file at lines: {same}")
            for f in r.buggy_here:
                print(f"    buggy: near the line: {f['code']} at {f['line']}: {f['message'][:140]}")
        if r.quiet is False:
            lo, hi = r.fixed_region or (0, 0)
            for f in r.fixed_hits:
                print(f"    fixed: still {f['code']} at {f['line']} (region {lo}-{hi}): {f['message'][:140]}")

    decided_found = [r for r in results if r.found is not None]
    decided_quiet = [r for r in results if r.quiet is not None]
    print(f"\nbugs found: {sum(bool(r.found) for r in results)}/{len(results)}"
          + (f" ({len(results) - len(decided_found)} undecided)" if len(decided_found) < len(results) else ""))
    print(f"fixed quiet: {sum(bool(r.quiet) for r in results)}/{len(results)}"
          + (f" ({len(results) - len(decided_quiet)} undecided)" if len(decided_quiet) < len(results) else ""))
    by_code: dict[str, list[int]] = {}
    for r in results:
        n = by_code.setdefault(r.case.code, [0, 0, 0])
        n[0] += 1
        n[1] += bool(r.found)
        n[2] += bool(r.quiet)
    print("per code: " + ", ".join(f"{c} found {f}/{n} quiet {q}/{n}" for c, (n, f, q) in sorted(by_code.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
