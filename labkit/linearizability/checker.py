"""Deciding linearizability fast: the reference search with the speed-ups real histories need.

A history is *linearizable* (Herlihy & Wing 1990, §2) when every operation
can be given a single point in time between its call and its return such
that, executed one by one in the order of those points, the operations give
exactly the outputs the clients saw. Operations that never returned, or whose
output is unknown, may be given a point anywhere after their call, or none.

:mod:`~labkit.linearizability.reference` states the search in thirty lines:
Wing & Gong ("Testing and verifying concurrent objects", JPDC 1993) build the
order one operation at a time and back up when nothing fits; Lowe ("Testing
for linearizability", CCPE 2017) remembers every (set of placed operations,
state) pair that led nowhere. This module runs the same search, faster:

* :class:`_Events`: Wing & Gong's doubly linked list of calls and returns;
* :class:`_Memo`: Lowe's memo, which also prunes by the optional operations used;
* :meth:`_Search.candidates`: what may go next, and in which order;
* :meth:`_Search.depth_first`: the search itself, and :meth:`_Search.run`,
  which first tries to do without the operations of unknown outcome;
* :func:`_round_robin`: P-compositionality (Horn & Kroening, FORTE 2015):
  the independent parts of a history (the keys of a key-value store) are
  searched on their own, taking turns, and the check stops at the first
  part that fails.

The search has a budget (seconds and/or steps) shared by all parts: deciding
linearizability is NP-complete (Gibbons & Korach 1997), so instead of hanging
on a hard history the checker answers :attr:`Verdict.UNDECIDED`. This is the
one place in labkit that reads the wall clock; it never affects a decided
verdict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

from labkit import validation as valid
from labkit.linearizability.history import UNKNOWN, Operation, as_history
from labkit.linearizability.models import Model, checked_model
from labkit.linearizability.result import CheckResult, PartitionResult, Verdict

# Search steps a part takes before the next part's turn; the clock is read once a turn.
_SLICE = 1024


class _Events:
    """The calls and returns of the sure operations as a doubly linked list in time order.

    Entry ``2k`` is the call of operation ``k`` and ``2k + 1`` its return;
    ``head`` is a sentinel before the first entry and ``-1`` ends the list.
    Calls sort before returns at equal times: touching intervals are concurrent.
    """

    __slots__ = ("when", "nxt", "prv", "head")

    def __init__(self, intervals: list[tuple[float, float]]) -> None:
        n = len(intervals)
        events = sorted(
            [(c, 0, k) for k, (c, _) in enumerate(intervals)]
            + [(r, 1, k) for k, (_, r) in enumerate(intervals)]
        )
        self.when = [0.0] * (2 * n)
        self.head = 2 * n
        self.nxt = [-1] * (2 * n + 1)
        self.prv = [-1] * (2 * n + 1)
        last = self.head
        for t, kind, k in events:
            e = 2 * k + kind
            self.when[e] = t
            self.nxt[last] = e
            self.prv[e] = last
            last = e

    def lift(self, k: int) -> None:
        """Take operation ``k``'s call and return out of the list (it has been placed)."""
        nxt, prv = self.nxt, self.prv
        for e in (2 * k, 2 * k + 1):
            p, q = prv[e], nxt[e]
            nxt[p] = q
            if q != -1:
                prv[q] = p

    def unlift(self, k: int) -> None:
        """Put operation ``k``'s events back, undoing :meth:`lift` (entries remember their neighbours)."""
        nxt, prv = self.nxt, self.prv
        for e in (2 * k + 1, 2 * k):
            p, q = prv[e], nxt[e]
            nxt[p] = e
            if q != -1:
                prv[q] = e


class _Memo:
    """Lowe's memo: configurations explored and found to fail, by (sure operations placed, state).

    Placed sets only grow along a path, so nothing in the memo is still in
    progress. A configuration that has placed a superset of the optional
    operations of a failed one, all else equal, fails too: it has fewer left
    to use and no more of the cap.
    """

    __slots__ = ("failed", "n", "sure_mask")

    def __init__(self, n: int) -> None:
        self.failed: dict[tuple[int, Any], list[int]] = {}
        self.n = n
        self.sure_mask = (1 << n) - 1

    def seen(self, placed: int, state: Any) -> bool:
        """True if this configuration cannot succeed; otherwise remember it and return False."""
        key = (placed & self.sure_mask, state)
        extra = placed >> self.n
        failed = self.failed.get(key)
        if failed is None:
            self.failed[key] = [extra]
            return False
        for other in failed:
            if other & ~extra == 0:  # other is a subset of extra
                return True
        failed.append(extra)
        return False


