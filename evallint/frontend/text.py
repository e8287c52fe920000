"""The text screen: what a file mentions and what it imports, read off its text before (and
instead of) parsing it. No LibCST here: a file the screen rejects is linted without importing it."""

from __future__ import annotations

import re

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
