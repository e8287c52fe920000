"""Where the EL102 and EL103 fixes put their code, and when they offer none."""

from __future__ import annotations

from pathlib import Path

import libcst as cst

from evallint.fixes import apply_fixes

from helpers import lint_snippet

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
TRAINER = """

def fit(model, opt, loader, probe):
    for epoch in range(3):
        for i, (x, y) in enumerate(loader):
            loss = model(x).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i % 10 == 0:
                evaluate(model, probe)
"""


def _findings(tmp_path, text: str, rule: str):
    return [d for d in lint_snippet(tmp_path, text) if d.code == rule]


def _fixed(text: str, diagnostics) -> str:
    return apply_fixes(text, diagnostics, unsafe=True).text


# -- EL102 -----------------------------------------------------------------------------------

def test_el102_no_fix_when_the_model_is_rebound_after_eval(tmp_path):
    text = "import torch\n\n\ndef evaluate(model, probe):\n    net = model\n    net.eval()\n" \
           "    with torch.no_grad():\n        out = net(probe)\n    net = None\n    return out\n" + TRAINER
    [finding] = _findings(tmp_path, text, "EL102")
    assert finding.fix is None


def test_el102_no_fix_for_a_one_line_function(tmp_path):
    text = "import torch\n\n\ndef evaluate(model, probe): model.eval(); return model(probe)\n" + TRAINER
    [finding] = _findings(tmp_path, text, "EL102")
    assert finding.fix is None


def test_el102_no_fix_for_a_mode_switching_call(tmp_path):
    """``model.val_start()``: saving ``model.training`` would not say what the switcher changed."""
    text = (FIXTURES / "EL101" / "flag_method_of_argument_class.py").read_text(encoding="utf-8")
    [finding] = _findings(tmp_path, text, "EL102")
    assert "val_start" in finding.message and finding.fix is None


def test_el102_fix_keeps_crlf(tmp_path):
    text = ("import torch\n\n\ndef evaluate(model, probe):\n    model.eval()\n    with torch.no_grad():\n"
            "        return model(probe)\n" + TRAINER).replace("\n", "\r\n")
    [finding] = _findings(tmp_path, text, "EL102")
    fixed = _fixed(text, [finding])
    assert "\r\n    was_training = model.training\r\n    model.eval()\r\n    try:\r\n" \
           "        with torch.no_grad():\r\n            return model(probe)\r\n    finally:\r\n" \
           "        model.train(was_training)\r\n" in fixed
    assert "\n" not in fixed.replace("\r\n", "")


def test_el102_fix_in_a_nested_function(tmp_path):
    text = """import torch


def make_probe(probe):
    def evaluate(model):
        model.eval()
        with torch.no_grad():
            print(model(probe))
    return evaluate


def fit(model, opt, loader, probe):
    evaluate = make_probe(probe)
    for epoch in range(3):
        for i, (x, y) in enumerate(loader):
            loss = model(x).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i % 10 == 0:
                evaluate(model)
"""
    [finding] = _findings(tmp_path, text, "EL102")
    fixed = _fixed(text, [finding])
    assert "        was_training = model.training\n        model.eval()\n" in fixed
    assert "            print(model(probe))\n        model.train(was_training)\n    return evaluate\n" in fixed


# -- EL103 -----------------------------------------------------------------------------------

def test_el103_no_fix_for_a_model_picked_by_a_loop_variable(tmp_path):
    text = (FIXTURES / "EL103" / "flag_ensemble_members_by_index.py").read_text(encoding="utf-8")
    [finding] = _findings(tmp_path, text, "EL103")
    assert finding.fix is None


PERIODIC = """import torch
from torch import nn

model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step, (x, y) in enumerate(loader):
    loss = model(x).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 100 == 0:
        with torch.no_grad():
            out = model(probe)
        if out.isnan().any():
            continue
        print(out)
"""


def test_el103_no_fix_when_the_block_can_skip_the_train_call(tmp_path):
    [finding] = _findings(tmp_path, PERIODIC, "EL103")
    assert finding.fix is None


def test_el103_fix_when_the_block_leaves_only_after_training_resumes(tmp_path):
    text = PERIODIC.replace("        if out.isnan().any():\n            continue\n", "")
    [finding] = _findings(tmp_path, text, "EL103")
    assert _fixed(text, [finding]) == text.replace(
        "    if step % 100 == 0:\n        with torch.no_grad():\n", "    if step % 100 == 0:\n"
        "        model.eval()\n        with torch.no_grad():\n").replace(
        "        print(out)\n", "        print(out)\n        model.train()\n")


def test_el103_fix_keeps_crlf(tmp_path):
    text = ("import torch\nimport torchvision\n\nmodel = torchvision.models.resnet18()\n"
            "with torch.no_grad():\n    out = model(x)\n").replace("\n", "\r\n")
    [finding] = _findings(tmp_path, text, "EL103")
    assert _fixed(text, [finding]) == text.replace("with torch", "model.eval()\r\nwith torch")