class _Search:
    """The search for one part of a history; :meth:`run` takes turns until it has a verdict.

    Operations are renumbered locally: ``k < n`` are the sure ones (known
    output, a deadline at their return) and ``k >= n`` the optional ones
    (unknown output: no deadline, may be left out), sorted by call. Bit ``k``
    of ``placed`` says whether operation ``k`` has been placed.
    """

    def __init__(
        self, ops: tuple[Operation, ...], key: Hashable, ids: list[int], model: Any, init: Any
    ) -> None:
        self.key, self.ids, self.init = key, tuple(ids), init
        read_only = getattr(model, "read_only", None)
        sure = [g for g in ids if ops[g].output is not UNKNOWN]
        maybe = [g for g in ids if ops[g].output is UNKNOWN]
        if read_only:  # an optional read-only operation never changes the state: never worth placing
            maybe = [g for g in maybe if not read_only(ops[g].input, UNKNOWN)]
        maybe.sort(key=lambda g: (ops[g].call, g))
        self.n, self.m = len(sure), len(maybe)
        self.glob = sure + maybe  # local id -> history id
        self.inputs = [ops[g].input for g in self.glob]
        self.outputs = [ops[g].output for g in sure]
        self.forced = [bool(read_only(ops[g].input, ops[g].output)) if read_only else False for g in sure]
        self.opt_call = [ops[g].call for g in maybe]
        self.events = _Events([(ops[g].call, ops[g].ret) for g in sure])
        self.apply = model.apply
        self.steps = 0
        self.limit: float = 0  # how far this turn may go (set by the scheduler)
        self.order: tuple[int, ...] = ()  # where the search was when its turn ended
        self.state = init

    def result(
        self, verdict: Verdict, order: tuple[int, ...], blocked: int | None, state: Any
    ) -> PartitionResult:
        """The part's result in history ids (``order`` and ``blocked`` are local ids)."""
        glob = self.glob
        order_ids, blocked_id = tuple(glob[k] for k in order), None if blocked is None else glob[blocked]
        return PartitionResult(self.key, self.ids, verdict, order_ids, blocked_id, state, self.steps)

    def candidates(
        self, placed: int, state: Any, optional_left: int
    ) -> tuple[list[tuple[int, Any]], int, int, bool]:
        """What may be placed next: (candidates with their new states, first return event, work, capped).

        Sure operations called before the first return still in the
        list come first. One that fits and is read-only is *forced*: placing it
        now is never worse than later (it changes no state in any order, and
        every operation still unplaced returns after its call, so real-time
        order allows it here), so it is the only candidate. Then the optional
        operations called before that return; ``capped`` is True if
        ``optional_left`` kept one of them from being tried.

        Sure candidates are tried in the order they *returned*, the earliest
        first. That changes no verdict, only how soon a linearizable history
        meets its witness, which matters when the state remembers the order of
        the operations (appends of distinct values: no two orders reach the same
        state, so the memo merges nothing, and a wrong early choice shows only at
        the next read, after every order of the operations between). Call order
        says little, as the clients of a workload call at the same instants.
        Return order is the order of Lowe's just-in-time linearization (CCPE
        2017), which places an operation only when its return forces it, and a
        replicated service answers its clients close to the order in which it
        committed their requests.
        """
        nxt, when, apply, inputs = self.events.nxt, self.events.when, self.apply, self.inputs
        outputs, forced = self.outputs, self.forced
        cands: list[tuple[int, Any]] = []
        e = nxt[self.events.head]
        work = 1
        while e != -1 and not e & 1:
            k = e >> 1
            out, new_state = apply(state, inputs[k])
            work += 1
            if out == outputs[k]:
                if forced[k] and new_state == state:
                    return [(k, new_state)], e, work, False
                cands.append((k, new_state))
            e = nxt[e]
        cands.sort(key=lambda cand: when[2 * cand[0] + 1])  # the earliest to return first
        if e == -1:
            return cands, -1, work, False
        tried = set()
        for j, called in enumerate(self.opt_call):
            if called > when[e]:
                break
            k = self.n + j
            if not placed >> k & 1:
                if optional_left <= 0:
                    return cands, e, work, True
                # Optional operations with equal inputs are interchangeable; the
                # earliest called is available whenever a later one is.
                if inputs[k] in tried:
                    continue
                tried.add(inputs[k])
                _, new_state = apply(state, inputs[k])
                work += 1
                if new_state != state:  # placing one that changes nothing is never needed
                    cands.append((k, new_state))
        return cands, e, work, False

    def run(self) -> Iterator[None]:
        """First allow no optional operation to be placed, then any number.

        Most histories are explained with few optional operations, and a search
        that may place any of them at any point explores every combination of
        the ones it does not need. A "no" under a cap that held nothing back is
        final; otherwise the second pass decides.
        """
        for cap in (0, self.m):
            verdict, order, blocked, state, capped = yield from self.depth_first(cap)
            if verdict is not Verdict.NOT_LINEARIZABLE or not capped or cap >= self.m:
                break
        return self.result(verdict, order, blocked, state)

    def depth_first(self, cap: int) -> Iterator[None]:
        """Wing & Gong's search with Lowe's memo, placing at most ``cap`` optional operations.

        Yields whenever ``steps`` passes the turn's limit. Returns (verdict,
        order, blocked, state, capped) in local ids: for a failure, the longest
        partial order found and the operation that could not follow it.
        ``capped`` says whether the cap kept some optional operation out.
        """
        n, memo = self.n, _Memo(self.n)
        candidates, seen, lift, unlift = self.candidates, memo.seen, self.events.lift, self.events.unlift
        capped = False
        # Invariant: `placed` has bit k set exactly for the operations on `path`,
        # `state` is the model state after applying them in path order, the event
        # list holds exactly the events of the sure operations not placed, and
        # `used` counts the optional operations on `path`.
        # path: (op, state before it, the candidates it was one of, the next one to try, first return)
        path: list[tuple[int, Any, list[tuple[int, Any]], int, int]] = []
        placed, used, state = 0, 0, self.init
        best: tuple[tuple[int, ...], int | None, Any] = ((), None, state)
        best_len = -1
        cands, first_ret, work, held = candidates(placed, state, cap)
        capped |= held
        steps, limit, idx = self.steps + work, self.limit, 0
        while first_ret != -1:  # some sure operation is still to be placed
            if steps > limit:  # the turn is over: let the other parts search
                self.steps, self.order, self.state = steps, tuple(k for k, *_ in path), state
                yield
                limit = self.limit
            if idx < len(cands):  # place the next candidate
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
                cands, first_ret, work, held = candidates(placed, state, cap - used)
                capped |= held
                steps += work
                idx = 0
                continue
            # Nothing fits before the first return's deadline: back up.
            steps += 1
            placed_sure = (placed & memo.sure_mask).bit_count()
            if placed_sure > best_len:  # the longest partial linearization counts sure operations
                best_len = placed_sure
                best = (tuple(k for k, *_ in path), first_ret >> 1, state)
            if not path:
                self.steps = steps
                return Verdict.NOT_LINEARIZABLE, *best, capped
            k, state, cands, idx, first_ret = path.pop()
            placed ^= 1 << k
            if k < n:
                unlift(k)
            else:
                used -= 1
        self.steps = steps
        return Verdict.LINEARIZABLE, tuple(k for k, *_ in path), None, state, capped


