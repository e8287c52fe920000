"""Lines as Python (and LibCST positions) count them: only ``\\n``, ``\\r\\n`` and ``\\r`` end a line,
not the form feeds and Unicode separators that ``str.splitlines`` also splits on."""

from __future__ import annotations

import re

LINE_END = re.compile(r"\r\n|\r|\n")


def split_lines(text: str, keepends: bool = False) -> list[str]:
    """``text`` split into physical lines; like ``str.splitlines`` for ordinary files."""
    lines: list[str] = []
    start = 0
    for match in LINE_END.finditer(text):
        lines.append(text[start:match.end() if keepends else match.start()])
        start = match.end()
    if start < len(text):
        lines.append(text[start:])
    return lines
