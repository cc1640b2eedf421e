"""A sharded, replicated key-value store: consistent hashing over Raft groups.

:class:`ShardedKV` runs several Raft groups (servers ``"g1n1"``, ``"g1n2"``, ...)
on one :class:`~labkit.sim.Simulator`, each replicating a
:class:`~labkit.shardkv.store.ShardStore`; routers (:class:`ShardRouter`) send
each key to its group's leader. :meth:`ShardedKV.add_group` adds a group and
moves the keys the ring gives it, with a small controller (:class:`Migration`)
that ticks in simulated time:

1. submit ``Reconfigure(new config)`` to every old group's leader until the
   group has applied it (writes to the moving keys stop right there);
2. read what the group cut out from its *committed* state (any server that
   applied the entry holds the same snapshot, Raft §5.4.3);
3. submit ``Install(snapshot)`` to the new group until it has applied it;
4. publish the new config in the :class:`Directory`.

Keys that do not move are served throughout. The controller reads and writes
the groups from outside (a real system would send the snapshot by RPC and keep
the directory in its own Raft group); what matters for correctness, that
ownership changes at one log index in each group, is inside the logs.

Reads do not go through the log: a group's leader answers a ``get`` with
ReadIndex (Ongaro's dissertation §6.4; ``read_mode`` chooses), after one round
of heartbeats proves it still leads, so a deposed leader cut off in a minority
never answers one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.history import HistoryEntry
from labkit.raft import RaftConfig, RaftNode, ReadMode, Role
from labkit.raft.client import ClientHandle, NextServer, follow_hint_or_next
from labkit.raft.cluster import DEFAULT_LATENCY
from labkit.raft.invariants import server_invariants
from labkit.shardkv.router import Directory, ShardRouter
from labkit.shardkv.store import Install, Reconfigure, ShardConfig, ShardStore
from labkit.sim import Latency, Simulator

TICK = 0.02  # how often the migration controller looks at the groups (seconds)
MAX_RUN = 3600.0  # seconds of simulated time one run_for() may ask for (Raft heartbeats never stop)


class Phase(Enum):
    """Where a :class:`Migration` is."""

    MOVING = "moving"
    DONE = "done"


@dataclass(slots=True)
class Migration:
    """One group joining: which old groups have reconfigured, handed over and been installed."""

    group: str
    config: ShardConfig
    started: float
    sources: tuple[str, ...]
    snapshots: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    installed: set[str] = field(default_factory=set)
    submitted: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    phase: Phase = Phase.MOVING
    finished: float = math.inf

    @property
    def moved(self) -> dict[str, str]:
        """Every key that moved, with the group it came from."""
        return {k: src for src, items in self.snapshots.items() for k, _ in items}


class ShardedKV:
    """``groups`` Raft groups of ``replicas`` servers each, keys placed by a hash ring.

    ``snapshot_threshold`` turns on log compaction in every group (Raft §7; see
    :class:`~labkit.raft.RaftConfig`): a server snapshots its :class:`ShardStore`
    once that many applied entries pile up, and a lagging one receives the leader's.

    >>> kv = ShardedKV(groups=3, seed=1)
    >>> kv.sim.run_for(1.0)
    >>> sorted(kv.leaders())
    ['g1', 'g2', 'g3']
    """

    def __init__(
        self,
        groups: int = 3,
        replicas: int = 3,
        seed: int = 0,
        *,
        vnodes: int = 64,
        keys: Iterable[str] | None = None,
        latency: Latency | float = DEFAULT_LATENCY,
        election_timeout: tuple[float, float] = (0.15, 0.30),
        heartbeat_interval: float = 0.05,
        client_timeout: float = 0.3,
        read_mode: ReadMode | str = ReadMode.READ_INDEX,
        snapshot_threshold: int | None = None,
    ) -> None:
        valid.integer("groups", groups, ge=1, le=8)
        self.replicas = valid.integer("replicas", replicas, ge=1, le=7)
        self.client_timeout = valid.number("client_timeout", client_timeout, gt=0, unit="seconds")
        mode = valid.enum_member("read_mode", read_mode, ReadMode)
        self.raft_config = RaftConfig(
            election_timeout=tuple(election_timeout),  # type: ignore[arg-type]
            heartbeat_interval=heartbeat_interval,
            read_mode=mode,
            check_quorum=mode is ReadMode.LEASE,  # a leader's read lease needs CheckQuorum
            snapshot_threshold=snapshot_threshold,
        )
        self.keys = tuple(keys) if keys is not None else tuple(f"k{i:02d}" for i in range(24))
        self.sim = Simulator(seed, latency=latency)
        names = tuple(f"g{i}" for i in range(1, groups + 1))
        self.directory = Directory(ShardConfig(0, names, vnodes))
        self.history: list[HistoryEntry] = []
        self.events: list[tuple[float, str, Any]] = []
        self.migrations: list[Migration] = []
        self._clients: dict[str, ClientHandle] = {}
        self._cuts: set[tuple[str, str]] = set()
        for g in names:
            self._start_group(g, self.directory.config, frozenset())

    # ------------------------------------------------------------------ building
    def _start_group(self, group: str, config: ShardConfig, awaiting: frozenset[str]) -> None:
        ids = tuple(f"{group}n{i}" for i in range(1, self.replicas + 1))
        self.directory.servers[group] = ids
        raft = self.raft_config
        for nid in ids:
            # The factory is kept by the simulator: a restart rebuilds the store from the log.
            self.sim.add_node(
                nid, lambda node_id: RaftNode(node_id, ids, raft, lambda: ShardStore(group, config, awaiting))
            )
        self._rewire()

    def client(self, name: str, *, next_server: NextServer | None = None) -> ClientHandle:
        """The router-client called ``name`` (created on first use).

        ``next_server(servers, asked, hint) -> server`` replaces the router's
        rule for the server to try after a refusal or a timeout
        (:func:`~labkit.raft.client.follow_hint_or_next`); it applies to a
        client created by this call.
        """
        valid.string("name", name)
        if name in self.servers():
            raise ValueError(f"name {name!r} is a server's id; pick another client name")
        if next_server is not None and name in self._clients:
            raise ValueError(f"client {name!r} already exists; give next_server when it is created")
        if name not in self._clients:
            d, h, t = self.directory, self.history, self.client_timeout
            rule = follow_hint_or_next if next_server is None else next_server
            self.sim.add_node(name, lambda nid: ShardRouter(nid, d, h, retry_timeout=t, next_server=rule))
            self._clients[name] = ClientHandle(self.sim, name, self.keys)
        return self._clients[name]

    # ------------------------------------------------------------------ looking
    @property
    def groups(self) -> tuple[str, ...]:
        """Every group with servers (including one still joining)."""
        return tuple(self.directory.servers)

    def servers(self, group: str | None = None) -> tuple[str, ...]:
        """The servers of ``group`` (all servers when None)."""
        if group is None:
            return tuple(s for ids in self.directory.servers.values() for s in ids)
        return self.directory.servers[self._check_group(group)]

    def _check_group(self, group: str) -> str:
        return valid.one_of("group", group, self.groups)

    def _check_server(self, node: str) -> str:
        if node not in self.servers():
            raise ValueError(f"node must be a server id such as 'g1n1', got {node!r}")
        return node

    def group_of(self, node: str) -> str:
        """The group server ``node`` belongs to."""
        self._check_server(node)
        return next(g for g, ids in self.directory.servers.items() if node in ids)

    def leader(self, group: str) -> str | None:
        """The live server of ``group`` that leads with the highest term, or None."""
        live = [self.sim.node(nid) for nid in self.servers(group) if self.sim.is_up(nid)]
        leaders = [(n.current_term, n.node_id) for n in live if n.role is Role.LEADER]  # type: ignore[attr-defined]
        return max(leaders)[1] if leaders else None

    def leaders(self) -> dict[str, str | None]:
        """``group -> leader`` for every group."""
        return {g: self.leader(g) for g in self.groups}

    def owner(self, key: str) -> str:
        """The group the published config gives ``key`` to."""
        return self.directory.config.owner(valid.string("key", key, empty=True))

    def keys_of(self, group: str) -> tuple[str, ...]:
        """The store's keys that the published config gives to ``group``."""
        self._check_group(group)
        return tuple(k for k in self.keys if self.owner(k) == group)

    def store(self, group: str) -> ShardStore | None:
        """The state machine of ``group``'s leader (None while it has no leader)."""
        lead = self.leader(group)
        return None if lead is None else self.sim.node(lead).state_machine  # type: ignore[attr-defined]

    def placement(self) -> dict[str, str]:
        """``key -> group`` for every key some group's leader holds now."""
        stores = {g: self.store(g) for g in self.groups}
        return {k: g for g, st in stores.items() if st is not None for k in st.data}

    def check_invariants(self) -> list[str]:
        """Each live server's Raft and shard invariants, plus: no key held by two groups' leaders."""
        out: list[str] = []
        for nid in self.servers():
            if self.sim.is_up(nid):
                node: RaftNode = self.sim.node(nid)  # type: ignore[assignment]
                out += [f"{nid}: {v}" for v in server_invariants(node)]
                out += [f"{nid}: {v}" for v in node.state_machine.check_invariants()]  # type: ignore[attr-defined]
        seen: dict[str, str] = {}
        for g in self.groups:
            st = self.store(g)
            for k in st.data if st is not None else ():
                if k in seen:
                    out.append(f"key {k!r} held by {seen[k]} and {g}")
                seen[k] = g
        return out

    # ------------------------------------------------------------------ faults
    def crash(self, node: str) -> None:
        """Crash a server (its Raft log survives on disk)."""
        self.sim.crash(self._check_server(node))
        self.events.append((self.sim.now, "crash", node))

    def restart(self, node: str) -> None:
        """Restart a crashed server; it rebuilds its store from its snapshot, if it took one, and its log."""
        self.sim.restart(self._check_server(node))
        self.events.append((self.sim.now, "restart", node))

    def is_up(self, node: str) -> bool:
        """False while ``node`` is crashed."""
        return self.sim.is_up(self._check_server(node))

    def partition_group(self, group: str, minority: Sequence[str]) -> None:
        """Cut ``minority`` (servers of ``group``) off from the rest of its group.

        Clients still reach every server, as in :meth:`labkit.raft.RaftCluster.partition`.
        """
        ids = self.servers(group)
        side = list(minority)
        if isinstance(minority, str):
            raise TypeError(f"minority must be a list of server ids, got the string {minority!r}")
        if not side or any(s not in ids for s in side) or len(set(side)) >= len(ids):
            raise ValueError(f"minority must be a non-empty proper subset of {ids}, got {side!r}")
        self._cuts |= {link for a in side for b in ids if b not in side for link in ((a, b), (b, a))}
        self.events.append((self.sim.now, "partition", (group, tuple(side))))
        self._rewire()

    def heal(self) -> None:
        """Remove every partition."""
        self._cuts.clear()
        self.events.append((self.sim.now, "heal", None))
        self._rewire()

    def _rewire(self) -> None:
        self.sim.heal()
        for a, b in sorted(self._cuts):
            self.sim.cut(a, b)

    # ------------------------------------------------------------------ running
    def run_for(self, seconds: float) -> None:
        """Advance simulated time by ``seconds``."""
        self.sim.run_for(valid.number("seconds", seconds, ge=0, le=MAX_RUN, note="split longer runs"))

    def run_until_idle(self, timeout: float = 10.0) -> bool:
        """Run until no client has an operation in flight and no move is under way."""
        deadline = self.sim.now + valid.number("timeout", timeout, gt=0, le=MAX_RUN, unit="seconds")
        while self.sim.now < deadline:
            busy = any(self.sim.node(c).current is not None or self.sim.node(c).queue for c in self._clients)
            moving = any(m.phase is Phase.MOVING for m in self.migrations)
            if not busy and not moving:
                return True
            self.sim.run(min(deadline, self.sim.now + 0.01))
        return False

    # ------------------------------------------------------------------ membership
    def add_group(self, name: str | None = None, *, wait: bool = True, timeout: float = 10.0) -> Migration:
        """Start a new group and move it the keys the new ring gives it.

        With ``wait`` the simulation runs until the move is complete (or
        ``timeout`` simulated seconds pass; the move then continues in later runs).
        """
        valid.boolean("wait", wait)
        valid.number("timeout", timeout, gt=0, le=MAX_RUN, unit="seconds")
        if any(m.phase is Phase.MOVING for m in self.migrations):
            raise ValueError("a group is still joining; let that move finish first")
        if name is None:
            name = f"g{len(self.groups) + 1}"
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"name must be a short identifier such as 'g4', got {name!r}")
        if name in self.groups:
            raise ValueError(f"group {name!r} already exists")
        if len(self.groups) >= 8:
            raise ValueError("at most 8 groups")
        old = self.directory.config
        m = Migration(name, old.with_group(name), self.sim.now, old.groups)
        self._start_group(name, m.config, frozenset(old.groups))
        self.migrations.append(m)
        self.events.append((self.sim.now, "join", name))
        self.sim.after(0.0, lambda sim: self._tick(m))
        if wait:
            deadline = self.sim.now + timeout
            while m.phase is Phase.MOVING and self.sim.now < deadline:
                self.sim.run(min(deadline, self.sim.now + TICK))
        return m

    def _submit_once(self, m: Migration, group: str, what: str, command: Any) -> None:
        lead = self.leader(group)
        if lead is None:
            return
        node: RaftNode = self.sim.node(lead)  # type: ignore[assignment]
        stamp = (lead, node.current_term)
        if m.submitted.get((group, what)) == stamp:
            return  # already in this leader's log for this term; wait for it to commit
        m.submitted[(group, what)] = stamp
        self.sim.call(lead, lambda n, ctx: n.submit(ctx, command))

    def _applied_store(self, group: str, ok: Any) -> ShardStore | None:
        # Any live server of the group whose store passed ``ok``: it applied the entry (committed).
        for nid in self.servers(group):
            if self.sim.is_up(nid):
                st: ShardStore = self.sim.node(nid).state_machine  # type: ignore[attr-defined]
                if ok(st):
                    return st
        return None

    def _tick(self, m: Migration) -> None:
        epoch = m.config.epoch
        for src in m.sources:
            if src not in m.snapshots:
                st = self._applied_store(src, lambda s: s.config.epoch >= epoch)
                if st is None:
                    self._submit_once(m, src, "reconfigure", Reconfigure(m.config))
                else:
                    m.snapshots[src] = st.outgoing[(epoch, m.group)]
            if src in m.snapshots and src not in m.installed:
                if self._applied_store(m.group, lambda s, src=src: (epoch, src) in s.installed):
                    m.installed.add(src)
                else:
                    self._submit_once(m, m.group, f"install {src}", Install(epoch, src, m.snapshots[src]))
        if len(m.installed) == len(m.sources):
            self.directory.config = m.config  # routers now send the moved keys to the new group
            m.phase = Phase.DONE
            m.finished = self.sim.now
            self.events.append((self.sim.now, "joined", m.group))
            return
        self.sim.after(TICK, lambda sim: self._tick(m))

    # ------------------------------------------------------------------ checking
    def operations(self, client: str | None = None) -> list[Any]:
        """The history (of one client, or all) as :class:`labkit.linearizability.Operation` records."""
        from labkit.linearizability.adapters import from_raft

        if client is not None:
            valid.string("client", client)
        return from_raft(h for h in self.history if client is None or h.client == client)

    def check(self, timeout: float | None = 10.0) -> Any:
        """Check the whole history with the linearizability checker (key by key)."""
        from labkit.linearizability import KVModel, check

        return check(self.operations(), KVModel(), timeout=timeout)

    def lost_writes(self) -> list[str]:
        """Acknowledged appends whose value is missing from (or doubled in) the final store.

        Reads each key's value from its owner's leader; call when every group
        has a leader and no move is under way. Keys that saw a ``put`` are skipped
        (a put may rightly overwrite earlier appends).
        """
        overwritten = {h.input[1] for h in self.history if h.input[0] == "put"}
        final: dict[str, str] = {}
        for g in self.groups:
            st = self.store(g)
            if st is None:
                raise ValueError(f"group {g} has no leader; heal and restart before counting")
            final.update({k: v for k, v in st.data.items() if st.config.owner(k) == g})
        lost = []
        for h in self.history:
            if h.done and h.input[0] == "append" and h.input[1] not in overwritten:
                n = final.get(h.input[1], "").count(h.input[2])
                if n != 1:
                    lost.append(f"{h.input} appears {n} times in {h.input[1]!r}")
        return lost

    def __repr__(self) -> str:
        lead = ", ".join(f"{g}:{v or '-'}" for g, v in self.leaders().items())
        return f"ShardedKV(now={self.sim.now:.3f}s, epoch={self.directory.config.epoch}, {lead})"
