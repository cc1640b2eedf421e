"""Vector clocks: happened-before made checkable.

Fidge (1988) and Mattern (1989) independently gave each process a vector of
counters, one per process; Lamport's *happened-before* relation (CACM 1978,
§2) then becomes a comparison of vectors.  Dynamo (SOSP 2007, §4.4) uses the
same structure as a *version* attached to every value, so that a replica can
tell a newer write (its vector dominates) from a concurrent one (neither
dominates) and keep the latter as siblings.

:class:`VectorClock` is an immutable value.  ``increment`` and ``merge``
return new clocks, so a clock that was sent in a message or stored next to a
value can never change behind its holder's back.  Entries that are zero are
not stored: ``VectorClock()`` and ``VectorClock({"a": 0})`` are the same
clock, equal and with the same hash.

The rules (Mattern 1989, §4):

* a local event or a send at node ``i``: ``vc = vc.increment(i)``;
* a receive at node ``i`` of a message stamped ``m``:
  ``vc = vc.merge(m).increment(i)``;
* ``a < b`` (``a`` happened before ``b``) iff every entry of ``a`` is ``<=``
  the one in ``b`` and the two differ; if neither ``a <= b`` nor ``b <= a``,
  they are concurrent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum

from labkit import validation as valid


class Ordering(Enum):
    """How two clock values relate under happened-before."""

    BEFORE = "before"  # the left clock happened before the right one
    AFTER = "after"  # the left clock happened after the right one
    EQUAL = "equal"  # the two clocks are the same
    CONCURRENT = "concurrent"  # neither happened before the other


class VectorClock:
    """An immutable vector clock: a map from node id to a non-negative counter.

    >>> a = VectorClock().increment("n1")
    >>> b = a.increment("n2")
    >>> a < b, a.compare(b)
    (True, <Ordering.BEFORE: 'before'>)
    >>> c = a.increment("n1")
    >>> b.concurrent_with(c), b.merge(c)
    (True, VectorClock({'n1': 2, 'n2': 1}))
    """

    __slots__ = ("_entries", "_hash")

    # Invariant: _entries is a tuple of (node, counter) pairs sorted by node,
    # with distinct nodes and every counter >= 1 (zeros are dropped), so two
    # clocks are equal exactly when their tuples are.
    _entries: tuple[tuple[str, int], ...]

    def __init__(self, counters: Mapping[str, int] | None = None) -> None:
        valid.instance("counters", counters, Mapping, none=True)
        items = []
        for node, count in (counters or {}).items():
            valid.string("counters key", node)
            if valid.integer(f"counters[{node!r}]", count, ge=0):
                items.append((node, count))
        items.sort()
        self._entries = tuple(items)
        self._hash = hash(self._entries)

    @classmethod
    def _from_sorted(cls, entries: tuple[tuple[str, int], ...]) -> VectorClock:
        # Internal fast path: entries already satisfy the invariant.
        vc = object.__new__(cls)
        vc._entries = entries
        vc._hash = hash(entries)
        return vc

    # -- reading -------------------------------------------------------
    def __getitem__(self, node: str) -> int:
        """The counter of ``node`` (0 if the clock has never seen it)."""
        for n, c in self._entries:
            if n == node:
                return c
        return 0

    def get(self, node: str) -> int:
        """Same as ``clock[node]``."""
        return self[valid.string("node", node)]

    def as_dict(self) -> dict[str, int]:
        """The non-zero counters as a new dict."""
        return dict(self._entries)

    def nodes(self) -> tuple[str, ...]:
        """The nodes with a non-zero counter, sorted."""
        return tuple(n for n, _ in self._entries)

    def __contains__(self, node: object) -> bool:
        """Whether the clock has seen ``node`` (a non-zero counter), as ``node in counters`` reads a dict."""
        return any(n == node for n, _ in self._entries)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def total(self) -> int:
        """Sum of the counters: how many events this clock has seen."""
        return sum(c for _, c in self._entries)

    # -- making new clocks ----------------------------------------------
    def increment(self, node: str) -> VectorClock:
        """A new clock with ``node``'s counter one higher (a local event at ``node``)."""
        valid.string("node", node)
        d = dict(self._entries)
        d[node] = d.get(node, 0) + 1
        return VectorClock._from_sorted(tuple(sorted(d.items())))

    def merge(self, other: VectorClock) -> VectorClock:
        """The entry-wise maximum: the least clock that is ``>=`` both.

        Commutative, associative and idempotent (a join-semilattice).  Merging
        does not count as an event; on receive, ``increment`` afterwards.
        """
        valid.instance("other", other, VectorClock)
        d = dict(self._entries)
        for n, c in other._entries:
            if c > d.get(n, 0):
                d[n] = c
        return VectorClock._from_sorted(tuple(sorted(d.items())))

    # -- comparing ------------------------------------------------------
    def compare(self, other: VectorClock) -> Ordering:
        """How ``self`` relates to ``other``: BEFORE, AFTER, EQUAL or CONCURRENT."""
        valid.instance("other", other, VectorClock)
        if self._entries == other._entries:
            return Ordering.EQUAL
        mine, theirs = dict(self._entries), dict(other._entries)
        some_less = any(c < theirs.get(n, 0) for n, c in mine.items()) or any(n not in mine for n in theirs)
        some_greater = any(c > theirs.get(n, 0) for n, c in mine.items())
        if some_less and some_greater:
            return Ordering.CONCURRENT
        return Ordering.BEFORE if some_less else Ordering.AFTER

    def concurrent_with(self, other: VectorClock) -> bool:
        """True if neither clock happened before the other (and they differ)."""
        return self.compare(other) is Ordering.CONCURRENT

    def _ordered(self, other: object, *orderings: Ordering) -> bool:
        """Whether ``self`` relates to ``other`` by one of ``orderings`` (the rich comparisons)."""
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self.compare(other) in orderings

    def __lt__(self, other: object) -> bool:
        return self._ordered(other, Ordering.BEFORE)

    def __le__(self, other: object) -> bool:
        return self._ordered(other, Ordering.BEFORE, Ordering.EQUAL)

    def __gt__(self, other: object) -> bool:
        return self._ordered(other, Ordering.AFTER)

    def __ge__(self, other: object) -> bool:
        return self._ordered(other, Ordering.AFTER, Ordering.EQUAL)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VectorClock):
            return NotImplemented
        return self._entries == other._entries

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        if not self._entries:
            return "VectorClock()"
        return f"VectorClock({dict(self._entries)!r})"

    def __str__(self) -> str:
        """Compact form for plot labels, e.g. ``[n1:2 n2:1]``."""
        return "[" + " ".join(f"{n}:{c}" for n, c in self._entries) + "]"
