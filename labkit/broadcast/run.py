"""Run a broadcast algorithm on the simulator and check what it delivered.

:func:`run_broadcast` puts one node per name on a fresh
:class:`~labkit.sim.Simulator`, makes the listed broadcasts at the given
times (and replies, if asked: "when B delivers *question?*, B broadcasts
*answer!*"), runs until the network has settled and returns a
:class:`BroadcastRun`: the simulator, the :func:`~labkit.broadcast.checks.history`
and every checker's verdict.

:data:`PROMISES` says which guarantees each :class:`Protocol` promises, so
a test (or a learner) can compare what was promised with what was seen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.broadcast.checks import BroadcastHistory, Property, Violation, check_all, history
from labkit.broadcast.messages import Msg
from labkit.broadcast.node import BroadcastNode, OnDeliver
from labkit.broadcast.protocols import BestEffortBroadcast, CausalBroadcast, FifoBroadcast, ReliableBroadcast
from labkit.broadcast.total_order import RaftBroadcast, SequencerBroadcast
from labkit.sim import Context, Latency, Simulator, Uniform, schedule_at_nodes

__all__ = ["BroadcastRun", "PROMISES", "Protocol", "broadcast_node", "run_broadcast"]


class Protocol(Enum):
    """The broadcast algorithms of :mod:`labkit.broadcast`, weakest first."""

    BEST_EFFORT = "best-effort"
    RELIABLE = "reliable"
    FIFO = "FIFO"
    CAUSAL = "causal"
    SEQUENCER = "total order (sequencer)"
    RAFT = "total order (Raft)"


_P = Property
PROMISES: dict[Protocol, frozenset[Property]] = {
    Protocol.BEST_EFFORT: frozenset({_P.INTEGRITY, _P.VALIDITY}),
    Protocol.RELIABLE: frozenset({_P.INTEGRITY, _P.VALIDITY, _P.AGREEMENT}),
    Protocol.FIFO: frozenset({_P.INTEGRITY, _P.VALIDITY, _P.AGREEMENT, _P.FIFO}),
    Protocol.CAUSAL: frozenset({_P.INTEGRITY, _P.VALIDITY, _P.AGREEMENT, _P.FIFO, _P.CAUSAL}),
    # Both total orders take each sender's messages in order and deliver a message only
    # once it has its place, so the total order extends causality: they are causal too.
    Protocol.SEQUENCER: frozenset(Property),
    Protocol.RAFT: frozenset(Property),
}
"""What each protocol guarantees (with a sequencer that does not crash, and a Raft majority up)."""

DEFAULT_LATENCY = Uniform(0.005, 0.05)  # one-way: 5 to 50 ms, so messages overtake each other


def broadcast_node(
    protocol: Protocol,
    node_id: str,
    *,
    nodes: Sequence[str],
    retransmit: float | None = None,
    on_deliver: OnDeliver | None = None,
) -> BroadcastNode:
    """A node of ``protocol`` called ``node_id`` in a cluster of ``nodes``.

    The sequencer is the first of ``nodes``. ``retransmit`` switches on the
    link layer's retransmission (not used by Raft, which retries by itself).
    """
    valid.instance("protocol", protocol, Protocol)
    if protocol is Protocol.RAFT:
        return RaftBroadcast(node_id, nodes=nodes, on_deliver=on_deliver)
    if protocol is Protocol.SEQUENCER:
        return SequencerBroadcast(node_id, sequencer=nodes[0], retransmit=retransmit, on_deliver=on_deliver)
    cls = {
        Protocol.BEST_EFFORT: BestEffortBroadcast,
        Protocol.RELIABLE: ReliableBroadcast,
        Protocol.FIFO: FifoBroadcast,
        Protocol.CAUSAL: CausalBroadcast,
    }[protocol]
    return cls(node_id, retransmit=retransmit, on_deliver=on_deliver)


@dataclass(frozen=True, slots=True)
class BroadcastRun:
    """What :func:`run_broadcast` saw."""

    sim: Simulator
    protocol: Protocol | None  # None for a node factory of your own
    history: BroadcastHistory
    violations: dict[Property, list[Violation]]

    def delivered(self, node: str) -> list[Any]:
        """The bodies ``node`` delivered, in order."""
        return [m.body for m in self.history.delivered(node)]

    def holds(self, prop: Property) -> bool:
        """Whether ``prop`` held throughout the run."""
        return not self.violations[prop]

    def broken(self) -> list[Property]:
        """The guarantees that were violated, in :class:`Property` order."""
        return [p for p, v in self.violations.items() if v]


def run_broadcast(
    protocol: Protocol | Callable[[str], BroadcastNode],
    broadcasts: Sequence[tuple[float, str, Any]],
    *,
    nodes: Sequence[str] = ("A", "B", "C"),
    replies: Mapping[Any, tuple[str, Any]] | None = None,
    seed: int = 0,
    latency: Latency | float = DEFAULT_LATENCY,
    links: Mapping[tuple[str, str], Latency | float] | None = None,
    loss: float = 0.0,
    duplication: float = 0.0,
    retransmit: float | None = None,
    faults: Sequence[tuple[float, Callable[[Simulator], Any]]] = (),
    settle: float = 2.0,
) -> BroadcastRun:
    """Broadcast ``(time, node, body)`` for each entry of ``broadcasts`` and check the deliveries.

    ``protocol`` is a :class:`Protocol`, or a factory ``node_id -> BroadcastNode``
    for a node of your own (its ``on_deliver`` is then set to make the
    replies). ``replies`` maps a body to ``(node, reply)``: when
    ``node`` delivers that body it broadcasts ``reply`` at once. ``links``
    sets the latency of single directed links ``(src, dst)``; ``faults`` are
    ``(time, fn)`` pairs calling ``fn(sim)`` at ``time`` (crash a node,
    partition, heal). The run ends ``settle`` seconds after the last
    broadcast or fault.
    """
    if isinstance(nodes, str) or len(nodes) < 2 or len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes must be at least two distinct node ids, got {nodes!r}")
    settle = valid.number("settle", settle, ge=0, unit="seconds")
    replies = dict(replies or {})
    for body, answer in replies.items():
        if not (isinstance(answer, tuple) and len(answer) == 2 and answer[0] in nodes):
            raise ValueError(
                f"replies[{body!r}] must be a (node, reply) pair with node one of {list(nodes)}, got {answer!r}"
            )

    def on_deliver(node: BroadcastNode, ctx: Context, msg: Msg) -> None:
        answer = replies.get(msg.body)
        if answer is not None and answer[0] == node.node_id:
            node.broadcast(ctx, answer[1])

    hook = on_deliver if replies else None
    if isinstance(protocol, Protocol):

        def factory(nid: str) -> BroadcastNode:
            return broadcast_node(protocol, nid, nodes=nodes, retransmit=retransmit, on_deliver=hook)

    elif callable(protocol):
        build = protocol

        def factory(nid: str) -> BroadcastNode:
            node = build(nid)
            if hook is not None:
                if not isinstance(node, BroadcastNode) or node.on_deliver is not None:
                    raise ValueError("replies need BroadcastNodes without an on_deliver of their own")
                node.on_deliver = hook
            return node

    else:
        raise TypeError(
            f"protocol must be a Protocol or a factory node_id -> BroadcastNode, got {protocol!r}"
        )
    sim = Simulator(seed, latency=latency, loss=loss, duplication=duplication)
    for nid in nodes:
        sim.add_node(nid, factory)
    for (src, dst), lat in (links or {}).items():
        sim.set_latency(lat, src, dst)
    last = schedule_at_nodes(
        sim, nodes, broadcasts, faults, lambda node, ctx, body: node.broadcast(ctx, body),
        name="broadcasts", fields=("time", "node", "body"),
    )  # fmt: skip
    sim.run(last + settle)
    h = history(sim)
    return BroadcastRun(sim, protocol if isinstance(protocol, Protocol) else None, h, check_all(h))
