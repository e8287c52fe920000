"""The text screen: what a file mentions and what it imports, read off its text before (and
instead of) parsing it. No LibCST here: a file the screen rejects is linted without importing it."""

from __future__ import annotations

import re
from typing import Iterator

# What a file must itself mention for a rule to react to it: a mode switch or flag, a grad-mode
# context, a backward pass, an export, a model that arrives in a known mode (pretrained, loaded
# weights, a model factory), or a ``train(self, mode)`` override (EL109: one that only returns
# ``self`` or does nothing mentions no other anchor). A file without one can still matter through
# the project functions it imports (``analysis.relevance``).
ANCHORS = re.compile(
    r"\.\s*(?:eval|train)\b|\.training\b|no_grad|inference_mode|set_grad_enabled|enable_grad|backward"
    r"|from_pretrained|load_from_checkpoint|load_state_dict|torch\.load|torch\.hub|jit\.(?:trace|load)"
    r"|timm\b|torchvision\.models|torchvision\s+import[^\n]*\bmodels\b|segmentation_models_pytorch"
    r"|onnx|torch\.export|fuse_modules"
    r"|\bdef\s+train\s*\(\s*self\s*,\s*(?:mode\b|\w+\s*(?::\s*bool\s*)?=\s*(?:True|False)\b|\w+\s*:\s*bool\b)"
)
# ``import a.b as c, d`` and ``from ..a import (b, c)`` anywhere in a file (functions included).
_IMPORT = re.compile(r"^[ \t]*import[ \t]+([\w. \t,]+)"
                     r"|^[ \t]*from[ \t]+(\.*)[ \t]*([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)",
                     re.MULTILINE)


# Literal parts of the anchors: ``str`` searches for them are far cheaper than the expression.
_NEEDLES = (".eval", ".train", ".training", "no_grad", "inference_mode", "_grad_enabled", "enable_grad",
            "backward", "from_pretrained", "load_from_checkpoint", "load_state_dict", "torch.load",
            "torch.hub", "jit.", "timm", "torchvision", "segmentation_models_pytorch", "onnx",
            "torch.export", "fuse_modules", "def train(")


def may_be_relevant(text: str) -> bool:
    """Cheap textual pre-filter: False means nothing in the file itself can lead to a finding."""
    return any(needle in text for needle in _NEEDLES) and ANCHORS.search(text) is not None


# Layers that ignore the model's mode (EL108), each a screen of its own: a functional dropout or
# batch norm whose arguments do not mention the mode (``F.dropout(x, 0.5)``, through ``F``,
# ``functional`` or the file's own alias of ``torch.nn.functional``), and a dropout or BatchNorm
# layer built inside a ``def forward`` (``nn.Dropout(p)(x)``). Most models pass
# ``training=self.training`` and build their layers in ``__init__``: such files are not let through.
# Each pattern starts with a literal: a leading word boundary, look-behind or character class makes
# ``re`` try every position of the text.
_FUNCTIONAL_LAYERS = frozenset({"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
                                "feature_alpha_dropout", "batch_norm"})
_FUNCTIONAL_CALLS = (re.compile(r"(dropout(?:[123]d)?)[ \t]*\("), re.compile(r"(batch_norm)[ \t]*\("))
# ``import torch.nn.functional as nnf``, ``from torch.nn import functional as fn``
_FUNCTIONAL_ALIAS = re.compile(r"functional[ \t]+as[ \t]+(\w+)")
# ``from torch.nn.functional import dropout as drop``
_RENAMED_FUNCTIONAL = re.compile(
    r"torch\.nn\.functional[ \t]+import[ \t(]+[^\n]*?(?:dropout\w*|batch_norm)[ \t]+as\b")
# ``Drop...(`` also catches project layers (``DropPath``, ``DropConnect``) and ``AlphaDropout``.
_MODE_LAYER_BUILT = re.compile(r"(?:Drop\w*|BatchNorm(?:[123]d)?|InstanceNorm[123]d|StochasticDepth)[ \t]*\(")


def may_ignore_model_mode(text: str) -> bool:
    """Cheap textual pre-filter of EL108: False means no layer in the file can ignore the model's mode."""
    if _functional_without_mode(text):
        return True
    return "def forward" in text and any(_MODE_LAYER_BUILT.search(body) for body in _forward_bodies(text))


def _functional_without_mode(text: str) -> bool:
    """A call of a functional dropout or batch norm, spelled ``F.x(``, ``functional.x(``, through an
    alias of ``torch.nn.functional`` or imported from it by name, whose arguments do not mention
    ``train``."""
    if "torch.nn.functional import" in text and _RENAMED_FUNCTIONAL.search(text):
        return True  # ``from torch.nn.functional import dropout as drop``: rare, not followed
    aliases: list[str] | None = None
    for pattern in _FUNCTIONAL_CALLS:
        for match in pattern.finditer(text):
            start = _skip_back(text, match.start(), _WORD_CHARACTERS)
            if text[start:match.end(1)] not in _FUNCTIONAL_LAYERS:
                continue  # ``self.dropout(x)``, ``my_dropout(x)``
            opening = match.end() - 1
            before = _skip_back(text, start, " \t")
            if text.startswith(".", before - 1):
                owner_end = _skip_back(text, before - 1, " \t")
                owner = text[_skip_back(text, owner_end, _WORD_CHARACTERS):owner_end]
                if owner not in ("F", "functional"):
                    if aliases is None:
                        aliases = _FUNCTIONAL_ALIAS.findall(text) if "functional" in text else []
                    if owner not in aliases:
                        continue
            elif text.startswith("def", before - 3) or "torch.nn.functional import" not in text:
                continue  # a bare ``dropout(`` is F's only when imported from it by name

            if "train" not in _arguments(text, opening + 1):
                return True
    return False


_WORD_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _skip_back(text: str, end: int, characters: str | frozenset[str]) -> int:
    """Where the run of ``characters`` that ends at ``end`` starts."""
    while end and text[end - 1] in characters:
        end -= 1
    return end


def _arguments(text: str, start: int) -> str:
    """The text from ``start`` (after an opening parenthesis) to its closing one (at most 2000
    characters; parentheses in strings are counted too)."""
    depth, end = 1, start
    while depth and end < len(text) and end - start < 2000:
        depth += {"(": 1, ")": -1}.get(text[end], 0)
        end += 1
    return text[start:end]


# A line that starts a definition, or any statement at column 0: where a function above may end.
_BLOCK_START = re.compile(r"\n([ \t]*)(?:def|async|class|@)\b|\n()(?=[A-Za-z_])")


def _forward_bodies(text: str) -> Iterator[str]:
    """The text of each ``def forward`` up to the next ``def``, ``class`` or decorator indented
    no deeper, or statement at column 0 (roughly: class attributes after it are included, and a
    string spanning lines at column 0 cuts it short)."""
    found = text.find("def forward")
    while found != -1:
        line = text.rfind("\n", 0, found) + 1
        indent = text[line:found]
        end = len(text)
        if not indent.strip() and not text[found + 11:found + 12].isidentifier():
            for match in _BLOCK_START.finditer(text, found):
                if len(match.group(1) or "") <= len(indent):
                    end = match.start()
                    break
            yield text[found:end]
        found = text.find("def forward", end if found < end < len(text) else found + 11)


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
