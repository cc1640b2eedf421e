"""Log compaction (§7 of the extended Raft paper, Figures 12 and 13), tested like a lab.

Each server snapshots its state machine once ``snapshot_threshold`` applied
entries pile up and drops the log below the snapshot; a leader brings a
follower that needs a compacted entry up to date with InstallSnapshot; a
restart rebuilds from snapshot plus log. The strict invariant monitor runs
throughout, so every test also checks Figure 3's properties on compacted logs.
"""

from __future__ import annotations

import random

import pytest

from labkit.raft import (
    InstallSnapshot,
    InvariantViolation,
    KVStore,
    LogEntry,
    RaftCluster,
    RaftLog,
    RaftNode,
    Snapshot,
)
from labkit.raft.messages import Configuration
from labkit.raft.schedules import check_history, random_schedule, run_schedule
from labkit.raft.snapshot import load_log
from labkit.sim import Kind, Uniform


def E(term, cmd="x"):
    return LogEntry(term, cmd)


def elect(c: RaftCluster) -> str:
    assert c.run_until(lambda: c.leader() is not None, 3.0), "no leader elected"
    return c.leader()


def sends(c: RaftCluster, msg_type, dst=None) -> int:
    return sum(
        1
        for r in c.sim.trace.rows
        if r[1] is Kind.SEND and type(r[6]) is msg_type and (dst is None or r[4] == dst)
    )


def write_many(c: RaftCluster, n: int, prefix: str = "k") -> None:
    """``n`` appends through a client, waited for."""
    client = c.client(f"writer-{prefix}")
    for i in range(n):
        client.append(f"{prefix}{i % 4}", f"<{prefix}{i}>")
    assert c.run_until(lambda: not client.busy, 10.0), "the writes did not finish"


# ---------------------------------------------------------------------------
# The log with a snapshot base
# ---------------------------------------------------------------------------
def test_compacted_log_keeps_indexes_and_refuses_compacted_entries():
    log = RaftLog([E(1, "a"), E(1, "b"), E(2, "c"), E(2, "d")])
    log.compact(2)
    assert (log.snapshot_index, log.snapshot_term, log.first_index, log.last_index) == (2, 1, 3, 4)
    assert log[3].command == "c" and log.term(2) == 1 and log.term(4) == 2 and len(log) == 2
    with pytest.raises(IndexError, match="compacted"):
        log[1]
    with pytest.raises(IndexError, match="compacted"):
        log.entries(2)
    # Below the snapshot everything matches (it is committed); at it, the term must agree.
    assert log.matches(1, 99) and log.matches(2, 1) and not log.matches(2, 2)
    # A leader's entries that the snapshot covers are skipped, the rest are taken.
    assert log.maybe_append(1, (E(1, "b"), E(2, "c"), E(3, "z"))) == 4
    assert [e.command for e in log] == ["c", "z"] and log.last_index == 4
    assert log.last_index_of_term(1) == 2  # the snapshot's last entry counts
    assert log.conflict_hint(9) == (5, None)


def test_restore_keeps_the_entries_after_a_matching_snapshot_and_discards_otherwise():
    log = RaftLog([E(1), E(1), E(2), E(3)])
    assert log.restore(3, 2) is True  # Figure 13 step 6: same index and term
    assert (log.snapshot_index, log.last_index, [e.term for e in log]) == (3, 4, [3])
    other = RaftLog([E(1), E(1), E(2)])
    assert other.restore(5, 4) is False  # step 7: discard the entire log
    assert (other.snapshot_index, other.last_index, len(other)) == (5, 5, 0)
    assert other.last_term == 4


def test_recovery_ignores_entries_a_crash_left_behind_below_the_snapshot():
    # A real disk (labkit.net) may crash between writing the snapshot and forgetting the
    # entries it replaced: recovery must start after the snapshot, not at 1.
    conf = Configuration(("n1",))
    storage = {
        "snapshot": Snapshot(2, 1, KVStore().snapshot(), conf),
        "log_length": 3,
        ("log", 1): E(1, "old"),
        ("log", 2): E(1, "old"),
        ("log", 3): E(2, "new"),
    }
    snap, log = load_log(storage)
    assert snap.last_included_index == 2 and log.first_index == 3 and [e.command for e in log] == ["new"]


