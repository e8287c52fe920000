#!/usr/bin/env python3
"""The fix instrument: `--fix --unsafe-fixes` on copies of real projects, checked.

    python bench/fix_libraries.py libraries DIR [--libraries a,b]   # each library of libraries.txt
    python bench/fix_libraries.py fixtures                          # each fixtures/<CODE>/ folder (flag_*.py)
    python bench/fix_libraries.py realbugs CHECKOUTS                # each real bug's buggy commit
    ... --diff                                                      # also print the fixes, to read them

Each project is copied to a temporary folder and linted (`--select ALL --unsafe-fixes`, JSON), then
fixed (`--fix --unsafe-fixes`), linted again and fixed a second time. Per project and in total it
prints: findings, findings of kinds that have a fix (rules with a fix; not EL000, EL001 or a rule
without one), how many of those carry a fix, how many files the fix changed, and the failures of
the guarantees: a changed file that does not compile, a finding that still carries a fix after
fixing (the fix did not remove it), a finding that is new after fixing, a second `--fix` that
changes something. Findings without a fix are listed with their message, to read. For real bugs
it also says whether the bug's own finding carries a fix and is gone after fixing, and prints our
fix of the bug's file next to the upstream fix. The copies are deleted; nothing is written in DIR.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from real_libraries import libraries, project_dir  # noqa: E402

FIXTURES = BENCH.parent / "fixtures"
STRICT = "[tool.evallint]\nstrict-restore = true\n"


def fixable_codes() -> set[str]:
    from evallint.rules import all_rules

    return {rule.code for rule in all_rules() if rule.fix_applicability is not None}


def evallint(project: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evallint", "check", "--exit-zero", "--select", "ALL",
                           "--unsafe-fixes", *options, "."], cwd=project, capture_output=True, text=True)


def findings(project: Path) -> list[dict]:
    proc = evallint(project, "--output-format", "json")
    if proc.returncode != 0:
        sys.exit(f"evallint failed on {project}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def python_files(project: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in project.rglob("*.py") if ".evallint_cache" not in p.parts}


def check_project(name: str, original: Path, fixable: set[str], setup=None,
                  show_diff: bool = False) -> tuple[Counter, list[dict], list[dict], str]:
    """Lint, fix, lint and fix again a copy of ``original``; print and count what went wrong.
    Returns the counts, the findings before and after fixing, and the diff of the fixes."""
    counts: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(original, project, symlinks=True)
        if setup is not None:
            setup(project)
        before_files = python_files(project)
        before = findings(project)
        diff = evallint(project, "--diff", "-q").stdout
        evallint(project, "--fix", "-q")
        after_files = python_files(project)
        after = findings(project)
        evallint(project, "--fix", "-q")
        again_files = python_files(project)

    kinds = [d for d in before if d["code"] in fixable]
    counts.update(findings=len(before), fixable_kind=len(kinds),
                  with_fix=sum(d["fix"] is not None for d in kinds))
    changed = [p for p in after_files if after_files[p] != before_files.get(p)]
    counts["files_changed"] = len(changed)
    print(f"## {name}: {len(before)} findings, {len(kinds)} of fixable kinds, "
          f"{counts['with_fix']} with a fix; {len(changed)} files changed")
    for path in changed:
        try:
            # (as text: a coding cookie such as ``future_fstrings`` names a codec Python lacks)
            compile(after_files[path].decode("utf-8-sig"), str(path), "exec")
        except (SyntaxError, UnicodeDecodeError) as error:
            counts["not_compiling"] += 1
            print(f"  NOT COMPILING {path.relative_to(project)}: {error}")
    for d in after:
        if d["fix"] is not None:
            counts["fix_left"] += 1
            print(f"  FIX LEFT {d['path']}:{d['line']} {d['code']} {d['message'][:120]}")
    was = Counter((d["path"], d["code"]) for d in before)
    for key, number in Counter((d["path"], d["code"]) for d in after).items():
        if number > was[key]:
            counts["new_findings"] += number - was[key]
            print(f"  NEW FINDING {key[0]} {key[1]} ({was[key]} -> {number})")
    if again_files != after_files:
        counts["second_fix_changed"] += 1
        print("  SECOND --fix CHANGED FILES")
    for d in kinds:
        if d["fix"] is None:
            print(f"  no fix: {d['path']}:{d['line']} {d['code']} {d['message'][:150]}")
    if diff and show_diff:
        print(diff.rstrip("\n"))
    return counts, before, after, diff


def _near(found: list[dict], case: dict) -> dict | None:
    """The finding of a real-bug case: its code, in its file, within 2 lines of its line."""
    return next((d for d in found if d["code"] == case["code"] and d["path"] == case["path"]
                 and abs(d["line"] - int(case["line"])) <= 2), None)


def _file_diff(diff: str, path: str) -> str:
    """The part of a unified diff of several files that is about ``path``."""
    parts = re.split(r"(?m)^(?=--- a/)", diff)
    return "".join(part for part in parts if part.startswith(f"--- a/{path}\n"))


def realbugs(root: Path, fixable: set[str], only: set[str] | None) -> Counter:
    """Each real bug's buggy commit, fixed: does the bug's finding carry a fix, is it gone after
    fixing? Prints our fix of the bug's file next to the upstream one, to compare."""
    total: Counter = Counter()
    with (BENCH / "realbugs" / "cases.tsv").open() as f:
        cases = [row for row in csv.DictReader(f, delimiter="\t") if only is None or row["id"] in only]
    for case in cases:
        buggy, fixed = root / case["id"] / "buggy", root / case["id"] / "fixed"
        if not buggy.is_dir():
            print(f"## {case['id']}: no checkout (run bench/realbugs/run.py first)")
            continue
        counts, before, after, diff = check_project(case["id"], buggy, fixable)
        hit = _near(before, case)
        counts.update(bug_found=hit is not None, bug_with_fix=hit is not None and hit["fix"] is not None,
                      bug_gone=hit is not None and _near(after, case) is None)
        print(f"  bug {case['code']} {case['path']}:{case['line']}: "
              + ("not found" if hit is None else f"fix {'offered' if hit['fix'] else 'NONE'}, "
                 f"{'gone' if _near(after, case) is None else 'STILL THERE'} after --fix"))
        ours = _file_diff(diff, case["path"])
        if ours:
            print("  -- our fix:\n" + ours.rstrip("\n"))
        upstream = difflib.unified_diff(
            (buggy / case["path"]).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True),
            (fixed / case["path"]).read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
            if (fixed / case["path"]).is_file() else [], f"a/{case['path']}", f"b/{case['path']}", n=2)
        print("  -- upstream fix:\n" + "".join(upstream).rstrip("\n"))
        total += counts
    print(f"## real bugs: {total['bug_found']} found, {total['bug_with_fix']} with a fix, "
          f"{total['bug_gone']} gone after --fix")
    return total


