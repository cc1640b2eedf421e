"""How long does the anomaly checker take on 10,000 list-append transactions over 100 keys?

The histories come from labkit's MVCC store (``labkit.txn.generate.random_run``):
10,000 transactions of 1 to 4 reads and appends over 100 keys, run by 10
clients in a seeded random interleaving, once per isolation level. So the
checker meets both kinds of history: serializable ones, where the graph has
no cycle and the search ends after one pass (Tarjan's components), and
anomalous ones with large strongly connected components, where it searches
for the shortest cycle of each class.

The target (issue 19): checking one such history takes at most 5 s. Printed
per level: transactions (committed), inferred edges, wall-clock seconds for
the graph build (reads to versions and dependencies) and for the cycle
search, their total, the CPU seconds of the whole check (the target's
measure: a shared machine stretches wall-clock time), and what was found. The time to *make* the history (running the
store) is shown apart; it is not the checker's.

    .venv/bin/python benchmarks/bench_txn.py [--quick] [--txns N] [--keys K]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from labkit.txn import Isolation, check
from labkit.txn.generate import random_run

TARGET_S = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 transactions instead of 10,000")
    parser.add_argument("--txns", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=100)
    args = parser.parse_args()
    txns = 1_000 if args.quick else args.txns
    print(f"checker on {txns:,} list-append transactions over {args.keys} keys, 10 clients (seed 1)\n")
    header = (
        f"{'level':20} {'txns':>6} {'committed':>9} {'edges':>7} {'graph build s':>13} {'cycle search s':>14} "
        f"{'total s':>8} {'CPU s':>6} {'make s':>7}  found"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for level in Isolation:
        t0 = time.perf_counter()
        history = random_run(random.Random(1), level, txns=txns, keys=args.keys, clients=10).history
        made = time.perf_counter() - t0
        c0 = time.process_time()
        result = check(history)
        cpu = time.process_time() - c0
        build, search = result.timings["graph build"], result.timings["cycle search"]
        worst = max(worst, cpu)
        committed = sum(t.committed for t in history)
        found = ", ".join(sorted(a.value for a in result.anomalies)) or "no anomaly"
        if not result.complete:
            found += " (search gave up somewhere)"
        print(
            f"{level.value:20} {len(history):>6} {committed:>9} {len(result.edges):>7} {build:>13.2f} "
            f"{search:>14.2f} {build + search:>8.2f} {cpu:>6.2f} {made:>7.1f}  {found}"
        )
    met = worst <= TARGET_S
    print(f"\ntarget: every history checked in <= {TARGET_S:.0f} s of CPU; slowest took {worst:.2f} s: "
          f"{'met' if met else 'NOT met'}")  # fmt: skip
    return 0 if met or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
