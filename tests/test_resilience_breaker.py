"""The circuit breaker: its transition table against a reference model and pybreaker.

Nygard, *Release It!* ch. 5: closed -> open on failures, open -> half-open
after a cool-down, half-open -> closed on successful probes or -> open on a
failed one.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pybreaker
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from labkit.resilience import (
    TRANSITIONS,
    Admission,
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
    """A plain, independent model of the documented behaviour.

    Every state change starts a new epoch; a call remembers the epoch that
    admitted it, and its outcome counts only if the epoch is still current.
    """

    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.epoch = 0
        self.outcomes: list[bool] = []
        self.opened_at = 0.0
        self.admitted = 0
        self.successes = 0
        self.full_at = 0.0

    def _enter(self, state: str, now: float) -> None:
        self.state = state
        self.epoch += 1
        if state == "open":
            self.opened_at = now
        elif state == "half_open":
            self.admitted, self.successes = 0, 0
        else:
            self.outcomes = []

    def allow(self, now: float) -> int | None:
        """The admitting epoch, or None if refused."""
        if self.state == "open":
            if now - self.opened_at < self.cfg.cooldown:
                return None
            self._enter("half_open", now)
        if self.state == "half_open":
            if self.admitted == self.cfg.probes:
                if now - self.full_at >= self.cfg.cooldown:
                    self._enter("open", now)  # the probes took too long
                return None
            self.admitted += 1
            if self.admitted == self.cfg.probes:
                self.full_at = now
        return self.epoch

    def record(self, now: float, epoch: int, ok: bool) -> bool:
        if epoch != self.epoch:
            return False  # admitted before the last state change: ignored
        if self.state == "closed":
            self.outcomes.append(ok)
            last = self.outcomes[-self.cfg.window :]
            rate = last.count(False) / len(last)
            if not ok and len(last) >= self.cfg.min_calls and rate >= self.cfg.failure_rate - 1e-9:
                self._enter("open", now)
        elif self.state == "half_open":
            if not ok:
                self._enter("open", now)
            else:
                self.successes += 1
                if self.successes == self.cfg.probes:
                    self._enter("closed", now)
        return True


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

# An operation: advance the clock, start a call, or finish the i-th call in flight
# (i modulo the number in flight, so any call can finish first).
ops = st.lists(
    st.one_of(
        st.tuples(st.just("tick"), st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0])),
        st.tuples(st.just("start"), st.just(0)),
        st.tuples(st.just("finish_ok"), st.integers(0, 5)),
        st.tuples(st.just("finish_fail"), st.integers(0, 5)),
    ),
    max_size=80,
)

# The review's counterexample: three calls in flight while closed, one fails and
# opens the breaker, the cool-down passes, one probe is admitted, then the two
# old calls succeed. They were not probes: the breaker must stay half-open.
LATE_CLOSED_CALLS = [
    ("start", 0),
    ("start", 0),
    ("start", 0),
    ("finish_fail", 0),
    ("tick", 1.0),
    ("start", 0),
    ("finish_ok", 0),
    ("finish_ok", 0),
]
# And a late failure of a closed-state call must not re-open a healthy half-open breaker.
LATE_CLOSED_FAILURE = [
    ("start", 0),
    ("start", 0),
    ("finish_fail", 0),
    ("tick", 1.0),
    ("start", 0),
    ("finish_fail", 0),
    ("start", 0),
    ("finish_ok", 0),
    ("finish_ok", 0),
]
EXAMPLE_CONFIG = BreakerConfig(failure_rate=0.5, window=1, min_calls=1, cooldown=1.0, probes=2)


@settings(max_examples=300, deadline=None)
@given(configs, ops)
@example(EXAMPLE_CONFIG, LATE_CLOSED_CALLS)
@example(EXAMPLE_CONFIG, LATE_CLOSED_FAILURE)
def test_transitions_match_reference_model(cfg: BreakerConfig, program: list) -> None:
    clock = Clock()
    breaker = CircuitBreaker(cfg, clock=clock)
    ref = Reference(cfg)
    in_flight: list[tuple[Admission, int]] = []
    for op, arg in program:
        if op == "tick":
            clock.t += arg
        elif op == "start":
            admission = breaker.allow()
            epoch = ref.allow(clock.t)
            assert (admission is None) == (epoch is None)
            if admission is not None:
                assert admission.state is breaker.state
                in_flight.append((admission, epoch))
        elif in_flight:
            ok = op == "finish_ok"
            admission, epoch = in_flight.pop(arg % len(in_flight))
            assert breaker.record(admission, ok) == ref.record(clock.t, epoch, ok)
        assert breaker.state.value == ref.state
        check_breaker_invariants(breaker)


def test_late_closed_state_calls_are_not_probes() -> None:
    clock = Clock()
    b = CircuitBreaker(EXAMPLE_CONFIG, clock=clock)
    old = [b.allow() for _ in range(3)]
    assert b.record(old[0], False) and b.state is BreakerState.OPEN
    clock.t = 1.0
    probe = b.allow()
    assert probe is not None and probe.state is BreakerState.HALF_OPEN
    assert not b.record(old[1], True) and not b.record(old[2], True)  # stale: ignored
    assert b.state is BreakerState.HALF_OPEN and b.stale_outcomes == 2
    check_breaker_invariants(b)
    assert b.record(probe, True)
    assert b.state is BreakerState.HALF_OPEN  # one probe of two
    assert b.record(b.allow(), True)
    assert b.state is BreakerState.CLOSED


def test_late_failure_does_not_reopen_healthy_probes() -> None:
    clock = Clock()
    b = CircuitBreaker(EXAMPLE_CONFIG, clock=clock)
    first, late = b.allow(), b.allow()
    b.record(first, False)
    clock.t = 1.0
    probes = [b.allow(), b.allow()]
    assert not b.record(late, False)
    assert b.state is BreakerState.HALF_OPEN
    for p in probes:
        b.record(p, True)
    assert b.state is BreakerState.CLOSED
    check_breaker_invariants(b)


def test_record_validates_its_admission() -> None:
    b = CircuitBreaker(EXAMPLE_CONFIG, clock=lambda: 0.0)
    with pytest.raises(TypeError, match="admission"):
        b.record(True, True)  # type: ignore[arg-type]  # the old record(ok) call
    a = b.allow()
    with pytest.raises(TypeError, match="ok"):
        b.record(a, 1)  # type: ignore[arg-type]
    b.record(a, True)
    with pytest.raises(ValueError, match="exactly once"):
        b.record(a, True)
    with pytest.raises(ValueError, match="later generation"):
        b.record(Admission(BreakerState.CLOSED, 5), True)


def test_half_open_gives_up_on_probes_that_never_answer() -> None:
    clock = Clock()
    b = CircuitBreaker(
        BreakerConfig(failure_rate=1.0, window=1, min_calls=1, cooldown=1.0, probes=2), clock=clock
    )
    b.record(b.allow(), False)
    clock.t = 1.0
    hung = b.allow()  # a probe that will never report back
    clock.t = 1.5
    b.record(b.allow(), True)  # the second probe, fine: slots are now all used
    assert b.allow() is None
    clock.t = 2.49
    assert b.allow() is None and b.state is BreakerState.HALF_OPEN  # still waiting for the first
    clock.t = 2.5  # a whole cool-down since the last slot was taken
    assert b.allow() is None and b.state is BreakerState.OPEN
    assert b.transitions[-1].event is Event.PROBES_TIMED_OUT
    assert not b.record(hung, True)  # its answer, if it ever comes, is stale
    clock.t = 3.5
    assert b.allow() is not None and b.state is BreakerState.HALF_OPEN  # tries again
    check_breaker_invariants(b)


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, asyncio.CancelledError, SystemExit])
def test_an_interrupted_probe_reports_back(interrupt: type[BaseException]) -> None:
    clock = Clock()
    b = CircuitBreaker(
        BreakerConfig(failure_rate=1.0, window=1, min_calls=1, cooldown=1.0, probes=1), clock=clock
    )
    b.record(b.allow(), False)
    clock.t = 1.0

    def stuck() -> None:
        raise interrupt

    with pytest.raises(interrupt):
        b.call(stuck)
    # The probe counted as a failure: the breaker re-opened instead of waiting for ever.
    assert b.state is BreakerState.OPEN
    assert b.transitions[-1].event is Event.PROBE_FAILED
    clock.t = 2.0
    assert b.call(lambda: "up") == "up" and b.state is BreakerState.CLOSED
    check_breaker_invariants(b)


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
        a = b.allow()
        assert a
        b.record(a, ok)
    assert b.state is BreakerState.CLOSED  # 3 calls < min_calls
    b.record(b.allow(), False)  # 2 of 4 failed = 50%
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    clock.t = 1.99
    assert not b.allow()
    clock.t = 2.0
    probes = [b.allow(), b.allow()]
    assert all(probes) and not b.allow()  # two probes, no third
    assert b.state is BreakerState.HALF_OPEN
    b.record(probes[0], True)
    b.record(probes[1], True)
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
    b.record(b.allow(), False)
    clock.t = 1.0
    probe = b.allow()
    assert probe
    clock.t = 1.5
    b.record(probe, False)
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
