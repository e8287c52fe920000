"""Messages name the real expressions: the model the code uses, the inner call that switches."""

from helpers import lint_snippet

TRAINER = """\
import torch
from torch import nn


class Trainer:
    def __init__(self):
        self.net = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2))
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.1)

    def evaluate(self, loader):
        self.net.eval()
        with torch.no_grad():
            return sum(self.net(x).sum().item() for x in loader)

    def report(self, loader, epoch):
        print(epoch, self.evaluate(loader))

    def fit(self, train_loader, val_loader):
        self.net.train()
        for epoch in range(10):
            for x in train_loader:
                loss = self.net(x).sum()
                self.opt.zero_grad()
                loss.backward()
                self.opt.step()
            self.report(val_loader, epoch)
"""


def messages(tmp_path, code):
    return {d.code: d.message for d in lint_snippet(tmp_path, code)}


def test_fix_texts_name_the_model_of_the_code(tmp_path):
    found = messages(tmp_path, TRAINER)
    assert "`self.net.train()` on every exit" in found["EL102"]
    assert "save `self.net.training`" in found["EL102"]
    assert "Call `self.net.train()` at the top of the loop body" in found["EL101"]
    assert "`model" not in found["EL101"] + found["EL102"]


def test_a_chain_of_calls_names_the_inner_call_that_switches(tmp_path):
    found = messages(tmp_path, TRAINER)
    assert "`self.report(val_loader, epoch)` at line 26 (through `self.evaluate(loader)` at line 16, " \
           "`self.net.eval()` at line 11)" in found["EL101"]


def test_el109_names_the_class_the_call_and_the_mode_parameter(tmp_path):
    code = """\
from torch import nn


class Detector(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(8, 2))

    def train(self, training: bool = True):
        super(Detector, self).train()
        return self
"""
    found = [d for d in lint_snippet(tmp_path, code) if d.code == "EL109"]
    assert len(found) == 1
    message = found[0].message
    assert message.startswith("`Detector.train()` calls `super(Detector, self).train()` without `training`")
    assert "`model.eval()` runs it" in message
    assert message.endswith("pass it: `super(Detector, self).train(training)`")
