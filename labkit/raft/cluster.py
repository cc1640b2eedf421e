"""A Raft cluster on the simulator: the API notebooks and tests use.

:class:`RaftCluster` puts ``n`` Raft servers ("n1".."nN": :class:`~labkit.raft.node.RaftNode`
with only the extensions its configuration uses, see :mod:`labkit.raft.servers`) on
a fresh :class:`~labkit.sim.Simulator` (``c.sim``), checks Raft's safety
properties after every event (:class:`InvariantMonitor`), and offers faults by
name: crash and restart, disconnect and connect, partition and heal. Clients
(:meth:`RaftCluster.client`) are simulator nodes too and record every
operation in ``c.history``.

A *partition* separates servers from servers while clients can still reach
every server (as in the usual Raft lab set-up); a *disconnected* server is cut
off from everyone, clients included.

``node_factory`` runs another server class in place of
:class:`~labkit.raft.node.RaftNode` (a learner's, say): it is called as
``node_factory(node_id, peers, config)`` and the monitor, the clients and the
widgets work unchanged.

Raft in practice (Ongaro's dissertation): ``snapshot_threshold`` (log
compaction, §7 of the paper), ``pre_vote`` and ``check_quorum`` (diss. §9.6),
``read_mode`` (ReadIndex and leases, diss. §6.4) switch on what production
Rafts add; :meth:`RaftCluster.add_server`, :meth:`RaftCluster.remove_server`
and :meth:`RaftCluster.transfer_leadership` change the membership one server at
a time and hand leadership over (diss. chapter 4 and §3.10). A server added
later is ``n6``, ``n7``... and joins :attr:`RaftCluster.ids`; a removed one
stays in ``ids`` (and in the simulation) but not in the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from labkit import validation as valid
from labkit.history import HistoryEntry
from labkit.raft.bugs import Bug, check_bugs, node_class
from labkit.raft.client import ClientHandle, KVClient
from labkit.raft.invariants import InvariantMonitor
from labkit.raft.messages import Configuration
from labkit.raft.node import LeadershipTransfer, MembershipChanges, RaftConfig, RaftNode, ReadMode, Role
from labkit.raft.servers import server_class
from labkit.raft.snapshot import DEFAULT_CHUNK_SIZE
from labkit.raft.state_machine import KVStore, StateMachine
from labkit.sim import Latency, Node, Simulator, Uniform

__all__ = ["RaftCluster", "ClientHandle", "DEFAULT_LATENCY"]

DEFAULT_LATENCY = Uniform(0.001, 0.004)  # one-way delay: a few milliseconds, some reordering
MAX_RUN = 3600.0  # seconds of simulated time one run_until may wait (a cluster never falls silent)
MAX_SERVERS = 15  # servers one cluster may hold, added ones included
OPERATOR_TICK = 0.02  # how often a membership change waiting to be started or committed is looked at


NodeFactory = Callable[[str, tuple[str, ...], RaftConfig], Node]


class RaftCluster:
    """``n`` Raft servers on a simulator, with faults, clients and safety checks.

    >>> c = RaftCluster(n=5, seed=1)
    >>> c.sim.run_for(2.0)
    >>> c.leader()
    'n3'

    Parameters: ``election_timeout`` (low, high) seconds, ``heartbeat_interval``,
    ``latency`` (one-way, a :class:`~labkit.sim.Latency` or seconds), ``loss`` and
    ``duplication`` probabilities, ``noop`` (a new leader appends a no-op),
    ``bugs`` (deliberate mistakes, see :mod:`labkit.raft.bugs`),
    ``state_machine`` (a factory, :class:`KVStore` by default), ``node_factory``
    (build servers of another class, see the module docstring), ``check`` (run the
    invariant monitor) and ``strict`` (raise on the first violation; with
    ``strict=False`` violations are only collected in :attr:`violations`).
    ``max_entries``, ``max_inflight``, ``snapshot_threshold``, ``snapshot_chunk_size``, ``pre_vote``,
    ``check_quorum``, ``read_mode`` and ``max_clock_drift`` are
    :class:`~labkit.raft.node.RaftConfig`'s; ``trace=False``
    keeps no trace (for long runs, see :class:`~labkit.sim.Simulator`).
    """

    def __init__(
        self,
        n: int = 5,
        seed: int = 0,
        *,
        election_timeout: tuple[float, float] = (0.15, 0.30),
        heartbeat_interval: float = 0.05,
        latency: Latency | float = DEFAULT_LATENCY,
        loss: float = 0.0,
        duplication: float = 0.0,
        noop: bool = True,
        bugs: Iterable[Bug] = (),
        max_entries: int = 64,
        max_inflight: int = 1,
        state_machine: Callable[[], StateMachine] = KVStore,
        node_factory: NodeFactory | None = None,
        client_timeout: float = 0.3,
        check: bool = True,
        strict: bool = True,
        snapshot_threshold: int | None = None,
        snapshot_chunk_size: int = DEFAULT_CHUNK_SIZE,
        pre_vote: bool = False,
        check_quorum: bool = False,
        read_mode: ReadMode | str = ReadMode.LOG,
        max_clock_drift: float = 0.01,
        trace: bool = True,
    ) -> None:
        valid.integer("n", n, ge=1, le=MAX_SERVERS, note="servers")
        valid.boolean("check", check)
        valid.boolean("strict", strict)
        valid.boolean("trace", trace)
        self.bugs = check_bugs(bugs)
        self.config = RaftConfig(
            election_timeout=tuple(election_timeout),  # type: ignore[arg-type]
            heartbeat_interval=heartbeat_interval,
            max_entries=max_entries,
            max_inflight=max_inflight,
            noop=noop,
            snapshot_threshold=snapshot_threshold,
            snapshot_chunk_size=snapshot_chunk_size,
            pre_vote=pre_vote,
            check_quorum=check_quorum,
            read_mode=read_mode,  # type: ignore[arg-type]
            max_clock_drift=max_clock_drift,
        )
        valid.function("state_machine", state_machine, "a factory returning a StateMachine")
        valid.function(
            "node_factory", node_factory, "callable as node_factory(node_id, peers, config)", none=True
        )
        if node_factory is None:
            # The core with the extensions this configuration uses (or RaftNode with the bugs asked for).
            server = node_class(self.bugs) if self.bugs else server_class(self.config)
            node_factory = lambda node_id, peers, config: server(node_id, peers, config, state_machine)  # noqa: E731
        elif self.bugs or state_machine is not KVStore:
            raise ValueError(
                "give bugs and state_machine to the default servers, or a node_factory, not both"
            )
        self.client_timeout = valid.number("client_timeout", client_timeout, gt=0, unit="seconds")
        self.node_factory: NodeFactory = node_factory
        self.sim = Simulator(seed, latency=latency, loss=loss, duplication=duplication, trace=trace)
        self.ids: tuple[str, ...] = tuple(f"n{i}" for i in range(1, n + 1))
        self.history: list[HistoryEntry] = []
        self.events: list[tuple[float, str, Any]] = []  # faults injected through the cluster
        self._clients: dict[str, ClientHandle] = {}
        self._disconnected: set[str] = set()
        self.removed: set[str] = set()  # servers taken out of the configuration and shut down
        self.monitor: InvariantMonitor | None = None
        if check:  # after every event at a server
            self.monitor = InvariantMonitor(self._live, self.ids, strict=strict)
            self.sim.observer = self.monitor.observe
        ids, config = self.ids, self.config
        self._first = frozenset(ids)
        for nid in self.ids:
            self.sim.add_node(nid, lambda node_id: node_factory(node_id, ids, config))

    # ------------------------------------------------------------------
    # Looking
    # ------------------------------------------------------------------
    def _check_server(self, node_id: str, name: str = "node") -> str:
        return valid.one_of(name, node_id, self.ids)

    def _live(self, node_id: str) -> RaftNode | None:
        return self.sim.node(node_id) if self.sim.is_up(node_id) else None  # type: ignore[return-value]

    def node(self, node_id: str) -> RaftNode:
        """The live server ``node_id`` (raises ValueError while it is crashed)."""
        return self.sim.node(self._check_server(node_id))  # type: ignore[return-value]

    def is_up(self, node_id: str) -> bool:
        """False while ``node_id`` is crashed."""
        return self.sim.is_up(self._check_server(node_id))

    def live_nodes(self) -> dict[str, RaftNode]:
        """Every server that is not crashed."""
        return {nid: n for nid in self.ids if (n := self._live(nid)) is not None}

    def leader(self) -> str | None:
        """The id of the live leader with the highest term, or None."""
        best: tuple[int, str] | None = None
        for nid, n in self.live_nodes().items():
            if n.role is Role.LEADER and (best is None or n.current_term > best[0]):
                best = (n.current_term, nid)
        return None if best is None else best[1]

    def roles(self) -> dict[str, tuple[str, int] | None]:
        """``node -> (role, term)`` for every server (None while crashed)."""
        return {nid: (n.role.value, n.current_term) if (n := self._live(nid)) else None for nid in self.ids}

    def applied(self, node_id: str) -> list[Any]:
        """The commands ``node_id`` applied since it last started, in log order (no-ops left out)."""
        return list(self.node(node_id).applied)

    @property
    def violations(self) -> list[str]:
        """Safety violations the monitor saw (always empty on a correct Raft)."""
        return [] if self.monitor is None else list(self.monitor.violations)

    def check_invariants(self) -> list[str]:
        """Run the full snapshot checks now, plus what the monitor saw; [] when safe."""
        out = self.violations
        if self.monitor is not None:
            out += self.monitor.check_all(self.live_nodes())
        return out

    # ------------------------------------------------------------------
    # Running and asking
    # ------------------------------------------------------------------
    def run_until(self, condition: Callable[[], bool], timeout: float = 10.0, step: float = 0.005) -> bool:
        """Run until ``condition()`` holds (checked every ``step`` s) or ``timeout`` s pass."""
        valid.function("condition", condition, "a callable returning a bool")
        # Both finite and > 0: step=0 would never advance time, timeout=inf never give up.
        valid.number("timeout", timeout, gt=0, le=MAX_RUN, unit="seconds")
        valid.number("step", step, gt=0, unit="seconds")
        deadline = self.sim.now + timeout
        while not condition():
            if self.sim.now >= deadline:
                return False
            self.sim.run(min(deadline, self.sim.now + step))
        return True

    def submit(self, command: Any, node: str | None = None) -> tuple[int, int] | None:
        """Hand ``command`` to ``node`` (default: the leader). ``(index, term)`` or None if not leader."""
        try:
            hash(command)
        except TypeError:
            raise TypeError(f"command must be hashable (a str, number or tuple), got {command!r}") from None
        target = self.leader() if node is None else self._check_server(node)
        if target is None or not self.sim.is_up(target):
            return None
        return self.sim.call(target, lambda n, ctx: n.submit(ctx, command))

    def start_election(self, node_id: str) -> None:
        """Make ``node_id`` time out now and campaign for the next term (§5.2)."""
        self._check_server(node_id)
        self.sim.call(node_id, lambda n, ctx: n.start_election(ctx))
        self.events.append((self.sim.now, "campaign", node_id))

    def client(self, name: str) -> ClientHandle:
        """The key-value client called ``name`` (created on first use)."""
        valid.string("name", name)
        if name in self.ids:
            raise ValueError(f"name {name!r} is a server's id; pick another client name")
        if name not in self._clients:
            ids, history, timeout = self.ids, self.history, self.client_timeout
            reads_anywhere = Bug.STALE_READS in self.bugs
            self.sim.add_node(
                name,
                lambda nid: KVClient(nid, ids, history, retry_timeout=timeout, reads_anywhere=reads_anywhere),
            )
            self._clients[name] = ClientHandle(self.sim, name, ("a", "b", "c"))
            for nid in self._disconnected:
                self._cut_off(nid, [name])
        return self._clients[name]

    def operations(self) -> list[Any]:
        """``history`` as :class:`labkit.linearizability.Operation` records."""
        from labkit.linearizability.adapters import from_raft

        return from_raft(self.history)

    # ------------------------------------------------------------------
    # Membership (diss. chapter 4) and leadership transfer (diss. §3.10)
    # ------------------------------------------------------------------
    def configuration(self) -> Configuration | None:
        """The leader's latest configuration (committed or not); None without a leader."""
        leader = self.leader()
        return None if leader is None else self.node(leader).configuration

    def members(self) -> tuple[str, ...]:
        """The voters of the leader's committed configuration (the servers of the first one without a leader)."""
        conf = self._committed()
        if conf is None:
            return tuple(s for s in self.ids if s not in self.removed and s in self._first)
        return conf.voters

    def _committed(self) -> Configuration | None:
        """The leader's committed configuration (None without a leader)."""
        leader = self.leader()
        if leader is None:
            return None
        node = self.node(leader)
        return node.membership.at(node.commit_index)

    def _operator(
        self,
        ask: Callable[[RaftNode, Any], bool],
        needed: Callable[[Configuration], bool],
        done: Callable[[], bool],
        then: Callable[[], None] | None,
        deadline: float,
    ) -> None:
        """Ask the leader for a change whenever its configuration still ``needed`` it and it can start
        one, until ``done()``; then call ``then``.

        Runs inside the simulation (a callback every ``OPERATOR_TICK``), as an
        operator's script would: retrying while there is no leader, while an
        earlier change is being committed, or after a new leader lost the change.
        """

        def tick(sim: Simulator) -> None:
            if done():
                if then is not None:
                    then()
                return
            if sim.now >= deadline:
                self.events.append((sim.now, "change-abandoned", None))
                return
            leader = self.leader()
            if leader is not None:
                node = self.node(leader)
                if needed(node.configuration) and node.can_start_change():
                    sim.call(leader, ask)
            sim.after(OPERATOR_TICK, tick)

        self.sim.after(0.0, tick)

    def _raft_leader(self) -> None:
        leader = self.leader()
        node = None if leader is None else self.node(leader)
        if node is not None and not (
            isinstance(node, MembershipChanges) and isinstance(node, LeadershipTransfer)
        ):
            raise TypeError(
                "membership changes need labkit's RaftNode servers; this cluster runs another class"
            )

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        if not self.run_until(done, timeout):
            raise TimeoutError(f"{what} did not complete within {timeout:g} s of simulated time")

    def start_server(self, node_id: str | None = None) -> str:
        """Start a new server outside the cluster: it knows the current members but is not one of them,
        so it waits (no elections) until a leader adds it (diss. §4.2.1). Returns its id (``n6`` for a
        sixth server). :meth:`add_server` starts one and adds it."""
        if node_id is None:
            node_id = f"n{len(self.ids) + 1}"
        valid.string("node_id", node_id)
        if node_id in self.sim.nodes:
            raise ValueError(f"node_id {node_id!r} is already in the simulation; pick a new id")
        if len(self.ids) >= MAX_SERVERS:
            raise ValueError(f"a cluster holds at most {MAX_SERVERS} servers")
        conf = self.configuration()
        members = conf.members if conf is not None else self.members()
        factory, config = self.node_factory, self.config
        self.sim.add_node(node_id, lambda nid: factory(nid, members, config))
        self.ids = (*self.ids, node_id)
        self._servers_changed()
        self.events.append((self.sim.now, "start", node_id))
        return node_id

    def add_server(self, node_id: str | None = None, *, wait: bool = True, timeout: float = 5.0) -> str:
        """Add a server to the cluster (diss. §4.2.1): the leader first brings it up to date as a
        learner, then makes it a voter. ``node_id`` is a server started with :meth:`start_server`,
        or None to start a new one. Returns its id.

        With ``wait`` the simulation runs until the server is a voter in a
        committed configuration (``TimeoutError`` after ``timeout`` s); otherwise
        the change goes on as the simulation runs.
        """
        valid.boolean("wait", wait)
        valid.number("timeout", timeout, gt=0, le=MAX_RUN, unit="seconds")
        self._raft_leader()
        if node_id is None or node_id not in self.ids:
            node_id = self.start_server(node_id)
        if node_id in self.removed:
            raise ValueError(f"{node_id} was removed; start a new server instead")
        self.events.append((self.sim.now, "add", node_id))

        def done() -> bool:
            conf = self._committed()
            return conf is not None and node_id in conf.voters

        self._operator(
            lambda n, ctx: n.add_server(ctx, node_id),
            lambda conf: node_id not in conf.members,
            done,
            None,
            self.sim.now + timeout,
        )
        if wait:
            self._wait(done, timeout, f"adding {node_id}")
        return node_id

    def remove_server(
        self,
        node_id: str,
        *,
        wait: bool = True,
        timeout: float = 5.0,
        shutdown: bool = True,
        hand_over: bool = False,
    ) -> None:
        """Take ``node_id`` out of the configuration (diss. §4.2.2); a leader may remove itself (it
        steps down once that is committed). With ``shutdown`` the server is then crashed for good,
        as an operator would retire it; without, it keeps running outside the cluster.

        With ``hand_over`` a leader being removed first hands its leadership to the most
        up-to-date other voter (diss. §3.10), which then removes it: the cluster need not wait
        an election timeout for a new leader after the old one steps down.

        ``wait`` and ``timeout`` are as in :meth:`add_server`.
        """
        self._check_server(node_id)
        valid.boolean("wait", wait)
        valid.boolean("shutdown", shutdown)
        valid.boolean("hand_over", hand_over)
        valid.number("timeout", timeout, gt=0, le=MAX_RUN, unit="seconds")
        if node_id in self.removed:
            raise ValueError(f"{node_id} was already removed")
        self._raft_leader()
        self.events.append((self.sim.now, "remove", node_id))

        def done() -> bool:
            conf = self._committed()
            return self.leader() != node_id and conf is not None and node_id not in conf.members

        def retire() -> None:
            self.removed.add(node_id)
            self.events.append((self.sim.now, "removed", node_id))
            self._servers_changed()
            if shutdown and self.sim.is_up(node_id):
                self.crash(node_id)

        def ask(n: RaftNode, ctx: Any) -> bool:
            if hand_over and n.node_id == node_id:
                return n.transfer_leadership(ctx, _most_up_to_date(n))
            return n.remove_server(ctx, node_id)

        self._operator(ask, lambda conf: node_id in conf.members, done, retire, self.sim.now + timeout)
        if wait:
            self._wait(lambda: node_id in self.removed, timeout, f"removing {node_id}")

    def transfer_leadership(self, target: str, *, wait: bool = True, timeout: float = 2.0) -> bool:
        """Ask the leader to hand its leadership to ``target`` (diss. §3.10). With ``wait``, run until
        ``target`` leads (True) or the transfer was given up (False, after ``timeout`` s)."""
        self._check_server(target, "target")
        valid.boolean("wait", wait)
        valid.number("timeout", timeout, gt=0, le=MAX_RUN, unit="seconds")
        leader = self.leader()
        if leader is None:
            raise ValueError("there is no leader to hand leadership over")
        if leader == target:
            return True
        self.sim.call(leader, lambda n, ctx: n.transfer_leadership(ctx, target))
        self.events.append((self.sim.now, "transfer", target))
        return not wait or self.run_until(lambda: self.leader() == target, timeout)

    def _servers_changed(self) -> None:
        if self.monitor is not None:
            self.monitor.servers = frozenset(self.ids)
        for name in self._clients:  # removed servers stay: an answer from one may still be on its way
            self.sim.node(name).servers = self.ids  # type: ignore[attr-defined]
        for nid in self._disconnected:
            self._cut_off(nid, self.sim.nodes)

    # ------------------------------------------------------------------
    # Faults
    # ------------------------------------------------------------------
    def crash(self, node_id: str) -> None:
        """Crash a server: it loses volatile state; its durable state survives."""
        self.sim.crash(self._check_server(node_id))
        self.events.append((self.sim.now, "crash", node_id))

    def restart(self, node_id: str) -> None:
        """Restart a crashed server from its durable state only."""
        self.sim.restart(self._check_server(node_id))
        self.events.append((self.sim.now, "restart", node_id))

    def disconnect(self, node_id: str) -> None:
        """Cut ``node_id`` off from every server and client."""
        self._check_server(node_id)
        if node_id not in self._disconnected:
            self._disconnected.add(node_id)
            self._cut_off(node_id, self.sim.nodes)
        self.events.append((self.sim.now, "disconnect", node_id))

    def connect(self, node_id: str) -> None:
        """Undo :meth:`disconnect` for ``node_id``."""
        self._check_server(node_id)
        if node_id in self._disconnected:
            self._disconnected.discard(node_id)
            self._cut_off(node_id, self.sim.nodes, undo=True)
        self.events.append((self.sim.now, "connect", node_id))

    def _cut_off(self, node_id: str, others: Iterable[str], undo: bool = False) -> None:
        change = self.sim.uncut if undo else self.sim.cut
        for other in others:
            if other != node_id and not (undo and other in self._disconnected):
                change(node_id, other)
                change(other, node_id)

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the servers into groups that cannot talk to each other.

        Servers named in no group form one more group. Clients still reach
        every server. Replaces an earlier partition.
        """
        self.sim.partition(*groups, among=self.ids)
        self.events.append((self.sim.now, "partition", self.partitions))

    def heal(self) -> None:
        """Remove every partition and reconnect every disconnected server."""
        self.sim.heal()
        self._disconnected.clear()
        self.events.append((self.sim.now, "heal", None))

    @property
    def partitions(self) -> list[list[str]]:
        """The servers' current sides (one list when there is no partition)."""
        sides = ([n for n in side if n in self.ids] for side in self.sim.partitions)
        return [side for side in sides if side]

    @property
    def disconnected(self) -> list[str]:
        """The servers :meth:`disconnect` cut off from everyone (until connected or healed)."""
        return [nid for nid in self.ids if nid in self._disconnected]

    def can_reach(self, src: str, dst: str) -> bool:
        """Whether a message from src to dst would get through now."""
        return self.sim.can_reach(src, dst)

    def __repr__(self) -> str:
        roles = ", ".join(
            f"{k}:{v[0][0].upper()}{v[1]}" if v else f"{k}:down" for k, v in self.roles().items()
        )
        return f"RaftCluster(now={self.sim.now:.3f}s, leader={self.leader()}, {roles})"


def _most_up_to_date(leader: RaftNode) -> str:
    """The other voter to hand leadership to (diss. §3.10): one that answered the leader's latest
    confirmed round of heartbeats (so it is up and reachable), with the longest log the leader knows
    to match its own; the first in the configuration on a tie."""
    others = [v for v in leader.voters if v != leader.node_id]
    if not others:
        raise ValueError(f"{leader.node_id} is the only voter: there is nobody to hand leadership to")
    match, acked, confirmed = leader.match_index, leader.rounds.acked, leader.rounds.confirmed
    return max(others, key=lambda v: (acked.get(v, -1) >= confirmed, match.get(v, 0), -others.index(v)))
