"""Explaining a verdict: linearization points, words, and a minimal counterexample.

A linearizable history is explained by a witness: one point in time per
operation that took effect, inside its interval, in the order of a legal
sequential run (Herlihy & Wing 1990, §2). A history that is not
linearizable is explained the way Lowe (CCPE 2017) and Porcupine do it: the
longest prefix of a legal order the search could build, and the operation
that had to come next but could not. :func:`minimal_violation` shrinks the
failing part to a smallest set of operations that is still not linearizable
when all other operations are relaxed to "unknown outcome" (a greedy ddmin,
Zeller & Hildebrandt, TSE 2002): the operations that truly conflict.
"""

from __future__ import annotations

import math
from dataclasses import replace

from labkit.linearizability.checker import CheckResult, PartitionResult, Verdict, check
from labkit.linearizability.history import UNKNOWN, Operation, format_call, format_op

__all__ = ["explain", "linearization_points", "minimal_violation"]

_MAX_LISTED = 12


def _horizon(ops: tuple[Operation, ...]) -> float:
    times = [op.call for op in ops] + [op.ret for op in ops if not op.pending]
    return max(times, default=0.0)


def _points_for(ops: tuple[Operation, ...], order: tuple[int, ...], horizon: float) -> dict[int, float]:
    # earliest[k]: the latest call among order[:k+1]; latest[k]: the earliest
    # bound among order[k:]. Both are non-decreasing along the order and
    # earliest <= latest (no operation placed later precedes one placed
    # earlier in real time), so midpoints are in order and inside each interval.
    earliest: list[float] = []
    running = -math.inf
    for i in order:
        running = max(running, ops[i].call)
        earliest.append(running)
    latest = [0.0] * len(order)
    running = math.inf
    for k in range(len(order) - 1, -1, -1):
        running = min(running, ops[order[k]].latest_effect)
        latest[k] = running
    points = {}
    for k, i in enumerate(order):
        hi = latest[k] if latest[k] != math.inf else max(horizon, earliest[k])
        points[i] = (earliest[k] + hi) / 2
    return points


def linearization_points(result: CheckResult) -> dict[int, float]:
    """{operation id: time} for every operation placed by the search.

    For a linearizable history these are linearization points; for a failing
    one, points of the longest partial linearization of the failing part and
    of the parts that passed. Operations with no point did not take effect.
    """
    horizon = _horizon(result.history)
    points: dict[int, float] = {}
    for part in result.partitions:
        points.update(_points_for(result.history, part.order, horizon))
    return points


def _part_name(result: CheckResult, part: PartitionResult) -> str:
    if len(result.partitions) + len(result.unchecked) <= 1 and part.key is None:
        return ""
    return f" on key {part.key!r}"


def _listing(result: CheckResult, ids: tuple[int, ...]) -> list[str]:
    ops = result.history
    lines = [f"  {k + 1}. #{i} {format_op(ops[i])}" for k, i in enumerate(ids[:_MAX_LISTED])]
    if len(ids) > _MAX_LISTED:
        lines.append(f"  ... and {len(ids) - _MAX_LISTED} more")
    return lines


