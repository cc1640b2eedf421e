"""Searching a model's state space: breadth-first, depth-first and random walks.

An **invariant** is a plain Python predicate over a :class:`~labkit.explore.space.State`:
it returns ``True`` when the state is fine and ``False`` when it is not, or
(like the checks in :mod:`labkit.raft.invariants`) a list of what is wrong,
empty when all is well. Each search checks every state it reaches against
every invariant, plus one it always adds: *no handler raises*.

* :func:`bfs` visits states in order of distance from the start, so the
  first violation it meets is at the end of a **shortest** run (TLC's
  default mode; Yu, Manolios and Lamport 1999).
* :func:`dfs` goes deep first, up to ``depth`` steps; it needs less memory
  and finds *a* violation, not the shortest.
* :func:`random_walk` takes random steps from the start, many times: for
  spaces too big to exhaust.

Each returns a :class:`Result`: how many states it explored (successors
generated) and how many were distinct, the depth reached, the time taken,
and either "no violation within the bounds" or the :class:`Violation` with
its run, which replays in the simulator (:mod:`labkit.explore.replay`) and
draws on the space-time diagram.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.explore.model import Action, Bounds, Model
from labkit.explore.space import Space, State, StateKey, Step

__all__ = [
    "Invariant",
    "Result",
    "Violation",
    "bfs",
    "dfs",
    "random_walk",
    "check_state",
    "HANDLERS_DO_NOT_RAISE",
]

Invariant = Callable[[State], Any]
HANDLERS_DO_NOT_RAISE = "Handlers do not raise"
MAX_STATES = 20_000_000


def invariant_list(
    invariants: Mapping[str, Invariant] | Sequence[Invariant] | Invariant,
) -> list[tuple[str, Invariant]]:
    """``(name, predicate)`` pairs from a dict, a list of functions or one function."""
    if callable(invariants) and not isinstance(invariants, Mapping):
        invariants = [invariants]
    if isinstance(invariants, Mapping):
        pairs = list(invariants.items())
    elif isinstance(invariants, (str, bytes)) or not isinstance(invariants, Iterable):
        raise valid.ArgumentTypeError(
            f"invariants must be a function, a list of functions or a dict name -> function, got {valid.shown(invariants)}"
        )
    else:
        pairs = [(getattr(fn, "name", None) or getattr(fn, "__name__", repr(fn)), fn) for fn in invariants]
    for name, fn in pairs:
        valid.string("invariant name", name)
        valid.function(f"invariant {name!r}", fn, "a function state -> bool")
    return pairs


def check_state(state: State, invariants: list[tuple[str, Invariant]]) -> tuple[str, str] | None:
    """The first invariant ``state`` breaks, as ``(name, what is wrong)``, or None."""
    if state.failed:
        return HANDLERS_DO_NOT_RAISE, "; ".join(state.errors.values())
    for name, fn in invariants:
        verdict = fn(state)
        if verdict is True or verdict is None:
            continue
        if verdict is False:
            return (
                name,
                f"{name} returned False for this state ({_brief(state)}); return a list of what is wrong to be told why",
            )
        if isinstance(verdict, str):
            if verdict:
                return name, verdict
            continue
        if isinstance(verdict, Iterable):
            found = list(verdict)
            if found:
                return name, "; ".join(map(str, found))
            continue
        raise TypeError(f"invariant {name!r} must return a bool or a list of what is wrong, got {verdict!r}")
    return None


def _brief(state: State) -> str:
    """A few words on each node of ``state`` (the first two columns its model's ``describe`` shows) and on
    the messages in flight."""
    space = getattr(state, "space", None)
    describe = space.model.describe if space is not None else None
    parts = []
    for nid, node in state.nodes.items():
        cols = list(describe(node).items())[:2] if describe is not None and node is not None else []
        shown = ", ".join(f"{k} {v}" for k, v in cols) if cols else ("up" if node is not None else "down")
        parts.append(f"{nid}: {shown}")
    flying = len(state.in_flight)
    return "; ".join(parts) + f"; {flying} message{'s' * (flying != 1)} in flight"


def where(steps: int) -> str:
    """Where a run of ``steps`` steps ends, in words: "in the start state" or "after 3 steps"."""
    return "in the start state, before any step" if steps == 0 else f"after {steps} step{'s' * (steps != 1)}"


@dataclass(frozen=True, slots=True)
class Violation:
    """A run that breaks an invariant: ``actions`` from the start lead to a state where
    ``invariant`` does not hold, for the reason in ``message``."""

    invariant: str
    message: str
    actions: tuple[Action, ...]
    prefix: int = 0  # how many of the actions led to the state the search started from

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def reason(self) -> str:
        """``message`` without the invariant's name in front (labkit.raft's messages start with it)."""
        return without_name(self.invariant, self.message)

    def __str__(self) -> str:
        steps = "\n".join(f"  {i:>2}. {a}" for i, a in enumerate(self.actions, 1))
        return f"{self.invariant} violated {where(len(self.actions))}: {self.reason}" + (
            f"\n{steps}" if steps else ""
        )


def without_name(invariant: str, message: str) -> str:
    """``message`` with a leading ``"<invariant>: "`` removed, so the name is not printed twice."""
    head = f"{invariant}: "
    return message[len(head) :] if message.startswith(head) else message


@dataclass(frozen=True, slots=True)
class Result:
    """What a search found.

    ``explored``: successor states generated (with repeats); ``distinct``:
    distinct states reached (up to symmetry); ``depth``: the longest run
    from the start it looked at; ``pruned``: steps left out because they
    would break a bound; ``exhausted``: True when every state within the
    bounds was visited (a "no violation" then covers all of them);
    ``violation``: the first violation found, or None.
    """

    model: Model
    strategy: str
    bounds: Bounds
    explored: int
    distinct: int
    depth: int
    seconds: float
    exhausted: bool
    pruned: int
    violation: Violation | None
    space: Space
    symmetry: bool = False
    start: tuple[Action, ...] = ()
    invariants: tuple[tuple[str, Invariant], ...] = ()

    @property
    def ok(self) -> bool:
        """True when no violation was found."""
        return self.violation is None

    @property
    def states_per_second(self) -> float:
        return self.explored / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        """One paragraph in words."""
        how = f"{self.strategy}{' with symmetry reduction' if self.symmetry else ''}"
        head = (
            f"{self.model.name}, {how}, bounds: {self.bounds}: explored {self.explored:,} "
            f"state{'s' * (self.explored != 1)} "
            f"({self.distinct:,} distinct), depth {self.depth}, {self.seconds:.2f} s"
        )
        if self.violation is None:
            tail = "no violation within the bounds" + (
                "" if self.exhausted else " (search stopped before exhausting them)"
            )
        else:
            tail = (
                f"{self.violation.invariant} violated {where(len(self.violation))}: {self.violation.reason}"
            )
        return f"{head}: {tail}."

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        import html

        text = html.escape(self.summary())
        if self.violation is None:
            return f"<p>{text}</p>"
        steps = "".join(f"<li>{html.escape(str(a))}</li>" for a in self.violation.actions)
        return f"<p>{text}</p><ol>{steps}</ol>"

    def replay(self) -> Any:
        """Replay the violating run in the simulator (:func:`labkit.explore.replay.replay`),
        checking the invariants after each step and each node against the states found here."""
        from labkit.explore.replay import replay

        if self.violation is None:
            raise ValueError("the search found no violation: there is no run to replay")
        return replay(
            self.model,
            self.violation.actions,
            dict(self.invariants),
            bounds=self.bounds,
            expected=self.states(),
        )

    def trace(self) -> Any:
        """The violating run as a simulator :class:`~labkit.sim.Trace` (step *i* at time *i*)."""
        from labkit.explore.replay import trace_of

        if self.violation is None:
            raise ValueError("the search found no violation: there is no run to draw")
        v = self.violation
        return trace_of(self.space, v.actions, violation=(v.invariant, v.message))

    def states(self) -> list[State]:
        """The states along the violating run, from the start (empty if there is none)."""
        if self.violation is None:
            return []
        sp = self.space
        s = sp.initial()
        out = [sp.view(s)]
        for a in self.violation.actions:
            s = sp.step(s, sp.find_step(s, a))[0]
            out.append(sp.view(s))
        return out


class _Progress:
    """A progress bar that appears only once a search has run for a second."""

    def __init__(self, enabled: bool | None, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self.start = time.perf_counter()
        self.bar: Any = None

    def update(self, explored: int, distinct: int, depth: int) -> None:
        if self.enabled is False:
            return
        if self.bar is None:
            if self.enabled is None and time.perf_counter() - self.start < 1.0:
                return
            from tqdm.auto import tqdm

            self.bar = tqdm(desc=self.label, unit=" states", mininterval=0.5)
        self.bar.n = explored
        self.bar.set_postfix(distinct=f"{distinct:,}", depth=depth, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _setup(model: Model, invariants: Any, bounds: Bounds | None, symmetry: bool) -> tuple[Space, list]:
    valid.instance("model", model, Model)
    valid.instance("bounds", bounds, Bounds, none=True)
    valid.boolean("symmetry", symmetry)
    space = Space(model, bounds)
    if not symmetry:
        space._perms = []
    return space, invariant_list(invariants)


def _start(start: Sequence[Action]) -> tuple[Action, ...]:
    valid.collection("start", start, "a list of Action", Sequence)
    for i, a in enumerate(start):
        valid.instance(f"start[{i}]", a, Action)
    return tuple(start)


def _path(parents: list[int], steps: list[Step | None], j: int, space: Space) -> tuple[Action, ...]:
    out = []
    while j > 0:
        out.append(space.action(steps[j]))  # type: ignore[arg-type]
        j = parents[j]
    return tuple(reversed(out))


def bfs(
    model: Model,
    invariants: Mapping[str, Invariant] | Sequence[Invariant] | Invariant,
    bounds: Bounds | None = None,
    *,
    symmetry: bool = True,
    start: Sequence[Action] = (),
    max_states: int | None = None,
    progress: bool | None = None,
) -> Result:
    """Breadth-first search: the first violation found has a shortest run.

    ``symmetry`` uses the model's interchangeable nodes (if it names any);
    ``max_states`` stops after that many distinct states; ``progress`` shows a
    progress bar (None: only once the search has run for a second).
    ``start``: actions that lead to the state the search starts from (the
    run found then begins with them; "shortest" counts from there).
    """
    space, invs = _setup(model, invariants, bounds, symmetry)
    limit = valid.integer("max_states", max_states, ge=1, le=MAX_STATES, none=True) or MAX_STATES
    prefix = _start(start)
    bar = _Progress(progress, f"bfs {model.name}")
    began = time.perf_counter()
    depth_bound = space.bounds.depth
    s0 = space.after(prefix)
    seen: dict[StateKey, int] = {space.key(s0): 0}
    parents: list[int] = [-1]
    steps: list[Step | None] = [None]
    explored, depth, violation, exhausted = 1, 0, None, False
    found = check_state(space.view(s0), invs)
    if found is not None:
        violation = Violation(found[0], found[1], prefix, len(prefix))
    queue: deque[tuple[StateKey, int, int]] = deque([(s0, 0, 0)])
    key, successors = space.key, space.successors
    try:
        while queue and violation is None:
            s, i, d = queue.popleft()
            if d > depth:
                depth = d
            if depth_bound is not None and d >= depth_bound:
                continue
            for step, t in successors(s):
                explored += 1
                if t in seen:
                    continue
                k = key(t)
                if k is not t:
                    known = seen.get(k)
                    if known is not None:
                        seen[t] = known  # remember the renaming too: the next meeting costs one lookup
                        continue
                j = len(parents)
                seen[k] = j
                if k is not t:
                    seen[t] = j
                parents.append(i)
                steps.append(step)
                found = check_state(space.view(t), invs)
                if found is not None:
                    violation = Violation(
                        found[0], found[1], prefix + _path(parents, steps, j, space), len(prefix)
                    )
                    depth = d + 1
                    break
                queue.append((t, j, d + 1))
                if j >= limit:
                    queue.clear()
                    break
            if not explored & 0xFFF:
                bar.update(explored, len(parents), depth)
        exhausted = violation is None and len(parents) < limit
    finally:
        bar.close()
    return Result(
        model, "breadth-first", space.bounds, explored, len(parents), depth, time.perf_counter() - began,
        exhausted, space.pruned, violation, space, bool(space._perms), prefix, tuple(invs),
    )  # fmt: skip


def dfs(
    model: Model,
    invariants: Mapping[str, Invariant] | Sequence[Invariant] | Invariant,
    bounds: Bounds | None = None,
    *,
    depth: int = 30,
    symmetry: bool = True,
    max_states: int | None = None,
    progress: bool | None = None,
) -> Result:
    """Depth-first search up to ``depth`` steps (or ``bounds.depth``, the smaller).

    A state seen before is explored again only if reached by a shorter run,
    so every state within ``depth`` steps is visited. The violation found is
    *a* run that breaks an invariant, not necessarily the shortest.
    """
    space, invs = _setup(model, invariants, bounds, symmetry)
    valid.integer("depth", depth, ge=0, le=100_000)
    if space.bounds.depth is not None:
        depth = min(depth, space.bounds.depth)
    limit = valid.integer("max_states", max_states, ge=1, le=MAX_STATES, none=True) or MAX_STATES
    bar = _Progress(progress, f"dfs {model.name}")
    start = time.perf_counter()
    s0 = space.initial()
    best: dict[StateKey, int] = {space.key(s0): 0}
    explored, deepest, violation, stopped = 1, 0, None, False
    found = check_state(space.view(s0), invs)
    if found is not None:
        violation = Violation(found[0], found[1], ())
    path: list[Step] = []
    stack: list[tuple[StateKey, list]] = [(s0, space.successors(s0))] if violation is None else []
    key = space.key
    try:
        while stack:
            s, todo = stack[-1]
            if not todo or len(path) >= depth:
                stack.pop()
                if path:
                    path.pop()
                continue
            step, t = todo.pop(0)
            explored += 1
            d = len(path) + 1
            k = key(t)
            prev = best.get(k)
            if prev is not None and prev <= d:
                continue
            best[k] = d
            deepest = max(deepest, d)
            found = check_state(space.view(t), invs)
            if found is not None:
                violation = Violation(found[0], found[1], tuple(space.action(x) for x in (*path, step)))
                break
            if len(best) >= limit:
                stopped = True
                break
            path.append(step)
            stack.append((t, space.successors(t) if d < depth else []))
            if not explored & 0xFFF:
                bar.update(explored, len(best), deepest)
    finally:
        bar.close()
    return Result(
        model, f"depth-first (depth ≤ {depth})", space.bounds, explored, len(best), deepest,
        time.perf_counter() - start, violation is None and not stopped, space.pruned, violation, space,
        bool(space._perms), (), tuple(invs),
    )  # fmt: skip


def random_walk(
    model: Model,
    invariants: Mapping[str, Invariant] | Sequence[Invariant] | Invariant,
    bounds: Bounds | None = None,
    *,
    walks: int = 1000,
    depth: int = 50,
    seed: int = 0,
    progress: bool | None = None,
) -> Result:
    """``walks`` random runs of up to ``depth`` steps each, from the start.

    Each step picks one enabled action uniformly at random (seeded by
    ``seed``). Cheap and memory-light for spaces too large to exhaust; it
    finds *a* violation if one is likely, and proves nothing when it finds
    none (``exhausted`` is always False).
    """
    space, invs = _setup(model, invariants, bounds, False)
    valid.integer("walks", walks, ge=1, le=10_000_000)
    valid.integer("depth", depth, ge=1, le=100_000)
    valid.integer("seed", seed)
    if space.bounds.depth is not None:
        depth = min(depth, space.bounds.depth)
    rng = random.Random(seed)
    bar = _Progress(progress, f"random walks {model.name}")
    start = time.perf_counter()
    s0 = space.initial()
    seen = {s0}
    explored, deepest, violation = 1, 0, None
    found = check_state(space.view(s0), invs)
    if found is not None:
        violation = Violation(found[0], found[1], ())
    try:
        for _ in range(walks if violation is None else 0):
            s, path = s0, []
            for _d in range(depth):
                options = space.successors(s)
                if not options:
                    break
                step, s = options[rng.randrange(len(options))]
                path.append(step)
                explored += 1
                if s not in seen:
                    seen.add(s)
                    found = check_state(space.view(s), invs)
                    if found is not None:
                        violation = Violation(found[0], found[1], tuple(space.action(x) for x in path))
                        break
            deepest = max(deepest, len(path))
            if violation is not None:
                break
            bar.update(explored, len(seen), deepest)
    finally:
        bar.close()
    return Result(
        model, f"{walks:,} random walks (depth ≤ {depth}, seed {seed})", space.bounds, explored, len(seen),
        deepest, time.perf_counter() - start, False, space.pruned, violation, space, False, (), tuple(invs),
    )  # fmt: skip
