"""Model checker benchmarks (labkit.explore), against the naive deep-copying search in the same run.

    python benchmarks/bench_explore.py                 # everything (~2 min of CPU)
    python benchmarks/bench_explore.py --naive-states 5000   # a shorter naive run

Prints one table:

* **speed**: 3-node Raft election, terms ≤ 2, no message loss (the network
  keeps every message: ``duplicates=None``), breadth-first. The naive
  search (:mod:`labkit.explore.naive`, a deep copy of the whole state per
  successor) runs until it has ``--naive-states`` distinct states; the fast
  search runs *without* symmetry reduction to the same number of distinct
  states, so both do the same work. States per CPU second, and the ratio.
  Target: ≥ 10×;
* **exhaust**: the same model and bounds searched to the end with symmetry
  reduction: states explored, distinct states, depth, CPU and wall seconds.
  Target: ≤ 60 s;
* **voting twice**: the shortest counterexample for a server that votes
  twice in a term. Target: ≤ 5 s;
* then every check of :mod:`labkit.explore.checks` (the bounds the tests
  and notebook 12 rely on), with its verdict and cost.

Times are CPU seconds of this process (``time.process_time``) and wall
seconds; on a shared machine the wall time is the larger, and the load
average is printed so a reader can tell.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from labkit.explore import Bounds, bfs, protocols
from labkit.explore import invariants as inv
from labkit.explore.checks import CHECKS, check
from labkit.explore.naive import naive_bfs

RATIO_TARGET = 10.0
EXHAUST_TARGET = 60.0  # seconds
VOTE_TWICE_TARGET = 5.0  # seconds
ELECTION = Bounds(limits={"term": 2}, duplicates=None)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its CPU seconds and its wall seconds."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def row(*cells: Any) -> str:
    widths = (44, 14, 12, 10, 8, 9, 9, 22)
    return "  ".join(
        str(c).ljust(w) if i == 0 else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=False))
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--naive-states", type=int, default=20_000, help="distinct states the naive search visits"
    )
    args = ap.parse_args()
    model = protocols.raft(3)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    print(row("search", "explored", "distinct", "depth", "CPU s", "wall s", "states/s", "verdict"))
    print(row(*["-" * w for w in (44, 14, 12, 10, 8, 9, 9, 22)]))

    naive, n_cpu, n_wall = timed(
        lambda: naive_bfs(model, inv.RAFT_INVARIANTS, ELECTION, max_states=args.naive_states)
    )
    fast, f_cpu, f_wall = timed(
        lambda: bfs(
            model, inv.RAFT_INVARIANTS, ELECTION, symmetry=False, max_states=naive.distinct, progress=False
        )
    )
    n_rate, f_rate = naive.explored / n_cpu, fast.explored / f_cpu
    print(row("naive deep-copy BFS, election terms ≤ 2", f"{naive.explored:,}", f"{naive.distinct:,}", naive.depth,
              f"{n_cpu:.1f}", f"{n_wall:.1f}", f"{n_rate:,.0f}", "stopped (state cap)"))  # fmt: skip
    print(row("labkit.explore.bfs, same cap, no symmetry", f"{fast.explored:,}", f"{fast.distinct:,}", fast.depth,
              f"{f_cpu:.1f}", f"{f_wall:.1f}", f"{f_rate:,.0f}",
              f"{f_rate / n_rate:.0f}× naive (≥ {RATIO_TARGET:.0f}×)"))  # fmt: skip

    full, e_cpu, e_wall = timed(lambda: bfs(model, inv.RAFT_INVARIANTS, ELECTION, progress=False))
    verdict = "exhausted, no violation" if full.ok and full.exhausted else full.summary()
    print(row("exhaust election terms ≤ 2, symmetry", f"{full.explored:,}", f"{full.distinct:,}", full.depth,
              f"{e_cpu:.1f}", f"{e_wall:.1f}", f"{full.explored / e_cpu:,.0f}",
              f"{verdict} (≤ {EXHAUST_TARGET:.0f} s)"))  # fmt: skip

    vt = check("Raft election, voting twice")
    found, v_cpu, v_wall = timed(lambda: vt.run(progress=False))
    print(row("voting twice: shortest counterexample", f"{found.explored:,}", f"{found.distinct:,}", found.depth,
              f"{v_cpu:.2f}", f"{v_wall:.2f}", f"{found.explored / max(v_cpu, 1e-9):,.0f}",
              f"{len(found.violation)} steps (≤ {VOTE_TWICE_TARGET:.0f} s)"))  # fmt: skip

    print()
    print(
        row(
            "check (labkit.explore.checks)",
            "explored",
            "distinct",
            "depth",
            "CPU s",
            "wall s",
            "states/s",
            "verdict",
        )
    )
    print(row(*["-" * w for w in (44, 14, 12, 10, 8, 9, 9, 22)]))
    for c in CHECKS:
        r, cpu, wall = timed(lambda c=c: c.run(progress=False))
        if r.violation is not None:
            verdict = f"{r.violation.invariant}: {len(r.violation) - r.violation.prefix} steps"
        else:
            verdict = "no violation" + ("" if r.exhausted else " (not exhausted)")
        print(row(c.name, f"{r.explored:,}", f"{r.distinct:,}", r.depth, f"{cpu:.2f}", f"{wall:.2f}",
                  f"{r.explored / max(cpu, 1e-9):,.0f}", verdict))  # fmt: skip
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = f_rate / n_rate >= RATIO_TARGET and e_cpu <= EXHAUST_TARGET and v_cpu <= VOTE_TWICE_TARGET
    print("targets met (CPU time)" if ok else "TARGET MISSED")


if __name__ == "__main__":
    main()
