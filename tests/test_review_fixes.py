"""Regressions from the code review: early exits from with blocks, damaged cache entries,
noqa codes of rules not selected, IPython help lines, and a crash exiting with 2."""

import json

from evallint import cli
from evallint.cache import ResultCache

from cli_snippets import run, run_json, write
from helpers import found, lint_snippet

EARLY_RETURN = """\
import contextlib

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def predict(model, x):
    with eval_mode(model), torch.no_grad():
        return model(x)


model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()
for epoch in range(3):
    loss = model(torch.randn(2, 4)).sum()
    loss.backward()
    opt.step()
    predict(model, torch.randn(2, 4))
"""


def test_returning_from_a_with_block_still_runs_the_context_manager_exit(tmp_path):
    assert found(lint_snippet(tmp_path, EARLY_RETURN)) == set()
    leaking = EARLY_RETURN.replace("        model.train(was_training)\n", "        pass\n")
    assert ("EL101", 24) in found(lint_snippet(tmp_path, leaking))


def test_damaged_cache_entries_are_misses(tmp_path):
    cache = ResultCache(tmp_path, "fingerprint")
    cache.store("a.py", "digest", [], {})
    entry = next((tmp_path / ".evallint_cache").rglob("*.json"))
    for damaged in ('{"diagnostics": []}', "[]", '{"dependencies": 1, "diagnostics": 2}'):
        entry.write_text(damaged)
        assert cache.load("a.py", "digest") is None


NOQA_OTHER_RULE = """\
import torch
import torchvision

model = torchvision.models.resnet18()
with torch.no_grad():
    out = model(torch.randn(1, 3, 224, 224))  # noqa: EL103
"""


def test_noqa_for_a_rule_not_selected_is_not_reported_unused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, {"predict.py": NOQA_OTHER_RULE})
    _, data = run_json("--no-cache", "--select", "EL2,EL002", "predict.py")
    assert data == []
    _, data = run_json("--no-cache", "--select", "EL103,EL002", "predict.py")
    assert data == []  # EL103 is selected and the noqa suppresses it: used


def test_unused_noqa_fix_removes_the_directive_and_its_spaces(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    clean = NOQA_OTHER_RULE.replace("with torch.no_grad():", "model.eval()\nwith torch.no_grad():")
    write(tmp_path, {"predict.py": clean})
    run("check", "--no-cache", "--extend-select", "EL002", "--fix", "predict.py")
    assert (tmp_path / "predict.py").read_text() == clean.replace("  # noqa: EL103", "")


def test_question_mark_in_a_comment_is_not_ipython_help(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells = [["import torch\n", "import torchvision\n", "torchvision.models.resnet18?\n"],
             ["model = torchvision.models.resnet18()\n", "model.eval()  # needed?\n",
              "with torch.no_grad():\n", "    out = model(torch.randn(1, 3, 224,\n",
              "                            224))  # right size?\n"]]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                           "source": cell} for cell in cells]}
    write(tmp_path, {"nb.ipynb": json.dumps(notebook)})
    result, data = run_json("--no-cache", "nb.ipynb")
    assert data == [] and result.exit_code == 0


def test_an_unexpected_failure_of_the_whole_run_exits_2(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "discover", broken)
    monkeypatch.setattr("sys.argv", ["evallint", "check", str(tmp_path)])
    exits = []
    monkeypatch.setattr("sys.exit", lambda code=0: exits.append(code))
    cli.run()
    assert exits[-1] == 2


HELPER_SWITCHES = """\
import torch
from torch import nn


def to_eval(m):
    m.eval()


def to_train(m):
    m.train()


def fit(model, loader, do_eval):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in loader:
        if do_eval:
            to_eval(model)
        stats = model(x).mean()
        if do_eval:
            to_train(model)
        loss = model(x).sum()
        loss.backward()
        opt.step()
"""


def test_conditions_guarding_project_calls_are_correlated(tmp_path):
    assert found(lint_snippet(tmp_path, HELPER_SWITCHES)) == set()


CLASSMETHOD_LOADER = """\
import torch
from torch import nn


class Adapter(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    @classmethod
    def attach(cls, model, path):
        wrapper = cls(model)
        wrapper.load_state_dict(torch.load(path))
        return wrapper

    def forward(self, x):
        return self.model(x)


mlp = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1))
adapter = Adapter.attach(mlp, "adapter.pt")
"""


def test_classmethod_called_on_the_class_binds_cls_itself(tmp_path):
    # `mlp` is the `model` argument, not `cls` (whose call `cls(model)` builds the wrapper).
    assert found(lint_snippet(tmp_path, CLASSMETHOD_LOADER)) == set()


def test_shell_escape_continued_with_backslash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cell = ["! python prepare.py --data_dir data \\\n", "        --split train \\\n",
            "        --out data\n", "import torch\n"]
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                "cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
                           "source": cell}]}
    write(tmp_path, {"prep.ipynb": json.dumps(notebook)})
    result, data = run_json("--no-cache", "prep.ipynb")
    assert data == [] and result.exit_code == 0
