"""A run found by the model checker, replayed in the simulator and drawn as a trace.

:func:`replay` runs an action list on labkit's own
:class:`~labkit.sim.Simulator`: the nodes are built by the model's
factories and booted as the simulator boots them, and each action is carried
out with the simulator's public calls (``call`` runs a delivery, a timer or
an input on a node, ``crash`` and ``restart`` are the simulator's). Time
stands still while it does (messages and timers the simulator schedules on
its own never fall due), so the run follows the list and nothing else.
After every step it checks the invariants against the simulator's live
nodes; with ``expected`` it also checks that every node is in exactly the
state the model checker said it would be. A counterexample that replays to
the same violation is a real run of the real code.

:func:`trace_of` turns an action list into a simulator
:class:`~labkit.sim.Trace` (step *i* at time *i*), so it draws on the
space-time diagram like any simulation.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.explore.freeze import freeze
from labkit.explore.model import Act, Action, Bounds, Model
from labkit.explore.search import check_state, invariant_list
from labkit.explore.space import Space, State, StateKey
from labkit.sim import DropReason, Fixed, Kind, Simulator, Trace

__all__ = ["Replay", "replay", "trace_of", "SimState"]

NEVER = 1e9  # latency of the replay's network: nothing it schedules falls due while time stands still


class SimState:
    """The state of a running simulator, read the way invariants read a model's :class:`State`."""

    def __init__(self, sim: Simulator, model: Model, memory: frozenset, in_flight: list, time: float) -> None:
        self.sim = sim
        self.model = model
        self.memory = memory
        self.in_flight = list(in_flight)
        self.time = time
        self.errors: dict[str, str] = {}

    @property
    def nodes(self) -> dict[str, Any]:
        return {nid: self.sim.node(nid) if self.sim.is_up(nid) else None for nid in self.model.ids}

    def node(self, node_id: str) -> Any:
        return self.nodes[node_id]

    def live(self) -> dict[str, Any]:
        return {k: v for k, v in self.nodes.items() if v is not None}

    def up(self, node_id: str) -> bool:
        return self.sim.is_up(node_id)

    @property
    def crashed(self) -> tuple[str, ...]:
        return tuple(n for n in self.model.ids if not self.sim.is_up(n))

    def storage(self, node_id: str) -> Mapping[Hashable, Any]:
        return self.sim.storage(node_id)

    @property
    def timers(self) -> dict[str, tuple[str, ...]]:
        return {n: self.sim.pending_timers(n) for n in self.model.ids}

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def remembered(self, name: str, compute: Any) -> Any:
        return compute(self.memory)


@dataclass
class Replay:
    """What :func:`replay` saw: the simulator after the run, and each violation with its step.

    ``violations`` lists ``(step, invariant, message)`` for every step at
    which some invariant failed (step 0 is the start); ``mismatches`` lists
    the steps where a node's state differed from what the model checker
    expected.
    """

    sim: Simulator
    actions: tuple[Action, ...]
    violations: list[tuple[int, str, str]] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def first_violation(self) -> tuple[int, str, str] | None:
        return self.violations[0] if self.violations else None


def _remember(model: Model, sim: Simulator, memory: frozenset) -> frozenset:
    if model.remember is None:
        return memory
    facts = set(memory)
    for nid in model.ids:
        if sim.is_up(nid):
            facts.update(model.remember(nid, sim.node(nid)))
    return frozenset(facts)


