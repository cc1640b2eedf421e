"""Messages between clients and services, and the ways a call can end.

A call is a :class:`Request` answered by one :class:`Response`; a caller may
also give up on it (a timeout) before the response arrives, in which case the
late response is ignored. ``Outcome`` names every ending, because the lesson
of cascading failures (Nygard, *Release It!*, ch. 4-5; the Google SRE book,
ch. 22 "Addressing Cascading Failures") is in telling them apart: a fast
error frees a worker at once, a slow one holds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    """How one call (or one client request) ended."""

    OK = "ok"
    FAILED = "failed"  # the service ran and returned an error
    TIMEOUT = "timeout"  # the caller stopped waiting
    REJECTED = "rejected"  # the server shed it (queue too long / deadline unreachable)
    EXPIRED = "expired"  # the propagated deadline passed before the work could finish
    BREAKER_OPEN = "breaker_open"  # the caller's circuit breaker refused the call
    BULKHEAD_FULL = "bulkhead_full"  # the caller's bulkhead had no free slot


# Errors worth trying again: the next attempt may land on a better moment.
# A refusal by our own breaker or bulkhead, or an exhausted deadline, will
# not get better by retrying at once, so it is passed up instead.
RETRYABLE = frozenset({Outcome.FAILED, Outcome.TIMEOUT, Outcome.REJECTED})


@dataclass(frozen=True, slots=True)
class Request:
    """Ask ``dst`` to serve one request of kind ``kind``.

    ``rid`` is unique per sender (the caller's call id); ``deadline`` is the
    absolute virtual time after which the answer is useless, or ``None`` when
    the caller did not pass one on.
    """

    rid: int
    kind: str
    deadline: float | None


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to request ``rid``: ``outcome`` is ``Outcome.OK`` on success."""

    rid: int
    outcome: Outcome
