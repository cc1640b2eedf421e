"""Checkers for broadcast guarantees, over the deliveries a run recorded.

Every broadcast node notes ``broadcast`` and ``deliver`` in the simulator's
trace (:class:`~labkit.broadcast.node.BroadcastNode`). :func:`history` reads
them back, in the order they happened, as a :class:`BroadcastHistory`; each
``check_*`` function takes one and returns the :class:`Violation` s of one
guarantee (an empty list when it holds). The guarantees are Kleppmann's
(*Distributed Systems* lecture notes, §4.2) and Cachin, Guerraoui &
Rodrigues' (2011, ch. 3 and §6.1):

* *integrity*: a node delivers a message at most once, and only a message
  that was broadcast (no duplication, no creation);
* *validity*: a correct node delivers every message it broadcast itself;
* *agreement*: a message delivered by one correct node is delivered by every
  correct node (with validity: *reliable* broadcast);
* *FIFO*: messages of one sender are delivered in the order it sent them;
* *causal*: if broadcasting ``m1`` happened before broadcasting ``m2``, every
  node that delivers ``m2`` has delivered ``m1`` before it;
* *total order*: two nodes that both deliver ``m1`` and ``m2`` deliver them
  in the same order.

"Happened before" is computed from the history alone, never from what the
algorithm under test believes: broadcasting ``m2`` at node ``p`` happened
after every earlier broadcast of ``p``, every message ``p`` had delivered,
and (transitively) everything those depended on (Lamport 1978). Validity
and agreement are about the end of a run: check them once the network has
had time to settle. *Correct* nodes are those that are up at the end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from labkit.broadcast.messages import Msg
from labkit.broadcast.node import EventKind
from labkit.sim import Simulator, Trace

__all__ = [
    "BroadcastHistory",
    "Event",
    "EventKind",
    "Property",
    "Violation",
    "check_agreement",
    "check_all",
    "check_causal",
    "check_fifo",
    "check_integrity",
    "check_total_order",
    "check_validity",
    "history",
]


class Property(Enum):
    """The guarantees the checkers know."""

    INTEGRITY = "integrity"
    VALIDITY = "validity"
    AGREEMENT = "agreement"
    FIFO = "FIFO"
    CAUSAL = "causal"
    TOTAL_ORDER = "total order"


@dataclass(frozen=True, slots=True)
class Event:
    """A broadcast or a delivery of ``msg`` at ``node``."""

    time: float
    kind: EventKind
    node: str
    msg: Msg


@dataclass(frozen=True, slots=True)
class Violation:
    """One breach of ``property`` at ``node``, about ``msgs``, explained in ``text``."""

    property: Property
    node: str
    msgs: tuple[Msg, ...]
    text: str

    def __str__(self) -> str:
        return f"{self.property.value}: {self.text}"


class BroadcastHistory:
    """The broadcasts and deliveries of a run, in the order they happened.

    ``events`` lists them all; ``nodes`` every node of the run; ``correct``
    the nodes that were up at the end (all of them for a bare trace).
    """

    def __init__(
        self, events: Iterable[Event], nodes: Iterable[str], correct: Iterable[str] | None = None
    ) -> None:
        self.events: list[Event] = list(events)
        self.nodes: tuple[str, ...] = tuple(nodes)
        self.correct: frozenset[str] = frozenset(self.nodes if correct is None else correct)

    @property
    def broadcasts(self) -> list[Event]:
        return [e for e in self.events if e.kind is EventKind.BROADCAST]

    @property
    def deliveries(self) -> list[Event]:
        return [e for e in self.events if e.kind is EventKind.DELIVER]

    def delivered(self, node: str) -> list[Msg]:
        """What ``node`` delivered, in order."""
        return [e.msg for e in self.events if e.kind is EventKind.DELIVER and e.node == node]

    def __repr__(self) -> str:
        return f"BroadcastHistory({len(self.broadcasts)} broadcasts, {len(self.deliveries)} deliveries)"


_KINDS = {k.value: k for k in EventKind}


def history(source: Simulator | Trace, correct: Iterable[str] | None = None) -> BroadcastHistory:
    """The :class:`BroadcastHistory` of a simulator (or a bare trace).

    With a simulator, the correct nodes are those up now, unless ``correct`` says otherwise.
    """
    if isinstance(source, Simulator):
        trace, nodes = source.trace, list(source.nodes)
        if correct is None:
            correct = [n for n in nodes if source.is_up(n)]
    elif isinstance(source, Trace):
        trace, nodes = source, []
    else:
        raise TypeError(f"source must be a Simulator or a Trace, got {type(source).__name__}")
    events = []
    for e in trace.notes():
        if e.reason in _KINDS:
            events.append(Event(e.time, _KINDS[e.reason], e.node, e.detail["msg"]))
            if e.node not in nodes:
                nodes.append(e.node)
    return BroadcastHistory(events, nodes, correct)


def _check_history(h: Any) -> BroadcastHistory:
    if not isinstance(h, BroadcastHistory):
        raise TypeError(
            f"h must be a BroadcastHistory (from labkit.broadcast.history(sim)), got {type(h).__name__}"
        )
    return h


def check_integrity(h: BroadcastHistory) -> list[Violation]:
    """No duplication (each node delivers a message at most once) and no creation."""
    _check_history(h)
    out: list[Violation] = []
    sent: set[tuple[str, int]] = set()
    seen: set[tuple[str, tuple[str, int]]] = set()
    for e in h.events:
        if e.kind is EventKind.BROADCAST:
            sent.add(e.msg.id)
            continue
        if e.msg.id not in sent:
            out.append(
                Violation(
                    Property.INTEGRITY, e.node, (e.msg,), f"{e.node} delivered {e.msg}, never broadcast"
                )
            )
        if (e.node, e.msg.id) in seen:
            out.append(Violation(Property.INTEGRITY, e.node, (e.msg,), f"{e.node} delivered {e.msg} twice"))
        seen.add((e.node, e.msg.id))
    return out


def check_validity(h: BroadcastHistory) -> list[Violation]:
    """Every correct node delivered each message it broadcast (checked at the end of a run)."""
    _check_history(h)
    got = {n: {m.id for m in h.delivered(n)} for n in h.correct}
    out = []
    for e in h.broadcasts:
        if e.node in h.correct and e.msg.id not in got[e.node]:
            out.append(
                Violation(Property.VALIDITY, e.node, (e.msg,), f"{e.node} never delivered its own {e.msg}")
            )
    return out


def check_agreement(h: BroadcastHistory) -> list[Violation]:
    """A message delivered by one correct node was delivered by every correct node."""
    _check_history(h)
    got = {n: {m.id for m in h.delivered(n)} for n in h.correct}
    out = []
    reported = set()
    for e in h.deliveries:
        if e.node not in h.correct or e.msg.id in reported:
            continue
        missing = sorted(n for n in h.correct if e.msg.id not in got[n])
        if missing:
            reported.add(e.msg.id)
            out.append(
                Violation(
                    Property.AGREEMENT,
                    missing[0],
                    (e.msg,),
                    f"{e.node} delivered {e.msg} but {', '.join(missing)} never did",
                )
            )
    return out


class _Delivered:
    """What one node has delivered so far, with the unbroken prefix of each origin's messages."""

    __slots__ = ("ids", "prefix")

    def __init__(self) -> None:
        self.ids: set[tuple[str, int]] = set()
        self.prefix: dict[str, int] = {}  # origin -> k: messages 1..k of origin all delivered

    def add(self, msg: Msg) -> None:
        self.ids.add(msg.id)
        k = self.prefix.get(msg.origin, 0)
        while (msg.origin, k + 1) in self.ids:
            k += 1
        self.prefix[msg.origin] = k

    def first_missing(self, origin: str, upto: int) -> int | None:
        """The first of messages 1..upto of ``origin`` not delivered here, if any."""
        k = self.prefix.get(origin, 0)
        return k + 1 if k < upto else None


