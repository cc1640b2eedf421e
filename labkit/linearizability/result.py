"""What a check found, and how to say it: verdicts, witnesses and explanations.

A linearizable history is explained by a witness: one point in time per
operation that took effect, inside its interval, in the order of a legal
sequential run (Herlihy & Wing 1990, §2). A history that is not
linearizable is explained as Lowe (CCPE 2017) and Porcupine do it: the
longest prefix of a legal order the search could build, and the operation
that had to come next but could not.

This module only reads results; :mod:`~labkit.linearizability.checker`
makes them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum
from itertools import accumulate
from typing import Any

from labkit import validation as valid
from labkit.linearizability.history import UNKNOWN, Operation, format_call, format_op
from labkit.linearizability.models import Model

_MAX_LISTED = 12


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
    state after ``order``. An undecided part (its search was stopped) has
    the order it was exploring when it stopped.
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
    """What :func:`~labkit.linearizability.check` found.

    ``ok`` is ``True`` (linearizable), ``False`` (not linearizable) or ``None``
    (undecided: the budget ran out); ``verdict`` says the same as an Enum.
    To assert a violation, test ``result.ok is False``: ``not result.ok`` is
    also true when undecided. ``partitions`` holds a result for every part
    the search started, in the order the parts were first called;
    ``unchecked`` names the parts it never started.
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
        """The part that decided a "not linearizable" (or the first undecided part); None if linearizable."""
        if self.verdict is Verdict.LINEARIZABLE:
            return None
        return next((p for p in self.partitions if p.verdict is self.verdict), None)

    @property
    def linearization(self) -> tuple[int, ...] | None:
        """Ids of the operations that took effect, in one valid order (None unless linearizable)."""
        if self.verdict is not Verdict.LINEARIZABLE:
            return None
        points = linearization_points(self)
        # Points are non-decreasing along each part's order but may tie:
        # break ties by the position in the part's order.
        rank = {i: k for part in self.partitions for k, i in enumerate(part.order)}
        return tuple(sorted(points, key=lambda i: (points[i], rank[i])))

    @property
    def explanation(self) -> str | None:
        """Why the history is not linearizable, in words (None when it is)."""
        return None if self.verdict is Verdict.LINEARIZABLE else explain(self)

    def __str__(self) -> str:
        return explain(self)


# -- linearization points -------------------------------------------------------


def _points_for(ops: tuple[Operation, ...], order: tuple[int, ...], horizon: float) -> dict[int, float]:
    # earliest[k]: the latest call among order[:k+1]; latest[k]: the earliest
    # bound among order[k:]. Both are non-decreasing along the order and
    # earliest <= latest (no operation placed later precedes one placed
    # earlier in real time), so midpoints are in order and inside each interval.
    earliest = list(accumulate((ops[i].call for i in order), max))
    latest = list(accumulate((ops[i].latest_effect for i in reversed(order)), min))[::-1]
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
    valid.instance("result", result, CheckResult)
    ops = result.history
    horizon = max([op.call for op in ops] + [op.ret for op in ops if not op.pending], default=0.0)
    points: dict[int, float] = {}
    for part in result.partitions:
        points.update(_points_for(result.history, part.order, horizon))
    return points


# -- the verdict in words ---------------------------------------------------------


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


def _explain_linearizable(result: CheckResult) -> str:
    ops = result.history
    order = result.linearization or ()
    placed = set(order)
    skipped = [i for i in range(len(ops)) if i not in placed]
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


def _explain_violation(result: CheckResult, part: PartitionResult) -> str:
    ops, model = result.history, result.model
    where = _part_name(result, part)
    describe = getattr(model, "describe_state", repr)
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


def explain(result: CheckResult) -> str:
    """The verdict in words (several lines)."""
    valid.instance("result", result, CheckResult)
    if result.verdict is Verdict.LINEARIZABLE:
        return _explain_linearizable(result)
    part = result.failure
    assert part is not None  # a failing or undecided verdict always has its part
    if result.verdict is Verdict.UNDECIDED:
        return (
            f"Undecided{_part_name(result, part)}: the search budget ran out after {result.steps} steps "
            f"({len(part.ops)} operations in this part). Give check() a larger timeout or max_steps, "
            f"or a shorter history."
        )
    return _explain_violation(result, part)
