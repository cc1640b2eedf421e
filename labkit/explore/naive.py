"""A first attempt at a model checker: breadth-first search that deep-copies every state.

It is what one writes first, and it is correct: a state holds the live node
objects, their storage and timers, and the messages in flight; a successor
is a ``copy.deepcopy`` of the whole state with one handler run on the copy;
two states are the same when their canonical keys (:func:`labkit.explore.freeze.freeze`)
are. It explores exactly the states :func:`labkit.explore.bfs` explores
(without symmetry reduction), which the tests check.

What makes it slow is what :mod:`labkit.explore.space` avoids: it copies
every node for every successor (the fast search copies one node, once per
distinct node state and event), runs every handler again in every state
(the fast search caches each outcome), and freezes whole states to compare
them (the fast search compares tuples of small integers). The benchmark
(``benchmarks/bench_explore.py``) measures the difference.
"""

from __future__ import annotations

import copy
import random
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from labkit import validation as valid
from labkit.explore.freeze import encode, freeze
from labkit.explore.model import Act, Action, Bounds, Model
from labkit.explore.search import HANDLERS_DO_NOT_RAISE, Invariant, check_state, invariant_list
from labkit.sim import Context, Node

__all__ = ["NaiveResult", "naive_bfs"]


@dataclass(frozen=True, slots=True)
class NaiveResult:
    """What :func:`naive_bfs` found: counts, time, and the violating run if any."""

    explored: int
    distinct: int
    depth: int
    seconds: float
    exhausted: bool
    violation: tuple[str, str, tuple[Action, ...]] | None

    @property
    def states_per_second(self) -> float:
        return self.explored / self.seconds if self.seconds > 0 else float("inf")


