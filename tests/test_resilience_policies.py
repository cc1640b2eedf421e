"""Retries (backoff, jitter, budget), timeouts, bulkheads and load shedding.

Backoff formulas: Brooker, "Exponential Backoff And Jitter" (AWS
Architecture Blog, 2015).
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.resilience import (
    Backoff,
    Bulkhead,
    Jitter,
    LoadShedder,
    RetryBudget,
    RetryPolicy,
    Timeouts,
    remaining,
)

backoffs = st.builds(
    lambda base, extra, jitter: Backoff(base=base, cap=base + extra, jitter=jitter),
    st.floats(0.0, 2.0),
    st.floats(0.0, 10.0),
    st.sampled_from(list(Jitter)),
)


@settings(max_examples=300, deadline=None)
@given(backoffs, st.integers(0, 40), st.integers(0, 2**32))
def test_delays_respect_the_cap_and_their_formula(backoff: Backoff, n: int, seed: int) -> None:
    rng = random.Random(seed)
    delays = backoff.delays(n, rng)
    assert len(delays) == n
    for attempt, d in enumerate(delays):
        exp = min(backoff.cap, backoff.base * 2.0**attempt)
        assert 0.0 <= d <= backoff.cap
        if backoff.jitter is Jitter.NONE:
            assert d == exp
        elif backoff.jitter is Jitter.FULL:
            assert d <= exp
        elif backoff.jitter is Jitter.EQUAL:
            assert exp / 2 <= d <= exp
        else:
            assert backoff.base <= d or d == backoff.cap


def test_decorrelated_grows_from_the_previous_delay() -> None:
    b = Backoff(base=0.1, cap=100.0, jitter=Jitter.DECORRELATED)
    rng = random.Random(7)
    prev = 0.0
    for attempt in range(20):
        d = b.delay(attempt, rng, prev)
        assert 0.1 <= d <= max(0.1, 3 * (prev or 0.1))
        prev = d


def test_no_jitter_synchronises_and_full_jitter_spreads() -> None:
    """The thundering herd: 100 callers failing at once retry at the same instants without jitter."""
    none = Backoff(0.1, 10.0, Jitter.NONE)
    full = Backoff(0.1, 10.0, Jitter.FULL)
    assert len({tuple(none.delays(4, random.Random(s))) for s in range(100)}) == 1
    firsts = [full.delays(1, random.Random(s))[0] for s in range(100)]
    assert len(set(firsts)) == 100 and max(firsts) - min(firsts) > 0.05


# One step: advance the clock by dt, then deposit a request or ask for a retry.
steps = st.lists(st.tuples(st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0]), st.booleans()), max_size=300)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([0.0, 0.1, 0.2, 0.5]),
    st.sampled_from([0.0, 0.5, 1.0]),
    st.sampled_from([1.0, 2.5, 10.0]),
    steps,
)
def test_retry_budget_bounds_retries_in_every_window(
    ratio: float, min_rate: float, window: float, program: list
) -> None:
    now = [0.0]
    budget = RetryBudget(ratio, min_rate, window, clock=lambda: now[0])
    requests: list[float] = []
    granted: list[float] = []
    for dt, is_request in program:
        now[0] += dt
        if is_request:
            budget.deposit()
            requests.append(now[0])
        elif budget.try_withdraw():
            granted.append(now[0])
            # Invariant: within the window ending now, retries <= ratio*requests + min*window.
            t = now[0]
            in_window = sum(1 for g in granted if g > t - window)
            reqs = sum(1 for r in requests if r > t - window)
            assert in_window <= ratio * reqs + min_rate * window + 1e-9
    assert budget.granted == len(granted)


def test_retry_budget_refuses_and_recovers() -> None:
    now = [0.0]
    b = RetryBudget(0.5, 0.0, 1.0, clock=lambda: now[0])
    assert not b.try_withdraw()
    b.deposit()
    b.deposit()
    assert b.try_withdraw() and not b.try_withdraw()
    now[0] = 1.0  # everything ages out of the window
    assert b.allowance() == 0.0
    b.deposit()
    b.deposit()
    assert b.try_withdraw()
    assert (b.granted, b.refused) == (2, 2)


def test_retry_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(TypeError, match="backoff"):
        RetryPolicy(backoff=0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ratio"):
        RetryPolicy(budget_ratio=-1)
    with pytest.raises(ValueError, match="cap must be >= base"):
        Backoff(base=2.0, cap=1.0)
    with pytest.raises(ValueError, match="jitter must be a Jitter or one of"):
        Backoff(jitter="lots")  # type: ignore[arg-type]
    assert Backoff(jitter="equal").jitter is Jitter.EQUAL  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempt"):
        Backoff().delay(-1, random.Random(0))
    assert RetryPolicy().make_budget(lambda: 0.0) is None
    assert isinstance(RetryPolicy(budget_ratio=0.1).make_budget(lambda: 0.0), RetryBudget)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, -1.0])
def test_retry_budget_refuses_a_non_finite_floor(bad: float) -> None:
    # inf would grant unlimited retries; NaN compares false with everything.
    with pytest.raises(ValueError, match="min_per_second must be a finite number"):
        RetryBudget(0.1, bad, clock=lambda: 0.0)
    with pytest.raises(ValueError, match="min_per_second"):
        RetryPolicy(budget_ratio=0.1, budget_min_per_second=bad)


def test_timeouts_and_deadline_propagation() -> None:
    assert Timeouts().wait_for(5.0, 6.0) is None  # no timeout, deadline ignored
    assert Timeouts(per_call=0.3).wait_for(5.0, 5.1) == 0.3  # deadline not honoured
    assert Timeouts(per_call=0.3, propagate_deadline=True).wait_for(5.0, 5.1) == pytest.approx(0.1)
    assert Timeouts(propagate_deadline=True).wait_for(5.0, 6.0) == 1.0
    assert Timeouts(propagate_deadline=True).wait_for(5.0, None) is None
    assert Timeouts(propagate_deadline=True).wait_for(7.0, 6.0) <= 0  # type: ignore[operator]
    assert Timeouts().deadline_for_downstream(6.0) is None
    assert Timeouts(propagate_deadline=True).deadline_for_downstream(6.0) == 6.0
    assert remaining(None, 3.0) == float("inf") and remaining(4.0, 3.0) == 1.0
    with pytest.raises(ValueError, match="per_call"):
        Timeouts(per_call=0)
    with pytest.raises(TypeError, match="propagate_deadline"):
        Timeouts(propagate_deadline=1)  # type: ignore[arg-type]


def test_bulkhead_limits_and_counts() -> None:
    b = Bulkhead(2)
    assert b.try_acquire() and b.try_acquire() and not b.try_acquire()
    assert (b.in_use, b.refused) == (2, 1)
    b.release()
    assert b.try_acquire()
    b.release()
    b.release()
    with pytest.raises(ValueError, match="release"):
        b.release()
    with pytest.raises(ValueError, match="limit"):
        Bulkhead(0)


def test_load_shedder_rules() -> None:
    s = LoadShedder(max_queue=3, deadline_aware=True)
    assert s.admit(0.0, 2, 4, None, 0.1)
    assert not s.admit(0.0, 3, 4, None, 0.1)  # queue full
    # 2 queued on 1 worker at 0.1 s each: done at 0.3 s.
    assert LoadShedder(None, True).admit(0.0, 2, 1, 0.3 + 1e-9, 0.1)
    assert not LoadShedder(None, True).admit(0.0, 2, 1, 0.29, 0.1)
    assert LoadShedder(None, False).admit(0.0, 100, 1, 0.01, 0.1)
    with pytest.raises(ValueError, match="max_queue"):
        LoadShedder(max_queue=-1)
