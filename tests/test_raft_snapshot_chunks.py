"""InstallSnapshot in chunks (extended Raft paper, Figure 13 and §7), tested like a lab.

A leader cuts the snapshot's bytes into chunks of ``snapshot_chunk_size`` and
sends them in order, one at a time; a follower gathers them in a volatile
"snapshot file" and writes a chunk only where that file ends (receiver step 3).
The tests below lose, duplicate and reorder chunks, change the leader and crash
the follower in the middle of a transfer, and deliver stale chunks by hand; the
strict invariant monitor (Figure 3's properties) runs throughout and the client
histories are checked for linearizability. One test plants the bug of a
follower that drops the offset check and shows the checks catch it.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.raft import (
    InstallSnapshot,
    InstallSnapshotReply,
    KVStore,
    RaftCluster,
    RaftConfig,
    Snapshot,
    scenarios,
)
from labkit.raft import snapshot as snapshots
from labkit.raft.messages import Configuration, KVCommand
from labkit.raft.schedules import check_history, random_schedule, run_schedule
from labkit.raft.snapshot import PartialSnapshot, Transfer, decode, encode
from labkit.sim import Kind, Uniform

CONF = Configuration(("n1", "n2", "n3"))


def kv_state(n: int = 5) -> tuple:
    store = KVStore()
    for i in range(n):
        store.apply(KVCommand("c", i + 1, ("append", f"k{i % 3}", f"<{i}>")))
    return store.snapshot()


def chunk(term: int, index: int, offset: int, data: bytes, done: bool, snap_term: int = 1) -> InstallSnapshot:
    return InstallSnapshot(term, "n1", index, snap_term, offset, data, done)


def sent(c: RaftCluster, msg_type: type, src: str | None = None, dst: str | None = None) -> list:
    return [
        r[6]
        for r in c.sim.trace.rows
        if r[1] is Kind.SEND and type(r[6]) is msg_type and src in (None, r[3]) and dst in (None, r[4])
    ]


def elect(c: RaftCluster) -> str:
    assert c.run_until(lambda: c.leader() is not None, 3.0), "no leader elected"
    return c.leader()


# ---------------------------------------------------------------------------
# Bytes: deterministic JSON, and what it refuses
# ---------------------------------------------------------------------------
def test_a_snapshot_is_json_bytes_equal_for_equal_snapshots_and_read_back_whole():
    s = Snapshot(12, 3, kv_state(), Configuration(("n1", "n2"), ("n3",)))
    data = encode(s)
    assert isinstance(data, bytes) and data.startswith(
        b'{"configuration":{"learners":["n3"],"voters":["n1","n2"]}'
    )
    assert decode(data, 12, 3) == s
    # Two stores that reached the same state by different orders of keys write the same bytes.
    a, b = KVStore(), KVStore()
    a.restore(((("x", "1"), ("y", "2")), ()))
    b.restore(((("y", "2"), ("x", "1")), ()))
    assert encode(Snapshot(1, 1, a.snapshot(), CONF)) == encode(Snapshot(1, 1, b.snapshot(), CONF))
    assert decode(encode(Snapshot(1, 1, ("é", 1.5, None, True, ()), CONF)), 1, 1).state == (
        "é",
        1.5,
        None,
        True,
        (),
    )


@pytest.mark.parametrize(
    "state, error, words",
    [
        (([1, 2],), TypeError, "made of None, bool, int, float, str and tuples of them"),
        (({"k": "v"},), TypeError, "got dict"),
        ((frozenset({1}),), TypeError, "got frozenset"),
        ((CONF,), TypeError, "got Configuration"),
        ((float("nan"),), ValueError, "finite numbers"),
    ],
)
def test_a_state_json_cannot_hold_exactly_is_refused_with_a_clear_error(state, error, words):
    with pytest.raises(error, match=words):
        encode(Snapshot(1, 1, state, CONF))


def test_bytes_that_are_not_a_snapshot_are_refused():
    for data in (
        b"\xff\xfe",
        b'{"state": 1}',
        b"[1, 2]",
        b'{"configuration":{"voters":[],"learners":[]},"state":{"a":1}}',
    ):
        with pytest.raises(ValueError, match="not a snapshot written by encode"):
            decode(data, 1, 1)


@pytest.mark.parametrize(
    "size, error",
    [(0, ValueError), (-5, ValueError), (2**21, ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_the_chunk_size_is_checked(size, error):
    with pytest.raises(error, match=r"snapshot_chunk_size must be an int from 1 to 1048576 \(bytes\), got"):
        RaftConfig(snapshot_chunk_size=size)
    with pytest.raises(error, match="snapshot_chunk_size"):
        RaftCluster(n=3, snapshot_chunk_size=size)


def test_by_default_every_snapshot_of_the_course_travels_in_one_chunk():
    # The default is chosen so: the largest snapshot these runs send is far below it, so their
    # traces are those of a whole-snapshot InstallSnapshot (only the message fields changed).
    c = run_schedule(2001, snapshot_threshold=5, loss=0.05)
    chunks = sent(c, InstallSnapshot)
    assert chunks and all(m.offset == 0 and m.done for m in chunks)
    assert max(len(m.data) for m in chunks) < snapshots.DEFAULT_CHUNK_SIZE // 10


def test_the_notebook_scenario_checks_its_arguments_and_shows_a_crash_mid_transfer():
    with pytest.raises(ValueError, match=r"crash_after must be an int >= 1 or None \(bytes\), got 0"):
        scenarios.lagging_follower(crash_after=0)
    with pytest.raises(ValueError, match="below the snapshot's size"):
        scenarios.lagging_follower(snapshot_chunk_size=48, crash_after=10_000)
    r = scenarios.lagging_follower(snapshot_chunk_size=48, crash_after=96)
    replies = [m for m in sent(r.cluster, InstallSnapshotReply) if m.last_included_index == 24]
    assert [m.stored for m in replies if not m.done] == [48, 96, 0, 48, 96, 144] and replies[-1].done


# ---------------------------------------------------------------------------
# The two ends of a transfer, alone
# ---------------------------------------------------------------------------
def test_the_file_takes_a_chunk_only_where_it_ends():
    f = PartialSnapshot(chunk(5, 10, 0, b"abc", False))
    assert f.write(chunk(5, 10, 0, b"abc", False)) and bytes(f.data) == b"abc"
    assert not f.write(chunk(5, 10, 0, b"abc", False))  # a duplicate
    assert not snapshots.starts_new_file(
        f, chunk(5, 10, 0, b"abc", False)
    )  # (step 2: nor does it start anew)
    assert snapshots.starts_new_file(f, chunk(6, 10, 0, b"abc", False)) and snapshots.starts_new_file(
        None, chunk(5, 10, 0, b"", False)
    )
    assert not f.write(chunk(5, 10, 6, b"ghi", True))  # after a lost chunk: a gap
    assert not f.write(chunk(5, 11, 3, b"XYZ", False))  # another snapshot
    assert not f.write(chunk(5, 10, 3, b"XYZ", False, snap_term=2))  # another last included term
    assert not f.write(chunk(6, 10, 3, b"XYZ", False))  # another leader's term
    assert f.stored(chunk(5, 10, 6, b"ghi", True)) == 3 and f.stored(chunk(6, 10, 3, b"", False)) == 0
    assert f.write(chunk(5, 10, 3, b"def", False)) and bytes(f.data) == b"abcdef"


def test_the_leader_moves_only_on_an_answer_to_the_chunk_on_its_way():
    t = Transfer(Snapshot(10, 1, (), CONF), b"0123456789", chunk_size=4)

    def reply(offset, stored, index=10):
        return InstallSnapshotReply(5, 5, index, offset, stored, False)

    assert t.chunk() == (0, b"0123", False)
    assert not t.answered(reply(0, 0, index=9))  # about another snapshot
    assert t.answered(reply(0, 4)) and t.chunk() == (4, b"4567", False)
    assert not t.answered(reply(0, 4))  # the same answer, duplicated
    assert not t.answered(reply(4, 4))  # the follower has not written it (nothing new)
    assert t.answered(reply(4, 8)) and t.chunk() == (8, b"89", True)
    assert t.answered(reply(8, 0)) and t.chunk() == (0, b"0123", False)  # the follower lost its file
    newer = Snapshot(20, 2, (), CONF)
    assert t.superseded_by(newer)  # nothing of it reached the follower: send the newest instead
    assert t.answered(reply(0, 4)) and not t.superseded_by(newer)  # under way: it goes on


# ---------------------------------------------------------------------------
# Receiver steps 1-8 on one follower, chunks delivered by hand
# ---------------------------------------------------------------------------
class Follower:
    """n2 of a 3-server cluster, fed InstallSnapshot chunks by hand (made up: the invariant
    monitor, which would see a snapshot of entries nobody committed, is off)."""

    def __init__(self, term: int = 3) -> None:
        self.c = RaftCluster(
            n=3,
            seed=7,
            election_timeout=(50.0, 60.0),
            heartbeat_interval=1.0,
            snapshot_threshold=100,
            check=False,
        )
        self.c.sim.run_for(0.01)
        self.c.sim.call("n2", lambda n, ctx: n.become_follower(ctx, term))
        self.state = kv_state(7)
        self.data = encode(Snapshot(10, 2, self.state, CONF))
        self.node = self.c.node("n2")

    def give(self, m: InstallSnapshot) -> InstallSnapshotReply:
        before = len(self.c.sim.trace.rows)
        self.c.sim.call("n2", lambda n, ctx: n.on_message(ctx, "n1", m))
        replies = [
            r[6]
            for r in self.c.sim.trace.rows[before:]
            if r[1] is Kind.SEND and type(r[6]) is InstallSnapshotReply
        ]
        assert len(replies) == 1, replies
        return replies[0]

    def piece(self, offset: int, size: int = 20, term: int = 3, index: int = 10) -> InstallSnapshot:
        part = self.data[offset : offset + size]
        return InstallSnapshot(term, "n1", index, 2, offset, part, offset + size >= len(self.data))


def test_chunks_in_order_are_gathered_then_installed_on_the_last():
    f = Follower()
    offsets = range(0, len(f.data), 20)
    for off in offsets:
        r = f.give(f.piece(off))
        if off + 20 < len(f.data):  # 4. reply and wait for more data chunks if done is false
            assert (r.done, r.stored, r.offset) == (False, off + 20, off) and f.node.snapshot is None
    # 5.-8. saved, log discarded, state machine reset from the snapshot
    assert r.done and r.last_included_index == 10 and f.node.partial_snapshot is None
    assert (
        f.node.snapshot == Snapshot(10, 2, f.state, CONF)
        and f.c.sim.storage("n2")["snapshot"] == f.node.snapshot
    )
    assert f.node.state_machine.snapshot() == f.state and f.node.commit_index == f.node.last_applied == 10
    assert f.node.log.snapshot_index == f.node.log.last_index == 10


def test_a_stale_term_a_duplicate_a_gap_and_an_older_snapshot_change_nothing():
    f = Follower(term=3)
    f.give(f.piece(0))
    f.give(f.piece(20))
    held = bytes(f.node.partial_snapshot.data)
    # 1. Reply immediately if term < currentTerm: a chunk of the old leader's term.
    r = f.give(f.piece(0, term=2))
    assert (r.term, r.done, r.stored) == (3, False, 0)
    # A duplicate and a chunk after a lost one are not written; the reply says where to go on.
    assert f.give(f.piece(0)).stored == 40 and f.give(f.piece(60)).stored == 40
    # A late chunk (not the first) of another snapshot leaves this one as it is.
    other = InstallSnapshot(3, "n1", 8, 2, 20, b"junk", True)
    assert (f.give(other).stored, f.give(other).done) == (0, False)
    assert bytes(f.node.partial_snapshot.data) == held and f.node.snapshot is None
    # The transfer goes on from where the file ends.
    for off in range(40, len(f.data), 20):
        r = f.give(f.piece(off))
    assert r.done and f.node.state_machine.snapshot() == f.state


def test_a_snapshot_already_committed_here_is_not_gathered_and_moves_nothing_back():
    f = Follower()
    for off in range(0, len(f.data), 20):
        f.give(f.piece(off))
    applied = f.node.state_machine.snapshot()
    # The same snapshot again, from its first chunk, and an older one: "done" at once, nothing rewritten.
    assert f.give(f.piece(0)).done and f.node.partial_snapshot is None
    older = encode(Snapshot(6, 1, kv_state(3), CONF))
    r = f.give(InstallSnapshot(3, "n1", 6, 1, 0, older, True))
    assert r.done and f.node.snapshot.last_included_index == 10 and f.node.state_machine.snapshot() == applied


def test_a_first_chunk_starts_a_new_file_and_a_crash_loses_the_partial_one():
    f = Follower()
    f.give(f.piece(0))
    f.give(f.piece(20))
    # 2. Create new snapshot file if first chunk: a new leader starts again at offset 0.
    r = f.give(f.piece(0, term=4))
    assert r.stored == 20 and f.node.partial_snapshot.term == 4
    f.c.crash("n2")
    f.c.restart("n2")
    f.c.sim.run_for(0.01)
    f.node = f.c.node("n2")
    assert f.node.partial_snapshot is None and "snapshot" not in f.c.sim.storage("n2")
    # The leader's next chunk finds no file: stored 0 tells it to start over.
    r = f.give(f.piece(20, term=4))
    assert (r.stored, r.done) == (0, False) and f.node.snapshot is None
    for off in range(0, len(f.data), 20):
        r = f.give(f.piece(off, term=4))
    assert r.done and f.node.state_machine.snapshot() == f.state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.integers(1, 40),
    arrivals=st.lists(st.integers(0, 200), min_size=1, max_size=40),
)
def test_whatever_order_chunks_arrive_in_the_file_is_a_prefix_and_done_means_the_whole_snapshot(
    size, arrivals
):
    # Any sequence of the transfer's chunks, each possibly lost, repeated or late: the file never
    # holds anything but the snapshot's first bytes, and "done" comes only with the whole snapshot.
    f = Follower()
    pieces = [f.piece(off, size) for off in range(0, len(f.data), size)]
    for a in arrivals:
        r = f.give(pieces[a % len(pieces)])
        partial = f.node.partial_snapshot
        if partial is not None:
            assert f.data.startswith(bytes(partial.data)) and r.stored == len(partial.data)
        if r.done:
            assert (
                f.node.snapshot == Snapshot(10, 2, f.state, CONF)
                and f.node.state_machine.snapshot() == f.state
            )
        else:
            assert f.node.snapshot is None and f.node.commit_index == 0
    # Sent in order from where the file ends, the rest completes it.
    stored = f.node.partial_snapshot.stored(pieces[0]) if f.node.partial_snapshot else 0
    if f.node.snapshot is None:
        for p in pieces[stored // size :]:
            r = f.give(p)
        assert r.done and f.node.state_machine.snapshot() == f.state


# ---------------------------------------------------------------------------
# Whole clusters: a follower brought up to date in chunks, under faults
# ---------------------------------------------------------------------------
def lagging_follower(
    seed: int,
    chunk_size: int = 24,
    writes: int = 40,
    latency: Uniform | float | None = None,
    loss: float = 0.0,
    duplication: float = 0.0,
) -> tuple[RaftCluster, str, str]:
    """A follower crashed while ``writes`` appends were made and compacted away; then restarted
    on a network with the given ``latency``, ``loss`` and ``duplication``."""
    c = RaftCluster(n=3, seed=seed, snapshot_threshold=8, snapshot_chunk_size=chunk_size)
    leader = elect(c)
    behind = next(n for n in c.ids if n != leader)
    c.crash(behind)
    client = c.client("w")
    for i in range(writes):
        client.append(f"k{i % 4}", f"<{i}>")
    assert c.run_until(lambda: not client.busy, 10.0)
    if latency is not None:
        c.sim.set_latency(latency)
    c.sim.set_loss(loss)
    c.sim.set_duplication(duplication)
    c.restart(behind)
    return c, leader, behind


def caught_up(c: RaftCluster, node: str) -> bool:
    lead = c.leader()
    return (
        lead is not None
        and c.is_up(node)
        and c.node(node).state_machine.data == c.node(lead).state_machine.data
    )


def test_a_snapshot_arrives_in_several_chunks_in_order():
    c, leader, behind = lagging_follower(1)
    assert c.run_until(lambda: caught_up(c, behind), 3.0)
    # (While it was down the leader's first chunks were dropped; count those that arrived.)
    chunks = [r[6] for r in c.sim.trace.rows if r[1] is Kind.DELIVER and type(r[6]) is InstallSnapshot]
    size = len(encode(c.node(behind).snapshot))
    assert len(chunks) == -(-size // 24) >= 5  # every chunk once: nothing lost on this network
    assert [m.offset for m in chunks] == list(range(0, size, 24)) and [m.done for m in chunks][-1]
    assert all(len(m.data) == 24 for m in chunks[:-1])
    assert c.check_invariants() == []
    check_history(c)


@pytest.mark.parametrize("seed", range(8))
def test_lost_duplicated_and_reordered_chunks(seed):
    # Latencies from 1 to 40 ms reorder messages; 20 % are lost and 20 % duplicated.
    c, _leader, behind = lagging_follower(
        100 + seed, chunk_size=16, latency=Uniform(0.001, 0.04), loss=0.2, duplication=0.2
    )
    c.sim.run_for(1.0)
    c.sim.set_loss(0.0)
    assert c.run_until(lambda: caught_up(c, behind), 5.0)
    chunks = sent(c, InstallSnapshot, dst=behind)
    assert len({m.offset for m in chunks}) >= 5
    assert c.check_invariants() == []
    check_history(c)


def transfer_under_way(c: RaftCluster, behind: str) -> bool:
    partial = c.node(behind).partial_snapshot if c.is_up(behind) else None
    return partial is not None and len(partial.data) >= 48


def test_a_new_leader_mid_transfer_starts_its_own_from_offset_zero():
    c, leader, behind = lagging_follower(2, chunk_size=16, writes=60, latency=0.01)
    assert c.run_until(lambda: transfer_under_way(c, behind), 2.0)
    old_term = c.node(behind).partial_snapshot.term
    c.crash(leader)
    assert c.run_until(lambda: caught_up(c, behind) and c.leader() != leader, 5.0)
    new = c.leader()
    mine = [m for m in sent(c, InstallSnapshot, src=new, dst=behind) if m.term > old_term]
    assert mine and mine[0].offset == 0 and mine[-1].done  # the new leader's transfer, from the start
    assert c.node(behind).log.snapshot_index > 0
    c.restart(leader)
    assert c.check_invariants() == []
    check_history(c)


def test_a_follower_crashing_mid_transfer_gets_the_snapshot_from_the_start():
    c, leader, behind = lagging_follower(3, chunk_size=16, writes=60, latency=0.01)
    assert c.run_until(lambda: transfer_under_way(c, behind), 2.0)
    c.crash(behind)
    c.sim.run_for(0.2)
    crashed_at = c.sim.now
    c.restart(behind)
    assert c.run_until(lambda: caught_up(c, behind), 5.0)
    after = [r for r in c.sim.trace.rows if r[0] > crashed_at and r[1] is Kind.SEND]
    replies = [r[6] for r in after if type(r[6]) is InstallSnapshotReply and r[3] == behind]
    chunks = [r[6] for r in after if type(r[6]) is InstallSnapshot and r[4] == behind]
    # The first chunk to reach the restarted follower was past offset 0: it said "I have 0 bytes"
    # and the leader started over.
    assert replies[0].stored == 0 and not replies[0].done and chunks[0].offset > 0
    assert any(m.offset == 0 for m in chunks[1:]) and chunks[-1].done
    assert c.check_invariants() == []
    check_history(c)


def test_stale_chunks_from_an_old_term_or_an_older_snapshot_arrive_late():
    c, leader, behind = lagging_follower(4, chunk_size=16, writes=60, latency=0.01)
    assert c.run_until(lambda: caught_up(c, behind), 5.0)
    first = sent(c, InstallSnapshot, dst=behind)
    node = c.node(behind)
    state, snap = node.state_machine.snapshot(), node.snapshot
    # Redeliver every chunk sent so far, in reverse order, and then those of an older term.
    for m in reversed(first):
        c.sim.call(behind, lambda n, ctx, m=m: n.on_message(ctx, leader, m))
    for m in first:
        old = InstallSnapshot(
            m.term - 1, m.leader_id, m.last_included_index, m.last_included_term, m.offset, m.data, m.done
        )
        c.sim.call(behind, lambda n, ctx, m=old: n.on_message(ctx, leader, m))
    node = c.node(behind)
    assert node.snapshot == snap and node.state_machine.snapshot() == state and node.partial_snapshot is None
    assert c.check_invariants() == []
    check_history(c)


def chunked_schedule(seed: int) -> RaftCluster:
    rng = random.Random(seed)
    faults = random_schedule(rng, kinds=("crash", "restart", "partition", "heal", "disconnect", "loss"))
    return run_schedule(
        seed,
        faults,
        ops=("get", "append", "put"),
        snapshot_threshold=5,
        snapshot_chunk_size=rng.choice((8, 16, 32)),
        loss=0.1,
        duplication=0.1,
        latency=Uniform(0.001, 0.03),
    )


def test_random_fault_schedules_with_chunked_snapshots():
    multi = 0
    for seed in range(5000, 5100):
        c = chunked_schedule(seed)
        check_history(c)
        assert c.check_invariants() == []
        multi += any(m.offset > 0 for m in sent(c, InstallSnapshot))
    assert multi >= 50, f"only {multi} of 100 runs sent a snapshot in several chunks"


@pytest.mark.slow
def test_random_fault_schedules_with_chunked_snapshots_many_seeds():
    for seed in range(6000, 8000):
        c = chunked_schedule(seed)
        check_history(c)
        assert c.check_invariants() == []


# ---------------------------------------------------------------------------
# The checks catch a follower that drops the offset check (a planted bug)
# ---------------------------------------------------------------------------
def test_dropping_the_offset_check_is_caught(monkeypatch):
    def write_anywhere(self, m):  # appends every chunk of its snapshot, wherever it starts
        if not self.gathers(m):
            return False
        self.data += m.data
        return True

    def fails(seed: int) -> bool:
        try:
            c, _leader, behind = lagging_follower(
                200 + seed, chunk_size=16, latency=Uniform(0.001, 0.04), loss=0.1, duplication=0.2
            )
            c.sim.run_for(1.0)
            c.sim.set_loss(0.0)
            if not c.run_until(lambda: caught_up(c, behind), 5.0):
                return True
            check_history(c)
            return c.check_invariants() != []
        except (ValueError, AssertionError):
            return True

    assert not any(fails(seed) for seed in range(6))  # the real rule passes these seeds
    monkeypatch.setattr(PartialSnapshot, "write", write_anywhere)
    caught = [seed for seed in range(6) if fails(seed)]
    assert len(caught) >= 3, f"a follower writing chunks at the wrong offset failed only seeds {caught}"
