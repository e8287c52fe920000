"""A parsed source file: text, LibCST module, and positions computed only when reported."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import libcst as cst

from evallint.diagnostics import Span
from evallint.frontend.positions import Positions

# What a file must itself mention for a rule to react to it: a mode switch or flag, a grad-mode
# context, a backward pass, an export, or a model that arrives in a known mode (pretrained, loaded
# weights, a model factory). A file without one can still matter through the project functions
# it imports (``analysis.relevance``).
ANCHORS = re.compile(
    r"\.\s*(?:eval|train)\b|\.training\b|no_grad|inference_mode|set_grad_enabled|enable_grad|backward"
    r"|from_pretrained|load_from_checkpoint|load_state_dict|torch\.load|torch\.hub|jit\.(?:trace|load)"
    r"|timm\b|torchvision\.models|torchvision\s+import[^\n]*\bmodels\b|segmentation_models_pytorch"
    r"|onnx|torch\.export|fuse_modules"
)
# ``import a.b as c, d`` and ``from ..a import (b, c)`` anywhere in a file (functions included).
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w. \t,]+)"
                     r"|^[ \t]*from[ \t]+(\.*)[ \t]*([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)",
                     re.MULTILINE)


# Literal parts of the anchors: ``str`` searches for them are far cheaper than the expression.
_NEEDLES = (".eval", ".train", ".training", "no_grad", "inference_mode", "_grad_enabled", "enable_grad",
            "backward", "from_pretrained", "load_from_checkpoint", "load_state_dict", "torch.load",
            "torch.hub", "jit.", "timm", "torchvision", "segmentation_models_pytorch", "onnx",
            "torch.export", "fuse_modules")


def may_be_relevant(text: str) -> bool:
    """Cheap textual pre-filter: False means nothing in the file itself can lead to a finding."""
    return any(needle in text for needle in _NEEDLES) and ANCHORS.search(text) is not None


def import_statements(text: str) -> list[tuple[int, str, tuple[tuple[str, str], ...]]]:
    """(level, module, (name, local name) pairs imported from it) of every import statement in
    ``text``, read off the text without parsing: ``import a.b`` gives ``(0, "a.b", ())``,
    ``from ..x import (y, z as w)`` gives ``(2, "x", (("y", "y"), ("z", "w")))``, a star import
    the name ``*``."""
    found: list[tuple[int, str, tuple[tuple[str, str], ...]]] = []
    for match in _IMPORT.finditer(text):
        plain, dots, module, names = match.groups()
        if plain is not None:
            found += [(0, part.split()[0], ()) for part in plain.split(",") if part.split()]
            continue
        words = (name.split() for name in names.strip("() \t\n").split(","))
        found.append((len(dots), module, tuple(
            (w[0], w[2] if len(w) == 3 and w[1] == "as" else w[0])
            for w in words if w and (w[0] == "*" or w[0].isidentifier()))))
    return found


def _precise_failure(text: str) -> "ParseFailure | None":
    """Python's own message and position for a file LibCST rejects: LibCST's parser reports
    some errors a few tokens late. None when Python itself accepts the text."""
    try:
        ast.parse(text)
    except SyntaxError as error:
        return ParseFailure(error.msg, error.lineno or 1, error.offset or 1)
    except (ValueError, RecursionError, MemoryError):
        return None
    return None


class ParseFailure(Exception):
    """The file is not valid Python; carries the 1-based position of the error."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(eq=False)
class SourceModule:
    """One parsed file. ``path`` is as the user gave it (or as found on disk for imports)."""

    path: str
    text: str
    module: cst.Module
    _positions: Positions | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, path: str, text: str) -> "SourceModule":
        try:
            module = cst.parse_module(text)
        except cst.ParserSyntaxError as error:
            raise _precise_failure(text) or ParseFailure(
                error.message, error.raw_line, error.raw_column + 1) from error
        return cls(path=path, text=text, module=module)

    def span_of(self, node: cst.CSTNode) -> Span:
        """1-based, end-exclusive span of ``node``; positions are computed on first use only."""
        if self._positions is None:
            self._positions = Positions(self.module)  # falls back to PositionProvider if needed
        if node not in self._positions and isinstance(node, cst.Expr):
            node = node.value  # a statement the CFG made from a branch of ``a() if c else b()``
        (line, column), (end_line, end_column) = self._positions.range_of(node)
        return Span(line, column + 1, end_line, end_column + 1)

    def code_for(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)
