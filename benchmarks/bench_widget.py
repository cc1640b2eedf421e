"""Python-side cost of one cluster-widget interaction, in CPU time.

The widget re-simulates from the seed and redraws its FigureWidget in place
on every change. Measured: 5 heartbeating nodes, 10 s of virtual time, for
each kind of interaction (crash, partition, loss, latency, run, replay),
median and worst of 15 repetitions, in CPU time (``time.process_time``, so a
busy machine does not mislead). The first row is the simulation alone (no
drawing). Every row is measured for this checkout and for ``--baseline`` (an
earlier commit) in the same run, interleaved (see baseline.py).

The membership clicks (add a server, remove one, remove the leader with a
hand-over) are measured on the Raft cluster widget as notebook 10 opens it
(``election_widget(n=3, seed=1, duration=3.0, fault_at=1.0)``, drawing the
role timeline); each repetition first undoes the last click's setting (not
timed), so every click makes the same change. The baseline has no membership
changes: those rows are measured for this checkout only.

Target (issues #2 and #14): <= 100 ms median per interaction, re-simulation included.

    python benchmarks/bench_widget.py [--baseline REV] [--repeats N]
"""

from __future__ import annotations

import argparse

from baseline import DEFAULT_BASELINE, compare, table

CASES = {
    "simulate only (no drawing)": "sim = heartbeat_cluster(1, n=5); sim.run(10.0)",
    "toggle a node": "w.crash('n2') if i % 2 == 0 else w.recover('n2')",
    "change partition side": "w.set_side('n1', 'B' if i % 2 == 0 else 'A')",
    "move loss slider": "w.set_loss((i % 5) / 10)",
    "move latency slider": "w.set_latency(5, 20 + 10 * (i % 5))",
    "press run": "w.run()",
    "drag replay slider": "w.replay(1.0 + 0.5 * i)",
}

# name -> (setup before each click, not timed; the click)
MEMBERSHIP = {
    "add a server": ("w.settings.added = 0", "w.add_server()"),
    "remove a server": ("w.settings.removed.clear()", "w.remove_server(follower)"),
    "remove the leader, handing over": (
        "w.settings.removed.clear(); w.settings.hand_over = True",
        "w.remove_server(leader)",
    ),
}

MEMBERSHIP_SNIPPET = """
import statistics, time
from labkit.viz.raft import election_widget
w = election_widget(n=3, seed=1, duration=3.0, fault_at=1.0)
_ = w.ui
at_fault = w.build(w.seed)  # who leads at the fault time, when the click's change happens
at_fault.sim.run(w.settings.fault_at)
leader = at_fault.leader()
follower = next(n for n in w.node_ids if n != leader)
costs = []
for i in range(15):
    {setup}
    t = time.process_time()
    {action}
    costs.append(time.process_time() - t)
print(statistics.median(costs), max(costs))
"""

SNIPPET = """
import statistics, time
from labkit.examples import heartbeat_cluster
from labkit.viz.cluster import ClusterWidget
w = ClusterWidget(lambda s: heartbeat_cluster(s, n=5), seed=1, duration=10.0, step=0.0001, fault_at=3.0)
_ = w.ui  # build the controls and the FigureWidget (plotly's import and first draw are not interactions)
costs = []
for i in range(15):
    t = time.process_time()
    {action}
    costs.append(time.process_time() - t)
print(statistics.median(costs), max(costs))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="git revision to compare with ('' for none)")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved runs of 15 interactions each")
    args = ap.parse_args()
    baseline = args.baseline or None
    results = compare({name: SNIPPET.format(action=a) for name, a in CASES.items()}, baseline, args.repeats)
    membership = {
        f"Raft: {name}": MEMBERSHIP_SNIPPET.format(setup=setup, action=action)
        for name, (setup, action) in MEMBERSHIP.items()
    }
    results |= compare(membership, None, args.repeats)  # the baseline has no membership changes
    rows = []
    for name, (now, before) in results.items():
        row = [name, f"{now.median() * 1000:.1f}", f"{now.median(1) * 1000:.1f}"]
        if baseline:
            row[1:1] = [f"{before.median() * 1000:.1f}" if before is not None else "–"]
            row.append(f"{before.median() / now.median():.2f}x" if before is not None else "–")
        rows.append(row)
    header = ["interaction", "median ms now", "max ms now"]
    if baseline:
        header[1:1] = [f"median ms before ({baseline})"]
        header.append("before / now")
    table(
        "Cluster widget, 5 nodes x 10 s virtual time (Raft rows: 3 servers x 3 s): CPU time per interaction"
        " (15 repetitions)",
        header,
        rows,
    )
    worst = max(now.median() for name, (now, _) in results.items() if not name.startswith("simulate"))
    verdict = "meets" if worst <= 0.1 else "MISSES"
    print(f"\nslowest median interaction: {worst * 1000:.1f} ms ({verdict} the 100 ms target)")


if __name__ == "__main__":
    main()
