"""The circuit breaker: its transition table against a reference model and pybreaker.

Nygard, *Release It!* ch. 5: closed -> open on failures, open -> half-open
after a cool-down, half-open -> closed on successful probes or -> open on a
failed one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pybreaker
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.resilience import (
    TRANSITIONS,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    Event,
    check_breaker_invariants,
)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Reference:
    """A plain, independent model of the documented behaviour."""

    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.outcomes: list[bool] = []
        self.opened_at = 0.0
        self.admitted = 0
        self.successes = 0

    def allow(self, now: float) -> bool:
        if self.state == "open":
            if now - self.opened_at < self.cfg.cooldown:
                return False
            self.state, self.admitted, self.successes = "half_open", 0, 0
        if self.state == "half_open":
            if self.admitted == self.cfg.probes:
                return False
            self.admitted += 1
        return True

    def record(self, now: float, ok: bool) -> None:
        if self.state == "closed":
            self.outcomes.append(ok)
            last = self.outcomes[-self.cfg.window :]
            rate = last.count(False) / len(last)
            if not ok and len(last) >= self.cfg.min_calls and rate >= self.cfg.failure_rate - 1e-9:
                self.state, self.opened_at = "open", now
        elif self.state == "half_open":
            if not ok:
                self.state, self.opened_at = "open", now
            else:
                self.successes += 1
                if self.successes == self.cfg.probes:
                    self.state, self.outcomes = "closed", []


configs = st.builds(
    BreakerConfig,
    failure_rate=st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.7, 1.0]),
    window=st.integers(1, 8),
    min_calls=st.just(1),
    cooldown=st.sampled_from([0.0, 0.5, 1.0, 2.5]),
    probes=st.integers(1, 3),
).flatmap(
    lambda c: st.integers(1, c.window).map(
        lambda m: BreakerConfig(c.failure_rate, c.window, m, c.cooldown, c.probes)
    )
)

# An operation: advance the clock, start a call, or finish the i-th call in flight.
ops = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0])),
        st.tuples(st.just("start"), st.just(0)),
        st.tuples(st.just("finish_ok"), st.integers(0, 5)),
        st.tuples(st.just("finish_fail"), st.integers(0, 5)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(configs, ops)
def test_transitions_match_reference_model(cfg: BreakerConfig, program: list) -> None:
    clock = Clock()
    breaker = CircuitBreaker(cfg, clock=clock)
    ref = Reference(cfg)
    in_flight = 0
    for op, arg in program:
        if op == "tick":
            clock.t += arg
        elif op == "start":
            allowed = breaker.allow()
            assert allowed == ref.allow(clock.t)
            in_flight += allowed
        elif in_flight:
            ok = op == "finish_ok"
            breaker.record(ok)
            ref.record(clock.t, ok)
            in_flight -= 1
        assert breaker.state.value == ref.state
        check_breaker_invariants(breaker)


@settings(max_examples=200, deadline=None)
@given(
    fail_max=st.integers(1, 5),
    reset_timeout=st.integers(1, 4),
    success_threshold=st.integers(1, 3),
    calls=st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=60),
)
def test_sequential_calls_behave_like_pybreaker(
    fail_max: int, reset_timeout: int, success_threshold: int, calls: list
) -> None:
    """Overlapping features: consecutive failures trip it (fail_max), the
    cool-down (reset_timeout), and the successes needed in half-open
    (success_threshold). Our window = min_calls = fail_max at a 100% failure
    rate is exactly "fail_max consecutive failures"."""
    clock = Clock()
    base = datetime(2020, 1, 1, tzinfo=UTC)

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return base + timedelta(seconds=clock.t)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pybreaker, "datetime", FakeDatetime)
        _compare_with_pybreaker(clock, fail_max, reset_timeout, success_threshold, calls)


def _compare_with_pybreaker(
    clock: Clock, fail_max: int, reset_timeout: int, success_threshold: int, calls: list
) -> None:
    theirs = pybreaker.CircuitBreaker(
        fail_max=fail_max,
        reset_timeout=reset_timeout,
        success_threshold=success_threshold,
        throw_new_error_on_trip=False,
    )
    ours = CircuitBreaker(
        BreakerConfig(
            failure_rate=1.0,
            window=fail_max,
            min_calls=fail_max,
            cooldown=reset_timeout,
            probes=success_threshold,
        ),
        clock=clock,
    )

    class Boom(Exception):
        pass

    def work(ok: bool) -> str:
        if not ok:
            raise Boom
        return "done"

    names = {"closed": "closed", "open": "open", "half-open": "half_open"}
    for dt, ok in calls:
        clock.t += dt
        their_result = our_result = None
        try:
            their_result = theirs.call(work, ok)
        except pybreaker.CircuitBreakerError:
            their_result = "refused"
        except Boom:
            their_result = "failed"
        try:
            our_result = ours.call(work, ok)
        except CircuitOpenError:
            our_result = "refused"
        except Boom:
            our_result = "failed"
        assert our_result == their_result
        assert ours.state.value == names[theirs.current_state]


def test_table_is_the_whole_state_machine() -> None:
    # Each state is left by some event and entered by some event.
    sources = {s for s, _ in TRANSITIONS}
    targets = set(TRANSITIONS.values())
    assert sources == targets == set(BreakerState)
    breaker = CircuitBreaker(BreakerConfig(), clock=lambda: 0.0)
    with pytest.raises(AssertionError, match="no transition"):
        breaker._fire(Event.PROBE_FAILED, 0.0)  # not possible from CLOSED


def test_opens_after_threshold_and_recovers_through_half_open() -> None:
    clock = Clock()
    b = CircuitBreaker(
        BreakerConfig(failure_rate=0.5, window=4, min_calls=4, cooldown=2.0, probes=2), clock=clock
    )
    for ok in (True, False, True):
        assert b.allow()
        b.record(ok)
    assert b.state is BreakerState.CLOSED  # 3 calls < min_calls
    assert b.allow()
    b.record(False)  # 2 of 4 failed = 50%
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    clock.t = 1.99
    assert not b.allow()
    clock.t = 2.0
    assert b.allow() and b.allow() and not b.allow()  # two probes, no third
    assert b.state is BreakerState.HALF_OPEN
    b.record(True)
    b.record(True)
    assert b.state is BreakerState.CLOSED
    assert [t.event for t in b.transitions] == [
        Event.FAILURE_RATE_REACHED,
        Event.COOLDOWN_ELAPSED,
        Event.PROBES_SUCCEEDED,
    ]
    assert [t.time for t in b.transitions] == [0.0, 2.0, 2.0]


def test_failed_probe_reopens_and_restarts_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker(
        BreakerConfig(failure_rate=1.0, window=1, min_calls=1, cooldown=1.0, probes=1), clock=clock
    )
    b.allow()
    b.record(False)
    clock.t = 1.0
    assert b.allow()
    clock.t = 1.5
    b.record(False)
    assert b.state is BreakerState.OPEN
    clock.t = 2.4
    assert not b.allow()  # cool-down counts from the failed probe
    clock.t = 2.5
    assert b.allow()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"failure_rate": 0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"window": 0}, "window"),
        ({"window": 5, "min_calls": 6}, "min_calls"),
        ({"cooldown": -1}, "cooldown"),
        ({"probes": 0}, "probes"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BreakerConfig(**kwargs)


def test_breaker_needs_a_clock() -> None:
    with pytest.raises(TypeError, match="clock"):
        CircuitBreaker(BreakerConfig(), clock=None)  # type: ignore[arg-type]
