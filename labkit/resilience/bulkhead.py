"""A bulkhead: a separate, small pool of call slots per dependency.

Named after the watertight compartments of a ship (Nygard, *Release It!*,
ch. 5, "Bulkheads"): if one dependency becomes slow, only the calls to it
wait, at most ``limit`` at a time, and every further call to it fails at
once. The caller's other work keeps its workers.
"""

from __future__ import annotations

from labkit import validation as valid


class Bulkhead:
    """At most ``limit`` calls in flight to one dependency.

    Invariant: ``0 <= in_use <= limit``.
    """

    __slots__ = ("limit", "in_use", "refused")

    def __init__(self, limit: int) -> None:
        self.limit = valid.integer("limit", limit, ge=1)
        self.in_use = 0
        self.refused = 0

    def try_acquire(self) -> bool:
        """Take a slot if one is free; False means fail the call fast."""
        if self.in_use < self.limit:
            self.in_use += 1
            return True
        self.refused += 1
        return False

    def release(self) -> None:
        """Give back a slot taken by :meth:`try_acquire`."""
        if self.in_use <= 0:
            raise ValueError("release() without a matching try_acquire(): no slot is in use")
        self.in_use -= 1

    def __repr__(self) -> str:
        return f"Bulkhead({self.in_use}/{self.limit} in use, {self.refused} refused)"