# ---------------------------------------------------------------------------
# A cluster that compacts
# ---------------------------------------------------------------------------
def test_logs_and_storage_stay_small_and_every_server_agrees():
    c = RaftCluster(n=3, seed=1, snapshot_threshold=20)
    elect(c)
    write_many(c, 200)
    c.sim.run_for(0.3)
    data = {nid: c.node(nid).state_machine.data for nid in c.ids}
    assert len({tuple(sorted(d.items())) for d in data.values()}) == 1
    assert sum(len(v) for v in next(iter(data.values())).values()) > 0
    for nid in c.ids:
        node = c.node(nid)
        assert node.log.last_index > 200 and len(node.log) <= 20 + 2, node.log
        assert node.snapshot is not None and node.log.snapshot_index == node.snapshot.last_included_index
        # Storage holds the snapshot and only the entries after it (ctx.forget did its work).
        keys = [k for k in c.sim.storage(nid) if isinstance(k, tuple)]
        assert all(k[1] > node.log.snapshot_index for k in keys) and len(keys) == len(node.log)
    assert c.check_invariants() == []


def test_install_snapshot_brings_a_crashed_follower_up_to_date():
    c = RaftCluster(n=3, seed=2, snapshot_threshold=10)
    leader = elect(c)
    follower = next(n for n in c.ids if n != leader)
    c.crash(follower)
    write_many(c, 60)
    assert c.node(leader).log.snapshot_index > 10  # the entries the follower lacks are gone
    c.restart(follower)
    assert c.run_until(
        lambda: (
            c.is_up(follower) and c.node(follower).state_machine.data == c.node(leader).state_machine.data
        ),
        2.0,
    )
    assert sends(c, InstallSnapshot, dst=follower) >= 1
    assert c.node(follower).log.snapshot_index >= 10
    assert c.check_invariants() == []


def test_install_snapshot_to_a_follower_cut_off_while_the_log_moved_on():
    # Not crashed: cut off. Its log ends inside what the leader compacted; it must take
    # the snapshot, keep or drop its log (Figure 13 steps 6-7) and apply what follows.
    c = RaftCluster(n=5, seed=3, snapshot_threshold=16)
    leader = elect(c)
    lagging = next(n for n in c.ids if n != leader)
    write_many(c, 5, "a")
    c.disconnect(lagging)
    write_many(c, 80, "b")
    c.connect(lagging)
    write_many(c, 5, "c")
    assert c.run_until(
        lambda: c.node(lagging).state_machine.data == c.node(c.leader()).state_machine.data, 2.0
    )
    assert sends(c, InstallSnapshot, dst=lagging) >= 1
    check_history(c)


def test_restart_of_every_server_rebuilds_state_from_snapshot_plus_log():
    c = RaftCluster(n=3, seed=4, snapshot_threshold=12)
    elect(c)
    write_many(c, 50)
    before = c.node(c.leader()).state_machine.data
    for nid in c.ids:
        c.crash(nid)
    for nid in c.ids:
        c.restart(nid)
    c.sim.run_for(0.01)
    for nid in c.ids:
        node = c.node(nid)
        # Right after boot, before any message: the snapshot is the state, and it is committed.
        assert node.snapshot is not None and node.last_applied == node.log.snapshot_index > 0
        assert node.commit_index >= node.log.snapshot_index
    elect(c)
    write_many(c, 1, "after")
    assert c.run_until(
        lambda: all(c.node(n).commit_index == c.node(c.leader()).commit_index for n in c.ids), 1.0
    )
    after = c.node(c.leader()).state_machine.data
    assert all(after[k].startswith(v) for k, v in before.items())
    check_history(c)


