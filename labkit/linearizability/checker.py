"""Deciding linearizability: Wing & Gong's search with Lowe's memoisation.

A history is *linearizable* (Herlihy & Wing 1990, §2) when every operation
can be given a single point in time between its call and its return such
that, executed one by one in the order of those points, the operations give
exactly the outputs the clients saw. Operations that never returned, or whose
output is unknown, may be given a point anywhere after their call, or none.

The search (Wing & Gong, "Testing and verifying concurrent objects", JPDC
1993) keeps the history as a doubly linked list of call and return events in
time order. An operation may go next only if its call comes before the first
return still in the list: otherwise some operation that already returned has
not been placed, and real-time order would be broken. Placing an operation
lifts its two events out of the list; when the first event in the list is a
return, the search backtracks. Lowe ("Testing for linearizability", CCPE
2017) adds the memoisation that makes this practical: two search paths that
have placed the same *set* of operations and reached the same model *state*
have the same future, so each (set, state) pair is explored once.

Two more reductions, both sound:

* P-compositionality (Horn & Kroening, FORTE 2015): when the model splits the
  history into independent parts (the keys of a key-value store), each part
  is checked alone, and checking stops at the first part that fails.
* An optional operation (unknown output) that does not change the state is
  never worth placing: not placing it leaves every future open.

The search has a budget (seconds and/or steps): deciding linearizability is
NP-complete (Gibbons & Korach 1997), so instead of hanging on a hard history
the checker answers :attr:`Verdict.UNDECIDED`. This is the one place in
labkit that reads the wall clock; it never affects a decided verdict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from labkit.linearizability.history import UNKNOWN, Operation, as_history
from labkit.linearizability.models import Model

__all__ = ["Verdict", "PartitionResult", "CheckResult", "check"]

# How many search steps between two looks at the clock.
_CLOCK_EVERY = 1024


class Verdict(Enum):
    """The checker's answer."""

    LINEARIZABLE = "linearizable"
    NOT_LINEARIZABLE = "not linearizable"
    UNDECIDED = "undecided (the time budget ran out)"


