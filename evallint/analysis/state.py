"""The dataflow lattice: each model's possible modes with their origins, and the grad state.

A ``Part`` is the state along the paths that share the same branch assumptions (``phase ==
'train'`` taken true, say); a ``FlowState`` maps assumptions to parts, so that paths which took
opposite branches of the same condition in one iteration are never merged. Parts are treated as
immutable: every update returns a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evallint.analysis.keys import head, is_within, rebase
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
            target = self.aliases.get(head(key))
            if target is None:
                return key
            if isinstance(target, Elements):
                return target if key == head(key) else key
            key = rebase(key, head(key), target)
        return key

    def targets(self, key: str) -> list[str]:
        """The tracked keys that an operation on ``key`` applies to."""
        resolved = self.canonical(key)
        if isinstance(resolved, str):
            return [resolved]
        if resolved.keys:
            return [self.canonical_str(k) for k in resolved.keys]
        container = self.canonical_str(resolved.container or "")
        within = [k for k in self.modes if is_within(k, container)]
        return within + [f"{container}[*]"]

    def canonical_str(self, key: str) -> str:
        resolved = self.canonical(key)
        return resolved if isinstance(resolved, str) else key

    def facts(self, key: str) -> frozenset[Fact]:
        found: frozenset[Fact] = frozenset()
        for target in self.targets(key):
            found |= self.modes.get(target, ENTRY)
        return found or ENTRY

    def set_facts(self, key: str, facts: frozenset[Fact]) -> "Part":
        modes = dict(self.modes)
        for target in self.targets(key):
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
        modes[key] = a.modes.get(key, ENTRY) | b.modes.get(key, ENTRY)
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
