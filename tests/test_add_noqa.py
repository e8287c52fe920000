"""``check --add-noqa``: a directive for every current finding, placed where ``noqa.py`` reads it,
so that the next run is clean; files keep their encoding, BOM, line endings and permissions."""

from __future__ import annotations

import json
import os
import stat

import pytest

from evallint import add_noqa, noqa
from evallint.add_noqa import add_to_source, plan

from cli_snippets import EL103_SCRIPT, EL106_SCRIPT, UNCLOSED_SCRIPT, run, run_json, write
from test_notebooks import code_cell, markdown_cell, notebook


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


INFERENCE_LINE = "    out = model(torch.randn(1, 3, 224, 224))\n"


def check_is_clean(*paths: str, cache: bool = False) -> None:
    """The next run finds nothing, and no directive is unused (EL002)."""
    options = () if cache else ("--no-cache",)
    result, data = run_json(*options, "--extend-select", "EL002", *paths)
    assert (result.exit_code, data) == (0, [])


def test_adds_a_directive_and_the_next_run_is_clean(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT})
    result = run("check", "--no-cache", "--add-noqa", ".")
    assert result.exit_code == 0, result.output
    assert result.stderr == "Added 2 noqa directives to 2 files.\n"
    assert result.stdout == ""
    assert (tmp_path / "predict.py").read_text() == EL103_SCRIPT.replace(
        INFERENCE_LINE, INFERENCE_LINE.rstrip("\n") + "  # noqa: EL103\n")
    assert (tmp_path / "evaluate.py").read_text() == EL106_SCRIPT.replace(
        "    model.eval\n", "    model.eval  # noqa: EL106\n")
    check_is_clean(".")
    # Nothing left to add: a second run changes nothing.
    again = run("check", "--no-cache", "--add-noqa", ".")
    assert (again.exit_code, again.stderr) == (0, "Added 0 noqa directives to 0 files.\n")


def test_singular_message_and_quiet(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "--add-noqa", "--quiet", "predict.py")
    assert (result.exit_code, result.output) == (0, "")
    assert "# noqa: EL103" in (tmp_path / "predict.py").read_text()
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    assert run("check", "--no-cache", "--add-noqa", "predict.py").stderr == \
        "Added 1 noqa directive to 1 file.\n"


@pytest.mark.parametrize("comment, expected", [
    # Another tool's codes are kept, the codes sorted.
    ("  # noqa: E501", "  # noqa: E501, EL103"),
    ("  # NOQA:E501,W291", "  # noqa: E501, EL103, W291"),
    # The rest of the comment stays, after the directive.
    ("  # noqa: E501 - the shape is spelled out", "  # noqa: E501, EL103 - the shape is spelled out"),
    # Other comments stay; the directive follows them.
    ("  # type: ignore", "  # type: ignore  # noqa: EL103"),
    ("  # type: ignore[call-arg]  # noqa: E501", "  # type: ignore[call-arg]  # noqa: E501, EL103"),
    ("   ", "  # noqa: EL103"),  # trailing spaces are not kept before the directive
])
def test_merges_with_the_comment_on_the_line(tmp_path, comment, expected):
    line = INFERENCE_LINE.rstrip("\n")
    write(tmp_path, {"predict.py": EL103_SCRIPT.replace(INFERENCE_LINE, line + comment + "\n")})
    result = run("check", "--no-cache", "--add-noqa", "predict.py")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "predict.py").read_text() == EL103_SCRIPT.replace(INFERENCE_LINE, line + expected + "\n")
    check_is_clean("predict.py")


def test_merge_sorts_and_deduplicates_codes():
    text = "a = 1  # noqa: EL201\nb = 2  # noqa: EL101, E501\nc = 3\n"
    outcome = add_to_source(text, {1: {"EL101"}, 2: {"EL201", "EL101"}, 3: {"EL103", "EL101", "EL103"}})
    assert outcome.text == ("a = 1  # noqa: EL101, EL201\nb = 2  # noqa: E501, EL101, EL201\n"
                            "c = 3  # noqa: EL101, EL103\n")
    assert (outcome.directives, outcome.unplaced) == (3, [])


