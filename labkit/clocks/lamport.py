"""Lamport's logical clock (Lamport, "Time, Clocks, and the Ordering of
Events in a Distributed System", CACM 1978, §3 and §4).

Each process keeps a counter.  Implementation rule IR1 (§3): tick before
every local event, including a send; IR2: a message carries the sender's
counter, and the receiver jumps past it, ``max(own, received) + 1``.  Then
the *clock condition* holds: if ``a`` happened before ``b`` then
``C(a) < C(b)``.  The converse is false: a smaller counter does not mean
"happened before", so Lamport clocks cannot detect concurrency.  Breaking
ties by process id (§4, the relation ``=>``) turns the counters into a total
order that is consistent with causality; :meth:`LamportClock.stamp` gives
that ``(time, node)`` pair.

:class:`LamportClock` is an immutable value: every operation returns a new
clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit import validation as valid


@dataclass(frozen=True, slots=True, order=True)
class LamportClock:
    """A Lamport counter.

    >>> a = LamportClock().tick()          # a local event at node a
    >>> b = LamportClock(5).receive(a)     # b had seen 5 events' worth
    >>> a.time, b.time
    (1, 6)
    """

    # Invariant: time >= 0 and never decreases along one process.
    time: int = 0

    def __post_init__(self) -> None:
        valid.integer("time", self.time, ge=0)

    def tick(self) -> LamportClock:
        """IR1: the clock for a new local or send event."""
        return LamportClock(self.time + 1)

    def merge(self, other: LamportClock | int) -> LamportClock:
        """The larger of the two clocks (max: commutative, associative, idempotent)."""
        t = _time_of(other)
        return self if self.time >= t else LamportClock(t)

    def receive(self, other: LamportClock | int) -> LamportClock:
        """IR2: the clock for receiving a message stamped ``other``."""
        return LamportClock(max(self.time, _time_of(other)) + 1)

    def stamp(self, node: str) -> tuple[int, str]:
        """The total-order timestamp ``(time, node)`` of §4 (ties broken by node id)."""
        valid.string("node", node)
        return (self.time, node)

    def __str__(self) -> str:
        return str(self.time)


def _time_of(other: LamportClock | int) -> int:
    if isinstance(other, LamportClock):
        return other.time
    return valid.integer("other", other, ge=0, note="or a LamportClock")
