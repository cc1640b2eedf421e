"""How long our Raft's clients stay without answers after the leader fails, beyond the election itself.

A 3-server :class:`~labkit.net.ProcessCluster` with the proxies on (as in
notebook 13); four clients put one value after another (each waits up to
``attempt_timeout`` for one server, gives up on an operation after 1 s).
Then the leader is crashed (SIGKILL), paused (SIGSTOP) or partitioned from
the other servers. Two times are taken from the fault:

* **election**: until another server answers that it leads (the controller
  asks every server every 20 ms);
* **lag**: from then until a client gets its first answer, per client. This
  is the client's own cost: a client that keeps going back to the old
  leader (a stale ``leader_hint``) lags by whole ``attempt_timeout``\\ s.

Wall-clock times (they are what a client waits), medians and 90th
percentiles over all clients and trials. Real processes on a shared machine:
figures vary from run to run, so compare versions in the same run, e.g.
``git archive main labkit | tar -x -C /tmp/base`` and run this script once with
``PYTHONPATH=/tmp/base`` and once without.

    python benchmarks/bench_failover.py [--trials 6] [--attempt-timeout 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import labkit
from labkit.net import ProcessCluster

FAULTS = {
    "crash": ("crash", "restart"),
    "pause": ("pause", "resume"),
    "partition": ("partition", "heal"),
}


async def _put_forever(clients: list, stop: list[bool]) -> None:
    async def one(client) -> None:
        i = 0
        while not stop[0]:
            await client.put(f"k-{client.name}", str(i))
            i += 1
            await asyncio.sleep(0.005)

    await asyncio.gather(*(one(cl) for cl in clients))


def _new_leader(c: ProcessCluster, old: str, timeout: float = 10.0) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        t = c.now()
        got = c.statuses(timeout=0.05)
        if any(s and s["role"] == "leader" and nid != old for nid, s in got.items()):
            return t
        time.sleep(0.02)
    return None


def trial(c: ProcessCluster, kind: str, clients: list) -> tuple[float, list[float], int]:
    """One fault; (election seconds, each client's lag in seconds, operations given up)."""
    inject, undo = FAULTS[kind]
    old = c.wait_for_leader(15)
    assert old is not None, "no leader before the fault"
    stop = [False]
    work = c.submit(_put_forever(clients, stop))
    time.sleep(0.5)
    first = len(c.history)
    fault_at = c.now()
    if kind == "partition":
        c.partition([old])
    else:
        getattr(c, inject)(old)
    elected = _new_leader(c, old)
    time.sleep(1.5)
    stop[0] = True
    work.result(10)
    if kind == "partition":
        c.heal()
    else:
        getattr(c, undo)(old)
    c.wait_for_leader(15)
    time.sleep(0.3)
    if elected is None:
        return float("nan"), [], 0
    recs = c.history[first:]
    lags = []
    for cl in clients:
        after = [r.ret for r in recs if r.client == cl.name and r.done and r.ret > elected]
        if after:
            lags.append(min(after) - elected)
    gave_up = sum(1 for r in recs if not r.done)
    return elected - fault_at, lags, gave_up


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=6, help="faults of each kind")
    ap.add_argument(
        "--attempt-timeout", type=float, default=0.1, help="seconds a client waits for one server"
    )
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"labkit from {labkit.__file__}; attempt_timeout {args.attempt_timeout * 1e3:.0f} ms")
    print(f"{'fault':<10} {'election p50':>13} {'lag p50':>9} {'lag p90':>9} {'lag max':>9} {'given up':>9}")
    with ProcessCluster(n=3, seed=args.seed) as c:
        c.attempt_timeout = args.attempt_timeout
        clients = [c.client(f"c{i}") for i in range(4)]
        for cl in clients:
            cl.attempt_timeout = args.attempt_timeout
        for kind in FAULTS:
            elections, lags, gave_up = [], [], 0
            for _ in range(args.trials):
                e, lag, g = trial(c, kind, clients)
                elections.append(e)
                lags += lag
                gave_up += g
            print(
                f"{kind:<10} {statistics.median(elections) * 1e3:>10.0f} ms {pct(lags, 0.5) * 1e3:>6.0f} ms"
                f" {pct(lags, 0.9) * 1e3:>6.0f} ms {max(lags, default=float('nan')) * 1e3:>6.0f} ms {gave_up:>9}"
            )


if __name__ == "__main__":
    main()
