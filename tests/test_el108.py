"""EL108 (layer-ignores-model-mode): signatures, what runs only while training, the fix, the
messages, and the text screen that decides whether a file is parsed for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from evallint.frontend.source import SourceModule
from evallint.frontend.text import may_ignore_model_mode
from evallint.runner import LintOptions, Target, lint_targets

from cli_snippets import run, run_json, write
from helpers import lint_snippet

HEADER = """\
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.p = 0.2

"""


def el108(tmp_path: Path, body: str, header: str = HEADER) -> list[tuple[int, str]]:
    """(line, message) of each EL108 finding in ``header + body``."""
    return [(d.span.line, d.message) for d in lint_snippet(tmp_path, header + body) if d.code == "EL108"]


def lines(tmp_path: Path, body: str, header: str = HEADER) -> list[int]:
    offset = header.count("\n")
    return [line - offset for line, _ in el108(tmp_path, body, header)]


# -- functional layers: signatures ------------------------------------------------------------

@pytest.mark.parametrize("call, flagged", [
    ("F.dropout(x, self.p)", True),
    ("F.dropout(x)", True),
    ("F.dropout(x, p=self.p, inplace=False)", True),
    ("F.dropout1d(x, self.p)", True),
    ("F.dropout3d(x, self.p)", True),
    ("F.feature_alpha_dropout(x, self.p)", True),
    ("F.dropout(x, self.p, self.training)", False),  # positional training
    ("F.dropout(x, self.p, training=self.training and self.p > 0)", False),
    ("F.dropout(x, self.p, training=False)", False),  # explicit: off
    ("F.dropout(x, self.p, training=True)", False),  # explicit: Monte Carlo dropout
    ("F.dropout(x, p=0)", False),
    ("F.dropout(x, 0.0)", False),
    ("F.dropout(*args)", False),  # may hold training
    ("F.dropout(x, **options)", False),
    ("torch.dropout(x, self.p, self.training)", False),  # ``train`` is required
    ("torch.feature_dropout(x, self.p, True)", False),
    ("F.batch_norm(x, self.rm, self.rv)", True),
    ("F.batch_norm(x, self.rm, self.rv, self.w, self.b, self.training)", False),  # position 5
    ("F.batch_norm(x, self.rm, self.rv, training=True, momentum=0.0)", False),
    ("F.batch_norm(x, None, None, self.w, self.b)", False),  # batch statistics only
    ("F.batch_norm(x, running_mean=None, running_var=None)", False),
    ("F.layer_norm(x, x.shape[-1:])", False),
])
def test_functional_signatures(tmp_path, call, flagged):
    body = f"    def forward(self, x, *args, **options):\n        return self.fc({call})\n"
    assert lines(tmp_path, body) == ([2] if flagged else [])


@pytest.mark.parametrize("header", [
    "import torch\nimport torch.nn as nn\n",
    "import torch\nfrom torch import nn\nimport torch.nn.functional as nnf\n",
    "import torch\nfrom torch import nn\nfrom torch.nn import functional as fun\n",
    "import torch\nfrom torch import nn\nfrom torch.nn.functional import dropout as drop\n",
])
def test_every_spelling_of_torch_nn_functional(tmp_path, header):
    call = {"nnf": "nnf.dropout(x, 0.5)", "fun": "fun.dropout(x, 0.5)", "drop": "drop(x, 0.5)"}
    spelled = next((c for alias, c in call.items() if f" {alias}\n" in header), "nn.functional.dropout(x, 0.5)")
    source = header + f"\n\nclass Net(nn.Module):\n    def forward(self, x):\n        return {spelled}\n"
    assert [line for line, _ in el108(tmp_path, source, header="")] == [source.count("\n")]
    assert may_ignore_model_mode(source)


def test_messages_name_the_call_its_consequence_and_the_fix(tmp_path):
    body = ("    def forward(self, x):\n"
            "        x = F.dropout(x, 0.5)\n"
            "        x = F.alpha_dropout(x, 0.1)\n"
            "        return F.batch_norm(x, self.rm, self.rv)\n")
    messages = [message for _, message in el108(tmp_path, body)]
    assert messages == [
        "`F.dropout(x, 0.5)` still drops activations after `model.eval()`: `F.dropout` defaults to "
        "`training=True`; pass `training=self.training`",
        "`F.alpha_dropout(x, 0.1)` never drops activations, not even in train mode: "
        "`F.alpha_dropout` defaults to `training=False`; pass `training=self.training`",
        "`F.batch_norm(x, self.rm, self.rv)` normalizes with the running statistics in train mode "
        "too, and never updates them: `F.batch_norm` defaults to `training=False`; pass "
        "`training=self.training`",
    ]


# -- where: nn.Module methods only, not what runs only while training ------------------------

def test_only_in_methods_of_modules(tmp_path):
    source = HEADER + (
        "    def forward(self, x):\n"
        "        return F.dropout(x, 0.5)\n"  # line 13
        "\n"
        "    def _drop(self, x):\n"
        "        def inner(y):\n"
        "            return F.dropout(y, 0.5)\n"  # line 17: a closure inside a method
        "        return inner(x)\n"
        "\n"
        "\n"
        "def helper(x):\n"
        "    return F.dropout(x, 0.5)\n"  # a plain function
        "\n"
        "\n"
        "class Augment:\n"
        "    def __call__(self, x):\n"
        "        return F.dropout(x, 0.5)\n"  # not a module
        "\n"
        "\n"
        "class Unknown(SomeBase):\n"
        "    def forward(self, x):\n"
        "        return F.dropout(x, 0.5)\n"  # an unknown base: maybe not a module
        "\n"
        "\n"
        "class Child(Net):\n"
        "    def forward(self, x):\n"
        "        return F.dropout(x, 0.5)\n"  # line 37: a module through a project base
        "\n"
        "\n"
        "y = F.dropout(torch.ones(3), 0.5)\n"  # a script
    )
    assert [line for line, _ in el108(tmp_path, source, header="")] == [13, 17, 37]


@pytest.mark.parametrize("body", [
    "        if self.training:\n            x = F.dropout(x, 0.5)\n        return x\n",
    "        if not self.training:\n            return x\n        return F.dropout(x, 0.5)\n",
    "        if self.training is False:\n            return x\n        return F.dropout(x, 0.5)\n",
    "        if self.p > 0 and self.training:\n            x = F.dropout(x, self.p)\n        return x\n",
    "        while self.training:\n            x = F.dropout(x, 0.5)\n            break\n        return x\n",
    "        return F.dropout(x, 0.5) if self.training else x\n",
    "        return x if not self.training else F.dropout(x, 0.5)\n",
    "        return self.training and F.dropout(x, 0.5)\n",
    "        if is_training:\n            x = F.dropout(x, 0.5)\n        return x\n",
    "        if not deterministic:\n            x = F.dropout(x, 0.5)\n        return x\n",
    "        return x if self.is_eval else F.dropout(x, 0.5)\n",
])
def test_quiet_where_only_training_runs_it(tmp_path, body):
    assert lines(tmp_path, "    def forward(self, x, is_training=False, deterministic=True):\n" + body) == []


@pytest.mark.parametrize("body", [
    "        if self.training or self.p:\n            x = F.dropout(x, 0.5)\n        return x\n",
    "        if not self.training:\n            x = F.dropout(x, 0.5)\n        return x\n",
    "        return x if self.training else F.dropout(x, 0.5)\n",
    "        return self.training or F.dropout(x, 0.5)\n",
    "        if deterministic:\n            x = F.dropout(x, 0.5)\n        return x\n",
    "        if mask is not None:\n            x = F.dropout(x, 0.5)\n        return x\n",
])
def test_flagged_where_eval_mode_runs_it(tmp_path, body):
    assert len(lines(tmp_path, "    def forward(self, x, mask=None, deterministic=True):\n" + body)) == 1


@pytest.mark.parametrize("name", ["forward_train", "training_step", "_train_forward", "mc_forward",
                                  "sample_monte_carlo", "predict_uncertainty"])
def test_quiet_in_methods_named_for_training_or_mc_dropout(tmp_path, name):
    assert lines(tmp_path, f"    def {name}(self, x):\n        return F.dropout(x, 0.5)\n") == []


# -- modules built inside forward -------------------------------------------------------------

@pytest.mark.parametrize("body, flagged", [
    ("        return nn.Dropout(0.5)(x)\n", True),
    ("        return nn.Dropout2d()(x)\n", True),
    ("        return nn.AlphaDropout(p=0.1)(x)\n", True),
    ("        return nn.BatchNorm1d(8).to(x.device)(x)\n", True),
    ("        return nn.SyncBatchNorm(8)(x)\n", True),
    ("        return nn.InstanceNorm1d(8, track_running_stats=True)(x)\n", True),
    ("        return nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1))(x)\n", True),
    ("        norm = nn.BatchNorm1d(8)\n        return norm(x)\n", True),
    ("        norm: nn.Module = nn.BatchNorm1d(8)\n        return norm(x)\n", True),
    ("        return nn.Dropout(0.0)(x)\n", False),
    ("        return nn.Dropout(p=0)(x)\n", False),
    ("        return nn.BatchNorm1d(8, track_running_stats=False)(x)\n", False),
    ("        return nn.InstanceNorm1d(8)(x)\n", False),
    ("        return nn.Linear(8, 8)(x)\n", False),  # mode-free (EL108 is about modes)
    ("        return nn.Dropout(0.5).train(self.training)(x)\n", False),
    ("        return nn.Dropout(0.5).eval()(x)\n", False),
    ("        drop = nn.Dropout(0.5)\n        drop.train(self.training)\n        return drop(x)\n", False),
    ("        self.norm = nn.BatchNorm1d(8)\n        return self.norm(x)\n", False),
    ("        norm = nn.BatchNorm1d(8)\n        self.add_module('norm', norm)\n        return norm(x)\n", False),
    ("        norm = nn.BatchNorm1d(8)\n        self.layers.append(norm)\n        return norm(x)\n", False),
    ("        norm = nn.BatchNorm1d(8)\n        return self.apply_layer(norm, x)\n", False),
    ("        norm = self.norm if x.dim() == 2 else nn.BatchNorm1d(8)\n        return norm(x)\n", False),
    ("        if self.training:\n            x = nn.Dropout(0.5)(x)\n        return x\n", False),
    ("        return nn.Dropout(0.5)(x) if self.training else x\n", False),
    ("        return NormLayer(8)(x)\n", False),  # unknown class
    ("        return norm_layer(8)(x)\n", False),  # a class from a parameter
])
def test_modules_built_inside_forward(tmp_path, body, flagged):
    source = "    def forward(self, x, norm_layer=None):\n" + body
    assert bool(lines(tmp_path, source)) is flagged


def test_project_modules_built_inside_forward(tmp_path):
    header = HEADER.replace("class Net", (
        "class Flip(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x.flip(-1) if self.training else x\n"
        "\n"
        "\n"
        "class Block(nn.Module):\n"
        "    def __init__(self, dim):\n"
        "        super().__init__()\n"
        "        self.drop = nn.Dropout(0.1)\n"
        "\n"
        "\n"
        "class Plain(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x * 2\n"
        "\n"
        "\n"
        "class Net"))
    body = ("    def forward(self, x):\n"
            "        x = Flip()(x)\n"  # 2: reads self.training
            "        x = Block(8)(x)\n"  # 3: holds a Dropout
            "        x = Plain()(x)\n"
            "        return self.helper(x)\n"
            "\n"
            "    def helper(self, x):\n"
            "        block = Block(8)\n"  # 8: in a method forward calls
            "        return block(x)\n"
            "\n"
            "    def unused(self, x):\n"
            "        return Block(8)(x)\n")  # not called from forward
    found = el108(tmp_path, body, header)
    offset = header.count("\n")
    assert [line - offset for line, _ in found] == [2, 3, 8]
    assert "its `self.training` stays True" in found[0][1]
    assert "built and called inside `helper` (which `forward` calls on every step)" in found[2][1]
    assert "`self.block = ...`" in found[2][1]


def test_built_layer_message(tmp_path):
    (_, message), = el108(tmp_path, "    def forward(self, x):\n        return nn.Dropout(0.5)(x)\n")
    assert message == (
        "`nn.Dropout(0.5)` is built and called inside `forward`: not a registered submodule, "
        "`model.eval()` never reaches it, so it keeps dropping activations (a new one, in train "
        "mode, on every call); build it once in `__init__` (`self.dropout = ...`) and call that")


# -- the fix ------------------------------------------------------------------------------------

SCRIPT = HEADER + """\
    def forward(self, x):
        x = F.dropout(x, 0.5)
        x = F.dropout(
            x,
            p=self.p,
        )
        return self.fc(F.batch_norm(x, self.rm, self.rv, self.w, self.b))

    @staticmethod
    def noise(x):
        return F.dropout(x, 0.1)
