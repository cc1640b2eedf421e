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

More reductions, all sound (the tests compare the checker with a brute-force
one on random histories):

* P-compositionality (Horn & Kroening, FORTE 2015): when the model splits the
  history into independent parts (the keys of a key-value store), each part
  is checked alone, and checking stops at the first part that fails.
* An optional operation (unknown output) that does not change the state is
  never worth placing: not placing it leaves every future open.
* Of several unplaced optional operations with equal inputs, only the one
  called first is tried.
* The search first allows no optional operation to be placed, then any
  number, so the ones a history does not need usually cost nothing.
* A read (see :meth:`Model.read_only`) that fits is placed at once, without
  trying alternatives; and a configuration that has used more optional
  operations than an explored one with the same sure operations and state is
  not explored again.

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
            # The search compares inputs of optional operations and memoises states:
            # both must be hashable, which is cheaper to say now than mid-search.
            hash(op.input)
            # Also surfaces an unsupported input before the search.
            _output, state = model.apply(init, op.input)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"history[{i}] ({op!r}) is not valid for {model!r}: {exc}") from None
        try:
            hash(state)
        except TypeError:
            raise TypeError(
                f"{model!r}.apply returned an unhashable state {state!r} for history[{i}]; "
                "states must be hashable (use tuples or frozensets, not lists or sets)"
            ) from None
        parts.setdefault(key, []).append(i)
    return parts