class _World:
    """One whole state, as live objects."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node | None] = {}
        self.failed: dict[str, str] = {}
        self.storage: dict[str, dict] = {}
        self.timers: dict[str, set[str]] = {}
        self.net: list[tuple[str, str, Any]] = []
        self.memory: frozenset = frozenset()
        self.time = 0
        self.used: dict[str, int] = {}


class _View:
    """What invariants read, over a :class:`_World`."""

    def __init__(self, world: _World) -> None:
        self._w = world

    @property
    def nodes(self) -> dict[str, Any]:
        return dict(self._w.nodes)

    def node(self, node_id: str) -> Any:
        return self._w.nodes[node_id]

    def live(self) -> dict[str, Any]:
        return {k: v for k, v in self._w.nodes.items() if v is not None}

    @property
    def crashed(self) -> tuple[str, ...]:
        return tuple(k for k, v in self._w.nodes.items() if v is None and k not in self._w.failed)

    @property
    def errors(self) -> dict[str, str]:
        return dict(self._w.failed)

    @property
    def failed(self) -> bool:
        return bool(self._w.failed)

    def storage(self, node_id: str) -> Mapping:
        return MappingProxyType(self._w.storage[node_id])

    @property
    def in_flight(self) -> list:
        return list(self._w.net)

    @property
    def timers(self) -> dict[str, tuple[str, ...]]:
        return {k: tuple(sorted(v)) for k, v in self._w.timers.items()}

    @property
    def memory(self) -> frozenset:
        return self._w.memory

    def remembered(self, name: str, compute: Any) -> Any:
        return compute(self._w.memory)


class _Naive:
    def __init__(self, model: Model, bounds: Bounds) -> None:
        self.model, self.bounds = model, bounds
        self.rng = random.Random(0)
        self.known = frozenset(model.ids)

    def _driver(self, w: _World) -> Any:
        offsets, now = self.model.clock_offsets, w.time * self.model.tick

        class Driver:
            def local_time(self, node_id: str) -> float:
                return now + offsets.get(node_id, 0.0)

        d = Driver()
        d.now = now  # type: ignore[attr-defined]
        return d

    def run(self, w: _World, nid: str, call: Any) -> bool:
        """Run a handler on ``w``'s node ``nid`` in place; False if it raised (then the node failed)."""
        node = w.nodes[nid]
        peers = tuple(p for p in self.model.ids if p != nid)
        self.rng.seed(0)
        ctx = Context(
            nid, peers, self.rng, MappingProxyType(w.storage[nid]), self._driver(w), known=self.known
        )
        try:
            call(node, ctx)
        except Exception as exc:
            w.nodes[nid] = None
            w.failed[nid] = f"{nid}: {type(exc).__name__}: {exc}"
            w.timers[nid] = set()
            return False
        eff = ctx.effects
        for k, v in eff.persists:
            w.storage[nid][k] = v
        view = self.model.message_view
        for dst, msg in eff.sends:
            if view is not None:
                msg = view(msg)
            if self.bounds.duplicates is None and (nid, dst, msg) in w.net:
                continue
            w.net.append((nid, dst, msg))
        for name, delay in eff.timers:
            if delay is None:
                w.timers[nid].discard(name)
            else:
                w.timers[nid].add(name)
        if self.model.remember is not None:
            w.memory = w.memory | frozenset(self.model.remember(nid, node))
        return True

    def boot(self, w: _World, nid: str) -> None:
        w.nodes[nid] = self.model.factories[nid](nid)
        w.timers[nid] = set()
        self.run(w, nid, lambda node, ctx: node.on_start(ctx))

    def key(self, w: _World) -> Any:
        return (
            tuple(
                (freeze(n, self.model.skip) if n is not None else w.failed.get(nid))
                for nid, n in w.nodes.items()
            ),
            tuple(freeze(w.storage[nid]) for nid in self.model.ids),
            tuple(tuple(sorted(w.timers[nid])) for nid in self.model.ids),
            tuple(sorted(encode(freeze(m)) for m in w.net)),
            w.memory,
            w.time,
            tuple(sorted(w.used.items())),
        )

    def within(self, w: _World) -> bool:
        b = self.bounds
        if b.in_flight is not None and len(w.net) > b.in_flight:
            return False
        for name, limit in b.limits.items():
            for n in w.nodes.values():
                if n is not None and self.model.measures[name](n) > limit:
                    return False
        return True

    def successors(self, w: _World) -> list[tuple[Action, _World]]:
        b, m = self.bounds, self.model
        out: list[tuple[Action, _World]] = []
        keep = b.duplicates is None

        def fork() -> _World:
            return copy.deepcopy(w)

        seen: list = []
        for k, (src, dst, msg) in enumerate(w.net):
            if (src, dst, msg) in seen:
                continue
            seen.append((src, dst, msg))
            if w.nodes[dst] is None:
                continue
            t = fork()
            if not keep:
                del t.net[k]
            self.run(t, dst, lambda node, ctx, src=src, msg=msg: node.on_message(ctx, src, msg))
            out.append((Action(Act.DELIVER, dst, src, msg), t))
        for nid in m.ids:
            for name in sorted(w.timers.get(nid, ())):
                if name in b.fires and w.used.get("fire " + name, 0) >= b.fires[name]:
                    continue
                t = fork()
                t.timers[nid].discard(name)
                if name in b.fires:
                    t.used["fire " + name] = t.used.get("fire " + name, 0) + 1
                self.run(t, nid, lambda node, ctx, name=name: node.on_timer(ctx, name))
                out.append((Action(Act.TIMEOUT, nid, timer=name), t))
        for j, inp in enumerate(m.inputs):
            if w.used.get(f"input {j}"):
                continue
            for nid in m.ids:
                node = w.nodes[nid]
                if node is None or (inp.nodes is not None and nid not in inp.nodes):
                    continue
                if inp.when is not None and not inp.when(node):
                    continue
                t = fork()
                t.used[f"input {j}"] = 1
                self.run(t, nid, inp.call)
                out.append((Action(Act.INPUT, nid, label=inp.label), t))
        if b.drops and w.used.get("drops", 0) < b.drops:
            for k, (src, dst, msg) in enumerate(w.net):
                t = fork()
                del t.net[k]
                t.used["drops"] = t.used.get("drops", 0) + 1
                out.append((Action(Act.DROP, dst, src, msg), t))
        if b.duplicates and w.used.get("duplicates", 0) < b.duplicates:
            for src, dst, msg in w.net:
                t = fork()
                t.net.append((src, dst, msg))
                t.used["duplicates"] = t.used.get("duplicates", 0) + 1
                out.append((Action(Act.DUPLICATE, dst, src, msg), t))
        if b.crashes and w.used.get("crashes", 0) < b.crashes:
            for nid in m.ids:
                if w.nodes[nid] is None:
                    continue
                t = fork()
                t.nodes[nid] = None
                t.timers[nid] = set()
                t.net = [x for x in t.net if x[1] != nid]
                t.used["crashes"] = t.used.get("crashes", 0) + 1
                out.append((Action(Act.CRASH, nid), t))
        if b.restarts and w.used.get("restarts", 0) < b.restarts:
            for nid in m.ids:
                if w.nodes[nid] is not None or nid in w.failed:
                    continue
                t = fork()
                t.used["restarts"] = t.used.get("restarts", 0) + 1
                self.boot(t, nid)
                out.append((Action(Act.RESTART, nid), t))
        if b.ticks and w.time < b.ticks:
            t = fork()
            t.time += 1
            out.append((Action(Act.TICK), t))
        return [(a, t) for a, t in out if self.within(t)]


