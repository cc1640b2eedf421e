"""What broadcast nodes send each other.

A broadcast message is a :class:`Msg`: who broadcast it (``origin``), its
number among that node's broadcasts (``seq``, from 1) and the application's
``body``. The pair ``(origin, seq)`` names a message everywhere: in every
node's delivery list and in the checkers. Causal broadcast also stamps each
message with ``deps``, the vector of messages its sender had delivered
(Kleppmann, *Distributed Systems* lecture notes, §4.3).

The other types are the frames of particular algorithms: :class:`Sequenced`
(total order by a sequencer), :class:`Forward` (total order on a Raft log),
and the link layer's :class:`Packet` / :class:`Ack` (retransmission until
acknowledged, which turns the simulator's lossy links into reliable ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.clocks import VectorClock

__all__ = ["Ack", "Forward", "Msg", "Packet", "Sequenced", "carried"]


@dataclass(frozen=True, slots=True)
class Msg:
    """One broadcast message: the ``seq``-th broadcast of node ``origin``.

    ``deps`` is set only by causal broadcast: for each node, how many of its
    messages the sender had delivered when it broadcast this one (its own
    earlier messages included).
    """

    origin: str
    seq: int
    body: Any
    deps: VectorClock | None = None

    @property
    def id(self) -> tuple[str, int]:
        """``(origin, seq)``: the message's name, the same at every node."""
        return (self.origin, self.seq)

    def __str__(self) -> str:
        return str(self.body)


@dataclass(frozen=True, slots=True)
class Sequenced:
    """Total order by a sequencer: message ``msg`` is number ``number`` (from 1) of the total order."""

    number: int
    msg: Msg


@dataclass(frozen=True, slots=True)
class Forward:
    """Total order on a Raft log: "please append ``msg`` to the log" (sent to the leader)."""

    msg: Msg


@dataclass(frozen=True, slots=True)
class Packet:
    """The link layer: ``payload`` as the ``n``-th packet its sender sent; resent until acknowledged."""

    n: int
    payload: Any


@dataclass(frozen=True, slots=True)
class Ack:
    """The link layer: "packet ``n`` arrived" (sent back for every copy received)."""

    n: int


def carried(frame: Any) -> Msg | None:
    """The broadcast message a network frame carries, if any (unwrapping packets)."""
    if isinstance(frame, Packet):
        frame = frame.payload
    if isinstance(frame, Msg):
        return frame
    msg = getattr(frame, "msg", None)
    return msg if isinstance(msg, Msg) else None