def check_fifo(h: BroadcastHistory) -> list[Violation]:
    """Each node delivers a sender's messages in the order the sender broadcast them."""
    _check_history(h)
    out = []
    done: dict[str, _Delivered] = {}
    for e in h.deliveries:
        mine = done.setdefault(e.node, _Delivered())
        missing = mine.first_missing(e.msg.origin, e.msg.seq - 1)
        if missing is not None:
            out.append(
                Violation(
                    Property.FIFO,
                    e.node,
                    (e.msg,),
                    f"{e.node} delivered {e.msg} (message {e.msg.seq} of {e.msg.origin}) "
                    f"before message {missing} of {e.msg.origin}",
                )
            )
        mine.add(e.msg)
    return out


def _causal_pasts(h: BroadcastHistory) -> dict[tuple[str, int], dict[str, int]]:
    """For each broadcast message, the messages whose broadcast happened before its own.

    A node's broadcasts are ordered, so a causal past is down-closed per origin and is
    written as a vector: ``past[origin] = k`` means messages 1..k of ``origin``.
    """
    knows: dict[str, dict[str, int]] = {}  # node -> vector of what happened before "now" there
    past: dict[tuple[str, int], dict[str, int]] = {}
    for e in h.events:
        vec = knows.setdefault(e.node, {})
        m = e.msg
        if e.kind is EventKind.BROADCAST:
            past[m.id] = dict(vec)
            vec[m.origin] = max(vec.get(m.origin, 0), m.seq)
        elif m.id in past:  # delivering m: its causal past, and m itself, happened before
            for origin, k in past[m.id].items():
                if k > vec.get(origin, 0):
                    vec[origin] = k
            vec[m.origin] = max(vec.get(m.origin, 0), m.seq)
    return past


