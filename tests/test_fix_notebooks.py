"""``--fix`` and ``--diff`` on Jupyter notebooks: edits go back into the cells they belong to, the
notebook's JSON keeps its layout, outputs and metadata, masked magics survive, and a fix that would
touch a magic line or reach into another cell is not applied (and the finding says so)."""

from __future__ import annotations

import json

import pytest

from cli_snippets import run, run_json


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cell(text: str, as_list: bool = True, outputs: list | None = None, count: int | None = None) -> dict:
    source = text.splitlines(keepends=True) if as_list else text
    return {"cell_type": "code", "execution_count": count, "metadata": {"tags": ["eval"]},
            "outputs": outputs or [], "source": source}


def markdown(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def jupyter_json(cells: list[dict]) -> str:
    """As Jupyter writes a notebook: one-space indent, sorted keys, UTF-8, final newline."""
    notebook = {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                            "name": "python3"},
                                             "language_info": {"name": "python", "version": "3.11.4"}},
                "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


STREAM = {"name": "stdout", "output_type": "stream", "text": ["accuracy 0.913 — épreuve\n"]}
IMAGE = {"data": {"image/png": "iVBORw0KGgo=", "text/plain": ["<Figure size 640x480 with 1 Axes>"]},
         "metadata": {"needs_background": "light"}, "output_type": "display_data"}

SETUP = "%matplotlib inline\nimport torch\nimport torchvision\n"
LOAD = "model = torchvision.models.resnet18()\nmodel.load_state_dict(torch.load('r18.pt'))"
EVALUATE = ("# switch to inference\n%time model.eval\nmodel.eval\nwith torch.no_grad():\n"
            "    logits = model(torch.randn(2, 3, 224, 224))\nprint(logits.argmax(1))")


def make_notebook(as_list: bool = True) -> str:
    return jupyter_json([
        markdown("# Évaluation\nResNet-18 on two random images.\n"),
        cell(SETUP, as_list, count=1),
        cell(LOAD, as_list, count=2),
        markdown("Now predict."),
        cell(EVALUATE, as_list, outputs=[STREAM, IMAGE], count=3),
    ])


@pytest.mark.parametrize("as_list", [True, False], ids=["source_list", "source_string"])
def test_fix_goes_into_the_right_cell_and_keeps_the_json(tmp_path, as_list):
    path = tmp_path / "predict.ipynb"
    raw = make_notebook(as_list)
    path.write_text(raw, encoding="utf-8")
    result, data = run_json("--no-cache", "--fix", "predict.ipynb")
    assert result.exit_code == 0, result.output
    assert data == []
    fixed = path.read_text(encoding="utf-8")
    # Only the one line of the third code cell changed; everything else stays byte for byte
    # (one-space indent, key order, non-ASCII text unescaped, outputs, final newline).
    line = '"model.eval\\n"' if as_list else "\\nmodel.eval\\n"
    assert raw.count(line) == 1
    assert fixed == raw.replace(line, line.replace("model.eval", "model.eval()"))
    notebook = json.loads(fixed)
    source = notebook["cells"][4]["source"]
    assert isinstance(source, list) is as_list
    assert "".join(source) == EVALUATE.replace("\nmodel.eval\n", "\nmodel.eval()\n")
    assert "%time model.eval" in "".join(source)  # the masked magic is still there, untouched
    assert notebook["cells"][4]["outputs"] == [STREAM, IMAGE]
    # A second run changes nothing.
    again = run("check", "--no-cache", "--fix", "predict.ipynb")
    assert again.exit_code == 0 and path.read_text(encoding="utf-8") == fixed


def test_fix_keeps_other_json_layouts(tmp_path):
    """A notebook written by another tool (two-space indent, ASCII escapes, no final newline)."""
    notebook = json.loads(make_notebook())
    raw = json.dumps(notebook, indent=2)  # keys in insertion order, ensure_ascii, no newline
    assert "\\u00e9" in raw and not raw.endswith("\n")
    path = tmp_path / "predict.ipynb"
    path.write_text(raw, encoding="utf-8")
    assert run("check", "--no-cache", "--fix", "predict.ipynb").exit_code == 0
    assert path.read_text(encoding="utf-8") == raw.replace('"model.eval\\n"', '"model.eval()\\n"')