def test_a_bare_noqa_or_one_naming_the_code_is_left_alone():
    text = "a = 1  # noqa\nb = 2  # noqa: EL101, E501\n"
    outcome = add_to_source(text, {1: {"EL101"}, 2: {"EL101"}})
    assert (outcome.text, outcome.directives) == (text, 0)


def test_file_disable_comment_and_noqa_share_a_line():
    text = "a = 1  # evallint: disable-file=EL201\n"
    outcome = add_to_source(text, {1: {"EL103"}})
    assert outcome.text == "a = 1  # evallint: disable-file=EL201  # noqa: EL103\n"
    index = noqa.scan(outcome.text)
    assert index.disabled == {"EL201"} and index.comments[1].codes == ("EL103",)


# -- findings on lines that cannot hold a comment -------------------------------------------

# The inference starts on line 6, which ends inside a triple-quoted string: a comment there would
# be part of the string. Its directive goes where the string (and the statement's line) ends.
STRING_SCRIPT = EL103_SCRIPT.replace(INFERENCE_LINE, '''\
    out = model(torch.randn(1, 3, 224, 224), note="""calibration
batch""")
''')
# The same with a backslash continuation: a comment cannot follow the backslash.
BACKSLASH_SCRIPT = EL103_SCRIPT.replace(INFERENCE_LINE, '''\
    out = model(torch.randn(1, 3, 224, 224)) \\
        .softmax(1)
''')
# A statement over lines in brackets: each of its lines can hold a comment, so the directive goes
# on the finding's first line as usual.
BRACKETS_SCRIPT = EL103_SCRIPT.replace(INFERENCE_LINE, '''\
    out = model(
        torch.randn(1, 3, 224, 224))
''')


@pytest.mark.parametrize("script, line", [(STRING_SCRIPT, 7), (BACKSLASH_SCRIPT, 7), (BRACKETS_SCRIPT, 6)])
def test_directive_on_the_line_noqa_reads_for_the_finding(tmp_path, script, line):
    write(tmp_path, {"predict.py": script})
    _, data = run_json("--no-cache", "predict.py")
    assert [(d["code"], d["line"]) for d in data] == [("EL103", 6)]
    result = run("check", "--no-cache", "--add-noqa", "predict.py")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "predict.py").read_text().splitlines()
    assert [number for number, text in enumerate(lines, start=1) if "# noqa" in text] == [line]
    assert lines[line - 1].endswith("  # noqa: EL103")
    check_is_clean("predict.py")


def test_noqa_reads_a_directive_where_the_string_ends(tmp_path):
    """Written by hand, the same placement suppresses the finding; on a line after the statement,
    it does not (and EL002 reports it)."""
    ending = 'batch""")\n'
    write(tmp_path, {"predict.py": STRING_SCRIPT.replace(ending, 'batch""")  # noqa: EL103\n')})
    check_is_clean("predict.py")
    write(tmp_path, {"predict.py": STRING_SCRIPT.replace("print(", "print(  # noqa: EL103\n    ")})
    _, data = run_json("--no-cache", "--extend-select", "EL002", "predict.py")
    assert sorted((d["code"], d["line"]) for d in data) == [("EL002", 8), ("EL103", 6)]


def test_directive_line_mapping():
    text = 'x = f(1, """a\nb\nc""", 2)\ny = 1 + \\\n  2 + \\\n  3\nz = (1,\n  2)\n'
    index = noqa.scan(text)
    assert [index.directive_line(line) for line in range(1, 9)] == [3, 3, 3, 6, 6, 6, 7, 8]
    edits, unplaced = plan(text, {1: {"EL103"}, 2: {"EL201"}, 4: {"EL101"}, 7: {"EL106"}})
    assert [(e.line, e.content) for e in edits] == [(3, "  # noqa: EL103, EL201"), (6, "  # noqa: EL101"),
                                                    (7, "  # noqa: EL106")]
    assert unplaced == []


