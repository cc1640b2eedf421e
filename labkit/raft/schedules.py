"""Random fault schedules for testing Raft under everything the simulator can do.

A schedule is a list of :class:`Fault` steps: wait ``delay`` seconds, then
inject ``kind`` (crash, restart, disconnect, partition, heal, loss). The
tests and ``benchmarks/bench_raft.py`` run many of them with concurrent
key-value clients while the invariant monitor watches (Figure 3 of the
extended Raft paper); :func:`run_schedule` also lifts every fault at the end
and waits until the cluster serves clients again, so liveness is tested too.

A schedule aimed at reads can also cut the *current leader* off
(``LEADER_KINDS``: "isolate-leader" puts the leader, with ``arg`` followers,
on the minority side of a partition while clients still reach it), so that
deposed leaders keep being asked for reads (§8; diss. §6.4).

Membership changes are steps too (``MEMBERSHIP_KINDS``: add a server, remove
one, hand leadership over, retire the leader by handing its leadership over
first; Ongaro's dissertation, chapter 4 and §3.10), and
:func:`run_schedule` passes the features of :class:`~labkit.raft.RaftConfig`
(snapshots, PreVote, CheckQuorum, read modes) on to the cluster.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from labkit.raft.cluster import RaftCluster
from labkit.raft.messages import KVCommand
from labkit.raft.node import ReadMode
from labkit.sim import Latency, Uniform

__all__ = [
    "Fault",
    "FAULT_KINDS",
    "LEADER_KINDS",
    "MEMBERSHIP_KINDS",
    "apply_fault",
    "check_history",
    "random_schedule",
    "run_schedule",
]

FAULT_KINDS = ("crash", "restart", "disconnect", "partition", "heal", "loss")
MEMBERSHIP_KINDS = ("add", "remove", "transfer", "retire-leader")
LEADER_KINDS = ("isolate-leader",)
ALL_KINDS = FAULT_KINDS + MEMBERSHIP_KINDS + LEADER_KINDS
MAX_MEMBERS = 7  # "add" steps stop there
MIN_VOTERS = 3  # "remove" steps stop there
SCHEDULE_LATENCY = Uniform(0.001, 0.01)  # one-way delay of the schedules' network, some reordering


@dataclass(frozen=True, slots=True)
class Fault:
    """Wait ``delay`` seconds, then inject ``kind`` with argument ``arg``.

    ``arg`` is a server number (0-based, into the cluster's ``ids``) for
    crash/restart/disconnect/remove/transfer, a list of server numbers (one
    side) for partition, a probability for loss, how many followers go with
    the leader for isolate-leader; "add" and "retire-leader" take none.
    """

    delay: float
    kind: str
    arg: Any = None


def apply_fault(c: RaftCluster, f: Fault) -> None:
    """Inject one fault; impossible ones (restarting a live server, removing the third voter) do nothing.

    Membership steps do not wait: the change goes on while the schedule runs.
    A removed server is shut down once its removal is committed, and stays down.
    """
    if f.kind not in ALL_KINDS:
        raise ValueError(f"fault kind must be one of {ALL_KINDS}, got {f.kind!r}")
    ids = c.ids
    if f.kind == "crash":
        nid = ids[f.arg % len(ids)]
        if c.is_up(nid):
            c.crash(nid)
    elif f.kind == "restart":
        nid = ids[f.arg % len(ids)]
        if not c.is_up(nid) and nid not in c.removed:
            c.restart(nid)
    elif f.kind == "disconnect":
        c.disconnect(ids[f.arg % len(ids)])
    elif f.kind == "partition":
        c.partition(sorted({ids[i % len(ids)] for i in f.arg}))
    elif f.kind == "heal":
        c.heal()
    elif f.kind == "loss":
        c.sim.set_loss(f.arg)
    elif f.kind == "isolate-leader":
        _isolate_leader(c, f.arg)
    else:
        _change_membership(c, f)


def _isolate_leader(c: RaftCluster, followers: int) -> None:
    """The leader and ``followers`` others (the next ones in ``ids``) on one side, the rest on the other."""
    leader = c.leader()
    if leader is None:
        return
    ids = c.ids
    at = ids.index(leader)
    side = [ids[(at + k) % len(ids)] for k in range(followers + 1)]
    c.partition(sorted(side))


def _change_membership(c: RaftCluster, f: Fault) -> None:
    conf = c.configuration()
    if conf is None:
        return  # no leader to ask: the step is skipped
    if f.kind == "add":
        if len(conf.members) < MAX_MEMBERS and len(c.ids) < 15:
            c.add_server(wait=False)
        return
    voters = conf.voters
    if f.kind == "retire-leader":
        leader = c.leader()
        if leader is not None and len(voters) > MIN_VOTERS and not conf.learners:
            c.remove_server(leader, wait=False, hand_over=True)
        return
    nid = voters[f.arg % len(voters)]
    if f.kind == "remove" and len(voters) > MIN_VOTERS and not conf.learners:
        c.remove_server(nid, wait=False)
    elif f.kind == "transfer" and nid != c.leader():
        c.transfer_leadership(nid, wait=False)


def random_schedule(
    rng: random.Random, steps: int = 8, n: int = 5, kinds: Sequence[str] = FAULT_KINDS
) -> list[Fault]:
    """``steps`` random faults of the given ``kinds`` (of ``FAULT_KINDS``, ``MEMBERSHIP_KINDS`` and
    ``LEADER_KINDS``) over about two seconds."""
    kinds = tuple(kinds)
    if not kinds or any(k not in ALL_KINDS for k in kinds):
        raise ValueError(f"kinds must be a non-empty selection of {ALL_KINDS}, got {kinds!r}")
    out = []
    for _ in range(steps):
        kind = rng.choice(kinds)
        if kind == "partition":
            arg: Any = rng.sample(range(n), rng.randint(1, n // 2))
        elif kind == "loss":
            arg = rng.choice([0.0, 0.05, 0.2])
        elif kind == "isolate-leader":
            arg = rng.randrange(max(1, (n - 1) // 2))  # followers that go with it: it stays in a minority
        elif kind in ("heal", "add", "retire-leader"):
            arg = None
        else:
            arg = rng.randrange(n)
        out.append(Fault(rng.uniform(0.05, 0.4), kind, arg))
    return out


def run_schedule(
    seed: int,
    faults: Sequence[Fault] | None = None,
    *,
    n: int = 5,
    clients: int = 3,
    readers: int = 0,
    rate: float = 40.0,
    keys: Sequence[str] = ("a", "b"),
    ops: Sequence[str] = ("get", "put", "append"),
    settle: float = 3.0,
    bugs: Sequence[Any] = (),
    strict: bool = True,
    latency: Latency | float = SCHEDULE_LATENCY,
    loss: float = 0.0,
    duplication: float = 0.02,
    clock_drift: float = 0.0,
    **features: Any,
) -> RaftCluster:
    """Run one schedule (random from ``seed`` if ``faults`` is None) and settle.

    Clients issue operations while the faults play out; afterwards every
    fault is lifted, every server restarted, and the run continues until every
    operation has returned (at most ``settle`` seconds). Raises
    :class:`~labkit.raft.InvariantViolation` on any safety violation when
    ``strict``; ``bugs`` builds the deliberately broken variants. ``latency``,
    ``loss`` and ``duplication`` set up the network before the first fault
    (a ``loss`` fault changes the loss rate; the settling phase loses nothing).
    ``clients`` issue ``ops``; ``readers`` more clients only read (they stay with
    whichever server answers them, so a deposed leader that answers reads is
    asked again and again).
    """
    rng = random.Random(seed)
    if faults is None:
        faults = random_schedule(rng, n=n)
    c = RaftCluster(
        n=n,
        seed=seed,
        latency=latency,
        loss=loss,
        duplication=duplication,
        bugs=bugs,
        strict=strict,
        **features,
    )
    if clock_drift:
        for nid in c.ids:
            c.sim.set_clock(nid, drift_ppm=rng.uniform(-clock_drift, clock_drift) * 1e6)
    span = sum(f.delay for f in faults)
    for i in range(clients):
        c.client(f"c{i}").start_workload(rate=rate, duration=span, keys=tuple(keys), kinds=tuple(ops))
    for i in range(readers):
        c.client(f"r{i}").start_workload(rate=rate, duration=span, keys=tuple(keys), kinds=("get",))
    for f in faults:
        c.sim.run_for(f.delay)
        apply_fault(c, f)
    c.heal()
    c.sim.set_loss(0.0)
    for nid in c.ids:
        if not c.is_up(nid) and nid not in c.removed:
            c.restart(nid)
    ok = c.run_until(lambda: all(h.done for h in c.history) and c.leader() is not None, settle)
    if not ok:
        raise AssertionError(f"seed {seed}: the cluster did not recover within {settle} s after the faults")
    c.sim.run_for(0.2)  # followers learn the final commit index
    return c


def check_history(c: RaftCluster, linearizability: bool = True, timeout: float = 5.0) -> None:
    """Check a settled run's client history; raise AssertionError on the first problem.

    * every write that returned is in the log (completed writes are never lost; with log
      compaction, "in the log" means applied by some server, as the invariant monitor saw);
    * with append-only keys, each completed append is in the final value exactly once
      and a read that starts after another read returned sees at least as much
      (reads never go back in time);
    * if ``linearizability`` and :mod:`labkit.linearizability` is importable, the
      whole history is checked against its key-value model; a verdict the
      checker cannot reach within ``timeout`` seconds fails too (undecided is
      not linearizable-as-far-as-we-know).
    """

    def settled() -> bool:
        # A leader that has committed and applied its whole log (a new leader
        # may not have committed its no-op yet, and then knows less than it holds).
        leader = c.leader()
        if leader is None:
            return False
        node = c.node(leader)
        return node.last_applied == node.commit_index == node.log.last_index

    if not c.run_until(settled, 3.0):
        raise AssertionError("no leader with a fully committed log after the faults were lifted")
    leader = c.leader()
    data = c.node(leader).state_machine.data
    if c.monitor is not None:
        commands = [e.command for e in c.monitor.applied.values()]
    else:
        commands = c.applied(leader)
    in_log = {(cmd.client, cmd.seq) for cmd in commands if isinstance(cmd, KVCommand)}
    reads_in_log = c.config.read_mode is ReadMode.LOG
    seq: dict[str, int] = {}
    for h in c.history:
        seq[h.client] = seq.get(h.client, 0) + 1
        if h.input[0] == "get" and not reads_in_log:
            continue  # answered without the log (diss. §6.4)
        if h.done and (h.client, seq[h.client]) not in in_log:
            raise AssertionError(f"{h} returned but never reached the log")
    if not any(h.input[0] == "put" for h in c.history):
        for h in c.history:
            if h.done and h.input[0] == "append" and data.get(h.input[1], "").count(h.input[2]) != 1:
                raise AssertionError(f"{h} lost or applied twice")
        reads = sorted((h for h in c.history if h.done and h.input[0] == "get"), key=lambda h: h.call)
        for i, a in enumerate(reads):
            for b in reads[i + 1 :]:
                if a.input[1] == b.input[1] and a.ret < b.call and not b.output.startswith(a.output):
                    raise AssertionError(f"read went back in time: {a} then {b}")
    if linearizability:
        try:
            from labkit.linearizability import KVModel, check
        except ImportError:  # pragma: no cover - depends on what is installed
            return
        result = check(c.operations(), KVModel(), timeout=timeout)
        if result.ok is None:
            # Undecided is not a pass: nobody has shown this history correct.
            raise AssertionError(
                f"linearizability undecided: the checker ran out of its {timeout:g} s budget on "
                f"{len(c.history)} operations ({result.steps:,} search steps), so the history "
                "is not known to be linearizable"
            )
        if result.ok is not True:
            raise AssertionError(f"history not linearizable: {result.explanation or result}")