"""
FIXED = SCRIPT.replace("F.dropout(x, 0.5)", "F.dropout(x, 0.5, training=self.training)").replace(
    "            p=self.p,\n", "            p=self.p,\n            training=self.training,\n").replace(
    "self.w, self.b)", "self.w, self.b, training=self.training)")


def test_fix_passes_training_only_with_unsafe_fixes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, {"net.py": SCRIPT})["net.py"]
    assert run("check", "--no-cache", "--select", "EL108", "--fix", "net.py").exit_code == 1
    assert path.read_text(encoding="utf-8") == SCRIPT
    result = run("check", "--no-cache", "--select", "EL108", "--fix", "--unsafe-fixes", "net.py")
    assert path.read_text(encoding="utf-8") == FIXED
    compile(FIXED, "net.py", "exec")
    assert result.exit_code == 1  # the static method has no ``self``: no fix there
    again, data = run_json("--no-cache", "--select", "EL108", "net.py")
    assert [(d["line"], d["fix"]) for d in data] == [(FIXED.count("\n") - 0, None)]
    second = run("check", "--no-cache", "--select", "EL108", "--fix", "--unsafe-fixes", "net.py")
    assert second.exit_code == 1 and path.read_text(encoding="utf-8") == FIXED


def test_no_fix_where_self_is_not_the_module(tmp_path):
    body = ("    def forward(self, x):\n"
            "        def inner(self, y):\n"
            "            return F.dropout(y, 0.5)\n"
            "        return inner(None, x)\n")
    found = [d for d in lint_snippet(tmp_path, HEADER + body) if d.code == "EL108"]
    assert len(found) == 1 and found[0].fix is None
    assert "pass the module's mode as `training=` (`self.training`)" in found[0].message


# -- the text screen ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, matters", [
    ("y = F.dropout(x, 0.5)\n", True),
    ("y = F.alpha_dropout(x)\n", True),
    ("y = torch.nn.functional.dropout2d(x, p)\n", True),
    ("y = F.batch_norm(x, rm, rv,\n    w, b)\n", True),
    ("import torch.nn.functional as nnf\ny = nnf.dropout(x, p)\n", True),
    ("from torch.nn.functional import dropout\ny = dropout(x, p)\n", True),
    ("y = F.dropout(x, 0.5, training=self.training)\n", False),
    ("y = F.dropout(\n    x, self.p, self.training,\n)\n", False),
    ("y = F.dropout(x, 0.5, is_train)\n", False),
    ("y = self.dropout(x)\ny = dropout(x)\n", False),
    ("def dropout(x, p):\n    return x\n", False),
    ("y = nnf.dropout(x, p)\n", False),  # not known to be torch.nn.functional
    ("class A:\n    def __init__(self):\n        self.d = nn.Dropout(0.1)\n"
     "        self.n = nn.BatchNorm2d(3)\n\n    def forward(self, x):\n        return self.n(self.d(x))\n",
     False),
    ("class A:\n    def forward(self, x):\n        return nn.Dropout(0.1)(x)\n", True),
    ("class A:\n    def forward(self, x):\n        def f(y):\n            return y\n"
     "        n = nn.BatchNorm1d(3)\n        return n(f(x))\n", True),
    ("class A:\n    def forward(self, x):\n        return x\n\n    def build(self):\n"
     "        return nn.Dropout(0.1)\n", False),
    ("class A:\n    @property\n    def forward_hint(self):\n        return 1\n\n"
     "    def forward(self, x):\n        return x\n\nDROP = nn.Dropout(0.1)\n", False),
])
def test_screen(text, matters):
    assert may_ignore_model_mode(text) is matters


def test_a_file_whose_only_anchor_is_a_functional_dropout_is_parsed(tmp_path, monkeypatch):
    """Nothing else in these files mentions a mode: only the first can lead to an EL108 finding."""
    write(tmp_path, {
        "head.py": "import torch.nn.functional as F\nfrom torch import nn\n\n\nclass Head(nn.Module):\n"
                   "    def forward(self, x):\n        return F.dropout(x, 0.5)\n",
        "good.py": "import torch.nn.functional as F\nfrom torch import nn\n\n\nclass Head(nn.Module):\n"
                   "    def __init__(self):\n        super().__init__()\n        self.drop = nn.Dropout(0.5)\n\n"
                   "    def forward(self, x):\n        return F.relu(self.drop(x))\n",
    })
    parsed: list[str] = []
    real = SourceModule.parse.__func__

    def recording(cls, path, text):
        parsed.append(Path(path).name)
        return real(cls, path, text)

    monkeypatch.setattr(SourceModule, "parse", classmethod(recording))
    targets = [Target(str(tmp_path / name), tmp_path / name, root=tmp_path) for name in ("head.py", "good.py")]
    found = lint_targets(targets, LintOptions(codes=("EL108",)), jobs=1)
    assert parsed == ["head.py"]
    assert [(Path(d.path).name, d.code, d.span.line) for d in found] == [("head.py", "EL108", 7)]


def test_a_project_module_imported_from_another_file(tmp_path):
    write(tmp_path, {
        "pyproject.toml": "",
        "layers.py": "import torch\nfrom torch import nn\n\n\nclass DropPath(nn.Module):\n"
                     "    def __init__(self, p):\n        super().__init__()\n        self.p = p\n\n"
                     "    def forward(self, x):\n        if not self.training:\n            return x\n"
                     "        return x * (torch.rand(x.shape[0], 1) > self.p) / (1 - self.p)\n\n\n"
                     "class Scale(nn.Module):\n    def forward(self, x):\n        return 2 * x\n",
        "model.py": "from torch import nn\n\nfrom layers import DropPath, Scale\n\n\nclass Block(nn.Module):\n"
                    "    def forward(self, x):\n        x = Scale()(x)\n        return x + DropPath(0.1)(x)\n",
    })
    found = lint_snippet(tmp_path, (tmp_path / "model.py").read_text(), name="model.py")
    assert [(d.code, d.span.line) for d in found] == [("EL108", 9)]
    assert "its `self.training` stays True" in found[0].message