def test_fix_in_compact_notebook_with_crlf_and_bom(tmp_path):
    notebook = json.loads(make_notebook())
    raw = json.dumps(notebook, ensure_ascii=False, separators=(",\r\n", ":"))
    path = tmp_path / "predict.ipynb"
    path.write_bytes(b"\xef\xbb\xbf" + raw.encode())
    assert run("check", "--no-cache", "--fix", "predict.ipynb").exit_code == 0
    assert path.read_bytes() == b"\xef\xbb\xbf" + raw.replace('"model.eval\\n"', '"model.eval()\\n"').encode()


def test_diff_shows_cell_relative_hunks_and_writes_nothing(tmp_path):
    path = tmp_path / "predict.ipynb"
    raw = make_notebook()
    path.write_text(raw, encoding="utf-8")
    result = run("check", "--no-cache", "--diff", "predict.ipynb")
    assert result.exit_code == 1
    assert path.read_text(encoding="utf-8") == raw
    lines = result.stdout.splitlines()
    assert lines[:3] == ["--- a/predict.ipynb:cell 3", "+++ b/predict.ipynb:cell 3", "@@ -1,6 +1,6 @@"]
    assert "-model.eval" in lines and "+model.eval()" in lines
    assert "\\ No newline at end of file" in lines  # the cell's last line has no newline


def test_json_output_carries_cell_relative_fix(tmp_path):
    (tmp_path / "predict.ipynb").write_text(make_notebook(), encoding="utf-8")
    _, data = run_json("--no-cache", "predict.ipynb")
    [finding] = [d for d in data if d["code"] == "EL106"]  # (EL103 too: the model stays in train mode)
    assert (finding["cell"], finding["line"]) == (3, 3)
    assert finding["fix"]["edits"] == [{"line": 3, "column": 11, "end_line": 3, "end_column": 11,
                                        "content": "()"}]


LOOP_WITH_MAGIC = jupyter_json([
    cell("import torch\nimport torchvision\nmodel = torchvision.models.resnet18()\nmodel.eval()\n"
         "loader = [(torch.randn(2, 3, 224, 224), torch.tensor([0, 1]))]"),
    cell("correct = 0\nfor x, y in loader:\n    !nvidia-smi --query-gpu=memory.used --format=csv\n"
         "    correct += (model(x).argmax(1) == y).sum().item()\nprint(correct)"),
])


def test_fix_touching_a_magic_line_is_not_applied_and_says_so(tmp_path):
    path = tmp_path / "gpu.ipynb"
    path.write_text(LOOP_WITH_MAGIC, encoding="utf-8")
    result, data = run_json("--no-cache", "--fix", "--unsafe-fixes", "gpu.ipynb")
    assert result.exit_code == 1
    [finding] = data
    assert (finding["code"], finding["cell"], finding["fix"]) == ("EL201", 2, None)
    assert any("magic" in note for note in finding["notes"])
    assert path.read_text(encoding="utf-8") == LOOP_WITH_MAGIC
    text = run("check", "--no-cache", "gpu.ipynb").stdout
    assert "note: the fix (Wrap the loop in `with torch.no_grad():`) is not applied" in text


HOISTED_ACROSS_CELLS = jupyter_json([
    cell("import torch\nfrom torch import nn\n\n\ndef validate(model, loader):\n    model.eval()\n"
         "    with torch.no_grad():\n        return sum(model(x).sum().item() for x, _ in loader)"),
    cell("model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2), nn.Linear(8, 2))\n"
         "opt = torch.optim.SGD(model.parameters(), lr=0.1)\nmodel.train()"),
    cell("for epoch in range(3):\n    for x, y in train_loader:\n"
         "        loss = nn.functional.cross_entropy(model(x), y)\n"
         "        opt.zero_grad(); loss.backward(); opt.step()\n    validate(model, val_loader)"),
])