def replay(
    model: Model,
    actions: Sequence[Action],
    invariants: Any = (),
    *,
    bounds: Bounds | None = None,
    expected: Sequence[State] | None = None,
) -> Replay:
    """Run ``actions`` on the simulator; check ``invariants`` after each step.

    ``bounds``: the search's bounds (with ``duplicates=None`` a delivered
    message stays in flight, as it did in the search). ``expected``: the
    model checker's states along the run (start included), to compare every
    node's state with. Raises ``ValueError`` if an action
    cannot be carried out (a message that is not in flight, a timer that is
    not pending): the list is not a run of this model.
    """
    valid.instance("model", model, Model)
    valid.collection("actions", actions, "a list of Action", Sequence)
    for i, a in enumerate(actions):
        valid.instance(f"actions[{i}]", a, Action)
    invs = invariant_list(invariants) if invariants else []
    if expected is not None and len(expected) != len(actions) + 1:
        raise ValueError(
            f"expected must hold {len(actions) + 1} states (the start and one per action), got {len(expected)}"
        )
    sim = Simulator(0, latency=Fixed(NEVER))
    for nid in model.ids:
        sim.add_node(nid, model.factories[nid])
    for nid, off in model.clock_offsets.items():
        sim.set_clock(nid, offset=off)
    sim.run(0.0)  # every node boots, in the model's order
    out = Replay(sim, tuple(actions))
    flight: list[tuple[str, str, Any]] = []
    seen_rows = 0
    keep = valid.instance("bounds", bounds, Bounds, none=True) is not None and bounds.duplicates is None  # type: ignore[union-attr]

    def collect_sends() -> None:
        nonlocal seen_rows
        trace = sim.trace
        view = model.message_view
        for i in range(seen_rows, len(trace)):
            e = trace[i]
            if e.kind is Kind.SEND:
                flight.append((e.src, e.dst, e.message if view is None else view(e.message)))
            elif e.kind in (Kind.DELIVER, Kind.TIMER):
                raise RuntimeError(
                    f"the simulator ran {e.kind.value} {e} on its own; the replay must drive every step"
                )
        seen_rows = len(trace)

    memory = frozenset()

    def check(step: int, errors: dict[str, str]) -> None:
        nonlocal memory
        memory = _remember(model, sim, memory)
        st = SimState(sim, model, memory, flight, sim.now)
        st.errors = errors
        found = check_state(st, invs) if (invs or errors) else None
        if found is not None:
            out.violations.append((step, found[0], found[1]))
        if expected is not None:
            want = expected[step]
            for nid in model.ids:
                have = sim.node(nid) if sim.is_up(nid) else None
                other = want.nodes[nid]
                if (have is None) != (other is None) or (
                    have is not None and freeze(have, model.skip) != freeze(other, model.skip)
                ):
                    out.mismatches.append(f"step {step}: {nid} is not in the state the model checker found")

    collect_sends()
    check(0, {})
    for step, a in enumerate(actions, 1):
        errors: dict[str, str] = {}
        try:
            _carry_out(sim, model, a, flight, keep)
        except _HandlerError as exc:
            errors[a.node] = exc.args[0]  # type: ignore[index]
        collect_sends()
        check(step, errors)
        if errors:
            break
    return out


class _HandlerError(Exception):
    pass


def _take(flight: list, src: str, dst: str, msg: Any, what: str) -> None:
    for i, (s, d, m) in enumerate(flight):
        if s == src and d == dst and m == msg:
            del flight[i]
            return
    raise ValueError(f"cannot {what} {msg!r} from {src} to {dst}: it is not in flight")


def _call(sim: Simulator, nid: str, fn: Any) -> None:
    try:
        sim.call(nid, fn)
    except Exception as exc:
        raise _HandlerError(f"{nid}: {type(exc).__name__}: {exc}") from exc


def _carry_out(sim: Simulator, model: Model, a: Action, flight: list, keep: bool) -> None:
    k, nid = a.kind, a.node
    if k is Act.DELIVER:
        _take(flight, a.src, nid, a.message, "deliver")  # type: ignore[arg-type]
        if keep:
            flight.append((a.src, nid, a.message))
        src, msg = a.src, a.message
        _call(sim, nid, lambda node, ctx: node.on_message(ctx, src, msg))  # type: ignore[arg-type]
    elif k is Act.TIMEOUT:
        if a.timer not in sim.pending_timers(nid):  # type: ignore[arg-type]
            raise ValueError(f"cannot fire timer {a.timer!r} at {nid}: it is not pending")
        name = a.timer
        _call(sim, nid, lambda node, ctx: node.on_timer(ctx, name))  # type: ignore[arg-type]
        # The simulator's own entry for it stays in its queue, never due; the node set it again or not.
    elif k is Act.INPUT:
        inp = next((x for x in model.inputs if x.label == a.label), None)
        if inp is None:
            raise ValueError(f"the model has no input {a.label!r}")
        _call(sim, nid, inp.call)  # type: ignore[arg-type]
    elif k is Act.DROP:
        _take(flight, a.src, nid, a.message, "drop")  # type: ignore[arg-type]
    elif k is Act.DUPLICATE:
        _take(flight, a.src, nid, a.message, "duplicate")  # type: ignore[arg-type]
        flight += [(a.src, nid, a.message)] * 2
    elif k is Act.CRASH:
        sim.crash(nid)  # type: ignore[arg-type]
        flight[:] = [f for f in flight if f[1] != nid]
    elif k is Act.RESTART:
        sim.restart(nid)  # type: ignore[arg-type]
        try:
            sim.run(sim.now)  # the restarted node boots now
        except Exception as exc:
            raise _HandlerError(f"{nid}: {type(exc).__name__}: {exc}") from exc
    elif k is Act.TICK:
        sim.run_for(model.tick)


