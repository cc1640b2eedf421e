"""Load shedding at the server: say no early instead of yes too late.

A server that queues everything it cannot serve makes every request late
(the Google SRE book, ch. 21 "Handling Overload" and ch. 22, "Load
Shedding and Graceful Degradation"). This shedder rejects an arriving
request when the queue is already ``max_queue`` long, or, with
``deadline_aware``, when the expected queueing plus service time would end
after the request's deadline, so the rejection is fast and the worker time
goes to requests that can still succeed.

A :class:`~labkit.resilience.service.Service` knows a request's deadline
only with deadline propagation on (``Timeouts(propagate_deadline=True)``,
``make_policies(deadlines=True)``): without it ``deadline_aware`` has no
deadline to compare with, and only ``max_queue`` applies.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit import validation as valid


@dataclass(frozen=True, slots=True)
class LoadShedder:
    """Admission control: ``max_queue`` (``None`` = no limit) and ``deadline_aware``."""

    max_queue: int | None = 20
    deadline_aware: bool = True

    def __post_init__(self) -> None:
        valid.integer("max_queue", self.max_queue, ge=0, none=True)
        valid.boolean("deadline_aware", self.deadline_aware)

    def admit(
        self, now: float, queue_length: int, workers: int, deadline: float | None, service_time: float
    ) -> bool:
        """Whether to accept a request arriving at ``now``.

        ``queue_length`` counts requests already waiting, ``workers`` the
        worker pool, ``service_time`` the current estimate of how long a
        worker is held per request.
        """
        valid.integer("workers", workers, ge=1)  # the expected wait divides by it
        valid.integer("queue_length", queue_length, ge=0)
        if self.max_queue is not None and queue_length >= self.max_queue:
            return False
        if self.deadline_aware and deadline is not None:
            # Every worker must finish about queue_length/workers requests before ours starts.
            expected_finish = now + (queue_length / workers + 1.0) * service_time
            if expected_finish > deadline:
                return False
        return True


class ServiceTimeEstimate:
    """An exponentially weighted moving average of observed service times."""

    __slots__ = ("value", "alpha")

    def __init__(self, initial: float, alpha: float = 0.05) -> None:
        self.value = valid.number("initial", initial, ge=0, unit="seconds")
        self.alpha = valid.number("alpha", alpha, gt=0, le=1)

    def observe(self, seconds: float) -> None:
        self.value += self.alpha * (seconds - self.value)
