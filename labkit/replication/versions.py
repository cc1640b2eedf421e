"""Versioned values and sibling sets (Dynamo, SOSP 2007, §4.4).

Every value a replica stores carries a :class:`~labkit.clocks.VectorClock`.
A replica keeps, per key, a *sibling set*: the versions that no other
version it has seen dominates. A write whose clock dominates a sibling
replaces it; a write that a sibling dominates is obsolete and ignored; a
concurrent write joins the set. A read returns the whole set, and the
client's next write (with the merged clocks of what it read as *context*)
supersedes all of it: that is reconciliation.

With :attr:`Resolution.LAST_WRITER_WINS` the set has at most one element,
the version with the largest ``(timestamp, writer)`` pair; a concurrent
write with a smaller timestamp is dropped without a trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit.clocks import Ordering, VectorClock
from labkit.replication.modes import Resolution

__all__ = [
    "Versioned",
    "Siblings",
    "reconcile",
    "merge_siblings",
    "context_of",
    "covers",
    "check_siblings",
    "same_versions",
]


@dataclass(frozen=True, slots=True)
class Versioned:
    """One version of one key's value.

    ``clock`` identifies the version (the coordinator gives each write a
    fresh counter, so two writes never share a clock); ``timestamp`` is the
    coordinator's physical clock when it took the write and is used only
    by last-writer-wins; ``writer`` is the coordinator's node id.
    """

    value: Any
    clock: VectorClock
    timestamp: float = 0.0
    writer: str = ""

    def __repr__(self) -> str:
        return f"Versioned({self.value!r}, {self.clock})"


Siblings = tuple[Versioned, ...]
"""A key's versions, none dominated by another (empty: never written)."""


def _lww_key(v: Versioned) -> tuple[float, str, tuple]:
    # Ties on the timestamp are broken by writer id, then by the clock's
    # entries, so every replica picks the same winner.
    return (v.timestamp, v.writer, tuple(v.clock))


def reconcile(
    siblings: Siblings, incoming: Versioned, resolution: Resolution = Resolution.VECTOR_CLOCKS
) -> Siblings:
    """The sibling set after ``incoming`` arrives at a replica holding ``siblings``."""
    if resolution is Resolution.LAST_WRITER_WINS:
        if not siblings:
            return (incoming,)
        best = siblings[0]
        for s in siblings[1:]:
            if _lww_key(s) > _lww_key(best):
                best = s
        return (incoming,) if _lww_key(incoming) > _lww_key(best) else (best,)
    kept: list[Versioned] = []
    for s in siblings:
        order = incoming.clock.compare(s.clock)
        if order is Ordering.BEFORE or order is Ordering.EQUAL:
            # Invariant (siblings pairwise concurrent) means nothing else in
            # the set can be dominated by incoming, so the set is unchanged.
            return siblings
        if order is Ordering.CONCURRENT:
            kept.append(s)
        # AFTER: incoming supersedes s; drop s.
    kept.append(incoming)
    return tuple(kept)


def merge_siblings(
    a: Siblings, b: Iterable[Versioned], resolution: Resolution = Resolution.VECTOR_CLOCKS
) -> Siblings:
    """Reconcile every version of ``b`` into ``a`` (order does not matter)."""
    out = a
    for v in b:
        out = reconcile(out, v, resolution)
    return out


def context_of(siblings: Iterable[Versioned]) -> VectorClock:
    """The merged clock of a read: a write carrying it supersedes all of them."""
    ctx = VectorClock()
    for v in siblings:
        ctx = ctx.merge(v.clock)
    return ctx


def covers(siblings: Siblings, clock: VectorClock) -> bool:
    """True if some version in ``siblings`` equals or descends from ``clock``."""
    return any(clock <= s.clock for s in siblings)


def check_siblings(siblings: Siblings, resolution: Resolution = Resolution.VECTOR_CLOCKS) -> None:
    """Raise AssertionError unless the set is well formed for ``resolution``."""
    # Invariant: siblings are pairwise concurrent (no version dominates or
    # equals another); under last-writer-wins there is at most one.
    if resolution is Resolution.LAST_WRITER_WINS:
        assert len(siblings) <= 1, f"last-writer-wins keeps one version, found {siblings!r}"
        return
    for i, a in enumerate(siblings):
        for b in siblings[i + 1 :]:
            assert a.clock.concurrent_with(b.clock), f"siblings {a!r} and {b!r} are not concurrent"


def same_versions(a: Siblings, b: Siblings) -> bool:
    """True if two sibling sets hold the same versions, in any order."""
    return len(a) == len(b) and {v.clock for v in a} == {v.clock for v in b}