def _caps(m: int) -> tuple[int, ...]:
    """How many optional operations each pass of the search may place.

    First none, then any number: measured on the benchmark's histories, this
    beat one pass, 0-1-2-all and doubling caps in total and worst-case steps
    for linearizable histories, at some cost for the worst non-linearizable one.
    """
    return (0, m)


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
    apply = model.apply
    # "Sure" operations have a known output and a deadline (their return);
    # optional ones (unknown output) have neither, so they stay out of the
    # event list, sorted by call, and are tried after the sure candidates.
    read_only = getattr(model, "read_only", None)
    sure = [g for g in ids if ops[g].output is not UNKNOWN]
    # An optional read-only operation never changes the state: never worth placing.
    maybe = sorted(
        (g for g in ids if ops[g].output is UNKNOWN and not (read_only and read_only(ops[g].input, UNKNOWN))),
        key=lambda g: (ops[g].call, g),
    )
    n, m = len(sure), len(maybe)
    # Local op k is sure[k] for k < n and maybe[k - n] otherwise; bit k of `placed`.
    glob = sure + maybe
    inputs = [ops[g].input for g in glob]
    outputs = [ops[g].output for g in sure]
    forced = [bool(read_only(ops[g].input, ops[g].output)) if read_only else False for g in sure]
    opt_call = [ops[g].call for g in maybe]

    # Events of sure operations as a doubly linked list: entry 2*k is the call
    # of k, 2*k + 1 its return; entry 2*n is the head sentinel, -1 the end.
    # Calls sort before returns at equal times: touching intervals are concurrent.
    events = sorted(
        [(ops[g].call, 0, k) for k, g in enumerate(sure)] + [(ops[g].ret, 1, k) for k, g in enumerate(sure)]
    )
    when = [0.0] * (2 * n)
    head = 2 * n
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    last = head
    for t, kind, k in events:
        e = 2 * k + kind
        when[e] = t
        nxt[last] = e
        prv[e] = last
        last = e

    def lift(k: int) -> None:
        for e in (2 * k, 2 * k + 1):
            p, q = prv[e], nxt[e]
            nxt[p] = q
            if q != -1:
                prv[q] = p

    def unlift(k: int) -> None:
        for e in (2 * k + 1, 2 * k):  # reverse order of lift
            p, q = prv[e], nxt[e]
            nxt[p] = e
            if q != -1:
                prv[q] = e

    sure_mask = (1 << n) - 1

    def run(cap: int) -> tuple[Verdict, tuple[int, ...], int | None, Any, int, bool]:
        """One depth-first search placing at most ``cap`` optional operations.

        Returns (verdict, order, blocked, state, steps, capped); ``capped`` is
        True if the cap kept some optional operation from being tried, so a
        "not linearizable" is final only when it is False.
        """
        # Lowe's memo, keyed by (sure operations placed, state). Every
        # configuration in it has been explored and failed (placed sets grow
        # along a path, so none is still in progress). A configuration that has
        # placed a superset of the optional operations of a failed one fails
        # too: it has fewer left to use (and no more of the cap), all else equal.
        memo: dict[tuple[int, Any], list[int]] = {}
        capped = False

        def seen(placed: int, state: Any) -> bool:
            key = (placed & sure_mask, state)
            extra = placed >> n
            failed = memo.get(key)
            if failed is None:
                memo[key] = [extra]
                return False
            for other in failed:
                if other & ~extra == 0:  # other is a subset of extra
                    return True
            failed.append(extra)
            return False

        def candidates(placed: int, state: Any, optional_left: int) -> tuple[list[tuple[int, Any]], int, int]:
            """(candidates, first return event, work) for the current configuration.

            A sure candidate that fits and is read-only (see
            :meth:`Model.read_only`) is *forced*: placing it now is never worse
            than later (it changes no state in any order, and every operation
            still unplaced returns after its call, so real-time order allows it
            here), so it is the only candidate.
            """
            nonlocal capped
            cands: list[tuple[int, Any]] = []
            e = nxt[head]
            work = 1
            while e != -1 and not e & 1:
                k = e >> 1
                out, new_state = apply(state, inputs[k])
                work += 1
                if out == outputs[k]:
                    if forced[k] and new_state == state:
                        return [(k, new_state)], e, work
                    cands.append((k, new_state))
                e = nxt[e]
            if e == -1:
                return cands, -1, work
            deadline = when[e]
            tried = set()
            for j in range(m):
                if opt_call[j] > deadline:
                    break
                k = n + j
                if not placed >> k & 1:
                    if optional_left <= 0:
                        capped = True
                        break
                    # Optional operations with equal inputs are interchangeable; the
                    # earliest called is available whenever a later one is.
                    if inputs[k] in tried:
                        continue
                    tried.add(inputs[k])
                    _, new_state = apply(state, inputs[k])
                    work += 1
                    # Placing one that changes nothing is never needed.
                    if new_state != state:
                        cands.append((k, new_state))
            return cands, e, work

        # Invariant: `placed` has bit k set exactly for the operations on `path`,
        # `state` is the model state after applying them in path order, the linked
        # list holds exactly the events of the sure operations not placed, and
        # `used` counts the optional operations on `path`.
        path: list[
            tuple[int, Any, list[tuple[int, Any]], int, int]
        ] = []  # (op, state before, cands, next, ret)
        placed = 0
        used = 0
        state = init
        best: tuple[tuple[int, ...], int | None, Any] = ((), None, init)
        best_len = -1
        step_limit = budget.steps_left
        cands, first_ret, steps = candidates(placed, state, cap)
        idx = 0
        clock = steps + _CLOCK_EVERY
        while first_ret != -1:  # while some sure operation is left
            if steps > step_limit or (steps > clock and time.monotonic() > budget.deadline):
                return Verdict.UNDECIDED, tuple(glob[k] for k, *_ in path), None, state, steps, capped
            if steps > clock:
                clock = steps + _CLOCK_EVERY
            if idx < len(cands):
                k, new_state = cands[idx]
                idx += 1
                new_placed = placed | (1 << k)
                steps += 1
                if seen(new_placed, new_state):
                    continue
                path.append((k, state, cands, idx, first_ret))
                if k < n:
                    lift(k)
                else:
                    used += 1
                placed, state = new_placed, new_state
                cands, first_ret, work = candidates(placed, state, cap - used)
                steps += work
                idx = 0
                continue
            # Nothing fits before the first return's deadline: backtrack.
            steps += 1
            # The longest partial linearization counts the sure operations placed.
            if (placed & sure_mask).bit_count() > best_len:
                best_len = (placed & sure_mask).bit_count()
                best = (tuple(glob[k] for k, *_ in path), glob[first_ret >> 1], state)
            if not path:
                return Verdict.NOT_LINEARIZABLE, best[0], best[1], best[2], steps, capped
            k, state, cands, idx, first_ret = path.pop()
            placed ^= 1 << k
            if k < n:
                unlift(k)
            else:
                used -= 1
        return Verdict.LINEARIZABLE, tuple(glob[k] for k, *_ in path), None, state, steps, capped

    # Deepening on the number of optional operations placed: most real
    # histories are explained with few of them, and a search that may place
    # any of them at any point explores every combination of the ones it does
    # not need. A "no" under a cap that held nothing back is final.
    # A history that is not linearizable pays for the capped pass on top of the
    # full search; one that is linearizable without optional operations (most
    # of them) never explores their combinations.
    total = 0
    for cap in _caps(m):
        verdict, order, blocked, state, steps, capped = run(cap)
        total += steps
        budget.steps_left -= steps
        if verdict is not Verdict.NOT_LINEARIZABLE or not capped or cap >= m:
            break
    return verdict, order, blocked, state, total


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
