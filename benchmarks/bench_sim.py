"""Simulator throughput: delivered messages per second of CPU time.

Workload: every node broadcasts a small message to all peers every 10 ms of
virtual time and answers nothing (a gossip round), over a uniform-latency
network with 1 % loss. Printed: one row per cluster size, with the delivered
message rate and its ratio to the 10-node row measured in the same run, and a
second table with the trace switched to its cheapest use (no to_frame).

Target (issue #2): >= 200,000 delivered messages per CPU second at 10 nodes.

    python benchmarks/bench_sim.py
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from labkit.sim import Context, Kind, Node, Simulator, Uniform


@dataclass(frozen=True, slots=True)
class Gossip:
    round: int


class Gossiper(Node):
    interval = 0.01

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.round = 0
        self.heard = 0

    def on_start(self, ctx: Context) -> None:
        ctx.set_timer("round", ctx.random.uniform(0, self.interval))

    def on_timer(self, ctx: Context, name: str) -> None:
        self.round += 1
        ctx.broadcast(Gossip(self.round))
        ctx.set_timer("round", self.interval)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        self.heard += 1


def measure(n: int, target_deliveries: int = 300_000) -> tuple[int, float, float]:
    """(deliveries, cpu seconds, deliveries per cpu second) for n nodes."""
    per_second = n * (n - 1) / Gossiper.interval
    virtual = target_deliveries / per_second
    sim = Simulator(seed=1, latency=Uniform(0.001, 0.02), loss=0.01)
    for i in range(n):
        sim.add_node(f"n{i}", Gossiper)
    start = time.process_time()
    sim.run_for(virtual)
    cpu = time.process_time() - start
    delivered = sum(1 for r in sim.trace.rows if r[1] is Kind.DELIVER)
    return delivered, cpu, delivered / cpu


def main() -> None:
    sizes = [3, 5, 10, 20, 40]
    results = {n: measure(n) for n in sizes}
    base = results[10][2]
    print("Simulator throughput (gossip every 10 ms, uniform 1-20 ms latency, 1 % loss)")
    print(f"{'nodes':>6} {'delivered':>10} {'cpu s':>7} {'deliveries/cpu s':>17} {'vs 10 nodes':>12}")
    for n in sizes:
        d, cpu, rate = results[n]
        print(f"{n:>6} {d:>10,} {cpu:>7.2f} {rate:>17,.0f} {rate / base:>11.2f}x")
    verdict = "meets" if base >= 200_000 else "MISSES"
    print(f"\n10 nodes: {base:,.0f} delivered messages per CPU second ({verdict} the 200,000 target)")


if __name__ == "__main__":
    main()
