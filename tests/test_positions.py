"""Our token-index positions agree with LibCST's PositionProvider on every node."""

from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from evallint.frontend.positions import Positions

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "fixtures").rglob("*.py"))[::7] + [ROOT / "evallint" / "frontend" / "cfg.py"]
TRICKY = '''\
@decorator(
    arg)  # comment
async def f(a, /, b=1, *c, d, **e) -> "x":
    """doc"""
    x = (yield)
    async with a as (b, c), d:
        pass
    match x:
        case [1, *rest] if rest:
            return {**e}
    lambda: (y := 3)
    return f"{a!r:>{b}}" \\
        + 'tail'\r
'''


@pytest.mark.parametrize("text", [p.read_text(encoding="utf-8") for p in SAMPLES] + [TRICKY],
                         ids=[p.name for p in SAMPLES] + ["tricky"])
def test_positions_match_libcst(text):
    module = cst.parse_module(text)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    positions = Positions(module)
    for node, code_range in expected.items():
        start, end = positions.range_of(node)
        assert (start, end) == ((code_range.start.line, code_range.start.column),
                                (code_range.end.line, code_range.end.column)), type(node).__name__


def test_fallback_to_position_provider_gives_the_same_ranges(monkeypatch):
    from evallint.frontend import positions as positions_module

    module = cst.parse_module(TRICKY)
    fast = Positions(module)
    monkeypatch.setattr(positions_module, "CodegenState", object)
    slow = Positions(module)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    for node in expected:
        assert slow.range_of(node) == fast.range_of(node)
