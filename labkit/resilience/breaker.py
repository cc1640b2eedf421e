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
  fast). One failure re-opens it; ``probes`` successes close it. Once every
  probe slot is taken it waits at most one more ``cooldown`` for the
  answers: a call attempt after that re-opens it (a probe that never
  answers, to a crashed dependency without a timeout or one interrupted
  before it could report, must not keep the breaker half-open forever).

**Which state admitted a call.** :meth:`CircuitBreaker.allow` returns an
:class:`Admission`: the state that admitted the call and the breaker's
*generation*, a counter bumped on every transition. An outcome reported with
an admission of an earlier generation is *stale*: it is counted in
:attr:`CircuitBreaker.stale_outcomes` and changes nothing else. A call let
through while closed that ends during half-open is not a probe (counting it
would close the breaker on successes of calls it never admitted as probes,
or re-open it on an old failure while the real probes are healthy), and a
probe that ends after the breaker has moved on says nothing about the new
state. sony/gobreaker does the same (``afterRequest`` drops an outcome whose
generation is not the current one).

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

from labkit import validation as valid

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
    PROBES_TIMED_OUT = "probes timed out"


# The state machine. Nothing else changes `CircuitBreaker.state`.
TRANSITIONS: dict[tuple[BreakerState, Event], BreakerState] = {
    (BreakerState.CLOSED, Event.FAILURE_RATE_REACHED): BreakerState.OPEN,
    (BreakerState.OPEN, Event.COOLDOWN_ELAPSED): BreakerState.HALF_OPEN,
    (BreakerState.HALF_OPEN, Event.PROBE_FAILED): BreakerState.OPEN,
    (BreakerState.HALF_OPEN, Event.PROBES_SUCCEEDED): BreakerState.CLOSED,
    (BreakerState.HALF_OPEN, Event.PROBES_TIMED_OUT): BreakerState.OPEN,
}


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded state change."""

    time: float
    source: BreakerState
    target: BreakerState
    event: Event


@dataclass(frozen=True, slots=True)
class Admission:
    """The ticket :meth:`CircuitBreaker.allow` gives an admitted call: the
    state that admitted it and the breaker's generation at that moment.
    Hand it back to :meth:`CircuitBreaker.record` with the call's outcome."""

    state: BreakerState
    generation: int


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
        valid.number("failure_rate", self.failure_rate, gt=0, le=1)
        valid.integer("window", self.window, ge=1)
        valid.integer(
            "min_calls", self.min_calls, ge=1, le=self.window, note="the window holds only that many calls"
        )
        valid.integer("probes", self.probes, ge=1)
        valid.number("cooldown", self.cooldown, ge=0, unit="seconds")


