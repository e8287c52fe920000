"""Start-up: a run that analyses nothing (a clean file, cache hits) imports neither LibCST nor the
analysis nor the rule classes. Each case runs the command in a fresh interpreter and lists what
it imported; no timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cli_snippets import EL103_SCRIPT, write

# A file the text screen rejects: it mentions nothing any rule reacts to.
PLAIN_SCRIPT = """\
import csv


def count_rows(path):
    with open(path) as handle:
        return sum(1 for _ in csv.reader(handle))
"""

_RUN = """\
import json, sys
from evallint.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
    code = 0
except SystemExit as stop:
    code = stop.code
heavy = sorted(name for name in sys.modules
               if name.split(".")[0] in ("libcst", "multiprocessing", "pathspec", "rich")
               or name.startswith(("evallint.analysis.file_analysis", "evallint.rules.el")))
print(json.dumps({"exit": code, "imported": heavy}))
"""


def _check(folder: Path, *args: str) -> tuple[int, list[str], str]:
    """Exit code, heavy modules imported, and output of ``evallint check ARGS`` in ``folder``."""
    proc = subprocess.run([sys.executable, "-c", _RUN, "check", *args], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    *output, last = proc.stdout.splitlines()
    result = json.loads(last)
    return result["exit"], result["imported"], "\n".join(output)


def _project(tmp_path: Path) -> Path:
    write(tmp_path, {"pyproject.toml": "[tool.evallint]\n", "plain.py": PLAIN_SCRIPT,
                     "predict.py": EL103_SCRIPT})
    return tmp_path


def test_a_clean_file_is_linted_without_libcst(tmp_path):
    code, imported, output = _check(_project(tmp_path), "--no-cache", "plain.py")
    assert code == 0 and "All checks passed!" in output
    assert "libcst" not in imported
    # Neither the analysis, nor the rule classes, nor what only folder walks, parallel runs,
    # other output formats, `rule`/`rules` or a progress bar need.
    assert [name for name in imported if not name.startswith("rich")] == []
    assert not {"rich.markdown", "rich.progress", "rich.table"} & set(imported)


def test_concise_output_needs_no_rich(tmp_path):
    code, imported, output = _check(_project(tmp_path), "--no-cache", "--output-format", "concise",
                                    "plain.py")
    assert (code, imported, output) == (0, [], "")


def test_a_cache_hit_is_reported_without_libcst(tmp_path):
    folder = _project(tmp_path)
    code, imported, cold = _check(folder, "--output-format", "concise", "predict.py")
    assert code == 1 and "libcst" in imported and "predict.py:6:11: EL103" in cold
    code, imported, warm = _check(folder, "--output-format", "concise", "predict.py")
    assert (code, imported, warm) == (1, [], cold)
