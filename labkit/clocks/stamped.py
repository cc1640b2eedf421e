"""Processes that stamp every event with every clock, on the simulator.

Lamport's model (CACM 1978, §2): a process is a sequence of events, each a
local event, a send or a receive.  :class:`ClockedNode` keeps a Lamport
clock, a vector clock and a hybrid logical clock side by side and advances
all three on each event by the rules of their papers, stamping sends with
an :class:`Envelope`.  Each event is reported to the trace as a ``"event"``
note carrying its :class:`Stamps` together with the node's physical clock
reading, so a notebook can put the clocks next to each other on one
space-time diagram (:func:`clock_events` turns the notes into a table).

:class:`Chatter` is the workload used to watch clocks drift apart: each node
does local events and sends to random peers at random (seeded) times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.clocks.hlc import HLC, ClockOffsetError, check_max_offset
from labkit.clocks.lamport import LamportClock
from labkit.clocks.vector import VectorClock
from labkit.sim import Context, Node, Simulator, Trace
from labkit.sim.latency import Latency

EVENT_NOTE = "event"  # the name of the trace note every clocked event writes
MAX_CHATTER_EVENTS = 1_000_000  # run_chatter refuses runs expected to be longer (they would take minutes)


class EventKind(Enum):
    """Lamport's three kinds of event."""

    LOCAL = "local"
    SEND = "send"
    RECEIVE = "receive"


@dataclass(frozen=True, slots=True)
class Stamps:
    """Every clock's value at one event."""

    physical: float  # the node's own (possibly skewed) physical clock reading
    lamport: LamportClock
    vector: VectorClock
    hlc: HLC


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message as it travels: the sender's stamps and the payload."""

    stamps: Stamps
    payload: Any = None


_CLOCKS_KEY = "clocks"


class ClockedNode(Node):
    """A node that advances Lamport, vector and hybrid clocks on every event.

    Subclasses call :meth:`local_event`, :meth:`send_stamped` and
    :meth:`receive_event` (done for them by
    :meth:`on_message` when the message is an :class:`Envelope`; they then
    get :meth:`on_payload`).  The clocks are persisted on every event so a
    restarted node never hands out a smaller logical time than before.

    ``max_offset`` (seconds, optional) bounds the skew the node tolerates: a
    message whose HLC time is further ahead of the node's clock is refused
    (noted as ``"rejected"`` in the trace, and not processed).
    """

    def __init__(self, node_id: str, *, max_offset: float | None = None) -> None:
        super().__init__(node_id)
        self.max_offset = check_max_offset(max_offset)
        self.stamps = Stamps(0.0, LamportClock(), VectorClock(), HLC())

    # -- clock rules ---------------------------------------------------------
    def _event(self, ctx: Context, kind: EventKind, received: Stamps | None, label: str) -> Stamps:
        pt = ctx.clock()
        s = self.stamps
        if received is None:  # local or send: IR1 / increment / Fig. 5 send
            stamps = Stamps(pt, s.lamport.tick(), s.vector.increment(self.node_id), s.hlc.tick(pt))
        else:  # receive: IR2 / merge then increment / Fig. 5 receive
            # The HLC goes first: if it refuses the message, no clock moves.
            hlc = s.hlc.receive(received.hlc, pt, max_offset=self.max_offset)
            vector = s.vector.merge(received.vector).increment(self.node_id)
            stamps = Stamps(pt, s.lamport.receive(received.lamport), vector, hlc)
        self.stamps = stamps
        ctx.persist(_CLOCKS_KEY, stamps)
        ctx.note(EVENT_NOTE, kind=kind, stamps=stamps, label=label, received=received)
        return stamps

    def local_event(self, ctx: Context, label: str = "") -> Stamps:
        """Record a local event; returns its stamps."""
        return self._event(ctx, EventKind.LOCAL, None, label)

    def send_stamped(self, ctx: Context, dst: str, payload: Any = None, label: str = "") -> Stamps:
        """One send event: stamp and send ``payload`` to ``dst``."""
        stamps = self._event(ctx, EventKind.SEND, None, label)
        ctx.send(dst, Envelope(stamps, payload))
        return stamps

    def receive_event(self, ctx: Context, env: Envelope, label: str = "") -> Stamps:
        """One receive event for ``env``; returns the new stamps."""
        return self._event(ctx, EventKind.RECEIVE, env.stamps, label)

    # -- handlers ----------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        saved = ctx.storage.get(_CLOCKS_KEY)
        if saved is not None:
            self.stamps = saved

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Envelope):
            try:
                stamps = self.receive_event(ctx, msg, self.receive_label(msg))
            except ClockOffsetError as exc:
                ctx.note("rejected", src=src, ahead=msg.stamps.hlc.l - ctx.clock(), reason=str(exc))
                return
            self.on_payload(ctx, src, msg.payload, stamps)

    def receive_label(self, env: Envelope) -> str:
        """The label of the receive event for ``env`` (override to name it)."""
        return ""

    def on_payload(self, ctx: Context, src: str, payload: Any, stamps: Stamps) -> None:
        """Handle a received payload; ``stamps`` are the receive event's."""


