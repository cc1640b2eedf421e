"""Grading a lab part: the hidden suite, a time budget, and no delegation to the reference.

A test cell of a lab notebook calls :func:`grade` (through :meth:`Lab.grade
<labkit.labs.Lab.grade>`) in its hidden part. It refuses a submission that
delegates to the course's reference (the lab's
:meth:`~labkit.labs.Lab.check_submission` says why), then runs the part's
scenarios on seeds the visible self-check does not use, within a wall-clock
budget, with the lab's tripwires set (the reference's rules refuse to run).
Any failure raises :class:`~labkit.labs.suite.LabFailed`, which nbgrader
scores as zero points for the cell; its message names the failing scenario,
the seed and the property, and the line that reproduces it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from labkit.labs.core import Lab
from labkit.labs.suite import LabFailed, Report, run_suite

__all__ = ["grade", "HIDDEN_SEEDS"]

HIDDEN_SEEDS = range(1000, 1005)  # seeds the visible self-checks never use


def grade(
    lab: Lab,
    what: str | Iterable[str],
    node: Any,
    *,
    seeds: int | Iterable[int] = HIDDEN_SEEDS,
    budget: float = 120.0,
    quiet: bool = True,
) -> Report:
    """Run ``what`` on ``node`` as a grader would; return the report, or raise :class:`LabFailed`."""
    reasons = lab.check_submission(node)
    if reasons:
        print(
            "✗ This submission scores zero: it delegates to labkit's reference instead of writing the rules."
        )
        for r in reasons:
            print(f"  - {r}")
        raise LabFailed([f"scores zero: {r}" for r in reasons], len(reasons))
    tripwires = getattr(lab, "tripwires", None)
    guard = tripwires() if tripwires is not None else contextlib.nullcontext()
    with guard:
        report = run_suite(
            lab, what, node, seeds=seeds, shrink=False, progress=False, budget=budget, quiet=quiet
        )
    failures = []
    for r in report.results:
        if r.skipped:
            failures.append(f"graded {r.scenario}: not run ({r.skipped} of {budget:g} s)")
        elif r.failure is not None:
            failures.append(
                f"graded {r.scenario}: {r.failure.violation.describe()} (seed {r.failure.seed})\n"
                f"    {r.failure.reproduce}"
            )
    if failures:
        for text in failures:
            print(f"✗ {text}")
        raise LabFailed(failures, len(report.results))
    n = len(report.results)
    print(
        f"✓ graded run of {report.what}: {n} scenario{'s' if n != 1 else ''} passed on seeds the self-check does "
        "not use"
    )
    return report