def explain(result: CheckResult) -> str:
    """The verdict in words (several lines)."""
    ops = result.history
    model = result.model
    describe = getattr(model, "describe_state", repr)
    if result.verdict is Verdict.LINEARIZABLE:
        order = result.linearization or ()
        skipped = [i for i in range(len(ops)) if i not in set(order)]
        lines = [
            f"Linearizable: {len(ops)} operations, {len(result.partitions)} independent part(s), "
            f"{result.steps} search steps.",
            "One valid order (by linearization point):",
            *_listing(result, order),
        ]
        if skipped:
            lines.append(
                f"Operations with unknown outcome that need not have taken effect: "
                f"{', '.join('#' + str(i) for i in skipped[:_MAX_LISTED])}"
                + (" ..." if len(skipped) > _MAX_LISTED else "")
            )
        return "\n".join(lines)

    part = result.failure
    assert part is not None  # a failing or undecided verdict always has its part
    where = _part_name(result, part)
    if result.verdict is Verdict.UNDECIDED:
        return (
            f"Undecided{where}: the search budget ran out after {result.steps} steps "
            f"({len(part.ops)} operations in this part). Give check() a larger timeout or max_steps, "
            f"or a shorter history."
        )

    lines = [
        f"Not linearizable{where}.",
        f"At most {len(part.order)} of the {len(part.ops)} operations{where} can be put in an order that "
        "respects real time and gives every output the clients saw:",
    ]
    lines += _listing(result, part.order) if part.order else ["  (none)"]
    lines.append(f"After these the {getattr(model, 'name', 'object')} is {describe(part.state)}.")
    if part.blocked is not None:
        blocked = ops[part.blocked]
        would, _ = model.apply(part.state, blocked.input)
        lines.append(
            f"Next, #{part.blocked} {format_op(blocked)} must take effect before it returned at "
            f"t={blocked.ret:g}, but none of the orders tried can place it:"
        )
        if blocked.output is not UNKNOWN and would != blocked.output:
            lines.append(
                f"  here {format_call(blocked.input)} would return {would!r}, not {blocked.output!r}, "
                "and no other order of the operations before it does better."
            )
        else:
            lines.append("  it fits here, but then some operation after it cannot be placed.")
    return "\n".join(lines)


def minimal_violation(result: CheckResult, *, max_steps: int = 20_000) -> tuple[int, ...]:
    """A small set of operation ids of the failing part whose outputs contradict each other.

    Every other operation of the part is *relaxed*: its output is made
    :data:`UNKNOWN`, so it may take effect at any time after its call, or not
    at all. Relaxing only removes constraints, so if the relaxed history
    still fails, the operations kept are a real conflict. The greedy search
    relaxes ever smaller chunks; in the answer, relaxing any one more
    operation makes the history linearizable, or at least not provably
    non-linearizable within ``max_steps`` search steps per check (a
    deterministic budget, so the answer is the same on every machine).
    """
    if not isinstance(result, CheckResult):
        raise TypeError(f"result must be a CheckResult from check(), got {type(result).__name__}")
    if result.verdict is not Verdict.NOT_LINEARIZABLE:
        raise ValueError(f"result must be not linearizable to have a violation, got {result.verdict.value}")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
    part = result.failure
    assert part is not None
    ops = result.history
    sure = [i for i in part.ops if ops[i].output is not UNKNOWN]
    optional = [i for i in part.ops if ops[i].output is UNKNOWN]
    relaxed = {i: replace(ops[i], output=UNKNOWN) for i in part.ops}

    def fails(kept: list[int]) -> bool:
        if not kept:
            return False
        kept_set = set(kept)
        # An optional operation called after every kept one returned can only
        # go last, where nothing needs it: leave it out.
        horizon = max(ops[i].ret for i in kept)
        trial = [ops[i] for i in kept] + [
            relaxed[i] for i in sure + optional if i not in kept_set and ops[i].call <= horizon
        ]
        return check(trial, result.model, timeout=None, max_steps=max_steps).ok is False

    keep = sure
    if not fails(keep):
        return tuple(keep)  # too hard to shrink within the budget: every operation with an output
    if part.blocked is not None:
        # Start near where the search got stuck: operations called after the
        # blocked one returned can only come after it, so try relaxing them all.
        deadline = ops[part.blocked].ret
        early = [i for i in sure if ops[i].call <= deadline]
        if len(early) < len(keep) and fails(early):
            keep = early
    chunk = max(1, len(keep) // 2)
    while True:
        start = 0
        while start < len(keep):
            trial = keep[:start] + keep[start + chunk :]
            if fails(trial):
                keep = trial
            else:
                start += chunk
        if chunk == 1:
            return tuple(keep)
        chunk = max(1, chunk // 2)
