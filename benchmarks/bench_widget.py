"""Python-side cost of one cluster-widget interaction.

The widget re-simulates from the seed and redraws its FigureWidget in place
on every change. Measured: 5 heartbeating nodes, 10 s of virtual time, for
each kind of interaction (crash, partition, loss, latency, run, replay),
median and worst of 15 repetitions. The baseline row is the simulation alone
(no drawing), measured in the same run, so the ratio shows what drawing costs.

Target (issue #2): <= 100 ms median per interaction.

    python benchmarks/bench_widget.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from labkit.examples import heartbeat_cluster
from labkit.viz.cluster import ClusterWidget


def timed(action: Callable[[int], None], repeats: int = 15) -> list[float]:
    out = []
    for i in range(repeats):
        start = time.perf_counter()
        action(i)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    w = ClusterWidget(lambda s: heartbeat_cluster(s, n=5), seed=1, duration=10.0, step=0.0001, fault_at=3.0)
    _ = w.ui  # build the controls and the FigureWidget

    def baseline(i: int) -> None:
        sim = heartbeat_cluster(1, n=5)
        sim.run(10.0)

    cases: dict[str, Callable[[int], None]] = {
        "simulate only (baseline)": baseline,
        "toggle a node": lambda i: w.crash("n2") if i % 2 == 0 else w.recover("n2"),
        "change partition side": lambda i: w.set_side("n1", "B" if i % 2 == 0 else "A"),
        "move loss slider": lambda i: w.set_loss((i % 5) / 10),
        "move latency slider": lambda i: w.set_latency(5, 20 + 10 * (i % 5)),
        "press run": lambda i: w.run(),
        "drag replay slider": lambda i: w.replay(1.0 + 0.5 * i),
    }
    results = {name: timed(action) for name, action in cases.items()}
    base = statistics.median(results["simulate only (baseline)"])
    print("Cluster widget, 5 nodes x 10 s virtual time (Python side, 15 repetitions)")
    print(f"{'interaction':<28} {'median ms':>10} {'max ms':>8} {'vs baseline':>12}")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"{name:<28} {med * 1000:>10.1f} {max(times) * 1000:>8.1f} {med / base:>11.2f}x")
    worst = max(statistics.median(t) for n, t in results.items() if not n.startswith("simulate"))
    print(
        f"\nslowest median interaction: {worst * 1000:.1f} ms ({'meets' if worst <= 0.1 else 'MISSES'} the 100 ms target)"
    )


if __name__ == "__main__":
    main()
