"""The nemesis and the judge: fault schedules, concurrent clients, and the checks (Jepsen's recipe).

A run on real processes cannot be replayed, so it is *recorded and checked*
(Kingsbury's Jepsen does the same): concurrent clients issue get/put/append
while a schedule of faults plays out; every operation is recorded with its
wall-clock call and return (a timeout is an unknown outcome); at the end all
faults are lifted, each key is read once more, and the record is judged:

* :mod:`labkit.linearizability` decides whether the history is linearizable
  (Herlihy & Wing 1990);
* no acknowledged write is lost: every append a client saw succeed is in the
  final value of its key, exactly once.

The schedule vocabulary is the simulator's (:mod:`labkit.raft.schedules`):
a :class:`Fault` is "wait ``delay`` seconds, then inject ``kind`` with
``arg``", with server numbers 0-based. Kinds: ``crash`` (SIGKILL),
``restart``, ``pause`` (SIGSTOP), ``resume`` (SIGCONT), ``disconnect``,
``partition`` (``arg``: one side's server numbers), ``cut`` (``arg``:
``(src, dst)``, one way), ``heal``, ``loss`` (a probability) and ``delay``
(seconds added to every message). Where a server is named, ``"leader"``
means whoever leads when the fault strikes; ``restart`` and ``resume``
without an argument bring back every crashed or paused server.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as v
from labkit.history import HistoryEntry
from labkit.net.client import to_operations

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "NemesisRun",
    "apply_fault",
    "random_schedule",
    "run_nemesis",
    "run_workload",
    "check_run",
    "lost_appends",
]

FAULT_KINDS = (
    "crash",
    "restart",
    "pause",
    "resume",
    "disconnect",
    "partition",
    "cut",
    "heal",
    "loss",
    "delay",
)


@dataclass(frozen=True, slots=True)
class Fault:
    """Wait ``delay`` seconds, then inject ``kind`` with argument ``arg`` (see the module docstring)."""

    delay: float
    kind: str
    arg: Any = None

    def __post_init__(self) -> None:
        v.one_of("kind", self.kind, FAULT_KINDS)
        v.number("delay", self.delay, ge=0, unit="seconds")


def apply_fault(c: Any, f: Fault) -> None:
    """Inject one fault into a cluster (:class:`~labkit.net.ProcessCluster` or an etcd cluster).

    Impossible steps (restarting a running server, resuming one not paused) do nothing.
    """
    ids = c.ids

    def server(arg: Any) -> str | None:
        if arg == "leader":  # whoever leads when the fault strikes
            return c.leader()
        return ids[arg % len(ids)]

    kind = f.kind
    if kind in ("crash", "restart", "pause", "resume", "disconnect"):
        if kind in ("restart", "resume") and f.arg is None:  # every crashed / paused server
            for nid in ids:
                getattr(c, kind)(nid)
            return
        nid = server(f.arg)
        if nid is not None:
            getattr(c, kind)(nid)
    elif kind == "partition":
        side = [f.arg] if isinstance(f.arg, (int, str)) else f.arg
        chosen = {server(i) for i in side} - {None}
        if chosen:
            c.partition(sorted(chosen))
    elif kind == "cut":
        a, b = (ids[i % len(ids)] for i in f.arg)
        if a != b:
            c.cut(a, b)
    elif kind == "heal":
        c.heal()
    elif kind == "loss":
        c.set_loss(f.arg)
    else:
        c.set_delay(f.arg)


def random_schedule(
    rng: random.Random,
    duration: float = 10.0,
    n: int = 3,
    kinds: Sequence[str] = ("crash", "pause", "disconnect", "partition", "cut", "loss", "delay"),
    gap: tuple[float, float] = (0.4, 1.2),
) -> list[Fault]:
    """Faults for about ``duration`` seconds: each one injected, held for a while, then undone.

    A crash is followed by its restart, a pause by its resume, a network
    fault by a heal (loss and delay go back to 0), so at most one fault is
    active at a time and the cluster has moments to make progress between them.
    """
    kinds = tuple(kinds)
    if not kinds or any(k not in FAULT_KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {FAULT_KINDS}, got {kinds!r}")
    out: list[Fault] = []
    t = 0.0
    while True:
        wait, hold = rng.uniform(*gap), rng.uniform(*gap)
        if t + wait + hold > duration:
            break
        kind = rng.choice(kinds)
        if kind in ("crash", "pause", "disconnect"):
            victim = rng.randrange(n)
            undo = {"crash": Fault(hold, "restart", victim), "pause": Fault(hold, "resume", victim)}.get(
                kind, Fault(hold, "heal")
            )
            out += [Fault(wait, kind, victim), undo]
        elif kind == "partition":
            out += [
                Fault(wait, kind, rng.sample(range(n), rng.randint(1, max(1, n // 2)))),
                Fault(hold, "heal"),
            ]
        elif kind == "cut":
            a, b = rng.sample(range(n), 2) if n > 1 else (0, 0)
            out += [Fault(wait, kind, (a, b)), Fault(hold, "heal")]
        elif kind == "loss":
            out += [Fault(wait, kind, rng.choice([0.05, 0.2, 0.5])), Fault(hold, "loss", 0.0)]
        else:
            out += [Fault(wait, kind, rng.choice([0.005, 0.02, 0.1])), Fault(hold, "delay", 0.0)]
        t += wait + hold
    return out


# ---------------------------------------------------------------------------
# Workload
# ---------------------------------------------------------------------------
async def _client_loop(
    client: Any,
    rng: random.Random,
    until: float,
    clock: Any,
    keys: Sequence[str],
    kinds: Sequence[str],
    think: float,
) -> None:
    made = 0
    kinds = tuple(getattr(client, "kinds", None) or kinds)
    while clock() < until:
        key = rng.choice(keys)
        kind = rng.choice(kinds)
        made += 1
        if kind == "get":
            await client.invoke(("get", key))
        else:
            # Unique values make a lost or doubled write visible in the history.
            await client.invoke((kind, key, f"{client.name}.{made};"))
        if think:
            await asyncio.sleep(think * rng.random())


async def run_workload(
    clients: Sequence[Any],
    duration: float,
    *,
    clock: Any = time.monotonic,
    keys: Sequence[str] = ("a", "b", "c"),
    kinds: Sequence[str] = ("get", "put", "append"),
    think: float = 0.02,
    seed: int = 0,
) -> None:
    """Each client issues random operations for ``duration`` seconds, one at a time, concurrently.

    ``clients`` have a ``name`` and ``async invoke(op) -> HistoryEntry`` (and may
    have ``kinds``: the operations that client issues). ``think``:
    up to this many seconds (at random) between two operations of a client.
    """
    until = clock() + duration
    await asyncio.gather(
        *(
            _client_loop(c, random.Random(f"{seed}/{c.name}"), until, clock, tuple(keys), tuple(kinds), think)
            for c in clients
        )
    )


# ---------------------------------------------------------------------------
# A whole run
# ---------------------------------------------------------------------------
@dataclass
class NemesisRun:
    """What one run recorded, and the verdicts (see :func:`check_run`)."""

    history: list[HistoryEntry]
    events: list[tuple[float, str, Any]]
    schedule: list[Fault]
    final: dict[str, Any] = field(default_factory=dict)
    result: Any = None  # the linearizability CheckResult
    lost: list[HistoryEntry] = field(default_factory=list)
    duration: float = 0.0

    @property
    def operations(self) -> list[Any]:
        """The history as :class:`labkit.linearizability.Operation` records."""
        return to_operations(self.history)

    @property
    def ok(self) -> bool:
        """Linearizable and no acknowledged write lost."""
        return bool(self.result is not None and self.result.ok is True and not self.lost)

    def counts(self) -> dict[str, int]:
        """How many operations completed and how many ended unknown."""
        done = sum(1 for r in self.history if r.done)
        return {"operations": len(self.history), "ok": done, "unknown": len(self.history) - done}

    def summary(self) -> str:
        c = self.counts()
        verdict = "—" if self.result is None else self.result.verdict.value
        return (
            f"{c['operations']} operations ({c['ok']} ok, {c['unknown']} unknown) in {self.duration:.1f} s, "
            f"{len(self.events)} faults; linearizability: {verdict}; lost acknowledged appends: {len(self.lost)}"
        )


def lost_appends(history: Sequence[HistoryEntry], final: dict[str, Any]) -> list[HistoryEntry]:
    """Acknowledged appends that are not in their key's final value exactly once.

    Only meaningful for a key no put ever overwrote: a put replaces the value,
    appends before it are rightly gone (the linearizability check covers those).
    """
    overwritten = {r.input[1] for r in history if r.input[0] == "put"}
    out = []
    for r in history:
        if r.done and r.input[0] == "append" and r.input[1] not in overwritten:
            value = final.get(r.input[1])
            if value is None or value.count(r.input[2]) != 1:
                out.append(r)
    return out


def run_nemesis(
    c: Any,
    schedule: Sequence[Fault],
    *,
    clients: int | Sequence[Any] = 4,
    keys: Sequence[str] = ("a", "b", "c"),
    kinds: Sequence[str] = ("get", "put", "append"),
    think: float = 0.02,
    seed: int = 0,
    settle: float = 10.0,
    tail: float = 0.0,
    check: bool = True,
    check_timeout: float = 20.0,
) -> NemesisRun:
    """Run a workload on cluster ``c`` while ``schedule`` plays out, lift all faults, read, check.

    ``c`` is a running :class:`~labkit.net.ProcessCluster` or
    :class:`~labkit.net.etcd.EtcdCluster`. ``clients``: how many clients to
    make, or the clients themselves (from ``c.client(...)``). The workload
    runs while the schedule plays and ``tail`` seconds after its last fault.
    """
    schedule = list(schedule)
    span = sum(f.delay for f in schedule) + tail
    if isinstance(clients, int):
        cl = [c.client(f"w{seed}.{i}") for i in range(clients)]
    else:
        cl = list(clients)
    first = len(c.history)
    first_event = len(c.events)
    t0 = c.now()
    work = c.submit(run_workload(cl, span, clock=c.now, keys=keys, kinds=kinds, think=think, seed=seed))
    at = time.monotonic()
    for f in schedule:
        at += f.delay
        time.sleep(max(0.0, at - time.monotonic()))
        apply_fault(c, f)
    work.result(span + 60)
    c.lift_faults()
    final = c.final_reads(keys, settle)
    run = NemesisRun(
        history=c.history[first:],
        events=c.events[first_event:],
        schedule=schedule,
        final=final,
        duration=c.now() - t0,
    )
    if check:
        check_run(run, timeout=check_timeout, raise_error=False)
    return run


def check_run(run: NemesisRun, timeout: float = 20.0, raise_error: bool = True) -> NemesisRun:
    """Judge a run: linearizability of the whole history and lost acknowledged appends.

    With ``raise_error``, an AssertionError names the first problem.
    """
    from labkit.linearizability import KVModel, check

    run.result = check(run.operations, KVModel(), timeout=timeout)
    run.lost = lost_appends(run.history, run.final)
    if raise_error:
        if run.result.ok is None:
            raise AssertionError(f"linearizability undecided within {timeout:g} s: {run.summary()}")
        if run.result.ok is not True:
            raise AssertionError(f"history not linearizable: {run.result.explanation or run.result}")
        if run.lost:
            raise AssertionError(f"acknowledged appends lost or doubled: {run.lost[:3]}")
        missing = [k for k, v in run.final.items() if v is None]
        if missing:
            raise AssertionError(f"no final read of {missing} succeeded after the faults were lifted")
    return run
