"""Best-effort, reliable, FIFO and causal broadcast: each a few rules.

The delivery guarantees are Kleppmann's (*Distributed Systems* lecture notes,
§4.2) and the algorithms his §4.3 and Cachin, Guerraoui & Rodrigues,
*Introduction to Reliable and Secure Distributed Programming* (2011), ch. 3:

* :class:`BestEffortBroadcast`: send to everyone, deliver what arrives
  (Cachin et al.'s *Basic Broadcast*). A message reaches the others only if
  its sender stays up long enough for every copy to get through.
* :class:`ReliableBroadcast`: the first time a node receives a message it
  sends it on to everyone else, then delivers it (*eager reliable
  broadcast*). If one correct node delivers a message, all do, even when
  the sender crashed halfway through sending.
* :class:`FifoBroadcast`: reliable broadcast, plus: deliver the messages of
  each sender in the order it sent them (sequence numbers; hold back a
  message until its predecessors from the same sender are delivered).
* :class:`CausalBroadcast`: reliable broadcast, plus: stamp each message with
  the vector of messages its sender had delivered, and hold it back until
  the receiver has delivered all of those (Kleppmann's vector clock
  algorithm; Cachin et al.'s *Waiting Causal Broadcast*).

Every node delivers its own messages to itself at once. The total order
broadcasts are in :mod:`labkit.broadcast.total_order`.
"""

from __future__ import annotations

from typing import Any

from labkit.broadcast.messages import Msg
from labkit.broadcast.node import BroadcastNode, OnDeliver
from labkit.clocks import VectorClock
from labkit.sim import Context

__all__ = [
    "BestEffortBroadcast",
    "CausalBroadcast",
    "FifoBroadcast",
    "HoldBackBroadcast",
    "ReliableBroadcast",
]


class BestEffortBroadcast(BroadcastNode):
    """Send to every node; deliver each message the first time it arrives."""

    def on_broadcast(self, ctx: Context, msg: Msg) -> None:
        # Rule 1: send the message to every other node and deliver it here.
        self.send_to_peers(ctx, msg)
        self.deliver(ctx, msg)

    def on_receive(self, ctx: Context, src: str, frame: Any) -> None:
        # Rule 2: deliver a message the first time it arrives (the network may duplicate it).
        if not self.has_delivered(frame):
            self.deliver(ctx, frame)


class ReliableBroadcast(BroadcastNode):
    """Eager reliable broadcast: pass every new message on to everyone, then deliver it."""

    def __init__(
        self, node_id: str, *, retransmit: float | None = None, on_deliver: OnDeliver | None = None
    ) -> None:
        super().__init__(node_id, retransmit=retransmit, on_deliver=on_deliver)
        self.received: set[tuple[str, int]] = set()  # ids of the messages seen so far

    def on_broadcast(self, ctx: Context, msg: Msg) -> None:
        # Rule 1: send the message to every other node, and take it in here.
        self.received.add(msg.id)
        self.send_to_peers(ctx, msg)
        self.on_reliable_delivery(ctx, msg)

    def on_receive(self, ctx: Context, src: str, frame: Any) -> None:
        # Rule 2: the first time a message arrives, send it on to every node
        # but the one it came from and its origin, then take it in.
        if frame.id in self.received:
            return
        self.received.add(frame.id)
        self.send_to_peers(ctx, frame, skip=(src, frame.origin))
        self.on_reliable_delivery(ctx, frame)

    def on_reliable_delivery(self, ctx: Context, msg: Msg) -> None:
        """Reliable broadcast delivers ``msg`` (once per message). Plain reliable broadcast
        hands it to the application; FIFO and causal broadcast hold it back first."""
        self.deliver(ctx, msg)


class HoldBackBroadcast(ReliableBroadcast):
    """Reliable broadcast with a hold-back queue: a message waits until :meth:`ready`.

    ``delivered_from`` counts, per origin, the messages delivered here; a
    subclass's :meth:`ready` decides from it whether a waiting message may go.
    """

    def __init__(
        self, node_id: str, *, retransmit: float | None = None, on_deliver: OnDeliver | None = None
    ) -> None:
        super().__init__(node_id, retransmit=retransmit, on_deliver=on_deliver)
        self.delivered_from = VectorClock()  # origin -> how many of its messages were delivered here
        self.held: list[Msg] = []  # received, not yet delivered

    def ready(self, msg: Msg) -> bool:
        """Whether ``msg`` may be delivered now."""
        raise NotImplementedError(f"{type(self).__name__} must say when a held-back message is ready")

    def on_reliable_delivery(self, ctx: Context, msg: Msg) -> None:
        if msg.origin == self.node_id:
            # A node's own message is ready at once: it depends only on what was delivered here.
            self._deliver_now(ctx, msg)
            return
        # Hold the message back; then deliver every held message that is ready,
        # until none is (delivering one can make another ready).
        self.held.append(msg)
        while (nxt := next((m for m in self.held if self.ready(m)), None)) is not None:
            self.held.remove(nxt)
            self._deliver_now(ctx, nxt)

    def _deliver_now(self, ctx: Context, msg: Msg) -> None:
        self.delivered_from = self.delivered_from.increment(msg.origin)
        self.deliver(ctx, msg)


class FifoBroadcast(HoldBackBroadcast):
    """Deliver each sender's messages in the order it sent them."""

    def ready(self, msg: Msg) -> bool:
        # The rule: a message is ready when it is the next one from its origin.
        return msg.seq == self.delivered_from[msg.origin] + 1


class CausalBroadcast(HoldBackBroadcast):
    """Deliver a message only after every message its sender had delivered when sending it."""

    def dependencies(self) -> VectorClock:
        # Rule 1: stamp each new message with what this node has delivered
        # (its own earlier messages included: it delivered them at once).
        return self.delivered_from

    def ready(self, msg: Msg) -> bool:
        # Rule 2: a message is ready once everything it depends on is delivered here.
        return msg.deps is not None and msg.deps <= self.delivered_from
