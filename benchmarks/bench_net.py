"""Our Raft over loopback TCP, etcd and pysyncobj on the same machine, in the same run.

For each system, a 3-server cluster on 127.0.0.1:

* put latency with one client (p50 / p99 over sequential puts);
* throughput with 32 concurrent clients (each one put at a time; our
  leader batches what arrives meanwhile into one AppendEntries and one fsync;
  a second row lets it stream up to 4 AppendEntries per follower, the window
  of :mod:`labkit.raft.progress`);

plus, for context, how long one ``fsync`` takes on this disk right now (it
varies a lot on a shared virtual disk, and every committed put waits for at
least two of them: the leader's and a follower's).

Targets (issue 18): put p50 <= 5 ms and >= 4,500 puts/s with 32 clients.
pysyncobj (``pip install -e '.[bench]'``) is measured when it is installed:
its nodes are processes too; its client is the leader process itself (a
synchronous ``set`` for latency, callbacks for pipelined throughput), and it
keeps its journal in memory (no fsync) unless given a journal file.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

from labkit.net import ProcessCluster
from labkit.net.procs import free_port

SEQUENTIAL = 300
CONCURRENT = 32
SECONDS = 4.0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def fsync_ms() -> float:
    with tempfile.TemporaryDirectory() as d:
        fd = os.open(os.path.join(d, "f"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        ts = []
        for _ in range(100):
            t = time.perf_counter()
            os.write(fd, b"x" * 120)
            os.fsync(fd)
            ts.append(time.perf_counter() - t)
        os.close(fd)
    return statistics.median(ts) * 1e3


async def _throughput(clients: list, seconds: float) -> tuple[int, list[float]]:
    stop = time.monotonic() + seconds
    lat: list[float] = []
    count = 0

    async def loop(c, i: int) -> None:
        nonlocal count
        n = 0
        while time.monotonic() < stop:
            n += 1
            r = await c.put(f"k{i % 8}", f"{i}.{n}")
            if r.done:
                count += 1
                lat.append(r.ret - r.call)

    await asyncio.gather(*(loop(c, i) for i, c in enumerate(clients)))
    return count, lat


def bench_cluster(c, label: str) -> dict:
    for i in range(20):  # warm up: connections, the leader's no-op
        c.put("warm", str(i))
    lat = []
    for i in range(SEQUENTIAL):
        r = c.put("k", str(i))
        assert r.done, r
        lat.append(r.ret - r.call)
    clients = [c.client(f"t{i}") for i in range(CONCURRENT)]
    count, tlat = c._run(_throughput(clients, SECONDS))
    return {
        "system": label,
        "p50 ms": pct(lat, 0.5) * 1e3,
        "p99 ms": pct(lat, 0.99) * 1e3,
        "ops/s (32 clients)": count / SECONDS,
        "p50 ms (32 clients)": pct(tlat, 0.5) * 1e3 if tlat else float("nan"),
    }


PYSYNCOBJ_NODE = textwrap.dedent(
    """
    import sys, time, json, threading
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class KV(SyncObj):
        def __init__(self, me, others):
            super().__init__(me, others, SyncObjConf(dynamicMembershipChange=False))
            self.d = {}
        @replicated
        def set(self, k, v):
            self.d[k] = v

    me, others, measure = sys.argv[1], sys.argv[2].split(","), sys.argv[3] == "1"
    kv = KV(me, others)
    if not measure:
        time.sleep(120)
        sys.exit(0)
    deadline = time.time() + 30
    while kv._getLeader() is None and time.time() < deadline:
        time.sleep(0.05)
    # Become the client on the leader's side: wait until this node leads or just use it.
    for i in range(20):
        kv.set("warm", i, sync=True, timeout=5)
    lat = []
    for i in range(int(sys.argv[4])):
        t = time.perf_counter(); kv.set("k", i, sync=True, timeout=5); lat.append(time.perf_counter() - t)
    done = [0]
    lock = threading.Lock()
    def cb(res, err):
        with lock:
            done[0] += 1
    seconds = float(sys.argv[5])
    stop = time.time() + seconds
    sent = 0
    while time.time() < stop:
        if sent - done[0] < 1000:
            kv.set("k%d" % (sent % 8), sent, callback=cb); sent += 1
        else:
            time.sleep(0.0005)
    print(json.dumps({"lat": lat, "ops": done[0] / seconds}), flush=True)
    """
)


def bench_pysyncobj() -> dict | None:
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        return None
    ports = [free_port() for _ in range(3)]
    addrs = [f"127.0.0.1:{p}" for p in ports]
    procs = []
    try:
        for i in range(1, 3):
            others = ",".join(a for j, a in enumerate(addrs) if j != i)
            procs.append(subprocess.Popen([sys.executable, "-c", PYSYNCOBJ_NODE, addrs[i], others, "0"]))
        others = ",".join(addrs[1:])
        out = subprocess.run(
            [sys.executable, "-c", PYSYNCOBJ_NODE, addrs[0], others, "1", str(SEQUENTIAL // 3), str(SECONDS)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        import json

        got = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for p in procs:
            p.kill()
            p.wait()
    lat = got["lat"]
    return {
        "system": "pysyncobj (journal in memory)",
        "p50 ms": pct(lat, 0.5) * 1e3,
        "p99 ms": pct(lat, 0.99) * 1e3,
        "ops/s (32 clients)": got["ops"],
        "p50 ms (32 clients)": float("nan"),
    }


def main() -> None:
    rows = []
    print(f"fsync on this disk now: {fsync_ms():.2f} ms (median of 100)")
    with ProcessCluster(n=3, nemesis=False) as c:
        rows.append(bench_cluster(c, "labkit Raft (3 processes, fsync)"))
    with ProcessCluster(n=3, nemesis=False, max_inflight=4) as c:
        rows.append(bench_cluster(c, "labkit Raft, 4 AppendEntries in flight"))
    with ProcessCluster(n=3, nemesis=False, early_sends=False) as c:
        rows.append(bench_cluster(c, "labkit Raft, leader syncs before sending"))
    from labkit.net.etcd import EtcdCluster, etcd_available

    ok, why = etcd_available()
    if ok:
        with EtcdCluster(n=3, nemesis=False) as c:
            leader = c.leader()
            c.client("c0", member=leader)
            for i in range(CONCURRENT):
                c.client(f"t{i}", member=leader)
            rows.append(bench_cluster(c, f"etcd {why} (3 processes, aetcd client)"))
    else:
        print(f"etcd skipped: {why}")
    py = bench_pysyncobj()
    if py is not None:
        rows.append(py)
    else:
        print("pysyncobj skipped: pip install -e '.[bench]'")
    print()
    head = ["system", "p50 ms", "p99 ms", "ops/s (32 clients)", "p50 ms (32 clients)"]
    print(f"{head[0]:<48}" + "".join(f"{h:>21}" for h in head[1:]))
    for r in rows:
        print(
            f"{r['system']:<48}"
            + "".join(f"{r[h]:>21.2f}" if h != head[3] else f"{r[h]:>21,.0f}" for h in head[1:])
        )
    ours = rows[0]
    print()
    print(
        f"targets: put p50 <= 5 ms: {'met' if ours['p50 ms'] <= 5 else 'NOT met'} ({ours['p50 ms']:.2f} ms); "
        f">= 4,500 puts/s with 32 clients: {'met' if ours['ops/s (32 clients)'] >= 4500 else 'NOT met'} "
        f"({ours['ops/s (32 clients)']:,.0f}/s)"
    )


if __name__ == "__main__":
    main()
