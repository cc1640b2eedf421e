"""Running a lab's suite: every scenario over many seeds, a table, and the failures to look at.

:func:`run_suite` runs each chosen scenario on each seed until its first
failure (the seeds after it are skipped: one counterexample is what a learner
needs), with a progress bar, and prints one table row per scenario as it
finishes: pass or fail, seeds run, the virtual time simulated and the wall
time it took, and for a failure the property that broke. Each failure's fault
schedule is then shrunk (:mod:`labkit.labs.shrink`), and the
:class:`Report` keeps a :class:`Failure` per failing scenario: its seed, the
violated property, the shrunk schedule, one line that reproduces it, and its
picture (:meth:`Failure.show`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.grading import ExerciseFailed, check_failed, check_true
from labkit.labs.core import TOO_SLOW, Fault, Lab, Outcome, Scenario, Violation, finite_or_none, seed_list
from labkit.labs.shrink import Shrunk, shrink_schedule

__all__ = ["run_suite", "Report", "ScenarioResult", "Failure", "LabFailed", "merge_notes", "node_name"]


class LabFailed(ExerciseFailed):
    """A graded suite did not pass (or a submission could not be graded); ``failures`` say why.

    An :class:`~labkit.grading.ExerciseFailed`, so nbgrader scores the cell zero and Jupyter shows
    it as one line under the ✗ lines already printed.
    """


def node_name(node: Any) -> str:
    """How the learner's node is called in a reproduction line."""
    return getattr(node, "__qualname__", None) or getattr(node, "__name__", None) or repr(node)