def _round_robin(
    searches: list[_Search], timeout: float | None, max_steps: int | None
) -> tuple[Verdict, list[PartitionResult]]:
    """Let the parts take turns until one fails, all pass, or the budget (shared by all parts) is spent.

    Returns the verdict and a result for every part that was started, in the
    order of ``searches`` (a part cut short is undecided).
    """
    deadline = math.inf if timeout is None else time.monotonic() + timeout
    steps_left = math.inf if max_steps is None else max_steps
    turns = [search.run() for search in searches]
    results: dict[int, PartitionResult] = {}
    waiting = list(range(len(searches)))
    verdict = Verdict.LINEARIZABLE
    while waiting and verdict is Verdict.LINEARIZABLE:
        for i in list(waiting):
            search = searches[i]
            if steps_left < 0 or time.monotonic() > deadline:
                verdict = Verdict.UNDECIDED
                break
            search.limit, before = search.steps + min(_SLICE, steps_left), search.steps
            try:
                next(turns[i])  # search until its steps pass the limit
            except StopIteration as done:
                results[i] = done.value
                waiting.remove(i)
            steps_left -= search.steps - before
            if i in results and results[i].verdict is Verdict.NOT_LINEARIZABLE:
                verdict = Verdict.NOT_LINEARIZABLE
                break
    for i in waiting:  # cut short: undecided where it stopped
        s = searches[i]
        if s.steps:
            results[i] = s.result(Verdict.UNDECIDED, s.order, None, s.state)
    return verdict, [results[i] for i in sorted(results)]


def _partitions(ops: tuple[Operation, ...], model: Any, init: Hashable) -> dict[Hashable, list[int]]:
    """Operation ids per independent part, parts in the order they were first called."""
    part_of = getattr(model, "partition", None)
    parts: dict[Hashable, list[int]] = {}
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


def check(
    history: Iterable[Operation], model: Model, *, timeout: float | None = 10.0, max_steps: int | None = None
) -> CheckResult:
    """Decide whether ``history`` is linearizable with respect to ``model``.

    ``timeout`` (seconds, wall clock) and ``max_steps`` (search steps,
    deterministic) bound the search; ``None`` means no bound. When a bound
    is hit, the verdict is :attr:`Verdict.UNDECIDED` (``result.ok is None``).
    Independent parts (see :meth:`Model.partition`) take turns, and the check
    stops at the first part that is not linearizable.
    """
    ops = as_history(history)
    valid.number("timeout", timeout, gt=0, unit="seconds", finite=False, none=True, note="None: no limit")
    valid.integer("max_steps", max_steps, ge=1, none=True, note="None: no limit")
    checked_model(model)
    init = valid.hashable("model.init()", model.init(), "a hashable state")
    parts = _partitions(ops, model, init)
    searches = [_Search(ops, key, ids, model, init) for key, ids in parts.items()]
    verdict, results = _round_robin(searches, timeout, max_steps)
    started = {r.key for r in results}
    unchecked = tuple(key for key in parts if key not in started)
    return CheckResult(verdict, ops, model, tuple(results), unchecked, sum(s.steps for s in searches))
