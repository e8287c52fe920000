"""Keys: the names under which the analysis tracks models (``model``, ``self.net``, ``d['G']``)."""

from __future__ import annotations

import libcst as cst

# Attribute names that stand for the wrapped model itself (DDP/DataParallel, torch.compile).
_SAME_MODEL_ATTRS = frozenset({"module", "_orig_mod"})


def key_of(node: cst.BaseExpression) -> str | None:
    """The key of a Name/Attribute/Subscript chain, or None for other expressions. A subscript by
    a constant is one element (``d['G']``), by a variable some element (``d[k]``, last in a key)."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = key_of(node.value)
        if base is None:
            return None
        if node.attr.value in _SAME_MODEL_ATTRS:
            return base
        return None if variable_index(base) else f"{base}.{node.attr.value}"
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        index = node.slice[0].slice
        base = key_of(node.value)
        if not isinstance(index, cst.Index) or base is None or variable_index(base):
            return None
        literal = index.value
        if isinstance(literal, (cst.SimpleString, cst.Integer)):
            text = repr(literal.evaluated_value) if isinstance(literal, cst.SimpleString) \
                else literal.value
            return f"{base}[{text}]"
        if isinstance(literal, cst.Name) and literal.value not in ("True", "False", "None"):
            return f"{base}[{literal.value}]"
    return None


def variable_index(key: str) -> tuple[str, str] | None:
    """``(d, k)`` for the key ``d[k]`` of a subscript by the variable ``k``, else None."""
    if not key.endswith("]"):
        return None
    container, _, index = key[:-1].rpartition("[")
    return (container, index) if container and index.isidentifier() else None


def element_key(key: str) -> str | None:
    """``d[*]`` for a key ``d['G']`` or ``d[0]`` of one element of ``d``: where a mode set on
    every element of ``d`` is kept. None for other keys."""
    if not key.endswith("]") or variable_index(key):
        return None
    container = key[:-1].rpartition("[")[0]
    return f"{container}[*]" if container and not key.endswith("[*]") else None


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