@dataclass(frozen=True, slots=True)
class PartitionResult:
    """The verdict on one independent part of a history.

    ``ops`` are the operation ids (positions in the history) of the part.
    For a linearizable part, ``order`` is a linearization: the ids of the
    operations that took effect, in order (optional operations left out
    did not take effect). For a failing part, ``order`` is the longest
    partial linearization the search found, ``blocked`` is the id of the
    operation that could not be placed after it, and ``state`` is the model
    state after ``order``.
    """

    key: Hashable
    ops: tuple[int, ...]
    verdict: Verdict
    order: tuple[int, ...]
    blocked: int | None
    state: Any
    steps: int


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` found.

    ``ok`` is ``True`` (linearizable), ``False`` (not linearizable) or ``None``
    (undecided: the budget ran out); ``verdict`` says the same as an Enum.
    To assert a violation, test ``result.ok is False``: ``not result.ok`` is
    also true when undecided.
    """

    verdict: Verdict
    history: tuple[Operation, ...] = field(repr=False)
    model: Model
    partitions: tuple[PartitionResult, ...] = field(repr=False)
    unchecked: tuple[Hashable, ...] = field(repr=False)
    steps: int

    @property
    def ok(self) -> bool | None:
        if self.verdict is Verdict.UNDECIDED:
            return None
        return self.verdict is Verdict.LINEARIZABLE

    @property
    def failure(self) -> PartitionResult | None:
        """The part that is not linearizable (or undecided), if any."""
        for part in self.partitions:
            if part.verdict is not Verdict.LINEARIZABLE:
                return part
        return None

    @property
    def linearization(self) -> tuple[int, ...] | None:
        """Ids of the operations that took effect, in one valid order (None unless linearizable)."""
        if self.verdict is not Verdict.LINEARIZABLE:
            return None
        from labkit.linearizability.explain import linearization_points

        points = linearization_points(self)
        # Points are non-decreasing along each part's order but may tie:
        # break ties by the position in the part's order.
        rank = {i: k for part in self.partitions for k, i in enumerate(part.order)}
        return tuple(sorted(points, key=lambda i: (points[i], rank[i])))

    @property
    def explanation(self) -> str | None:
        """Why the history is not linearizable, in words (None when it is)."""
        if self.verdict is Verdict.LINEARIZABLE:
            return None
        from labkit.linearizability.explain import explain

        return explain(self)

    def __str__(self) -> str:
        from labkit.linearizability.explain import explain

        return explain(self)


def _validate_model(model: Any) -> Hashable:
    if not (callable(getattr(model, "init", None)) and callable(getattr(model, "apply", None))):
        raise TypeError(
            f"model must have init() and apply(state, input) methods (subclass labkit.linearizability.Model), "
            f"got {model!r}"
        )
    init = model.init()
    try:
        hash(init)
    except TypeError:
        raise TypeError(f"model.init() must return a hashable state, got {init!r}") from None
    return init


def _partitions(ops: tuple[Operation, ...], model: Any, init: Hashable) -> dict[Hashable, list[int]]:
    part_of = getattr(model, "partition", None)
    parts: dict[Hashable, list[int]] = {}
    # Visit in call order so parts are checked in the order they started.
    for i in sorted(range(len(ops)), key=lambda j: (ops[j].call, j)):
        op = ops[i]
        try:
            key = part_of(op.input) if part_of is not None else None
            hash(key)
            model.apply(init, op.input)  # surfaces an unsupported input before the search
        except (ValueError, TypeError) as exc:
            raise ValueError(f"history[{i}] ({op!r}) is not valid for {model!r}: {exc}") from None
        parts.setdefault(key, []).append(i)
    return parts


class _Budget:
    __slots__ = ("deadline", "steps_left")

    def __init__(self, timeout: float | None, max_steps: int | None) -> None:
        self.deadline = math.inf if timeout is None else time.monotonic() + timeout
        self.steps_left = math.inf if max_steps is None else max_steps


def _search(
    ops: tuple[Operation, ...], ids: list[int], model: Any, init: Hashable, budget: _Budget
) -> tuple[Verdict, tuple[int, ...], int | None, Any, int]:
    """Wing & Gong / Lowe on the operations ``ids``; see the module docstring.

    Returns (verdict, order, blocked, state, steps) with history ids.
    """
    n = len(ids)
    apply = model.apply
    inputs = [ops[g].input for g in ids]
    outputs = [ops[g].output for g in ids]
    optional = [out is UNKNOWN for out in outputs]

    # Events as entries of a doubly linked list: entry 2*i is the call of local
    # operation i, 2*i + 1 its return; entry 2*n is the head sentinel, -1 the end.
    # Calls sort before returns at equal times: touching intervals are concurrent.
    events = sorted(
        [(ops[g].call, 0, i) for i, g in enumerate(ids)]
        + [(ops[g].latest_effect, 1, i) for i, g in enumerate(ids)]
    )
    head = 2 * n
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    last = head
    for _, kind, i in events:
        e = 2 * i + kind
        nxt[last] = e
        prv[e] = last
        last = e

    def lift(i: int) -> None:
        for e in (2 * i, 2 * i + 1):
            p, q = prv[e], nxt[e]
            nxt[p] = q
            if q != -1:
                prv[q] = p

    def unlift(i: int) -> None:
        for e in (2 * i + 1, 2 * i):  # reverse order of lift
            p, q = prv[e], nxt[e]
            nxt[p] = e
            if q != -1:
                prv[q] = e

    # Invariant: `placed` has bit i set exactly for the operations on `stack`,
    # and `state` is the model state after applying them in stack order.
    cache: set[tuple[int, Any]] = set()
    stack: list[tuple[int, Any]] = []  # (local op, state before it)
    placed = 0
    state = init
    best: tuple[tuple[int, ...], int | None, Any] = ((), None, init)
    best_len = -1
    steps = 0
    step_limit = budget.steps_left
    e = nxt[head]
    while True:
        steps += 1
        if steps > step_limit or (steps % _CLOCK_EVERY == 0 and time.monotonic() > budget.deadline):
            budget.steps_left -= steps
            order = tuple(ids[i] for i, _ in stack)
            return Verdict.UNDECIDED, order, None, state, steps
        if e == -1:  # every event lifted: everything placed
            break
        i = e >> 1
        if not e & 1:  # a call: try to place operation i next
            out, new_state = apply(state, inputs[i])
            if optional[i]:
                if new_state == state:  # placing it changes nothing: never needed
                    e = nxt[e]
                    continue
            elif out != outputs[i]:
                e = nxt[e]
                continue
            new_placed = placed | (1 << i)
            key = (new_placed, new_state)
            if key in cache:
                e = nxt[e]
                continue
            cache.add(key)
            stack.append((i, state))
            placed, state = new_placed, new_state
            lift(i)
            e = nxt[head]
        else:  # a return: operation i had to be placed before this point
            if optional[i]:
                # Optional returns sort last (at infinity): every operation
                # with a known output has been placed.
                break
            if len(stack) > best_len:
                best_len = len(stack)
                best = (tuple(ids[j] for j, _ in stack), ids[i], state)
            if not stack:
                budget.steps_left -= steps
                return Verdict.NOT_LINEARIZABLE, best[0], best[1], best[2], steps
            i, state = stack.pop()
            placed ^= 1 << i
            unlift(i)
            e = nxt[2 * i]
    budget.steps_left -= steps
    return Verdict.LINEARIZABLE, tuple(ids[i] for i, _ in stack), None, state, steps


def check(
    history: Iterable[Operation],
    model: Model,
    *,
    timeout: float | None = 10.0,
    max_steps: int | None = None,
) -> CheckResult:
    """Decide whether ``history`` is linearizable with respect to ``model``.

    ``timeout`` (seconds, wall clock) and ``max_steps`` (search steps,
    deterministic) bound the search; ``None`` means no bound. When a bound
    is hit, the verdict is :attr:`Verdict.UNDECIDED` (``result.ok is None``).
    Parts (see :meth:`Model.partition`) are checked in the order they were
    first called, stopping at the first part that is not linearizable.
    """
    ops = as_history(history)
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds (or None for no limit), got {timeout!r}")
    if max_steps is not None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int):
            raise TypeError(f"max_steps must be an int or None, got {max_steps!r}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 (or None for no limit), got {max_steps!r}")
    init = _validate_model(model)
    parts = _partitions(ops, model, init)
    budget = _Budget(timeout, max_steps)

    results: list[PartitionResult] = []
    total_steps = 0
    keys = list(parts)
    for k, key in enumerate(keys):
        ids = parts[key]
        v, order, blocked, state, steps = _search(ops, ids, model, init, budget)
        total_steps += steps
        results.append(PartitionResult(key, tuple(ids), v, order, blocked, state, steps))
        if v is not Verdict.LINEARIZABLE:
            # Not linearizable: one failing part decides. Undecided: the
            # budget is spent for the parts that follow too.
            return CheckResult(v, ops, model, tuple(results), tuple(keys[k + 1 :]), total_steps)
    return CheckResult(Verdict.LINEARIZABLE, ops, model, tuple(results), (), total_steps)
