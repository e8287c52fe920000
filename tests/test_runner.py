"""The runner: result cache (with cross-file dependencies), worker processes, per-file failures
(EL000, EL001) and the textual pre-filter that skips files mentioning nothing relevant."""

from __future__ import annotations

import concurrent.futures
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import evallint.analysis.file_analysis
import evallint.runner
from evallint import __version__
from evallint.cache import CACHE_FOLDER, ResultCache, content_hash
from evallint.config import select_rules
from evallint.frontend.source import SourceModule
from evallint.runner import LintOptions, Target, lint_targets

from cli_snippets import (EL103_AT, EL103_SCRIPT, EL105_SCRIPT, EL106_AT, EL106_SCRIPT, EL201_SCRIPT,
                          TRAIN_EL101_AT, TRAIN_SCRIPT, UNCLOSED_SCRIPT, UTILS_LEAKING, UTILS_RESTORING,
                          findings, run, run_json, write)

DEFAULT_CODES = tuple(rule.code for rule in select_rules(None, (), ()))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def linted(monkeypatch):
    """Records the path of every file the runner lints (cache misses)."""
    calls: list[str] = []
    real = evallint.runner.lint_target

    def recording(target, project, options):
        calls.append(target.path)
        return real(target, project, options)

    monkeypatch.setattr(evallint.runner, "lint_target", recording)
    return calls


def cache_entries(root: Path) -> list[Path]:
    return sorted((root / CACHE_FOLDER / __version__).glob("*/*.json"))


# -- cache -----------------------------------------------------------------------------------

def test_second_run_comes_from_cache(tmp_path, linted):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT, "train.py": TRAIN_SCRIPT,
                     "utils.py": UTILS_LEAKING})
    first, data1 = run_json(".")
    assert first.exit_code == 1
    assert sorted(linted) == ["evaluate.py", "predict.py", "train.py", "utils.py"]
    assert len(cache_entries(tmp_path)) == 4
    assert (tmp_path / CACHE_FOLDER / ".gitignore").read_text(encoding="utf-8").splitlines()[-1] == "*"

    linted.clear()
    second, data2 = run_json(".")
    assert linted == []  # nothing linted again
    assert second.exit_code == 1
    assert data2 == data1
    assert findings(data2) == {("predict.py", *EL103_AT), ("evaluate.py", *EL106_AT),
                               ("train.py", *TRAIN_EL101_AT)}


def test_changed_file_is_linted_again(tmp_path, linted):
    paths = write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT})
    run_json(".")
    paths["evaluate.py"].write_text(EL106_SCRIPT.replace("model.eval\n", "model.eval()\n"), encoding="utf-8")
    linted.clear()
    result, data = run_json(".")
    assert linted == ["evaluate.py"]
    assert findings(data) == {("predict.py", *EL103_AT)}


def test_changed_imported_helper_invalidates_importer(tmp_path, linted):
    paths = write(tmp_path, {"train.py": TRAIN_SCRIPT, "utils.py": UTILS_LEAKING, "notes.py": "print('hi')\n"})
    result, data = run_json("train.py")
    assert findings(data) == {("train.py", *TRAIN_EL101_AT)}
    assert [r["path"] for r in data[0]["related"]] == ["train.py", "utils.py"]

    # A file train.py does not import changes: the cached result stands.
    paths["notes.py"].write_text("print('hello')\n", encoding="utf-8")
    linted.clear()
    _, data = run_json("train.py")
    assert linted == []
    assert findings(data) == {("train.py", *TRAIN_EL101_AT)}

    # utils.evaluate now restores train mode: train.py must be linted again, and is clean.
    paths["utils.py"].write_text(UTILS_RESTORING, encoding="utf-8")
    linted.clear()
    result, data = run_json("train.py")
    assert linted == ["train.py"]
    assert result.exit_code == 0
    assert data == []

    # And back: the finding returns.
    paths["utils.py"].write_text(UTILS_LEAKING, encoding="utf-8")
    _, data = run_json("train.py")
    assert findings(data) == {("train.py", *TRAIN_EL101_AT)}


