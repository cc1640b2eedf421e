"""The observed-remove set (OR-set): adds and removes that race, and adds win.

Shapiro et al., *A comprehensive study of Convergent and Commutative
Replicated Data Types* (INRIA RR-7506, 2011), §3.3 (sets), the
Observed-Remove Set. Every ``add`` tags its element with a tag no other add
has (here ``(replica, n)``: the n-th add made at that replica). ``remove``
removes the tags it has *observed*: it puts them in a tombstone set. An
element is in the set while some tag of it is not tombstoned. So when an add
and a remove of the same element race, the remove cannot have seen the
add's fresh tag, and the element stays: *add wins*.

``merge`` is the union of the tagged adds and the union of the tombstones.
Tombstones are never dropped here; that is what the benchmark measures
(:mod:`benchmarks.bench_crdt`). Bieniusa et al. (2012, *An optimized
conflict-free replicated set*) remove them with version vectors.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any

from labkit import validation as valid
from labkit.crdt.base import StateCRDT

__all__ = ["ORSet", "Tag"]

Tag = tuple[str, int]  # (replica, n): the n-th add made at replica


class ORSet(StateCRDT):
    """An add-wins observed-remove set of hashable elements.

    >>> a = ORSet().add("milk", "A")
    >>> b = a.remove("milk")            # B removes the milk it has seen...
    >>> a2 = a.add("milk", "A")         # ...while A adds milk again
    >>> "milk" in b.merge(a2)
    True
    """

    __slots__ = ("_adds", "_tombstones", "_counters")

    def __init__(
        self,
        adds: Iterable[tuple[Hashable, Tag]] = (),
        tombstones: Iterable[Tag] = (),
        _counters: Mapping[str, int] | None = None,
    ) -> None:
        self._adds: frozenset[tuple[Hashable, Tag]] = frozenset(adds)
        self._tombstones: frozenset[Tag] = frozenset(tombstones)
        if _counters is None:  # the highest add number of each replica
            counters: dict[str, int] = {}
            for _, (r, n) in self._adds:
                if n > counters.get(r, 0):
                    counters[r] = n
            _counters = counters
        self._counters = dict(_counters)

    def add(self, element: Hashable, replica: str) -> ORSet:
        """Add ``element`` at ``replica`` with a fresh tag."""
        valid.string("replica", replica)
        hash(element)  # a TypeError naming the type if it is not hashable
        n = self._counters.get(replica, 0) + 1
        counters = dict(self._counters)
        counters[replica] = n
        return ORSet(self._adds | {(element, (replica, n))}, self._tombstones, counters)

    def remove(self, element: Hashable) -> ORSet:
        """Remove ``element`` as far as this replica has seen it: tombstone its tags."""
        seen = {tag for e, tag in self._adds if e == element}
        if not seen:
            return self  # nothing observed, nothing to remove
        return ORSet(self._adds, self._tombstones | seen, self._counters)

    def merge(self, other: ORSet) -> ORSet:
        """Every tagged add and every tombstone of both sides."""
        self._same_type(other)
        counters = dict(self._counters)
        for r, n in other._counters.items():
            if n > counters.get(r, 0):
                counters[r] = n
        return ORSet(self._adds | other._adds, self._tombstones | other._tombstones, counters)

    @property
    def value(self) -> frozenset[Any]:
        """The elements with a tag that is not tombstoned."""
        dead = self._tombstones
        return frozenset(e for e, tag in self._adds if tag not in dead)

    def __contains__(self, element: object) -> bool:
        dead = self._tombstones
        return any(e == element and tag not in dead for e, tag in self._adds)

    def __iter__(self) -> Iterator[Any]:
        return iter(sorted(self.value, key=repr))

    def __len__(self) -> int:
        return len(self.value)

    @property
    def adds(self) -> frozenset[tuple[Hashable, Tag]]:
        return self._adds

    @property
    def tombstones(self) -> frozenset[Tag]:
        return self._tombstones

    def metadata(self) -> dict[str, int]:
        return {"tagged adds": len(self._adds), "tombstones": len(self._tombstones)}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ORSet) and self._adds == other._adds and self._tombstones == other._tombstones
        )

    def __hash__(self) -> int:
        return hash((self._adds, self._tombstones))

    def __repr__(self) -> str:
        return f"ORSet({sorted(self.value, key=repr)!r}, tags={len(self._adds)}, tombstones={len(self._tombstones)})"
