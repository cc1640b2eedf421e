"""The base of every broadcast node: the application's two verbs and a link layer.

Kleppmann (*Distributed Systems* lecture notes, §4.2) separates what the
network does from what the application sees: a node *receives* messages from
the network, and a broadcast algorithm decides when to *deliver* each one to
the application, possibly holding it back first. Cachin, Guerraoui &
Rodrigues (*Introduction to Reliable and Secure Distributed Programming*,
2011, ch. 3) write every algorithm as handlers of the same two events.

:class:`BroadcastNode` is a :class:`~labkit.sim.Node` that gives a subclass:

* ``broadcast(ctx, body)``: the application's request (call it through
  ``Simulator.call``); it numbers the message and calls the subclass's
  :meth:`~BroadcastNode.on_broadcast`;
* :meth:`~BroadcastNode.on_receive`: a frame arrived from a peer;
* :meth:`~BroadcastNode.deliver`: hand a message to the application (it is
  appended to :attr:`~BroadcastNode.delivered` and noted in the trace);
* :meth:`~BroadcastNode.send` / :meth:`~BroadcastNode.send_to_peers`.

A subclass is the algorithm and nothing else: a few rules, each one handler.

The link layer (mechanics, not an algorithm): with ``retransmit=None`` a frame
is sent once and the simulator may lose, duplicate or reorder it. With
``retransmit=seconds`` every frame travels in a numbered :class:`Packet`, is
acknowledged, resent every ``retransmit`` seconds until its
:class:`Ack` arrives, and handed to ``on_receive`` once however many copies
arrive: Cachin et al.'s *perfect links* (ch. 2), built from retransmission
and duplicate elimination. They deliver eventually once a partition heals, and
never to a crashed node. Nodes are crash-stop: a crashed node stays down.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

from labkit import validation as valid
from labkit.broadcast.messages import Ack, Msg, Packet
from labkit.clocks import VectorClock
from labkit.sim import Context, Node

__all__ = ["RETRANSMIT_TIMER", "BroadcastNode", "EventKind", "OnDeliver"]

RETRANSMIT_TIMER = "retransmit"


class EventKind(StrEnum):
    """What a node did with a message: the name of the note it leaves in the trace."""

    BROADCAST = "broadcast"
    DELIVER = "deliver"


OnDeliver = Callable[["BroadcastNode", Context, Msg], None]


class BroadcastNode(Node):
    """A node that broadcasts and delivers :class:`Msg` messages; subclass it.

    ``on_deliver(node, ctx, msg)``, if given, is the application: it runs
    after every delivery (and may broadcast, e.g. reply to a question).
    """

    def __init__(
        self, node_id: str, *, retransmit: float | None = None, on_deliver: OnDeliver | None = None
    ) -> None:
        super().__init__(node_id)
        self.retransmit = valid.number("retransmit", retransmit, gt=0, unit="seconds", none=True)
        self.on_deliver = valid.function(
            "on_deliver", on_deliver, "callable as on_deliver(node, ctx, msg)", none=True
        )
        self.delivered: list[Msg] = []  # in delivery order
        self._delivered_ids: set[tuple[str, int]] = set()
        self._next_seq = 1
        # The link layer (used only with retransmit): packets sent and not yet
        # acknowledged, and the packets already received from each peer.
        self._next_packet = 1
        self._unacked: dict[int, tuple[str, Any]] = {}
        self._received: set[tuple[str, int]] = set()
        self._timer_armed = False

    # -- the application's side -------------------------------------------------
    def broadcast(self, ctx: Context, body: Any) -> Msg:
        """Broadcast ``body`` to every node (this one included); returns the message."""
        msg = Msg(self.node_id, self._next_seq, body, self.dependencies())
        self._next_seq += 1
        ctx.note(EventKind.BROADCAST.value, msg=msg)
        self.on_broadcast(ctx, msg)
        return msg

    def deliver(self, ctx: Context, msg: Msg) -> None:
        """Hand ``msg`` to the application: record it, note it, run ``on_deliver``."""
        self.delivered.append(msg)
        self._delivered_ids.add(msg.id)
        ctx.note(EventKind.DELIVER.value, msg=msg)
        if self.on_deliver is not None:
            self.on_deliver(self, ctx, msg)

    def has_delivered(self, msg: Msg) -> bool:
        """Whether ``msg`` (by its ``(origin, seq)``) was delivered here."""
        return msg.id in self._delivered_ids

    @property
    def bodies(self) -> list[Any]:
        """The bodies of the delivered messages, in delivery order."""
        return [m.body for m in self.delivered]

    # -- what an algorithm overrides ---------------------------------------------
    def dependencies(self) -> VectorClock | None:
        """What to stamp a new message with as ``deps`` (only causal broadcast does)."""
        return None

    def on_broadcast(self, ctx: Context, msg: Msg) -> None:
        """The application broadcasts ``msg``."""
        raise NotImplementedError(f"{type(self).__name__} must say what to do on broadcast")

    def on_receive(self, ctx: Context, src: str, frame: Any) -> None:
        """A frame from ``src`` arrived."""
        raise NotImplementedError(f"{type(self).__name__} must say what to do when a frame arrives")

    # -- sending ---------------------------------------------------------------
    def send(self, ctx: Context, dst: str, frame: Any) -> None:
        """Send ``frame`` to ``dst`` (through the link layer when retransmitting)."""
        if self.retransmit is None:
            ctx.send(dst, frame)
            return
        n = self._next_packet
        self._next_packet += 1
        self._unacked[n] = (dst, frame)
        ctx.send(dst, Packet(n, frame))
        if not self._timer_armed:
            ctx.set_timer(RETRANSMIT_TIMER, self.retransmit)
            self._timer_armed = True

    def send_to_peers(self, ctx: Context, frame: Any, *, skip: tuple[str, ...] = ()) -> None:
        """Send ``frame`` to every other node except those in ``skip``."""
        for peer in ctx.peers:
            if peer not in skip:
                self.send(ctx, peer, frame)

    # -- the driver's side (link-layer mechanics) ----------------------------------
    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Ack):
            self._unacked.pop(msg.n, None)
            return
        if isinstance(msg, Packet):
            ctx.send(src, Ack(msg.n))  # acknowledge every copy: an earlier ack may be lost
            if (src, msg.n) in self._received:
                return  # a duplicate or a retransmission already received
            self._received.add((src, msg.n))
            msg = msg.payload
        self.on_receive(ctx, src, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name != RETRANSMIT_TIMER:
            raise ValueError(f"{self.node_id} has no timer {name!r}")
        self._timer_armed = False
        for n, (dst, frame) in self._unacked.items():
            ctx.send(dst, Packet(n, frame))
        if self._unacked:
            ctx.set_timer(RETRANSMIT_TIMER, self.retransmit)  # type: ignore[arg-type]
            self._timer_armed = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.node_id!r}, delivered={[str(m) for m in self.delivered]})"
