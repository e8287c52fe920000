"""Models without a mode-dependent layer: EL103 is not reported (the output cannot differ) and
EL101 is a warning; with one, both are errors."""

import pytest

from helpers import lint_snippet

TEMPLATE = """\
import torch
from torch import nn

{classes}

model = Net()
with torch.no_grad():
    out = model(torch.randn(2, 4))
"""

CASES = {
    "layer reading self.training is mode-dependent": ("""\
class DropPath(nn.Module):
    def forward(self, x):
        if not self.training:
            return x
        return x * (torch.rand(x.shape[0], 1) > 0.1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.drop = DropPath()

    def forward(self, x):
        return self.drop(self.fc(x))
""", "error"),
    "classmethod building BatchNorm does not count": ("""\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    @classmethod
    def from_batchnorm(cls, bn):
        return nn.BatchNorm1d(bn.num_features)

    def forward(self, x):
        return self.fc(x)
""", "warning"),
    "ModuleList of mode-free blocks is mode-free": ("""\
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Linear(4, 4)

    def forward(self, x):
        return torch.relu(self.conv(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block() for _ in range(3)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x
""", "warning"),
    "LSTM with dropout is mode-dependent": ("""\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 4, num_layers=2, dropout=0.3)

    def forward(self, x):
        return self.rnn(x)[0]
""", "error"),
    "LSTM without dropout is mode-free": ("""\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 4)

    def forward(self, x):
        return self.rnn(x)[0]
""", "warning"),
}


LEAK_TEMPLATE = """\
import torch
from torch import nn

{classes}


def validate(m, loader):
    m.eval()
    with torch.no_grad():
        for x, _ in loader:
            m(x)


def fit(loader):
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for epoch in range(3):
        for x, y in loader:
            loss = model(x).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        validate(model, loader)
"""


@pytest.mark.parametrize("name", sorted(CASES))
def test_inference_reported_only_for_mode_dependent_models(tmp_path, name):
    classes, severity = CASES[name]
    found = [d for d in lint_snippet(tmp_path, TEMPLATE.format(classes=classes)) if d.code == "EL103"]
    if severity == "warning":
        assert found == []
        return
    assert [d.span.line for d in found] == [TEMPLATE.format(classes=classes).splitlines().index(
        "    out = model(torch.randn(2, 4))") + 1]
    assert found[0].severity.value == "error"


@pytest.mark.parametrize("name", sorted(CASES))
def test_leak_severity(tmp_path, name):
    classes, severity = CASES[name]
    source = LEAK_TEMPLATE.format(classes=classes)
    found = [d for d in lint_snippet(tmp_path, source) if d.code == "EL101"]
    assert [d.span.line for d in found] == [source.splitlines().index("    model.train()") + 1]
    assert found[0].severity.value == severity
    if severity == "warning":
        assert found[0].notes and found[0].notes[0].startswith("Net has no")
