"""Jupyter notebooks: code cells linted as one module (magics masked), findings reported per cell."""

from __future__ import annotations

import json
import re

import pytest

from cli_snippets import EL103_SCRIPT, findings, run, run_json, write


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def code_cell(*lines: str) -> dict:
    source = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}


def markdown_cell(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def notebook(*cells: dict) -> str:
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": list(cells),
    }, indent=1)


# Code cells are counted from 1 (markdown cells do not count), as in Ruff.
INFERENCE_NOTEBOOK = notebook(
    markdown_cell("# Classify a few images\nWith a pretrained ResNet-18.\n"),
    code_cell("!pip install torchvision", "%matplotlib inline", "import torch", "import torchvision",
              "import matplotlib.pyplot as plt"),
    code_cell("model = torchvision.models.resnet18()",
              "images = torch.randn(8, 3, 224, 224)"),
    code_cell("# predictions for the batch", "with torch.no_grad():",
              "    logits = model(images)", "plt.bar(range(1000), logits[0].softmax(0))"),
)
# The finding: `model(images)` in the third code cell, line 3, column 14.
CELL, LINE, COLUMN = 3, 3, 14


def test_notebook_finding_has_cell_and_cell_relative_line(tmp_path):
    write(tmp_path, {"classify.ipynb": INFERENCE_NOTEBOOK})
    result, data = run_json("--no-cache", "classify.ipynb")
    assert result.exit_code == 1
    assert len(data) == 1
    finding = data[0]
    assert (finding["path"], finding["code"], finding["cell"], finding["line"], finding["column"]) == \
        ("classify.ipynb", "EL103", CELL, LINE, COLUMN)
    assert finding["end_line"] == LINE and finding["end_column"] == COLUMN + len("model(images)")
    # Its fix, cell-relative too: ``model.eval()`` before the ``with`` block, line 2 of the cell.
    assert finding["fix"]["edits"] == [
        {"line": 2, "column": 1, "end_line": 2, "end_column": 1, "content": "model.eval()\n"}]
    # The related location (where train mode comes from) is in code cell 2, line 1.
    assert [(r["path"], r["line"], r["column"]) for r in finding["related"]] == [("classify.ipynb", 1, 9)]
    assert "cell 2" in finding["related"][0]["message"]


def test_notebook_given_by_absolute_path_keeps_related_in_cells(tmp_path):
    write(tmp_path, {"classify.ipynb": INFERENCE_NOTEBOOK})
    given = str(tmp_path / "classify.ipynb")
    _, data = run_json("--no-cache", given)
    related = data[0]["related"]
    assert [(r["path"], r["line"], r["column"]) for r in related] == [(given, 1, 9)]
    assert "cell 2" in related[0]["message"]


def test_notebook_text_output_shows_cell(tmp_path):
    write(tmp_path, {"classify.ipynb": INFERENCE_NOTEBOOK})
    result = run("check", "--no-cache", "classify.ipynb")
    assert result.exit_code == 1
    assert f"classify.ipynb:cell {CELL}:{LINE}:{COLUMN}: EL103 " in result.stdout
    assert f"{LINE} |     logits = model(images)" in result.stdout  # the line of the cell
    concise = run("check", "--no-cache", "--output-format", "concise", "classify.ipynb")
    assert concise.stdout.startswith(f"classify.ipynb:cell {CELL}:{LINE}:{COLUMN}: EL103 ")


def test_notebook_sarif_carries_cell(tmp_path):
    write(tmp_path, {"classify.ipynb": INFERENCE_NOTEBOOK})
    result = run("check", "--no-cache", "--output-format", "sarif", "classify.ipynb")
    [sarif_result] = json.loads(result.stdout)["runs"][0]["results"]
    assert sarif_result["properties"] == {"cell": CELL}
    assert sarif_result["locations"][0]["physicalLocation"]["region"]["startLine"] == LINE


def test_notebook_message_does_not_quote_concatenated_line_numbers(tmp_path):
    write(tmp_path, {"classify.ipynb": INFERENCE_NOTEBOOK})
    _, data = run_json("--no-cache", "classify.ipynb")
    # `model = ...resnet18()` is line 1 of cell 2; line 7 of the joined module.
    assert not re.search(r"\bat line \d+\b", data[0]["message"]), data[0]["message"]


def test_magics_and_shell_lines_do_not_break_parsing(tmp_path):
    clean = notebook(
        code_cell("%load_ext autoreload", "%autoreload 2", "import torch", "import torchvision"),
        code_cell("%%time", "this is not python, the cell magic hides it"),
        code_cell("model = torchvision.models.resnet18()", "model.eval()", "x = torch.randn(1, 3, 224, 224)"),
        code_cell("!nvidia-smi", "with torch.no_grad():", "    out = model(x)", "model?"),
    )
    write(tmp_path, {"clean.ipynb": clean})
    result, data = run_json("--no-cache", "clean.ipynb")
    assert data == []
    assert result.exit_code == 0


def test_notebook_found_when_walking_folder(tmp_path):
    write(tmp_path, {"notebooks/classify.ipynb": INFERENCE_NOTEBOOK, "predict.py": EL103_SCRIPT,
                     "notebooks/.ipynb_checkpoints/classify-checkpoint.ipynb": INFERENCE_NOTEBOOK})
    _, data = run_json("--no-cache", ".")
    assert {(d["path"], d.get("cell")) for d in data} == {("notebooks/classify.ipynb", CELL),
                                                         ("predict.py", None)}


def test_noqa_in_notebook_cell(tmp_path):
    text = INFERENCE_NOTEBOOK.replace('"    logits = model(images)\\n"',
                                      '"    logits = model(images)  # noqa: EL103\\n"')
    assert text != INFERENCE_NOTEBOOK
    write(tmp_path, {"classify.ipynb": text})
    result, data = run_json("--no-cache", "classify.ipynb")
    assert data == [] and result.exit_code == 0


@pytest.mark.parametrize("content", ['{"cells": [', '{"nbformat": 4, "metadata": {}}', "[1, 2, 3]"],
                         ids=["truncated", "no_cells", "not_an_object"])
def test_broken_notebook_is_el001(tmp_path, content):
    write(tmp_path, {"broken.ipynb": content, "classify.ipynb": INFERENCE_NOTEBOOK})
    result, data = run_json("--no-cache", "broken.ipynb", "classify.ipynb")
    assert result.exit_code == 1
    broken = [d for d in data if d["path"] == "broken.ipynb"]
    assert [(d["code"], d["line"]) for d in broken] == [("EL001", 1)]
    assert "notebook" in broken[0]["message"]
    assert findings(data) >= {("classify.ipynb", "EL103", LINE, COLUMN)}


BROKEN_CELL = notebook(
    code_cell("import torch"),
    code_cell("model = torch.nn.Linear(4, 2)", "  model.eval()", "print(model)"),  # unexpected indent
)


def test_syntax_error_in_cell_is_el001_in_that_cell(tmp_path):
    write(tmp_path, {"broken.ipynb": BROKEN_CELL})
    result, data = run_json("--no-cache", "broken.ipynb")
    assert result.exit_code == 1
    assert [(d["code"], d.get("cell")) for d in data] == [("EL001", 2)]


def test_syntax_error_in_cell_at_its_line(tmp_path):
    write(tmp_path, {"broken.ipynb": BROKEN_CELL})
    _, data = run_json("--no-cache", "broken.ipynb")
    assert [(d["code"], d.get("cell"), d["line"]) for d in data] == [("EL001", 2, 2)]
