"""Raft in practice: what log compaction saves, and what each way of reading costs.

    python benchmarks/bench_raft_practice.py                 # both parts
    python benchmarks/bench_raft_practice.py --only memory   # or: --only reads
    python benchmarks/bench_raft_practice.py --minutes 2     # a shorter memory run

Prints two tables:

* **memory** (§7 of the extended paper): a 3-server cluster takes 100 writes per
  second (puts over 100 keys, so the state machine stays the same size) for 10
  minutes of virtual time, once without and once with snapshots
  (``snapshot_threshold=1000``). Each run is a fresh process; every virtual
  minute it reports the leader's log (entries held then, and the most it held
  during that minute), the entries kept in durable
  storage across servers, and the process's resident memory (RSS, from
  ``/proc/self/statm``). No trace, no invariant monitor and no client history are
  kept, so what grows is Raft's own state.
* **reads** (Ongaro's dissertation §6.4): 200 reads by one client on a 5-server
  cluster whose one-way delay is a fixed 5 ms, with the cluster idle and with 3
  writers busy, for each read mode: log entries appended per read,
  AppendEntries sent per read, and the read latency as the client sees it, in
  milliseconds and in round trips (one round trip = 10 ms; the client's own
  round trip to the leader is one of them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MEMORY_RUN = """
import json, os, sys, time
from labkit.raft import RaftCluster

threshold = {threshold}
minutes = {minutes}
page = os.sysconf("SC_PAGE_SIZE")

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page / 2**20

c = RaftCluster(n=3, seed=1, check=False, trace=False, snapshot_threshold=threshold)
c.run_until(lambda: c.leader() is not None)
count = [0]
longest = [0]  # the leader's longest log since the last report

def write(sim):
    leader = c.leader()
    if leader is not None:
        i = count[0] = count[0] + 1
        c.submit(("put", f"k{{i % 100}}", f"v{{i}}"), node=leader)
        longest[0] = max(longest[0], len(c.node(leader).log))
    sim.after(0.01, write)

c.sim.after(0.0, write)
t0 = time.process_time()
for minute in range(1, minutes + 1):
    c.sim.run(minute * 60.0)
    leader = c.node(c.leader())
    stored = sum(sum(1 for k in c.sim.storage(n) if isinstance(k, tuple)) for n in c.ids)
    print(json.dumps([minute, len(leader.log), leader.log.last_index, stored, rss_mb(), time.process_time() - t0,
                      longest[0]]))
    longest[0] = 0
    sys.stdout.flush()
"""


def run_memory(threshold: int | None, minutes: int) -> list[list[float]]:
    code = MEMORY_RUN.format(threshold=threshold, minutes=minutes)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("[")]


def bench_memory(minutes: int) -> None:
    without = run_memory(None, minutes)
    with_ = run_memory(1000, minutes)
    print(
        f"\nLog compaction: 3 servers, 100 writes/s, {minutes} virtual minutes "
        "(without snapshots | snapshot_threshold=1000)"
    )
    header = (
        f"{'minute':>6}  {'log entries':>11} {'stored':>8} {'RSS MB':>7}  |  "
        f"{'log entries':>11} {'(max)':>6} {'stored':>8} {'RSS MB':>7}  {'last index':>10}"
    )
    print(header + "\n" + "-" * len(header))
    for a, b in zip(without, with_, strict=True):
        print(
            f"{a[0]:>6}  {a[1]:>11,} {a[3]:>8,} {a[4]:>7.1f}  |  "
            f"{b[1]:>11,} {b[6]:>6,} {b[3]:>8,} {b[4]:>7.1f}  {b[2]:>10,}"
        )
    print(f"CPU per run: {without[-1][5]:.1f} s without, {with_[-1][5]:.1f} s with snapshots")


def bench_reads() -> None:
    from labkit.raft.scenarios import read_costs

    print(
        "\nReads: 5 servers, one-way delay 5 ms (a round trip is 10 ms), 200 reads by one client,"
        " one at a time"
    )
    header = (
        f"{'read mode':<11} {'writers':>7}  {'entries/read':>12} {'AppendEntries/read':>18}  "
        f"{'median ms':>9} {'p90 ms':>7}  {'round trips (median)':>20}"
    )
    print(header + "\n" + "-" * len(header))
    for writers in (0, 3):
        for mode in ("log", "read-index", "lease"):
            r = read_costs(mode, writers=writers, reads=200)
            print(
                f"{mode:<11} {writers:>7}  {r['entries']:>12.2f} {r['appends']:>18.1f}  "
                f"{r['median_ms']:>9.1f} {r['p90_ms']:>7.1f}  {r['round_trips']:>20.1f}"
            )
    print(
        "(AppendEntries/read counts every AppendEntries the leader sent while the reads ran, heartbeats and\n"
        " the writers' replication included, divided by the number of reads)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["memory", "reads"], help="run one part only")
    ap.add_argument("--minutes", type=int, default=10, help="virtual minutes of the memory run")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.only in (None, "reads"):
        bench_reads()
    if args.only in (None, "memory"):
        bench_memory(args.minutes)
    print(f"\n(real time: {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
