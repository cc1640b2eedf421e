"""Unit tests for the pieces of labkit.raft: log, state machine, checks, validation."""

from __future__ import annotations

import pytest

from labkit.raft import (
    KVCommand,
    KVStore,
    LogEntry,
    RaftCluster,
    RaftConfig,
    RaftLog,
    election_safety,
    leader_completeness,
    log_matching,
    state_machine_safety,
)
from labkit.raft.invariants import prefix_digest
from labkit.raft.scenarios import Figure8


def E(term, cmd=None):
    return LogEntry(term, cmd if cmd is not None else f"t{term}")


def test_log_is_one_based_and_truncates():
    log = RaftLog([E(1, "a"), E(1, "b"), E(2, "c")])
    assert log[1].command == "a" and log[3].command == "c"
    assert log.term(0) == 0 and log.last_index == 3 and log.last_term == 2
    assert [e.command for e in log[2:4]] == ["b", "c"]
    assert log.first_index_of_term(2) == 1 and log.last_index_of_term(1) == 2
    assert log.last_index_of_term(5) == 0
    with pytest.raises(IndexError):
        log[0]
    log.truncate(1)
    assert log.last_index == 1
    log.append([E(1, "b")])
    assert [e.command for e in log] == ["a", "b"]


def test_prefix_digests_are_equal_exactly_for_equal_prefixes():
    def digest(entries):
        d = 0
        for e in entries:
            d = prefix_digest(d, e)
        return d

    d2 = digest([E(1, "a"), E(1, "b")])
    assert digest([E(1, "a"), E(1, "b")]) == d2  # same prefix, same digest
    assert digest([E(1, "a"), E(3, "x")]) != d2
    assert digest([E(1, "z"), E(1, "b")]) != d2  # an earlier entry differs


def test_kvstore_applies_each_client_sequence_number_once():
    kv = KVStore()
    assert kv.apply(KVCommand("a", 1, ("append", "k", "x"))) is None
    kv.apply(KVCommand("a", 1, ("append", "k", "x")))  # a retry
    assert kv.apply(KVCommand("b", 1, ("get", "k"))) == "x"
    assert kv.duplicate("b", 1) == (True, "x")
    assert kv.apply(KVCommand("b", 2, ("get", "missing"))) == ""
    assert kv.data == {"k": "x"}


def test_invariant_functions_detect_violations():
    assert election_safety([("n1", 1), ("n2", 2)]) == []
    assert election_safety([("n1", 1), ("n2", 1)])
    a = [E(1, "x"), E(2, "y")]
    b = [E(1, "z"), E(2, "y")]  # same (2, term 2) but different prefix
    assert log_matching({"n1": a, "n2": a[:1]}) == []
    assert log_matching({"n1": a, "n2": b})
    assert leader_completeness({1: 1}, "n1", a) == []
    assert leader_completeness({1: 1, 2: 3}, "n1", a)
    assert state_machine_safety({"n1": a, "n2": a[:1]}) == []
    assert state_machine_safety({"n1": a, "n2": b})


def test_validation_messages():
    with pytest.raises(ValueError, match="n must be"):
        RaftCluster(n=0)
    with pytest.raises(TypeError, match="n must be"):
        RaftCluster(n="5")
    with pytest.raises(ValueError, match="heartbeat_interval"):
        RaftConfig(heartbeat_interval=0.2)
    with pytest.raises(ValueError, match="low <= high"):
        RaftConfig(election_timeout=(0.3, 0.1))
    with pytest.raises(TypeError, match="bugs"):
        RaftCluster(bugs=frozenset({"stale"}))
    c = RaftCluster(n=3, seed=1)
    with pytest.raises(ValueError, match="node must be one of"):
        c.crash("n9")
    with pytest.raises(ValueError, match="group 0 and group 1"):
        c.partition(["n1"], ["n1", "n2"])
    with pytest.raises(TypeError, match="must be a list of"):
        c.partition("n1")
    with pytest.raises(TypeError, match="hashable"):
        c.submit(["not", "hashable"])
    cl = c.client("alice")
    with pytest.raises(ValueError, match="op name"):
        cl._invoke(("delete", "k"))
    with pytest.raises(TypeError, match="value must be a str"):
        cl.put("k", 1)
    with pytest.raises(ValueError, match="server's id"):
        c.client("n1")
    with pytest.raises(ValueError, match="rate"):
        cl.start_workload(rate=0)


