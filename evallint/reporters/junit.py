"""``junit``: JUnit XML for the test report views of CI services (GitLab ``artifacts: reports:
junit:``, Jenkins, Azure). Each finding is a failed test case (an ``error`` for EL000, a failure of
evallint itself) in the class named by its file, so that each one is listed, and tracked between
runs, on its own; each linted file without findings is one passing test case."""

from __future__ import annotations

import re

from evallint.reporters.context import ReportContext, location

FORMAT = "junit"

# What XML 1.0 cannot hold, not even escaped (control characters).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def _case_name(d) -> str:
    where = f"cell {d.cell}, " if d.cell is not None else ""
    return f"{d.code} ({d.name}) at {where}line {d.span.line}, column {d.span.column}"


def _details(d) -> str:
    lines = [f"{location(d.path, d.span.line, d.span.column, d.cell)}: {d.code} {d.message}"]
    lines += [f"  = {r.message}: {r.path}:{r.span.line}:{r.span.column}" for r in d.related]
    lines += [f"  = note: {note}" for note in d.notes]
    if d.fix is not None:
        lines.append(f"  = help: {d.fix.message}")
    return "\n".join(lines)


def write(diagnostics: list, context: ReportContext) -> None:
    import xml.etree.ElementTree as ET  # only when this format writes: every run lists the formats

    by_path: dict[str, list] = {}
    for d in diagnostics:
        by_path.setdefault(d.path, []).append(d)
    suite = ET.Element("testsuite", name="evallint")
    failures = errors = tests = 0
    for path in sorted(set(context.paths) | set(by_path)):
        found = by_path.get(path, [])
        if not found:
            ET.SubElement(suite, "testcase", name="evallint", classname=_clean(path), file=_clean(path))
            tests += 1
        for d in found:
            case = ET.SubElement(suite, "testcase", name=_clean(_case_name(d)), classname=_clean(path),
                                 file=_clean(path), line=str(d.span.line))
            kind = "error" if d.code == "EL000" else "failure"
            outcome = ET.SubElement(case, kind, message=_clean(d.message), type=d.code)
            outcome.text = _clean(_details(d))
            tests += 1
            errors += kind == "error"
            failures += kind == "failure"
    counts = {"tests": str(tests), "failures": str(failures), "errors": str(errors)}
    suite.attrib.update(counts, skipped="0")
    root = ET.Element("testsuites", name="evallint", **counts)
    root.append(suite)
    ET.indent(root)
    context.out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    context.out.write(ET.tostring(root, encoding="unicode"))
    context.out.write("\n")
