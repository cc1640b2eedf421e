"""Counters that converge: the G-counter and the PN-counter.

Shapiro et al., *A comprehensive study of Convergent and Commutative
Replicated Data Types* (INRIA RR-7506, 2011), §3.1 (counters):

* :class:`GCounter` (grow-only): one entry per replica, which only that
  replica increments. The value is the sum; ``merge`` takes the larger entry
  for each replica. A replica's own entry is the number of increments it
  made, so taking the maximum never counts an increment twice, however often
  states are exchanged.
* :class:`PNCounter`: two G-counters, one for increments (P) and one for
  decrements (N); the value is P - N.

Why not keep a single number? Merging two totals by ``max`` loses the
increments made on the other side, and by ``+`` counts again everything
both replicas had already seen: only the per-replica entries make the merge
idempotent.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from labkit import validation as valid
from labkit.crdt.base import StateCRDT

__all__ = ["GCounter", "PNCounter"]


class GCounter(StateCRDT):
    """A grow-only counter: ``replica -> increments made there``.

    >>> a = GCounter().increment("A").increment("A")
    >>> b = GCounter().increment("B")
    >>> a.merge(b).value, a.merge(b) == b.merge(a)
    (3, True)
    """

    __slots__ = ("_counts",)

    # Invariant: every stored count is >= 1 (zeros are not stored), keys sorted.
    _counts: dict[str, int]

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        counts = {} if counts is None else counts
        valid.instance("counts", counts, Mapping)
        for r, c in counts.items():
            valid.string("counts key", r)
            valid.integer(f"counts[{r!r}]", c, ge=0)
        self._counts = {r: c for r, c in sorted(counts.items()) if c}

    def increment(self, replica: str, n: int = 1) -> GCounter:
        """Add ``n`` (>= 1) at ``replica``: only that replica's entry grows."""
        valid.string("replica", replica)
        valid.integer("n", n, ge=1)
        counts = dict(self._counts)
        counts[replica] = counts.get(replica, 0) + n
        return GCounter(counts)

    def merge(self, other: GCounter) -> GCounter:
        """The larger entry of each replica."""
        self._same_type(other)
        counts = dict(self._counts)
        for r, c in other._counts.items():
            if c > counts.get(r, 0):
                counts[r] = c
        return GCounter(counts)

    @property
    def value(self) -> int:
        """The sum of all entries."""
        return sum(self._counts.values())

    @property
    def counts(self) -> Mapping[str, int]:
        """The entries (read-only)."""
        return MappingProxyType(self._counts)

    def metadata(self) -> dict[str, int]:
        return {"entries": len(self._counts)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GCounter) and self._counts == other._counts

    def __hash__(self) -> int:
        return hash(tuple(self._counts.items()))

    def __repr__(self) -> str:
        return f"GCounter({self._counts!r})"


class PNCounter(StateCRDT):
    """A counter that goes up and down: increments ``p`` minus decrements ``n``."""

    __slots__ = ("p", "n")

    def __init__(self, p: GCounter | None = None, n: GCounter | None = None) -> None:
        self.p = GCounter() if p is None else valid.instance("p", p, GCounter)
        self.n = GCounter() if n is None else valid.instance("n", n, GCounter)

    def increment(self, replica: str, by: int = 1) -> PNCounter:
        """Add ``by`` (>= 1) at ``replica``."""
        return PNCounter(self.p.increment(replica, by), self.n)

    def decrement(self, replica: str, by: int = 1) -> PNCounter:
        """Subtract ``by`` (>= 1) at ``replica``."""
        return PNCounter(self.p, self.n.increment(replica, by))

    def merge(self, other: PNCounter) -> PNCounter:
        """Merge the increments and the decrements separately."""
        self._same_type(other)
        return PNCounter(self.p.merge(other.p), self.n.merge(other.n))

    @property
    def value(self) -> int:
        return self.p.value - self.n.value

    def metadata(self) -> dict[str, int]:
        return {"entries": len(self.p.counts) + len(self.n.counts)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PNCounter) and self.p == other.p and self.n == other.n

    def __hash__(self) -> int:
        return hash((self.p, self.n))

    def __repr__(self) -> str:
        return f"PNCounter(p={dict(self.p.counts)!r}, n={dict(self.n.counts)!r})"
