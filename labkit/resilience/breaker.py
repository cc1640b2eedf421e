"""A circuit breaker whose state machine is a literal transition table.

The pattern comes from Nygard, *Release It!* (ch. 5, "Circuit Breaker") and
Fowler's "CircuitBreaker" article; the failure-rate window with a minimum
number of calls follows resilience4j:

* **closed**: calls pass; outcomes go into a sliding window of the last
  ``window`` calls. Once it holds at least ``min_calls`` outcomes and the
  failure rate reaches ``failure_rate``, the breaker opens.
* **open**: calls fail fast without touching the dependency, which gets time
  to recover. After ``cooldown`` seconds the next call attempt moves the
  breaker to half-open.
* **half-open**: up to ``probes`` trial calls are admitted (others fail
  fast). One failure re-opens it; ``probes`` successes close it.

:data:`TRANSITIONS` is the whole state machine (as h11 writes its
connection states): the bookkeeping decides which :class:`Event` happened and
the table says where it leads; an event missing from the table is a bug.
Time comes from an injected ``clock`` (the simulator's time, or
``time.monotonic`` around real code), never from the wall clock. For
sequential calls with ``window = min_calls = fail_max`` and
``failure_rate = 1.0`` this is exactly pybreaker's breaker (consecutive
failures, ``reset_timeout``, ``success_threshold``); the tests check that.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

__all__ = [
    "BreakerState",
    "BreakerConfig",
    "CircuitBreaker",
    "CircuitOpenError",
    "Event",
    "Transition",
    "TRANSITIONS",
    "check_breaker_invariants",
]

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Event(StrEnum):
    """What the bookkeeping observed; the table maps it to the next state."""

    FAILURE_RATE_REACHED = "failure rate reached"
    COOLDOWN_ELAPSED = "cool-down elapsed"
    PROBE_FAILED = "probe failed"
    PROBES_SUCCEEDED = "probes succeeded"


# The state machine. Nothing else changes `CircuitBreaker.state`.
TRANSITIONS: dict[tuple[BreakerState, Event], BreakerState] = {
    (BreakerState.CLOSED, Event.FAILURE_RATE_REACHED): BreakerState.OPEN,
    (BreakerState.OPEN, Event.COOLDOWN_ELAPSED): BreakerState.HALF_OPEN,
    (BreakerState.HALF_OPEN, Event.PROBE_FAILED): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, Event.PROBES_SUCCEEDED): BreakerState.CLOSED,
}


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded state change."""

    time: float
    source: BreakerState
    target: BreakerState
    event: Event