def crash_around_a_snapshot(seed: int) -> RaftCluster:
    c = RaftCluster(n=3, seed=10 + seed, snapshot_threshold=8)
    elect(c)
    client = c.client("w")
    client.start_workload(rate=80, duration=1.5, kinds=("append", "get"))
    victim = c.ids[seed % 3]
    assert c.run_until(lambda: c.is_up(victim) and c.node(victim).log.snapshot_index > 0, 2.0)
    c.crash(victim)  # the step that compacted has just run
    c.sim.run_for(0.3)
    c.restart(victim)
    leader = elect(c)
    start = c.node(leader).log.snapshot_index

    def leader_compacted_again() -> bool:
        now = c.leader()
        return now is not None and c.node(now).log.snapshot_index > start

    assert c.run_until(leader_compacted_again, 2.0)
    c.crash(c.leader())  # the leader, as soon as it has compacted
    c.sim.run_for(1.0)
    for nid in c.ids:
        if not c.is_up(nid):
            c.restart(nid)
    assert c.run_until(lambda: not client.busy and c.leader() is not None, 3.0)
    return c


@pytest.mark.parametrize("seed", range(6))
def test_crash_around_a_snapshot_never_loses_a_committed_write(seed):
    check_history(crash_around_a_snapshot(seed))


def test_snapshots_under_an_unreliable_network_and_churn():
    lossy = {"loss": 0.1, "duplication": 0.05, "latency": Uniform(0.001, 0.02)}
    for seed in range(2000, 2012):
        faults = random_schedule(random.Random(seed), kinds=("crash", "restart", "partition", "heal"))
        c = run_schedule(seed, faults, ops=("get", "append"), snapshot_threshold=8, **lossy)
        check_history(c)
        assert c.check_invariants() == []
        assert any(c.node(n).log.snapshot_index for n in c.ids if c.is_up(n))


@pytest.mark.slow
def test_snapshots_under_an_unreliable_network_and_churn_many_seeds():
    lossy = {"loss": 0.1, "duplication": 0.05, "latency": Uniform(0.001, 0.02)}
    for seed in range(3000, 3300):
        faults = random_schedule(
            random.Random(seed), kinds=("crash", "restart", "partition", "heal", "disconnect")
        )
        c = run_schedule(seed, faults, ops=("get", "append", "put"), snapshot_threshold=5, **lossy)
        check_history(c)


# ---------------------------------------------------------------------------
# The checks catch broken compaction (planted bugs)
# ---------------------------------------------------------------------------
class SnapshotsUncommitted(RaftNode):
    """Snapshots its whole log, committed or not: a snapshot of entries that may still vanish."""

    def take_snapshot(self, ctx):
        if self.log.last_index > self.commit_index and self.log.last_index > self.log.snapshot_index:
            index = self.log.last_index
            s = Snapshot(index, self.log.term(index), self.state_machine.snapshot(), self.configuration)
            self.log.compact(index)
            self.membership.compacted(index)
            self.snapshot = s
            ctx.persist("snapshot", s)
        else:
            super().take_snapshot(ctx)


class ForgetfulStore(KVStore):
    """A state machine whose snapshot leaves out the client sessions (retries then apply twice)."""

    def snapshot(self):
        data, _sessions = super().snapshot()
        return data, ()


def test_the_monitor_catches_a_snapshot_of_uncommitted_entries():
    c = RaftCluster(
        n=3,
        seed=5,
        strict=False,
        node_factory=lambda nid, peers, config: SnapshotsUncommitted(
            nid, peers, type(config)(snapshot_threshold=4)
        ),
    )
    leader = elect(c)
    c.partition([leader])  # what it appends now never commits
    for i in range(8):
        c.submit(f"lonely {i}", node=leader)
        c.sim.run_for(0.01)
    c.sim.call(leader, lambda n, ctx: n.take_snapshot(ctx))
    c.sim.run_for(0.01)
    assert any(v.startswith("Snapshot:") for v in c.violations), c.violations


def forgetful_run(seed: int, store: type[KVStore] = ForgetfulStore) -> RaftCluster:
    c = RaftCluster(
        n=3,
        seed=seed,
        duplication=0.2,
        loss=0.1,
        client_timeout=0.05,
        snapshot_threshold=3,
        state_machine=store,
    )
    elect(c)
    client = c.client("w")
    client.start_workload(rate=100, duration=1.0, kinds=("append",), keys=("a",))
    for _ in range(4):
        c.sim.run_for(0.2)
        victim = c.leader()
        if victim:
            c.crash(victim)
            c.sim.run_for(0.3)
            c.restart(victim)
    c.sim.set_loss(0)
    c.run_until(lambda: not client.busy, 5.0)
    return c