def test_el103_no_train_after_when_a_trainer_call_sets_train_mode(tmp_path):
    """``train_epoch(model)`` starts with ``model.train()``: nothing to restore after evaluating."""
    text = """import torch
from torch import nn


def train_epoch(model, opt, loader):
    model.train()
    for x, y in loader:
        loss = model(x).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()


model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    train_epoch(model, opt, loader)
    with torch.no_grad():
        print(model(probe))
"""
    [finding] = _findings(tmp_path, text, "EL103")
    assert _fixed(text, [finding]) == text.replace(
        "    with torch.no_grad():\n", "    model.eval()\n    with torch.no_grad():\n")


CHAIN = """import torch


def evaluate(model, probe):
    model.eval()
    with torch.no_grad():
        out = model(probe)
    return out


def eval_model(model, probe):
    result = evaluate(model, probe)
    AFTER
    return result


def fit(model, opt, loader, probe):
    for epoch in range(3):
        for i, (x, y) in enumerate(loader):
            loss = model(x).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i % 10 == 0:
                eval_model(model, probe)
"""


def test_el102_fix_in_a_function_reached_through_another(tmp_path):
    """fit() -> eval_model() -> evaluate(): evaluate() restores, as eval_model() runs no model
    after calling it."""
    text = CHAIN.replace("    AFTER\n", "    print(result)\n")
    [finding] = _findings(tmp_path, text, "EL102")
    assert "    was_training = model.training\n    model.eval()\n" in _fixed(text, [finding])


def test_el102_no_fix_when_a_caller_on_the_way_relies_on_the_eval_mode(tmp_path):
    text = CHAIN.replace("    AFTER\n", "    print(model(probe))\n")
    [finding] = _findings(tmp_path, text, "EL102")
    assert finding.fix is None


def _strict(tmp_path, text: str):
    return [d for d in lint_snippet(tmp_path, text, strict_restore=True) if d.code == "EL102"]


FUNCTIONS = """import torch
from torch import nn


def freeze(model: nn.Module, set_eval_mode=True):
    if set_eval_mode:
        model.eval()
    for p in model.parameters():
        p.requires_grad = False


def freeze_all(model: nn.Module):
    model.eval()
    for p in model.parameters():
        p.requires_grad = False


class Wrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model


def export_bundle(model, sample):
    model.eval()
    with torch.no_grad():
        model(sample)
    wrapper = Wrapper(model)
    return {"wrapper": wrapper}


def warmed_up(model, sample):
    model.eval()
    with torch.no_grad():
        model(sample)
    return model


def scores(model, sample):
    model.eval()
    with torch.no_grad():
        out = model(sample)
    return Wrapper(model)(sample), out
"""


def test_el102_no_fix_where_the_caller_wants_the_eval_mode(tmp_path):
    """Switching is the function's job (``freeze``, chosen by a parameter), or the model leaves
    the function (returned, wrapped): restoring would change what the caller gets."""
    findings = {d.span.line: d for d in _strict(tmp_path, FUNCTIONS)}
    assert sorted(findings) == [7, 13, 25, 33, 40]
    assert [line for line, d in findings.items() if d.fix is not None] == [40]  # outputs only


def test_el102_no_fix_for_a_value_of_eval(tmp_path):
    text = "import torch\n\n\ndef evaluate(model, data, probe):\n    loader = data.eval()\n" \
           "    model.eval()\n    with torch.no_grad():\n        return [model(x) for x in loader]\n"
    findings = _strict(tmp_path, text)
    assert all(d.fix is None for d in findings if d.span.line == 5)
    assert [d.span.line for d in findings if d.fix is not None] == [6]


def test_el102_fix_for_eval_in_a_branch_that_also_runs_the_model(tmp_path):
    """``if embeds is None: encoder.eval(); embeds = encoder(x)``: the branch computes, the
    parameter does not choose the mode; the mode is saved before the ``if``."""
    text = """import torch


def encode(encoder, tokens, embeds=None):
    if embeds is None:
        encoder.eval()
        with torch.no_grad():
            embeds = encoder(tokens)
    return embeds * 2
"""
    [finding] = _strict(tmp_path, text)
    assert _fixed(text, [finding]) == text.replace(
        "    if embeds is None:\n", "    was_training = encoder.training\n    if embeds is None:\n").replace(
        "    return embeds * 2\n", "    encoder.train(was_training)\n    return embeds * 2\n")


def test_el102_no_fix_when_no_model_runs_after_eval(tmp_path):
    """``finalize()`` switches the module to eval mode for good and only reads its tensors
    (``self.means.items()`` is no forward of a module): the caller wants the eval mode."""
    text = """import torch
from torch import nn


class Guide(nn.Module):
    def __init__(self):
        super().__init__()
        self.means = nn.ParameterDict({"a": nn.Parameter(torch.zeros(2))})
        self.encoder = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.1))

    def finalize(self):
        self.eval()
        for name, mean in self.means.items():
            print(name, mean.sum())

    def encode(self, x):
        self.eval()
        with torch.no_grad():
            return self.encoder(x)
"""
    fixes = {d.span.line: d.fix is not None for d in _strict(tmp_path, text)}
    assert fixes == {12: False, 17: True}


