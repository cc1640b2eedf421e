"""A Raft cluster on the simulator: the API notebooks and tests use.

:class:`RaftCluster` puts ``n`` :class:`~labkit.raft.node.RaftNode` servers
("n1".."nN") on a fresh :class:`~labkit.sim.Simulator` (``c.sim``), checks
Raft's safety properties after every event (:class:`InvariantMonitor`), and
offers faults by name: crash and restart, disconnect and connect, partition
and heal. Clients (:meth:`RaftCluster.client`) are simulator nodes too and
record every operation in ``c.history``.

A *partition* separates servers from servers while clients can still reach
every server (as in the usual Raft lab set-up); a *disconnected* server is cut
off from everyone, clients included.

``node_factory`` runs another server class in place of
:class:`~labkit.raft.node.RaftNode` (a learner's, say): it is called as
``node_factory(node_id, peers, config)`` and the monitor, the clients and the
widgets work unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from labkit import validation as valid
from labkit.history import HistoryEntry
from labkit.raft.bugs import Bug, check_bugs, node_class
from labkit.raft.client import ClientHandle, KVClient
from labkit.raft.invariants import InvariantMonitor
from labkit.raft.node import RaftConfig, RaftNode, Role
from labkit.raft.state_machine import KVStore, StateMachine
from labkit.sim import Latency, Node, Simulator, Uniform

__all__ = ["RaftCluster", "ClientHandle", "DEFAULT_LATENCY"]

DEFAULT_LATENCY = Uniform(0.001, 0.004)  # one-way delay: a few milliseconds, some reordering
MAX_RUN = 3600.0  # seconds of simulated time one run_until may wait (a cluster never falls silent)


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
        state_machine: Callable[[], StateMachine] = KVStore,
        node_factory: NodeFactory | None = None,
        client_timeout: float = 0.3,
        check: bool = True,
        strict: bool = True,
    ) -> None:
        valid.integer("n", n, ge=1, le=15, note="servers")
        valid.boolean("check", check)
        valid.boolean("strict", strict)
        self.bugs = check_bugs(bugs)
        self.config = RaftConfig(
            election_timeout=tuple(election_timeout),  # type: ignore[arg-type]
            heartbeat_interval=heartbeat_interval,
            max_entries=max_entries,
            noop=noop,
        )
        if not callable(state_machine):
            raise TypeError(
                f"state_machine must be a factory returning a StateMachine, got {state_machine!r}"
            )
        if node_factory is None:
            server = node_class(self.bugs)
            node_factory = lambda node_id, peers, config: server(node_id, peers, config, state_machine)  # noqa: E731
        elif not callable(node_factory):
            raise TypeError(
                f"node_factory must be callable as node_factory(node_id, peers, config), got {node_factory!r}"
            )
        elif self.bugs or state_machine is not KVStore:
            raise ValueError(
                "give bugs and state_machine to the default servers, or a node_factory, not both"
            )
        self.client_timeout = valid.number("client_timeout", client_timeout, gt=0, unit="seconds")
        self.sim = Simulator(seed, latency=latency, loss=loss, duplication=duplication)
        self.ids: tuple[str, ...] = tuple(f"n{i}" for i in range(1, n + 1))
        self.history: list[HistoryEntry] = []
        self.events: list[tuple[float, str, Any]] = []  # faults injected through the cluster
        self._clients: dict[str, ClientHandle] = {}
        self._disconnected: set[str] = set()
        self.monitor: InvariantMonitor | None = None
        if check:  # after every event at a server
            self.monitor = InvariantMonitor(self._live, self.ids, strict=strict)
            self.sim.observer = self.monitor.observe
        ids, config = self.ids, self.config
        for nid in self.ids:
            self.sim.add_node(nid, lambda node_id: node_factory(node_id, ids, config))

    # ------------------------------------------------------------------
    # Looking
    # ------------------------------------------------------------------
    def _check_server(self, node_id: str, name: str = "node") -> str:
        if node_id not in self.ids:
            raise ValueError(f"{name} must be one of {', '.join(self.ids)}, got {node_id!r}")
        return node_id

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
        if not callable(condition):
            raise TypeError(f"condition must be a callable returning a bool, got {condition!r}")
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
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
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
