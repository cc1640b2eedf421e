"""Registers: last-writer-wins, and multi-value (keep the concurrent writes).

Shapiro et al., *A comprehensive study of Convergent and Commutative
Replicated Data Types* (INRIA RR-7506, 2011), §3.2 (registers):

* :class:`LWWRegister`: each write carries a timestamp; ``merge`` keeps the
  write with the larger ``(timestamp, replica)``. Simple, and it converges,
  but of two concurrent writes one silently disappears. With timestamps from
  physical clocks it is worse: a replica whose clock is behind loses even a
  write it made *after* seeing the other one (notebook 02, "Last writer
  wins, and loses a write").
* :class:`MVRegister` (multi-value): each write carries a vector clock; a
  write replaces only the versions it has seen, and concurrent writes are all
  kept, like Dynamo's siblings, for the application to reconcile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from labkit import validation as valid
from labkit.clocks import VectorClock
from labkit.crdt.base import StateCRDT

__all__ = ["LWWRegister", "MVRegister"]


class LWWRegister(StateCRDT):
    """A last-writer-wins register: ``value`` written at ``timestamp`` by ``replica``.

    ``LWWRegister()`` is the empty register (value ``None``, never written).
    """

    __slots__ = ("_value", "timestamp", "replica")

    def __init__(self, value: Any = None, timestamp: float = -math.inf, replica: str = "") -> None:
        valid.number("timestamp", timestamp, finite=False, note="a clock reading")
        valid.string("replica", replica, empty=True)
        self._value = value
        self.timestamp = timestamp
        self.replica = replica

    def _key(self) -> tuple[float, str, str]:
        # The total order of writes: timestamp first, the replica id breaks ties (and,
        # for two writes of one replica at one clock reading, the value's repr).
        return (self.timestamp, self.replica, repr(self._value))

    def assign(self, value: Any, timestamp: float, replica: str) -> LWWRegister:
        """Write ``value`` at ``timestamp`` (the writer's clock) from ``replica``.

        The write is merged like any other: if the register already holds a
        write with a larger timestamp, the new one is dropped at once.
        """
        valid.string("replica", replica)
        valid.number("timestamp", timestamp)
        return self.merge(LWWRegister(value, timestamp, replica))

    def merge(self, other: LWWRegister) -> LWWRegister:
        """Keep the write with the larger ``(timestamp, replica)``."""
        self._same_type(other)
        return self if self._key() >= other._key() else other

    @property
    def value(self) -> Any:
        return self._value

    def metadata(self) -> dict[str, int]:
        return {"entries": 1}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LWWRegister) and self._key() == other._key() and self._value == other._value

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"LWWRegister({self._value!r}, timestamp={self.timestamp!r}, replica={self.replica!r})"


class MVRegister(StateCRDT):
    """A multi-value register: the writes no other write has seen, each with its vector clock."""

    __slots__ = ("_versions",)

    # Invariant: no version's clock is below another's (only concurrent writes are kept).
    _versions: frozenset[tuple[Any, VectorClock]]

    def __init__(self, versions: Iterable[tuple[Any, VectorClock]] = ()) -> None:
        versions = frozenset(versions)
        for v in versions:
            if not (isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], VectorClock)):
                raise TypeError(f"versions must be (value, VectorClock) pairs, got {v!r}")
        # Keep only the maximal versions: a write replaces everything it had seen.
        self._versions = frozenset(v for v in versions if not any(v[1] < w[1] for w in versions))

    def assign(self, value: Any, replica: str) -> MVRegister:
        """Write ``value`` at ``replica``: it replaces every version held here."""
        valid.string("replica", replica)
        clock = VectorClock()
        for _, vc in self._versions:
            clock = clock.merge(vc)
        return MVRegister([(value, clock.increment(replica))])

    def merge(self, other: MVRegister) -> MVRegister:
        """Both sides' versions, without those another version has seen."""
        self._same_type(other)
        return MVRegister(self._versions | other._versions)

    @property
    def value(self) -> tuple[Any, ...]:
        """The concurrent values (one after a write that saw all others), sorted by repr."""
        return tuple(sorted((v for v, _ in self._versions), key=repr))

    @property
    def versions(self) -> frozenset[tuple[Any, VectorClock]]:
        return self._versions

    def metadata(self) -> dict[str, int]:
        return {"entries": len(self._versions), "clock entries": sum(len(vc) for _, vc in self._versions)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MVRegister) and self._versions == other._versions

    def __hash__(self) -> int:
        return hash(self._versions)

    def __repr__(self) -> str:
        inner = ", ".join(f"{v!r}@{vc}" for v, vc in sorted(self._versions, key=repr))
        return f"MVRegister({inner})"
