"""Hybrid logical clocks (Kulkarni, Demirbas, Madappa, Avva, Leone,
"Logical Physical Clocks", OPODIS 2014; the algorithm is Figure 5).

An HLC timestamp is a pair ``(l, c)``: ``l`` is the largest physical time the
process has heard of (its own clock or one carried by a message), ``c`` a
counter that orders events sharing the same ``l``.  Compared
lexicographically, HLC timestamps

* respect causality like Lamport clocks: ``e`` happened before ``f`` implies
  ``hlc(e) < hlc(f)`` (Theorem 1);
* stay close to physical time: ``pt.e <= l.e <= pt.e + eps`` where ``eps``
  bounds the skew between any two physical clocks (Theorem 2), so ``l`` can
  be read as a wall-clock time;
* keep ``c`` small: ``c.f`` is at most the number of events that happened
  before ``f`` with the same ``l`` (Theorem 3).

The physical time ``pt`` is passed in by the caller (``ctx.clock()`` in a
simulated node); nothing here reads a real clock.  :class:`HLC` is an
immutable value, ordered as the paper orders timestamps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from labkit import validation as valid


class ClockOffsetError(ValueError):
    """A message's HLC time is further ahead of the receiver's clock than allowed.

    Accepting it would drag the receiver's ``l`` (and every later timestamp)
    that far into the future.  The paper's bound assumes the skew is at
    most ``eps``; systems that rely on it (CockroachDB's ``max_offset``)
    refuse such messages instead of silently breaking the bound.
    """


def check_max_offset(max_offset: float | None) -> float | None:
    """Validate a skew bound in seconds: None (no bound) or a finite number >= 0."""
    return valid.number(
        "max_offset", max_offset, ge=0, unit="seconds", none=True, note="a bound on clock skew"
    )


def _check_pt(pt: float) -> float:
    valid.number("pt (the node's physical clock reading)", pt)
    return pt


@dataclass(frozen=True, slots=True, order=True)
class HLC:
    """One hybrid logical clock value ``(l, c)``.

    >>> a = HLC().tick(pt=10.0)                 # a local event
    >>> b = HLC().receive(a, pt=9.5)            # receiver's clock is behind
    >>> a, b
    (HLC(l=10.0, c=0), HLC(l=10.0, c=1))
    >>> HLC()
    HLC(l=-inf, c=0)
    """

    # l starts at -inf ("no time heard of yet") rather than the paper's 0 so
    # that a clock set behind zero is not pulled forward by the start value.
    l: float = -math.inf  # noqa: E741 (the paper's name)
    c: int = 0

    def __post_init__(self) -> None:
        if self.l != -math.inf:
            _check_pt(self.l)
        valid.integer("c", self.c, ge=0)

    def tick(self, pt: float) -> HLC:
        """Figure 5, "send or local event": the clock for a new event at physical time ``pt``."""
        _check_pt(pt)
        if pt > self.l:
            # Physical time moved past everything heard of: the counter restarts.
            return HLC(pt, 0)
        # Our clock is behind (or equal to) a time we have heard of: keep l, count.
        return HLC(self.l, self.c + 1)

    def receive(self, msg: HLC, pt: float, *, max_offset: float | None = None) -> HLC:
        """Figure 5, "receive event of message m": the clock after receiving ``msg`` at ``pt``.

        With ``max_offset`` (seconds), a message whose ``l`` is more than
        that far ahead of ``pt`` raises :class:`ClockOffsetError` and leaves
        the clock as it was; then ``l - pt <= max_offset`` holds at every
        event whatever the real skew is.
        """
        valid.instance("msg", msg, HLC)
        _check_pt(pt)
        if max_offset is not None and msg.l - pt > check_max_offset(max_offset):
            raise ClockOffsetError(
                f"message time {msg.l!r} is {msg.l - pt:.6f} s ahead of the local clock {pt!r}, "
                f"more than max_offset={max_offset!r} s"
            )
        l_new = max(self.l, msg.l, pt)
        if l_new == self.l and l_new == msg.l:
            c_new = max(self.c, msg.c) + 1
        elif l_new == self.l:
            c_new = self.c + 1
        elif l_new == msg.l:
            c_new = msg.c + 1
        else:
            c_new = 0
        return HLC(l_new, c_new)

    def merge(self, other: HLC) -> HLC:
        """The larger of two HLC values (a join: commutative, associative, idempotent)."""
        valid.instance("other", other, HLC)
        return max(self, other)

    def __str__(self) -> str:
        return f"({self.l:.3f}, {self.c})"
