"""The machine-readable outputs: JSON as the output contract (docs cli.md) describes it, and SARIF
2.1.0 validated against the official schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evallint.rules import all_rules

from cli_snippets import (EL103_AT, EL103_SCRIPT, EL106_AT, EL106_SCRIPT, EL201_AT, EL201_SCRIPT,
                          TRAIN_EL101_AT, TRAIN_SCRIPT, UNCLOSED_LINE, UNCLOSED_SCRIPT, UTILS_LEAKING,
                          findings, run, run_json, write)

SARIF_SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "sarif-schema-2.1.0.json"

TOP_KEYS = {"code", "name", "message", "severity", "path", "line", "column", "end_line", "end_column",
            "related", "fix"}
OPTIONAL_KEYS = {"cell", "notes"}
RELATED_KEYS = {"path", "line", "column", "end_line", "end_column", "message"}
FIX_KEYS = {"applicability", "message", "edits"}
EDIT_KEYS = {"line", "column", "end_line", "end_column", "content"}


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def project(tmp_path):
    """A folder with findings of several kinds: cross-file with related locations (EL101), a safe
    fix (EL106), an unsafe fix (EL201), none (EL103), a syntax error (EL001)."""
    write(tmp_path, {"src/train.py": TRAIN_SCRIPT, "src/utils.py": UTILS_LEAKING,
                     "src/predict.py": EL103_SCRIPT, "evaluate.py": EL106_SCRIPT,
                     "metrics.py": EL201_SCRIPT, "broken.py": UNCLOSED_SCRIPT,
                     # Two findings in one file, on different lines.
                     "both.py": EL103_SCRIPT + "\n\n" + EL106_SCRIPT.replace("import torch\n", "")})
    return tmp_path


# Given out of order on purpose: the output must be sorted all the same.
PATHS = ("src/train.py", "metrics.py", "both.py", "src/predict.py", "broken.py", "evaluate.py")


def _check_span(item: dict) -> None:
    for key in ("line", "column", "end_line", "end_column"):
        assert type(item[key]) is int and item[key] >= 1, (key, item)
    assert (item["end_line"], item["end_column"]) >= (item["line"], item["column"])


def test_json_structure_and_types(project):
    result, data = run_json("--no-cache", *PATHS)
    assert result.exit_code == 1
    assert isinstance(data, list) and len(data) == 7
    for item in data:
        assert TOP_KEYS <= set(item) <= TOP_KEYS | OPTIONAL_KEYS, set(item)
        assert re.fullmatch(r"EL\d{3}", item["code"])
        assert isinstance(item["name"], str) and re.fullmatch(r"[a-z0-9-]+", item["name"])
        assert isinstance(item["message"], str) and item["message"]
        assert item["severity"] in ("error", "warning")
        assert isinstance(item["path"], str)
        _check_span(item)
        assert isinstance(item["related"], list)
        for related in item["related"]:
            assert set(related) == RELATED_KEYS
            assert isinstance(related["path"], str) and isinstance(related["message"], str)
            _check_span(related)
        if item["fix"] is not None:
            assert FIX_KEYS <= set(item["fix"]) <= FIX_KEYS | {"waits_for"}
            assert all(re.fullmatch(r"EL\d{3}", code) for code in item["fix"].get("waits_for", ["EL000"]))
            assert item["fix"]["applicability"] in ("safe", "unsafe")
            assert isinstance(item["fix"]["message"], str) and item["fix"]["message"]
            assert item["fix"]["edits"]
            for edit in item["fix"]["edits"]:
                assert set(edit) == EDIT_KEYS
                assert isinstance(edit["content"], str)
                _check_span(edit)
    names = {rule.code: rule.name for rule in all_rules()}
    assert all(item["name"] == names[item["code"]] for item in data)


def test_json_sorted_by_path_line_column_code(project):
    _, data = run_json("--no-cache", *PATHS)
    keys = [(d["path"], d["line"], d["column"], d["code"]) for d in data]
    assert keys == sorted(keys)
    assert [(d["path"], d["code"]) for d in data] == [
        ("both.py", "EL103"), ("both.py", "EL106"), ("broken.py", "EL001"), ("evaluate.py", "EL106"),
        ("metrics.py", "EL201"), ("src/predict.py", "EL103"), ("src/train.py", "EL101")]


def test_json_findings_and_positions(project):
    _, data = run_json("--no-cache", *PATHS)
    assert findings(data) >= {("src/train.py", *TRAIN_EL101_AT), ("metrics.py", *EL201_AT),
                              ("src/predict.py", *EL103_AT), ("evaluate.py", *EL106_AT),
                              ("both.py", *EL103_AT), ("both.py", "EL106", 13, 5)}
    broken = next(d for d in data if d["path"] == "broken.py")
    assert (broken["code"], broken["name"], broken["line"], broken["fix"], broken["related"]) == \
        ("EL001", "syntax-error", UNCLOSED_LINE, None, [])


def test_json_fix_objects(project):
    _, data = run_json("--no-cache", *PATHS)
    by_key = {(d["path"], d["code"]): d for d in data}
    assert by_key[("evaluate.py", "EL106")]["fix"] == {
        "applicability": "safe", "message": "Add the missing `()`",
        "edits": [{"line": 5, "column": 15, "end_line": 5, "end_column": 15, "content": "()"}]}
    unsafe = by_key[("metrics.py", "EL201")]["fix"]
    assert unsafe["applicability"] == "unsafe"
    assert [(e["line"], e["end_line"]) for e in unsafe["edits"]] == [(7, 8)]
    assert unsafe["edits"][0]["content"].startswith("with torch.no_grad():\n")
    assert by_key[("src/predict.py", "EL103")]["fix"] == {
        "applicability": "unsafe", "message": "Call `model.eval()` before the evaluation",
        "edits": [{"line": 5, "column": 1, "end_line": 5, "end_column": 1, "content": "model.eval()\n"}]}


def test_json_related_locations_relative(project):
    _, data = run_json("--no-cache", "src/train.py")
    assert len(data) == 1
    finding = data[0]
    assert finding["path"] == "src/train.py"
    assert finding["related"] == [
        {"path": "src/train.py", "line": 15, "column": 5, "end_line": 15, "end_column": 32,
         "message": "called here"},
        {"path": "src/utils.py", "line": 5, "column": 5, "end_line": 5, "end_column": 17,
         "message": "eval mode set here"},
    ]


def test_json_path_as_given(project):
    _, data = run_json("--no-cache", "src/predict.py")
    assert [d["path"] for d in data] == ["src/predict.py"]
    _, data = run_json("--no-cache", "src")
    assert {d["path"] for d in data} == {"src/predict.py", "src/train.py"}
    absolute = str(project / "src" / "predict.py")
    _, data = run_json("--no-cache", absolute)
    assert [d["path"] for d in data] == [absolute]


def test_json_columns_count_characters(tmp_path):
    line = '    résumé = "é😀"; out = model(torch.randn(1, 3, 224, 224))'
    write(tmp_path, {"predict.py": EL103_SCRIPT.replace("    out = model(torch.randn(1, 3, 224, 224))", line)})
    _, data = run_json("--no-cache", "predict.py")
    assert [(d["code"], d["line"]) for d in data] == [("EL103", 6)]
    start = line.index("model(") + 1
    assert (data[0]["column"], data[0]["end_column"]) == (start, len(line) + 1)


def test_json_empty_array_when_clean(tmp_path):
    write(tmp_path, {"evaluate.py": EL106_SCRIPT.replace("model.eval\n", "model.eval()\n")})
    result = run("check", "--no-cache", "--output-format", "json", "evaluate.py")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []


def test_json_output_is_the_only_stdout(project):
    result = run("check", "--no-cache", "--output-format", "json", *PATHS)
    assert result.stdout.lstrip().startswith("[")
    json.loads(result.stdout)  # nothing but the array
    assert "Found" not in result.stdout


# -- SARIF -----------------------------------------------------------------------------------

def _sarif(*paths: str) -> dict:
    result = run("check", "--no-cache", "--output-format", "sarif", *paths)
    assert result.exit_code == 1
    return json.loads(result.stdout)


def _sarif_validator():
    """A validator for the SARIF 2.1.0 schema, or None when the schema file is absent. The copy in
    shared/schemas keeps the log's schema under ``definitions.Root`` with no top-level constraint
    (as is, it would accept anything), so validate against that definition."""
    if not SARIF_SCHEMA.is_file():
        return None
    import jsonschema

    schema = json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))
    if not {"$ref", "properties", "type"} & set(schema) and "Root" in schema.get("definitions", {}):
        schema = {**schema, "$ref": "#/definitions/Root"}
    return jsonschema.validators.validator_for(schema)(schema)


def test_sarif_validates_against_schema(project):
    validator = _sarif_validator()
    if validator is None:
        pytest.skip(f"SARIF schema not available at {SARIF_SCHEMA}")
    log = _sarif(*PATHS)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.path))
    assert not errors, [(list(e.path), e.message) for e in errors[:5]]
    # The schema does not require much: make sure the validation had something to look at.
    assert log["version"] == "2.1.0"
    assert len(log["runs"][0]["results"]) == 7
    # ... and that the validator does reject what SARIF forbids (lines are 1-based).
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    assert any(True for _ in validator.iter_errors(broken))
    broken = json.loads(json.dumps(log))
    broken["runs"][0]["results"][0]["level"] = "fatal"
    assert any(True for _ in validator.iter_errors(broken))


def test_sarif_results_match_findings(project):
    log = _sarif(*PATHS)
    _, data = run_json("--no-cache", *PATHS)
    run_ = log["runs"][0]
    results = run_["results"]
    assert len(results) == len(data)
    seen = set()
    for result in results:
        location = result["locations"][0]["physicalLocation"]
        region = location["region"]
        seen.add((location["artifactLocation"]["uri"], result["ruleId"], region["startLine"],
                  region["startColumn"]))
        assert run_["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning")
        assert result["message"]["text"]
    assert seen == findings(data)


def test_sarif_rules_are_the_registry(project):
    driver = _sarif(*PATHS)["runs"][0]["tool"]["driver"]
    assert driver["name"] == "evallint"
    assert [rule["id"] for rule in driver["rules"]] == [rule.code for rule in all_rules()]
    by_id = {rule["id"]: rule for rule in driver["rules"]}
    for rule in all_rules():
        assert by_id[rule.code]["name"] == rule.name
        assert by_id[rule.code]["shortDescription"]["text"] == rule.summary
    assert by_id["EL002"]["defaultConfiguration"]["enabled"] is False
    assert by_id["EL101"]["defaultConfiguration"]["enabled"] is True


def test_sarif_related_locations_and_fixes(project):
    results = _sarif(*PATHS)["runs"][0]["results"]
    el101 = next(r for r in results if r["ruleId"] == "EL101")
    related = [(r["physicalLocation"]["artifactLocation"]["uri"], r["physicalLocation"]["region"]["startLine"],
                r["message"]["text"]) for r in el101["relatedLocations"]]
    assert related == [("src/train.py", 15, "called here"), ("src/utils.py", 5, "eval mode set here")]
    el106 = next(r for r in results if r["ruleId"] == "EL106"
                 and r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "evaluate.py")
    change = el106["fixes"][0]["artifactChanges"][0]
    assert change["artifactLocation"]["uri"] == "evaluate.py"
    assert change["replacements"] == [{"deletedRegion": {"startLine": 5, "startColumn": 15, "endLine": 5,
                                                         "endColumn": 15},
                                       "insertedContent": {"text": "()"}}]
    el103 = next(r for r in results if r["ruleId"] == "EL103")  # an unsafe fix: shown too
    assert el103["fixes"][0]["artifactChanges"][0]["replacements"] == [
        {"deletedRegion": {"startLine": 5, "startColumn": 1, "endLine": 5, "endColumn": 1},
         "insertedContent": {"text": "model.eval()\n"}}]


def test_sarif_without_findings_is_valid(tmp_path):
    write(tmp_path, {"evaluate.py": EL106_SCRIPT.replace("model.eval\n", "model.eval()\n")})
    result = run("check", "--no-cache", "--output-format", "sarif", "evaluate.py")
    assert result.exit_code == 0
    log = json.loads(result.stdout)
    assert log["runs"][0]["results"] == []
    validator = _sarif_validator()
    if validator is not None:
        validator.validate(log)