class Chatter(ClockedNode):
    """Local events and sends to random peers, at exponential random intervals.

    ``rate`` is events per second per node; ``send_prob`` the chance that an
    event is a send rather than a local event.
    """

    def __init__(
        self, node_id: str, rate: float = 5.0, send_prob: float = 0.5, *, max_offset: float | None = None
    ) -> None:
        super().__init__(node_id, max_offset=max_offset)
        self.rate = valid.number("rate", rate, gt=0, unit="events per second")
        self.send_prob = valid.probability("send_prob", send_prob)

    def on_start(self, ctx: Context) -> None:
        super().on_start(ctx)
        ctx.set_timer("act", ctx.random.expovariate(self.rate))

    def on_timer(self, ctx: Context, name: str) -> None:
        if ctx.peers and ctx.random.random() < self.send_prob:
            self.send_stamped(ctx, ctx.random.choice(ctx.peers))
        else:
            self.local_event(ctx)
        ctx.set_timer("act", ctx.random.expovariate(self.rate))


def configure_clocks(
    sim: Simulator,
    offsets: Mapping[str, float] | None = None,
    drifts: Mapping[str, float] | None = None,
) -> None:
    """Set each named node's clock offset (s) and drift (ppm) at the current time."""
    valid.instance("sim", sim, Simulator)
    valid.instance("offsets", offsets, Mapping, none=True)
    valid.instance("drifts", drifts, Mapping, none=True)
    for nid, off in (offsets or {}).items():
        sim.set_clock(nid, offset=off)
    for nid, ppm in (drifts or {}).items():
        sim.set_clock(nid, drift_ppm=ppm)


def run_chatter(
    n_nodes: int = 3,
    *,
    duration: float = 5.0,
    seed: int = 0,
    rate: float = 5.0,
    send_prob: float = 0.5,
    offsets: Mapping[str, float] | None = None,
    drifts: Mapping[str, float] | None = None,
    latency: Latency | float = 0.02,
    max_offset: float | None = None,
) -> Simulator:
    """Run :class:`Chatter` on nodes ``n1..nN`` and return the finished simulator.

    ``max_offset``: the skew bound each node enforces (see :class:`ClockedNode`).
    """
    valid.integer("n_nodes", n_nodes, ge=1, le=26)
    valid.number("duration", duration, ge=0, unit="seconds")
    valid.number("rate", rate, gt=0, unit="events per second")
    valid.probability("send_prob", send_prob)
    check_max_offset(max_offset)
    events = n_nodes * rate * duration
    most = f"<= {MAX_CHATTER_EVENTS:,} events"
    valid.require(events <= MAX_CHATTER_EVENTS, "n_nodes * rate * duration", most, events)
    sim = Simulator(seed, latency=latency)
    for i in range(1, n_nodes + 1):
        sim.add_node(f"n{i}", lambda nid: Chatter(nid, rate, send_prob, max_offset=max_offset))
    configure_clocks(sim, offsets, drifts)
    sim.run(duration)
    return sim


def clock_events(trace: Trace):  # -> pandas.DataFrame
    """One row per clocked event, in order.

    Columns: ``time`` (true time), ``node``, ``kind`` (``"local"``,
    ``"send"``, ``"receive"``), ``label``, ``physical`` (the node's clock),
    ``lamport`` (int), ``vector`` (a :class:`VectorClock`), ``hlc`` (an
    :class:`HLC`), ``hlc_l``, ``hlc_c``, ``hlc_minus_physical`` and
    ``sent_vector`` (on a receive, the vector stamp of the matching send,
    which identifies that send event; otherwise None).
    """
    import pandas as pd

    valid.instance("trace", trace, Trace)
    rows = []
    for ev in trace.notes(EVENT_NOTE):
        s: Stamps = ev.detail["stamps"]
        sent = None if ev.detail["received"] is None else ev.detail["received"].vector
        rows.append((ev.time, ev.node, ev.detail["kind"].value, ev.detail["label"], s.physical, s.lamport.time,
                     s.vector, s.hlc, s.hlc.l, s.hlc.c, s.hlc.l - s.physical, sent))  # fmt: skip
    cols = ["time", "node", "kind", "label", "physical", "lamport", "vector", "hlc", "hlc_l", "hlc_c"]
    return pd.DataFrame.from_records(rows, columns=[*cols, "hlc_minus_physical", "sent_vector"])