def strict_setting(project: Path) -> None:
    (project / "pyproject.toml").write_text(STRICT, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("libraries", "fixtures", "realbugs"))
    parser.add_argument("dir", type=Path, nargs="?",
                        help="folder holding the fetched libraries, or the real bugs' checkouts")
    parser.add_argument("--libraries", help="only these libraries or real-bug cases (comma-separated)")
    parser.add_argument("--diff", action="store_true", help="also print the fixes as a diff, to read")
    args = parser.parse_args()
    fixable = fixable_codes()
    total: Counter = Counter()
    if args.what == "fixtures":
        with tempfile.TemporaryDirectory() as tmp:
            for folder in sorted(FIXTURES.glob("EL*")):
                flagged = sorted(folder.glob("flag_*.py"))
                if not flagged:
                    continue
                copy = Path(tmp) / folder.name
                copy.mkdir()
                for path in flagged:
                    shutil.copyfile(path, copy / path.name)
                setup = strict_setting if folder.name.endswith("_strict") else None
                total += check_project(folder.name, copy, fixable, setup, args.diff)[0]
    elif args.what == "realbugs":
        if args.dir is None:
            sys.exit("realbugs: give the folder of checkouts that bench/realbugs/run.py filled")
        total += realbugs(args.dir.resolve(), fixable, set(args.libraries.split(",")) if args.libraries else None)
    else:
        if args.dir is None:
            sys.exit("libraries: give the folder that `real_libraries.py fetch` filled")
        only = set(args.libraries.split(",")) if args.libraries else None
        for name, version in libraries():
            if only is None or name in only:
                total += check_project(f"{name}=={version}", project_dir(args.dir.resolve(), name, version), fixable,
                                       show_diff=args.diff)[0]
    share = total["with_fix"] / total["fixable_kind"] if total["fixable_kind"] else 0.0
    print(f"## total: {total['findings']} findings, {total['fixable_kind']} of fixable kinds, "
          f"{total['with_fix']} with a fix ({share:.0%}); {total['files_changed']} files changed; "
          f"not compiling {total['not_compiling']}, fix left {total['fix_left']}, "
          f"new findings {total['new_findings']}, second --fix changed {total['second_fix_changed']}")


if __name__ == "__main__":
    main()
