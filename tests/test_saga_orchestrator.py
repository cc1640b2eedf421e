"""The saga invariant under every fault combination and every crash point.

Garcia-Molina and Salem (SIGMOD 1987, section 1): a saga runs T1..Tn, or
T1..Tj then Cj..C1. We check the observable version at the end of each run:
all three effects hold or none does, nobody is charged twice, no stock leaks,
and the log's verdict matches the services' databases.
"""

from __future__ import annotations

import functools
import itertools
import os

import pytest

import labkit.saga.orchestrator as orch
from labkit.saga.definition import ORDER_SAGA, Order, step_key
from labkit.saga.log import LogKind, LogRecord, SagaStatus
from labkit.saga.orchestrator import (
    CrashPoint,
    Phase,
    RetryPolicy,
    SagaState,
    check_state,
    decide_recovery,
    decide_reply,
    decide_start,
    decide_timer,
)
from labkit.saga.scenario import FAULT_KINDS, SERVICES, crash_points, fault_combinations
from labkit.saga.scenario import run_order_saga as _run_order_saga
from labkit.saga.services import Op, Outcome, Reply, ServiceFaults

# Thousands of short-lived SQLite files: keep them in memory-backed /dev/shm
# when the machine has it (still real files, still removed after each run).
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
run_order_saga = functools.partial(_run_order_saga, workdir=FAST_TMP)

COMBOS = list(fault_combinations())


def _name(faults: dict) -> str:
    inv = {v: k for k, v in FAULT_KINDS.items()}
    return ",".join(f"{s}={inv[faults[s]]}" for s in SERVICES if s in faults) or "no-faults"


def test_the_sweep_covers_every_combination():
    assert len(COMBOS) == len(FAULT_KINDS) ** 3 == 216
    assert len({_name(c) for c in COMBOS}) == 216


@pytest.mark.parametrize("faults", COMBOS, ids=[_name(c) for c in COMBOS])
def test_invariant_for_every_crash_point(faults):
    base = run_order_saga(faults=faults)
    assert base.ok, base.violations
    assert base.status in (SagaStatus.COMPLETED, SagaStatus.ABORTED)
    points = crash_points(base.writes)
    assert len(points) == 2 * base.writes >= 2
    for cp in points:
        run = run_order_saga(faults=faults, crashes=[cp])
        assert run.ok, (str(cp), run.violations)
        assert any(n == "orchestrator" for _, n in run.crashes), "the crash point was never reached"
        assert run.effects.charges <= 1 and run.effects.reservations <= 1


SINGLE = [c for c in COMBOS if len(c) <= 1]


@pytest.mark.parametrize("faults", SINGLE, ids=[_name(c) for c in SINGLE])
def test_invariant_when_recovery_crashes_too(faults):
    """Crash, then crash again during recovery (first and second write of
    the new incarnation, before and after sending)."""
    base = run_order_saga(faults=faults)
    second = [CrashPoint(k, b) for k in (1, 2) for b in (True, False)]
    for first in crash_points(base.writes):
        for again in second:
            run = run_order_saga(faults=faults, crashes=[first, again])
            assert run.ok, (str(first), str(again), run.violations)


def test_outcomes_are_the_expected_ones():
    # Forward when nothing refuses; backward when a service refuses.
    assert run_order_saga().outcome == "all"
    for s in SERVICES:
        assert run_order_saga(faults={s: ServiceFaults(reject=True)}).status is SagaStatus.ABORTED
        slow = run_order_saga(faults={s: FAULT_KINDS["slow"]})
        assert slow.outcome == "all" and slow.effects.charges == 1, (
            "a retry with the same key must not double-charge"
        )
        maybe = run_order_saga(faults={s: FAULT_KINDS["very slow"]})
        assert maybe.outcome == "none"
        assert any(r.kind is LogKind.STEP_MAYBE for r in maybe.records)


def test_compensations_are_retried_until_they_succeed():
    run = run_order_saga(
        faults={"shipping": ServiceFaults(reject=True), "payment": ServiceFaults(flaky_undo=5)}
    )
    assert run.ok and run.outcome == "none"
    refunds = [r for r in run.records if r.kind is LogKind.COMP_SENT and r.step == 1]
    assert len(refunds) == 6  # five transient failures, then success


def test_effects_are_read_from_a_service_that_is_still_down():
    # The run stops while payment is down: its database is read from durable storage.
    run = run_order_saga(faults={"payment": ServiceFaults(crash_after_apply=True, down_for=50.0)}, until=5.0)
    assert run.effects.charged == 30 and run.effects.money_conserved and run.effects.stock_conserved
    assert run.status is SagaStatus.RUNNING and "the saga never finished" in run.violations


def test_crash_points_are_reached_at_every_write():
    base = run_order_saga(faults={"payment": ServiceFaults(reject=True)})
    for cp in crash_points(base.writes):
        run = run_order_saga(faults={"payment": ServiceFaults(reject=True)}, crashes=[cp])
        kinds = [r.kind for r in run.records]
        assert kinds[0] is LogKind.STARTED and kinds[-1] is LogKind.ABORTED


# -- the sweep can fail: break the orchestrator on purpose --------------------
SWEEP_SAMPLE = [{"payment": FAULT_KINDS["slow"]}, {"payment": FAULT_KINDS["very slow"]}, {}]


def _violations_found() -> list[str]:
    found = []
    for faults in SWEEP_SAMPLE:
        base = run_order_saga(faults=faults)
        found += base.violations
        for cp in crash_points(base.writes):
            found += run_order_saga(faults=faults, crashes=[cp]).violations
    return found


