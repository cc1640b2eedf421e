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

from labkit import validation as valid


def remaining(deadline: float | None, now: float) -> float:
    """Seconds left before ``deadline`` (``inf`` without one; may be negative)."""
    valid.number("now", now, unit="seconds")
    return math.inf if deadline is None else valid.number("deadline", deadline, unit="seconds") - now


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
        per_call = valid.number("per_call", self.per_call, gt=0, unit="seconds", none=True)
        object.__setattr__(self, "per_call", per_call)
        valid.boolean("propagate_deadline", self.propagate_deadline)

    def wait_for(self, now: float, deadline: float | None) -> float | None:
        """How long to wait for an attempt started at ``now``.

        ``None`` means "no limit". With deadline propagation the wait never
        runs past the deadline; a result <= 0 means the deadline has already
        passed and the call should not be made at all.
        """
        valid.number("now", now, unit="seconds")
        valid.number("deadline", deadline, unit="seconds", none=True)
        limit = self.per_call
        if self.propagate_deadline and deadline is not None:
            left = deadline - now
            limit = left if limit is None else min(limit, left)
        return limit

    def deadline_for_downstream(self, deadline: float | None) -> float | None:
        """The deadline to put on a downstream request (``None`` if not propagated)."""
        valid.number("deadline", deadline, unit="seconds", none=True)
        return deadline if self.propagate_deadline else None
