"""Lab harness benchmarks (labkit.labs): the Raft lab with notebook 09's own solution, the quorum lab
with notebook 05's and the saga lab with notebook 15's.

    python benchmarks/bench_labs.py                      # everything (the 10,000-seed sweep: ~10 CPU minutes)
    python benchmarks/bench_labs.py --only suite          # one part: suite, shrink, sweep or more-labs
    python benchmarks/bench_labs.py --sweep-seeds 1000    # a shorter sweep

Prints tables:

* **suite**: the whole Raft suite (3 parts, 22 scenarios, each scenario's
  default seeds) on the notebook's reference solution, in one process;
  target: at most 60 s on 2 cores;
* **shrink**: each classic bug planted in a copy of the solution
  (tests/lab_solutions.py), run through the suite until the first failing
  scenario: the scenario, the seeds it needed, the property it broke, the
  fault schedule's length before and after shrinking, whether the shrunk
  schedule is proven 1-minimal, and the shrinking's runs, wall and CPU
  seconds; then the same for the first failure of each bug in the
  scenarios with long random schedules (random faults, unreliable network,
  churn). Target: median shrinking time at most 10 s;
* **sweep**: the *churn* scenario over 10,000 seeds with 1 worker process and
  with 2, in the same run: seconds, seeds per second, and the speed-up;
* **more-labs**: the quorum lab (notebook 05) and the saga lab (notebook 15):
  each whole suite on the notebook's solution, then each classic bug planted
  in it (tests/lab_notebook_solutions.py) through the suite until the first
  failing scenario, and through each scenario with long random schedules,
  with the same columns.

Times are wall-clock and CPU seconds: on a busy machine the CPU seconds say
what the work costs, the wall seconds what a learner waited.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.lab_solutions: the notebook's solution and the planted bugs

from labkit.labs.quorum import quorum_lab  # noqa: E402
from labkit.labs.raft import raft_lab  # noqa: E402
from labkit.labs.saga import saga_lab  # noqa: E402
from tests import lab_solutions  # noqa: E402
from tests.lab_notebook_solutions import QUORUM, SAGA  # noqa: E402

SUITE_TARGET = 60.0  # seconds, the whole Raft suite on 2 cores (issue 15)
SHRINK_TARGET = 10.0  # seconds, median shrinking time for the planted bugs
RANDOM_SCENARIOS = ("random faults", "unreliable network", "churn")
MORE_LABS = (  # lab, its notebook's solutions, its scenarios with long random schedules
    (quorum_lab, QUORUM, ("random faults", "sloppy random faults")),
    (saga_lab, SAGA, ("crashes while compensating", "chaos")),
)


def table(title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}\n" + "-" * len(title))
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if j == 0:
            print("  ".join("-" * w for w in widths))


def _suite_table(lab, solution, title: str) -> tuple[int, int, float, float]:
    """Run ``lab``'s whole suite on ``solution`` and print its table; (scenarios, trials, wall, CPU s)."""
    cpu, t0 = time.process_time(), time.perf_counter()
    report = lab.run("all", solution, progress=False, quiet=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
    assert report.passed, str(report)
    rows = [
        (r.part, r.scenario, r.seeds_run, f"{r.virtual_time:.1f}", f"{r.wall:.2f}") for r in report.results
    ]
    table(title, ("part", "scenario", "seeds", "virtual s", "wall s"), rows)
    return len(report.results), sum(r.seeds_run for r in report.results), wall, cpu


def bench_suite() -> None:
    load = os.getloadavg()[0]
    n, trials, wall, cpu = _suite_table(
        raft_lab, lab_solutions.solution(), "suite: the notebook's solution, every scenario, default seeds"
    )
    print(
        f"\nwhole suite: {n} scenarios, {trials} trials, {wall:.1f} s wall, {cpu:.1f} s CPU, in one process "
        f"on {os.cpu_count()} cores, load average {load:.1f} before (target <= {SUITE_TARGET:.0f} s: "
        f"{'met' if cpu <= SUITE_TARGET else 'MISSED'} in CPU time, {'met' if wall <= SUITE_TARGET else 'MISSED'} "
        "in wall time)"
    )


SHRINK_HEADER = (
    "bug", "caught by", "seeds", "property", "faults", "shrunk", "1-minimal", "runs", "shrink s", "shrink CPU s"
)  # fmt: skip


def _caught(lab, cls, what) -> tuple | None:
    """The first failure of ``cls`` on ``what``: scenario, seeds needed, property, faults before and after
    shrinking, whether the result is proven 1-minimal, shrinking's runs, wall seconds and CPU seconds."""
    report = lab.run(what, cls, progress=False, quiet=True, stop=True)
    if report.passed:
        return None
    row = report.results[-1]
    f = row.failure
    shrunk = f.shrunk
    if shrunk is None:
        return (row.scenario, row.seeds_run, f.shown_violation.property.name, len(f.faults), len(f.faults),
                "-", 0, 0.0, 0.0)  # fmt: skip
    return (
        row.scenario,
        row.seeds_run,
        f.shown_violation.property.name,
        len(f.faults),
        len(shrunk.faults),
        "yes" if shrunk.minimal else "no",
        shrunk.runs,
        shrunk.seconds,
        shrunk.cpu,
    )


def _shrink_tables(lab, bugs, planted, randoms: tuple[str, ...], what: str) -> None:
    """Each of ``bugs`` (``planted(bug)`` is the solution with it) through the whole suite up to its first
    failing scenario, and through each scenario with long random schedules: two tables and a median."""
    first, more = [], []
    for bug in bugs:
        cls = planted(bug)
        found = _caught(lab, cls, "all")
        assert found is not None, f"{bug} was not caught within the default seeds"
        first.append((bug, *found))
        for scenario in randoms:
            found = _caught(lab, cls, scenario)
            more.append(
                (bug, *found) if found else (bug, scenario, "-", "not caught", "-", "-", "-", "-", "-", "-")
            )

    def fmt(r: tuple) -> tuple:
        return (*r[:8], *(f"{x:.2f}" if isinstance(x, float) else x for x in r[8:]))

    table(
        f"{what}: each planted bug, first failing scenario of the suite",
        SHRINK_HEADER,
        [fmt(r) for r in first],
    )
    table(
        f"{what}: each planted bug in the scenarios with long random schedules",
        SHRINK_HEADER,
        [fmt(r) for r in more],
    )
    shrunk = [r for r in first + more if r[3] != "not caught" and r[4] != 0]
    if shrunk:
        walls, cpus = [r[8] for r in shrunk], [r[9] for r in shrunk]
        median = statistics.median(walls)
        print(
            f"\n{what}: shrinking {len(shrunk)} failing schedules with at least one fault: median "
            f"{median:.2f} s wall ({statistics.median(cpus):.2f} s CPU), max {max(walls):.2f} s wall "
            f"({max(cpus):.2f} s CPU); {sum(r[6] == 'yes' for r in shrunk)} proven 1-minimal "
            f"(target median <= {SHRINK_TARGET:.0f} s: {'met' if median <= SHRINK_TARGET else 'MISSED'})"
        )


def bench_shrink() -> None:
    _shrink_tables(raft_lab, lab_solutions.BUGS, lab_solutions.planted, RANDOM_SCENARIOS, "shrink, Raft lab")


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished child processes (the sweep's workers)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def bench_sweep(seeds: int) -> None:
    solution = lab_solutions.solution()
    rows, walls = [], {}
    for workers in (1, 2):
        load = os.getloadavg()[0]
        cpu = _cpu()
        df = raft_lab.sweep("churn", solution, seeds, workers=workers, progress=False)
        cpu = _cpu() - cpu
        wall = df.attrs["wall"]
        walls[workers] = wall
        rows.append(
            (workers, seeds, len(df), f"{wall:.1f}", f"{seeds / wall:.1f}", f"{cpu:.1f}", f"{cpu / wall:.2f}",
             f"{load:.1f}", f"{df.attrs['virtual_time']:.0f}")
        )  # fmt: skip
    header = (
        "workers",
        "seeds",
        "failing",
        "wall s",
        "seeds/s",
        "CPU s",
        "cores busy",
        "load before",
        "virtual s",
    )
    table("sweep: 'churn' on the notebook's solution", header, rows)
    print(
        f"\nspeed-up of 2 workers over 1: {walls[1] / walls[2]:.2f}x on {os.cpu_count()} cores "
        "(cores busy = CPU s / wall s: how much of the machine the sweep got; the load average before each "
        "run says how busy the machine was with other work)"
    )


def bench_more_labs() -> None:
    for lab, source, randoms in MORE_LABS:
        n, trials, wall, cpu = _suite_table(
            lab, source.solution(), f"{lab.name} lab: the notebook's solution, every scenario, default seeds"
        )
        print(f"\nwhole {lab.name} suite: {n} scenarios, {trials} trials, {wall:.1f} s wall, {cpu:.1f} s CPU")
        _shrink_tables(lab, source.bugs, source.planted, randoms, f"{lab.name} lab")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", choices=("suite", "shrink", "sweep", "more-labs"))
    ap.add_argument("--sweep-seeds", type=int, default=10_000)
    args = ap.parse_args()
    if args.only in (None, "suite"):
        bench_suite()
    if args.only in (None, "shrink"):
        bench_shrink()
    if args.only in (None, "more-labs"):
        bench_more_labs()
    if args.only in (None, "sweep"):
        bench_sweep(args.sweep_seeds)


if __name__ == "__main__":
    main()