def check_causal(h: BroadcastHistory) -> list[Violation]:
    """Every node delivers a message only after every message that causally precedes it."""
    _check_history(h)
    past = _causal_pasts(h)
    out = []
    done: dict[str, _Delivered] = {}
    for e in h.deliveries:
        mine = done.setdefault(e.node, _Delivered())
        for origin, k in sorted(past.get(e.msg.id, {}).items()):
            missing = mine.first_missing(origin, k)
            if missing is not None:
                out.append(
                    Violation(
                        Property.CAUSAL,
                        e.node,
                        (e.msg,),
                        f"{e.node} delivered {e.msg} before message {missing} of {origin}, "
                        "which happened before it",
                    )
                )
                break
        mine.add(e.msg)
    return out


def check_total_order(h: BroadcastHistory) -> list[Violation]:
    """Any two nodes deliver the messages they both deliver in the same order."""
    _check_history(h)
    orders = {n: h.delivered(n) for n in h.nodes}
    out = []
    nodes = [n for n in h.nodes if orders[n]]
    for i, p in enumerate(nodes):
        pos_p = {m.id: k for k, m in enumerate(orders[p])}
        for q in nodes[i + 1 :]:
            common = [m for m in orders[q] if m.id in pos_p]
            for a, b in zip(common, common[1:], strict=False):
                if pos_p[a.id] > pos_p[b.id]:
                    out.append(
                        Violation(
                            Property.TOTAL_ORDER,
                            q,
                            (a, b),
                            f"{q} delivered {a} before {b}, but {p} delivered {b} before {a}",
                        )
                    )
                    break
    return out


_CHECKS = {
    Property.INTEGRITY: check_integrity,
    Property.VALIDITY: check_validity,
    Property.AGREEMENT: check_agreement,
    Property.FIFO: check_fifo,
    Property.CAUSAL: check_causal,
    Property.TOTAL_ORDER: check_total_order,
}


def check_all(h: BroadcastHistory) -> dict[Property, list[Violation]]:
    """Every checker's violations, by property (empty lists where a guarantee holds)."""
    _check_history(h)
    return {prop: check(h) for prop, check in _CHECKS.items()}
