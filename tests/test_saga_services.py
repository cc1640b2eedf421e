"""Simulated services: idempotency keys, tombstones, transient failures, 2PC locks."""

from __future__ import annotations

import pytest

from labkit.saga.services import (
    EntryStatus,
    InventoryService,
    Op,
    Outcome,
    PaymentService,
    Reply,
    Request,
    ServiceFaults,
)
from labkit.sim import Context, Node, Simulator


class Client(Node):
    def __init__(self, node_id):
        super().__init__(node_id)
        self.replies: list[Reply] = []

    def on_message(self, ctx: Context, src, msg):
        self.replies.append(msg)


def setup(faults=None, service=PaymentService, initial=None):
    faults = ServiceFaults() if faults is None else faults
    sim = Simulator(seed=3)
    sim.add_node("svc", lambda nid: service(nid, faults, initial or {"alice": 100, "book": 2}))
    client = sim.add_node("c", Client)
    sim.run(0.0)

    def send(op, key, args=()):
        sim.call("c", lambda n, ctx: ctx.send("svc", Request("s", 0, op, key, args)))
        sim.run_for(1.0)
        return client.replies[-1]

    return sim, send


def test_a_retried_charge_is_applied_once():
    sim, send = setup()
    assert send(Op.DO, "k1", ("alice", 30)).outcome is Outcome.OK
    assert send(Op.DO, "k1", ("alice", 30)).outcome is Outcome.OK  # the retry
    svc = sim.node("svc")
    assert svc.state["alice"] == 70
    assert svc.entries["k1"].status is EntryStatus.APPLIED


def test_undo_is_idempotent_and_a_refused_step_stays_refused():
    sim, send = setup()
    send(Op.DO, "k1", ("alice", 30))
    for _ in range(3):
        assert send(Op.UNDO, "k1").outcome is Outcome.OK
    assert sim.node("svc").state["alice"] == 100
    assert send(Op.DO, "k2", ("alice", 500)).outcome is Outcome.REJECTED  # card declined
    assert send(Op.DO, "k2", ("alice", 500)).detail == "card declined"


def test_an_undo_before_its_do_leaves_a_tombstone():
    sim, send = setup()
    assert send(Op.UNDO, "k1").detail.startswith("voided")
    late = send(Op.DO, "k1", ("alice", 30))
    assert late.outcome is Outcome.REJECTED
    assert sim.node("svc").state.get("alice", 100) == 100


def test_state_survives_a_crash():
    sim, send = setup(service=InventoryService)
    send(Op.DO, "k1", ("book", 2))
    sim.crash("svc")
    sim.restart("svc")
    sim.run_for(0.1)
    assert sim.node("svc").state["book"] == 0
    assert send(Op.DO, "k1", ("book", 2)).outcome is Outcome.OK  # remembered, not re-applied
    assert send(Op.DO, "k2", ("book", 1)).detail == "insufficient stock"


def test_flaky_undo_answers_retry_then_works():
    sim, send = setup(ServiceFaults(flaky_undo=2))
    send(Op.DO, "k1", ("alice", 30))
    assert [send(Op.UNDO, "k1").outcome for _ in range(3)] == [Outcome.RETRY, Outcome.RETRY, Outcome.OK]
    assert sim.node("svc").state["alice"] == 100


def test_crash_after_apply_applies_but_never_answers():
    sim, send = setup(ServiceFaults(crash_after_apply=True))
    sim.call("c", lambda n, ctx: ctx.send("svc", Request("s", 0, Op.DO, "k1", ("alice", 30))))
    sim.run_for(1.0)
    assert sim.node("c").replies == []
    assert sim.node("svc").crashing and sim.storage("svc")[("entry", "k1")].status is EntryStatus.APPLIED


def test_two_phase_commit_participant_locks_until_decided():
    sim, send = setup()
    assert send(Op.PREPARE, "t1", ("alice", 30)).outcome is Outcome.OK
    blocked = send(Op.DO, "other", ("alice", 1))
    assert blocked.outcome is Outcome.REJECTED and "in-doubt" in blocked.detail
    sim.crash("svc")  # the lock is durable: it survives a participant crash
    sim.restart("svc")
    sim.run_for(0.1)
    assert send(Op.DO, "other2", ("alice", 1)).outcome is Outcome.REJECTED
    assert send(Op.ABORT, "t1").outcome is Outcome.OK
    assert sim.node("svc").state["alice"] == 100
    assert send(Op.DO, "other3", ("alice", 1)).outcome is Outcome.OK


def test_entry_transitions_follow_the_invariant():
    from labkit.saga.services import check_transition

    check_transition(None, EntryStatus.APPLIED)
    check_transition(EntryStatus.APPLIED, EntryStatus.COMPENSATED)
    for old, new in [
        (EntryStatus.COMPENSATED, EntryStatus.APPLIED),  # re-applying a compensated key
        (EntryStatus.VOIDED, EntryStatus.APPLIED),  # a late DO after its tombstone
        (EntryStatus.APPLIED, EntryStatus.APPLIED),
        (EntryStatus.COMMITTED, EntryStatus.ABORTED),
    ]:
        with pytest.raises(AssertionError):
            check_transition(old, new)


def test_fault_validation():
    with pytest.raises(ValueError, match="slow"):
        ServiceFaults(slow=-1)
    with pytest.raises(ValueError, match="flaky_undo"):
        ServiceFaults(flaky_undo=-2)
    with pytest.raises(TypeError, match="reject"):
        ServiceFaults(reject="yes")
    with pytest.raises(TypeError, match="faults"):
        PaymentService("p", faults="none")
