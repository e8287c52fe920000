"""Keys: the names under which the analysis tracks models (``model``, ``self.net``, ``d['G']``)."""

from __future__ import annotations

import libcst as cst

# Attribute names that stand for the wrapped model itself (DDP/DataParallel, torch.compile).
_SAME_MODEL_ATTRS = frozenset({"module", "_orig_mod"})


def key_of(node: cst.BaseExpression) -> str | None:
    """The key of a Name/Attribute/constant-Subscript chain, or None for other expressions."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = key_of(node.value)
        if base is None:
            return None
        if node.attr.value in _SAME_MODEL_ATTRS:
            return base
        return f"{base}.{node.attr.value}"
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        index = node.slice[0].slice
        if isinstance(index, cst.Index) and isinstance(index.value, (cst.SimpleString, cst.Integer)):
            base = key_of(node.value)
            literal = index.value
            if base is not None:
                text = repr(literal.evaluated_value) if isinstance(literal, cst.SimpleString) \
                    else literal.value
                return f"{base}[{text}]"
    return None


def head(key: str) -> str:
    """The variable a key starts from: ``self`` for ``self.models['G']``."""
    end = len(key)
    for sep in (".", "["):
        position = key.find(sep)
        if position != -1:
            end = min(end, position)
    return key[:end]


def rebase(key: str, old_head: str, new_base: str) -> str:
    """Replace the head of ``key`` (which must be ``old_head``) by ``new_base``."""
    return new_base + key[len(old_head):]


def is_within(key: str, container: str) -> bool:
    """Is ``key`` an element or attribute of ``container`` (``d['G']`` within ``d``)?"""
    return key.startswith(container) and key[len(container):len(container) + 1] in (".", "[")
