"""The dataflow lattice: each model's possible modes with their origins, and the grad state.

A ``Part`` is the state along the paths that share the same branch assumptions (``phase ==
'train'`` taken true, say); a ``FlowState`` maps assumptions to parts, so that paths which took
opposite branches of the same condition in one iteration are never merged. Parts are treated as
immutable: every update returns a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evallint.analysis.keys import element_key, head, is_within, rebase, variable_index
from evallint.analysis.ops import Mode, Op

if TYPE_CHECKING:
    from evallint.analysis.module import ModuleContext


@dataclass(frozen=True, eq=False)
class Origin:
    """Where a fact came from: an op in a module; ``via`` continues into a called function."""

    op: Op
    context: "ModuleContext"
    via: "Origin | None" = None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Origin) and self.op is other.op and self.via == other.via

    def __hash__(self) -> int:
        return hash((id(self.op), hash(self.via)))

    def innermost(self) -> "Origin":
        origin = self
        while origin.via is not None:
            origin = origin.via
        return origin


@dataclass(frozen=True)
class Fact:
    mode: Mode
    origin: Origin | None = None


ENTRY = frozenset({Fact(Mode.ENTRY)})


class Grad:
    """Flow grad states (from bare ``torch.set_grad_enabled`` statements)."""

    ENTRY = "entry"  # as the caller left it
    ENABLED = "enabled"
    DISABLED = "disabled"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Elements:
    """What a loop variable over a container stands for: each of ``keys``, or each element of
    ``container``."""

    container: str | None = None
    keys: tuple[str, ...] = ()


Alias = "str | Elements"
Assumptions = frozenset  # of (condition text, bool)


class Part:
    __slots__ = ("modes", "aliases", "captured", "grad", "optimizers", "assumptions")

    def __init__(self, modes: dict, aliases: dict, captured: dict, grad: frozenset,
                 optimizers: dict, assumptions: frozenset) -> None:
        self.modes: dict[str, frozenset[Fact]] = modes
        self.aliases: dict[str, str | Elements] = aliases
        self.captured: dict[str, frozenset[Fact]] = captured
        self.grad: frozenset[tuple[str, Op | None]] = grad
        self.optimizers: dict[str, tuple[str, ...] | None] = optimizers
        self.assumptions: frozenset[tuple[str, bool]] = assumptions

    @classmethod
    def initial(cls, grad: str) -> "Part":
        return cls({}, {}, {}, frozenset({(grad, None)}), {}, frozenset())

    def replace(self, **changes: object) -> "Part":
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(changes)
        return Part(**values)  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Part) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    # -- keys ------------------------------------------------------------------------------

    def canonical(self, key: str) -> str | Elements:
        """``key`` with its head followed through aliases (``net = model`` makes net.x model.x)."""
        for _ in range(8):
            name = self._aliased_element(key) or head(key)
            target = self.aliases.get(name)
            if target is None:
                return key
            if isinstance(target, Elements):
                return target if key == name else key
            key = rebase(key, name, target)
        return key

    def _aliased_element(self, key: str) -> str | None:
        """The longest element key within ``key`` that is an alias (``b['model'] = a['model']``)."""
        if "[" not in key:
            return None
        candidates = [name for name in self.aliases if "[" in name and (name == key or is_within(key, name))]
        return max(candidates, key=len) if candidates else None

    def targets(self, key: str) -> list[str]:
        """The tracked keys that an operation on ``key`` applies to."""
        resolved = self.canonical(key)
        if isinstance(resolved, str):
            indexed = variable_index(resolved)
            if indexed is not None and self.ranges_over(indexed[1], indexed[0]):
                return self.elements(indexed[0])  # ``for k in d: d[k]``
            return [resolved]
        if resolved.keys:
            return [self.canonical_str(k) for k in resolved.keys]
        return self.elements(self.canonical_str(resolved.container or ""))

    def elements(self, container: str) -> list[str]:
        """The tracked keys within ``container``, and ``container[*]`` for the others."""
        return [k for k in self.modes if is_within(k, container)] + [f"{container}[*]"]

    def ranges_over(self, index: str, container: str) -> bool:
        """Is ``index`` a loop variable over the keys (or indices) of ``container``?"""
        alias = self.aliases.get(index)
        return isinstance(alias, Elements) and alias.container is not None \
            and alias.container == self.canonical_str(container)

    def some_element(self, key: str) -> str | None:
        """The container of ``d[name]`` when ``name`` is not known to range over it."""
        resolved = self.canonical_str(key)
        indexed = variable_index(resolved)
        return indexed[0] if indexed is not None and self.targets(key) == [resolved] else None

    def canonical_str(self, key: str) -> str:
        resolved = self.canonical(key)
        return resolved if isinstance(resolved, str) else key

    def stored(self, target: str) -> frozenset[Fact]:
        """The facts kept for ``target``; for an element not tracked by itself (``d['G']``), those
        set on every element of its container (``d[*]``)."""
        facts = self.modes.get(target)
        if facts is None:
            whole = element_key(target)
            facts = self.modes.get(whole, ENTRY) if whole is not None else ENTRY
        return facts

    def facts(self, key: str) -> frozenset[Fact]:
        container = self.some_element(key)
        if container is not None:
            return self.shared_facts(container)
        found: frozenset[Fact] = frozenset()
        for target in self.targets(key):
            found |= self.stored(target)
        return found or ENTRY

    def shared_facts(self, container: str) -> frozenset[Fact]:
        """The facts of ``d[name]`` for an unknown ``name``: the modes every element shares
        (with where they were set), unknown when the elements differ."""
        whole = f"{container}[*]"
        per_element = [self.stored(k) for k in self.modes if element_key(k) == whole] + [self.stored(whole)]
        if len({frozenset(f.mode for f in facts) for facts in per_element}) > 1:
            return frozenset({Fact(Mode.UNKNOWN)})
        return frozenset().union(*per_element)

    def set_facts(self, key: str, facts: frozenset[Fact]) -> "Part":
        modes = dict(self.modes)
        container = self.some_element(key)
        if container is not None:  # ``d[name].eval()``: which element is unknown
            targets = self.elements(container)
            facts = frozenset(Fact(Mode.UNKNOWN, f.origin) for f in facts)
        else:
            targets = self.targets(key)
        for target in targets:
            modes[target] = facts
        return self.replace(modes=modes)

    def rebind(self, key: str) -> "Part":
        """Forget what ``key`` was: other names aliased to it keep the old object's facts."""
        modes = dict(self.modes)
        aliases = dict(self.aliases)
        for name, target in self.aliases.items():
            if target == key:
                del aliases[name]
                if key in modes:
                    modes[name] = modes[key]
        aliases.pop(key, None)
        for name in [name for name in aliases if is_within(name, key)]:
            del aliases[name]  # ``b = {}`` ends ``b['model'] = a['model']``
        for tracked in list(modes):
            if tracked == key or is_within(tracked, key):
                del modes[tracked]
        optimizers = {k: v for k, v in self.optimizers.items() if k != key}
        captured = {k: v for k, v in self.captured.items() if k != key}
        return Part(modes, aliases, captured, self.grad, optimizers, self.assumptions)

    def drop_assumptions(self, names: set[str]) -> "Part":
        kept = frozenset(a for a in self.assumptions if not (a[0] in names))
        return self if kept == self.assumptions else self.replace(assumptions=kept)


def join_parts(a: Part, b: Part) -> Part:
    modes: dict[str, frozenset[Fact]] = {}
    for key in a.modes.keys() | b.modes.keys():
        modes[key] = a.stored(key) | b.stored(key)
    aliases = {k: v for k, v in a.aliases.items() if b.aliases.get(k) == v}
    captured = {k: a.captured[k] | b.captured[k] for k in a.captured.keys() & b.captured.keys()}
    optimizers: dict[str, tuple[str, ...] | None] = {}
    for key in a.optimizers.keys() | b.optimizers.keys():
        left, right = a.optimizers.get(key), b.optimizers.get(key)
        optimizers[key] = tuple(dict.fromkeys((left or ()) + (right or ()))) or None
    return Part(modes, aliases, captured, a.grad | b.grad, optimizers, a.assumptions)


FlowState = dict  # frozenset of assumptions -> Part


def join_states(a: FlowState, b: FlowState) -> FlowState:
    joined = dict(a)
    for assumptions, part in b.items():
        existing = joined.get(assumptions)
        joined[assumptions] = part if existing is None else join_parts(existing, part)
    return joined
