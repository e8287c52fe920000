"""The CI report formats: GitLab Code Quality (validated against a schema of what GitLab documents
it reads) and JUnit XML (parsed and checked against the JUnit conventions CI services read)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import jsonschema
import pytest

from cli_snippets import (CLEAN_SCRIPT, EL103_AT, EL103_SCRIPT, EL106_SCRIPT, EL201_SCRIPT, TRAIN_SCRIPT,
                          UNCLOSED_SCRIPT, UTILS_LEAKING, run, run_json, write)
from test_notebooks import INFERENCE_NOTEBOOK


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI_PROJECT_DIR", raising=False)
    return tmp_path


@pytest.fixture
def project(tmp_path):
    write(tmp_path, {"src/train.py": TRAIN_SCRIPT, "src/utils.py": UTILS_LEAKING,
                     "src/predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT,
                     "metrics.py": EL201_SCRIPT, "broken.py": UNCLOSED_SCRIPT, "clean.py": CLEAN_SCRIPT,
                     "both.py": EL103_SCRIPT + "\n\n" + EL106_SCRIPT.replace("import torch\n", "")})
    return tmp_path


PATHS = ("src", "metrics.py", "both.py", "broken.py", "evaluate.py", "clean.py")

# -- GitLab Code Quality ----------------------------------------------------------------------

# What GitLab's Code Quality documentation says a report must be: an array of issues, each with a
# human-readable description, the name of the check, a fingerprint that identifies the issue, one
# of five severities, and a location: the file's path relative to the repository, and the line the
# issue begins on (as ``lines.begin``, or as ``positions.begin.line``).
LINE = {"type": "integer", "minimum": 1}
CODE_QUALITY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["description", "check_name", "fingerprint", "severity", "location"],
        "properties": {
            "description": {"type": "string", "minLength": 1},
            "check_name": {"type": "string", "minLength": 1},
            "fingerprint": {"type": "string", "minLength": 1},
            "severity": {"enum": ["info", "minor", "major", "critical", "blocker"]},
            "type": {"const": "issue"},
            "categories": {"type": "array", "items": {"type": "string"}},
            "location": {
                "type": "object",
                "required": ["path"],
                "properties": {
                    # Relative, with forward slashes, no leading "./".
                    "path": {"type": "string", "minLength": 1, "not": {"pattern": r"^(/|\./|[A-Za-z]:)|\\"}},
                    "lines": {"type": "object", "required": ["begin"],
                              "properties": {"begin": LINE, "end": LINE}},
                    "positions": {"type": "object", "required": ["begin"], "properties": {
                        "begin": {"type": "object", "required": ["line"], "properties": {"line": LINE}}}},
                },
                "oneOf": [{"required": ["lines"]}, {"required": ["positions"]}],
            },
        },
    },
}


def _gitlab(*args: str) -> list[dict]:
    result = run("check", "--no-cache", "--output-format", "gitlab", *args)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def test_gitlab_report_validates_and_matches_the_findings(project):
    report = _gitlab(*PATHS)
    jsonschema.validate(report, CODE_QUALITY_SCHEMA)
    _, data = run_json("--no-cache", *PATHS)
    assert len(report) == len(data) == 7
    assert [(i["location"]["path"], i["check_name"], i["location"]["lines"]["begin"]) for i in report] == \
        [(d["path"], d["code"], d["line"]) for d in data]
    for issue, finding in zip(report, data):
        assert issue["description"] == f"{finding['code']} {finding['message']}"
        assert issue["location"]["lines"]["end"] == finding["end_line"]
        assert issue["severity"] == {"error": "major", "warning": "minor"}[finding["severity"]]
    # The schema itself rejects what GitLab would not read.
    for broken in ({**report[0], "severity": "error"}, {k: v for k, v in report[0].items() if k != "fingerprint"},
                   {**report[0], "location": {"path": "./x.py", "lines": {"begin": 1}}},
                   {**report[0], "location": {"path": "x.py"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate([broken], CODE_QUALITY_SCHEMA)


def test_gitlab_empty_report_when_clean(tmp_path):
    write(tmp_path, {"clean.py": CLEAN_SCRIPT})
    result = run("check", "--no-cache", "--output-format", "gitlab", "clean.py")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_gitlab_fingerprints_unique_and_stable(project):
    report = _gitlab(*PATHS)
    fingerprints = [issue["fingerprint"] for issue in report]
    assert len(set(fingerprints)) == len(fingerprints)
    assert [issue["fingerprint"] for issue in _gitlab(*reversed(PATHS))] == fingerprints
    # Lines added above a finding do not change its fingerprint (nor those of the others) ...
    text = (project / "src" / "predict.py").read_text()
    (project / "src" / "predict.py").write_text("# a new first line\n\n" + text)
    moved = _gitlab(*PATHS)
    assert [i["fingerprint"] for i in moved] == fingerprints
    assert [i["location"]["lines"]["begin"] for i in moved if i["location"]["path"] == "src/predict.py"] == \
        [EL103_AT[1] + 2]
    # ... changing the flagged line does.
    (project / "src" / "predict.py").write_text(text.replace("224, 224)", "112, 112)"))
    changed = {i["location"]["path"]: i["fingerprint"] for i in _gitlab(*PATHS)}
    original = {i["location"]["path"]: i["fingerprint"] for i in report}
    assert changed["src/predict.py"] != original["src/predict.py"]
    assert changed["metrics.py"] == original["metrics.py"]


def test_gitlab_identical_findings_get_distinct_fingerprints(tmp_path):
    # The same flagged line twice in one file: same path, code, message and line text.
    write(tmp_path, {"twice.py": EL106_SCRIPT + "\n\n" + EL106_SCRIPT.replace("import torch\n", "")})
    report = _gitlab("twice.py")
    assert [i["check_name"] for i in report] == ["EL106", "EL106"]
    assert report[0]["fingerprint"] != report[1]["fingerprint"]


def test_gitlab_paths_relative_to_the_repository(project, monkeypatch):
    absolute = str(project / "src" / "predict.py")
    assert [i["location"]["path"] for i in _gitlab(absolute)] == ["src/predict.py"]
    assert [i["location"]["path"] for i in _gitlab("./src/predict.py")] == ["src/predict.py"]
    # In a GitLab job, relative to the checkout, wherever evallint runs from.
    monkeypatch.setenv("CI_PROJECT_DIR", str(project))
    monkeypatch.chdir(project / "src")
    assert [i["location"]["path"] for i in _gitlab("predict.py")] == ["src/predict.py"]


def test_gitlab_notebook_issue_names_its_cell(tmp_path):
    write(tmp_path, {"classify.ipynb": INFERENCE_NOTEBOOK})
    report = _gitlab("classify.ipynb")
    jsonschema.validate(report, CODE_QUALITY_SCHEMA)
    assert [(i["location"]["path"], i["location"]["lines"]["begin"]) for i in report] == [("classify.ipynb", 3)]
    assert report[0]["description"].startswith("cell 3: EL103 ")


# -- JUnit XML -------------------------------------------------------------------------------

def _junit(*args: str) -> tuple[int, str, ET.Element]:
    result = run("check", "--no-cache", "--output-format", "junit", *args)
    assert result.stdout.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    return result.exit_code, result.stdout, ET.fromstring(result.stdout.encode("utf-8"))


def _check_counts(element: ET.Element, cases: list[ET.Element]) -> None:
    assert int(element.get("tests")) == len(cases)
    assert int(element.get("failures")) == sum(case.find("failure") is not None for case in cases)
    assert int(element.get("errors")) == sum(case.find("error") is not None for case in cases)


def test_junit_structure_and_counts(project):
    code, _, root = _junit(*PATHS)
    assert code == 1
    assert root.tag == "testsuites" and root.get("name") == "evallint"
    suites = root.findall("testsuite")
    assert len(suites) == 1 and suites[0].get("name") == "evallint"
    cases = suites[0].findall("testcase")
    _check_counts(root, cases)
    _check_counts(suites[0], cases)
    assert suites[0].get("skipped") == "0"
    for case in cases:
        assert case.get("name") and case.get("classname") == case.get("file")
        assert len(case) <= 1
    _, data = run_json("--no-cache", *PATHS)
    failed = [case for case in cases if case.find("failure") is not None]
    assert [(c.get("classname"), c.find("failure").get("type"), int(c.get("line"))) for c in failed] == \
        [(d["path"], d["code"], d["line"]) for d in data]
    for case, finding in zip(failed, data):
        failure = case.find("failure")
        assert failure.get("message") == finding["message"]
        assert failure.text.startswith(f"{finding['path']}:{finding['line']}:{finding['column']}: {finding['code']} ")
        assert case.get("name") == (f"{finding['code']} ({finding['name']}) at line {finding['line']}, "
                                    f"column {finding['column']}")
    # Every linted file is there; those without findings (src/utils.py, clean.py) pass.
    passed = [case.get("classname") for case in cases if len(case) == 0]
    assert passed == ["clean.py", "src/utils.py"]
    assert {case.get("classname") for case in cases} == {d["path"] for d in data} | set(passed)
    train = next(c for c in failed if c.get("classname") == "src/train.py").find("failure").text
    assert "\n  = eval mode set here: src/utils.py:5:5" in train


def test_junit_clean_run(tmp_path):
    write(tmp_path, {"clean.py": CLEAN_SCRIPT})
    code, _, root = _junit("clean.py")
    assert code == 0
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "0", "0")
    [case] = root.iter("testcase")
    assert (case.get("classname"), case.get("name"), len(case)) == ("clean.py", "evallint", 0)


def test_junit_escapes_special_characters_in_paths(tmp_path):
    write(tmp_path, {"odd & <name>.py": EL201_SCRIPT})
    code, text, root = _junit("odd & <name>.py")
    assert code == 1
    assert 'classname="odd &amp; &lt;name&gt;.py"' in text
    case = next(root.iter("testcase"))
    assert case.get("classname") == case.get("file") == "odd & <name>.py"
    assert case.find("failure").text.startswith("odd & <name>.py:8:21: EL201 ")


def test_junit_escaping_of_messages_and_control_characters():
    import io

    from evallint.diagnostics import Diagnostic, Related, Severity, Span
    from evallint.reporters import junit
    from evallint.reporters.context import ReportContext

    message = 'a "quoted" <tag> & \'apostrophe\'\nsecond line\x00\x1b end'
    found = [Diagnostic("EL103", "inference-in-train-mode", message, Severity.ERROR, "a.py", Span(2, 3, 2, 9),
                        related=(Related("b.py", Span(4, 1, 4, 2), "set <here>"),)),
             Diagnostic("EL000", "internal-error", "internal error: KeyError: 'x'", Severity.ERROR, "c.py",
                        Span(1, 1, 1, 1))]
    out = io.StringIO()
    junit.write(found, ReportContext(out=out, paths=["a.py", "c.py", "d.py"]))
    root = ET.fromstring(out.getvalue().encode("utf-8"))
    _check_counts(root, list(root.iter("testcase")))
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    failure = root.find("testsuite/testcase/failure")
    # Attribute values keep their line breaks (escaped as character references); what XML cannot
    # hold at all is replaced.
    assert failure.get("message") == 'a "quoted" <tag> & \'apostrophe\'\nsecond line\ufffd\ufffd end'
    assert "= set <here>: b.py:4:1" in failure.text
    error = root.find("testsuite/testcase/error")
    assert (error.get("type"), error.get("message")) == ("EL000", "internal error: KeyError: 'x'")


def test_junit_notebook_case_names_its_cell(tmp_path):
    write(tmp_path, {"classify.ipynb": INFERENCE_NOTEBOOK})
    _, _, root = _junit("classify.ipynb")
    case = next(root.iter("testcase"))
    assert case.get("name") == "EL103 (inference-in-train-mode) at cell 3, line 3, column 14"
    assert case.find("failure").text.startswith("classify.ipynb:cell 3:3:14: EL103 ")