class CircuitOpenError(RuntimeError):
    """Raised by :meth:`CircuitBreaker.call` when the breaker refuses a call."""


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Settings of a breaker (see the module docstring)."""

    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown: float = 2.0
    probes: int = 3

    def __post_init__(self) -> None:
        fr = self.failure_rate
        if isinstance(fr, bool) or not isinstance(fr, (int, float)) or not 0 < fr <= 1:
            raise ValueError(f"failure_rate must be a number in (0, 1], got {fr!r}")
        for name in ("window", "min_calls", "probes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if self.min_calls > self.window:
            raise ValueError(
                f"min_calls must be <= window (the window holds only {self.window} calls), got {self.min_calls!r}"
            )
        cd = self.cooldown
        if isinstance(cd, bool) or not isinstance(cd, (int, float)) or not (cd >= 0 and math.isfinite(cd)):
            raise ValueError(f"cooldown must be a finite number of seconds >= 0, got {cd!r}")


class CircuitBreaker:
    """Guard calls to one dependency; see the module docstring.

    Sans-IO use (the simulator): ``if breaker.allow(): send ... else: fail
    fast``; later ``breaker.record(ok)`` with the call's outcome. Around real
    code: ``breaker.call(fn, *args)``.
    """

    __slots__ = (
        "config",
        "state",
        "transitions",
        "_clock",
        "_window",
        "_failures",
        "_opened_at",
        "_probes_admitted",
        "_probe_successes",
    )

    def __init__(self, config: BreakerConfig | None = None, *, clock: Callable[[], float]) -> None:
        if config is None:
            config = BreakerConfig()
        if not isinstance(config, BreakerConfig):
            raise TypeError(f"config must be a BreakerConfig, got {config!r}")
        if not callable(clock):
            raise TypeError(f"clock must be a callable returning seconds, got {clock!r}")
        self.config = config
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.transitions: list[Transition] = []
        # Invariant: _failures == number of False entries in _window.
        self._window: deque[bool] = deque(maxlen=config.window)  # True = the call succeeded
        self._failures = 0
        self._opened_at = -math.inf
        # Invariant: 0 <= _probe_successes <= _probes_admitted <= config.probes.
        self._probes_admitted = 0
        self._probe_successes = 0

    # -- the table -------------------------------------------------------
    def _fire(self, event: Event, now: float) -> None:
        try:
            target = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise AssertionError(f"no transition for {event.value!r} in state {self.state.value}") from None
        self.transitions.append(Transition(now, self.state, target, event))
        self.state = target
        # Entering a state starts it afresh.
        if target is BreakerState.OPEN:
            self._opened_at = now
        elif target is BreakerState.HALF_OPEN:
            self._probes_admitted = 0
            self._probe_successes = 0
        else:
            self._window.clear()
            self._failures = 0

    # -- the bookkeeping -------------------------------------------------
    def allow(self) -> bool:
        """May a call go through now? (In half-open, admitting uses a probe.)"""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            now = self._clock()
            if now < self._opened_at + self.config.cooldown:
                return False
            self._fire(Event.COOLDOWN_ELAPSED, now)
        if self._probes_admitted < self.config.probes:
            self._probes_admitted += 1
            return True
        return False

    def record(self, ok: bool) -> None:
        """Report the outcome of a call that :meth:`allow` admitted."""
        state = self.state
        if state is BreakerState.CLOSED:
            window = self._window
            if len(window) == window.maxlen and not window[0]:
                self._failures -= 1  # the oldest outcome falls out of the window
            window.append(ok)
            if not ok:
                self._failures += 1
                cfg = self.config
                # (a tiny slack so that e.g. 3 of 10 reaches a 0.3 threshold despite float rounding)
                if len(window) >= cfg.min_calls and self._failures >= cfg.failure_rate * len(window) - 1e-9:
                    self._fire(Event.FAILURE_RATE_REACHED, self._clock())
        elif state is BreakerState.HALF_OPEN:
            if not ok:
                self._fire(Event.PROBE_FAILED, self._clock())
            else:
                self._probe_successes += 1
                if self._probe_successes >= self.config.probes:
                    self._fire(Event.PROBES_SUCCEEDED, self._clock())
        # In OPEN, a late outcome of a call admitted earlier changes nothing.

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` through the breaker (for real code).

        Raises :class:`CircuitOpenError` without calling ``fn`` when refused;
        any exception ``fn`` raises counts as a failure and is re-raised.
        """
        if not self.allow():
            raise CircuitOpenError(f"circuit is {self.state.value}; call refused")
        try:
            result = fn(*args, **kwargs)
        except Exception:
            self.record(False)
            raise
        self.record(True)
        return result

    @property
    def failure_count(self) -> int:
        """Failures in the current closed-state window."""
        return self._failures

    def __repr__(self) -> str:
        return f"CircuitBreaker(state={self.state.value}, failures={self._failures}/{len(self._window)})"


def check_breaker_invariants(breaker: CircuitBreaker) -> None:
    """Raise AssertionError if the breaker's bookkeeping is inconsistent."""
    b = breaker
    assert b._failures == sum(1 for ok in b._window if not ok), "failure count out of step with the window"
    assert len(b._window) <= b.config.window
    assert 0 <= b._probe_successes <= b._probes_admitted <= b.config.probes, "probe counts out of range"
    for earlier, later in zip(b.transitions, b.transitions[1:], strict=False):
        assert earlier.target is later.source, "transitions do not chain"
        assert earlier.time <= later.time, "transitions out of time order"
    if b.transitions:
        assert b.transitions[-1].target is b.state
    for t in b.transitions:
        assert TRANSITIONS[(t.source, t.event)] is t.target, "a transition not in the table"