def trace_of(
    space: Space,
    actions: Sequence[Action],
    *,
    violation: tuple[str, str] | None = None,
    start: StateKey | None = None,
) -> Trace:
    """The run ``actions`` (from ``space``'s start) as a simulator :class:`Trace`: step *i* at time *i*.

    Sends, deliveries, drops, duplicates, timers, crashes, restarts and the
    nodes' notes become trace rows, so :func:`labkit.viz.spacetime_diagram`
    draws the run. ``violation``: ``(invariant, message)`` to mark at the last step.
    ``start``: the state the run starts from, if not the model's start (its
    messages in flight are drawn as sent at time 0).
    """
    valid.instance("space", space, Space)
    trace = Trace()
    rows = trace.rows
    ids = space.ids
    keep = space.bounds.duplicates is None
    pending: dict[tuple[str, str, Any], deque] = {}
    mid = 0

    def sent(t: float, src: str, dst: str, msg: Any) -> None:
        nonlocal mid
        mid += 1
        rows.append((t, Kind.SEND, src, src, dst, mid, msg, None, None, None))
        q = pending.setdefault((src, dst, msg), deque())
        if not (keep and q):
            q.append((mid, t))

    def notes(t: float, nid: str, outcome: Any) -> None:
        for what, detail in outcome.notes:
            rows.append((t, Kind.STATE, nid, None, None, None, None, None, what, dict(detail)))

    if start is None:  # the start: every node boots at time 0, in order
        s = space.initial()
        for idx, nid in enumerate(ids):
            rows.append((0.0, Kind.START, nid, None, None, None, None, None, None, None))
            out = space.boot(idx)
            notes(0.0, nid, out)
            for p in out.sends:
                src, dst, msg = space.packets[p]
                sent(0.0, ids[src], ids[dst], msg)
    else:
        s = start
        for src, dst, msg in space.view(start).in_flight:
            sent(0.0, src, dst, msg)
    for i, a in enumerate(actions, 1):
        t = float(i)
        step = space.find_step(s, a)
        s, out = space.step(s, step)
        k = a.kind
        if k is Act.DELIVER:
            q = pending.get((a.src, a.node, a.message))
            m, sent_at = (q[0] if keep else q.popleft()) if q else (None, None)
            rows.append((t, Kind.DELIVER, a.node, a.src, a.node, m, a.message, sent_at, None, None))
        elif k is Act.DROP:
            q = pending.get((a.src, a.node, a.message))
            m, sent_at = q.popleft() if q else (None, t)
            rows.append(
                (t, Kind.DROP, a.node, a.src, a.node, m, a.message, sent_at, DropReason.LOSS.value, None)
            )
        elif k is Act.DUPLICATE:
            q = pending.get((a.src, a.node, a.message))
            if q:
                q.append(q[0])
                rows.append((t, Kind.DUPLICATE, a.src, a.src, a.node, q[0][0], a.message, None, None, None))
        elif k is Act.TIMEOUT:
            rows.append((t, Kind.TIMER, a.node, None, None, None, None, None, a.timer, None))
        elif k is Act.CRASH:
            rows.append((t, Kind.CRASH, a.node, None, None, None, None, None, None, None))
            for (src, dst, msg), q in pending.items():
                if dst == a.node:
                    while q:
                        m, sent_at = q.popleft()
                        rows.append(
                            (t, Kind.DROP, dst, src, dst, m, msg, sent_at, DropReason.CRASHED.value, None)
                        )
        elif k is Act.RESTART:
            rows.append((t, Kind.RESTART, a.node, None, None, None, None, None, None, None))
            rows.append((t, Kind.START, a.node, None, None, None, None, None, None, None))
        elif k is Act.INPUT:
            rows.append((t, Kind.STATE, a.node, None, None, None, None, None, "input", {"input": a.label}))
        if out is not None:
            notes(t, a.node, out)  # type: ignore[arg-type]
            for p in out.sends:
                src, dst, msg = space.packets[p]
                sent(t, ids[src], ids[dst], msg)
            err = space.error(out.host)
            if err:
                rows.append((t, Kind.STATE, a.node, None, None, None, None, None, "error", {"error": err}))
    if violation is not None:
        where = actions[-1].node if actions and actions[-1].node else ids[0]
        rows.append(
            (float(len(actions)), Kind.STATE, where, None, None, None, None, None, "violation",
             {"invariant": violation[0], "what": violation[1]})
        )  # fmt: skip
    return trace
