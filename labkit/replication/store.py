"""A whole replicated store in one simulator: storage nodes plus clients.

:class:`ReplicatedStore` is the object notebooks hold. It builds a
:class:`~labkit.sim.Simulator` with storage nodes ``n1 .. nK``
(:class:`~labkit.replication.replica.ReplicaNode`) and client nodes
(:class:`~labkit.replication.client.ClientNode`), and offers

* blocking ``put`` / ``get`` for step-by-step demonstrations (the simulator
  runs until the answer arrives or the client gives up);
* the faults (``crash``, ``restart``, ``partition``, ``heal``), where a
  client always stays on the side of the coordinator it talks to;
* :meth:`~ReplicatedStore.set_anti_entropy` to switch the background
  Merkle-tree exchange on or off in the middle of a run;
* read-outs of what each replica durably holds, for measurements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from labkit import validation as valid
from labkit.clocks import VectorClock
from labkit.replication.client import ClientNode, ClientOp, OpKind, Workload
from labkit.replication.config import StoreConfig, check_interval, check_quorum, count_or_ids
from labkit.replication.modes import Mode, Resolution
from labkit.replication.replica import ReplicaNode
from labkit.replication.versions import Siblings, merge_siblings, same_versions
from labkit.sim import Latency, Simulator, Uniform

MAX_NODES = 100  # a store of more simulated nodes is a typo, not a lesson

DEFAULT_LATENCY = Uniform(0.005, 0.015)
"""One-way delays of 5 to 15 ms: a network inside one region."""


def _node_names(nodes: int | Sequence[str]) -> tuple[str, ...]:
    nodes = count_or_ids("nodes", nodes)
    if isinstance(nodes, tuple):
        return nodes
    return tuple(f"n{i}" for i in range(1, valid.integer("nodes", nodes, ge=1, le=MAX_NODES) + 1))


class ReplicatedStore:
    """N-way replicated key-value store over ``nodes`` simulated nodes.

    ``r`` and ``w`` are the default quorums of :meth:`get` / :meth:`put`
    (each request may choose its own); by default a majority of ``n``.
    ``write_back_reads=True`` (consistency-first only) makes every read write
    what it returns back to ``n - r + 1`` home replicas before it answers,
    the second phase of Attiya, Bar-Noy and Dolev's register (1995).
    """

    def __init__(
        self,
        nodes: int | Sequence[str] = 3,
        n: int = 3,
        mode: Mode = Mode.CONSISTENCY_FIRST,
        *,
        r: int | None = None,
        w: int | None = None,
        resolution: Resolution = Resolution.VECTOR_CLOCKS,
        seed: int = 0,
        latency: Latency | float = DEFAULT_LATENCY,
        request_timeout: float = 0.25,
        hint_after: float = 0.06,
        handoff_interval: float = 0.2,
        anti_entropy_interval: float | None = None,
        merkle_depth: int = 4,
        client_timeout: float = 1.0,
        write_back_reads: bool = False,
    ) -> None:
        names = _node_names(nodes)
        self.config = StoreConfig(
            names,
            n,
            mode,
            resolution,
            request_timeout,
            hint_after,
            handoff_interval,
            anti_entropy_interval,
            merkle_depth,
            write_back_reads,
        )
        majority = self.config.n // 2 + 1
        self.r = check_quorum("r", majority if r is None else r, self.config.n)
        self.w = check_quorum("w", majority if w is None else w, self.config.n)
        longer = "longer than request_timeout, so a live coordinator always answers first"
        timeout = self.config.request_timeout
        self.client_timeout = valid.number(
            "client_timeout", client_timeout, gt=timeout, unit="seconds", note=longer
        )
        self.sim = Simulator(seed, latency=latency)
        factory = ReplicaNode.factory(self.config)
        for name in names:
            self.sim.add_node(name, factory)
            # A coordinator reaches its own replica without crossing the network.
            self.sim.set_latency(0.0, src=name, dst=name)
        self.clients: list[str] = []
        self._groups: list[list[str]] | None = None
        self._anti_entropy_switched = False
        self._anti_entropy: float | None = None
        self.add_client("client", names[0])

    # -- parts -------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[str, ...]:
        """The storage nodes."""
        return self.config.nodes

    def replica(self, node: str) -> ReplicaNode:
        """The live storage node object (raises if it is crashed)."""
        self._check_storage(node)
        return self.sim.node(node)  # type: ignore[return-value]

    def client(self, name: str = "client") -> ClientNode:
        """The client node called ``name``."""
        return self.sim.node(valid.one_of("client", name, self.clients))  # type: ignore[return-value]

    def _check_storage(self, node: str, name: str = "node") -> None:
        if node not in self.config.nodes:
            raise ValueError(f"{name} {node!r} is not a storage node (nodes: {', '.join(self.config.nodes)})")

    def add_client(self, name: str, coordinator: str, workload: Workload | None = None) -> ClientNode:
        """Add a client that sends its requests to ``coordinator``."""
        self._check_storage(coordinator, "coordinator")
        if workload is not None:
            check_quorum("workload.r", workload.r, self.config.n)
            check_quorum("workload.w", workload.w, self.config.n)
        timeout = self.client_timeout
        node = self.sim.add_node(name, lambda nid: ClientNode(nid, coordinator, workload, timeout))
        self.clients.append(name)
        self._apply_partition()
        return node

    # -- requests ------------------------------------------------------------------
    def coordinator_for(self, key: str) -> str:
        """The first live node on the key's preference list (where a request goes by default)."""
        for node in self.config.preference_list(key):
            if self.sim.is_up(node):
                return node
        return self.config.preference_list(key)[0]

    def _request(
        self,
        kind: OpKind,
        key: str,
        value: Any,
        via: str | None,
        quorum: int,
        context: VectorClock | None,
        name: str,
    ) -> ClientOp:
        valid.string("key", key, empty=True)
        via = self.coordinator_for(key) if via is None else via
        self._check_storage(via, "via")
        valid.instance("context", context, VectorClock, none=True)
        client = self.client(name)
        client.coordinator = via
        self._apply_partition()
        done = len(client.ops)
        self.sim.call(
            name, lambda node, ctx: node.submit(ctx, kind, key, value, quorum=quorum, context=context)
        )
        while len(client.ops) == done:  # the client's own timeout guarantees an end
            self.sim.step()
        return client.ops[-1]

    def put(
        self,
        key: str,
        value: Any,
        *,
        via: str | None = None,
        w: int | None = None,
        context: VectorClock | None = None,
        client: str = "client",
    ) -> ClientOp:
        """Write ``key = value`` and run the simulation until the client has an answer.

        ``context`` is what the write supersedes: the versions whose dots it
        covers (by default the context of the client's last answer for this
        key, so reads then writes reconcile; ``VectorClock()`` for a blind
        write). ``client`` names the client that sends it (one added with
        :meth:`add_client` and no workload; by default ``"client"``).
        """
        w = check_quorum("w", self.w if w is None else w, self.config.n)
        return self._request(OpKind.WRITE, key, value, via, w, context, client)

    def get(
        self, key: str, *, via: str | None = None, r: int | None = None, client: str = "client"
    ) -> ClientOp:
        """Read ``key`` (all siblings) and run the simulation until ``client`` has an answer."""
        r = check_quorum("r", self.r if r is None else r, self.config.n)
        return self._request(OpKind.READ, key, None, via, r, None, client)

    def run_for(self, seconds: float) -> None:
        """Let background work (hinted handoff, anti-entropy, stragglers) run."""
        self.sim.run_for(seconds)

    # -- faults --------------------------------------------------------------------
    def crash(self, node: str) -> None:
        self._check_storage(node)
        self.sim.crash(node)

    def restart(self, node: str) -> None:
        self._check_storage(node)
        self.sim.restart(node)
        if self._anti_entropy_switched:  # it was down when the setting changed
            interval = self.anti_entropy_interval
            self.sim.call(node, lambda replica, ctx: replica.set_anti_entropy(ctx, interval))

    # -- background processes ---------------------------------------------------------
    @property
    def anti_entropy_interval(self) -> float | None:
        """Seconds between anti-entropy rounds on every node, or None when it is off."""
        return self._anti_entropy if self._anti_entropy_switched else self.config.anti_entropy_interval

    def set_anti_entropy(self, interval: float | None) -> None:
        """Switch anti-entropy on (a round every ``interval`` seconds) or off (None), from now on.

        Every live node sets or cancels its background timer at once; a node
        that is down picks the setting up when :meth:`restart` brings it back.
        """
        interval = check_interval("interval", interval)
        self._anti_entropy = interval
        self._anti_entropy_switched = True
        for node in self.config.nodes:
            if self.sim.is_up(node):
                self.sim.call(node, lambda replica, ctx: replica.set_anti_entropy(ctx, interval))

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the storage nodes into groups; nodes not named form one more group."""

        def member(node: str, name: str) -> str:
            self._check_storage(node, name)
            return node

        self._groups = valid.partition_groups(groups, member)
        self._apply_partition()

    def heal(self) -> None:
        self._groups = None
        self.sim.heal()

    def _apply_partition(self) -> None:
        if self._groups is None:
            return
        groups = [list(g) for g in self._groups]
        rest = [x for x in self.config.nodes if not any(x in g for g in groups)]
        if rest:
            groups.append(rest)
        for name in self.clients:
            coord = self.sim.node(name).coordinator  # type: ignore[attr-defined]
            for g in groups:
                if coord in g:
                    g.append(name)
                    break
        if sorted(map(sorted, groups)) != sorted(map(sorted, self.sim.partitions)):
            self.sim.partition(*groups)

    # -- what the replicas hold ------------------------------------------------------
    def stored(self, node: str) -> dict[str, Siblings]:
        """What ``node`` durably holds as a home replica (readable even when crashed)."""
        self._check_storage(node)
        return {k[1]: v for k, v in self.sim.storage(node).items() if k[0] == "data"}

    def stored_hints(self, node: str) -> dict[tuple[str, str], Siblings]:
        """The hints ``node`` holds: (home replica, key) -> versions."""
        self._check_storage(node)
        return {(k[1], k[2]): v for k, v in self.sim.storage(node).items() if k[0] == "hint" and v}

    def replica_versions(self, key: str) -> dict[str, Siblings]:
        """Each home replica's sibling set for ``key``."""
        return {node: self.stored(node).get(key, ()) for node in self.config.home(key)}

    def all_versions(self, key: str) -> Siblings:
        """Every version of ``key`` anywhere (home replicas and hints), reconciled."""
        valid.string("key", key, empty=True)
        out: Siblings = ()
        res = self.config.resolution
        for node in self.config.nodes:
            out = merge_siblings(out, self.stored(node).get(key, ()), res)
            for (_, k), v in self.stored_hints(node).items():
                if k == key:
                    out = merge_siblings(out, v, res)
        return out

    def keys(self) -> list[str]:
        """Every key any node holds data or hints for, sorted."""
        found: set[str] = set()
        for node in self.config.nodes:
            found.update(self.stored(node))
            found.update(k for _, k in self.stored_hints(node))
        return sorted(found)

    def divergent_keys(self, keys: Iterable[str] | None = None) -> list[str]:
        """Keys whose home replicas do not all hold the same versions."""
        out = []
        for key in self.keys() if keys is None else keys:
            sets = list(self.replica_versions(key).values())
            if any(not same_versions(sets[0], s) for s in sets[1:]):
                out.append(key)
        return out

    def ops(self) -> list[ClientOp]:
        """Every operation every client recorded, by call time."""
        out: list[ClientOp] = []
        for name in self.clients:
            if self.sim.is_up(name):
                out.extend(self.sim.node(name).ops)  # type: ignore[attr-defined]
        out.sort(key=lambda op: (op.call, op.client))
        return out

    def __repr__(self) -> str:
        c = self.config
        return (
            f"ReplicatedStore(nodes={len(c.nodes)}, n={c.n}, r={self.r}, w={self.w}, mode={c.mode.name}, "
            f"resolution={c.resolution.name}, t={self.sim.now:.3f}s)"
        )