def test_created_imported_helper_invalidates_importer(tmp_path):
    write(tmp_path, {"train.py": TRAIN_SCRIPT})
    _, data = run_json("train.py")
    assert data == []  # utils.py does not exist yet: nothing known about evaluate()
    write(tmp_path, {"utils.py": UTILS_LEAKING})
    _, fresh = run_json("--no-cache", "train.py")
    assert findings(fresh) == {("train.py", *TRAIN_EL101_AT)}
    _, cached = run_json("train.py")
    assert cached == fresh


def test_cache_from_another_working_folder(tmp_path, monkeypatch):
    write(tmp_path, {"train.py": TRAIN_SCRIPT, "utils.py": UTILS_LEAKING, "sub/README.md": "scripts\n"})
    target = str(tmp_path / "train.py")
    run_json(target)  # fills the cache, from tmp_path
    monkeypatch.chdir(tmp_path / "sub")
    _, fresh = run_json("--no-cache", target)
    _, cached = run_json(target)
    assert cached == fresh


def test_selection_change_does_not_reuse_results(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT})
    run_json(".")
    _, data = run_json("--select", "EL106", ".")
    assert findings(data) == {("evaluate.py", *EL106_AT)}
    _, data = run_json(".")
    assert findings(data) == {("predict.py", *EL103_AT), ("evaluate.py", *EL106_AT)}


def test_test_code_setting_change_does_not_reuse_results(tmp_path):
    write(tmp_path, {"pyproject.toml": "[tool.evallint]\n", "test_predict.py": EL103_SCRIPT})
    _, data = run_json(".")
    assert data == []  # EL103 is off in test code by default
    write(tmp_path, {"pyproject.toml": '[tool.evallint]\ntest-code = "strict"\n'})
    _, data = run_json(".")
    assert findings(data) == {("test_predict.py", *EL103_AT)}


