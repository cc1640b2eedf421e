"""Shrinking a failing fault schedule to a minimal one (delta debugging).

A random schedule that breaks a property has, say, twelve faults; usually two
or three of them matter. :func:`ddmin` is Zeller and Hildebrandt's minimizing
delta debugging ("Simplifying and Isolating Failure-Inducing Input", IEEE TSE
28(2), 2002): try halves, then quarters..., keeping any subset or complement
that still fails, until no single fault can be removed. The result is
*1-minimal*: leaving out any one more fault makes the trial pass (or fail
differently).

"Still fails" means: the same seed, the shorter schedule, and a violation of
the *same property*. Same seed, same schedule gives the same run, so every
answer is reproducible; but leaving a fault out changes everything after it
(other timeouts fire, other messages are lost), which is why each candidate
is run again rather than reasoned about.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from labkit import validation as valid
from labkit.labs.core import Fault, Lab, Outcome

__all__ = ["ddmin", "shrink_schedule", "Shrunk"]

T = TypeVar("T")


def ddmin(
    items: Sequence[T],
    fails: Callable[[list[T]], bool],
    *,
    max_tests: int = 500,
    deadline: float | None = None,
) -> list[T]:
    """A 1-minimal sublist of ``items`` for which ``fails`` still holds (``fails(items)`` must).

    Tests at most ``max_tests`` candidates and stops at ``deadline`` (a
    ``time.monotonic()`` value); then the smallest failing list found so far
    is returned, which may not be minimal.
    """
    valid.integer("max_tests", max_tests, ge=1)
    current = list(items)
    seen: dict[tuple[int, ...], bool] = {}
    index = {id(x): i for i, x in enumerate(current)}
    tests = 0

    def test(candidate: list[T]) -> bool:
        nonlocal tests
        key = tuple(index[id(x)] for x in candidate)
        if key not in seen:
            tests += 1
            seen[key] = fails(candidate)
        return seen[key]

    def out_of_budget() -> bool:
        return tests >= max_tests or (deadline is not None and time.monotonic() > deadline)

    if current and test([]):
        return []
    n = 2
    while len(current) >= 2 and not out_of_budget():
        chunks = _split(current, n)
        reduced = False
        for chunk in chunks:  # a subset alone still fails
            if len(chunk) < len(current) and test(chunk):
                current, n, reduced = chunk, 2, True
                break
            if out_of_budget():
                return current
        if not reduced and n > 2:  # or a complement
            for i in range(len(chunks)):
                complement = [x for j, c in enumerate(chunks) if j != i for x in c]
                if test(complement):
                    current, n, reduced = complement, max(n - 1, 2), True
                    break
                if out_of_budget():
                    return current
        if not reduced:
            if n >= len(current):
                break
            n = min(len(current), 2 * n)
    return current


def _split(items: list[T], n: int) -> list[list[T]]:
    """``items`` in ``n`` nearly equal consecutive chunks."""
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        if end > start:
            out.append(items[start:end])
        start = end
    return out


@dataclass(frozen=True, slots=True)
class Shrunk:
    """The result of shrinking: the ``faults`` left, the ``outcome`` they give, and what it took.

    ``seconds`` is wall-clock time, ``cpu`` the CPU seconds of this process (the same on an idle
    machine; on a busy one, the honest measure of the work).
    """

    faults: tuple[Fault, ...]
    outcome: Outcome
    runs: int
    seconds: float
    minimal: bool
    cpu: float = 0.0


def shrink_schedule(
    lab: Lab,
    scenario: str,
    node: Any,
    seed: int,
    faults: Sequence[Fault],
    property_name: str,
    *,
    max_runs: int = 300,
    seconds: float = 20.0,
) -> Shrunk:
    """The smallest part of ``faults`` that still makes ``scenario`` on ``seed`` violate ``property_name``.

    Runs at most ``max_runs`` trials and stops after ``seconds`` of wall-clock
    time; ``minimal`` says whether the answer is proven 1-minimal.
    """
    started, cpu = time.monotonic(), time.process_time()
    deadline = started + valid.number("seconds", seconds, gt=0, unit="seconds")
    outcomes: dict[tuple[Fault, ...], Outcome] = {}
    runs = 0

    def fails(candidate: list[Fault]) -> bool:
        nonlocal runs
        runs += 1
        _, outcome = lab.trial(scenario, node, seed, candidate)
        outcomes[tuple(candidate)] = outcome
        v = outcome.violation
        return v is not None and v.property.name == property_name

    full = list(faults)
    best = ddmin(full, fails, max_tests=max_runs, deadline=deadline)
    key = tuple(best)
    outcome = outcomes.get(key)
    if outcome is None:  # the full schedule was never re-run (nothing to shrink)
        runs += 1
        _, outcome = lab.trial(scenario, node, seed, best)
    minimal = time.monotonic() <= deadline and runs < max_runs
    return Shrunk(key, outcome, runs, time.monotonic() - started, minimal, time.process_time() - cpu)