def naive_bfs(
    model: Model,
    invariants: Mapping[str, Invariant] | Sequence[Invariant] | Invariant,
    bounds: Bounds | None = None,
    *,
    max_states: int | None = None,
    seconds: float | None = None,
) -> NaiveResult:
    """Breadth-first search with a deep copy of the whole state per successor.

    Stops after ``max_states`` distinct states or ``seconds`` of searching
    (whichever comes first), if given.
    """
    valid.instance("model", model, Model)
    bounds = model.check_bounds(Bounds() if bounds is None else bounds)
    invs = invariant_list(invariants)
    valid.integer("max_states", max_states, ge=1, none=True)
    valid.number("seconds", seconds, gt=0, unit="seconds", none=True)
    search = _Naive(model, bounds)
    start = time.perf_counter()
    w0 = _World()
    for nid in model.ids:
        w0.storage[nid] = {}
    for nid in model.ids:
        search.boot(w0, nid)
    seen = {search.key(w0): ()}
    queue: deque[tuple[_World, tuple[Action, ...]]] = deque([(w0, ())])
    explored, depth, stopped = 1, 0, False
    found = check_state(_View(w0), invs)  # type: ignore[arg-type]
    if found is not None:
        return NaiveResult(1, 1, 0, time.perf_counter() - start, False, (found[0], found[1], ()))
    while queue:
        w, path = queue.popleft()
        depth = max(depth, len(path))
        if bounds.depth is not None and len(path) >= bounds.depth:
            continue
        for a, t in search.successors(w):
            explored += 1
            k = search.key(t)
            if k in seen:
                continue
            seen[k] = ()
            run = (*path, a)
            found = check_state(_View(t), invs)  # type: ignore[arg-type]
            if found is not None:
                name = HANDLERS_DO_NOT_RAISE if t.failed else found[0]
                return NaiveResult(
                    explored, len(seen), len(run), time.perf_counter() - start, False, (name, found[1], run)
                )
            queue.append((t, run))
            if (max_states is not None and len(seen) >= max_states) or (
                seconds is not None and time.perf_counter() - start > seconds
            ):
                stopped = True
                queue.clear()
                break
    return NaiveResult(explored, len(seen), depth, time.perf_counter() - start, not stopped, None)