def test_no_cache_writes_nothing(tmp_path, linted):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "train.py": TRAIN_SCRIPT, "utils.py": UTILS_LEAKING})
    result, data = run_json("--no-cache", ".")
    assert result.exit_code == 1 and data
    assert not (tmp_path / CACHE_FOLDER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predict.py", "train.py", "utils.py"]
    # ... and reads nothing: a cache filled before is ignored.
    run_json(".")
    linted.clear()
    run_json("--no-cache", ".")
    assert sorted(linted) == ["predict.py", "train.py", "utils.py"]


def test_cache_is_beside_the_configuration(tmp_path):
    write(tmp_path, {"pyproject.toml": '[tool.evallint]\nextend-select = ["EL002"]\n',
                     "src/pkg/predict.py": EL103_SCRIPT})
    run_json("src/pkg/predict.py")
    assert len(cache_entries(tmp_path)) == 1
    assert not (tmp_path / "src" / "pkg" / CACHE_FOLDER).exists()


# -- worker processes ------------------------------------------------------------------------

class RecordingPool(ProcessPoolExecutor):
    started: list[int] = []

    def __init__(self, max_workers=None, **kwargs):
        RecordingPool.started.append(max_workers)
        super().__init__(max_workers=max_workers, **kwargs)


def test_jobs_2_same_findings_as_jobs_1(tmp_path, monkeypatch):
    files = {"train.py": TRAIN_SCRIPT, "utils.py": UTILS_LEAKING, "broken.py": UNCLOSED_SCRIPT}
    snippets = [EL103_SCRIPT, EL106_SCRIPT, EL105_SCRIPT, EL201_SCRIPT]
    for number in range(12):
        files[f"part{number % 3}/script_{number}.py"] = snippets[number % len(snippets)]
    write(tmp_path, files)
    RecordingPool.started = []
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", RecordingPool)

    one, data1 = run_json("--no-cache", "--jobs", "1", ".")
    assert RecordingPool.started == []
    two, data2 = run_json("--no-cache", "--jobs", "2", ".")
    assert RecordingPool.started == [2]  # worker processes were really used
    assert one.exit_code == two.exit_code == 1
    assert data2 == data1
    assert len(data1) == 12 + 2  # one per snippet, EL101 in train.py, EL001 in broken.py
    assert {d["code"] for d in data1} == {"EL001", "EL101", "EL103", "EL105", "EL106", "EL201"}


# -- per-file failures -----------------------------------------------------------------------

def _options(root: Path) -> LintOptions:
    return LintOptions(codes=DEFAULT_CODES, config_root=root)


def _targets(root: Path, *names: str) -> list[Target]:
    return [Target(name, root / name, root=root) for name in names]


def test_internal_error_is_el000_on_that_file_only(tmp_path, monkeypatch):
    write(tmp_path, {"boom.py": EL106_SCRIPT.replace("import torch\n", "import torch  # noqa\n"),
                     "predict.py": EL103_SCRIPT, "train.py": TRAIN_SCRIPT, "utils.py": UTILS_LEAKING})
    real = evallint.analysis.file_analysis.FileAnalysis

    def exploding(context):
        if context.source.path == "boom.py":
            raise KeyError("mode-of-unknown-node")
        return real(context)

    monkeypatch.setattr(evallint.analysis.file_analysis, "FileAnalysis", exploding)
    cache = ResultCache(tmp_path, "fingerprint")
    found = lint_targets(_targets(tmp_path, "boom.py", "predict.py", "train.py"), _options(tmp_path),
                         jobs=1, cache=cache)
    boom = [d for d in found if d.path == "boom.py"]
    assert [(d.code, d.name, d.span.line) for d in boom] == [("EL000", "internal-error", 1)]
    assert "KeyError" in boom[0].message and "mode-of-unknown-node" in boom[0].message
    # The other files were linted as usual (even train.py, which imports utils.py).
    assert {(d.path, d.code, d.span.line, d.span.column) for d in found if d.path != "boom.py"} == {
        ("predict.py", *EL103_AT), ("train.py", *TRAIN_EL101_AT)}
    # A crash is not cached; the other results are.
    root = str(tmp_path.resolve())
    assert cache.load("boom.py", content_hash((tmp_path / "boom.py").read_bytes()), root=root) is None
    assert cache.load("predict.py", content_hash((tmp_path / "predict.py").read_bytes()), root=root) is not None


def test_internal_error_from_the_command_line(tmp_path, monkeypatch):
    write(tmp_path, {"boom.py": EL106_SCRIPT, "predict.py": EL103_SCRIPT})
    real = evallint.analysis.file_analysis.FileAnalysis

    def exploding(context):
        if context.source.path.endswith("boom.py"):
            raise RecursionError("maximum recursion depth exceeded")
        return real(context)

    monkeypatch.setattr(evallint.analysis.file_analysis, "FileAnalysis", exploding)
    result, data = run_json("--no-cache", "--jobs", "1", "--ignore", "EL0", "boom.py", "predict.py")
    assert result.exit_code == 1
    assert {(d["path"], d["code"]) for d in data} == {("boom.py", "EL000"), ("predict.py", "EL103")}
    assert "RecursionError" in next(d["message"] for d in data if d["code"] == "EL000")


def test_non_utf8_file_is_el001(tmp_path):
    (tmp_path / "legacy.py").write_bytes(
        "import torch\n# Modell f\u00fcr die Auswertung\nmodel = torch.nn.Linear(2, 2)\n".encode("latin-1"))
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    found = lint_targets(_targets(tmp_path, "legacy.py", "predict.py"), _options(tmp_path), jobs=1)
    legacy = [d for d in found if d.path == "legacy.py"]
    assert [(d.code, d.span.line) for d in legacy] == [("EL001", 1)]
    assert "UTF-8" in legacy[0].message
    assert ("predict.py", "EL103") in {(d.path, d.code) for d in found}


def test_unreadable_path_is_el001(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    found = lint_targets(_targets(tmp_path, "missing.py", "predict.py"), _options(tmp_path), jobs=1)
    assert [(d.path, d.code) for d in found] == [("missing.py", "EL001"), ("predict.py", "EL103")]


def test_irrelevant_file_is_not_parsed(tmp_path, monkeypatch):
    write(tmp_path, {
        "csv_stats.py": ("import csv\nimport statistics\n\n\ndef column_mean(path, column):\n"
                         "    with open(path) as handle:\n"
                         "        return statistics.mean(float(row[column]) for row in csv.DictReader(handle))\n"),
        "predict.py": EL103_SCRIPT,
    })
    parsed: list[str] = []
    real = SourceModule.parse.__func__

    def recording(cls, path, text):
        parsed.append(path)
        return real(cls, path, text)

    monkeypatch.setattr(SourceModule, "parse", classmethod(recording))
    found = lint_targets(_targets(tmp_path, "csv_stats.py", "predict.py"), _options(tmp_path), jobs=1)
    assert parsed == ["predict.py"]
    assert [(d.path, d.code) for d in found] == [("predict.py", "EL103")]


def test_results_sorted_and_deterministic(tmp_path):
    write(tmp_path, {"b.py": EL103_SCRIPT, "a.py": EL106_SCRIPT, "c/train.py": TRAIN_SCRIPT,
                     "c/utils.py": UTILS_LEAKING})
    targets = _targets(tmp_path, "c/train.py", "b.py", "a.py")
    found = lint_targets(targets, _options(tmp_path), jobs=1)
    assert [(d.path, d.code) for d in found] == [("a.py", "EL106"), ("b.py", "EL103"), ("c/train.py", "EL101")]
    assert lint_targets(list(reversed(targets)), _options(tmp_path), jobs=1) == found


def test_a_file_without_anchors_is_linted_when_it_imports_a_helper_that_matters(tmp_path, monkeypatch):
    """The driver names no mode, gradient or loading itself; ``utils.evaluate`` switches to eval
    mode, so the driver is parsed. A file importing only helpers that cannot matter (``fmt``) is not."""
    write(tmp_path, {
        "utils.py": UTILS_LEAKING,
        "fmt.py": "def percent(x):\n    return f'{100 * x:.1f} %'\n",
        "driver.py": "from fmt import percent\nfrom utils import evaluate\n\n\ndef report(net, data):\n"
                     "    print(percent(evaluate(net, data)))\n",
        "table.py": "from fmt import percent\n\n\ndef row(name, x):\n    return f'{name}: {percent(x)}'\n",
    })
    parsed: list[str] = []
    real = SourceModule.parse.__func__

    def recording(cls, path, text):
        parsed.append(Path(path).name)
        return real(cls, path, text)

    monkeypatch.setattr(SourceModule, "parse", classmethod(recording))
    lint_targets(_targets(tmp_path, "driver.py", "table.py"), _options(tmp_path), jobs=1)
    assert "driver.py" in parsed and "table.py" not in parsed


def test_a_file_over_the_time_limit_is_el000_and_the_run_goes_on(tmp_path, monkeypatch):
    write(tmp_path, {"slow.py": EL106_SCRIPT, "predict.py": EL103_SCRIPT})
    real = evallint.runner.lint_source

    def slow(path, *args, **kwargs):
        if path == "slow.py":
            while True:  # CPU time, which the limit counts
                pass
        return real(path, *args, **kwargs)

    monkeypatch.setattr(evallint.runner, "lint_source", slow)
    options = LintOptions(codes=DEFAULT_CODES, config_root=tmp_path, time_limit=0.2)
    found = lint_targets(_targets(tmp_path, "slow.py", "predict.py"), options, jobs=1)
    assert [(d.path, d.code) for d in found] == [("predict.py", "EL103"), ("slow.py", "EL000")]
    assert "time limit of 0.2 s" in found[1].message


def test_file_time_limit_option_and_configuration(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result, data = run_json("--no-cache", "--file-time-limit", "0", "predict.py")
    assert findings(data) == {("predict.py", *EL103_AT)}
    write(tmp_path, {"pyproject.toml": "[tool.evallint]\nfile-time-limit = 'soon'\n"})
    result = run("check", "--no-cache", "predict.py")
    assert result.exit_code == 2 and "file-time-limit" in result.stderr


def test_past_the_memory_budget_parsed_modules_are_dropped_and_findings_stay(tmp_path, monkeypatch):
    write(tmp_path, {"train.py": TRAIN_SCRIPT, "utils.py": UTILS_LEAKING, "predict.py": EL103_SCRIPT,
                     "again.py": TRAIN_SCRIPT})
    targets = _targets(tmp_path, "train.py", "predict.py", "again.py")
    kept = lint_targets(targets, _options(tmp_path), jobs=1)
    dropped: list[int] = []
    real_clear = dict.clear

    class Projects(dict):
        def clear(self):
            dropped.append(len(self))
            real_clear(self)

    megabytes = iter([400, 350, 410, 430, 360])  # after each file, and after each drop
    monkeypatch.setattr(evallint.runner, "_resident_bytes", lambda: next(megabytes) * 2**20)
    monkeypatch.setattr(evallint.runner, "_memory_limit", [evallint.runner.MEMORY_BUDGET])
    monkeypatch.setattr(evallint.runner, "_run", _serial_run_with(Projects))
    assert lint_targets(targets, _options(tmp_path), jobs=1) == kept
    # Past the 250 MB budget after train.py: dropped. Freed memory is reused, so the next drop waits until
    # the process grows a quarter of the budget past the 350 MB it kept: after again.py, not predict.py.
    assert dropped == [1, 1]


def _serial_run_with(projects_type):
    def run(pending, options, jobs, on_progress):
        projects = projects_type()
        for target in pending:
            yield evallint.runner._lint_within_budget(target, projects, options)
    return run


def test_a_process_keeps_only_the_current_roots_project(tmp_path, monkeypatch):
    """Files come root by root: once a process moves on, the earlier root's parsed modules go."""
    for project in ("a", "b"):
        write(tmp_path, {f"{project}/setup.py": "", f"{project}/train.py": TRAIN_SCRIPT,
                         f"{project}/utils.py": UTILS_LEAKING, f"{project}/predict.py": EL103_SCRIPT})
    targets = [Target(f"{project}/{name}", tmp_path / project / name)
               for name in ("train.py", "predict.py") for project in ("b", "a")]  # roots interleaved
    held: list[list[str]] = []
    projects_seen: dict = {}

    def run(pending, options, jobs, on_progress):  # the serial run, noting the projects kept
        for target in sorted(pending, key=evallint.runner._root_order):
            yield evallint.runner._lint_within_budget(target, projects_seen, options)
            held.append(sorted(root.name for root in projects_seen))

    monkeypatch.setattr(evallint.runner, "_run", run)
    found = lint_targets(targets, _options(tmp_path), jobs=1)
    assert held == [["a"], ["a"], ["b"], ["b"]]
    assert {(d.path, d.code) for d in found} == {("a/train.py", "EL101"), ("b/train.py", "EL101"),
                                                 ("a/predict.py", "EL103"), ("b/predict.py", "EL103")}


def test_a_train_override_is_a_reason_to_parse(tmp_path, monkeypatch):
    """A ``train(self, mode)`` override that mentions no other anchor (it only returns, or does
    nothing) still reaches EL109; a ``train`` whose first parameter is not a mode does not make a
    file worth parsing."""
    write(tmp_path, {
        "frozen.py": ("from torch import nn\n\n\nclass Frozen(nn.Module):\n"
                      "    def train(self, mode: bool = True):\n        pass\n"),
        "facade.py": ("from torch import nn\n\n\nclass Facade(nn.Module):\n"
                      "    def train(self, trainer=None, **kwargs):\n        return trainer\n"),
    })
    parsed: list[str] = []
    real = SourceModule.parse.__func__

    def recording(cls, path, text):
        parsed.append(path)
        return real(cls, path, text)

    monkeypatch.setattr(SourceModule, "parse", classmethod(recording))
    found = lint_targets(_targets(tmp_path, "facade.py", "frozen.py"), _options(tmp_path), jobs=1)
    assert parsed == ["frozen.py"]
    assert [(d.path, d.code, d.span.line) for d in found] == [("frozen.py", "EL109", 5)]
