"""Timeouts and deadline propagation.

A timeout bounds how long one attempt may hold the caller; a *deadline* is an
absolute time after which the whole request is worthless (the Google SRE
book, ch. 22, "Latency and Deadlines"; gRPC's deadline propagation). Passing
the deadline down the chain lets every hop stop working on answers nobody
will read: a queued request whose deadline has passed is dropped, and no call
waits past it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Timeouts", "remaining"]


def remaining(deadline: float | None, now: float) -> float:
    """Seconds left before ``deadline`` (``inf`` without one; may be negative)."""
    return math.inf if deadline is None else deadline - now


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a caller waits for one attempt, and whether deadlines travel.

    ``per_call``: seconds to wait for one attempt, or ``None`` to wait as long
    as it takes (the default of many client libraries, and the root of most
    cascades). ``propagate_deadline``: honour the deadline a request arrived
    with (drop it from the queue once expired, never wait past it) and pass
    it on to downstream calls.
    """

    per_call: float | None = None
    propagate_deadline: bool = False

    def __post_init__(self) -> None:
        if self.per_call is not None:
            if isinstance(self.per_call, bool) or not isinstance(self.per_call, (int, float)):
                raise TypeError(f"per_call must be a number of seconds or None, got {self.per_call!r}")
            if not (self.per_call > 0 and math.isfinite(self.per_call)):
                raise ValueError(
                    f"per_call must be a finite number of seconds > 0 or None, got {self.per_call!r}"
                )
            object.__setattr__(self, "per_call", float(self.per_call))
        if not isinstance(self.propagate_deadline, bool):
            raise TypeError(f"propagate_deadline must be a bool, got {self.propagate_deadline!r}")

    def wait_for(self, now: float, deadline: float | None) -> float | None:
        """How long to wait for an attempt started at ``now``.

        ``None`` means "no limit". With deadline propagation the wait never
        runs past the deadline; a result <= 0 means the deadline has already
        passed and the call should not be made at all.
        """
        limit = self.per_call
        if self.propagate_deadline and deadline is not None:
            left = deadline - now
            limit = left if limit is None else min(limit, left)
        return limit

    def deadline_for_downstream(self, deadline: float | None) -> float | None:
        """The deadline to put on a downstream request (``None`` if not propagated)."""
        return deadline if self.propagate_deadline else None
