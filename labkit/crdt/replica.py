"""CRDT replicas on the simulator, and runs that check they converge.

Two ways to replicate (Shapiro et al., *Conflict-free Replicated Data
Types*, SSS 2011, §2.2 and §2.3):

* :class:`GossipReplica`, *state-based*: a replica applies its updates
  locally and, every ``interval`` seconds, sends its whole state to every
  peer, which merges it in (anti-entropy). It needs little from the network:
  lost, duplicated, reordered and delayed states are all fine, because merge
  is commutative, associative and idempotent, as long as every update
  eventually reaches every replica inside some state (Shapiro et al. assume
  this eventual delivery). The cost is sending whole states.
* :class:`OpReplica`, *operation-based*: a replica broadcasts each update's
  operation with :class:`~labkit.broadcast.CausalBroadcast` over
  retransmitting links, and every replica applies each operation exactly
  once, in causal order. Operations are small, and need not be idempotent
  (a counter can be a plain int), but the broadcast must be reliable and
  causal.

Updates are small frozen objects such as ``Increment()``, ``Add("milk")`` or
``Edit("hello")``: called as ``update(state, replica, clock)`` they return the
new state (``clock`` is the replica's own physical clock, which only the
last-writer-wins register uses). :func:`run_replicas` runs a schedule of
updates under faults and reports whether every replica ended in the same
state; :func:`random_faults` draws partitions for convergence tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.broadcast import CausalBroadcast, Msg
from labkit.crdt.counters import GCounter, PNCounter
from labkit.crdt.orset import ORSet
from labkit.crdt.registers import LWWRegister, MVRegister
from labkit.crdt.rga import RGA
from labkit.sim import Context, Latency, Node, Simulator, Uniform, schedule_at_nodes

__all__ = [
    "Add",
    "Assign",
    "Decrement",
    "Delete",
    "Edit",
    "GossipReplica",
    "Increment",
    "Insert",
    "OpReplica",
    "Remove",
    "ReplicaRun",
    "State",
    "random_faults",
    "run_replicas",
    "value_of",
]

GOSSIP_TIMER = "gossip"
DEFAULT_LATENCY = Uniform(0.005, 0.05)  # one-way: 5 to 50 ms, so messages overtake each other


# -- updates -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Increment:
    """Add ``n`` to a counter (a :class:`GCounter` or :class:`PNCounter`)."""

    n: int = 1

    def __post_init__(self) -> None:
        valid.integer("n", self.n, ge=1)

    def __call__(self, state: GCounter | PNCounter, replica: str, clock: float) -> Any:
        return state.increment(replica, self.n)

    def __str__(self) -> str:
        return f"+{self.n}"


@dataclass(frozen=True, slots=True)
class Decrement:
    """Subtract ``n`` from a :class:`PNCounter`."""

    n: int = 1

    def __post_init__(self) -> None:
        valid.integer("n", self.n, ge=1)

    def __call__(self, state: PNCounter, replica: str, clock: float) -> PNCounter:
        return state.decrement(replica, self.n)

    def __str__(self) -> str:
        return f"-{self.n}"


@dataclass(frozen=True, slots=True)
class Assign:
    """Write ``value`` to a register (an LWW register is stamped with the replica's clock)."""

    value: Any

    def __call__(self, state: LWWRegister | MVRegister, replica: str, clock: float) -> Any:
        if isinstance(state, LWWRegister):
            return state.assign(self.value, clock, replica)
        return state.assign(self.value, replica)

    def __str__(self) -> str:
        return f"write {self.value}"


@dataclass(frozen=True, slots=True)
class Add:
    """Add ``element`` to an :class:`ORSet`."""

    element: Any

    def __call__(self, state: ORSet, replica: str, clock: float) -> ORSet:
        return state.add(self.element, replica)

    def __str__(self) -> str:
        return f"add {self.element}"


@dataclass(frozen=True, slots=True)
class Remove:
    """Remove ``element`` from an :class:`ORSet` (as far as this replica has seen it)."""

    element: Any

    def __call__(self, state: ORSet, replica: str, clock: float) -> ORSet:
        return state.remove(self.element)

    def __str__(self) -> str:
        return f"remove {self.element}"


@dataclass(frozen=True, slots=True)
class Insert:
    """Insert ``items`` (a str: its characters) at ``index`` of an :class:`RGA`."""

    index: int
    items: Any

    def __call__(self, state: RGA, replica: str, clock: float) -> RGA:
        return state.insert(self.index, self.items, replica)

    def __str__(self) -> str:
        return f"insert {self.items!r} at {self.index}"


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``count`` items from ``index`` of an :class:`RGA`."""

    index: int
    count: int = 1

    def __call__(self, state: RGA, replica: str, clock: float) -> RGA:
        return state.delete(self.index, self.count)

    def __str__(self) -> str:
        return f"delete {self.count} at {self.index}"


@dataclass(frozen=True, slots=True)
class Edit:
    """Make an :class:`RGA` text read ``text`` (the changed span is replaced)."""

    text: str

    def __call__(self, state: RGA, replica: str, clock: float) -> RGA:
        return state.edit(self.text, replica)

    def __str__(self) -> str:
        return f"edit to {self.text!r}"


def value_of(state: Any) -> Any:
    """What a read returns: ``state.value`` for a CRDT, the state itself otherwise."""
    if isinstance(state, RGA):
        return state.text if all(isinstance(v, str) for v in state.value) else state.value
    if isinstance(state, ORSet):
        return sorted(state.value, key=repr)
    return getattr(state, "value", state)


Update = Callable[[Any, str, float], Any]
Merge = Callable[[Any, Any], Any]


def _crdt_merge(a: Any, b: Any) -> Any:
    return a.merge(b)


# -- state-based ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class State:
    """A gossip message: the sender's whole state."""

    state: Any

    def __repr__(self) -> str:
        return f"State({value_of(self.state)!r})"


class GossipReplica(Node):
    """A state-based replica: update locally, gossip the whole state, merge what arrives.

    ``merge(a, b)`` defaults to ``a.merge(b)``; pass your own to replicate a
    plain value (a dict, a number) with your own merge function.
    """

    def __init__(
        self, node_id: str, initial: Any, *, merge: Merge | None = None, interval: float = 0.1
    ) -> None:
        super().__init__(node_id)
        valid.function("merge", merge, "callable as merge(a, b) -> state", none=True)
        self.merge = merge or _crdt_merge
        self.interval = valid.number("interval", interval, gt=0, unit="seconds")
        self.initial = initial
        self.state = initial

    def on_start(self, ctx: Context) -> None:
        self.state = ctx.storage.get("state", self.initial)  # the state survives a crash
        ctx.set_timer(GOSSIP_TIMER, self.interval)

    def update(self, ctx: Context, update: Update) -> Any:
        """Apply a local update (``update(state, replica, clock) -> state``)."""
        self._set(ctx, update(self.state, self.node_id, ctx.clock()), str(update))
        return self.state

    def on_timer(self, ctx: Context, name: str) -> None:
        # Rule 1: every interval, send the whole state to every peer (anti-entropy).
        ctx.broadcast(State(self.state))
        ctx.set_timer(GOSSIP_TIMER, self.interval)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        # Rule 2: merge a state that arrives into this one.
        if not isinstance(msg, State):
            raise TypeError(f"{self.node_id} expects State messages, got {msg!r}")
        merged = self.merge(self.state, msg.state)
        if merged != self.state:
            self._set(ctx, merged, f"merge from {src}")

    def _set(self, ctx: Context, state: Any, why: str) -> None:
        self.state = state
        ctx.persist("state", state)
        ctx.note("value", value=value_of(state), why=why)

    @property
    def value(self) -> Any:
        return value_of(self.state)

    def __repr__(self) -> str:
        return f"GossipReplica({self.node_id!r}, {self.value!r})"


# -- operation-based -----------------------------------------------------------
class OpReplica(CausalBroadcast):
    """An operation-based replica: broadcast each operation causally, apply each once.

    ``apply(state, op, replica) -> state`` applies operation ``op`` made at
    ``replica``. Updates given to :meth:`update` are operations; the
    replica's clock is not used.
    """

    def __init__(
        self, node_id: str, initial: Any, apply: Callable[[Any, Any, str], Any], *, retransmit: float = 0.05
    ) -> None:
        super().__init__(node_id, retransmit=retransmit)
        self.apply = valid.function("apply", apply, "callable as apply(state, op, replica) -> state")
        self.state = initial

    def update(self, ctx: Context, op: Any) -> Any:
        """Broadcast operation ``op``; it is applied here at once (causal broadcast delivers to self)."""
        self.broadcast(ctx, op)
        return self.state

    def deliver(self, ctx: Context, msg: Msg) -> None:
        super().deliver(ctx, msg)
        self.state = self.apply(self.state, msg.body, msg.origin)
        ctx.note("value", value=value_of(self.state), why=f"{msg.body} from {msg.origin}")

    @property
    def value(self) -> Any:
        return value_of(self.state)


# -- runs -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReplicaRun:
    """What :func:`run_replicas` saw at the end of the run."""

    sim: Simulator
    states: dict[str, Any]  # replica -> final state

    @property
    def values(self) -> dict[str, Any]:
        """replica -> what a read returns there."""
        return {n: value_of(s) for n, s in self.states.items()}

    @property
    def converged(self) -> bool:
        """Every replica holds the same state."""
        states = list(self.states.values())
        return all(s == states[0] for s in states[1:])


def run_replicas(
    replica: Callable[[str], Node],
    updates: Sequence[tuple[float, str, Any]],
    *,
    nodes: Sequence[str] = ("A", "B", "C"),
    seed: int = 0,
    latency: Latency | float = DEFAULT_LATENCY,
    loss: float = 0.0,
    duplication: float = 0.0,
    faults: Sequence[tuple[float, Callable[[Simulator], Any]]] = (),
    clock_offsets: dict[str, float] | None = None,
    settle: float = 1.0,
) -> ReplicaRun:
    """Run ``updates`` (``(time, replica, update)``) on replicas built by ``replica(node_id)``.

    ``faults`` are ``(time, fn(sim))`` pairs (partition, heal, crash...);
    ``clock_offsets`` skews the replicas' physical clocks (seconds). The run
    ends ``settle`` seconds after the last update or fault; heal the network
    before that if you want the replicas to converge.
    """
    if isinstance(nodes, str) or len(nodes) < 1 or len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes must be distinct replica ids, got {nodes!r}")
    valid.function("replica", replica, "a factory node_id -> Node")
    settle = valid.number("settle", settle, ge=0, unit="seconds")
    sim = Simulator(seed, latency=latency, loss=loss, duplication=duplication)
    for nid in nodes:
        sim.add_node(nid, replica)
    for nid, offset in (clock_offsets or {}).items():
        sim.set_clock(nid, offset=offset)
    last = schedule_at_nodes(
        sim, nodes, updates, faults, lambda node, ctx, update: node.update(ctx, update),
        name="updates", fields=("time", "replica", "update"),
    )  # fmt: skip
    sim.run(last + settle)
    states = {nid: sim.node(nid).state for nid in nodes if sim.is_up(nid)}  # type: ignore[attr-defined]
    return ReplicaRun(sim, states)


def random_faults(
    nodes: Sequence[str], rng: random.Random, *, end: float, partitions: int = 3
) -> list[tuple[float, Callable[[Simulator], Any]]]:
    """``partitions`` random network splits at random times before ``end``, and a heal at ``end``.

    Each split puts every node on a random side (A or B); some splits leave
    everyone on one side, which is no split at all.
    """
    faults: list[tuple[float, Callable[[Simulator], Any]]] = []
    for _ in range(partitions):
        t = rng.uniform(0, end)
        side_a = [n for n in nodes if rng.random() < 0.5]
        if 0 < len(side_a) < len(nodes):
            faults.append((t, lambda s, a=side_a: s.partition(a)))
        else:
            faults.append((t, lambda s: s.heal()))
    faults.sort(key=lambda f: f[0])
    faults.append((end, lambda s: s.heal()))
    return faults
