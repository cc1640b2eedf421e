"""Broadcast: delivering every message to every node, in an order you can rely on.

The layer between a bare network and replicated data (Kleppmann, *Distributed
Systems* lecture notes, §4.2-§4.3; Cachin, Guerraoui & Rodrigues,
*Introduction to Reliable and Secure Distributed Programming*, 2011, ch. 3):

* :class:`BroadcastNode`: the base, with ``broadcast`` / ``deliver`` and a
  link layer that can retransmit until acknowledged;
* :class:`BestEffortBroadcast`, :class:`ReliableBroadcast`,
  :class:`FifoBroadcast`, :class:`CausalBroadcast`: each a few rules;
* :class:`SequencerBroadcast` and :class:`RaftBroadcast`: total order, by one
  sequencer or by a Raft log;
* :func:`history` and the ``check_*`` functions: each guarantee as a checker
  over the deliveries of a run;
* :func:`run_broadcast`: a scripted run and its verdicts.
"""

from labkit.broadcast.checks import (
    BroadcastHistory,
    Event,
    Property,
    Violation,
    check_agreement,
    check_all,
    check_causal,
    check_fifo,
    check_integrity,
    check_total_order,
    check_validity,
    history,
)
from labkit.broadcast.messages import Ack, Forward, Msg, Packet, Sequenced, carried
from labkit.broadcast.node import BroadcastNode, EventKind
from labkit.broadcast.protocols import (
    BestEffortBroadcast,
    CausalBroadcast,
    FifoBroadcast,
    HoldBackBroadcast,
    ReliableBroadcast,
)
from labkit.broadcast.run import PROMISES, BroadcastRun, Protocol, broadcast_node, run_broadcast
from labkit.broadcast.total_order import RaftBroadcast, SequencerBroadcast

__all__ = [
    "PROMISES",
    "Ack",
    "BestEffortBroadcast",
    "BroadcastHistory",
    "BroadcastNode",
    "BroadcastRun",
    "CausalBroadcast",
    "Event",
    "EventKind",
    "FifoBroadcast",
    "Forward",
    "HoldBackBroadcast",
    "Msg",
    "Packet",
    "Property",
    "Protocol",
    "RaftBroadcast",
    "ReliableBroadcast",
    "Sequenced",
    "SequencerBroadcast",
    "Violation",
    "broadcast_node",
    "carried",
    "check_agreement",
    "check_all",
    "check_causal",
    "check_fifo",
    "check_integrity",
    "check_total_order",
    "check_validity",
    "history",
    "run_broadcast",
]
