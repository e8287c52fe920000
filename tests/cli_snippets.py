"""Small PyTorch scripts used as inputs by the command-line tests, and a helper to run the CLI.

The expected findings of each snippet are given next to it as ``(code, line, column)`` so that
the tests read as "this script, these findings".
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from evallint.cli import main

# Inference with a freshly built torchvision model: never put in eval mode.
EL103_SCRIPT = """\
import torch
import torchvision

model = torchvision.models.resnet18()
with torch.no_grad():
    out = model(torch.randn(1, 3, 224, 224))
print(out.argmax(1))
"""
EL103_AT = ("EL103", 6, 11)

# The same script, written correctly.
CLEAN_SCRIPT = """\
import torch
import torchvision

model = torchvision.models.resnet18()
model.load_state_dict(torch.load("resnet18.pt"))
model.eval()
with torch.no_grad():
    out = model(torch.randn(1, 3, 224, 224))
print(out.argmax(1))
"""

# `model.eval` without the call (EL106, safe fix: add `()`).
EL106_SCRIPT = """\
import torch


def evaluate(model, loader):
    model.eval
    with torch.no_grad():
        return [model(x).argmax(1) for x, _ in loader]
"""
EL106_AT = ("EL106", 5, 5)

# `model.training = False` (EL105, safe fix: `model.eval()`).
EL105_SCRIPT = """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
model.training = False
with torch.no_grad():
    out = model(torch.randn(2, 4))
"""
EL105_AT = ("EL105", 5, 1)

# Evaluation loop outside torch.no_grad() (EL201, unsafe fix: wrap the loop).
EL201_SCRIPT = """\
import torch


def evaluate(model, loader):
    model.eval()
    correct = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
    return correct
"""
EL201_AT = ("EL201", 8, 21)

# Cross-file: train.py trains after utils.evaluate() left the model in eval mode (EL101).
TRAIN_SCRIPT = """\
import torch
from torch import nn

from utils import evaluate

model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2), nn.Linear(8, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
model.train()
for epoch in range(10):
    for x, y in train_loader:
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    evaluate(model, val_loader)
"""
TRAIN_EL101_AT = ("EL101", 8, 1)

UTILS_LEAKING = """\
import torch


def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        return [model(x).argmax(1) for x, _ in loader]
"""
UTILS_LEAK_LINE = 5

# The same helper, restoring train mode before returning.
UTILS_RESTORING = """\
import torch


def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        preds = [model(x).argmax(1) for x, _ in loader]
    model.train()
    return preds
"""

# Does not parse: the call on the last line is never closed (Python: line 7).
UNCLOSED_SCRIPT = """\
import torch
import torchvision

model = torchvision.models.resnet18()
model.eval()
with torch.no_grad():
    out = model(torch.randn(1, 3, 224, 224)
"""
UNCLOSED_LINE = 7


def write(folder: Path, files: dict[str, str]) -> dict[str, Path]:
    paths = {}
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    return paths


def run(*args: str, input: str | bytes | None = None) -> Result:
    """Run ``evallint ARGS`` in-process (in the current working folder), never coloured."""
    runner = CliRunner(env={"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None})
    return runner.invoke(main, list(args), input=input, catch_exceptions=False)


def run_json(*args: str, input: str | None = None) -> tuple[Result, list[dict]]:
    result = run("check", "--output-format", "json", *args, input=input)
    return result, json.loads(result.stdout)


def findings(data: list[dict]) -> set[tuple[str, str, int, int]]:
    """(path, code, line, column) of each JSON finding."""
    return {(d["path"], d["code"], d["line"], d["column"]) for d in data}
