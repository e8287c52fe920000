"""Fast access to the children of LibCST nodes."""

from __future__ import annotations

import libcst as cst


_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}
_SKIPPED_FIELD_PREFIXES = ("whitespace", "lpar", "rpar", "comma", "semicolon", "colon", "dot",
                           "operator", "equal", "star", "lbracket", "rbracket", "lbrace", "rbrace")


def child_nodes(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The child nodes of ``node`` that can hold expressions, without LibCST's visitor machinery
    (``CSTNode.children`` walks a visitor per call and dominates the cost of a traversal)."""
    fields = _CHILD_FIELDS.get(type(node))
    if fields is None:
        fields = tuple(name for name in node.__dataclass_fields__
                       if not name.startswith(_SKIPPED_FIELD_PREFIXES))
        _CHILD_FIELDS[type(node)] = fields
    found: list[cst.CSTNode] = []
    for name in fields:
        value = getattr(node, name)
        kind = type(value)
        if kind is tuple or kind is list:
            found.extend(item for item in value if _is_node(type(item)))
        elif _is_node(kind):
            found.append(value)
    return found


def _is_node(kind: type) -> bool:
    """``issubclass(kind, CSTNode)``, remembered per type (``isinstance`` against LibCST's ABCs
    is slow)."""
    known = _NODE_TYPES.get(kind)
    if known is None:
        known = _NODE_TYPES[kind] = issubclass(kind, cst.CSTNode)
    return known


_NODE_TYPES: dict[type, bool] = {}
