"""A minimal counterexample: the few operations whose outputs cannot all hold together.

A failing history of hundreds of operations usually fails because of a
handful. :func:`minimal_violation` finds such a handful by *relaxing* every
other operation: its output is made :data:`UNKNOWN`, so it may take effect
at any time after its call, or not at all. Relaxing only removes
constraints, so if the relaxed history still fails, the operations kept are
a real conflict. The search relaxes ever smaller chunks (a greedy ddmin,
Zeller & Hildebrandt, TSE 2002), then single operations until none more can
go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from labkit import validation as valid
from labkit.linearizability.checker import check
from labkit.linearizability.history import UNKNOWN, Operation
from labkit.linearizability.result import CheckResult, Verdict


def relaxed_history(result: CheckResult, keep: tuple[int, ...] | list[int]) -> list[Operation]:
    """The failing part of ``result`` with every operation but ``keep`` relaxed to an unknown outcome.

    A relaxed operation called after every kept one returned could only go
    last, where nothing needs it: it is left out.
    """
    part = result.failure
    if part is None:
        raise ValueError("result must not be linearizable to have a failing part")
    ops = result.history
    kept = set(keep)
    horizon = max((ops[i].ret for i in kept), default=-float("inf"))
    return (
        [ops[i] for i in keep]
        + [
            replace(ops[i], output=UNKNOWN)
            for i in part.ops
            if i not in kept and ops[i].output is not UNKNOWN and ops[i].call <= horizon
        ]
        + [ops[i] for i in part.ops if ops[i].output is UNKNOWN and ops[i].call <= horizon]
    )


def minimal_violation(result: CheckResult, *, max_steps: int = 20_000) -> tuple[int, ...]:
    """A small set of operation ids of the failing part whose outputs contradict each other.

    Every other operation of the part is relaxed (see :func:`relaxed_history`)
    and the history still fails. The answer is minimal: relaxing any one more
    of its operations makes the history linearizable, or at least not
    provably non-linearizable within ``max_steps`` search steps per check (a
    deterministic budget, so the answer is the same on every machine).
    """
    valid.instance("result", result, CheckResult)
    if result.verdict is not Verdict.NOT_LINEARIZABLE:
        raise ValueError(f"result must be not linearizable to have a violation, got {result.verdict.value}")
    valid.integer("max_steps", max_steps, ge=1)
    part = result.failure
    assert part is not None
    ops = result.history

    def fails(kept: list[int]) -> bool:
        if not kept:
            return False
        return (
            check(relaxed_history(result, kept), result.model, timeout=None, max_steps=max_steps).ok is False
        )

    # The whole part fails (check() said so, maybe with a larger budget): start there.
    keep = [i for i in part.ops if ops[i].output is not UNKNOWN]
    if part.blocked is not None:
        # Start near where the search got stuck: operations called after the
        # blocked one returned can only come after it, so try relaxing them all.
        early = [i for i in keep if ops[i].call <= ops[part.blocked].ret]
        if len(early) < len(keep) and fails(early):
            keep = early
    chunk = max(1, len(keep) // 2)
    while chunk > 1:
        keep = _relax_chunks(keep, chunk, fails)
        chunk //= 2
    # Single operations, until a whole pass relaxes none: relaxing one can make
    # another relaxable that was not (its check was undecided within the budget).
    while True:
        shorter = _relax_chunks(keep, 1, fails)
        if len(shorter) == len(keep):
            return tuple(keep)
        keep = shorter


def _relax_chunks(keep: list[int], chunk: int, fails: Callable[[list[int]], bool]) -> list[int]:
    """One pass over ``keep`` in chunks, relaxing every chunk whose relaxing still fails."""
    start = 0
    while start < len(keep):
        trial = keep[:start] + keep[start + chunk :]
        if fails(trial):
            keep = trial
        else:
            start += chunk
    return keep
