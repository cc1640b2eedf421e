"""What every state-based CRDT here has in common.

A state-based CRDT (Shapiro, Preguiça, Baquero & Zawirski, *Conflict-free
Replicated Data Types*, SSS 2011, §2.2; the longer INRIA report RR-7506, *A
comprehensive study of Convergent and Commutative Replicated Data Types*,
2011, §2.2) is a value that replicas change locally and exchange whole.
Its states form a join-semilattice: ``merge`` is the least upper bound, so it
is commutative, associative and idempotent, and every update only moves the
state up. Then replicas that have seen the same updates, in any order and
any number of times, are in the same state: *strong eventual consistency*.

The values here are immutable: an update returns a new value and never
changes the old one. That is what makes them safe to put in a message (the
simulator hands the same object to the receiver) and easy to test:
``a.merge(b) == b.merge(a)`` compares values, not histories.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

from labkit import validation as valid

__all__ = ["StateCRDT", "merge_law_violations"]


class StateCRDT(ABC):
    """An immutable state-based CRDT value; updates return new values."""

    __slots__ = ()

    @abstractmethod
    def merge(self, other: Self) -> Self:
        """The least upper bound of ``self`` and ``other`` (commutative, associative, idempotent)."""

    @property
    @abstractmethod
    def value(self) -> Any:
        """What a read returns."""

    @abstractmethod
    def metadata(self) -> dict[str, int]:
        """How much the value stores, by kind of entry (for the cost of a CRDT)."""

    def _same_type(self, other: Any) -> None:
        if type(other) is not type(self):
            raise TypeError(
                f"other must be a {type(self).__name__} to merge with, got {type(other).__name__}"
            )


def merge_law_violations(a: Any, b: Any, c: Any, merge: Any = None) -> list[str]:
    """Which of the three merge laws fail on the states ``a``, ``b``, ``c``.

    ``merge(x, y)`` defaults to ``x.merge(y)``. Returns a sentence per broken
    law (commutative, associative, idempotent); an empty list when all hold.
    """
    valid.function("merge", merge, "callable as merge(x, y)", none=True)
    m = merge if merge is not None else (lambda x, y: x.merge(y))
    out = []
    ab, ba = m(a, b), m(b, a)
    if ab != ba:
        out.append(f"not commutative: merge(a, b) = {ab!r} but merge(b, a) = {ba!r}")
    left, right = m(ab, c), m(a, m(b, c))
    if left != right:
        out.append(f"not associative: merge(merge(a, b), c) = {left!r} but merge(a, merge(b, c)) = {right!r}")
    aa = m(a, a)
    if aa != a:
        out.append(f"not idempotent: merge(a, a) = {aa!r}, not a = {a!r}")
    return out
