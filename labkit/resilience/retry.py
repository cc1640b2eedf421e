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
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Jitter", "Backoff", "RetryPolicy", "RetryBudget"]


class Jitter(StrEnum):
    """How much randomness is mixed into each backoff delay."""

    NONE = "none"
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"


def _seconds(name: str, value: float, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    ok = value > 0 if positive else value >= 0
    if not (ok and math.isfinite(value)):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return float(value)


def _exponential(base: float, cap: float, attempt: int) -> float:
    # Cap the exponent first so 2**attempt never overflows a float.
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
_DELAY = {
    Jitter.NONE: _none,
    Jitter.FULL: _full,
    Jitter.EQUAL: _equal,
    Jitter.DECORRELATED: _decorrelated,
}


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
        base = _seconds("base", self.base)
        cap = _seconds("cap", self.cap)
        if cap < base:
            raise ValueError(f"cap must be >= base, got base={base!r}, cap={cap!r}")
        if not isinstance(self.jitter, Jitter):
            try:
                jitter = Jitter(self.jitter)
            except ValueError:
                allowed = ", ".join(j.value for j in Jitter)
                raise ValueError(f"jitter must be one of {allowed}, got {self.jitter!r}") from None
            object.__setattr__(self, "jitter", jitter)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "cap", cap)

    def delay(self, attempt: int, rng: random.Random, previous: float = 0.0) -> float:
        """The delay before retry number ``attempt`` (0 = the first retry).

        ``previous`` is the delay used before the last retry (only the
        decorrelated mode uses it). Always in ``[0, cap]``.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
            raise ValueError(f"attempt must be an int >= 0, got {attempt!r}")
        return _DELAY[self.jitter](self.base, self.cap, attempt, previous, rng)

    def delays(self, n: int, rng: random.Random) -> list[float]:
        """The first ``n`` delays of one sequence of retries."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
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
    ``budget_min_per_second`` and ``budget_window``.
    """

    max_attempts: int = 3
    backoff: Backoff | None = Backoff()
    budget_ratio: float | None = None
    budget_min_per_second: float = 1.0
    budget_window: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an int >= 1 (1 = no retries), got {self.max_attempts!r}")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise TypeError(f"backoff must be a Backoff or None (retry at once), got {self.backoff!r}")
        if self.budget_ratio is not None:
            RetryBudget(self.budget_ratio, self.budget_min_per_second, self.budget_window, clock=lambda: 0.0)

    def make_budget(self, clock: Callable[[], float]) -> RetryBudget | None:
        """A fresh budget for one caller, or ``None`` when budgets are off."""
        if self.budget_ratio is None:
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
        self,
        ratio: float,
        min_per_second: float = 1.0,
        window: float = 10.0,
        *,
        clock: Callable[[], float],
    ) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 10:
            raise ValueError(f"ratio must be a number between 0 and 10 (retries per request), got {ratio!r}")
        if (
            isinstance(min_per_second, bool)
            or not isinstance(min_per_second, (int, float))
            or not 0 <= min_per_second < math.inf  # also refuses NaN
        ):
            raise ValueError(
                f"min_per_second must be a finite number of retries/s >= 0, got {min_per_second!r}"
            )
        self.window = _seconds("window", window, positive=True)
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self.ratio = float(ratio)
        self.min_per_second = float(min_per_second)
        self._clock = clock
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