def test_el102_no_fix_for_eval_guarded_by_a_test_of_the_model(tmp_path):
    """``if isinstance(net, nn.Module): net.eval()``: ``net.training`` may not exist."""
    text = (FIXTURES / "EL101" / "flag_isinstance_guarded_eval.py").read_text(encoding="utf-8")
    [finding] = _findings(tmp_path, text, "EL102")
    assert finding.fix is None


def test_el103_no_fix_when_the_analysis_would_not_see_the_eval_call(tmp_path):
    """``model.eval(True)`` makes ``model`` an object whose ``eval`` is another API to the
    analysis: an inserted ``model.eval()`` would not remove the finding, and each ``--fix``
    round would insert another."""
    text = (FIXTURES / "EL107" / "flag_eval_with_argument.py").read_text(encoding="utf-8")
    [finding] = _findings(tmp_path, text, "EL103")
    assert finding.fix is None


# -- review findings: placement around decorators, earlier evaluations, async and generators ---

DECORATED_BETWEEN = """\
import functools
import torch
from transformers import AutoModelForSequenceClassification

model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")


@functools.lru_cache(maxsize=None)
def tokenize(text):
    return text.split()


optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
for x, y in loader:
    loss = model(x, labels=y).loss
    loss.backward()
    optimizer.step()
"""


def test_el101_train_stops_above_the_loop_at_a_definition(tmp_path):
    text = DECORATED_BETWEEN.replace("optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)\n", "")
    fixed = _fixed(text, _findings(tmp_path, text, "EL101"))
    assert "    return text.split()\n\n\nmodel.train()\nfor x, y in loader:" in fixed


def test_line_inserted_before_a_decorated_definition_goes_above_its_decorators():
    from evallint.frontend.source import SourceModule
    from evallint.rules.edits import insert_before

    source = SourceModule.parse("m.py", DECORATED_BETWEEN)
    definition = next(s for s in source.module.body if isinstance(s, cst.FunctionDef))
    edit = insert_before(source, definition, ["model.train()"])
    assert (edit.span.line, edit.content) == (8, "model.train()\n")


def test_el101_train_goes_after_an_earlier_evaluation(tmp_path):
    text = DECORATED_BETWEEN.replace(
        "optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)\n",
        "optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)\nprint(evaluate(model, val_loader))\n")
    fixed = _fixed(text, _findings(tmp_path, text, "EL101"))
    assert "print(evaluate(model, val_loader))\nmodel.train()\nfor x, y in loader:" in fixed


def test_el201_decorator_keeps_tab_indentation_and_skips_coroutines(tmp_path):
    text = ("import torch\n\n\nclass Predictor:\n\tdef __init__(self, model):\n\t\tself.model = model\n\n"
            "\tdef predict(self, x):\n\t\tself.model.eval()\n\t\treturn self.model(x).argmax(-1).tolist()\n")
    fixed = _fixed(text, _findings(tmp_path, text, "EL201"))
    assert "\n\t@torch.no_grad()\n\tdef predict(self, x):\n" in fixed
    compile(fixed, "fixed.py", "exec")
    coroutine = text.replace("\tdef predict", "\tasync def predict")
    assert [d.fix for d in _findings(tmp_path, coroutine, "EL201")] == [None]


def test_el201_generator_loop_is_decorated_not_wrapped(tmp_path):
    text = ("import torch\n\n\ndef predictions(model, loader):\n    model.eval()\n"
            "    for x in loader:\n        yield model(x).argmax(-1)\n")
    fixed = _fixed(text, _findings(tmp_path, text, "EL201"))
    assert fixed.startswith("import torch\n\n\n@torch.no_grad()\ndef predictions(model, loader):\n")


def test_el201_module_level_import_only(tmp_path):
    text = ("from torchvision.models import resnet50\n\n\ndef load():\n    import torch\n"
            "    model = resnet50()\n    model.load_state_dict(torch.load('ckpt.pt'))\n    return model\n\n\n"
            "model = load()\nmodel.eval()\npreds = model(images)\n")
    fixed = _fixed(text, _findings(tmp_path, text, "EL201"))
    assert fixed.startswith("from torchvision.models import resnet50\nimport torch\n")
    assert fixed.endswith("with torch.no_grad():\n    preds = model(images)\n")


def test_el101_move_keeps_the_comment_of_the_moved_line(tmp_path):
    text = ("import torch\nfrom torch import nn\n\n\ndef validate(model, loader):\n    model.eval()\n"
            "    with torch.no_grad():\n        return sum(model(x).sum().item() for x in loader)\n\n\n"
            "model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2))\n"
            "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "model.train()  # dropout on for fine-tuning\n"
            "for epoch in range(3):\n    for x in loader:\n        model(x).sum().backward()\n"
            "        opt.step()\n    validate(model, val_loader)\n")
    fixed = _fixed(text, _findings(tmp_path, text, "EL101"))
    assert "for epoch in range(3):\n    model.train()  # dropout on for fine-tuning\n" in fixed
    assert fixed.count("dropout on for fine-tuning") == 1
