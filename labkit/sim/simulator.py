"""A deterministic discrete-event simulator for message-passing systems.

The whole kernel is a heap of ``(time, seq, kind, ...)`` entries in
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

import gc
import heapq
import math
import random
from collections.abc import Callable, Hashable, Iterable
from types import MappingProxyType
from typing import Any, TypeVar

from labkit import validation as valid
from labkit.sim.latency import Fixed, Latency, Uniform, as_latency
from labkit.sim.node import FORGOTTEN, Context, Node
from labkit.sim.trace import DropReason, Kind, Trace, TraceEvent

__all__ = ["Simulator"]

N = TypeVar("N", bound=Node)

# Heap entries are (time, seq, kind, subject, extra); plain ints name the kinds:
#   _DELIVER: subject is the message's SEND row, extra the receiver's incarnation when sent;
#   _TIMER:   subject is the node id, extra the _Timer;
#   _START:   subject is the node id, extra the incarnation to boot;
#   _CALL:    subject is a node id (Simulator.call) or None (Simulator.at), extra the function.
_START, _DELIVER, _TIMER, _CALL = 0, 1, 2, 3

_SEND, _DLV, _DROP, _DUP = Kind.SEND, Kind.DELIVER, Kind.DROP, Kind.DUPLICATE
_TMR, _STA, _NOTE = Kind.TIMER, Kind.START, Kind.STATE
_LOSS = DropReason.LOSS.value
_PART = DropReason.PARTITION.value
_CRASHED = DropReason.CRASHED.value


def _probability(name: str, p: float) -> float:
    return valid.probability(name, p)


def _duration(name: str, value: float) -> float:
    return valid.number(name, value, ge=0, unit="seconds")


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


class _Timer:
    """A timer of node ``node_id`` with an entry in the heap, due at ``armed``; its deadline
    (``due``, tie-broken by ``seq``) may have moved later since, or it may be ``cancelled``.
    The heap entry names this object, so an entry whose timer was replaced finds another
    one (or none) under ``name``."""

    __slots__ = ("node_id", "name", "due", "seq", "armed", "cancelled")

    def __init__(self, node_id: str, name: str, seq: int, due: float) -> None:
        self.node_id, self.name = node_id, name
        self.seq = seq
        self.due = self.armed = due
        self.cancelled = False


class _Host:
    """What the simulator keeps for one node id: the live node (None while
    crashed) and its context, and what outlives crashes: the factory, durable
    storage, the incarnation count and the node's physical clock."""

    __slots__ = ("factory", "node", "ctx", "storage", "incarnation", "timers", "clock")

    def __init__(self, factory: Callable[[str], Node]) -> None:
        self.factory = factory
        self.node: Node | None = None
        self.ctx: Context | None = None
        self.storage: dict[Hashable, Any] = {}
        self.incarnation = 0
        self.timers: dict[str, _Timer] = {}  # by name, each with its entry in the heap (pending or cancelled)
        self.clock = _Clock()


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
        valid.integer("seed", seed)
        valid.boolean("trace", trace)
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0
        self.trace = Trace(keep=trace)
        self._rows = self.trace.rows
        self._queue: list[tuple] = []
        self._seq = 0
        self._msg_seq = 0
        self._hosts: dict[str, _Host] = {}  # every node id, in the order added
        self._peers: tuple[str, ...] = ()
        # Called as observer(node_id, node) after each handler's effects are
        # carried out (start, delivery, timer, call): the Raft invariant monitor.
        # Set it between runs.
        self.observer: Callable[[str, Node], Any] | None = None
        # Network model.
        self._latency: Latency = as_latency(latency)
        self._link_latency: dict[tuple[str, str], Latency] = {}
        self._loss = _probability("loss", loss)
        self._duplication = _probability("duplication", duplication)
        self._group: dict[str, int] = {}  # partition side of each listed node
        self._among: frozenset[str] | None = None  # the nodes a partition splits (None: all)
        self._partitioned = False
        self._cuts: set[tuple[str, str]] = set()
        self._blocking = False  # a partition or a cut is in force
        # No fault at all (no loss, duplication, link latency, partition or cut): sends take the fast path.
        self._plain = not (self._loss or self._duplication)

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
        if node_id in self._hosts:
            raise ValueError(f"node_id {node_id!r} is already in the simulation")
        if not callable(factory):
            raise TypeError(f"factory must be callable as factory(node_id) -> Node, got {factory!r}")
        self._hosts[node_id] = _Host(factory)
        self._peers = tuple(self._hosts)
        for nid, host in self._hosts.items():  # everyone's peer list grows
            if host.ctx is not None:
                host.ctx.peers = tuple(p for p in self._peers if p != nid)
        return self._boot(node_id)  # type: ignore[return-value]

    def _boot(self, node_id: str) -> Node:
        host = self._hosts[node_id]
        node = host.factory(node_id)
        if not isinstance(node, Node):
            raise TypeError(f"factory for {node_id!r} returned {node!r}, which is not a labkit Node")
        rng = random.Random(f"{self.seed}/{node_id}/{host.incarnation}")
        peers = tuple(p for p in self._peers if p != node_id)
        host.node = node
        host.ctx = Context(node_id, peers, rng, MappingProxyType(host.storage), self, known=self._hosts)
        self._push(self.now, _START, node_id, host.incarnation)
        return node

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node id, in the order they were added."""
        return self._peers

    def node(self, node_id: str) -> Node:
        """The live node object (raises if the node is crashed)."""
        node = self._host(node_id).node
        if node is None:
            raise ValueError(f"node {node_id!r} is crashed; restart it first")
        return node

    def is_up(self, node_id: str) -> bool:
        """True unless the node is crashed."""
        return self._host(node_id).node is not None

    def storage(self, node_id: str) -> MappingProxyType:
        """A read-only view of a node's durable storage."""
        return MappingProxyType(self._host(node_id).storage)

    # Read-only views for tools that take a run over (the model checker's
    # explorer, labkit.explore): what is pending, without changing anything.
    def pending_timers(self, node_id: str) -> tuple[str, ...]:
        """The names of the timers pending at ``node_id``, sorted (none while it is crashed)."""
        return tuple(sorted(name for name, t in self._host(node_id).timers.items() if not t.cancelled))

    def timer_due(self, node_id: str, name: str) -> float | None:
        """When timer ``name`` of ``node_id`` fires (virtual time), or None if it is not set.

        Setting a timer again always gives it a new deadline, so a check can tell whether a handler
        restarted it by comparing this before and after (the Raft lab: a granted vote restarts the
        election timer, Figure 2).
        """
        timer = self._host(node_id).timers.get(valid.string("name", name))
        return None if timer is None or timer.cancelled else timer.due

    def in_flight(self) -> list[tuple[str, str, Any]]:
        """The messages the network still holds, as ``(src, dst, message)``, in the order they fall due.

        Messages to a node that crashed after they were sent are left out:
        they will be dropped when they fall due.
        """
        hosts = self._hosts
        due = sorted(e for e in self._queue if e[2] == _DELIVER)
        out = []
        for _, _, _, send_row, inc in due:
            sent = TraceEvent._make(send_row)  # the message's SEND row
            receiver = hosts[sent.dst]
            if receiver.node is not None and receiver.incarnation == inc:
                out.append((sent.src, sent.dst, sent.message))
        return out

    def _host(self, node_id: str, name: str = "node_id") -> _Host:
        host = self._hosts.get(node_id)  # type: ignore[arg-type]
        if host is None:
            known = ", ".join(map(repr, self._hosts)) or "none yet"
            raise ValueError(f"{name} {node_id!r} is not a node of this simulation (nodes: {known})")
        return host

    def _check_node(self, node_id: str, name: str = "node_id") -> None:
        self._host(node_id, name)

    # ------------------------------------------------------------------
    # Running
    # ------------------------------------------------------------------
    def _push(self, time: float, kind: int, subject: Any, extra: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, subject, extra))

    def step(self) -> bool:
        """Process the next event. Returns False when nothing is scheduled."""
        return self.run(max_events=1) == 1

    def run(self, until: float | None = None, *, max_events: int | None = None) -> int:
        """Process events up to virtual time ``until`` (inclusive).

        With ``until=None`` runs until nothing is scheduled, which never
        happens with periodic timers: pass ``max_events`` as a guard.
        Returns the number of events processed. ``now`` ends at ``until``.

        The garbage collector pauses while the run lasts: the trace holds
        every message, and the collector would otherwise rescan it again and
        again as it grows, finding nothing to free. What the run leaves is
        looked at once after it (and every 2**20 events in a very long run, so
        cyclic garbage stays bounded). Pausing changes no result, only speed.
        """
        if until is not None:
            until = _duration("until", until)
            if until < self.now:
                raise ValueError(
                    f"until={until!r} is before the current time {self.now!r}; "
                    "virtual time only moves forward"
                )
        valid.integer("max_events", max_events, ge=0, none=True)
        horizon = math.inf if until is None else until
        limit = -1 if max_events is None else max_events
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            done = 0
            while True:  # in chunks of 2**20 events, so a very long run collects its cyclic garbage
                chunk = self._loop(horizon, 1 << 20 if limit < 0 else min(limit - done, 1 << 20))
                done += chunk
                if chunk < 1 << 20 or done == limit:
                    break
                if paused:
                    gc.collect(0)
        finally:
            if paused:
                gc.enable()
        queue = self._queue
        stopped_early = done == limit and queue and queue[0][0] <= horizon
        if until is not None and not stopped_early:
            self.now = until
        return done

    def _loop(self, horizon: float, limit: int) -> int:
        """The event loop: pop the next event, run the node's handler, carry out what it asked.

        Everything a run does happens here, in order, which is also the
        simulator's hot path (hence the locals and the inlined steps).
        """
        observer = self.observer
        queue, pop, push, hosts, rows, rng = (
            self._queue,
            heapq.heappop,
            heapq.heappush,
            self._hosts,
            self._rows,
            self.rng,
        )
        done = 0
        while done != limit and queue:
            time, _, kind, subject, extra = entry = pop(queue)
            if time > horizon:
                push(queue, entry)  # the first event past the horizon: put it back
                break
            # -- the event: pick the node and run its handler -------------------
            if kind == _DELIVER:
                # The message's SEND row, in TraceEvent's field order.
                sent_at, _, src, _, node_id, mid, msg, _, _, _ = subject
                self.now = time
                done += 1
                host = hosts[node_id]
                node = host.node
                if node is None or host.incarnation != extra:
                    rows.append((time, _DROP, node_id, src, node_id, mid, msg, sent_at, _CRASHED, None))
                    continue
                if self._blocking and self._blocked(src, node_id):
                    rows.append((time, _DROP, node_id, src, node_id, mid, msg, sent_at, _PART, None))
                    continue
                rows.append((time, _DLV, node_id, src, node_id, mid, msg, sent_at, None, None))
                ctx = host.ctx
                ctx.now = time
                try:
                    node.on_message(ctx, src, msg)
                except BaseException:
                    ctx.effects.clear()  # a failed handler asks for nothing
                    raise
            else:
                if kind == _TIMER:
                    node_id, timer = subject, extra
                    host = hosts[node_id]
                    name = timer.name
                    if host.timers.get(name) is not timer:
                        continue  # replaced by an earlier deadline, or the node crashed
                    if timer.cancelled:
                        del host.timers[name]
                        continue
                    if timer.due > time:  # set again for later while this entry waited: move the entry
                        timer.armed = timer.due
                        push(queue, (timer.due, timer.seq, _TIMER, node_id, timer))
                        continue
                    del host.timers[name]
                    rows.append((time, _TMR, node_id, None, None, None, None, None, name, None))
                    node = host.node
                    handler, args = node.on_timer, (name,)  # type: ignore[union-attr]
                elif kind == _START:
                    node_id = subject
                    host = hosts[node_id]
                    node = host.node
                    if host.incarnation != extra or node is None:
                        continue  # crashed before it could boot
                    rows.append((time, _STA, node_id, None, None, None, None, None, None, None))
                    handler, args = node.on_start, ()
                elif subject is not None:  # Simulator.call: fn(ctx) on node `subject`
                    node_id, handler = subject, extra
                    host = hosts[node_id]
                    node, args = host.node, ()
                else:  # Simulator.at: a callback with no node
                    self.now = time
                    done += 1
                    extra(self)
                    continue
                self.now = time
                done += 1
                ctx = host.ctx
                ctx.now = time  # type: ignore[union-attr]
                try:
                    handler(ctx, *args)
                except BaseException:
                    ctx.effects.clear()  # type: ignore[union-attr]
                    raise
            eff = ctx.effects  # type: ignore[union-attr]
            # -- its effects, in the order Effects documents: persist, then send, then timers
            try:
                if eff.persists:
                    store = host.storage
                    store.update(eff.persists)  # in order: the last write of a key wins
                    if eff.forgets:  # a key whose last write is a forget goes
                        for key, value in eff.persists:
                            if value is FORGOTTEN and store.get(key) is FORGOTTEN:
                                del store[key]
                        eff.forgets = False
                    eff.persists.clear()
                if eff.notes:
                    for what, detail in eff.notes:
                        rows.append((time, _NOTE, node_id, None, None, None, None, None, what, detail))
                    eff.notes.clear()
                if eff.sends:
                    plain = self._plain
                    for dst, msg in eff.sends:
                        try:
                            peer = hosts[dst]
                        except KeyError:
                            self._check_node(dst, "dst")  # raises, naming the nodes there are
                        self._msg_seq = mid = self._msg_seq + 1
                        sent = (time, _SEND, node_id, node_id, dst, mid, msg, None, None, None)
                        rows.append(sent)
                        if plain:
                            latency = self._latency
                        elif self._blocking and self._blocked(node_id, dst):
                            rows.append((time, _DROP, dst, node_id, dst, mid, msg, time, _PART, None))
                            continue
                        elif self._loss and rng.random() < self._loss:
                            rows.append((time, _DROP, dst, node_id, dst, mid, msg, time, _LOSS, None))
                            continue
                        else:
                            latency = self._link_latency.get((node_id, dst), self._latency)
                        inc = peer.incarnation  # type: ignore[union-attr]
                        self._seq = seq = self._seq + 1
                        # Uniform, the usual latency, drawn as Uniform._draw does but without a call.
                        if latency.__class__ is Uniform:
                            delay = latency.low + (latency.high - latency.low) * rng.random()
                        else:
                            delay = latency._draw(rng)
                        push(queue, (time + delay, seq, _DELIVER, sent, inc))
                        if not plain and self._duplication and rng.random() < self._duplication:
                            rows.append((time, _DUP, node_id, node_id, dst, mid, msg, None, None, None))
                            self._seq = seq = self._seq + 1
                            push(queue, (time + latency._draw(rng), seq, _DELIVER, sent, inc))
                    eff.sends.clear()
                if eff.timers:
                    # Setting a timer replaces it. One set again for *later* (an election
                    # timeout reset on every heartbeat, a client's retry timer cancelled on
                    # each reply and set on the next request) keeps its heap entry and only
                    # moves its deadline: the entry is pushed on when it comes due (above),
                    # so the heap holds no pile of dead entries. Each set takes a sequence
                    # number as if pushed, so ties order exactly as if every set had pushed
                    # a fresh entry.
                    timers = host.timers
                    for name, delay in eff.timers:
                        timer = timers.get(name)
                        if delay is None:
                            if timer is not None:
                                timer.cancelled = True
                            continue
                        self._seq = seq = self._seq + 1
                        due = time + delay
                        if timer is not None and timer.armed <= due:
                            timer.due, timer.seq, timer.cancelled = due, seq, False
                        else:
                            timers[name] = timer = _Timer(node_id, name, seq, due)
                            push(queue, (due, seq, _TIMER, node_id, timer))
                    eff.timers.clear()
            except BaseException:
                eff.clear()  # the rest of a batch that cannot be carried out is discarded
                raise
            if observer is not None:
                observer(node_id, node)
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
        self._push(time, _CALL, None, fn)

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
        result = []
        self._push(self.now, _CALL, node_id, lambda ctx: result.append(fn(node, ctx)))
        self.run(self.now, max_events=1)  # that call is the one event left at now
        return result[0]

    def _blocked(self, src: str, dst: str) -> bool:
        if self._partitioned and self._group.get(src, -1) != self._group.get(dst, -1):
            among = self._among
            if among is None or (src in among and dst in among):
                return True
        return bool(self._cuts) and (src, dst) in self._cuts

    # ------------------------------------------------------------------
    # Faults: crashes
    # ------------------------------------------------------------------
    def crash(self, node_id: str) -> None:
        """Crash a node: volatile state and timers are lost, storage survives."""
        host = self._host(node_id)
        if host.node is None:
            raise ValueError(f"node {node_id!r} is already crashed")
        host.node = None
        host.incarnation += 1
        host.timers.clear()
        self._rows.append((self.now, Kind.CRASH, node_id, None, None, None, None, None, None, None))

    def restart(self, node_id: str) -> Node:
        """Bring a crashed node back, rebuilt from its durable storage only."""
        host = self._host(node_id)
        if host.node is not None:
            raise ValueError(f"node {node_id!r} is not crashed; crash it before restarting it")
        host.incarnation += 1
        self._rows.append((self.now, Kind.RESTART, node_id, None, None, None, None, None, None, None))
        return self._boot(node_id)

    # ------------------------------------------------------------------
    # Faults: the network
    # ------------------------------------------------------------------
    loss = property(
        lambda self: self._loss, lambda self, p: self.set_loss(p), doc="The probability a message is lost."
    )
    duplication = property(
        lambda self: self._duplication,
        lambda self, p: self.set_duplication(p),
        doc="The probability a message arrives twice.",
    )

    def _fault(self, what: str, **detail: Any) -> None:
        self._plain = not (self._loss or self._duplication or self._link_latency or self._blocking)
        self._rows.append((self.now, Kind.FAULT, None, None, None, None, None, None, what, detail))

    def partition(self, *groups: Iterable[str], among: Iterable[str] | None = None) -> None:
        """Split the network: nodes in different groups cannot talk.

        Nodes not named in any group form one more group together, so
        ``partition(["n1"])`` cuts n1 off from everybody else. ``among``
        limits the split to those nodes (default: every node); the others
        (the clients of a Raft cluster, say) still reach every side. Replaces
        any earlier partition; directed cuts stay.
        """
        nodes = list(self._hosts) if among is None else list(among)
        for nid in nodes:
            self._check_node(nid, "among member")

        def member(nid: str, name: str) -> str:
            self._check_node(nid, name)
            if nid not in nodes:
                raise ValueError(f"{name} {nid!r} must be one of {', '.join(nodes)}")
            return nid

        listed = [sorted(g) for g in valid.partition_groups(groups, member)]
        group_of = {nid: i for i, g in enumerate(listed) for nid in g}
        self._group = group_of
        self._among = None if among is None else frozenset(nodes)
        self._partitioned = self._blocking = True
        rest = [n for n in nodes if n not in group_of]
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
        self._blocking = True
        self._fault("cut", src=src, dst=dst)

    def uncut(self, src: str, dst: str) -> None:
        """Restore the directed link ``src -> dst``."""
        self._check_node(src, "src")
        self._check_node(dst, "dst")
        self._cuts.discard((src, dst))
        self._blocking = self._partitioned or bool(self._cuts)
        self._fault("uncut", src=src, dst=dst)

    def heal(self) -> None:
        """Remove every partition and directed cut."""
        self._group = {}
        self._among = None
        self._partitioned = self._blocking = False
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
        nodes = self._peers if self._among is None else [n for n in self._peers if n in self._among]
        if not self._partitioned:
            return [list(nodes)]
        sides: dict[int, list[str]] = {}
        for nid in nodes:
            sides.setdefault(self._group.get(nid, -1), []).append(nid)
        return [sides[k] for k in sorted(sides, key=lambda k: (k < 0, k))]

    def set_loss(self, p: float) -> None:
        """Set the probability in [0, 1] that a message is lost."""
        self._loss = _probability("loss", p)
        self._fault("loss", p=self._loss)

    def set_duplication(self, p: float) -> None:
        """Set the probability in [0, 1] that a message arrives twice."""
        self._duplication = _probability("duplication", p)
        self._fault("duplication", p=self._duplication)

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
        clock = self._host(node_id).clock
        valid.number("offset", offset, unit="seconds", none=True)
        valid.number("drift_ppm", drift_ppm, gt=-1e6, none=True, note="a clock cannot run backwards")
        # Re-anchor at now so a change of drift does not make the clock jump.
        clock.offset = clock.read(self.now) - self.now if offset is None else float(offset)
        clock.since = self.now
        if drift_ppm is not None:
            clock.drift = drift_ppm * 1e-6
        self._fault("clock", node=node_id, offset=clock.offset, drift_ppm=clock.drift * 1e6)

    def local_time(self, node_id: str) -> float:
        """What the node's physical clock reads now."""
        return self._host(node_id).clock.read(self.now)

    def __repr__(self) -> str:
        up = sum(1 for h in self._hosts.values() if h.node is not None)
        trace = f"{len(self.trace)} rows" if self.trace.keep else "off"
        return (
            f"Simulator(seed={self.seed}, now={self.now:.3f}s, nodes={len(self._hosts)} "
            f"({up} up), pending={len(self._queue)}, trace={trace})"
        )
