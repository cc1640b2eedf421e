"""Raft benchmarks: simulation speed, widget cost, and many random fault schedules.

    python benchmarks/bench_raft.py                  # everything (10,000 schedules)
    python benchmarks/bench_raft.py --schedules 500  # fewer schedules
    python benchmarks/bench_raft.py --only speed     # one part: speed, widget or schedules

Prints tables:

* **speed**: 5 servers, 60 s of virtual time, 3 clients asking 100 random
  ops/s each; virtual seconds simulated per CPU second (``time.process_time``,
  so a loaded machine does not mislead), with the invariant monitor on (as in
  tests and notebooks) and off, beside the same runs of ``--baseline`` (an
  earlier commit, measured in this run, interleaved; see baseline.py), and
  whether that meets the targets of 100x (monitor off) and 60x (on). The run
  pauses the garbage collector; a second row adds the collection it leaves;
* **widget**: Python-side CPU time of one widget interaction (re-simulate 10 s
  of virtual time and redraw), median and 90th percentile;
* **schedules**: random crash/restart/partition/loss schedules with concurrent
  clients, each checked for Figure 3's invariants after every event and for a
  correct (linearizable) client history at the end; how many ran, how many
  failed, and how fast.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from baseline import DEFAULT_BASELINE, compare, table

from labkit.raft.schedules import check_history, run_schedule


def pairs(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}\n" + "-" * len(title))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


TARGET_OFF, TARGET_ON = 100.0, 60.0  # issue #14: x real time in CPU time, monitor off / on
CLIENTS, RATE = ("c1", "c2", "c3"), 100.0

SPEED = """
import gc, time
from labkit.raft import RaftCluster
c = RaftCluster(n=5, seed=1, check={check})
for name in {clients!r}:
    c.client(name).start_workload(rate={rate}, duration={virtual}, keys=("a", "b", "c", "d"))
t0 = time.process_time()
c.sim.run_for({virtual})
run = time.process_time() - t0
gc.collect()  # what the run left for the collector, so the total hides nothing
print(run, time.process_time() - t0, sum(h.done for h in c.history))
"""


def bench_speed(virtual: float = 60.0, repeats: int = 3, baseline: str | None = DEFAULT_BASELINE) -> None:
    codes = {
        check: SPEED.format(check=check, clients=CLIENTS, rate=RATE, virtual=virtual)
        for check in (False, True)
    }
    results = compare(codes, baseline, repeats)
    rows = []
    for check, target in ((False, TARGET_OFF), (True, TARGET_ON)):
        now, before = results[check]
        label = "monitor on" if check else "monitor off"
        for i, what in ((0, "run()"), (1, "run() + the collection it leaves")):
            x_now = virtual / now.median(i)
            row = [f"{label}, {what}", f"{now.median(i):.2f} s", f"{x_now:.0f}x"]
            if before is not None:
                x_before = virtual / before.median(i)
                row[1:1] = [f"{before.median(i):.2f} s", f"{x_before:.0f}x"]
                row.append(f"{before.median(i) / now.median(i):.2f}x")
            row.append(("met" if x_now >= target else "NOT met") + f" (>= {target:g}x)" if i == 0 else "")
            rows.append(row)
        done = now.runs[0][2]
        rows.append(
            [
                f"{label}, client ops completed",
                *([""] * (2 if before else 0)),
                f"{done:,.0f}",
                "",
                *([""] if before else []),
                "",
            ]
        )
    header = [
        "5 servers, 3 clients x 100 ops/s, 60 s virtual",
        "CPU now",
        "x real time",
        "vs before",
        "target",
    ]
    if baseline:
        header[1:1] = [f"CPU before ({baseline})", "x real time"]
    table(f"Raft speed, CPU time (median of {repeats} interleaved runs each)", header, rows)


def bench_widget(repeats: int = 15) -> None:
    from labkit.viz.raft import LogExplorer, election_widget

    w = election_widget(n=5, seed=1, duration=10.0, fault_at=3.0)
    _ = w.ui  # build the widgets once (plotly import and the first draw are not interactions)
    costs = []
    nodes = list(w.node_ids)
    for i in range(repeats):
        nid = nodes[i % len(nodes)]
        t0 = time.process_time()
        (w.crash if i % 2 == 0 else w.recover)(nid)
        costs.append(time.process_time() - t0)
    replay = []
    for i in range(repeats):
        t0 = time.process_time()
        w.replay(10.0 * i / repeats)
        replay.append(time.process_time() - t0)
    e = LogExplorer(n=5, seed=1)
    _ = e.ui
    e.run(8.0)
    explorer = []
    for i in range(repeats):
        t0 = time.process_time()
        e.submit(f"x={i}") if i % 3 else e.run(0.2)
        explorer.append(time.process_time() - t0)

    def fmt(xs: list[float]) -> str:
        q = statistics.quantiles(xs, n=10)[-1]
        return f"median {statistics.median(xs) * 1000:.0f} ms, p90 {q * 1000:.0f} ms ({len(xs)} interactions)"

    pairs(
        "Raft widgets: Python-side cost per interaction",
        [
            ("election widget: toggle a server (re-simulate 10 s + redraw)", fmt(costs)),
            ("election widget: move the replay slider (redraw)", fmt(replay)),
            ("log explorer: submit / run (replay every action + redraw)", fmt(explorer)),
        ],
    )


def bench_schedules(n: int, progress: bool = True) -> int:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    seeds = range(n)
    it = tqdm(seeds, desc="fault schedules", unit="run", mininterval=2.0) if tqdm and progress else seeds
    failures = []
    events = 0
    virtual = 0.0
    ops = 0
    t0 = time.process_time()
    for seed in it:
        try:
            c = run_schedule(seed, ops=("get", "append"))
            check_history(c)
            if c.check_invariants():
                raise AssertionError(c.check_invariants())
            events += c.monitor.events_checked
            virtual += c.sim.now
            ops += len(c.history)
        except AssertionError as exc:
            failures.append((seed, str(exc)[:200]))
    real = time.process_time() - t0
    rows = [
        ("schedules run", f"{n:,}"),
        ("failed", f"{len(failures):,}"),
        ("real time", f"{real:.1f} s ({n / real:.1f} schedules per second)"),
        ("virtual time simulated", f"{virtual:,.0f} s"),
        ("events checked by the monitor", f"{events:,}"),
        ("client operations checked", f"{ops:,}"),
    ]
    pairs("Raft: random fault schedules (invariants after every event, history at the end)", rows)
    for seed, msg in failures[:10]:
        print(f"  seed {seed}: {msg}")
    return len(failures)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=10_000, help="how many random fault schedules to run")
    ap.add_argument("--only", choices=["speed", "widget", "schedules"], help="run one part only")
    ap.add_argument(
        "--baseline", default=DEFAULT_BASELINE, help="git revision to compare speed with ('' for none)"
    )
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs per speed measurement")
    args = ap.parse_args(argv)
    if args.schedules < 0:
        ap.error("--schedules must be >= 0")
    if args.only in (None, "speed"):
        bench_speed(repeats=args.repeats, baseline=args.baseline or None)
    if args.only in (None, "widget"):
        bench_widget()
    failed = 0
    if args.only in (None, "schedules") and args.schedules:
        failed = bench_schedules(args.schedules)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
