"""Randomized fault schedules for labkit.raft (extended Raft paper, Figure 3).

Each schedule drives a 5-server cluster with concurrent key-value clients
through random crashes, restarts, partitions, disconnections, heals and
message loss, while the strict invariant monitor checks Election Safety, Log
Matching, Leader Completeness and State Machine Safety after every event.
At the end the faults are lifted and the test checks that the store is live
again, that every operation that returned is in the log, and that the client
histories are linearizable (with labkit.linearizability) or at least never lose
a completed write and never read backwards in time.

``benchmarks/bench_raft.py`` runs the same schedules by the ten thousand.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.raft import RaftCluster, Role
from labkit.raft.schedules import Fault, apply_fault, check_history, random_schedule, run_schedule
from labkit.sim import Uniform


def verify_history(c: RaftCluster) -> None:
    """Completed writes are never lost, reads never go back in time, and the history is linearizable."""
    check_history(c)


def run_and_verify(seed: int, faults: list[Fault] | None = None, **network) -> RaftCluster:
    # Even seeds mix put into the workload (a put overwrites, so only the
    # linearizability checker can judge those histories); odd seeds only get
    # and append, where the append-once and monotonic-read checks apply too.
    ops = ("get", "put", "append") if seed % 2 == 0 else ("get", "append")
    c = run_schedule(seed, faults, ops=ops, **network)
    verify_history(c)
    assert c.check_invariants() == []
    return c


def test_workloads_include_put():
    c = run_and_verify(0)
    kinds = {h.input[0] for h in c.history}
    assert kinds == {"get", "put", "append"}, kinds


@pytest.mark.parametrize("chunk", range(8))
def test_random_fault_schedules(chunk):
    # 8 chunks x 25 seeds = 200 random schedules (~2 s virtual each).
    for seed in range(chunk * 25, chunk * 25 + 25):
        run_and_verify(seed)


# A network that loses, duplicates and reorders messages all the time (not only
# during a "loss" fault), with clients as busy as in the speed benchmark. This
# is where a stale AppendEntries most often reaches a follower.
LOSSY = {"loss": 0.1, "duplication": 0.05, "latency": Uniform(0.001, 0.02), "rate": 100.0}
NO_LOSS_FAULTS = ("crash", "restart", "disconnect", "partition", "heal")


@pytest.mark.parametrize("chunk", range(2))
def test_random_fault_schedules_on_a_lossy_network(chunk):
    # 2 chunks x 20 seeds; the monitor also checks each server's own invariants
    # (commit_index never decreases, last_applied <= commit_index) after every event.
    for seed in range(1000 + chunk * 20, 1000 + chunk * 20 + 20):
        faults = random_schedule(random.Random(seed), kinds=NO_LOSS_FAULTS)
        run_and_verify(seed, faults, **LOSSY)


_fault = st.one_of(
    st.tuples(st.just("crash"), st.integers(0, 4)),
    st.tuples(st.just("restart"), st.integers(0, 4)),
    st.tuples(st.just("disconnect"), st.integers(0, 4)),
    st.tuples(st.just("partition"), st.lists(st.integers(0, 4), min_size=1, max_size=2, unique=True)),
    st.tuples(st.just("heal"), st.just(0)),
    st.tuples(st.just("loss"), st.sampled_from([0.0, 0.05, 0.2])),
)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    steps=st.lists(st.tuples(st.floats(0.01, 0.4), _fault), min_size=1, max_size=10),
)
def test_hypothesis_fault_schedules(seed, steps):
    faults = [Fault(delay, kind, arg) for delay, (kind, arg) in steps]
    run_and_verify(seed, faults)


def test_schedules_really_inject_faults():
    # The random schedules are not vacuous: they crash, partition and change leaders.
    kinds = set()
    leaders = 0
    for seed in range(20):
        faults = random_schedule(random.Random(seed))
        kinds.update(f.kind for f in faults)
        c = run_and_verify(seed, faults)
        leaders += len(c.monitor.leaders)
    assert {"crash", "restart", "partition", "heal", "loss"} <= kinds
    assert leaders > 20 * 2


def test_apply_fault_validates():
    c = RaftCluster(n=3, seed=0)
    with pytest.raises(ValueError, match="kind"):
        apply_fault(c, Fault(0.1, "explode", 0))
    assert c.node("n1").role is Role.FOLLOWER


def test_history_checks_catch_stale_reads():
    # The same checks fail on the deliberately broken store that serves reads
    # from any server's local state: they are not vacuous.
    from labkit.raft import Bug

    caught = 0
    for seed in range(10):
        c = run_schedule(seed, bugs=[Bug.STALE_READS], ops=("get", "append"))
        try:
            verify_history(c)
        except AssertionError:
            caught += 1
    assert caught >= 5


def test_an_undecided_linearizability_check_fails(monkeypatch):
    # "Undecided" (the checker's budget ran out) proves nothing: it must not pass.
    import labkit.linearizability as lin

    c = run_schedule(3, ops=("get", "append"))
    check_history(c)  # a real verdict: linearizable
    undecided = SimpleNamespace(ok=None, steps=12345, explanation=None)
    monkeypatch.setattr(lin, "check", lambda *args, **kwargs: undecided)
    with pytest.raises(AssertionError, match="linearizability undecided"):
        check_history(c)
    refuted = SimpleNamespace(ok=False, steps=10, explanation="a read saw a value nobody wrote")
    monkeypatch.setattr(lin, "check", lambda *args, **kwargs: refuted)
    with pytest.raises(AssertionError, match="not linearizable: a read saw"):
        check_history(c)


@pytest.mark.parametrize("chunk", range(2))
def test_random_fault_schedules_with_a_window_of_messages_in_flight(chunk):
    # The leader streams up to 4 AppendEntries per follower (labkit.raft.progress's
    # replicate state), 2 entries each so the window fills: 2 chunks x 15 seeds,
    # on the schedules' network and on a lossy, duplicating, reordering one.
    for seed in range(2000 + chunk * 15, 2000 + chunk * 15 + 15):
        run_and_verify(seed, max_inflight=4, max_entries=2)
        faults = random_schedule(random.Random(seed), kinds=NO_LOSS_FAULTS)
        run_and_verify(seed, faults, max_inflight=4, max_entries=2, **LOSSY)