class CircuitBreaker:
    """Guard calls to one dependency; see the module docstring.

    Sans-IO use (the simulator): ``admission = breaker.allow()``; if it is
    ``None`` fail fast, else send, and later ``breaker.record(admission, ok)``
    with the call's outcome. Around real code: ``breaker.call(fn, *args)``.
    """

    __slots__ = (
        "config",
        "state",
        "generation",
        "transitions",
        "stale_outcomes",
        "_admission",
        "_clock",
        "_window",
        "_failures",
        "_in_flight",
        "_opened_at",
        "_probes_admitted",
        "_probe_successes",
        "_probes_full_at",
    )

    def __init__(self, config: BreakerConfig | None = None, *, clock: Callable[[], float]) -> None:
        config = BreakerConfig() if config is None else valid.instance("config", config, BreakerConfig)
        valid.function("clock", clock, "a callable returning seconds")
        self.config = config
        self._clock = clock
        self.state = BreakerState.CLOSED
        # Invariant: generation == len(transitions) (bumped by every transition).
        self.generation = 0
        self.transitions: list[Transition] = []
        # Every call admitted in one generation gets the same (immutable) ticket.
        self._admission = Admission(self.state, 0)
        self.stale_outcomes = 0  # outcomes of calls admitted by an earlier generation
        # Invariant: _failures == number of False entries in _window.
        self._window: deque[bool] = deque(maxlen=config.window)  # True = the call succeeded
        self._failures = 0
        # Invariant: _in_flight == calls admitted in this generation whose outcome is not yet recorded.
        self._in_flight = 0
        self._opened_at = -math.inf
        # Invariant: 0 <= _probe_successes <= _probes_admitted <= config.probes.
        self._probes_admitted = 0
        self._probe_successes = 0
        self._probes_full_at = math.inf  # when the last probe slot was taken

    # -- the table -------------------------------------------------------
    def _fire(self, event: Event, now: float) -> None:
        try:
            target = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise AssertionError(f"no transition for {event.value!r} in state {self.state.value}") from None
        self.transitions.append(Transition(now, self.state, target, event))
        self.state = target
        # A new generation: calls admitted before this transition are stale from now on.
        self.generation += 1
        self._admission = Admission(target, self.generation)
        self._in_flight = 0
        # Entering a state starts it afresh.
        if target is BreakerState.OPEN:
            self._opened_at = now
        elif target is BreakerState.HALF_OPEN:
            self._probes_admitted = 0
            self._probe_successes = 0
            self._probes_full_at = math.inf
        else:
            self._window.clear()
            self._failures = 0

    # -- the bookkeeping -------------------------------------------------
    def allow(self) -> Admission | None:
        """May a call go through now? Returns its :class:`Admission`, or
        ``None`` to fail fast. (In half-open, admitting uses a probe slot.)"""
        state = self.state
        if state is BreakerState.CLOSED:
            self._in_flight += 1
            return self._admission
        cfg = self.config
        if state is BreakerState.OPEN:
            now = self._clock()
            if now < self._opened_at + cfg.cooldown:
                return None
            self._fire(Event.COOLDOWN_ELAPSED, now)
        elif self._probes_admitted >= cfg.probes:
            # Every slot is taken: wait for the probes, but not for ever.
            now = self._clock()
            if now >= self._probes_full_at + cfg.cooldown:
                self._fire(Event.PROBES_TIMED_OUT, now)
            return None
        self._probes_admitted += 1
        if self._probes_admitted == cfg.probes:
            self._probes_full_at = self._clock()
        self._in_flight += 1
        return self._admission

    def record(self, admission: Admission, ok: bool) -> bool:
        """Report the outcome of a call that :meth:`allow` admitted.

        Returns ``True`` if the outcome counted, ``False`` if it was stale
        (admitted before the latest transition; see the module docstring).
        """
        valid.instance("admission", admission, Admission)  # the ticket allow() returned
        valid.boolean("ok", ok)  # True: the call succeeded
        if admission.generation != self.generation:
            if admission.generation > self.generation:
                raise ValueError(
                    f"admission {admission!r} is from a later generation than this breaker's ({self.generation})"
                )
            self.stale_outcomes += 1
            return False
        if self._in_flight <= 0:
            raise ValueError(
                f"more outcomes than admitted calls in generation {self.generation}: "
                "record each admission exactly once"
            )
        self._in_flight -= 1
        if self.state is BreakerState.CLOSED:
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
        else:
            # Same generation and not closed: half-open (OPEN admits nothing).
            if not ok:
                self._fire(Event.PROBE_FAILED, self._clock())
            else:
                self._probe_successes += 1
                if self._probe_successes >= self.config.probes:
                    self._fire(Event.PROBES_SUCCEEDED, self._clock())
        return True

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` through the breaker (for real code).

        Raises :class:`CircuitOpenError` without calling ``fn`` when refused.
        Anything ``fn`` raises, ``BaseException`` included (a
        ``KeyboardInterrupt``, an ``asyncio.CancelledError``), counts as a
        failure and is re-raised, so an admitted call always reports back.
        """
        admission = self.allow()
        if admission is None:
            raise CircuitOpenError(f"circuit is {self.state.value}; call refused")
        ok = False
        try:
            result = fn(*args, **kwargs)
            ok = True
        finally:
            self.record(admission, ok)
        return result

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(state={self.state.value}, generation={self.generation}, "
            f"failures={self._failures}/{len(self._window)})"
        )


def check_breaker_invariants(breaker: CircuitBreaker) -> None:
    """Raise AssertionError if the breaker's bookkeeping is inconsistent."""
    b = valid.instance("breaker", breaker, CircuitBreaker)
    assert b._failures == sum(1 for ok in b._window if not ok), "failure count out of step with the window"
    assert len(b._window) <= b.config.window
    assert 0 <= b._probe_successes <= b._probes_admitted <= b.config.probes, "probe counts out of range"
    assert b.generation == len(b.transitions), "generation out of step with the transitions"
    assert b._in_flight >= 0, "more outcomes than admissions"
    assert b._admission == Admission(b.state, b.generation), "the admission ticket is out of date"
    if b.state is BreakerState.HALF_OPEN:
        assert b._in_flight == b._probes_admitted - b._probe_successes, "probes in flight out of step"
    elif b.state is BreakerState.OPEN:
        assert b._in_flight == 0, "an open breaker admitted a call"
    for earlier, later in zip(b.transitions, b.transitions[1:], strict=False):
        assert earlier.target is later.source, "transitions do not chain"
        assert earlier.time <= later.time, "transitions out of time order"
    if b.transitions:
        assert b.transitions[-1].target is b.state
    for t in b.transitions:
        assert TRANSITIONS[(t.source, t.event)] is t.target, "a transition not in the table"