def test_lone_carriage_returns_are_reported_not_edited():
    outcome = add_to_source("a = 1\rb = 2\r", {1: {"EL103"}})
    assert outcome.directives == 0 and outcome.text == "a = 1\rb = 2\r"
    assert [line for line, _ in outcome.unplaced] == [1]


# -- what is never suppressed --------------------------------------------------------------

def test_el001_is_not_suppressible_and_counted(tmp_path):
    write(tmp_path, {"broken.py": UNCLOSED_SCRIPT, "predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "--add-noqa", ".")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "Added 1 noqa directive to 1 file.",
        "1 finding left as is: not suppressible with `# noqa` (EL001: 1; EL000/EL001 are always "
        "reported, EL002 is fixed with `--fix`)."]
    assert (tmp_path / "broken.py").read_text() == UNCLOSED_SCRIPT


def test_el002_findings_get_no_directive(tmp_path):
    text = EL106_SCRIPT.replace("import torch\n", "import torch  # noqa: EL103\n")
    write(tmp_path, {"evaluate.py": text})
    result = run("check", "--no-cache", "--extend-select", "EL002", "--add-noqa", "evaluate.py")
    assert result.exit_code == 0
    assert "(EL002: 1;" in result.stderr
    assert (tmp_path / "evaluate.py").read_text() == text.replace("    model.eval\n", "    model.eval  # noqa: EL106\n")


# -- the file as it was --------------------------------------------------------------------

def test_keeps_crlf_bom_and_permissions(tmp_path):
    path = tmp_path / "predict.py"
    path.write_bytes(b"\xef\xbb\xbf" + EL103_SCRIPT.replace("\n", "\r\n").encode())
    path.chmod(0o751)
    result = run("check", "--no-cache", "--add-noqa", "predict.py")
    assert result.exit_code == 0, result.output
    expected = EL103_SCRIPT.replace(INFERENCE_LINE, INFERENCE_LINE.rstrip("\n") + "  # noqa: EL103\n")
    assert path.read_bytes() == b"\xef\xbb\xbf" + expected.replace("\n", "\r\n").encode()
    assert stat.S_IMODE(path.stat().st_mode) == 0o751
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predict.py"]  # no temporary left
    check_is_clean("predict.py")


def test_mixed_line_endings_stay_as_they_are(tmp_path):
    path = tmp_path / "predict.py"
    mixed = EL103_SCRIPT.replace("torchvision\n", "torchvision\r\n").replace(INFERENCE_LINE, INFERENCE_LINE[:-1] + "\r\n")
    path.write_bytes(mixed.encode())
    assert run("check", "--no-cache", "--add-noqa", "predict.py").exit_code == 0
    assert path.read_bytes() == mixed.replace("224))\r\n", "224))  # noqa: EL103\r\n").encode()


def test_a_file_changed_since_it_was_linted_is_not_overwritten(tmp_path, monkeypatch):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT})
    edited = EL103_SCRIPT + "# edited meanwhile\n"
    real = add_noqa.add_to_source

    def edit_meanwhile(text, wanted):  # someone saves the file while directives are made
        if "torchvision" in text:
            (tmp_path / "predict.py").write_text(edited)
        return real(text, wanted)

    monkeypatch.setattr(add_noqa, "add_to_source", edit_meanwhile)
    result = run("check", "--no-cache", "--add-noqa", ".")
    assert result.exit_code == 1
    assert "evallint: warning: predict.py: not edited: it changed on disk since it was read" in result.stderr
    assert "Added 1 noqa directive to 1 file." in result.stderr
    assert (tmp_path / "predict.py").read_text() == edited
    assert "# noqa: EL106" in (tmp_path / "evaluate.py").read_text()


