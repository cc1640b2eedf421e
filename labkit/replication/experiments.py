"""Partition scenarios and what they measure, as pandas DataFrames.

The CAP theorem (Gilbert and Lynch, 2002) is a statement about what a
store *can* do during a partition; here it is measured. A scenario runs a
closed-loop workload of reads and writes on one register from clients on
both sides of a partition, heals it, lets background repair work, and then
counts:

* **availability** per side and phase: the fraction of requests answered;
* **stale reads**: answered reads that returned none of the values a
  linearizable register could have returned (every value they saw had been
  overwritten by a write that completed before the read began);
* **lost writes**: acknowledged writes that are neither a surviving version
  nor in the causal past of one once the store has settled, judged by what
  the clients were actually shown, not by the store's own clocks
  (last-writer-wins silently discards concurrent writes; dotted version
  vectors keep them as siblings instead);
* **conflicting versions**: siblings left for a client to reconcile.

:func:`quorum_latency` measures the other half of PACELC (Abadi 2012): even
without a partition, waiting for more replicas costs latency.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.clocks import VectorClock
from labkit.history import HistoryEntry
from labkit.replication.client import ClientOp, OpKind, Workload
from labkit.replication.config import count_or_ids
from labkit.replication.messages import MerkleData, MerkleLevel
from labkit.replication.modes import Mode, Resolution
from labkit.replication.store import DEFAULT_LATENCY, ReplicatedStore
from labkit.replication.versions import Dot, Siblings, Versioned, context_of
from labkit.sim import Exponential, Kind, Latency, Trace, Uniform

PHASES = ("before", "during", "after")  # labels for tables, relative to the partition
# A long-tailed network: most messages take a few ms, a few take far longer.
PACELC_LATENCY = Exponential(0.01, 0.002)
# A jittery one: every message takes anything from 1 to 30 ms, so later messages can overtake earlier ones.
RACE_LATENCY = Uniform(0.001, 0.03)


def ops_frame(ops: Sequence[ClientOp], side_of: dict[str, str] | None = None):  # -> pandas.DataFrame
    """One row per operation: client, side, kind, key, value, call, ret, latency, ok, values..."""
    import pandas as pd

    side_of = side_of or {}
    rows = [
        (op.client, side_of.get(op.client.split("/")[0], ""), op.coordinator, op.kind.value, op.key, op.value,
         op.call, op.ret, op.ret - op.call, op.ok is True, op.ok is None, op.values, op.quorum_met, op.answered)
        for op in ops
    ]  # fmt: skip
    columns = ["client", "side", "coordinator", "kind", "key", "value", "call", "ret", "latency", "ok",
               "timed_out", "values", "quorum_met", "answered"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def stale_flags(ops: Sequence[ClientOp]) -> list[bool]:
    """For each operation, True if it is an answered read that returned stale data.

    A write *w* is overwritten before a read starts if some acknowledged
    write began after *w* returned and itself returned before the read
    began. A read is stale if an acknowledged write had completed before it
    began and every value it returned comes from overwritten writes. Writes
    that were refused or never answered may still have reached a replica;
    they are never counted as overwritten (so this count is a lower bound).
    """
    writes: dict[tuple[str, Any], ClientOp] = {}
    acked: dict[str, list[ClientOp]] = {}
    for op in ops:
        if op.kind is OpKind.WRITE:
            writes[(op.key, op.value)] = op
            if op.ok:
                acked.setdefault(op.key, []).append(op)
    flags = []
    for op in ops:
        done = [w for w in acked.get(op.key, ()) if w.ret < op.call]
        if op.kind is not OpKind.READ or not op.ok or not done:
            flags.append(False)
            continue
        newest_start = max(w.call for w in done)
        sources = [writes.get((op.key, value)) for value in op.values]
        flags.append(all(w is not None and w.ok and w.ret < newest_start for w in sources))
    return flags


def causal_histories(
    ops: Sequence[ClientOp], also: dict[str, Siblings] | None = None
) -> dict[Dot, frozenset[Dot]]:
    """For every version the clients saw (and those in ``also``: key -> versions),
    the dots of all writes it really descends from, itself included.

    This is the judge's view, built from the history alone and not from the
    store's clocks: a write descends from itself and from everything its
    client had been shown before it was called (reads and write answers,
    with their own pasts), or, if the write carried an explicit context,
    from the versions that context names. A version from a write the client
    never heard back from is matched to it by key and value when that is
    unambiguous; otherwise (and for versions of writes not in ``ops``) its
    own context is taken at its word.
    """
    events = []
    for i, op in enumerate(ops):
        if op.kind is OpKind.WRITE:
            events.append((op.call, 1, i))
        if op.ok:
            events.append((op.ret, 0, i))  # at equal times an answer arrives before the next call
    events.sort()
    hist: dict[Dot, frozenset[Dot]] = {}
    seen: dict[tuple[str, str], frozenset[Dot]] = {}  # (client, key) -> what it was shown, with pasts
    context: dict[tuple[str, str], VectorClock] = {}  # (client, key) -> its default context
    unanswered: dict[tuple[str, Any], list[frozenset[Dot]]] = {}  # (key, value) -> pasts of such writes

    def named_by(clock: VectorClock) -> frozenset[Dot]:
        return frozenset().union(*(h for d, h in hist.items() if d.seen_by(clock)))

    def history_of(key: str, v: Versioned) -> frozenset[Dot]:
        if v.dot not in hist:
            candidates = unanswered.get((key, v.value), [])
            past = candidates[0] if len(candidates) == 1 else named_by(v.context)
            hist[v.dot] = past | {v.dot}
        return hist[v.dot]

    for _, is_call, i in events:
        op = ops[i]
        who = (op.client.split("/")[0], op.key)
        if is_call:
            mine = context.get(who, VectorClock())
            written = op.context if op.context is not None else mine
            past = seen.get(who, frozenset()) if written == mine else named_by(written)
            if op.ok and op.versions:
                hist[op.versions[0].dot] = past | {op.versions[0].dot}
            else:
                unanswered.setdefault((op.key, op.value), []).append(past)
        else:
            shown = frozenset().union(*(history_of(op.key, v) for v in op.versions))
            seen[who] = seen.get(who, frozenset()) | shown
            context[who] = context_of(op.versions).merge(context.get(who, VectorClock()))
    for key, versions in (also or {}).items():
        for v in versions:
            history_of(key, v)
    return hist


def lost_writes(ops: Sequence[ClientOp], final: dict[str, Siblings]) -> list[ClientOp]:
    """Acknowledged writes that are neither in the settled state (``final``:
    key -> versions) nor in the causal past of a version that is.

    Such a write was discarded without any later writer having seen it: the
    fate of concurrent writes under last-writer-wins (DDIA ch. 5, "Last
    write wins"). The causal pasts come from :func:`causal_histories`, that
    is from what the clients were shown, so a store whose clocks *claim*
    that a later write had seen an earlier one (as coordinator-stamped
    vector clocks do for two blind writes through one node) is caught too.
    """
    hist = causal_histories(ops, final)
    acked = [op for op in ops if op.kind is OpKind.WRITE and op.ok and op.dot is not None]
    return [op for op in acked if not any(op.dot in hist[v.dot] for v in final.get(op.key, ()))]


def to_history(ops: Iterable[ClientOp]) -> list[HistoryEntry]:
    """The operations as a history for a linearizability checker.

    A refused write may already have reached some replicas (quorum
    replication does not roll back), so refused and unanswered writes get
    ``ret = inf``: their effect is unknown. Reads that got no answer say
    nothing about the register and are left out. A client whose operation
    has ``ret = inf`` never finishes it, so its later operations belong to a
    new process (``A``, then ``A/1``, ...), keeping each process sequential.
    """
    out = []
    retired: dict[str, int] = {}
    for op in sorted(ops, key=lambda o: (o.call, o.client)):
        base = op.client.split("/")[0]
        k = retired.get(base, 0)
        process = base if k == 0 else f"{base}/{k}"
        if op.kind is OpKind.WRITE:
            known = op.ok is True
            ret = op.ret if known else math.inf
            out.append(HistoryEntry(process, ("write", op.value), op.call, ret, "ok" if known else None))
            if not known:
                retired[base] = k + 1
        elif op.ok:
            out.append(HistoryEntry(process, ("read", None), op.call, op.ret, op.values))
        elif op.ok is None:
            retired[base] = k + 1  # an unanswered read also leaves its process hanging
    return out


@dataclass
class ScenarioResult:
    """What :func:`run_partition_scenario` ran and saw."""

    store: ReplicatedStore
    sides: tuple[tuple[str, ...], tuple[str, ...]]
    partition_at: float
    heal_at: float
    key: str
    r: int
    w: int
    ops: list[ClientOp]
    final: Siblings

    def phase(self, t: float) -> str:
        """ "before", "during" or "after" the partition, for a time ``t``."""
        return "before" if t < self.partition_at else "during" if t < self.heal_at else "after"

    def frame(self):  # -> pandas.DataFrame
        """:func:`ops_frame` plus ``phase`` and ``stale`` columns."""
        side_of = {c: c[0] for c in self.store.clients}
        df = ops_frame(self.ops, side_of)
        df["phase"] = [self.phase(t) for t in df["call"]]
        df["stale"] = stale_flags(self.ops)
        return df

    def lost(self) -> list[ClientOp]:
        return lost_writes(self.ops, {self.key: self.final})

    @property
    def conflicts(self) -> int:
        """Siblings left after settling beyond the one a register should hold."""
        return max(0, len(self.final) - 1)

    def refused_survivors(self) -> list[Any]:
        """Values in the settled state whose write the client was told had failed.

        Quorum replication does not roll back: a write refused for want of W
        acknowledgements may still sit on the replicas that did store it.
        """
        refused = {op.value for op in self.ops if op.kind is OpKind.WRITE and op.ok is not True}
        return [v.value for v in self.final if v.value in refused]

    def side_of(self, op: ClientOp) -> str:
        """The side ("A" or "B") of the client that ran ``op``."""
        return op.client[0]

    def counts(self) -> dict[str, Any]:
        """The headline numbers without pandas (cheap enough for every widget click).

        ``availability_A`` / ``availability_B``: fraction answered of the
        requests called during the partition (nan if none); ``stale_reads``,
        ``lost_writes``, ``siblings`` (versions left after settling).
        """
        during = [op for op in self.ops if self.partition_at <= op.call < self.heal_at]
        out: dict[str, Any] = {}
        for side in ("A", "B"):
            answered = [op.ok is True for op in during if self.side_of(op) == side]
            out[f"availability_{side}"] = sum(answered) / len(answered) if answered else math.nan
        out["stale_reads"] = sum(stale_flags(self.ops))
        out["lost_writes"] = len(self.lost())
        out["siblings"] = len(self.final)
        return out

    def summary(self):  # -> pandas.DataFrame
        """Per side and phase (phases with operations only): operations, answered,
        availability, reads, stale reads."""
        import pandas as pd

        df = self.frame()
        rows = []
        for side in ("A", "B"):
            for phase in PHASES:
                part = df[(df["side"] == side) & (df["phase"] == phase)]
                if not len(part):
                    continue  # e.g. "after" when the clients stopped at the heal
                reads = part[(part["kind"] == "read") & part["ok"]]
                rows.append(dict(side=side, phase=phase, ops=len(part), answered=int(part["ok"].sum()),
                                 availability=float(part["ok"].mean()), reads=len(reads),
                                 stale_reads=int(reads["stale"].sum())))  # fmt: skip
        return pd.DataFrame(rows)

    def history(self) -> list[HistoryEntry]:
        return to_history(self.ops)


def _sides(nodes: tuple[str, ...], side_a: int | Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    a = count_or_ids("side_a", side_a)
    if isinstance(a, int):
        a = nodes[: valid.integer("side_a", a, ge=1, lt=len(nodes), note="at least one node on each side")]
    for x in a:
        valid.one_of("each node of side_a", x, nodes)
    what = "distinct nodes that leave at least one node on the other side"
    valid.require(0 < len(set(a)) == len(a) < len(nodes), "side_a", what, a)
    return a, tuple(x for x in nodes if x not in a)


def run_partition_scenario(
    mode: Mode,
    *,
    nodes: int = 5,
    n: int = 3,
    r: int = 2,
    w: int = 2,
    side_a: int | Sequence[str] = 2,
    resolution: Resolution = Resolution.VECTOR_CLOCKS,
    seed: int = 0,
    partition_at: float = 0.5,
    heal_at: float = 2.5,
    stop: float | None = None,
    settle: float = 1.0,
    read_fraction: float = 0.5,
    think: float = 0.05,
    key: str = "x",
    latency: Latency | float = DEFAULT_LATENCY,
    anti_entropy_interval: float | None = None,
) -> ScenarioResult:
    """One register, one client per side, a partition from ``partition_at`` to ``heal_at``.

    Client ``A`` talks to the first node of side A, client ``B`` to the first
    node of side B. Clients stop issuing requests at ``stop`` (by default
    when the partition heals, so what the partition did is not overwritten
    by later writes); then the store runs ``settle`` more seconds (hinted
    handoff, anti-entropy) and every node's durable versions of the key are
    reconciled into ``final``.
    """
    stop = heal_at if stop is None else stop
    for name, v in (("partition_at", partition_at), ("heal_at", heal_at), ("stop", stop), ("settle", settle)):
        valid.number(name, v, ge=0, unit="seconds")
    if not partition_at <= heal_at <= stop:
        raise ValueError(f"need partition_at <= heal_at <= stop, got {partition_at}, {heal_at}, {stop}")
    store = ReplicatedStore(
        nodes, n, mode, r=r, w=w, resolution=resolution, seed=seed, latency=latency,
        anti_entropy_interval=anti_entropy_interval,
    )  # fmt: skip
    a, b = _sides(store.nodes, side_a)
    wl = Workload(key=key, read_fraction=read_fraction, think=think, stop=stop, r=store.r, w=store.w)
    store.add_client("A", a[0], wl)
    store.add_client("B", b[0], wl)
    store.sim.at(partition_at, lambda _: store.partition(a, b))
    store.sim.at(heal_at, lambda _: store.heal())
    # Run past the last answer or timeout, then let repair work.
    store.sim.run(stop + store.client_timeout + settle)
    return ScenarioResult(
        store, (a, b), partition_at, heal_at, key, store.r, store.w, store.ops(), store.all_versions(key)
    )


def compare_modes(
    rw: Iterable[tuple[int, int]] = ((1, 1), (2, 2), (1, 3), (3, 1)),
    modes: Iterable[Mode] = tuple(Mode),
    *,
    progress: bool = False,
    **scenario: Any,
):  # -> pandas.DataFrame
    """Run :func:`run_partition_scenario` for every mode and (R, W); one row per run and side.

    Columns: mode, r, w, side, availability (during the partition),
    stale_reads (answered stale reads, whole run), lost_writes, conflicts.
    """
    import pandas as pd

    runs = [(m, r, w) for m in modes for r, w in rw]
    if progress:
        from tqdm.auto import tqdm

        runs = tqdm(runs, desc="scenarios")
    rows = []
    for m, r, w in runs:
        res = run_partition_scenario(m, r=r, w=w, **scenario)
        counts = res.counts()
        stale = res.frame().groupby("side")["stale"].sum()
        for side in ("A", "B"):
            rows.append(dict(mode=m.value, r=r, w=w, side=side, availability=counts[f"availability_{side}"],
                             stale_reads=int(stale.get(side, 0)), lost_writes=counts["lost_writes"],
                             conflicts=res.conflicts))  # fmt: skip
    return pd.DataFrame(rows)


def cap_register_history(mode: Mode, *, seed: int = 0, **scenario: Any) -> list[HistoryEntry]:
    """The history of the CAP register scenario in ``mode`` (for a linearizability checker)."""
    return run_partition_scenario(mode, seed=seed, **scenario).history()


def quorum_latency(
    rw: Iterable[tuple[int, int]] = ((1, 1), (1, 3), (2, 2), (3, 1), (3, 3)),
    *,
    n: int = 3,
    ops: int = 200,
    seed: int = 0,
    latency: Latency | float = PACELC_LATENCY,
    client_latency: float = 0.001,
):  # -> pandas.DataFrame
    """PACELC's "else": request latency per (R, W) with every replica reachable.

    One client alternates writes and reads through a home replica it sits
    next to (``client_latency`` seconds each way); the replicas talk over
    ``latency``. Returns one row per (R, W) and kind with the mean, median
    and 99th percentile latency in milliseconds.
    """
    import pandas as pd

    valid.integer("ops", ops, ge=2)
    rows = []
    for r, w in rw:
        store = ReplicatedStore(n, n, Mode.CONSISTENCY_FIRST, r=r, w=w, seed=seed, latency=latency)
        via = store.coordinator_for("x")
        store.sim.set_latency(client_latency, src="client", dst=via)
        store.sim.set_latency(client_latency, src=via, dst="client")
        for i in range(ops // 2):
            store.put("x", i)
            store.get("x")
        df = ops_frame(store.ops())
        for kind, part in df.groupby("kind"):
            ms = part["latency"] * 1000
            rows.append(dict(r=r, w=w, kind=kind, mean_ms=float(ms.mean()), median_ms=float(ms.median()),
                             p99_ms=float(ms.quantile(0.99))))  # fmt: skip
    return pd.DataFrame(rows)


def quorum_read_race(
    seed: int = 0,
    *,
    slow: float = 0.2,
    latency: Latency | float = RACE_LATENCY,
    write_back_reads: bool = False,
) -> list[ClientOp]:
    """A strict quorum racing its own read repair (DDIA ch. 9, "Linearizability and quorums", Figure 9-6).

    Five nodes, N = 3, R = W = 2, consistency-first, last-writer-wins. ``x =
    "old"`` is written and settles. Then writer ``A`` writes ``x = "new"``
    through one home replica whose links to the other two take ``slow``
    seconds, so the write stays in flight while reader ``B`` (through
    ``n2``) and then reader ``C`` (through ``n3``, called just after ``B``
    returned) read ``x``. ``B`` may see "new" from the one replica that has
    it; ``C`` may then reach the two others before ``B``'s read repair
    does, and see "old". With ``write_back_reads=True`` B writes "new" back
    to two replicas before it answers, so C cannot miss it (Attiya, Bar-Noy
    and Dolev, 1995). Returns every operation, in call order.
    """
    store = ReplicatedStore(5, 3, Mode.CONSISTENCY_FIRST, r=2, w=2, resolution=Resolution.LAST_WRITER_WINS,
                            seed=seed, latency=latency, write_back_reads=write_back_reads)  # fmt: skip
    *others, writer = store.config.home("x")
    store.add_client("A", others[0])
    store.put("x", "old", via=others[0], client="A")
    store.run_for(0.5)
    for h in others:
        store.sim.set_latency(slow, src=writer, dst=h)
    store.add_client("B", "n2")
    store.add_client("C", "n3")
    store.client("A").coordinator = writer
    store.sim.call("A", lambda node, ctx: node.submit(ctx, OpKind.WRITE, "x", "new", quorum=2))
    store.get("x", via="n2", client="B")
    store.run_for(0.001)  # C starts strictly after B returned
    store.get("x", via="n3", client="C")
    store.run_for(2 * slow + store.client_timeout)
    return store.ops()


def merkle_traffic(trace: Trace, since: float = 0.0) -> dict[str, int]:
    """Anti-entropy traffic sent since ``since``: hashes, keys and messages."""
    sent = [e.message for e in trace.of_kind(Kind.SEND) if e.time >= since]
    walk = [m for m in sent if isinstance(m, MerkleLevel)]
    data = [m for m in sent if isinstance(m, MerkleData)]
    hashes, keys = sum(len(m.hashes) for m in walk), sum(len(m.items) for m in data)
    return {"hashes": hashes, "keys": keys, "messages": len(walk) + len(data)}


def merkle_cost(
    total_keys: int = 1000,
    differing: Iterable[int] = (0, 1, 2, 5, 10, 20, 50, 100),
    *,
    depth: int = 6,
    seed: int = 0,
):  # -> pandas.DataFrame
    """How much two replicas send to find and fix ``k`` differing keys out of ``total_keys``.

    Builds the two replicas' trees directly (no network) and walks them with
    :func:`~labkit.replication.merkle.diff`. Columns: ``differing``,
    ``hashes`` (sent during the walk), ``buckets`` (differing leaves),
    ``keys_sent`` (both replicas' keys in those buckets) and ``total_keys``
    (what swapping every key would send).
    """
    import random

    import pandas as pd

    from labkit.replication.merkle import MerkleTree, diff

    valid.integer("total_keys", total_keys, ge=1)
    rng = random.Random(seed)
    keys = [f"key{i}" for i in range(total_keys)]
    base = {k: (Versioned(i, Dot("n1", i + 1)),) for i, k in enumerate(keys)}
    tree_a = MerkleTree(base.items(), depth)
    rows = []
    for k in differing:
        valid.integer("each differing count", k, ge=0, le=total_keys, note="at most total_keys")
        changed = dict(base)
        for key in rng.sample(keys, k):
            old = changed[key][0]
            changed[key] = (Versioned(old.value, Dot("n2", old.dot.counter), old.clock),)
        tree_b = MerkleTree(changed.items(), depth)
        buckets, hashes = diff(tree_a, tree_b)
        sent = sum(len(tree_a.buckets[b]) + len(tree_b.buckets[b]) for b in buckets)
        rows.append(
            dict(differing=k, hashes=hashes, buckets=len(buckets), keys_sent=sent, total_keys=2 * total_keys)
        )
    return pd.DataFrame(rows)


def anti_entropy_run(
    keys: int = 40,
    *,
    interval: float | None = 0.2,
    duration: float = 3.0,
    step: float = 0.1,
    seed: int = 0,
    merkle_depth: int = 4,
):  # -> pandas.DataFrame
    """A replica misses ``keys`` writes behind a partition; then anti-entropy (or nothing) runs.

    Three nodes, N = 3, consistency-first with R = W = 2; ``n3`` is cut off
    while every key is written once, then the partition heals and nobody
    reads. Returns one row per ``step``: ``time`` (since healing),
    ``divergent_keys``, and the anti-entropy traffic so far (``hashes``,
    ``keys_sent``, ``messages``).
    """
    import pandas as pd

    valid.integer("keys", keys, ge=1)
    valid.number("duration", duration, gt=0, unit="seconds")
    valid.number("step", step, gt=0, unit="seconds")
    store = ReplicatedStore(3, 3, Mode.CONSISTENCY_FIRST, r=2, w=2, seed=seed, anti_entropy_interval=interval,
                            merkle_depth=merkle_depth)  # fmt: skip
    store.partition(["n3"])
    for i in range(keys):
        store.put(f"key{i}", i, via="n1")
    store.heal()
    healed = store.sim.now
    rows = []
    t = 0.0
    while True:
        traffic = merkle_traffic(store.sim.trace, since=healed)
        rows.append(dict(time=round(t, 9), divergent_keys=len(store.divergent_keys()), hashes=traffic["hashes"],
                         keys_sent=traffic["keys"], messages=traffic["messages"]))  # fmt: skip
        if t >= duration - 1e-9:
            break
        store.run_for(step)
        t += step
    return pd.DataFrame(rows)