def test_a_snapshot_without_sessions_is_caught_by_the_history_checks():
    # Lost replies make clients retry; after a restart from a snapshot that forgot the
    # session table, a retried append is applied twice: check_history must say so.
    for seed in range(40):
        try:
            check_history(forgetful_run(seed), linearizability=False)
        except AssertionError as e:
            assert "lost or applied twice" in str(e)
            break
    else:
        pytest.fail("a double append after a snapshot without sessions went unnoticed")
    # The same run with the real store (whose snapshot keeps the sessions) passes.
    check_history(forgetful_run(seed, KVStore), linearizability=False)


def test_strict_monitor_raises_on_a_broken_snapshot():
    c = RaftCluster(
        n=3,
        seed=5,
        node_factory=lambda nid, peers, config: SnapshotsUncommitted(
            nid, peers, type(config)(snapshot_threshold=4)
        ),
    )
    leader = elect(c)
    c.partition([leader])
    for i in range(8):
        c.submit(f"lonely {i}", node=leader)
    with pytest.raises(InvariantViolation, match="Snapshot"):
        c.sim.call(leader, lambda n, ctx: n.take_snapshot(ctx))
        c.sim.run_for(0.01)


def test_a_disk_forgets_what_a_snapshot_replaced_and_replays_the_same(tmp_path):
    # labkit.net's storage: ctx.forget is a one-element line in the write-ahead file.
    from labkit.net.codec import registry_for
    from labkit.net.storage import DiskStorage
    from labkit.sim import FORGOTTEN

    reg = registry_for("raft")
    disk = DiskStorage(tmp_path, reg).open()
    snap = Snapshot(2, 1, KVStore().snapshot(), Configuration(("n1", "n2", "n3")))
    disk.write([(("log", 1), E(1, "a")), (("log", 2), E(1, "b")), (("log", 3), E(1, "c")), ("log_length", 3)])
    disk.write([("snapshot", snap), (("log", 1), FORGOTTEN), (("log", 2), FORGOTTEN)])
    disk.sync()
    disk.close()
    again = DiskStorage(tmp_path, reg).open()
    assert ("log", 1) not in again and ("log", 2) not in again and again[("log", 3)] == E(1, "c")
    assert again["snapshot"] == snap
    _snap, log = load_log(again)
    assert log.first_index == 3 and log.last_index == 3
    again.close()


def test_snapshots_and_configurations_cross_the_wire_unchanged():
    # labkit.net sends these as JSON frames; what arrives must equal what left. A chunk's
    # bytes travel as base64 text.
    from labkit.net.codec import registry_for
    from labkit.raft import InstallSnapshotReply, KVCommand, PreVote, TimeoutNow
    from labkit.raft.snapshot import decode, encode

    store = KVStore()
    store.apply(KVCommand("c1", 1, ("put", "k", "v\u00e9")))
    conf = Configuration(("n1", "n2", "n3"), ("n4",))
    data = encode(Snapshot(10, 2, store.snapshot(), conf))
    reg = registry_for("raft")
    for msg in (
        InstallSnapshot(3, "n1", 10, 2, 0, data[:7], False, 7),
        InstallSnapshot(3, "n1", 10, 2, 7, data[7:], True, 7),
        InstallSnapshotReply(3, 3, 10, 7, 19, False, 7),
        PreVote(4, "n2", 10, 2),
        TimeoutNow(3, "n1"),
        LogEntry(2, conf),
    ):
        assert reg.decode(reg.encode(msg)[4:]) == msg, msg
    again = KVStore()
    chunks = [
        reg.decode(reg.encode(InstallSnapshot(3, "n1", 10, 2, i, data[i : i + 5], False))[4:]).data
        for i in range(0, len(data), 5)
    ]
    snap = decode(b"".join(chunks), 10, 2)
    again.restore(snap.state)
    assert (
        again.data == store.data and again.duplicate("c1", 1) == (True, None) and snap.configuration == conf
    )