def test_fix_reaching_into_another_cell_is_not_applied_and_says_so(tmp_path):
    path = tmp_path / "train.ipynb"
    path.write_text(HOISTED_ACROSS_CELLS, encoding="utf-8")
    # (EL102's fix, inside the first cell, would remove the leak: leave it out)
    result, data = run_json("--no-cache", "--select", "EL101", "--fix", "--unsafe-fixes", "train.ipynb")
    el101 = [d for d in data if d["code"] == "EL101"]
    assert [(d["cell"], d["line"], d["fix"]) for d in el101] == [(2, 3, None)]
    assert any("another cell" in note for note in el101[0]["notes"])
    assert path.read_text(encoding="utf-8") == HOISTED_ACROSS_CELLS
    assert result.exit_code == 1


def test_cell_magic_cell_is_left_alone(tmp_path):
    raw = jupyter_json([
        cell("%%timeit\nmodel.eval"),  # a cell magic hides its cell: nothing in it is Python
        cell(SETUP + LOAD),
        cell("model.eval\nwith torch.no_grad():\n    print(model(torch.randn(1, 3, 224, 224)))"),
    ])
    path = tmp_path / "timing.ipynb"
    path.write_text(raw, encoding="utf-8")
    assert run("check", "--no-cache", "--fix", "timing.ipynb").exit_code == 0
    fixed = json.loads(path.read_text(encoding="utf-8"))
    assert "".join(fixed["cells"][0]["source"]) == "%%timeit\nmodel.eval"
    assert "".join(fixed["cells"][2]["source"]).startswith("model.eval()\n")


# -- notebooks.with_code_cells -------------------------------------------------------------------

def test_with_code_cells_grows_a_one_line_list_in_its_layout():
    from evallint.notebooks import code_cells, with_code_cells

    raw = jupyter_json([markdown("text"), cell("torch.onnx.export(net, x, 'net.onnx')"),
                        cell("print('caf\u00e9')\nprint(2)")])
    fixed = with_code_cells(raw, {1: "net.eval()\ntorch.onnx.export(net, x, 'net.onnx')"})
    assert code_cells(fixed) == ["net.eval()\ntorch.onnx.export(net, x, 'net.onnx')", "print('caf\u00e9')\nprint(2)"]
    expected = json.loads(raw)
    expected["cells"][1]["source"] = ["net.eval()\n", "torch.onnx.export(net, x, 'net.onnx')"]
    assert fixed == json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_with_code_cells_keeps_the_spelling_of_unchanged_lines():
    from evallint.notebooks import with_code_cells

    # Escapes another writer chose (`\/`, `\u00e9` in an otherwise non-ASCII file) stay as written.
    raw = ('{"cells": [{"cell_type": "code", "source": ["url = \\"http:\\/\\/x\\"\\n", '
           '"name = \\"caf\\u00e9\\"\\n", "model.eval"]}], "metadata": {"title": "\u00e9t\u00e9"}}')
    fixed = with_code_cells(raw, {1: 'url = "http://x"\nname = "caf\u00e9"\nmodel.eval()'})
    assert fixed == raw.replace('"model.eval"', '"model.eval()"')
    assert with_code_cells(raw, {}) == raw


def test_with_code_cells_rewrites_only_what_changed_in_a_source_string():
    from evallint.notebooks import with_code_cells

    raw = ('{"cells": [{"cell_type": "code", "source": "url = \\"http:\\/\\/x\\"\\nmodel.eval\\n'
           'name = \\"caf\\u00e9\\""}], "metadata": {"title": "\u00e9t\u00e9"}}')
    fixed = with_code_cells(raw, {1: 'url = "http://x"\nmodel.eval()\nname = "caf\u00e9"'})
    assert fixed == raw.replace("model.eval\\n", "model.eval()\\n")


