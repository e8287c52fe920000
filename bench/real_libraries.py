#!/usr/bin/env python3
"""The real-libraries instrument: lint released PyTorch libraries and compare with the judged verdicts.

    python bench/real_libraries.py fetch DIR     # pip download --no-deps each wheel of libraries.txt into DIR
    python bench/real_libraries.py lint DIR      # lint each library as its own project, compare with verdicts.tsv

`lint` prints every finding with its verdict (from bench/verdicts.tsv, keyed by library, path, line and
code), the findings nobody has judged yet, the judged findings that no longer appear, and the counts.
`--write-new FILE` appends the unjudged findings to FILE as TSV rows to fill in. Fetched code stays
in DIR and is never committed.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VERDICTS = BENCH / "verdicts.tsv"
VERDICT_KINDS = ("worth-fixing", "true-but-useless", "wrong")


def libraries() -> list[tuple[str, str]]:
    pins = []
    for line in (BENCH / "libraries.txt").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, version = spec.split("==")
            pins.append((name, version))
    return pins


def project_dir(root: Path, name: str, version: str) -> Path:
    return root / f"{name}-{version}"


def fetch(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, version in libraries():
        target = project_dir(root, name, version)
        if target.is_dir():
            continue
        wheels = root / "_wheels"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
                        "-q", "-d", str(wheels), f"{name}=={version}"], check=True)
        stem = name.replace("-", "_").lower()
        wheel = next(w for w in wheels.glob("*.whl") if w.name.lower().startswith(f"{stem}-{version}"))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(target)
        print(f"fetched {name}=={version}")


def lint_one(directory: Path) -> tuple[list[dict], float]:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "evallint", "check", "--no-cache", "--exit-zero",
                           "--output-format", "json", "."], cwd=directory, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"evallint failed on {directory}: {proc.stderr.strip()}")
    return json.loads(proc.stdout), elapsed


def read_verdicts() -> dict[tuple[str, str, int, str], tuple[str, str]]:
    verdicts = {}
    if VERDICTS.exists():
        with VERDICTS.open() as f:
            for row in csv.DictReader(f, delimiter="\t"):
                key = (row["library"], row["path"], int(row["line"]), row["code"])
                verdicts[key] = (row["verdict"], row["why"])
    return verdicts


def lint(root: Path, write_new: Path | None) -> None:
    verdicts = read_verdicts()
    seen: set[tuple[str, str, int, str]] = set()
    counts: Counter[str] = Counter()
    new_rows = []
    total_files_time = 0.0
    for name, version in libraries():
        directory = project_dir(root, name, version)
        if not directory.is_dir():
            sys.exit(f"{directory} is missing: run `fetch {root}` first")
        findings, elapsed = lint_one(directory)
        total_files_time += elapsed
        print(f"## {name}=={version}: {len(findings)} findings in {elapsed:.1f} s")
        for d in findings:
            key = (name, d["path"], d["line"], d["code"])
            seen.add(key)
            verdict, why = verdicts.get(key, ("UNJUDGED", ""))
            counts[verdict] += 1
            print(f"  [{verdict}] {d['path']}:{d['line']} {d['code']} {d['message'][:160]}")
            if verdict == "UNJUDGED":
                new_rows.append([name, d["path"], str(d["line"]), d["code"], "", d["message"][:200]])
    vanished = sorted(k for k in verdicts if k not in seen and k[0] in dict(libraries()))
    if vanished:
        print("## judged findings that no longer appear")
        for key in vanished:
            print(f"  [{verdicts[key][0]}] {key[0]} {key[1]}:{key[2]} {key[3]}  ({verdicts[key][1]})")
    total = sum(counts.values())
    print(f"## total {total} findings in {total_files_time:.1f} s: "
          + ", ".join(f"{k} {counts[k]}" for k in (*VERDICT_KINDS, "UNJUDGED") if counts[k]))
    if total:
        print(f"## worth fixing: {counts['worth-fixing'] / total:.0%}")
    if write_new and new_rows:
        with write_new.open("a", newline="") as f:
            csv.writer(f, delimiter="\t").writerows(new_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("fetch", "lint"))
    parser.add_argument("dir", type=Path, help="folder holding the fetched libraries")
    parser.add_argument("--write-new", type=Path, help="append unjudged findings to this TSV")
    args = parser.parse_args()
    if args.command == "fetch":
        fetch(args.dir)
    else:
        lint(args.dir.resolve(), args.write_new)


if __name__ == "__main__":
    main()
