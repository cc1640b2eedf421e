"""Speed-ups change no result: the traces of fixed runs are pinned by their digests.

Each scenario runs a seeded simulation and compares :meth:`Trace.digest` (every
row, message and note included) with the digest recorded before the
simulator's and Raft's hot paths were tuned (issue #14). A change that makes
the simulator or a Raft server *behave* differently (another message, another
order, another timer) changes a digest here; if that change is intended,
print the new digests with ``python tests/test_trace_identity.py`` and say in
the commit why the runs changed. A change meant only to make things faster
must leave every digest as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from labkit.examples import heartbeat_cluster
from labkit.raft import RaftCluster
from labkit.sim import Exponential, Node, Simulator, Uniform


class _Player(Node):
    """Ping-pong: the a-side serves, each side sends every ball straight back."""

    def on_start(self, ctx):
        if self.node_id.startswith("a"):
            ctx.send("b" + self.node_id[1:], ("ball", self.node_id))

    def on_message(self, ctx, src, msg):
        ctx.send(src, msg)


def ping_pong(seed: int) -> str:
    sim = Simulator(seed, latency=Uniform(0.001, 0.003), loss=0.01, duplication=0.01)
    for i in range(3):
        sim.add_node(f"a{i}", _Player)
        sim.add_node(f"b{i}", _Player)
    sim.run_for(0.5)
    sim.partition(["a0", "b1"])
    sim.run_for(0.2)
    sim.heal()
    sim.crash("b2")
    sim.run_for(0.2)
    sim.restart("b2")
    sim.run_for(0.2)
    return sim.trace.digest()


def churn(seed: int) -> str:
    sim = heartbeat_cluster(seed, n=5, latency=Exponential(0.02, 0.001), loss=0.1, duplication=0.05)
    sim.run(1.0)
    sim.crash("n2")
    sim.partition(["n1", "n3"])
    sim.run(2.0)
    sim.heal()
    sim.restart("n2")
    sim.run(3.0)
    return sim.trace.digest()


def raft(seed: int, **features) -> str:
    """Five servers, three clients, a crash, a partition and lossy links."""
    c = RaftCluster(n=5, seed=seed, loss=0.02, **features)
    for name in ("c1", "c2", "c3"):
        c.client(name).start_workload(rate=80, duration=3.0, keys=("a", "b"))
    c.sim.run_for(1.0)
    leader = c.leader()
    if leader is not None:
        c.crash(leader)
    c.sim.run_for(1.0)
    c.partition(["n1", "n2"])
    c.sim.run_for(0.7)
    c.heal()
    if leader is not None:
        c.restart(leader)
    c.sim.run_for(1.3)
    assert not c.violations
    return c.sim.trace.digest()


def raft_in_practice(seed: int) -> str:
    return raft(seed, snapshot_threshold=20, pre_vote=True, check_quorum=True, read_mode="read-index")


def membership(seed: int) -> str:
    """A server added and one removed while clients run, with leases and no no-op."""
    c = RaftCluster(n=3, seed=seed, check_quorum=True, read_mode="lease", noop=False)
    c.client("c1").start_workload(rate=50, duration=2.0, keys=("a",))
    c.sim.run_for(0.5)
    c.add_server(timeout=2.0)
    c.remove_server("n1", timeout=2.0)
    c.sim.run_for(0.5)
    assert not c.violations
    return c.sim.trace.digest()


SCENARIOS: dict[str, tuple[Callable[[int], str], tuple[int, ...]]] = {
    "ping_pong": (ping_pong, (1, 2)),
    "churn": (churn, (3, 4)),
    "raft": (raft, (1, 2, 3)),
    "raft_in_practice": (raft_in_practice, (1, 2)),
    "membership": (membership, (1, 2)),
}

PINNED = {
    ("ping_pong", 1): "3c5885ff60953dae94ee96bf1d584cc9267e47e246da23d0a1f72461666e28be",
    ("ping_pong", 2): "bcf38c7e4d365a6283023b481988fa9a8ac4c20bd76336f2bb39267ed41d8716",
    ("churn", 3): "6468dbaf5b12087e6cf509528b65d9809c41ad92720233e5dc1e13cfe2776d1a",
    ("churn", 4): "0966fa7c35ddb142e1cdf0b5b630ee21e8aab0b0a6816caef7fba12cd8ef45f3",
    ("raft", 1): "0f987a2a35c2915b13df5ec47deebdd09c6b25fd11c02e7c4f65154b025fc549",
    ("raft", 2): "a5c931ba256f18a30964e2032fa70635b65a602bb8401563f43c3a789014de84",
    ("raft", 3): "d02c533d670188fca47a310e9cd32295f5e41d11aa28acb43a858255153f4fd3",
    # InstallSnapshot in chunks (Figure 13): these runs send snapshots, whose messages now carry
    # offset, bytes and done (and their replies offset, stored and done). With the default chunk
    # size each snapshot is one chunk, and every row but those messages' fields is as before
    # (compared row by row against the whole-snapshot version, message fields masked).
    ("raft_in_practice", 1): "b279055007ddefcf0a225f78d70c6be9df6dd55f158de5cf852b419639e31964",
    ("raft_in_practice", 2): "a84367a0706b89db0656315051e07025ec7895777abab7e374fa26d953444b35",
    ("membership", 1): "3bd93d6dc94c717fea17c025da9befd5c418db7cbe48656257ce6e93af6da46d",
    ("membership", 2): "9f8c23b63770ee31de2f27d52b91b42c58a32f89deed73fb1f78d0da4f15dc0b",
}


@pytest.mark.parametrize("name, seed", [(n, s) for n, (_, seeds) in SCENARIOS.items() for s in seeds])
def test_trace_is_unchanged(name: str, seed: int) -> None:
    run = SCENARIOS[name][0]
    assert run(seed) == PINNED[name, seed]


if __name__ == "__main__":  # print the digests to pin
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    for name, (run, seeds) in SCENARIOS.items():
        for seed in seeds:
            print(f"    ({name!r}, {seed}): {run(seed)!r},")