def test_partition_spares_clients_and_disconnect_does_not():
    c = RaftCluster(n=3, seed=2)
    c.client("alice")
    c.partition(["n1"])
    assert not c.can_reach("n1", "n2") and c.can_reach("alice", "n1") and c.can_reach("n2", "n3")
    c.disconnect("n2")
    assert not c.can_reach("alice", "n2") and not c.can_reach("n2", "n3")
    c.heal()
    assert all(c.can_reach(a, b) for a in c.ids for b in c.ids if a != b)
    assert c.partitions == [["n1", "n2", "n3"]]


def test_single_server_cluster_commits_alone():
    c = RaftCluster(n=1, seed=3)
    assert c.run_until(lambda: c.leader() == "n1", 1.0)
    c.submit("x")
    assert c.applied("n1") == ["x"]


def test_a_single_server_answers_a_client_in_one_attempt():
    # Issue 13: a server of one applied the entry before it noted that the
    # client was waiting, so it never answered; the client timed out (0.3 s)
    # and retried, and the retry was answered from the session table.
    for seed in range(3):
        c = RaftCluster(n=1, seed=seed)
        c.sim.run_for(1)
        op = c.client("a").put("k", "0")
        c.sim.run_for(1)
        assert op.done and op.attempts == 1, (seed, op)
        assert op.ret - op.call < 0.05, (seed, op.ret - op.call)


def test_monitor_checks_each_servers_commit_index_and_last_applied_as_the_run_goes():
    # Figure 2, volatile state: commit_index only grows while a server is up,
    # and last_applied <= commit_index. The monitor checks both after every event.
    c = RaftCluster(n=3, seed=4, strict=False)
    assert c.run_until(lambda: c.leader() is not None, 2.0)
    c.submit("x")
    c.sim.run_for(0.2)
    follower = next(n for n in c.ids if n != c.leader())
    node = c.node(follower)
    assert node.commit_index == 2 and c.violations == []
    node.commit_index = 1  # as a stale heartbeat used to do
    c.monitor.observe(follower)
    assert any("commit_index went back from 2 to 1" in v for v in c.violations), c.violations
    assert any("last_applied 2 > commit_index 1" in v for v in c.violations), c.violations
    # A restart legitimately starts again from commit_index 0.
    c2 = RaftCluster(n=3, seed=4)
    assert c2.run_until(lambda: c2.leader() is not None, 2.0)
    c2.submit("x")
    c2.sim.run_for(0.2)
    follower = next(n for n in c2.ids if n != c2.leader())
    c2.crash(follower)
    c2.restart(follower)
    c2.sim.run_for(0.3)
    assert c2.violations == [] and c2.node(follower).commit_index == 2


def _plant_entry(c: RaftCluster, term_offset: int, first_the_leaders: bool = False) -> int:
    """A follower cut off while the leader commits one more entry is made to hold another
    entry at that index (of the leader's term plus ``term_offset``), commit and apply it.
    ``first_the_leaders``: it holds the leader's very entry there first (uncommitted)."""
    leader = c.leader()
    follower = next(n for n in c.ids if n != leader and c.is_up(n))
    c.partition([follower])
    c.submit("kept")
    c.sim.run_for(0.3)
    index = c.node(leader).commit_index
    node = c.node(follower)
    assert node.log.last_index == index - 1 and c.violations == []
    if first_the_leaders:
        node.log.append((c.node(leader).log[index],))
        c.monitor.observe(follower)
        node.log.truncate(index - 1)
    node.log.append((LogEntry(c.node(leader).current_term + term_offset, "planted"),))
    node.commit_index = node.last_applied = index
    c.monitor.observe(follower)
    return index