def test_with_code_cells_keeps_a_line_split_over_strings_and_drops_removed_lines():
    from evallint.notebooks import with_code_cells

    raw = jupyter_json([cell("x = 1\n"), cell("a = 1\nb = 2\n")])
    notebook = json.loads(raw)
    notebook["cells"][0]["source"] = ["import torch\n", "out = model(", "x)\n", "model.eval"]
    raw = json.dumps(notebook, indent=1)
    fixed = with_code_cells(raw, {1: "import torch\nout = model(x)\nmodel.eval()", 2: "b = 2\n"})
    assert fixed == raw.replace('"model.eval"', '"model.eval()"').replace('"a = 1\\n",\n    ', "")
    assert with_code_cells(fixed, {2: ""}).replace(" ", "").count('"source":[]') == 1
    # A change across the strings of a split line makes them one string.
    fixed = with_code_cells(fixed, {1: "import torch\nout = net(x)\n"})
    assert json.loads(fixed)["cells"][0]["source"] == ["import torch\n", "out = net(x)\n"]


def test_with_code_cells_writes_one_string_per_line():
    from evallint.notebooks import with_code_cells

    raw = jupyter_json([cell("torch.no_grad()  # c\nx = f()\ny = g(x)")])
    fixed = with_code_cells(raw, {1: "with torch.no_grad():  # c\n    x = f()\n    y = g(x)"})
    expected = json.loads(raw)
    expected["cells"][0]["source"] = ["with torch.no_grad():  # c\n", "    x = f()\n", "    y = g(x)"]
    assert fixed == json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    # A string that holds several lines stays one when only its characters change.
    raw = json.dumps({"cells": [{"cell_type": "code", "source": ["import torch\nmodel.eval\n", "x = 1"]}]})
    fixed = with_code_cells(raw, {1: "import torch\nmodel.eval()\nx = 1"})
    assert fixed == raw.replace("model.eval\\n", "model.eval()\\n")


def test_with_code_cells_round_trips_random_changes():
    """Whatever the new texts, they read back as given; a list stays a list (of one string a line,
    if it was), an ASCII file stays ASCII, and unchanged texts leave the file as it was."""
    import random

    from evallint.lines import split_lines
    from evallint.notebooks import code_cells, with_code_cells

    rng = random.Random(7)
    chars = ["a", "b", " ", "\n", "\r\n", "\u00e9", "\U0001f600", '"', "\\", "/", "\t"]

    def text(size: int) -> str:
        return "".join(rng.choice(chars) for _ in range(size))

    for _ in range(400):
        old = [text(rng.randint(0, 12)) for _ in range(3)]
        sources: list = []
        for cell_text in old:
            lines = split_lines(cell_text, keepends=True)
            if rng.random() < 0.3:
                sources.append(cell_text)
                continue
            if lines and rng.random() < 0.5:  # a line split over two strings
                at = rng.randrange(len(lines))
                split = rng.randint(0, len(lines[at]))
                lines[at:at + 1] = [lines[at][:split], lines[at][split:]]
            sources.append(lines)
        raw = json.dumps({"cells": [cell("") | {"source": source} for source in sources]},
                         indent=rng.choice([None, 1, 2]), ensure_ascii=rng.random() < 0.5)
        new = {}
        for number, cell_text in enumerate(old, start=1):
            lines = split_lines(cell_text, keepends=True)
            for _ in range(rng.randint(0, 3)):
                at = rng.randint(0, len(lines))
                if rng.random() < 0.4 or not lines:
                    lines.insert(at, text(rng.randint(0, 5)))
                elif rng.random() < 0.5:
                    del lines[at - 1]
                else:
                    lines[at - 1] = text(rng.randint(1, 6))
            new[number] = "".join(lines)
        assert with_code_cells(raw, dict(enumerate(old, start=1))) == raw
        fixed = with_code_cells(raw, new)
        assert code_cells(fixed) == list(new.values())
        assert fixed.isascii() or not raw.isascii()
        cells = zip(json.loads(raw)["cells"], json.loads(fixed)["cells"])
        for number, (before, after) in enumerate(cells, start=1):
            assert isinstance(after["source"], list) is isinstance(before["source"], list)
            if before["source"] == split_lines(old[number - 1], keepends=True):  # one string a line
                assert after["source"] == split_lines(new[number], keepends=True)
            if new[number] == old[number - 1]:
                assert after == before


