"""What the model checker explores: a :class:`Model`, its :class:`Bounds`, and the :class:`Action` s.

A **state** of a distributed system is every node's state, the messages in
flight (a multiset: the same message may be in flight twice) and the timers
pending at each node. The checker knows nothing about time: any in-flight
message may be delivered next, any pending timer may fire next (an
asynchronous system, as in the FLP model; Fischer, Lynch and Paterson 1985,
§2). From a state, the enabled **actions** are:

* ``deliver`` a message in flight to its destination;
* ``timeout``: fire a pending timer (a follower's election timeout, a
  leader's heartbeat);
* ``input``: an outside request a node receives once (a client's command);

and, only when the :class:`Bounds` allow some, the faults: ``drop`` or
``duplicate`` a message in flight, ``crash`` a node (its volatile state and
timers are lost, its messages in flight to it too, its durable storage
survives), ``restart`` a crashed node, and ``tick`` (advance every node's
clock by one step, for protocols that read clocks).

The nodes are labkit's own sans-IO nodes (:class:`labkit.sim.Node`): the
checker runs their handlers with a :class:`labkit.sim.Context` exactly as
the simulator does, so the code that is checked is the code you read. A
:class:`Model` says how to build them and what else the checker should know
(which nodes are interchangeable, what to remember along a run).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.sim import Context, Node

__all__ = ["Act", "Action", "Bounds", "Input", "Model", "Measure"]


class Act(Enum):
    """The kinds of action a state may enable."""

    DELIVER = "deliver"
    TIMEOUT = "timeout"
    INPUT = "input"
    DROP = "drop"
    DUPLICATE = "duplicate"
    CRASH = "crash"
    RESTART = "restart"
    TICK = "tick"


def _short(msg: Any, limit: int = 70) -> str:
    text = repr(msg)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Action:
    """One step of a run: what happened, where, and (for messages) from whom.

    ``node`` is where it happens (the receiver of a message). ``message`` is
    the message for DELIVER, DROP and DUPLICATE, ``timer`` the timer's name
    for TIMEOUT, ``label`` the input's label for INPUT.
    """

    kind: Act
    node: str | None = None
    src: str | None = None
    message: Any = None
    timer: str | None = None
    label: str | None = None

    def __str__(self) -> str:
        k = self.kind
        if k is Act.DELIVER:
            return f"deliver {_short(self.message)}: {self.src} → {self.node}"
        if k is Act.DROP:
            return f"drop {_short(self.message)}: {self.src} → {self.node}"
        if k is Act.DUPLICATE:
            return f"duplicate {_short(self.message)}: {self.src} → {self.node}"
        if k is Act.TIMEOUT:
            return f"timeout {self.node} ({self.timer})"
        if k is Act.INPUT:
            return f"{self.label} at {self.node}"
        if k is Act.TICK:
            return "tick (clocks advance)"
        return f"{k.value} {self.node}"

    @property
    def button(self) -> str:
        """A short label for a button: ``deliver RequestVote: n1 → n2``, ``timeout n3``."""
        k = self.kind
        if k in (Act.DELIVER, Act.DROP, Act.DUPLICATE):
            return f"{k.value} {type(self.message).__name__}: {self.src} → {self.node}"
        if k is Act.TIMEOUT:
            return f"timeout {self.node} ({self.timer})"
        return str(self)


@dataclass(frozen=True, slots=True)
class Input:
    """An outside request that a node may receive once: a client's command.

    ``call(node, ctx)`` runs on the node like a handler (as
    :meth:`labkit.sim.Simulator.call` runs it). ``nodes`` are the nodes it may
    go to (``None``: any); ``when(node)`` says whether the node accepts it in
    its current state (for Raft: only a leader takes a command). Each input
    is used at most once per run.
    """

    label: str
    call: Callable[[Any, Context], Any]
    nodes: tuple[str, ...] | None = None
    when: Callable[[Any], bool] | None = None

    def __post_init__(self) -> None:
        valid.string("label", self.label)
        valid.function("call", self.call, "a function (node, ctx)")
        valid.function("when", self.when, "a function (node) -> bool", none=True)
        if self.nodes is not None:
            if isinstance(self.nodes, str) or not isinstance(self.nodes, Iterable):
                raise valid.ArgumentTypeError(
                    f"nodes must be a tuple of node ids, got {valid.shown(self.nodes)}"
                )
            object.__setattr__(self, "nodes", tuple(valid.string("nodes[i]", n) for n in self.nodes))


Measure = Callable[[Any], int]
"""A number read off a live node that a bound may limit (its term, its log's length)."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """How far a search goes. A step that would break a bound is not taken.

    ``limits`` caps the model's measures (``{"term": 2, "log": 1}``: no node
    beyond term 2 or with more than one log entry). ``in_flight`` caps the
    messages in flight at once; ``depth`` the length of a run. The faults are
    budgets for a whole run: ``crashes``, ``restarts``, ``drops``,
    ``duplicates`` and ``ticks``. ``duplicates=None`` means without limit:
    the network then keeps every message it was given and may deliver it
    any number of times (a set of messages that only grows, as in Lamport's TLA+ Paxos),
    so the in-flight messages form a set and the state space shrinks a lot. ``fires`` caps how many times a timer of a
    given name may fire in one run (``{"heartbeat": 0}``: leaders never send
    heartbeats); timers not named are not limited.
    """

    limits: Mapping[str, int] = field(default_factory=dict)
    in_flight: int | None = None
    depth: int | None = None
    crashes: int = 0
    restarts: int = 0
    drops: int = 0
    duplicates: int | None = 0
    ticks: int = 0
    fires: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("limits", "fires"):
            m = valid.instance(name, getattr(self, name), Mapping)
            checked = {
                valid.string(f"{name} key", k): valid.integer(f"{name}[{k!r}]", v, ge=0) for k, v in m.items()
            }
            object.__setattr__(self, name, dict(sorted(checked.items())))
        valid.integer("in_flight", self.in_flight, ge=0, none=True)
        valid.integer("depth", self.depth, ge=0, none=True)
        for name in ("crashes", "restarts", "drops", "duplicates", "ticks"):
            valid.integer(name, getattr(self, name), ge=0, le=1000, none=name == "duplicates")

    def __hash__(self) -> int:
        return hash((tuple(self.limits.items()), self.in_flight, self.depth, tuple(self.fires.items())))

    def __str__(self) -> str:
        parts = [f"{k} ≤ {v}" for k, v in self.limits.items()]
        if self.in_flight is not None:
            parts.append(f"in flight ≤ {self.in_flight}")
        if self.depth is not None:
            parts.append(f"depth ≤ {self.depth}")
        for name in ("crashes", "restarts", "drops", "duplicates", "ticks"):
            if getattr(self, name):
                parts.append(f"{name} ≤ {getattr(self, name)}")
        if self.duplicates is None:
            parts.append("duplicates without limit")
        parts += [f"{k} fires ≤ {v}" for k, v in self.fires.items()]
        return ", ".join(parts) or "no bounds"


Remember = Callable[[str, Any], Iterable[Hashable]]
Describe = Callable[[Any], Mapping[str, Any]]


class Model:
    """A protocol to explore: its nodes, the outside inputs, what is interchangeable.

    Parameters
    ----------
    nodes:
        The node ids and, for each, a factory ``factory(node_id) -> Node``
        (the same factories :meth:`labkit.sim.Simulator.add_node` takes; a
        restart calls it again and the node recovers from its storage).
    inputs:
        :class:`Input` s the environment may hand to nodes, each once.
    symmetric:
        Node ids that are interchangeable (all built alike, no input or clock
        tied to one of them): states that differ only by a renaming of these
        nodes count as one (symmetry reduction). ``True`` means all nodes.
    constant:
        Attributes of each node object that are set when it is built and
        never change (its peers, its configuration). They are left out of the
        state's key; the checker verifies that they indeed never change.
    ignore:
        Attributes of each node object that do change but never change what
        the node does in this model (a counter only some feature that is off
        reads). They are left out of the state's key, as TLC's ``VIEW`` leaves
        variables out of its fingerprints: leaving out one that matters hides
        states, so name only what you can argue about.
    message_view:
        ``message_view(msg)`` gives the message the state keeps in place of
        ``msg``, for message fields that never change what the receiver does
        in this model (the same argument as for ``ignore``).
    measures:
        Named numbers read off a live node, for :attr:`Bounds.limits`
        (``{"term": lambda n: n.current_term}``).
    remember:
        ``remember(node_id, node)`` gives facts about a node's current state
        that the state keeps for the rest of the run (a *history variable*:
        "n1 led term 2", "index 1 was applied as x"), so invariants can speak
        about the past. The facts must be hashable plain values (tuples of
        strings and numbers, frozen dataclasses).
    describe:
        ``describe(node)`` gives the columns the explorer shows for a node
        (role, term, log ...); by default its public attributes.
    clock_offsets:
        Seconds each node's physical clock is ahead of true time (clock skew).
    tick:
        Seconds one ``tick`` action advances time (default 1).
    name:
        What the results call the model.
    """

    def __init__(
        self,
        nodes: Mapping[str, Callable[[str], Node]],
        *,
        inputs: Sequence[Input] = (),
        symmetric: bool | Collection[str] = False,
        constant: Collection[str] = (),
        ignore: Collection[str] = (),
        message_view: Callable[[Any], Any] | None = None,
        measures: Mapping[str, Measure] | None = None,
        remember: Remember | None = None,
        describe: Describe | None = None,
        clock_offsets: Mapping[str, float] | None = None,
        tick: float = 1.0,
        name: str = "model",
    ) -> None:
        valid.instance("nodes", nodes, Mapping)
        valid.require(len(nodes) >= 1, "nodes", "at least one node id -> factory", dict(nodes))
        valid.require(
            len(nodes) <= 16, "nodes", "at most 16 nodes (a state space grows exponentially)", len(nodes)
        )
        for nid, factory in nodes.items():
            valid.string("nodes key", nid)
            valid.function(f"nodes[{nid!r}]", factory, "a factory node_id -> Node")
        self.factories: dict[str, Callable[[str], Node]] = dict(nodes)
        self.ids: tuple[str, ...] = tuple(nodes)
        valid.collection("inputs", inputs, "a sequence of Input", Sequence)
        self.inputs: tuple[Input, ...] = tuple(
            valid.instance(f"inputs[{i}]", x, Input) for i, x in enumerate(inputs)
        )
        labels = [x.label for x in self.inputs]
        valid.require(len(set(labels)) == len(labels), "inputs", "distinct labels", labels)
        valid.require(len(self.inputs) <= 30, "inputs", "at most 30 inputs", len(self.inputs))
        for x in self.inputs:
            for n in x.nodes or ():
                valid.require(
                    n in self.factories, f"input {x.label!r} nodes", f"nodes of the model {self.ids}", n
                )
        if isinstance(symmetric, bool):
            sym: tuple[str, ...] = self.ids if symmetric else ()
        elif isinstance(symmetric, (str, bytes)) or not isinstance(symmetric, Collection):
            raise valid.ArgumentTypeError(
                f"symmetric must be True, False or a collection of node ids, got {valid.shown(symmetric)}"
            )
        else:
            sym = tuple(n for n in self.ids if n in set(symmetric))
            unknown = set(symmetric) - set(self.ids)
            valid.require(not unknown, "symmetric", f"node ids of the model {self.ids}", sorted(unknown))
        self.clock_offsets: dict[str, float] = {}
        for nid, off in (valid.instance("clock_offsets", clock_offsets, Mapping, none=True) or {}).items():
            valid.require(nid in self.factories, "clock_offsets key", f"a node of the model {self.ids}", nid)
            self.clock_offsets[nid] = valid.number(f"clock_offsets[{nid!r}]", off, unit="seconds")
        if sym:
            for x in self.inputs:
                tied = set(x.nodes or ()) & set(sym)
                valid.require(
                    x.nodes is None or not tied or set(sym) <= set(x.nodes),
                    "symmetric",
                    f"nodes that no input singles out (input {x.label!r} goes to {x.nodes})",
                    sym,
                )
            skewed = [n for n in sym if self.clock_offsets.get(n, 0.0)]
            valid.require(not skewed, "symmetric", "nodes whose clocks agree (no clock offset)", skewed)
        self.symmetric: tuple[str, ...] = sym if len(sym) > 1 else ()
        valid.collection("constant", constant, "a collection of attribute names", Collection)
        self.constant: frozenset[str] = frozenset(valid.string("constant[i]", c) for c in constant)
        valid.collection("ignore", ignore, "a collection of attribute names", Collection)
        self.ignore: frozenset[str] = frozenset(valid.string("ignore[i]", c) for c in ignore)
        self.skip: frozenset[str] = self.constant | self.ignore  # what a node's key leaves out
        self.message_view = valid.function(
            "message_view", message_view, "a function message -> message", none=True
        )
        self.measures: dict[str, Measure] = {}
        for mname, fn in (valid.instance("measures", measures, Mapping, none=True) or {}).items():
            valid.string("measures key", mname)
            self.measures[mname] = valid.function(f"measures[{mname!r}]", fn, "a function node -> int")
        for fname, fn in (("remember", remember), ("describe", describe)):
            valid.function(fname, fn, none=True)
        self.remember = remember
        self.describe = describe
        self.tick = valid.number("tick", tick, gt=0, unit="seconds")
        self.name = valid.string("name", name)

    def check_bounds(self, bounds: Bounds) -> Bounds:
        """``bounds`` if every limit names one of this model's measures."""
        valid.instance("bounds", bounds, Bounds)
        for k in bounds.limits:
            valid.require(
                k in self.measures,
                "bounds.limits key",
                f"one of the model's measures {sorted(self.measures)}",
                k,
            )
        return bounds

    def __repr__(self) -> str:
        extra = f", symmetric={list(self.symmetric)}" if self.symmetric else ""
        return f"Model({self.name!r}, nodes={list(self.ids)}, inputs={[x.label for x in self.inputs]}{extra})"


INF = math.inf
