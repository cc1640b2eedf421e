"""The service model: cascades happen without policies and are contained with them.

Scenario (the notebook's): clients send 100 req/s, half ``checkout``
(A -> B -> C), half ``browse`` (A -> D). C turns slow from t=5 s to t=15 s.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.resilience import (
    FAULT_WINDOW,
    ChainModel,
    Fault,
    Jitter,
    Policies,
    ServiceSpec,
    check_breaker_invariants,
    check_service_invariants,
    make_policies,
    overload,
    retry_storm,
    slow_dependency,
    thundering_herd,
)
from labkit.resilience.metrics import TIMEOUTS
from labkit.sim import Exponential

FAULT = FAULT_WINDOW
DURING = (7.0, 15.0)  # after the first two seconds of the fault


def slow_c(policies: Policies, seed: int = 1, fault: Fault = Fault.SLOW, until: float = 25.0) -> ChainModel:
    return slow_dependency(policies, seed=seed, fault=fault, until=until)


def share(m: ChainModel, start: float, end: float, kind: str | None = None) -> float:
    return m.success(start, end, kind)


@pytest.mark.parametrize("seed", [1, 2])
def test_without_policies_a_slow_c_takes_down_a(seed: int) -> None:
    m = slow_c(make_policies(), seed)
    assert share(m, 0, 5) > 0.95  # healthy before
    # A's goodput collapses, browse included, although A and D are healthy.
    assert share(m, *DURING) < 0.25
    assert share(m, *DURING, kind="browse") < 0.3
    a = m.metrics().query("service == 'A' and 10 <= time < 15")
    assert a.busy.mean() > 0.9 * m.specs["A"].workers  # A's workers are all waiting
    assert share(m, 18, 25) > 0.9  # and it comes back when C does


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("fault", [Fault.SLOW, Fault.ERRORING, Fault.DOWN])
def test_breaker_and_deadlines_keep_a_serving(seed: int, fault: Fault) -> None:
    m = slow_c(make_policies(deadlines=True, breaker=True), seed, fault)
    # Stated level: at least 45% of all requests succeed while C is broken
    # (browse is half the traffic), and browse is barely touched.
    assert share(m, *DURING) >= 0.45
    assert share(m, *DURING, kind="browse") >= 0.9
    assert share(m, 18, 25) > 0.9
    assert len(m.transitions()) >= 2  # the breaker did open (and try again)


def test_breaker_opens_and_closes_again() -> None:
    m = slow_c(make_policies(timeouts=True, breaker=True))
    tr = m.transitions()
    b_to_c = tr[(tr.service == "B") & (tr.dependency == "C")]
    assert b_to_c.iloc[0].target == "open" and FAULT[0] <= b_to_c.iloc[0].time < FAULT[0] + 3
    assert b_to_c.iloc[-1].target == "closed" and b_to_c.iloc[-1].time > FAULT[1]
    states = m.breaker_states()
    during = states.query("service == 'B' and 8 <= time < 15")
    assert during.open_fraction.mean() > 0.5
    assert (states.query("service == 'B' and time >= 20").state == "closed").all()


def test_retries_without_backoff_turn_a_blip_into_an_outage() -> None:
    calm = retry_storm(make_policies(timeouts=True))
    stormy = retry_storm(make_policies(timeouts=True, retries=True, backoff=False))
    assert share(calm, 10, 25, "checkout") > 0.9
    assert share(stormy, 10, 25, "checkout") < 0.1  # the blip ended at 6 s; the outage did not
    assert stormy.amplification("C", 10, 25) > 1.5
    assert calm.amplification("C", 10, 25) == pytest.approx(1.0, abs=0.01)  # bucket edges only


def test_a_retry_budget_ends_the_storm() -> None:
    m = retry_storm(make_policies(timeouts=True, retries=True, backoff=False, budget=True))
    assert share(m, 10, 25, "checkout") > 0.9
    assert m.amplification("C", 5, 25) < 1.3


def test_jitter_spreads_the_herd() -> None:
    served = {j: thundering_herd(j).goodput(1, 4) * 3 for j in (Jitter.NONE, Jitter.FULL)}
    assert served[Jitter.FULL] > 1.3 * served[Jitter.NONE]


def test_load_shedding_keeps_goodput_up_under_overload() -> None:
    plain = overload(make_policies(timeouts=True, deadlines=True))
    shed = overload(make_policies(timeouts=True, deadlines=True, shedding=True))
    assert shed.goodput(5, 15) > 80  # close to C's capacity
    assert shed.goodput(5, 15) > 1.5 * plain.goodput(5, 15)
    assert shed.metrics().query("service == 'A'").shed.sum() > 0  # the front door says no early


def test_bulkhead_keeps_browse_alive() -> None:
    plain = slow_c(make_policies())
    walled = slow_c(make_policies(bulkhead=True))
    assert share(plain, *DURING, kind="browse") < 0.3
    assert share(walled, *DURING, kind="browse") > 0.9
    a = walled.metrics().query("service == 'A'")
    assert a.fast_fails.sum() > 0


def traced_slow_c(pol: Policies, seed: int) -> ChainModel:
    m = ChainModel(seed, rate=100.0, policies=pol, trace=True)
    m.at(5.0, lambda m: m.set_fault("C", Fault.SLOW))
    return m.run(10.0)


def test_same_seed_same_trace() -> None:
    pol = make_policies(timeouts=True, retries=True, breaker=True)
    a = traced_slow_c(pol, seed=5)
    b = traced_slow_c(pol, seed=5)
    assert len(a.sim.trace) > a.events > 5_000  # a row per send too
    assert a.sim.trace.digest() == b.sim.trace.digest()
    assert traced_slow_c(pol, seed=6).sim.trace.digest() != a.sim.trace.digest()


def test_same_seed_same_metrics_without_a_trace() -> None:
    pol = make_policies(timeouts=True, retries=True, breaker=True)
    a = slow_c(pol, seed=5, until=10)
    b = slow_c(pol, seed=5, until=10)
    assert a.events == b.events > 5_000
    pd.testing.assert_frame_equal(a.metrics(), b.metrics())
    assert not slow_c(pol, seed=6, until=10).metrics().equals(a.metrics())
    with pytest.raises(ValueError, match="trace=True"):
        a.sim.trace.digest()


flags = st.fixed_dictionaries(
    {
        k: st.booleans()
        for k in ("timeouts", "deadlines", "retries", "backoff", "budget", "breaker", "bulkhead", "shedding")
    }
)


@settings(max_examples=12, deadline=None)
@given(flags, st.sampled_from(list(Fault)), st.integers(0, 1000))
def test_invariants_hold_under_any_policies(policy_flags: dict, fault: Fault, seed: int) -> None:
    m = ChainModel(seed, rate=80.0, policies=make_policies(**policy_flags))
    m.at(1.0, lambda m: m.set_fault("C", fault))
    m.at(
        3.0,
        lambda m: m.set_policies(make_policies(**{**policy_flags, "breaker": not policy_flags["breaker"]})),
    )
    m.at(4.0, lambda m: m.set_fault("C", Fault.NONE))

    def check(m: ChainModel) -> None:
        for name in m.specs:
            if m.sim.is_up(name):
                node = m.service(name)
                check_service_invariants(node)
                for b in node.breakers.values():
                    check_breaker_invariants(b)

    for t in (0.5, 1.5, 2.5, 3.5, 4.5, 5.5):
        m.at(t, check)
    m.run(6.0)
    cf = m.client_metrics()
    sent = cf.offered.sum() * m.bucket
    answered = (cf.goodput + cf.late + cf.errors + cf.timed_out).sum() * m.bucket
    pending = sum(1 for _k, _s, d in m.client_stats.outstanding.values() if d > m.now)
    assert answered + pending == pytest.approx(sent)


def test_frames_have_the_documented_columns() -> None:
    m = slow_c(make_policies(breaker=True, timeouts=True), until=6)
    f = m.metrics()
    for col in (
        "time",
        "service",
        "offered",
        "goodput",
        "error_rate",
        "p50",
        "p99",
        "queue_depth",
        "utilisation",
        "amplification",
    ):
        assert col in f.columns
    assert set(f.service) == {"A", "B", "C", "D"}
    assert len(f) == 4 * 12
    assert ((f.utilisation >= 0) & (f.utilisation <= 1 + 1e-9)).all()
    assert set(m.breaker_states().columns) >= {"time", "service", "dependency", "state", "level"}
    assert set(m.client_metrics().kind) == {"checkout", "browse"}


def test_knobs_validate_their_input() -> None:
    m = ChainModel(0)
    with pytest.raises(ValueError, match="service must be one of"):
        m.set_fault("Z", Fault.SLOW)
    with pytest.raises(ValueError, match="fault must be one of"):
        m.set_fault("C", "melting")
    with pytest.raises(ValueError, match="workers"):
        m.update_service("C", workers=0)
    with pytest.raises(ValueError, match="can change only"):
        m.update_service("C", colour="red")
    with pytest.raises(ValueError, match="rate"):
        m.set_load(rate=-1)
    with pytest.raises(TypeError, match="policies"):
        m.set_policies("all on")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="calls 'X'"):
        ChainModel(services={"A": ServiceSpec(calls={"k": ("X",)})})
    with pytest.raises(TypeError, match=r"calls\['k'\] must be a tuple"):
        ServiceSpec(calls={"k": "BC"})  # not the route ("B", "C")
    with pytest.raises(TypeError, match="service names"):
        ServiceSpec(calls={"k": ("B", 3)})
    assert ServiceSpec(calls={"k": ["B", "C"]}).calls == {"k": ("B", "C")}
    with pytest.raises(TypeError, match="timeouts must be True or False"):
        make_policies(timeouts="yes")  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match="jitter must be a Jitter or one of 'none', 'full', 'equal', 'decorrelated'"
    ):
        make_policies(retries=True, jitter="lots")
    with pytest.raises(ValueError, match="timeout must be"):
        make_policies(timeout=-1)  # refused even while timeouts are off
    with pytest.raises(TypeError, match="slow_latency"):
        ChainModel(slow_latency="very")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"no route for; known kinds: \['browse', 'checkout'\]"):
        ChainModel(mix={"chekout": 1.0})
    with pytest.raises(ValueError, match="no route for"):
        m.set_load(mix={"chekout": 1.0})
    m.run(2.0)
    with pytest.raises(ValueError, match="kind must be None or one of"):
        m.goodput(kind="nope")
    for start, end in ((1.5, 1.0), (0.0, 3.0)):
        with pytest.raises(ValueError, match="need 0 <= start < end <= now"):
            m.amplification("C", start, end)


def test_knobs_change_mid_run() -> None:
    # (Without timeouts, B's calls lost while C was down would hold its workers forever.)
    m = ChainModel(0, rate=50.0, policies=make_policies(timeouts=True))
    m.run(2.0)
    m.update_service("C", workers=1, latency=0.05)
    m.set_load(rate=100.0)
    m.set_fault("C", Fault.DOWN)
    assert not m.sim.is_up("C")
    m.run(3.0)
    m.set_fault("C", Fault.NONE)
    m.run(5.0)
    assert m.specs["C"].workers == 1
    assert m.offered(3, 5) > 80
    c = m.metrics().query("service == 'C' and time >= 3.5")
    assert c.offered.sum() > 0
    # One worker taking at least 50 ms: C now serves at most 20 requests/s and is saturated.
    assert c.busy.max() <= 1 + 1e-9 and c.busy.mean() > 0.9
    assert (c.goodput + c.errors).mean() <= 21
    assert c.p50.min() >= 0.05


def test_changing_a_faulty_service_keeps_the_fault_until_it_is_healed() -> None:
    m = ChainModel(0, rate=50.0)
    m.set_fault("C", Fault.SLOW)
    m.update_service("C", latency=0.02)
    assert m.specs["C"].latency is m.slow_latency  # still slow
    m.set_fault("C", Fault.ERRORING)
    m.update_service("C", failure_rate=0.1)
    assert m.specs["C"].failure_rate == 1.0  # still failing every request
    m.set_fault("C", Fault.NONE)
    assert m.specs["C"].latency.mean == pytest.approx(0.02) and m.specs["C"].failure_rate == 0.1


def test_the_breaker_plot_shows_no_breaker_after_breakers_are_switched_off() -> None:
    on = make_policies(breaker=True, timeouts=True)
    m = ChainModel(1, rate=100.0, mix={"checkout": 1.0}, policies={"B": on})
    m.at(1.0, lambda m: m.set_fault("C", Fault.ERRORING))
    m.at(3.0, lambda m: m.set_policies(make_policies(timeouts=True), ["B"]))
    m.run(8.0)
    states = m.breaker_states().query("service == 'B' and dependency == 'C'")
    assert states.query("1.0 <= time < 3.0").level.max() == 2  # it opened while it was there
    assert (states.query("time >= 3.0").state == "closed").all()  # gone: nothing refuses calls
    assert m.service("B").breakers == {}


def test_the_amplification_column_counts_attempts_per_call() -> None:
    storm = retry_storm(make_policies(timeouts=True, retries=True, backoff=False))
    calm = retry_storm(make_policies(timeouts=True))
    b = storm.metrics().query("service == 'B' and 5.0 <= time < 8.0")
    assert (b.amplification > 1.5).any()  # retries on top of the calls
    # At most max_attempts per call (over a window: a bucket may hold retries of earlier calls).
    assert 1.5 < b.attempts.sum() / b.calls.sum() <= 3
    assert (calm.metrics().query("service == 'B' and calls > 0").amplification == 1.0).all()


def test_breaker_does_not_stay_half_open_when_probes_vanish() -> None:
    """C errors (B's breaker opens), then crashes while the breaker is open and
    comes back at 3 s. With no timeouts the first probes to the crashed C never
    answer; the breaker must give up on them, re-open, and probe again."""
    m = ChainModel(1, rate=100.0, mix={"checkout": 1.0}, policies={"B": make_policies(breaker=True)})
    m.at(1.0, lambda m: m.set_fault("C", Fault.ERRORING))
    m.at(1.5, lambda m: m.set_fault("C", Fault.DOWN))
    m.at(3.0, lambda m: m.set_fault("C", Fault.NONE))
    m.run(12.0)
    events = m.transitions().event.tolist()
    assert events[:3] == ["failure rate reached", "cool-down elapsed", "probes timed out"]
    breaker = m.service("B").breakers["C"]
    assert breaker.state.value == "closed"
    check_breaker_invariants(breaker)
    assert share(m, 8, 12) > 0.95  # checkouts flow again once C is back


def two_hop(policies: Policies, c_latency: Any, a_latency: Any = 0.01, deadline: float = 1.0) -> ChainModel:
    services = {
        "A": ServiceSpec(workers=1000, latency=a_latency, calls={"checkout": ("C",)}),
        "C": ServiceSpec(workers=1000, latency=c_latency),
    }
    return ChainModel(
        7, rate=200.0, mix={"checkout": 1.0}, services=services, policies=policies, deadline=deadline
    )


def counted(m: ChainModel, service: str, slot: int) -> int:
    return sum(row[slot] for row in m.stats[service].counts.values())


def latencies(m: ChainModel, service: str) -> list[float]:
    return [x for xs in m.stats[service].latencies.values() for x in xs]


def test_a_call_to_a_dead_dependency_times_out_exactly_after_the_timeout() -> None:
    m = two_hop(make_policies(timeouts=True, timeout=0.3), c_latency=0.01)
    m.set_fault("C", Fault.DOWN)
    m.run(5.0)
    seen = latencies(m, "A")
    assert len(seen) > 900
    assert seen == pytest.approx([0.31] * len(seen), abs=1e-9)  # 10 ms of work, then 300 ms of waiting
    assert counted(m, "A", TIMEOUTS) == len(seen)


def test_calls_time_out_at_their_deadline_in_deadline_order_not_start_order() -> None:
    # A's own work varies, so calls start in another order than their deadlines
    # fall: a call made later may be due earlier than the alarm already set.
    m = two_hop(
        make_policies(timeouts=True, deadlines=True, timeout=0.3),
        c_latency=Exponential(0.2, minimum=0.05),
        a_latency=Exponential(0.05),
        deadline=0.2,
    )
    checks = []
    for i in range(1, 100):
        m.at(i * 0.05, lambda m: checks.append(check_service_invariants(m.service("A"))))
    m.run(5.0)
    assert len(checks) == 99
    timeouts = counted(m, "A", TIMEOUTS)
    assert timeouts > 300
    # A replies to a timed-out call the moment its deadline passes: 0.2 s after
    # the client sent it, 1 ms of network before it reached A.
    at_deadline = [x for x in latencies(m, "A") if abs(x - 0.199) < 1e-9]
    assert len(at_deadline) == timeouts
    assert min(latencies(m, "A")) > 0.05  # C answered none faster than its minimum
