"""``gitlab``: a GitLab Code Quality report (the Code Climate issue subset GitLab reads), for
``artifacts: reports: codequality:``. GitLab shows the issues in the merge request and tells the
new ones from those already on the target branch by their ``fingerprint``."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import PurePath

from evallint.reporters.context import ReportContext

FORMAT = "gitlab"

# GitLab's scale is info, minor, major, critical, blocker.
SEVERITIES = {"error": "major", "warning": "minor"}

# Line numbers in messages ("at line 28", "utils.py:40") change whenever lines are added above:
# left out of the fingerprint so that an unchanged finding keeps its identity.
_LINE_NUMBER = re.compile(r"(\bline |\.py:|\.pyi:|\.ipynb:)\d+")


def repository_path(path: str) -> str:
    """``path`` relative to the repository GitLab checked out (``CI_PROJECT_DIR``, else the
    working folder) with forward slashes, as the report's ``location.path`` must be; a file outside
    it keeps the path given."""
    base = os.environ.get("CI_PROJECT_DIR") or os.getcwd()
    try:
        relative = os.path.relpath(os.path.abspath(path), base)
    except ValueError:  # another drive
        relative = os.pardir
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        relative = path
    posix = PurePath(relative).as_posix()
    return posix[2:] if posix.startswith("./") else posix


def _fingerprint(parts: tuple[str, ...], seen: dict[str, int]) -> str:
    """A hash of what identifies the finding (not its line number); a second finding with the same
    parts gets its occurrence number in the hash, so that every fingerprint is unique."""
    key = "\0".join(parts)
    seen[key] = seen.get(key, 0) + 1
    if seen[key] > 1:
        key += f"\0{seen[key]}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def issues(diagnostics: list, context: ReportContext) -> list[dict]:
    seen: dict[str, int] = {}
    result = []
    for d in diagnostics:
        path = repository_path(d.path)
        source = (context.source_line(d.path, d.span.line, d.cell) or "").strip()
        where = f"cell {d.cell}: " if d.cell is not None else ""
        parts = (path, str(d.cell or ""), d.code, _LINE_NUMBER.sub(r"\1#", d.message), source)
        result.append({
            "type": "issue",
            "check_name": d.code,
            "description": f"{where}{d.code} {d.message}",
            "categories": ["Bug Risk"],
            "severity": SEVERITIES.get(d.severity.value, "major"),
            "fingerprint": _fingerprint(parts, seen),
            "location": {"path": path, "lines": {"begin": d.span.line, "end": d.span.end_line}},
        })
    return result


def write(diagnostics: list, context: ReportContext) -> None:
    json.dump(issues(diagnostics, context), context.out, indent=2, ensure_ascii=False)
    context.out.write("\n")
