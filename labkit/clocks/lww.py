"""A replicated last-writer-wins register, stamped by a clock of your choice.

Every replica accepts writes and multicasts them to the others; on receipt a
replica keeps the write with the largest timestamp and discards the other.
This is last-writer-wins (LWW), the rule Cassandra uses with client or
server wall-clock timestamps (DDIA ch. 5, "Last write wins (discarding
concurrent writes)" and ch. 8, "Timestamps for ordering events").  What
"largest" means is the :class:`Stamping`:

* ``PHYSICAL``: the writer's physical clock.  A replica whose clock runs
  ahead stamps its writes "in the future", so a later write from a replica
  with a correct clock loses, silently, even when its writer had *seen* the
  earlier value;
* ``LAMPORT`` and ``HLC``: causally later writes always win (the clock
  condition), but of two concurrent writes one is still dropped;
* ``VECTOR``: a write replaces only what happened before it; concurrent
  writes are all kept as siblings (Dynamo, SOSP 2007, §4.4) for the
  application to reconcile.

Ties are broken by the writer's node id, so every replica makes the same
choice and they converge.  :func:`run_lww` runs a scheduled list of writes
and reports which writes survived and which were *lost*: discarded although
no surviving write happened after them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.clocks.stamped import ClockedNode, Envelope, EventKind, Stamps, configure_clocks
from labkit.sim import Context, Simulator, schedule_at_nodes
from labkit.sim.latency import Latency


class Stamping(Enum):
    """Which clock orders the writes of an :class:`LWWReplica`."""

    PHYSICAL = "physical"
    LAMPORT = "lamport"
    HLC = "hlc"
    VECTOR = "vector"


@dataclass(frozen=True, slots=True)
class Write:
    """One client write: its value, where and when (true time) it was made, and its stamps."""

    value: Any
    origin: str
    true_time: float
    stamps: Stamps

    def happened_before(self, other: Write) -> bool:
        """Causality between writes, from their vector stamps."""
        return self.stamps.vector < other.stamps.vector

    def __str__(self) -> str:
        return f"{self.value}@{self.origin}"


# The total order LWW uses for each stamping; the node id breaks ties.
_ORDER_KEY: dict[Stamping, Callable[[Write], tuple]] = {
    Stamping.PHYSICAL: lambda w: (w.stamps.physical, w.origin),
    Stamping.LAMPORT: lambda w: (w.stamps.lamport.time, w.origin),
    Stamping.HLC: lambda w: (w.stamps.hlc.l, w.stamps.hlc.c, w.origin),
}


_VERSIONS_KEY = "versions"


class LWWReplica(ClockedNode):
    """One replica of a single register.

    Holds ``versions``: one :class:`Write` for the LWW stampings, one or
    more concurrent siblings for ``VECTOR``.
    """

    def __init__(self, node_id: str, stamping: Stamping) -> None:
        super().__init__(node_id)
        self.stamping = valid.instance("stamping", stamping, Stamping)
        # Invariant: in VECTOR mode no version happened before another one;
        # otherwise there is at most one version.
        self.versions: tuple[Write, ...] = ()
        self._seen: set = set()  # vector stamps of the writes applied or discarded

    def write(self, ctx: Context, value: Any) -> Write:
        """A client write at this replica: stamp, apply locally, multicast.

        The write is one send event, so the write's stamps are the message's.
        """
        stamps = self._event(ctx, EventKind.SEND, None, f"write {value}")
        w = Write(value, self.node_id, ctx.now, stamps)
        self._apply_write(ctx, w)
        ctx.broadcast(Envelope(stamps, w))
        return w

    def receive_label(self, env: Envelope) -> str:
        return f"recv {env.payload.value}" if isinstance(env.payload, Write) else ""

    def on_payload(self, ctx: Context, src: str, payload: Any, stamps: Stamps) -> None:
        if isinstance(payload, Write):
            self._apply_write(ctx, payload)

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        self.versions = ctx.storage.get(_VERSIONS_KEY, ())

    def _apply_write(self, ctx: Context, w: Write) -> None:
        vc = w.stamps.vector  # a write event's vector stamp identifies it
        if vc in self._seen:
            return  # a duplicate delivery: nothing new
        self._seen.add(vc)
        if self.stamping is Stamping.VECTOR:
            if any(vc <= v.stamps.vector for v in self.versions):
                ctx.note("discard", write=w, kept=self.versions)
                return
            self._keep(ctx, (*(v for v in self.versions if not v.stamps.vector < vc), w))
            return
        key = _ORDER_KEY[self.stamping]
        if self.versions and key(w) <= key(self.versions[0]):
            # LWW: the incoming write is older by this clock; drop it silently
            # (the note exists only so the notebook can point at it).
            ctx.note("discard", write=w, kept=self.versions)
            return
        self._keep(ctx, (w,))

    def _keep(self, ctx: Context, versions: tuple[Write, ...]) -> None:
        self.versions = versions
        ctx.persist(_VERSIONS_KEY, versions)  # the register survives a crash

    @property
    def values(self) -> tuple[Any, ...]:
        """The value(s) a read here returns (several only for concurrent VECTOR siblings)."""
        return tuple(v.value for v in self.versions)


@dataclass(frozen=True, slots=True)
class LWWRun:
    """What :func:`run_lww` saw."""

    sim: Simulator
    stamping: Stamping
    writes: tuple[Write, ...]  # in true-time order
    final: dict[str, tuple[Any, ...]]  # node -> values a read returns at the end
    survivors: tuple[Write, ...]  # writes still held by some replica
    lost: tuple[Write, ...]  # discarded though no surviving write happened after them

    @property
    def converged(self) -> bool:
        """Every replica holds the same versions."""
        replicas: list[LWWReplica] = [self.sim.node(nid) for nid in self.sim.nodes]  # type: ignore[misc]
        held = [frozenset(w.stamps.vector for w in node.versions) for node in replicas]
        return all(h == held[0] for h in held)

    @property
    def latest_in_real_time(self) -> Write:
        """The write made last by true time (no node can know this)."""
        return self.writes[-1]


def run_lww(
    stamping: Stamping,
    writes: Sequence[tuple[float, str, Any]],
    *,
    nodes: Sequence[str] = ("A", "B", "C"),
    offsets: Mapping[str, float] | None = None,
    drifts: Mapping[str, float] | None = None,
    latency: Latency | float = 0.02,
    seed: int = 0,
    settle: float = 1.0,
) -> LWWRun:
    """Run client ``writes`` ``(true_time, node, value)`` against replicas ``nodes``.

    Clock ``offsets`` (seconds) and ``drifts`` (ppm) are set at time 0.  The
    run continues ``settle`` seconds after the last write so that every
    write reaches every replica.
    """
    valid.instance("stamping", stamping, Stamping)
    if isinstance(nodes, str) or len(nodes) < 1 or len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes must be a sequence of distinct node ids, got {nodes!r}")
    if not writes:
        raise ValueError("writes must list at least one (true_time, node, value) write")
    valid.number("settle", settle, ge=0, unit="seconds")
    sim = Simulator(seed, latency=latency)
    for nid in nodes:
        sim.add_node(nid, lambda n: LWWReplica(n, stamping))
    configure_clocks(sim, offsets, drifts)
    made: list[Write] = []
    last = schedule_at_nodes(
        sim,
        nodes,
        writes,
        (),
        lambda node, ctx, value: made.append(node.write(ctx, value)),
        name="writes",
        fields=("true_time", "node", "value"),
    )
    sim.run(last + settle)
    made.sort(key=lambda w: w.true_time)
    final = {nid: sim.node(nid).values for nid in nodes}
    # A write event's vector stamp identifies it uniquely.
    held = {v.stamps.vector for nid in nodes for v in sim.node(nid).versions}
    survivors = tuple(w for w in made if w.stamps.vector in held)
    lost = tuple(
        w for w in made if w.stamps.vector not in held and not any(w.happened_before(s) for s in survivors)
    )
    return LWWRun(sim, stamping, tuple(made), final, survivors, lost)
