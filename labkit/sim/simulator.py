"""A deterministic discrete-event simulator for message-passing systems.

The whole kernel is a heap of ``(time, seq, kind, payload)`` entries in
virtual seconds (the design simpy uses): ``seq`` is a counter that breaks ties
so two runs with the same seed pop events in exactly the same order. Every
random choice (latency, loss, duplication, each node's ``ctx.random``) comes
from generators seeded from the one ``seed``. Same seed, same inputs, same
trace, byte for byte.

Faults belong to the simulator, not to the protocol: latency, loss,
duplication, partitions and directed link cuts, crashes and restarts, and
skewed or drifting node clocks. All of them can be changed while a run is
paused (between ``run`` calls or from a scheduled callback).

Crash semantics: a crashed node loses its volatile state (the node object is
dropped) and its timers; messages in flight to it are dropped when they fall
due. Its durable storage (what it wrote with ``ctx.persist``) survives, and
:meth:`Simulator.restart` builds a fresh node with the node's factory, which
recovers from that storage in ``on_start``.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Hashable, Iterable
from types import MappingProxyType
from typing import Any, TypeVar

from labkit.sim.latency import Fixed, Latency, as_latency
from labkit.sim.node import Context, Node
from labkit.sim.trace import DropReason, Kind, Trace

__all__ = ["Simulator"]

N = TypeVar("N", bound=Node)

# Heap entry kinds. Plain ints keep the hot path cheap.
_START, _DELIVER, _TIMER, _CALL = 0, 1, 2, 3

_SEND, _DLV, _DROP, _DUP = Kind.SEND, Kind.DELIVER, Kind.DROP, Kind.DUPLICATE
_LOSS = DropReason.LOSS.value
_PART = DropReason.PARTITION.value
_CRASHED = DropReason.CRASHED.value


def _probability(name: str, p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)):
        raise TypeError(f"{name} must be a probability between 0 and 1, got {p!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, got {p!r}")
    return float(p)


def _duration(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


class _Clock:
    """A node's physical clock: ``true_time + offset`` where the offset itself
    grows by ``drift_ppm`` microseconds per second (DDIA ch. 8, "Unreliable
    Clocks"). Changing the drift keeps the clock continuous."""

    __slots__ = ("offset", "drift", "since")

    def __init__(self) -> None:
        self.offset = 0.0  # offset at true time `since`
        self.drift = 0.0  # seconds gained per true second
        self.since = 0.0

    def read(self, now: float) -> float:
        return now + self.offset + self.drift * (now - self.since)


class Simulator:
    """Run sans-IO nodes over a simulated network in virtual time.

    >>> sim = Simulator(seed=1)
    >>> sim.add_node("a", MyNode)   # any factory: node_id -> Node
    >>> sim.run_for(2.0)            # virtual seconds
    >>> sim.trace.to_frame()        # everything that happened

    Parameters
    ----------
    seed:
        Seeds every random choice of the run.
    latency:
        Default one-way delay: a :class:`~labkit.sim.latency.Latency` or
        seconds. Override per link with :meth:`set_latency`.
    loss, duplication:
        Probabilities in [0, 1] that a message is lost / delivered twice.
    trace:
        Keep the record of every event in :attr:`trace` (the default).
        ``False`` keeps none, for long runs read only through their own
        metrics; reading the trace then raises.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        latency: Latency | float = Fixed(0.01),
        loss: float = 0.0,
        duplication: float = 0.0,
        trace: bool = True,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if not isinstance(trace, bool):
            raise TypeError(f"trace must be True or False, got {trace!r}")
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0
        self.trace = Trace(keep=trace)
        self._queue: list[tuple] = []
        self._seq = 0
        self._msg_seq = 0
        # Nodes and their per-incarnation runtime state.
        self._factories: dict[str, Callable[[str], Node]] = {}
        self._nodes: dict[str, Node | None] = {}  # None while crashed
        self._ctx: dict[str, Context] = {}
        self._storage: dict[str, dict[Hashable, Any]] = {}
        self._incarnation: dict[str, int] = {}
        self._timers: dict[str, dict[str, int]] = {}
        self._clocks: dict[str, _Clock] = {}
        self._peers: tuple[str, ...] = ()
        # Network model.
        self._latency: Latency = as_latency(latency)
        self._link_latency: dict[tuple[str, str], Latency] = {}
        self.loss = _probability("loss", loss)
        self.duplication = _probability("duplication", duplication)
        self._group: dict[str, int] = {}  # partition side of each listed node
        self._partitioned = False
        self._cuts: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------
    # Nodes
    # ------------------------------------------------------------------
    def add_node(self, node_id: str, factory: Callable[[str], N]) -> N:
        """Add a node built by ``factory(node_id)``; it starts at ``now``.

        The factory is kept: :meth:`restart` calls it again to rebuild the
        node after a crash.
        """
        if not isinstance(node_id, str) or not node_id:
            raise TypeError(f"node_id must be a non-empty str, got {node_id!r}")
        if node_id in self._nodes:
            raise ValueError(f"node_id {node_id!r} is already in the simulation")
        if not callable(factory):
            raise TypeError(f"factory must be callable as factory(node_id) -> Node, got {factory!r}")
        self._factories[node_id] = factory
        self._storage[node_id] = {}
        self._incarnation[node_id] = 0
        self._timers[node_id] = {}
        self._clocks[node_id] = _Clock()
        self._nodes[node_id] = None
        self._peers = tuple(self._nodes)
        for nid in self._nodes:  # everyone's peer list grows
            if nid in self._ctx:
                self._ctx[nid].peers = tuple(p for p in self._peers if p != nid)
        node = self._boot(node_id)
        return node  # type: ignore[return-value]

    def _boot(self, node_id: str) -> Node:
        node = self._factories[node_id](node_id)
        if not isinstance(node, Node):
            raise TypeError(f"factory for {node_id!r} returned {node!r}, which is not a labkit Node")
        inc = self._incarnation[node_id]
        rng = random.Random(f"{self.seed}/{node_id}/{inc}")
        peers = tuple(p for p in self._peers if p != node_id)
        self._nodes[node_id] = node
        self._ctx[node_id] = Context(
            node_id, peers, rng, MappingProxyType(self._storage[node_id]), self, known=self._nodes
        )
        self._push(self.now, _START, (node_id, inc))
        return node

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node id, in the order they were added."""
        return self._peers

    def node(self, node_id: str) -> Node:
        """The live node object (raises if the node is crashed)."""
        self._check_node(node_id)
        node = self._nodes[node_id]
        if node is None:
            raise ValueError(f"node {node_id!r} is crashed; restart it first")
        return node

    def is_up(self, node_id: str) -> bool:
        """True unless the node is crashed."""
        self._check_node(node_id)
        return self._nodes[node_id] is not None

    def storage(self, node_id: str) -> MappingProxyType:
        """A read-only view of a node's durable storage."""
        self._check_node(node_id)
        return MappingProxyType(self._storage[node_id])

    def _check_node(self, node_id: str, name: str = "node_id") -> None:
        if node_id not in self._nodes:
            known = ", ".join(map(repr, self._nodes)) or "none yet"
            raise ValueError(f"{name} {node_id!r} is not a node of this simulation (nodes: {known})")

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------
    def _push(self, time: float, kind: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, payload))

    def step(self) -> bool:
        """Process the next event. Returns False when nothing is scheduled."""
        if not self._queue:
            return False
        time, _, kind, payload = heapq.heappop(self._queue)
        self.now = time
        if kind == _DELIVER:
            self._deliver(payload)
        elif kind == _TIMER:
            self._fire(payload)
        elif kind == _START:
            self._start(payload)
        else:
            payload(self)
        return True

    def run(self, until: float | None = None, *, max_events: int | None = None) -> int:
        """Process events up to virtual time ``until`` (inclusive).

        With ``until=None`` runs until nothing is scheduled, which never
        happens with periodic timers: pass ``max_events`` as a guard.
        Returns the number of events processed. ``now`` ends at ``until``.
        """
        if until is not None:
            until = _duration("until", until)
            if until < self.now:
                raise ValueError(
                    f"until={until!r} is before the current time {self.now!r}; "
                    "virtual time only moves forward"
                )
        if max_events is not None and (
            isinstance(max_events, bool) or not isinstance(max_events, int) or max_events < 0
        ):
            raise ValueError(f"max_events must be an int >= 0, got {max_events!r}")
        queue, step = self._queue, self.step
        done = 0
        while queue:
            if until is not None and queue[0][0] > until:
                break
            if max_events is not None and done >= max_events:
                return done
            step()
            done += 1
        if until is not None:
            self.now = until
        return done

    def run_for(self, duration: float, *, max_events: int | None = None) -> int:
        """Run for ``duration`` virtual seconds from now."""
        return self.run(self.now + _duration("duration", duration), max_events=max_events)

    def at(self, time: float, fn: Callable[[Simulator], Any]) -> None:
        """Call ``fn(sim)`` at virtual time ``time`` (for fault schedules)."""
        time = _duration("time", time)
        if time < self.now:
            raise ValueError(f"time={time!r} is in the past (now={self.now!r})")
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(sim), got {fn!r}")
        self._push(time, _CALL, fn)

    def after(self, delay: float, fn: Callable[[Simulator], Any]) -> None:
        """Call ``fn(sim)`` ``delay`` virtual seconds from now."""
        self.at(self.now + _duration("delay", delay), fn)

    def call(self, node_id: str, fn: Callable[[Any, Context], Any]) -> Any:
        """Run ``fn(node, ctx)`` on a live node now and apply its effects.

        This is how outside code (a client, a notebook) talks to a node:
        ``sim.call("n1", lambda node, ctx: node.submit(ctx, cmd))``.
        Everything already due at ``now`` (such as nodes starting) runs first.
        """
        self.run(self.now)
        node = self.node(node_id)
        ctx = self._ctx[node_id]
        try:
            result = fn(node, ctx)
        except BaseException:
            ctx.effects.clear()  # a failed call asks for nothing
            raise
        self._apply(node_id, ctx)
        return result

    # ------------------------------------------------------------------
    # Event handling
    # ------------------------------------------------------------------
    def _start(self, payload: tuple[str, int]) -> None:
        node_id, inc = payload
        if self._incarnation[node_id] != inc or self._nodes[node_id] is None:
            return  # crashed before it could boot
        self.trace.rows.append((self.now, Kind.START, node_id, None, None, None, None, None, None, None))
        ctx = self._ctx[node_id]
        try:
            self._nodes[node_id].on_start(ctx)  # type: ignore[union-attr]
        except BaseException:
            ctx.effects.clear()
            raise
        self._apply(node_id, ctx)

    def _deliver(self, pkt: tuple) -> None:
        mid, src, dst, msg, sent_at, inc = pkt
        node = self._nodes[dst]
        rows = self.trace.rows
        if node is None or self._incarnation[dst] != inc:
            rows.append((self.now, _DROP, dst, src, dst, mid, msg, sent_at, _CRASHED, None))
            return
        # The guard skips the partition lookup on a whole network (the usual case).
        if (self._partitioned or self._cuts) and self._blocked(src, dst):
            rows.append((self.now, _DROP, dst, src, dst, mid, msg, sent_at, _PART, None))
            return
        rows.append((self.now, _DLV, dst, src, dst, mid, msg, sent_at, None, None))
        ctx = self._ctx[dst]
        try:
            node.on_message(ctx, src, msg)
        except BaseException:
            ctx.effects.clear()
            raise
        self._apply(dst, ctx)

    def _fire(self, payload: tuple[str, str, int]) -> None:
        node_id, name, token = payload
        timers = self._timers[node_id]
        if timers.get(name) != token:
            return  # cancelled, replaced, or the node crashed
        del timers[name]
        self.trace.rows.append((self.now, Kind.TIMER, node_id, None, None, None, None, None, name, None))
        ctx = self._ctx[node_id]
        try:
            self._nodes[node_id].on_timer(ctx, name)  # type: ignore[union-attr]
        except BaseException:
            ctx.effects.clear()
            raise
        self._apply(node_id, ctx)

    def _apply(self, node_id: str, ctx: Context) -> None:
        """Carry out one handler's effects: persist, then send, then timers.

        Exception-safe: if an effect cannot be carried out, the rest of the
        batch is discarded before the error propagates, so nothing stale is
        left in the node's context for its next handler.
        """
        eff = ctx.effects
        try:
            if eff.persists:
                store = self._storage[node_id]
                for key, value in eff.persists:
                    store[key] = value
                eff.persists.clear()
            if eff.notes:
                rows = self.trace.rows
                for what, detail in eff.notes:
                    rows.append((self.now, Kind.STATE, node_id, None, None, None, None, None, what, detail))
                eff.notes.clear()
            if eff.sends:
                send = self._send
                for dst, msg in eff.sends:
                    send(node_id, dst, msg)
                eff.sends.clear()
            if eff.timers:
                timers = self._timers[node_id]
                for name, delay in eff.timers:
                    if delay is None:
                        timers.pop(name, None)
                    else:
                        self._seq += 1
                        timers[name] = self._seq
                        heapq.heappush(
                            self._queue, (self.now + delay, self._seq, _TIMER, (node_id, name, self._seq))
                        )
                eff.timers.clear()
        except BaseException:
            eff.clear()
            raise

    def _send(self, src: str, dst: str, msg: Any) -> None:
        if dst not in self._nodes:
            self._check_node(dst, "dst")
        self._msg_seq = mid = self._msg_seq + 1
        now = self.now
        rows = self.trace.rows
        rows.append((now, _SEND, src, src, dst, mid, msg, None, None, None))
        if (self._partitioned or self._cuts) and self._blocked(src, dst):
            rows.append((now, _DROP, dst, src, dst, mid, msg, now, _PART, None))
            return
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            rows.append((now, _DROP, dst, src, dst, mid, msg, now, _LOSS, None))
            return
        latency = self._link_latency.get((src, dst), self._latency) if self._link_latency else self._latency
        pkt = (mid, src, dst, msg, now, self._incarnation[dst])
        self._seq += 1
        heapq.heappush(self._queue, (now + latency.sample(rng), self._seq, _DELIVER, pkt))
        if self.duplication and rng.random() < self.duplication:
            rows.append((now, _DUP, src, src, dst, mid, msg, None, None, None))
            self._seq += 1
            heapq.heappush(self._queue, (now + latency.sample(rng), self._seq, _DELIVER, pkt))

    def _blocked(self, src: str, dst: str) -> bool:
        if self._partitioned and self._group.get(src, -1) != self._group.get(dst, -1):
            return True
        return bool(self._cuts) and (src, dst) in self._cuts

    # ------------------------------------------------------------------
    # Faults: crashes
    # ------------------------------------------------------------------
    def crash(self, node_id: str) -> None:
        """Crash a node: volatile state and timers are lost, storage survives."""
        self._check_node(node_id)
        if self._nodes[node_id] is None:
            raise ValueError(f"node {node_id!r} is already crashed")
        self._nodes[node_id] = None
        self._incarnation[node_id] += 1
        self._timers[node_id].clear()
        self.trace.rows.append((self.now, Kind.CRASH, node_id, None, None, None, None, None, None, None))

    def restart(self, node_id: str) -> Node:
        """Bring a crashed node back, rebuilt from its durable storage only."""
        self._check_node(node_id)
        if self._nodes[node_id] is not None:
            raise ValueError(f"node {node_id!r} is not crashed; crash it before restarting it")
        self._incarnation[node_id] += 1
        self.trace.rows.append((self.now, Kind.RESTART, node_id, None, None, None, None, None, None, None))
        return self._boot(node_id)

    # ------------------------------------------------------------------
    # Faults: the network
    # ------------------------------------------------------------------
    def _fault(self, what: str, **detail: Any) -> None:
        self.trace.rows.append((self.now, Kind.FAULT, None, None, None, None, None, None, what, detail))

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: nodes in different groups cannot talk.

        Nodes not named in any group form one more group together, so
        ``partition(["n1"])`` cuts n1 off from everybody else. Replaces any
        earlier partition; directed cuts stay.
        """
        if not groups:
            raise ValueError("partition needs at least one group of node ids")
        group_of: dict[str, int] = {}
        listed = []
        for i, group in enumerate(groups):
            if isinstance(group, str):
                raise TypeError(
                    f"each group must be a list of node ids, got the string {group!r}; write [{group!r}]"
                )
            members = list(group)
            if not members:
                raise ValueError(f"group {i} is empty; every group needs at least one node")
            for nid in members:
                self._check_node(nid, f"group {i} member")
                if nid in group_of:
                    raise ValueError(
                        f"node {nid!r} is in group {group_of[nid]} and group {i}; "
                        "a node can be on one side of a partition only"
                    )
                group_of[nid] = i
            listed.append(sorted(members))
        self._group = group_of
        self._partitioned = True
        rest = [n for n in self._nodes if n not in group_of]
        self._fault("partition", groups=listed + ([rest] if rest else []))

    def isolate(self, node_id: str) -> None:
        """Cut one node off from all others (a partition of one)."""
        self.partition([node_id])

    def cut(self, src: str, dst: str) -> None:
        """Cut the directed link ``src -> dst`` (the reverse still works)."""
        self._check_node(src, "src")
        self._check_node(dst, "dst")
        if src == dst:
            raise ValueError(f"src and dst must differ, got {src!r} twice")
        self._cuts.add((src, dst))
        self._fault("cut", src=src, dst=dst)

    def uncut(self, src: str, dst: str) -> None:
        """Restore the directed link ``src -> dst``."""
        self._check_node(src, "src")
        self._check_node(dst, "dst")
        self._cuts.discard((src, dst))
        self._fault("uncut", src=src, dst=dst)

    def heal(self) -> None:
        """Remove every partition and directed cut."""
        self._group = {}
        self._partitioned = False
        self._cuts.clear()
        self._fault("heal")

    def can_reach(self, src: str, dst: str) -> bool:
        """Whether a message sent now from src would pass the partition/cuts."""
        self._check_node(src, "src")
        self._check_node(dst, "dst")
        return not self._blocked(src, dst)

    @property
    def partitions(self) -> list[list[str]]:
        """The current partition as lists of node ids (one list if none)."""
        if not self._partitioned:
            return [list(self._nodes)]
        sides: dict[int, list[str]] = {}
        for nid in self._nodes:
            sides.setdefault(self._group.get(nid, -1), []).append(nid)
        return [sides[k] for k in sorted(sides, key=lambda k: (k < 0, k))]

    def set_loss(self, p: float) -> None:
        """Set the probability in [0, 1] that a message is lost."""
        self.loss = _probability("loss", p)
        self._fault("loss", p=self.loss)

    def set_duplication(self, p: float) -> None:
        """Set the probability in [0, 1] that a message arrives twice."""
        self.duplication = _probability("duplication", p)
        self._fault("duplication", p=self.duplication)

    def set_latency(self, latency: Latency | float, src: str | None = None, dst: str | None = None) -> None:
        """Set the delay distribution, for every link or for ``src -> dst``.

        Give both ``src`` and ``dst`` to override one directed link, neither
        to change the default.
        """
        lat = as_latency(latency)
        if (src is None) != (dst is None):
            raise ValueError("give both src and dst to override one link, or neither for all links")
        if src is None:
            self._latency = lat
        else:
            self._check_node(src, "src")
            self._check_node(dst, "dst")  # type: ignore[arg-type]
            self._link_latency[(src, dst)] = lat  # type: ignore[index]
        self._fault("latency", src=src, dst=dst, latency=repr(lat))

    def latency(self, src: str | None = None, dst: str | None = None) -> Latency:
        """The delay distribution in force for ``src -> dst`` (neither: the default)."""
        if (src is None) != (dst is None):
            raise ValueError("give both src and dst to ask about one link, or neither for the default")
        if src is None:
            return self._latency
        self._check_node(src, "src")
        self._check_node(dst, "dst")  # type: ignore[arg-type]
        return self._link_latency.get((src, dst), self._latency)  # type: ignore[arg-type]

    # ------------------------------------------------------------------
    # Faults: clocks
    # ------------------------------------------------------------------
    def set_clock(self, node_id: str, *, offset: float | None = None, drift_ppm: float | None = None) -> None:
        """Skew a node's physical clock.

        ``offset`` (seconds, may be negative) sets how far the clock is from
        true time now; ``drift_ppm`` sets how fast it runs away (parts per
        million: 100 ppm gains 0.1 ms per second). Typical quartz clocks drift
        by up to about 200 ppm.
        """
        self._check_node(node_id)
        clock = self._clocks[node_id]
        for name, value in (("offset", offset), ("drift_ppm", drift_ppm)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if drift_ppm is not None and drift_ppm <= -1e6:
            raise ValueError(
                f"drift_ppm must be > -1,000,000 (a clock cannot run backwards), got {drift_ppm!r}"
            )
        # Re-anchor at now so a change of drift does not make the clock jump.
        clock.offset = clock.read(self.now) - self.now if offset is None else float(offset)
        clock.since = self.now
        if drift_ppm is not None:
            clock.drift = drift_ppm * 1e-6
        self._fault("clock", node=node_id, offset=clock.offset, drift_ppm=clock.drift * 1e6)

    def local_time(self, node_id: str) -> float:
        """What the node's physical clock reads now."""
        self._check_node(node_id)
        return self._clocks[node_id].read(self.now)

    def __repr__(self) -> str:
        up = sum(1 for n in self._nodes.values() if n is not None)
        trace = f"{len(self.trace)} rows" if self.trace.keep else "off"
        return (
            f"Simulator(seed={self.seed}, now={self.now:.3f}s, nodes={len(self._nodes)} "
            f"({up} up), pending={len(self._queue)}, trace={trace})"
        )