def test_sweep_catches_missing_idempotency_keys(monkeypatch):
    counter = itertools.count()
    monkeypatch.setattr(orch, "step_key", lambda saga_id, step: f"{saga_id}/{step}/{next(counter)}")
    found = _violations_found()
    assert any("charged 2 times" in v for v in found), found


def test_sweep_catches_a_timeout_taken_for_a_failure(monkeypatch):
    # Broken rule: treat "no answer" as "not done" and compensate only earlier steps.
    real = orch.SagaState.apply

    def apply(self, r):
        if r.kind is LogKind.STEP_MAYBE:
            self.phase = Phase.COMPENSATING
            return
        real(self, r)

    monkeypatch.setattr(orch.SagaState, "apply", apply)
    found = _violations_found()
    assert any(v.startswith("partial") for v in found), found


def test_sweep_catches_an_orchestrator_that_does_not_recover(monkeypatch):
    monkeypatch.setattr(orch, "decide_recovery", lambda state, now, policy: orch.Decision())
    found = _violations_found()
    assert any("never finished" in v for v in found), found


# -- the pure core ---------------------------------------------------------------
ORDER = Order("o1")
POLICY = orch.SAGA_RETRY


def _reply(state: SagaState, op: Op, outcome: Outcome) -> Reply:
    return Reply(state.saga_id, state.step, op, step_key(state.saga_id, state.step), outcome)


def test_core_forward_path_and_replay_agree():
    s = SagaState.new("o1", ORDER_SAGA, ORDER)
    records = decide_start(s, 0.0, POLICY).records
    for _ in range(3):
        d = decide_reply(s, _reply(s, Op.DO, Outcome.OK), 1.0, POLICY)
        records += d.records
        check_state(s)
    assert s.phase is Phase.COMPLETED and s.to_undo == [0, 1, 2]
    replayed = SagaState.replay("o1", ORDER_SAGA, ORDER, records)
    assert (replayed.phase, replayed.step, replayed.to_undo) == (s.phase, s.step, s.to_undo)


def test_core_rejection_compensates_in_reverse_order():
    s = SagaState.new("o1", ORDER_SAGA, ORDER)
    decide_start(s, 0.0, POLICY)
    decide_reply(s, _reply(s, Op.DO, Outcome.OK), 0.1, POLICY)
    decide_reply(s, _reply(s, Op.DO, Outcome.OK), 0.2, POLICY)
    d = decide_reply(s, _reply(s, Op.DO, Outcome.REJECTED), 0.3, POLICY)
    assert [r.kind for r in d.records] == [LogKind.STEP_FAILED, LogKind.COMP_SENT]
    assert d.sends[0][0] == "payment" and d.sends[0][1].op is Op.UNDO
    d = decide_reply(s, _reply(s, Op.UNDO, Outcome.RETRY), 0.4, POLICY)
    assert d.records == [] and d.timer == POLICY.delay(0) == 0.1  # the first retry of a compensation
    d = decide_timer(s, 0.5, POLICY)
    assert d.records[0].attempt == 2 and d.sends[0][1].key == step_key("o1", 1)
    d = decide_reply(s, _reply(s, Op.UNDO, Outcome.OK), 0.6, POLICY)
    assert d.sends[0][0] == "inventory"
    d = decide_reply(s, _reply(s, Op.UNDO, Outcome.OK), 0.7, POLICY)
    assert [r.kind for r in d.records] == [LogKind.COMP_DONE, LogKind.ABORTED]
    check_state(s)


def test_core_timeouts_make_a_step_maybe_done():
    s = SagaState.new("o1", ORDER_SAGA, ORDER)
    decide_start(s, 0.0, POLICY)
    for attempt in range(2, POLICY.max_attempts + 1):
        d = decide_timer(s, attempt, POLICY)
        assert d.records[0] == LogRecord(LogKind.STEP_SENT, 0, attempt, attempt)
    d = decide_timer(s, 9.0, POLICY)
    assert d.records[0].kind is LogKind.STEP_MAYBE
    assert d.sends == [("inventory", d.sends[0][1])] and d.sends[0][1].op is Op.UNDO


def test_core_ignores_stale_replies_and_recovers_where_it_stopped():
    s = SagaState.new("o1", ORDER_SAGA, ORDER)
    records = decide_start(s, 0.0, POLICY).records
    records += decide_reply(s, _reply(s, Op.DO, Outcome.OK), 0.1, POLICY).records
    stale = Reply("o1", 0, Op.DO, step_key("o1", 0), Outcome.OK)
    assert decide_reply(s, stale, 0.2, POLICY).records == []
    again = SagaState.replay("o1", ORDER_SAGA, ORDER, records)
    d = decide_recovery(again, 5.0, POLICY)
    assert d.sends[0][1].key == step_key("o1", 1) and d.records[0].attempt == 2


def test_validation_errors():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="timeout"):
        RetryPolicy(timeout=-1)
    with pytest.raises(ValueError, match="after_write"):
        CrashPoint(0)
    with pytest.raises(TypeError, match="order"):
        run_order_saga("not an order")
    with pytest.raises(ValueError, match="unknown services"):
        run_order_saga(faults={"billing": ServiceFaults()})
    with pytest.raises(ValueError, match="qty"):
        Order("o", qty=0)
    with pytest.raises(ValueError, match="fault kind"):
        list(fault_combinations(["meteor"]))
