"""The fast invariant monitor against its readable twin (labkit/raft/figure3.py).

InvariantMonitor checks Figure 3 incrementally, with fast paths for what it
has seen before; Figure3Monitor states the same checks plainly. Run side by
side after every event (on seeded random fault schedules, on the teaching
bugs' scenarios, and on servers corrupted at random), they must report the
same violations in the same words after the same event, and keep the same
record of what was committed and applied.
"""

from __future__ import annotations

import random

import pytest

import labkit.raft.schedules as schedules
from labkit.raft import Bug, LogEntry, RaftCluster
from labkit.raft.figure3 import Figure3Monitor
from labkit.raft.invariants import InvariantViolation
from labkit.raft.node import Role
from labkit.raft.scenarios import Figure8, TwoAtOnce
from labkit.raft.schedules import ALL_KINDS, FAULT_KINDS, random_schedule, run_schedule


class Disagreement(Exception):
    """The monitor and its twin disagreed (not an AssertionError, so nothing on the way swallows it)."""


def twin(c: RaftCluster, corrupt_rate: float = 0.0, rng: random.Random | None = None) -> Figure3Monitor:
    """Run a Figure3Monitor beside ``c``'s monitor after every event, both as strict as ``c``'s;
    raise Disagreement at the first event after which they differ. With ``corrupt_rate``, that
    fraction of the events first corrupts the server they touched (see :func:`corrupt`)."""
    fast = c.monitor
    assert fast is not None
    other = c.twin = Figure3Monitor(c._live, c.ids, strict=fast.strict)

    def both(node_id, node=None):
        if corrupt_rate and node_id in c.ids and rng.random() < corrupt_rate:
            corrupt(rng, node)
        other.servers = fast.servers  # the cluster updates its monitor's on a membership change
        raised = []
        for m in (fast, other):
            try:
                m.observe(node_id, node)
                raised.append(None)
            except InvariantViolation as exc:
                raised.append(str(exc))
        if (
            raised[0] != raised[1]
            or other.violations != fast.violations
            or other.committed != fast.committed
            or other.applied != fast.applied
        ):
            raise Disagreement(c.sim.now, node_id, raised, other.violations, fast.violations)
        if raised[0] is not None:
            raise InvariantViolation(raised[0])

    c.sim.observer = both
    return other


def agree(c: RaftCluster) -> None:
    assert c.twin.violations == c.monitor.violations
    assert list(c.twin.committed.items()) == list(c.monitor.committed.items())  # in the same order too


class Twinned(RaftCluster):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        twin(self)


@pytest.mark.parametrize("seed", range(12))
def test_the_monitor_and_its_twin_agree_on_random_fault_schedules(monkeypatch, seed):
    monkeypatch.setattr(schedules, "RaftCluster", Twinned)
    kinds = ALL_KINDS if seed % 2 else FAULT_KINDS  # membership changes too
    faults = random_schedule(random.Random(seed), steps=8, kinds=kinds)
    features = {"snapshot_threshold": 20} if seed % 3 == 0 else {}
    c = run_schedule(seed, faults, strict=False, **features)
    agree(c)
    assert c.monitor.violations == [] and len(c.monitor.applied) >= 5


def test_the_monitor_and_its_twin_agree_on_the_teaching_bugs():
    f8 = Figure8(bugs=[Bug.COMMIT_PRIOR_TERM])
    twin(f8.cluster)
    agree(f8.run())
    assert any(v.startswith("State Machine Safety") for v in f8.cluster.violations)
    two = TwoAtOnce()
    twin(two.cluster)
    agree(two.run())
    assert any(v.startswith("Election Safety") for v in two.cluster.violations)


def corrupt(rng: random.Random, node) -> None:
    """One random mistake a broken server could make, done to ``node`` directly."""
    log = node.log
    what = rng.randrange(10)
    if what == 0:  # an entry no leader sent
        log.append((LogEntry(max(node.current_term, log.last_term), f"junk{rng.randrange(3)}"),))
    elif what == 1 and len(log):  # drops entries, maybe committed ones
        log.truncate(max(log.snapshot_index, log.last_index - rng.randint(1, 3)))
    elif what == 2 and len(log):  # its last entry replaced by an equal copy
        e = log[log.last_index]
        log.truncate(log.last_index - 1)
        log.append((LogEntry(e.term, e.command),))
    elif what == 3:  # commit index moves either way
        node.commit_index = max(0, node.commit_index + rng.choice((-2, -1, 1, 2)))
    elif what == 4:  # applies past what is committed
        node.last_applied += 1
    elif what == 5:  # leads without an election, maybe in a new term
        node.current_term += rng.randint(0, 1)
        node.role = Role.LEADER
    elif what == 6 and len(log):  # compacts, maybe past what is committed
        log.compact(rng.randint(log.snapshot_index + 1, log.last_index))
    elif what == 7:  # takes a snapshot nobody made
        log.restore(
            log.last_index + rng.randint(0, 2), max(node.current_term, log.last_term) + rng.randint(0, 1)
        )
    elif what == 8 and len(log):  # another command at its last index, same term
        e = log[log.last_index]
        log.truncate(log.last_index - 1)
        log.append((LogEntry(e.term, ("other", e.command)),))
    elif what == 9 and len(log):  # commits its last entry, as one of a later term
        e = log[log.last_index]
        log.truncate(log.last_index - 1)
        log.append((LogEntry(e.term + 1, e.command),))
        node.commit_index = log.last_index


def corrupted_run(seed: int, rate: float, strict: bool) -> RaftCluster:
    """5 servers and 3 clients for 3 s (one server crashes at 1.5 s and restarts at 2 s); after a
    fraction ``rate`` of the events the server just touched is corrupted before both monitors look."""
    c = RaftCluster(n=5, seed=seed, strict=strict, latency=schedules.SCHEDULE_LATENCY)
    twin(c, rate, random.Random(seed))
    for k in range(3):
        c.client(f"c{k}").start_workload(rate=40.0, duration=3.0, keys=("a", "b"))
    c.errors = []
    for step in range(6):
        end = c.sim.now + 0.5
        while c.sim.now < end:
            try:
                c.sim.run(end)
            except Disagreement:
                raise
            except InvariantViolation:
                assert strict
                return c
            except Exception as exc:  # a corrupted server tripped over its own state: carry on
                c.errors.append(exc)
                if len(c.errors) > 100:
                    return c
        if step == 2:
            c.crash(c.ids[seed % 5])
        if step == 3:
            c.restart(c.ids[seed % 5])
    return c


def test_the_monitor_and_its_twin_agree_on_corrupted_servers():
    kinds: set[str] = set()
    for seed in range(60):
        c = corrupted_run(seed, rate=(0.0005, 0.002, 0.01, 0.05)[seed % 4], strict=seed % 5 == 0)
        agree(c)
        kinds |= {v.split(":")[0] for v in c.monitor.violations}
    # Every kind of violation came up (so every path of both was compared).
    assert kinds == {
        "Election Safety",
        "Log Matching",
        "Leader Completeness",
        "State Machine Safety",
        "Commit",
        "Commit index",
        "Apply",
        "Snapshot",
    }, kinds