def test_bare_no_grad_at_top_level_wraps_the_rest_of_its_cell_only(tmp_path):
    raw = jupyter_json([
        cell("import torch\nimport torchvision\nmodel = torchvision.models.resnet18()\nmodel.eval()\n"
             "torch.no_grad()  # inference from here on\nx = torch.randn(1, 3, 224, 224)\ny = model(x)"),
        cell("print(y.shape)\ny.sum().backward()  # a later cell may want gradients"),
    ])
    path = tmp_path / "infer.ipynb"
    path.write_text(raw, encoding="utf-8")
    result = run("check", "--no-cache", "--fix", "--unsafe-fixes", "infer.ipynb")
    cells = [("".join(c["source"])) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    assert cells[0].endswith("model.eval()\nwith torch.no_grad():  # inference from here on\n"
                             "    x = torch.randn(1, 3, 224, 224)\n    y = model(x)")
    assert cells[1] == "print(y.shape)\ny.sum().backward()  # a later cell may want gradients"
    assert "(1 fixed" in result.stdout


def test_el201_fix_adds_import_torch_at_the_top_of_its_cell(tmp_path):
    path = tmp_path / "embed.ipynb"
    path.write_text(jupyter_json([
        markdown("# Embeddings"),
        cell("from transformers import AutoModel, AutoTokenizer\n"
             "tok = AutoTokenizer.from_pretrained('bert-base-uncased')\n"
             "enc = AutoModel.from_pretrained('bert-base-uncased')"),
        cell("vectors = []\nfor text in texts:\n"
             "    vectors.append(enc(**tok(text, return_tensors='pt')).pooler_output)"),
    ]), encoding="utf-8")
    result, data = run_json("--no-cache", "--unsafe-fixes", "embed.ipynb")
    assert [(d["code"], d["cell"], d["line"]) for d in data] == [("EL201", 2, 3)]
    assert run("check", "--no-cache", "--fix", "--unsafe-fixes", "embed.ipynb").exit_code == 0
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    # (a fix stays in the cell of its finding)
    assert "".join(cells[0]["source"]).startswith("from transformers import")
    assert "".join(cells[1]["source"]) == (
        "import torch\nvectors = []\nwith torch.no_grad():\n    for text in texts:\n"
        "        vectors.append(enc(**tok(text, return_tensors='pt')).pooler_output)")


def test_el101_train_stays_in_the_cell_of_the_training_loop(tmp_path):
    path = tmp_path / "finetune.ipynb"
    path.write_text(jupyter_json([
        cell("import torch\nfrom transformers import AutoModelForSequenceClassification\n"
             "model = AutoModelForSequenceClassification.from_pretrained('bert-base-uncased')"),
        cell("optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)"),
        cell("steps = 0\nfor batch in loader:\n    model(**batch).loss.backward()\n"
             "    optimizer.step()\n    steps += 1"),
    ]), encoding="utf-8")
    assert run("check", "--no-cache", "--fix", "--unsafe-fixes", "finetune.ipynb").exit_code == 0
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    assert "".join(cells[2]["source"]).startswith("model.train()\nsteps = 0\nfor batch in loader:")


def test_el201_import_goes_below_the_magics_of_its_cell(tmp_path):
    path = tmp_path / "embed.ipynb"
    path.write_text(jupyter_json([
        cell("from transformers import AutoModel\nenc = AutoModel.from_pretrained('bert-base-uncased')"),
        cell("%time\nvectors = [enc(**batch).pooler_output for batch in batches]"),
    ]), encoding="utf-8")
    assert run("check", "--no-cache", "--fix", "--unsafe-fixes", "embed.ipynb").exit_code == 0
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    assert "".join(cells[1]["source"]) == (
        "%time\nimport torch\nwith torch.no_grad():\n"
        "    vectors = [enc(**batch).pooler_output for batch in batches]")
