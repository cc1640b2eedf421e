"""server_class: a cluster's servers carry only the extensions their configuration uses, and run
exactly as RaftNode servers would."""

from __future__ import annotations

import pytest

from labkit.raft import RaftCluster, RaftConfig, RaftCore, RaftNode
from labkit.raft.node import (
    HeartbeatRounds,
    LeaderReads,
    LeadershipTransfer,
    LogCompaction,
    MembershipChanges,
    PreVoteAndCheckQuorum,
)
from labkit.raft.servers import server_class


def test_a_plain_configuration_leaves_out_reads_pre_vote_and_compaction():
    cls = server_class(RaftConfig())
    assert issubclass(cls, RaftCore) and not issubclass(cls, RaftNode)
    for needed in (LeadershipTransfer, MembershipChanges, HeartbeatRounds):
        assert issubclass(cls, needed)
    for unused in (LeaderReads, PreVoteAndCheckQuorum, LogCompaction):
        assert not issubclass(cls, unused)
    assert server_class(RaftConfig(heartbeat_interval=0.04)) is cls  # built once per set of extensions


@pytest.mark.parametrize(
    "options, added, left_out",
    [
        ({"pre_vote": True}, PreVoteAndCheckQuorum, LogCompaction),
        ({"check_quorum": True}, PreVoteAndCheckQuorum, LogCompaction),
        ({"snapshot_threshold": 5}, LogCompaction, PreVoteAndCheckQuorum),
        ({"read_mode": "read-index"}, LeaderReads, LogCompaction),
    ],
)
def test_each_option_brings_its_extension(options, added, left_out):
    cls = server_class(RaftConfig(**options))
    assert issubclass(cls, added) and not issubclass(cls, left_out)


def test_everything_on_is_raft_node_itself():
    assert server_class(RaftConfig(pre_vote=True, snapshot_threshold=5, read_mode="read-index")) is RaftNode


def test_server_class_refuses_what_is_not_a_config():
    with pytest.raises(TypeError, match="config must be a RaftConfig"):
        server_class({"pre_vote": True})  # type: ignore[arg-type]


def _digest(**options) -> tuple[str, list]:
    c = RaftCluster(n=3, seed=7, loss=0.05, **options)
    c.client("c1").start_workload(rate=60, duration=2.0, keys=("a", "b"))
    c.sim.run_for(0.8)
    c.crash(c.leader() or "n1")
    c.sim.run_for(0.6)
    c.partition(["n1"])
    c.sim.run_for(0.6)
    c.heal()
    for nid in c.ids:
        if not c.is_up(nid):
            c.restart(nid)
    c.sim.run_for(0.6)
    assert not c.check_invariants()
    return c.sim.trace.digest(), [(h.input, h.output) for h in c.history]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"pre_vote": True},
        {"snapshot_threshold": 8},
        {"read_mode": "read-index"},
        {"check_quorum": True, "read_mode": "lease", "snapshot_threshold": 8},
    ],
)
def test_a_cluster_runs_exactly_as_with_raft_node_servers(options):
    built = RaftCluster(n=3, **options).node("n1")
    assert type(built) is server_class(RaftConfig(**options))
    everything = lambda node_id, peers, config: RaftNode(node_id, peers, config)  # noqa: E731
    assert _digest(**options) == _digest(node_factory=everything, **options)


def test_membership_changes_and_transfer_work_on_a_plain_cluster():
    c = RaftCluster(n=3, seed=1)
    c.sim.run_for(1.0)
    new = c.add_server()
    assert new in c.members() and not isinstance(c.node(new), RaftNode)
    other = next(s for s in c.members() if s != c.leader())
    assert c.transfer_leadership(other)
    c.remove_server(new)
    assert new not in c.members() and not c.check_invariants()
