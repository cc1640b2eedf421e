"""Total order broadcast: every node delivers the same messages in the same order.

Two ways to get one order (Kleppmann, *Distributed Systems* lecture notes,
§4.2 for the guarantee, §4.3 and §6 for the algorithms):

* :class:`SequencerBroadcast`, the *single leader* approach: every message
  goes to one node, the sequencer, which numbers the messages in the order
  it takes them in and sends each numbered message to everyone; nodes
  deliver in number order. Kleppmann's version sends messages to the leader
  with FIFO broadcast, so the order keeps each sender's own order (*FIFO-total
  order*); here the sequencer takes each sender's messages in sequence-number
  order. The sequencer is a single point of failure: if it crashes, nothing
  is delivered any more.
* :class:`RaftBroadcast`: the same with the sequencer replaced by a Raft log
  (Ongaro & Ousterhout, §5). Total order broadcast and consensus are
  equivalent (Kleppmann §6.1; Cachin et al. 2011, ch. 6): the log *is* the
  total order, and Raft elects a new leader when the old one fails. Each
  node keeps one message of its own in flight at a time, so each sender's
  messages enter the log in the order it sent them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from labkit import validation as valid
from labkit.broadcast.messages import Forward, Msg, Sequenced
from labkit.broadcast.node import BroadcastNode, OnDeliver
from labkit.clocks import VectorClock
from labkit.raft import RaftConfig, RaftNode, Role, StateMachine
from labkit.sim import Context

__all__ = ["RETRY_TIMER", "SLOW_NETWORK", "RaftBroadcast", "SequencerBroadcast"]

RETRY_TIMER = "retry"
# Raft's timing for a network whose one-way delays reach 100 ms or more: the election
# timeout must stay well above a round trip, or elections never settle (Raft §5.6).
SLOW_NETWORK = RaftConfig(election_timeout=(0.4, 0.8), heartbeat_interval=0.05)


class SequencerBroadcast(BroadcastNode):
    """Total order by a fixed sequencer node (``sequencer``, one of the nodes)."""

    def __init__(
        self,
        node_id: str,
        *,
        sequencer: str,
        retransmit: float | None = None,
        on_deliver: OnDeliver | None = None,
    ) -> None:
        super().__init__(node_id, retransmit=retransmit, on_deliver=on_deliver)
        self.sequencer = valid.string("sequencer", sequencer)
        # At the sequencer: the next number to hand out, and per origin how
        # many of its messages have been numbered (they are numbered in order).
        self.next_number = 1
        self.numbered_from = VectorClock()
        self.waiting: list[Msg] = []
        # At every node: the number of the next message to deliver, and the
        # numbered messages that arrived before their turn.
        self.next_to_deliver = 1
        self.held: dict[int, Msg] = {}

    def on_broadcast(self, ctx: Context, msg: Msg) -> None:
        # Rule 1: send the message to the sequencer.
        if self.node_id == self.sequencer:
            self.number(ctx, msg)
        else:
            self.send(ctx, self.sequencer, msg)

    def on_receive(self, ctx: Context, src: str, frame: Any) -> None:
        if isinstance(frame, Sequenced):
            self.on_sequenced(ctx, frame)
        else:
            self.number(ctx, frame)

    def number(self, ctx: Context, msg: Msg) -> None:
        # Rule 2 (the sequencer): give each message the next number, taking each
        # sender's messages in the order it sent them, and send it to everyone.
        if msg.seq <= self.numbered_from[msg.origin] or msg in self.waiting:
            return  # numbered already (a duplicate)
        self.waiting.append(msg)
        while (
            m := next((w for w in self.waiting if w.seq == self.numbered_from[w.origin] + 1), None)
        ) is not None:
            self.waiting.remove(m)
            self.numbered_from = self.numbered_from.increment(m.origin)
            numbered = Sequenced(self.next_number, m)
            self.next_number += 1
            self.send_to_peers(ctx, numbered)
            self.on_sequenced(ctx, numbered)

    def on_sequenced(self, ctx: Context, numbered: Sequenced) -> None:
        # Rule 3 (every node): deliver the numbered messages in number order.
        if numbered.number < self.next_to_deliver:
            return  # delivered already (a duplicate)
        self.held[numbered.number] = numbered.msg
        while self.next_to_deliver in self.held:
            msg = self.held.pop(self.next_to_deliver)
            self.next_to_deliver += 1
            self.deliver(ctx, msg)


class RaftBroadcast(BroadcastNode):
    """Total order on a Raft log: broadcast = append to the log, deliver = apply.

    ``nodes`` are all the nodes of the cluster (this one included); ``config``
    the Raft timing (default :data:`SLOW_NETWORK`); ``retry`` how often a node asks again for its oldest
    message to be appended while it is not delivered (the leader may have
    changed, or the request been lost).
    """

    def __init__(
        self,
        node_id: str,
        *,
        nodes: Iterable[str],
        config: RaftConfig | None = None,
        retry: float = 0.1,
        on_deliver: OnDeliver | None = None,
    ) -> None:
        super().__init__(node_id, on_deliver=on_deliver)
        config = SLOW_NETWORK if config is None else valid.instance("config", config, RaftConfig)
        # Its messages are delivered from the commands Raft applies (raft.applied), kept by no state machine:
        # a snapshot would drop them undelivered, so log compaction (§7) is refused here, not at a snapshot.
        valid.require(
            config.snapshot_threshold is None,
            "config.snapshot_threshold",
            "None (RaftBroadcast does not compact its log)",
            config.snapshot_threshold,
        )
        self.raft = RaftNode(node_id, tuple(nodes), config, state_machine=StateMachine)
        self.retry = valid.number("retry", retry, gt=0, unit="seconds")
        self.outbox: list[Msg] = []  # this node's messages not yet delivered, oldest first
        self._applied = 0  # how many of raft.applied have been looked at

    def on_start(self, ctx: Context) -> None:
        self.raft.on_start(ctx)
        ctx.set_timer(RETRY_TIMER, self.retry)

    def on_broadcast(self, ctx: Context, msg: Msg) -> None:
        # Rule 1: queue the message; the oldest one of this node goes to the leader.
        self.outbox.append(msg)
        if len(self.outbox) == 1:
            self.ask_leader(ctx)

    def ask_leader(self, ctx: Context) -> None:
        raft, msg = self.raft, self.outbox[0]
        if raft.role is Role.LEADER:
            raft.submit(ctx, msg)
        elif raft.leader_id is not None:
            ctx.send(raft.leader_id, Forward(msg))

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Forward):
            # Rule 2 (the leader): append a forwarded message to the log.
            if self.raft.role is Role.LEADER:
                self.raft.submit(ctx, msg.msg)
        else:
            self.raft.on_message(ctx, src, msg)
        self.deliver_committed(ctx)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == RETRY_TIMER:
            if self.outbox:
                self.ask_leader(ctx)
            ctx.set_timer(RETRY_TIMER, self.retry)
        else:
            self.raft.on_timer(ctx, name)
        self.deliver_committed(ctx)

    def deliver_committed(self, ctx: Context) -> None:
        # Rule 3: deliver the committed messages in log order, each once (a retried
        # request can put a message in the log twice); then send the next of ours.
        applied = self.raft.applied
        while self._applied < len(applied):
            msg = applied[self._applied]
            self._applied += 1
            if not isinstance(msg, Msg) or self.has_delivered(msg):
                continue
            self.deliver(ctx, msg)
            if self.outbox and self.outbox[0].id == msg.id:
                self.outbox.pop(0)
                if self.outbox:
                    self.ask_leader(ctx)