@dataclass
class Failure:
    """One failing trial, ready to be looked at.

    ``violation`` says which property broke, where and when; ``faults`` is the
    schedule it ran under and ``shrunk`` (if shrinking ran) the smallest part
    of it that still breaks the same property. :attr:`reproduce` is the line
    to run it again; :meth:`show` draws it.
    """

    lab: Lab
    node: Any
    scenario: str
    seed: int
    faults: tuple[Fault, ...]
    violation: Violation
    shrunk: Shrunk | None = None
    notes: tuple[str, ...] = ()

    @property
    def schedule(self) -> tuple[Fault, ...]:
        """The schedule to replay: the shrunk one if there is one."""
        return self.shrunk.faults if self.shrunk is not None else self.faults

    @property
    def shown_violation(self) -> Violation:
        """The violation of the replayed (shrunk) run."""
        if self.shrunk is not None and self.shrunk.outcome.violation is not None:
            return self.shrunk.outcome.violation
        return self.violation

    @property
    def reproduce(self) -> str:
        """One line of Python that runs this failure again and draws it."""
        faults = "[" + ", ".join(repr(f) for f in self.schedule) + "]"
        return (
            f"{self.lab.handle}.replay({node_name(self.node)}, {self.scenario!r}, seed={self.seed}, "
            f"faults={faults})"
        )

    def replay(self) -> Any:
        """Run it again, recording every node's state after every event; returns the trial."""
        trial, _ = self.lab.trial(self.scenario, self.node, self.seed, self.schedule, record=True)
        return trial

    def show(self) -> Any:
        """The picture: a space-time diagram of the run to step through (see :mod:`labkit.viz.labs`)."""
        from labkit.viz.labs import FailureView

        return FailureView(self)

    def summary(self) -> str:
        """What failed, in a few lines."""
        v = self.shown_violation
        lines = [
            f"{self.scenario}, seed {self.seed}: {v.describe()}",
            f"  property: {v.property.name}: {v.property.says}"
            + (f" ({v.property.source})" if v.property.source else ""),
        ]
        if self.shrunk is not None:
            shrunk = self.shrunk.faults
            lines.append(
                f"  fault schedule shrunk from {len(self.faults)} to {len(shrunk)} "
                f"fault{'s' if len(shrunk) != 1 else ''} ({self.shrunk.runs} runs, {self.shrunk.seconds:.1f} s)"
                + ("" if shrunk else ": it fails without any fault")
            )
            for f in shrunk:
                lines.append(f"    {f.at:.3f} s  {self.lab.say(f)}")
        elif self.faults:
            lines.append(f"  fault schedule: {len(self.faults)} faults (not shrunk)")
        for note in self.notes:
            lines.append(f"  note: {note}")
        lines.append(f"  reproduce: {self.reproduce}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()


@dataclass
class ScenarioResult:
    """One row of the table: how a scenario fared over its seeds."""

    scenario: str
    part: str
    seeds_run: int
    seeds_planned: int
    virtual_time: float
    wall: float
    failure: Failure | None = None
    skipped: str = ""  # why it was not run (the time budget ran out)

    @property
    def passed(self) -> bool:
        return self.failure is None and not self.skipped


@dataclass
class Report:
    """What :func:`run_suite` found: a :class:`ScenarioResult` per scenario and the failures."""

    lab: Lab
    node: Any
    what: str
    results: list[ScenarioResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    wall: float = 0.0

    @property
    def passed(self) -> bool:
        """True when every scenario passed on every seed."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[Failure]:
        """The first failure of each failing scenario, in suite order."""
        return [r.failure for r in self.results if r.failure is not None]

    def failure(self, scenario: str | None = None) -> Failure:
        """The failure of ``scenario`` (default: the first one)."""
        fs = self.failures
        if scenario is None:
            if not fs:
                raise ValueError("every scenario passed: there is no failure to look at")
            return fs[0]
        for f in fs:
            if f.scenario == scenario:
                return f
        valid.one_of("scenario", scenario, [f.scenario for f in fs])
        raise AssertionError("unreachable")

    def table(self) -> Any:
        """The results as a pandas DataFrame, one row per scenario."""
        import pandas as pd

        rows = []
        for r in self.results:
            v = r.failure.shown_violation if r.failure else None
            rows.append(
                {
                    "part": r.part,
                    "scenario": r.scenario,
                    "passed": r.passed,
                    "seeds run": r.seeds_run,
                    "seeds planned": r.seeds_planned,
                    "virtual time (s)": round(r.virtual_time, 3),
                    "wall time (s)": round(r.wall, 3),
                    "failing seed": r.failure.seed if r.failure else None,
                    "property": v.property.name if v else (TOO_SLOW.name if r.skipped else ""),
                    "shrunk faults": len(r.failure.shrunk.faults) if r.failure and r.failure.shrunk else None,
                }
            )
        return pd.DataFrame(rows)

    def check(self, scenario: str | None = None) -> bool:
        """Self-check for a test cell: one check per scenario (see :mod:`labkit.grading`).

        Prints ✓ or ✗ per scenario, a failure with the line that reproduces it;
        the cell's ``verdict()`` then fails it if any scenario failed. Returns
        whether all passed. With ``scenario``, only that one of the report's
        scenarios is checked: a test cell per scenario, each graded on its own.
        """
        results = self.results
        if scenario is not None:
            valid.one_of("scenario", scenario, [r.scenario for r in self.results])
            results = [r for r in self.results if r.scenario == scenario]
        for r in results:
            if r.passed:
                check_true(True, f"{r.scenario}: passed on {r.seeds_run} seeds")
            elif r.skipped:
                check_true(False, f"{r.scenario}: not run", hint=r.skipped)
            else:
                f = r.failure
                assert f is not None
                v = f.shown_violation
                check_failed(
                    f"{r.scenario}: {v.describe()} (seed {f.seed})",
                    f"must hold: {v.property.says}"
                    + (f" ({v.property.source})" if v.property.source else ""),
                    hint=(f"look at {v.property.look_at}. Then " if v.property.look_at else "")
                    + f"run {f.reproduce}.show() to step through it",
                )
        return all(r.passed for r in results)

    def show_failure(self, scenario: str | None = None) -> Any:
        """The picture of the first failure (or of ``scenario``'s); a sentence if none failed."""
        if not self.failures:
            from IPython.display import Markdown

            return Markdown(f"Every scenario of **{self.what}** passed: there is no failure to show.")
        return self.failure(scenario).show()

    def __str__(self) -> str:
        lines = [_header(self.lab, self.what, self.node)]
        lines += [_row(r, self.lab) for r in self.results]
        lines.append(_footer(self))
        for f in self.failures:
            lines.append("")
            lines.append(f.summary())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)


_COLUMNS = ("scenario", "result", "seeds", "virtual time", "wall", "what failed")
_WIDTHS = (28, 7, 7, 12, 7)


def _widths(lab: Lab) -> tuple[int, ...]:
    """The table's column widths: the first fits the lab's longest scenario name, so none is cut."""
    longest = max((len(s.name) for s in lab.scenarios), default=0)
    return (max(_WIDTHS[0], longest), *_WIDTHS[1:])


def _header(lab: Lab, what: str, node: Any) -> str:
    title = f"{lab.name} lab · {what} · {node_name(node)}"
    cols = "  ".join(c.ljust(w) for c, w in zip(_COLUMNS, _widths(lab), strict=False)) + _COLUMNS[-1]
    return f"{title}\n{cols}"


def _row(r: ScenarioResult, lab: Lab) -> str:
    if r.skipped:
        result, failed = "skipped", r.skipped
    elif r.failure is None:
        result, failed = "✓ pass", ""
    else:
        v = r.failure.shown_violation
        result, failed = "✗ FAIL", f"seed {r.failure.seed}: {v.property.name}"
        if r.failure.shrunk is not None:
            n = len(r.failure.shrunk.faults)
            failed += f" (schedule shrunk {len(r.failure.faults)} → {n})"
    cells = (
        r.scenario,
        result,
        f"{r.seeds_run}/{r.seeds_planned}",
        f"{r.virtual_time:.1f} s",
        f"{r.wall:.1f} s",
    )
    return "  ".join(c[:w].ljust(w) for c, w in zip(cells, _widths(lab), strict=True)) + failed


def _footer(report: Report) -> str:
    passed = sum(r.passed for r in report.results)
    text = f"{passed} of {len(report.results)} scenarios passed in {report.wall:.1f} s"
    for note in report.notes:
        text += f"\nnote: {note}"
    return text


def merge_notes(notes: Iterable[str]) -> list[str]:
    """Notes that say the same thing about different items, as one, each item once:
    ``"x: a"``, ``"x: b, a"`` -> ``"x: a, b"``."""
    merged: dict[str, list[str]] = {}
    for note in notes:
        head, sep, listed = note.partition(": ")
        key = head if sep else note
        items = merged.setdefault(key, [])
        for item in listed.split(", ") if sep else ():
            if item not in items:
                items.append(item)
    return [f"{head}: {', '.join(items)}" if items else head for head, items in merged.items()]


def _progress(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False)


def run_suite(
    lab: Lab,
    what: str | Iterable[str] | None,
    node: Any,
    *,
    seeds: int | Iterable[int] | None = None,
    shrink: bool = True,
    progress: bool = True,
    budget: float | None = None,
    quiet: bool = False,
    stop: bool = False,
    shrink_seconds: float = 20.0,
) -> Report:
    """Run the scenarios ``what`` selects (a part, a scenario, a list, or None for all) on ``node``.

    ``seeds``: how many per scenario (0..n-1), which ones (an iterable), or
    None for each scenario's default. Each scenario stops at its first
    failing seed; ``shrink`` shrinks that failure's schedule. ``budget`` caps
    the wall-clock seconds of the whole call (the scenarios it leaves unrun
    count as failed). ``stop`` ends the suite at the first failing scenario
    (the report then lists only the scenarios run). Prints the table as it
    goes unless ``quiet``.
    """
    scenarios = lab.select(what)
    label = what if isinstance(what, str) else "all" if what is None else ", ".join(what)
    plan: list[tuple[Scenario, list[int]]] = [(s, seed_list(seeds, s.seeds)) for s in scenarios]
    budget = finite_or_none("budget", budget)
    started = time.monotonic()
    deadline = None if budget is None else started + budget
    report = Report(lab, node, label)
    bar = _progress(sum(len(ss) for _, ss in plan), f"{lab.name} · {label}", progress and not quiet)
    say = (lambda _text: None) if quiet else print
    say(_header(lab, label, node))
    notes: dict[str, None] = {}
    try:
        for scenario, seeds_ in plan:
            result = _run_scenario(lab, scenario, node, seeds_, deadline, bar)
            for o in result[1]:
                notes.update(dict.fromkeys(o.notes))
            row = result[0]
            if row.failure is not None and shrink and row.failure.faults:
                remaining = None if deadline is None else deadline - time.monotonic()
                seconds = shrink_seconds if remaining is None else min(shrink_seconds, max(remaining, 0.5))
                v = row.failure.violation
                row.failure.shrunk = shrink_schedule(
                    lab, scenario.name, node, row.failure.seed, row.failure.faults, v.property.name,
                    seconds=seconds,
                )  # fmt: skip
            report.results.append(row)
            say(_row(row, lab))
            if stop and not row.passed:
                break
    finally:
        if bar is not None:
            bar.close()
    report.notes = merge_notes(notes)
    report.wall = time.monotonic() - started
    say(_footer(report))
    return report


def _run_scenario(
    lab: Lab, scenario: Scenario, node: Any, seeds: list[int], deadline: float | None, bar: Any
) -> tuple[ScenarioResult, list[Outcome]]:
    started = time.perf_counter()
    row = ScenarioResult(scenario.name, scenario.part, 0, len(seeds), 0.0, 0.0)
    outcomes: list[Outcome] = []
    for i, seed in enumerate(seeds):
        if deadline is not None and time.monotonic() > deadline:
            row.skipped = f"time budget ran out after {row.seeds_run} seeds" if i else "time budget ran out"
            if bar is not None:
                bar.update(len(seeds) - i)
            break
        trial_deadline = time.monotonic() + lab.trial_seconds
        if deadline is not None:
            trial_deadline = min(trial_deadline, deadline)
        _, outcome = lab.trial(scenario, node, seed, deadline=trial_deadline)
        outcomes.append(outcome)
        row.seeds_run += 1
        row.virtual_time += outcome.virtual_time
        if bar is not None:
            bar.update(1)
        if outcome.violation is not None:
            if (
                outcome.violation.property is TOO_SLOW
                and deadline is not None
                and time.monotonic() > deadline
            ):
                row.skipped = "time budget ran out"
            else:
                row.failure = Failure(
                    lab,
                    node,
                    scenario.name,
                    seed,
                    outcome.faults,
                    outcome.violation,
                    notes=tuple(merge_notes(outcome.notes)),
                )
            if bar is not None:
                bar.update(len(seeds) - i - 1)
            break
    row.wall = time.perf_counter() - started
    return row, outcomes