def test_a_file_changed_between_lint_and_add_noqa_is_skipped(tmp_path, monkeypatch):
    from evallint import cli

    write(tmp_path, {"predict.py": EL103_SCRIPT})
    real = cli._lint_with_progress

    def lint_then_edit(*args, **kwargs):
        found = real(*args, **kwargs)
        (tmp_path / "predict.py").write_text("\n" + EL103_SCRIPT)  # every line moved down
        return found

    monkeypatch.setattr(cli, "_lint_with_progress", lint_then_edit)
    result = run("check", "--no-cache", "--add-noqa", "predict.py")
    assert result.exit_code == 1
    assert "predict.py: not edited: it changed since it was linted" in result.stderr
    assert (tmp_path / "predict.py").read_text() == "\n" + EL103_SCRIPT


# -- command line --------------------------------------------------------------------------

@pytest.mark.parametrize("other", ["--fix", "--diff"])
def test_conflicts_with_fix_and_diff(tmp_path, other):
    write(tmp_path, {"predict.py": EL103_SCRIPT})
    result = run("check", "--no-cache", "--add-noqa", other, "predict.py")
    assert result.exit_code == 2
    assert f"`--add-noqa` cannot be combined with `{other}`" in result.stderr
    assert (tmp_path / "predict.py").read_text() == EL103_SCRIPT


def test_not_with_standard_input():
    result = run("check", "--add-noqa", "-", input=EL103_SCRIPT)
    assert result.exit_code == 2
    assert "standard input" in result.stderr


def test_cached_run_sees_the_new_content(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT})
    assert run("check", ".").exit_code == 1  # fills the cache
    assert run("check", "--add-noqa", ".").exit_code == 0  # from the cache
    check_is_clean(".", cache=True)
    result = run("check", ".")
    assert (result.exit_code, result.stdout.strip()) == (0, "All checks passed!")


def test_only_selected_rules_get_directives(tmp_path):
    write(tmp_path, {"predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT})
    assert run("check", "--no-cache", "--select", "EL106", "--add-noqa", ".").exit_code == 0
    assert (tmp_path / "predict.py").read_text() == EL103_SCRIPT
    assert "# noqa: EL106" in (tmp_path / "evaluate.py").read_text()


# -- notebooks -----------------------------------------------------------------------------

def _notebook_with_outputs() -> str:
    first = code_cell("!pip install torchvision", "import torch", "import torchvision",
                      "model = torchvision.models.resnet18()  # « pretrained »")
    first["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["Collecting torchvision…\n"]}]
    first["execution_count"] = 1
    second = code_cell("with torch.no_grad():", '    logits = model(torch.randn(8, 3, 224, 224), tag="""é',
                       'b😀""")', "logits.shape")
    second["outputs"] = [{"output_type": "execute_result", "data": {"text/plain": ["torch.Size([8, 1000])"]},
                          "execution_count": 2, "metadata": {}}]
    return notebook(markdown_cell("# Inference\n"), first, second) + "\n"


def test_notebook_directive_in_its_cell_and_nothing_else_changes(tmp_path):
    original = _notebook_with_outputs()
    write(tmp_path, {"classify.ipynb": original})
    _, data = run_json("--no-cache", "classify.ipynb")
    assert [(d["code"], d["cell"], d["line"]) for d in data] == [("EL103", 2, 2)]
    result = run("check", "--no-cache", "--add-noqa", "classify.ipynb")
    assert result.exit_code == 0, result.output
    assert result.stderr == "Added 1 noqa directive to 1 file.\n"
    text = (tmp_path / "classify.ipynb").read_text(encoding="utf-8")
    # The string ends on the cell's third line: the directive goes there, inside the JSON string
    # (where the emoji is written as two escapes).
    line = '"b\\ud83d\\ude00\\"\\"\\")'
    assert line + '\\n"' in original
    assert text == original.replace(line + '\\n"', line + '  # noqa: EL103\\n"')
    cells = json.loads(text)["cells"]
    assert cells[2]["source"][2] == 'b😀""")  # noqa: EL103\n'
    assert cells[2]["outputs"] == json.loads(original)["cells"][2]["outputs"]
    check_is_clean("classify.ipynb")


def test_notebook_with_source_as_one_string(tmp_path):
    cell = code_cell("import torch", "import torchvision", "model = torchvision.models.resnet18()",
                     "with torch.no_grad():", "    out = model(torch.randn(1, 3, 224, 224))", "out")
    cell["source"] = "".join(cell["source"])
    original = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]})
    write(tmp_path, {"one.ipynb": original})
    assert run("check", "--no-cache", "--add-noqa", "one.ipynb").exit_code == 0
    text = (tmp_path / "one.ipynb").read_text()
    assert text == original.replace("224))\\nout", "224))  # noqa: EL103\\nout")
    check_is_clean("one.ipynb")


