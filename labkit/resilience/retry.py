"""Retries: exponential backoff with jitter, and a retry budget.

Backoff follows the four variants compared in Marc Brooker's "Exponential
Backoff And Jitter" (AWS Architecture Blog, 2015), attempt ``n`` counted from
0 for the first retry:

* ``NONE``:          ``min(cap, base * 2**n)``
* ``FULL``:          ``uniform(0, min(cap, base * 2**n))``
* ``EQUAL``:         half of the exponential delay plus ``uniform(0, half)``
* ``DECORRELATED``:  ``min(cap, uniform(base, 3 * previous))``

Without jitter, requests that failed together retry together (a thundering
herd). A retry budget bounds the *extra* load retries may add, as Finagle's
``RetryBudget`` and gRPC's retry throttling do: within any window of
``window`` seconds, retries may not exceed ``ratio`` times the requests seen
in that window plus ``min_per_second * window``. With a budget, a retry storm
can amplify load by at most about ``1 + ratio``.

:class:`RetryPolicy` is the one retry policy of labkit: the services of the
cascading-failures model use it, and so does the saga orchestrator (which adds a
per-attempt ``timeout`` and retries a failing compensation with the same capped
exponential backoff, without jitter so that its decisions stay deterministic).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from labkit import validation as valid


class Jitter(StrEnum):
    """How much randomness is mixed into each backoff delay."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


def _exponential(base: float, cap: float, attempt: int) -> float:
    # Cap the exponent first so 2**attempt never overflows: a compensation may be retried forever.
    return min(cap, base * 2.0 ** min(attempt, 1000))


def _none(base: float, cap: float, attempt: int, previous: float, rng: random.Random) -> float:
    return _exponential(base, cap, attempt)


def _full(base: float, cap: float, attempt: int, previous: float, rng: random.Random) -> float:
    return rng.uniform(0.0, _exponential(base, cap, attempt))


def _equal(base: float, cap: float, attempt: int, previous: float, rng: random.Random) -> float:
    half = _exponential(base, cap, attempt) / 2.0
    return half + rng.uniform(0.0, half)


def _decorrelated(base: float, cap: float, attempt: int, previous: float, rng: random.Random) -> float:
    # The first retry starts from `base`; afterwards the range grows from the last delay.
    high = max(base, 3.0 * (previous if previous > 0 else base))
    return min(cap, rng.uniform(base, high))


# Handler table: one formula per jitter mode.
_DELAY = {Jitter.NONE: _none, Jitter.FULL: _full, Jitter.EQUAL: _equal, Jitter.DECORRELATED: _decorrelated}


