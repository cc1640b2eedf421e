"""Simulator throughput: delivered messages per second of CPU time.

Workload: every node broadcasts a small message to all peers every 10 ms of
virtual time and answers nothing (a gossip round), over a uniform-latency
network with 1 % loss. Printed: one row per cluster size, with the delivered
message rate and its ratio to the 10-node row measured in the same run, and a
second table with the trace switched to its cheapest use (no to_frame).

Target (issue #2): >= 200,000 delivered messages per CPU second at 10 nodes.

A third table is a ping-pong: 10 pairs of nodes bounce one message each over
a 1-3 ms uniform link for 200 virtual seconds (about a million deliveries),
with the trace on and off, beside the same workload written in simpy's
callback style (no processes: each delivery is a timeout event with a
callback), and beside labkit at ``--baseline`` (an earlier commit), all in
this run and interleaved (see baseline.py). Target (issue #14): labkit at
least as fast as simpy. Needs simpy (``pip install -e '.[bench]'``).

    python benchmarks/bench_sim.py [--baseline REV] [--repeats N]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from baseline import DEFAULT_BASELINE, compare, table

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
    delivered = sim.trace.count(Kind.DELIVER)
    return delivered, cpu, delivered / cpu


PING_PONG = """
import time
from dataclasses import dataclass
from labkit.sim import Node, Simulator, Uniform

@dataclass(frozen=True, slots=True)
class Ball:
    n: int

class Player(Node):
    def on_start(self, ctx):
        if self.node_id.startswith("a"):
            ctx.send("b" + self.node_id[1:], Ball(0))

    def on_message(self, ctx, src, msg):
        ctx.send(src, msg)

sim = Simulator(1, latency=Uniform(0.001, 0.003), trace={trace})
for i in range(10):
    sim.add_node(f"a{{i}}", Player)
    sim.add_node(f"b{{i}}", Player)
t = time.process_time()
sim.run_for(200.0)
print(time.process_time() - t, sim._msg_seq)
"""

SIMPY_PING_PONG = """
import random, time
import simpy

env = simpy.Environment()
rng = random.Random(1)
delivered = 0

def send(dst, msg):
    ev = env.timeout(0.001 + 0.002 * rng.random(), value=(dst, msg))
    ev.callbacks.append(deliver)

def deliver(ev):
    global delivered
    dst, msg = ev.value
    delivered += 1
    send(dst ^ 1, msg)  # the partner answers

for i in range(10):
    send(2 * i + 1, "ball")
t = time.process_time()
env.run(until=200.0)
print(time.process_time() - t, delivered)
"""


def bench_ping_pong(baseline: str | None, repeats: int) -> None:
    try:
        import simpy  # noqa: F401
    except ImportError:
        print("\n(ping-pong against simpy skipped: pip install -e '.[bench]' for simpy)")
        return
    codes = {"trace on": PING_PONG.format(trace=True), "trace off": PING_PONG.format(trace=False)}
    labkit = compare(codes, baseline, repeats)
    simpy_time = compare({"simpy": SIMPY_PING_PONG}, None, repeats)["simpy"][0]
    simpy_rate = simpy_time.runs[0][1] / simpy_time.median()
    rows = [["simpy, callback style", "", f"{simpy_rate:,.0f}", "", "1.00x", ""]]
    for name, (now, before) in labkit.items():
        now_rate = now.runs[0][1] / now.median()
        before_rate = before.runs[0][1] / before.median() if before else float("nan")
        verdict = "met" if now_rate >= simpy_rate else "NOT met"
        rows.append(
            [
                f"labkit, {name}",
                f"{before_rate:,.0f}" if before else "",
                f"{now_rate:,.0f}",
                f"{now_rate / before_rate:.2f}x" if before else "",
                f"{now_rate / simpy_rate:.2f}x",
                f"{verdict} (>= simpy)",
            ]
        )
    table(
        f"Ping-pong, 10 pairs x 200 s virtual: deliveries per CPU second (median of {repeats}, interleaved)",
        ["", f"before ({baseline})" if baseline else "before", "now", "now / before", "vs simpy", "target"],
        rows,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with ('' for none)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
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
    bench_ping_pong(args.baseline or None, args.repeats)


if __name__ == "__main__":
    main()