def _split_line_notebook(first: str, second: str) -> str:
    """A notebook whose inference line is given as two strings of the source list."""
    cell = code_cell("import torch", "import torchvision", "model = torchvision.models.resnet18()",
                     "with torch.no_grad():", "    out = model(torch.randn(1, 3, 224, 224))", "out")
    cell["source"][4:5] = [first, second]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [cell]})


def test_notebook_line_split_over_two_strings(tmp_path):
    # The directive is added at the end of the line: in the string that holds its end.
    original = _split_line_notebook("    out = model(", "torch.randn(1, 3, 224, 224))\n")
    write(tmp_path, {"split.ipynb": original})
    assert run("check", "--no-cache", "--add-noqa", "split.ipynb").exit_code == 0
    assert (tmp_path / "split.ipynb").read_text() == original.replace("224))\\n", "224))  # noqa: EL103\\n")
    check_is_clean("split.ipynb")
    # A directive to extend that is split over the strings is reported, and the file left alone.
    original = _split_line_notebook("    out = model(torch.randn(1, 3, 224, 224))  # no", "qa: E501\n")
    write(tmp_path, {"split.ipynb": original})
    _, data = run_json("--no-cache", "split.ipynb")
    assert [(d["code"], d["cell"], d["line"]) for d in data] == [("EL103", 1, 5)]
    result = run("check", "--no-cache", "--add-noqa", "split.ipynb")
    assert result.exit_code == 1
    assert "split.ipynb:cell 1:5: no `# noqa` added: cell 1, line 5 is split over several strings" in result.stderr
    assert "Added 0 noqa directives to 0 files." in result.stderr
    assert (tmp_path / "split.ipynb").read_text() == original


def test_write_keeps_the_original_when_the_file_changed(tmp_path):
    from evallint.fixes import FileChanged, write_atomically

    path = tmp_path / "a.py"
    path.write_bytes(b"x = 1\n")
    with pytest.raises(FileChanged):
        write_atomically(path, "x = 2\n", expected=b"x = 0\n")
    assert path.read_bytes() == b"x = 1\n"
    assert os.listdir(tmp_path) == ["a.py"]
    write_atomically(path, "x = 2\n", expected=b"x = 1\n")
    assert path.read_bytes() == b"x = 2\n"


def test_fix_relints_a_file_changed_since_it_was_linted(tmp_path, monkeypatch):
    """The fixes are made for the content on disk, not for the content linted before."""
    from evallint import cli

    write(tmp_path, {"evaluate.py": EL106_SCRIPT})
    real = cli._lint_with_progress
    edited = EL106_SCRIPT.replace("import torch\n", "import torch\nimport os\n")

    def lint_then_edit(*args, **kwargs):
        found = real(*args, **kwargs)
        (tmp_path / "evaluate.py").write_text(edited)
        return found

    monkeypatch.setattr(cli, "_lint_with_progress", lint_then_edit)
    result = run("check", "--no-cache", "--fix", "evaluate.py")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "evaluate.py").read_text() == edited.replace("model.eval\n", "model.eval()\n")