def test_monitor_catches_a_divergent_entry_below_what_every_other_server_committed():
    # The monitor settles the common case by identity: a server holding the very entries
    # first seen at each index, committing and applying below what is recorded already.
    # A server holding another entry there is checked in full (Log Matching, Commit, and
    # State Machine Safety), however far the others got.
    cases = [
        (0, False, ("Log Matching", "State Machine Safety")),
        (1, False, ("Commit:", "State Machine Safety")),
        (0, True, ("Log Matching", "State Machine Safety")),  # it held the leader's entry first
    ]
    for offset, first_the_leaders, expected in cases:
        c = RaftCluster(n=3, seed=4, strict=False)
        assert c.run_until(lambda c=c: c.leader() is not None, 2.0)
        for i in range(5):
            c.submit(f"x{i}")
        c.sim.run_for(0.3)
        index = _plant_entry(c, offset, first_the_leaders)
        for what in expected:
            assert any(v.startswith(what) and str(index) in v for v in c.violations), (what, c.violations)


def test_monitor_checks_in_full_after_an_entry_first_seen_was_overwritten():
    # Figure 8 (d): index 2 first held a term-2 entry that was never committed; the term-3
    # entry that replaced it is committed. A divergent entry planted afterwards is caught.
    f8 = Figure8()
    c = f8.run()
    assert c.violations == [] and c.monitor.committed[2] == 3
    index = _plant_entry(c, 0)
    assert any(v.startswith("State Machine Safety") and str(index) in v for v in c.violations), c.violations


def test_node_factory_runs_another_server_class_under_the_same_monitor():
    from labkit.raft import Bug, RaftNode
    from labkit.raft.bugs import VoteTwice, node_class

    built = []

    class Counting(RaftNode):  # a learner's server, say
        def handle_append_entries(self, ctx, src, m):
            self.seen = getattr(self, "seen", 0) + 1
            super().handle_append_entries(ctx, src, m)

    def factory(node_id, peers, config):
        built.append(node_id)
        return Counting(node_id, peers, config)

    c = RaftCluster(n=3, seed=1, node_factory=factory)
    assert c.run_until(lambda: c.leader() is not None, 2.0)
    c.client("a").put("k", "v")
    c.sim.run_for(0.5)
    follower = next(n for n in c.ids if n != c.leader())
    assert sorted(built) == ["n1", "n2", "n3"] and c.node(follower).seen > 0
    assert c.monitor.events_checked > 0 and c.check_invariants() == []
    # The monitor judges whatever runs: a factory building a broken server is caught.
    broken = RaftCluster(n=3, seed=1, strict=False, node_factory=lambda i, p, cfg: VoteTwice(i, p, cfg))
    for _ in range(20):
        broken.start_election("n1")
        broken.start_election("n2")
        broken.sim.run_for(0.05)
    assert any("Election Safety" in v for v in broken.violations)
    with pytest.raises(ValueError, match="not both"):
        RaftCluster(n=3, bugs=[Bug.VOTE_TWICE], node_factory=factory)
    both = node_class([Bug.VOTE_TWICE, Bug.COMMIT_PRIOR_TERM])
    assert issubclass(both, VoteTwice) and both.may_commit is not RaftNode.may_commit
    assert node_class(()) is RaftNode


def test_raft_core_alone_is_a_working_raft():
    """RaftCore is Figure 2 without what production Rafts add, and runs as it is: it elects,
    replicates and stays safe and linearizable through a crash and a partition."""
    from labkit.linearizability import KVModel, check
    from labkit.raft import RaftCore

    c = RaftCluster(
        n=5, seed=3, loss=0.02, node_factory=lambda nid, peers, config: RaftCore(nid, peers, config)
    )
    for name in ("c1", "c2"):
        c.client(name).start_workload(rate=50, duration=2.0, keys=("a", "b"))
    c.sim.run_for(1.0)
    leader = c.leader()
    assert leader is not None and type(c.node(leader)) is RaftCore
    c.crash(leader)
    c.sim.run_for(1.0)
    c.restart(leader)
    c.partition(["n1", "n2"])
    c.sim.run_for(1.0)
    c.heal()
    c.sim.run_for(1.0)
    assert not c.violations
    assert len(c.history) > 50 and all(h.done for h in c.history)
    assert check(c.operations(), KVModel(), timeout=10.0).ok is True
