"""Versions with dotted version vectors, and sibling sets (Dynamo, SOSP 2007, §4.4;
Preguiça, Baquero, Almeida, Fonte and Gonçalves, "Dotted Version Vectors", 2010/2012).

Every value a replica stores is a :class:`Versioned`: the value, a **dot**
and a **context**.

* The dot ``(node, counter)`` names the write: the coordinator ``node``
  counted it as its ``counter``-th write. No two writes share a dot.
* The context is the :class:`~labkit.clocks.VectorClock` the client sent
  with the write: everything it had read before writing. The write
  supersedes exactly the versions whose dots that context has seen.

A replica keeps, per key, a *sibling set*: the versions that no other
version it knows of has seen. A stored version is discarded only when a new
version's context covers its dot; a version whose dot some sibling's
context already covers is obsolete and ignored; anything else joins the
set. A read returns the whole set, and its context (the join of every
sibling's context and dot) lets the client's next write supersede all of
it: that is reconciliation.

Why a dot and not one vector per version, as the Dynamo paper describes?
If the coordinator stamps a write by merging the client's context with its
own counter, two blind writes through ``n1`` get ``[n1:1]`` and ``[n1:2]``,
and the second *looks* as if it had seen the first: one of two concurrent
writes is silently lost. With a dot the second write is
``n1:2`` with an empty context, which has not seen ``n1:1``: two siblings.

Folding a version's dot into a vector (:attr:`Versioned.clock`) is safe for
a read's context only if every set of versions that holds ``n1:5`` also
knows ``n1:4`` (holds it, or holds a version whose context covers it).
The coordinator makes that true by sending, with every new write, the
versions of the key it stamped earlier that no context has covered yet
(:mod:`labkit.replication.coordinator`).

With :attr:`Resolution.LAST_WRITER_WINS` the set has at most one element,
the version with the largest ``(timestamp, dot)`` pair; a concurrent write
with a smaller timestamp is dropped without a trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.clocks import VectorClock
from labkit.replication.modes import Resolution


@dataclass(frozen=True, slots=True, order=True)
class Dot:
    """The name of one write: the ``counter``-th write coordinated by ``node``."""

    node: str
    counter: int

    def __post_init__(self) -> None:
        valid.string("node", self.node)
        valid.integer("counter", self.counter, ge=1)

    def seen_by(self, clock: VectorClock) -> bool:
        """True if ``clock`` covers this write (its entry for ``node`` is at least ``counter``)."""
        return clock[self.node] >= self.counter

    def __repr__(self) -> str:
        return f"{self.node}:{self.counter}"


@dataclass(frozen=True, slots=True)
class Versioned:
    """One version of one key's value.

    ``dot`` names the write; ``context`` is what the writer had seen (the
    versions this one supersedes); ``timestamp`` is the coordinator's
    physical clock when it took the write and is used only by
    last-writer-wins.
    """

    value: Any
    dot: Dot
    context: VectorClock = VectorClock()
    timestamp: float = 0.0

    def __post_init__(self) -> None:
        valid.instance("dot", self.dot, Dot)
        valid.instance("context", self.context, VectorClock)
        valid.number("timestamp", self.timestamp, unit="seconds")

    @property
    def clock(self) -> VectorClock:
        """The context with the dot folded in: this version and everything it has seen, as one vector."""
        return self.context.merge(VectorClock({self.dot.node: self.dot.counter}))

    def supersedes(self, other: Versioned) -> bool:
        """True if this version's writer had seen ``other`` (its context covers ``other``'s dot)."""
        return other.dot.seen_by(self.context)

    def __repr__(self) -> str:
        return f"Versioned({self.value!r}, dot={self.dot}, context={self.context})"


Siblings = tuple[Versioned, ...]
"""A key's versions, none superseded by another (empty: never written)."""


def _check_siblings_arg(siblings: Any, name: str = "siblings") -> None:
    if isinstance(siblings, (str, bytes)) or not isinstance(siblings, (tuple, list)):
        raise valid.ArgumentTypeError(f"{name} must be a tuple of Versioned, got {valid.shown(siblings)}")
    for i, v in enumerate(siblings):
        valid.instance(f"{name}[{i}]", v, Versioned)


def _lww_key(v: Versioned) -> tuple[float, Dot]:
    # Ties on the timestamp are broken by the dot, so every replica picks the same winner.
    return (v.timestamp, v.dot)


def reconcile(
    siblings: Siblings, incoming: Versioned, resolution: Resolution = Resolution.VECTOR_CLOCKS
) -> Siblings:
    """The sibling set after ``incoming`` arrives at a replica holding ``siblings``."""
    _check_siblings_arg(siblings)
    valid.instance("incoming", incoming, Versioned)
    valid.instance("resolution", resolution, Resolution)
    if resolution is Resolution.LAST_WRITER_WINS:
        if not siblings:
            return (incoming,)
        best = max(siblings, key=_lww_key)
        return (incoming,) if _lww_key(incoming) > _lww_key(best) else (best,)
    if any(s.dot == incoming.dot or s.supersedes(incoming) for s in siblings):
        return siblings  # already here, or already superseded: nothing new
    # Keep every version the incoming writer had not seen.
    return (*(s for s in siblings if not incoming.supersedes(s)), incoming)


def merge_siblings(
    a: Siblings, b: Iterable[Versioned], resolution: Resolution = Resolution.VECTOR_CLOCKS
) -> Siblings:
    """Reconcile every version of ``b`` into ``a`` (order does not matter)."""
    out = a
    for v in b:
        out = reconcile(out, v, resolution)
    return out


def context_of(siblings: Iterable[Versioned]) -> VectorClock:
    """The context of a read: a write carrying it supersedes every one of ``siblings``."""
    siblings = tuple(siblings) if not isinstance(siblings, (str, bytes)) else siblings
    _check_siblings_arg(siblings)
    ctx = VectorClock()
    for v in siblings:
        ctx = ctx.merge(v.clock)
    return ctx


def covers(siblings: Siblings, version: Versioned | Dot) -> bool:
    """True if ``version`` (or the write with this dot) is in ``siblings`` or was seen by one of them."""
    _check_siblings_arg(siblings)
    valid.instance("version", version, (Versioned, Dot))
    dot = version.dot if isinstance(version, Versioned) else version
    return any(s.dot == dot or dot.seen_by(s.context) for s in siblings)


def check_siblings(siblings: Siblings, resolution: Resolution = Resolution.VECTOR_CLOCKS) -> None:
    """Raise AssertionError unless the set is well formed for ``resolution``."""
    _check_siblings_arg(siblings)
    valid.instance("resolution", resolution, Resolution)
    # Invariant: the dots are distinct and no sibling supersedes another;
    # under last-writer-wins there is at most one.
    if resolution is Resolution.LAST_WRITER_WINS:
        assert len(siblings) <= 1, f"last-writer-wins keeps one version, found {siblings!r}"
        return
    assert len({v.dot for v in siblings}) == len(siblings), f"two siblings share a dot: {siblings!r}"
    for a in siblings:
        for b in siblings:
            assert a is b or not a.supersedes(b), f"sibling {a!r} supersedes {b!r}"


def same_versions(a: Siblings, b: Siblings) -> bool:
    """True if two sibling sets hold the same versions, in any order."""
    return len(a) == len(b) and {v.dot for v in a} == {v.dot for v in b}
