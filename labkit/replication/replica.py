"""A storage node of the replicated store (Dynamo, SOSP 2007, §4.4-§4.7).

Each :class:`ReplicaNode` plays three parts at once:

* **replica**: keeps, per key it is a home replica for, a sibling set of
  versions (:mod:`labkit.replication.versions`) in durable storage, and
  answers :class:`~labkit.replication.messages.ReplicaWrite`,
  ``ReplicaRead`` and ``ReadRepair``;
* **stand-in** (sloppy quorum, §4.6): a write addressed to another home
  replica is kept apart as a *hint*; every ``handoff_interval`` the node
  tries to hand each hint back to its home replica and forgets it once the
  home replica has acknowledged exactly what was sent;
* **coordinator** for client requests (:mod:`labkit.replication.coordinator`).

Anti-entropy (§4.7) runs as a separate background process that is off
unless ``anti_entropy_interval`` is set (or :meth:`ReplicaNode.set_anti_entropy`
switches it on during a run): every interval the node picks a random peer
and the two walk their Merkle trees (:mod:`labkit.replication.merkle`) over
the keys both own, then swap the versions of the differing buckets.

Durable storage layout (survives crashes): ``("data", key) -> Siblings``,
``("hint", home, key) -> Siblings`` (or None once handed off),
``("stamped", key) -> Siblings`` (the coordinator's versions no context has
covered yet), ``("counter",) -> int``, ``("boot",) -> int`` and
``("anti_entropy",) -> float | None`` once switched during a run. Everything
else (pending requests, anti-entropy sessions) is volatile and is lost in a
crash.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from labkit import validation as valid
from labkit.replication.config import StoreConfig, check_interval
from labkit.replication.coordinator import Coordinator
from labkit.replication.merkle import MerkleTree, bucket_of
from labkit.replication.messages import (
    ClientGet,
    ClientPut,
    Handoff,
    HandoffAck,
    MerkleData,
    MerkleLevel,
    ReadRepair,
    ReadReply,
    ReplicaRead,
    ReplicaWrite,
    WriteAck,
)
from labkit.replication.versions import Siblings, check_siblings, merge_siblings, same_versions
from labkit.sim import Context, Node


class ReplicaNode(Node):
    """One storage node: replica, stand-in and coordinator. Build it with
    ``ReplicaNode.factory(config)`` so the simulator can rebuild it after a crash."""

    def __init__(self, node_id: str, config: StoreConfig) -> None:
        super().__init__(node_id)
        self.config = valid.instance("config", config, StoreConfig)
        valid.one_of("node_id", node_id, config.nodes)
        self.data: dict[str, Siblings] = {}
        self.hints: dict[tuple[str, str], Siblings] = {}  # (home replica, key) -> versions
        self.coordinator = Coordinator(node_id, config)
        self.anti_entropy_interval = config.anti_entropy_interval  # None: anti-entropy is off
        self._sessions = 0
        # Handler table: message type -> bound method.
        self._handlers: dict[type, Callable[[Context, str, Any], None]] = {
            ClientPut: self.coordinator.start_put,
            ClientGet: self.coordinator.start_get,
            WriteAck: self.coordinator.on_write_ack,
            ReadReply: self.coordinator.on_read_reply,
            ReplicaWrite: self._on_write,
            ReplicaRead: self._on_read,
            ReadRepair: self._on_repair,
            Handoff: self._on_handoff,
            HandoffAck: self._on_handoff_ack,
            MerkleLevel: self._on_merkle_level,
            MerkleData: self._on_merkle_data,
        }
        self._timers: dict[str, Callable[[Context], None]] = {
            "handoff": self._hand_off,
            "anti_entropy": self._start_anti_entropy,
        }

    @classmethod
    def factory(cls, config: StoreConfig) -> Callable[[str], ReplicaNode]:
        """A ``factory(node_id)`` for :meth:`labkit.sim.Simulator.add_node`."""
        valid.instance("config", config, StoreConfig)
        return lambda node_id: cls(node_id, config)

    # -- lifecycle ------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        # Recover everything from durable storage: this also runs after a crash.
        for skey, value in ctx.storage.items():
            if skey[0] == "data":
                self.data[skey[1]] = value
            elif skey[0] == "hint" and value:
                self.hints[(skey[1], skey[2])] = value
            elif skey[0] == "stamped":
                self.coordinator.stamped[skey[1]] = value
        self.coordinator.counter = ctx.storage.get(("counter",), 0)
        self.coordinator.boot = ctx.storage.get(("boot",), 0) + 1
        ctx.persist(("boot",), self.coordinator.boot)
        ctx.set_timer("handoff", self.config.handoff_interval)
        self.anti_entropy_interval = ctx.storage.get(("anti_entropy",), self.config.anti_entropy_interval)
        self._schedule_anti_entropy(ctx)

    def set_anti_entropy(self, ctx: Context, interval: float | None) -> None:
        """Switch anti-entropy on (every ``interval`` seconds) or off (None) from now on.

        The setting is durable, so a node that crashes and restarts keeps it.
        """
        self.anti_entropy_interval = check_interval("interval", interval)
        ctx.persist(("anti_entropy",), self.anti_entropy_interval)
        ctx.cancel_timer("anti_entropy")
        self._schedule_anti_entropy(ctx)

    def _schedule_anti_entropy(self, ctx: Context) -> None:
        if self.anti_entropy_interval is not None:
            # Spread the first rounds so nodes do not all start together.
            ctx.set_timer("anti_entropy", self.anti_entropy_interval * (0.5 + ctx.random.random()))

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        handler = self._handlers.get(type(msg))
        if handler is not None:  # anything else is not for this protocol: ignore it
            handler(ctx, src, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        background = self._timers.get(name)
        if background is not None:
            background(ctx)
        else:  # a request timer of the coordinator: "<kind>/<boot>/<seq>"
            kind, boot, seq = name.split("/")
            self.coordinator.on_timer(ctx, kind, (int(boot), int(seq)))

    # -- storing ------------------------------------------------------------
    def _store(self, ctx: Context, key: str, versions: Siblings, hint_for: str | None = None) -> bool:
        """Reconcile ``versions`` into ``key`` (into the hint for home replica ``hint_for``, if
        given); persist and return True if it changed."""
        table: dict[Any, Siblings] = self.data if hint_for is None else self.hints
        slot = key if hint_for is None else (hint_for, key)
        current = table.get(slot, ())
        merged = merge_siblings(current, versions, self.config.resolution)
        if same_versions(merged, current):
            return False
        table[slot] = merged
        ctx.persist(("data", key) if hint_for is None else ("hint", hint_for, key), merged)
        return True

    def _on_write(self, ctx: Context, src: str, msg: ReplicaWrite) -> None:
        if self._store(ctx, msg.key, msg.versions, msg.hint_for) and msg.hint_for is not None:
            ctx.note("hint", home=msg.hint_for, key=msg.key, dot=msg.versions[0].dot)
        ctx.send(src, WriteAck(msg.req, msg.key))

    def local_versions(self, key: str) -> Siblings:
        """What this node would answer a read of ``key`` with (data and hints)."""
        valid.string("key", key, empty=True)
        versions = self.data.get(key, ())
        for (_, k), hinted in self.hints.items():
            if k == key:
                versions = merge_siblings(versions, hinted, self.config.resolution)
        return versions

    def _on_read(self, ctx: Context, src: str, msg: ReplicaRead) -> None:
        ctx.send(src, ReadReply(msg.req, msg.key, self.local_versions(msg.key)))

    def _on_repair(self, ctx: Context, src: str, msg: ReadRepair) -> None:
        if self._store(ctx, msg.key, msg.versions):
            ctx.note("repaired", key=msg.key, by="read repair")

    # -- hinted handoff ---------------------------------------------------------
    def _hand_off(self, ctx: Context) -> None:
        for (home, key), versions in self.hints.items():
            ctx.send(home, Handoff(key, versions))
        ctx.set_timer("handoff", self.config.handoff_interval)

    def _on_handoff(self, ctx: Context, src: str, msg: Handoff) -> None:
        self._store(ctx, msg.key, msg.versions)
        ctx.send(src, HandoffAck(msg.key, msg.versions))

    def _on_handoff_ack(self, ctx: Context, src: str, msg: HandoffAck) -> None:
        hk = (src, msg.key)
        current = self.hints.get(hk)
        # Drop the hint only if nothing new was added to it since it was sent.
        if current is not None and same_versions(current, msg.versions):
            del self.hints[hk]
            ctx.persist(("hint", *hk), None)
            ctx.note("handed_off", home=src, key=msg.key)

    # -- anti-entropy -------------------------------------------------------------
    def _shared_items(self, peer: str) -> list[tuple[str, Siblings]]:
        # Both sides build their tree over the keys both own, so the trees compare.
        home = self.config.home
        return [(k, v) for k, v in self.data.items() if peer in home(k)]

    def _tree(self, peer: str) -> MerkleTree:
        return MerkleTree(self._shared_items(peer), self.config.merkle_depth)

    def _start_anti_entropy(self, ctx: Context) -> None:
        if self.anti_entropy_interval is None:
            return  # switched off while the timer was pending
        ctx.set_timer("anti_entropy", self.anti_entropy_interval)
        storage_peers = [p for p in ctx.peers if p in self.config.nodes]
        if storage_peers:
            peer = ctx.random.choice(storage_peers)
            self._sessions += 1
            ctx.send(peer, MerkleLevel((self.node_id, self._sessions), 0, (0,), (self._tree(peer).root,)))

    def _on_merkle_level(self, ctx: Context, src: str, msg: MerkleLevel) -> None:
        tree = self._tree(src)
        if msg.level > tree.depth or any(p >= len(tree.levels[msg.level]) for p in msg.positions):
            return  # a peer with another tree shape: nothing sensible to compare
        mine = tree.levels[msg.level]
        differing = [p for p, h in zip(msg.positions, msg.hashes, strict=True) if mine[p] != h]
        if not differing:
            return  # these branches agree: this part of the walk is over
        if msg.level == tree.depth:
            ctx.send(src, MerkleData(msg.session, tuple(differing), self._bucket_items(src, differing), True))
            return
        children = tuple(c for p in differing for c in (2 * p, 2 * p + 1))
        below = tree.levels[msg.level + 1]
        ctx.send(src, MerkleLevel(msg.session, msg.level + 1, children, tuple(below[c] for c in children)))

    def _bucket_items(self, peer: str, buckets: Sequence[int]) -> tuple[tuple[str, Siblings], ...]:
        wanted, depth = set(buckets), self.config.merkle_depth
        return tuple(sorted((k, v) for k, v in self._shared_items(peer) if bucket_of(k, depth) in wanted))

    def _on_merkle_data(self, ctx: Context, src: str, msg: MerkleData) -> None:
        home = self.config.home
        changed = 0
        for key, versions in msg.items:
            if self.node_id in home(key) and self._store(ctx, key, versions):
                changed += 1
        if changed:
            ctx.note("repaired", keys=changed, by="anti-entropy", peer=src)
        if msg.reply:
            ctx.send(src, MerkleData(msg.session, msg.buckets, self._bucket_items(src, msg.buckets), False))


def check_replica(node: ReplicaNode) -> None:
    """Raise AssertionError unless the node's state is well formed."""
    valid.instance("node", node, ReplicaNode)
    cfg = node.config
    for key, versions in node.data.items():
        # Invariant: a node stores data only for keys it is a home replica of.
        assert node.node_id in cfg.home(key), f"{node.node_id} holds {key!r} but is not a home replica"
        check_siblings(versions, cfg.resolution)
    for key, versions in node.coordinator.stamped.items():
        # Invariant: a coordinator remembers only versions it stamped itself.
        assert all(v.dot.node == node.node_id for v in versions), (node.node_id, key, versions)
        check_siblings(versions, cfg.resolution)
    for (home, key), versions in node.hints.items():
        # Invariant: a hint is kept for a home replica, by a node that is not one.
        assert home in cfg.home(key) and node.node_id not in cfg.home(key), (node.node_id, home, key)
        assert versions, "an empty hint must be forgotten"
        check_siblings(versions, cfg.resolution)
