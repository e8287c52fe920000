#!/usr/bin/env python3
"""The fix instrument: `--fix --unsafe-fixes` on copies of real projects, checked.

    python bench/fix_libraries.py libraries DIR [--libraries a,b]   # each library of libraries.txt
    python bench/fix_libraries.py fixtures                          # each fixtures/<CODE>/ folder (flag_*.py)
    ... --diff                                                      # also print the fixes, to read them

Each project is copied to a temporary folder and linted (`--select ALL --unsafe-fixes`, JSON), then
fixed (`--fix --unsafe-fixes`), linted again and fixed a second time. Per project and in total it
prints: findings, findings of kinds that have a fix (rules with a fix; not EL000, EL001 or a rule
without one), how many of those carry a fix, how many files the fix changed, and the failures of
the guarantees: a changed file that does not compile, a finding that still carries a fix after
fixing (the fix did not remove it), a finding that is new after fixing, a second `--fix` that
changes something. Findings without a fix are listed with their message, to read. The copies are
deleted; nothing is written in DIR.
"""

from __future__ import annotations

import argparse
import json
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


def check_project(name: str, original: Path, fixable: set[str], setup=None, show_diff: bool = False) -> Counter:
    counts: Counter = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(original, project, symlinks=True)
        if setup is not None:
            setup(project)
        before_files = python_files(project)
        before = findings(project)
        diff = evallint(project, "--diff", "-q").stdout if show_diff else ""
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
            compile(after_files[path], str(path), "exec")
        except SyntaxError as error:
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
    if diff:
        print(diff.rstrip("\n"))
    return counts


def strict_setting(project: Path) -> None:
    (project / "pyproject.toml").write_text(STRICT, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("libraries", "fixtures"))
    parser.add_argument("dir", type=Path, nargs="?", help="folder holding the fetched libraries")
    parser.add_argument("--libraries", help="only these libraries (comma-separated names)")
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
                total += check_project(folder.name, copy, fixable, setup, args.diff)
    else:
        if args.dir is None:
            sys.exit("libraries: give the folder that `real_libraries.py fetch` filled")
        only = set(args.libraries.split(",")) if args.libraries else None
        for name, version in libraries():
            if only is None or name in only:
                total += check_project(f"{name}=={version}", project_dir(args.dir.resolve(), name, version), fixable,
                                       show_diff=args.diff)
    share = total["with_fix"] / total["fixable_kind"] if total["fixable_kind"] else 0.0
    print(f"## total: {total['findings']} findings, {total['fixable_kind']} of fixable kinds, "
          f"{total['with_fix']} with a fix ({share:.0%}); {total['files_changed']} files changed; "
          f"not compiling {total['not_compiling']}, fix left {total['fix_left']}, "
          f"new findings {total['new_findings']}, second --fix changed {total['second_fix_changed']}")


if __name__ == "__main__":
    main()