def _check_clock(clock: Callable[[], float]) -> Callable[[], float]:
    return valid.function("clock", clock, "a callable returning seconds")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before each retry: exponential in the attempt, capped, jittered.

    ``base`` is the first delay (seconds, >= 0), ``cap`` the largest
    (>= base). ``delay`` draws from the generator you pass, so runs are
    reproducible.
    """

    base: float = 0.05
    cap: float = 2.0
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        base = valid.number("base", self.base, ge=0, unit="seconds")
        cap = valid.number("cap", self.cap, ge=base, unit="seconds", note="cap must be >= base")
        object.__setattr__(self, "jitter", valid.enum_member("jitter", self.jitter, Jitter))
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "cap", cap)

    def delay(self, attempt: int, rng: random.Random | None = None, previous: float = 0.0) -> float:
        """The delay before retry number ``attempt`` (0 = the first retry).

        ``previous`` is the delay used before the last retry (only the
        decorrelated mode uses it). Always in ``[0, cap]``. ``rng`` draws the
        jitter; only ``Jitter.NONE`` may go without one.
        """
        valid.integer("attempt", attempt, ge=0)
        if rng is None and self.jitter is not Jitter.NONE:
            raise TypeError(f"rng must be a random.Random: {self.jitter.value} jitter draws random numbers")
        return _DELAY[self.jitter](self.base, self.cap, attempt, previous, rng)  # type: ignore[arg-type]

    def delays(self, n: int, rng: random.Random | None = None) -> list[float]:
        """The first ``n`` delays of one sequence of retries."""
        valid.integer("n", n, ge=0)
        out: list[float] = []
        previous = 0.0
        for attempt in range(n):
            previous = self.delay(attempt, rng, previous)
            out.append(previous)
        return out


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry a failed call up to ``max_attempts`` attempts in all.

    ``backoff=None`` retries at once (the storm-maker). ``budget_ratio`` (e.g.
    0.1 = retries may add 10% load) turns on a :class:`RetryBudget` with
    ``budget_min_per_second`` and ``budget_window``. ``timeout`` is how long
    one attempt waits for an answer before it counts as failed (seconds), for
    callers that time attempts themselves (the saga orchestrator); ``None``
    leaves timing out to the caller's own setting (the model's ``Timeouts``).
    """

    max_attempts: int = 3
    backoff: Backoff | None = Backoff()
    budget_ratio: float | None = None
    budget_min_per_second: float = 1.0
    budget_window: float = 10.0
    timeout: float | None = None

    def __post_init__(self) -> None:
        valid.integer("max_attempts", self.max_attempts, ge=1, note="1 = no retries")
        valid.instance("backoff", self.backoff, Backoff, none=True)
        valid.number("budget_min_per_second", self.budget_min_per_second, ge=0, unit="retries/s")
        valid.number("budget_window", self.budget_window, gt=0, unit="seconds")
        if self.budget_ratio is not None:
            RetryBudget(self.budget_ratio, self.budget_min_per_second, self.budget_window, clock=lambda: 0.0)
        timeout = valid.number("timeout", self.timeout, gt=0, unit="seconds", none=True)
        object.__setattr__(self, "timeout", timeout)

    def delay(self, retry: int, rng: random.Random | None = None, previous: float = 0.0) -> float:
        """The wait before retry number ``retry`` (0 = the first retry); 0 without a backoff."""
        valid.integer("retry", retry, ge=0)
        return 0.0 if self.backoff is None else self.backoff.delay(retry, rng, previous)

    def make_budget(self, clock: Callable[[], float]) -> RetryBudget | None:
        """A fresh budget for one caller, or ``None`` when budgets are off."""
        if self.budget_ratio is None:
            _check_clock(clock)
            return None
        return RetryBudget(self.budget_ratio, self.budget_min_per_second, self.budget_window, clock=clock)


class RetryBudget:
    """Allow retries only while they stay a small fraction of requests.

    Call :meth:`deposit` once per original request and :meth:`try_withdraw`
    before each retry. ``clock`` returns the time in seconds (the simulator's
    time, or ``time.monotonic`` around real code); the budget never reads a
    clock of its own.

    Invariant: over the last ``window`` seconds, retries granted
    ``<= ratio * requests + min_per_second * window``.
    """

    __slots__ = ("ratio", "min_per_second", "window", "_clock", "_requests", "_retries", "granted", "refused")

    def __init__(
        self, ratio: float, min_per_second: float = 1.0, window: float = 10.0, *, clock: Callable[[], float]
    ) -> None:
        self.ratio = valid.number("ratio", ratio, ge=0, le=10, note="retries per request")
        self.min_per_second = valid.number("min_per_second", min_per_second, ge=0, unit="retries/s")
        self.window = valid.number("window", window, gt=0, unit="seconds")
        self._clock = _check_clock(clock)
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()
        self.granted = 0
        self.refused = 0

    def _forget(self, now: float) -> None:
        horizon = now - self.window
        for times in (self._requests, self._retries):
            while times and times[0] <= horizon:
                times.popleft()

    def deposit(self) -> None:
        """Record one original request (earns ``ratio`` of a retry)."""
        self._requests.append(self._clock())

    def allowance(self) -> float:
        """Retries still allowed in the current window."""
        now = self._clock()
        self._forget(now)
        return self.ratio * len(self._requests) + self.min_per_second * self.window - len(self._retries)

    def try_withdraw(self) -> bool:
        """Spend one retry if the budget allows it; False means do not retry."""
        if self.allowance() >= 1.0:
            self._retries.append(self._clock())
            self.granted += 1
            return True
        self.refused += 1
        return False
