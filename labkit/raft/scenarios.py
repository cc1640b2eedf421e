"""Scripted Raft scenarios: Figure 8 of the extended paper, and what production Rafts fix.

* :class:`Figure8`: why a leader must not count replicas of an earlier term (§5.4.2);
* :func:`lagging_follower`: a follower that was down while the leader compacted
  gets the snapshot with InstallSnapshot, in chunks (§7, Figure 13);
* :func:`rejoining_follower`: a server cut off keeps raising its term and, back,
  deposes a healthy leader; PreVote prevents it (Ongaro's dissertation, §9.6);
* :func:`leader_in_minority`: a leader cut off in a minority keeps leading and
  taking requests it can never commit; CheckQuorum makes it step down (diss. §6.2);
* :func:`stale_lease_read`: a leader whose clock runs slower than the lease
  allows answers a read with stale data (diss. §6.4.1);
* :class:`TwoAtOnce`: a configuration change of two servers in one step lets
  disjoint majorities elect two leaders in one term (Figure 10, §6; diss. §4.1);
* :func:`retire_leader`: the leader is removed while clients write; handing its
  leadership over first (diss. §3.10) spares them the wait for an election.

Figure 8, step by step:

Figure 8 shows why a leader must not decide that an entry of an *earlier*
term is committed just because a majority stores it. :class:`Figure8` builds
the figure's five servers and walks through its stages with forced elections
(``RaftCluster.start_election``) and partitions, so the notebook and the tests
can look at the logs after each stage:

(a) S1 leads term 2 and replicates index 2 to S2 only;
(b) S1 crashes; S5 wins term 3 (votes from S3, S4) and writes index 2 locally;
(c) S5 crashes; S1 restarts, wins term 4 and copies its term-2 entry to S3:
    now a majority (S1, S2, S3) stores it, but it is *not* committed;
(d) S1 crashes; S5 restarts and wins (its last term 3 beats term 2), then
    overwrites index 2 everywhere. Had S1 committed the term-2 entry in (c),
    a committed entry would now be gone: the ``Bug.COMMIT_PRIOR_TERM``
    variant does exactly that, and the invariant monitor reports a State
    Machine Safety violation.

New leaders normally append a no-op (§8), which hides the problem; the
scenario therefore runs with ``noop=False``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from labkit import validation as valid
from labkit.raft.bugs import Bug
from labkit.raft.client import ClientHandle, HistoryEntry
from labkit.raft.cluster import NodeFactory, RaftCluster
from labkit.raft.messages import Configuration
from labkit.raft.node import Role

__all__ = [
    "Figure8",
    "LeaseRead",
    "MinorityLeader",
    "Rejoin",
    "RetiredLeader",
    "TwoAtOnce",
    "deposed_leader_read",
    "deaf_follower",
    "leader_in_minority",
    "lagging_follower",
    "log_growth",
    "read_costs",
    "rejoining_follower",
    "retire_leader",
    "stale_lease_read",
]


def _win(c: RaftCluster, node: str, script: str) -> None:
    """Make ``node`` campaign until it leads (three tries), as a script's stage needs."""
    for _ in range(3):
        c.start_election(node)
        c.sim.run_for(0.03)
        if c.node(node).role is Role.LEADER:
            return
    raise RuntimeError(f"{node} did not win an election in the {script} script")


class Figure8:
    """The Figure 8 scenario on a 5-server cluster; call the stages in order."""

    def __init__(self, seed: int = 13, bugs: Iterable[Bug] = ()) -> None:
        self.cluster = RaftCluster(n=5, seed=seed, noop=False, bugs=bugs, strict=False)
        self.stage = ""

    def _settle(self, command: str) -> None:
        c = self.cluster
        c.submit(command)
        if not c.run_until(lambda: all(command in c.applied(n) for n in c.ids if c.is_up(n)), 2.0):
            raise RuntimeError(f"{command!r} was not applied everywhere")

    def stage_a(self) -> RaftCluster:
        """S1 leads term 2 with index 1 (term 1) everywhere and index 2 (term 2) on S1, S2."""
        c = self.cluster
        s1, s2 = c.ids[:2]
        c.sim.run_for(0.01)
        _win(c, s1, "Figure 8")
        self._settle("x@t1")
        _win(c, s1, "Figure 8")
        c.partition([s1, s2])
        c.submit("y@t2", node=s1)
        c.sim.run_for(0.02)
        self.stage = "a"
        return c

    def stage_b(self) -> RaftCluster:
        """S1 crashes; S5 wins term 3 and appends index 2 (term 3) on itself only."""
        c = self.cluster
        s1, s2, s3, s4, s5 = c.ids
        c.crash(s1)
        c.partition([s1, s2], [s3, s4, s5])
        _win(c, s5, "Figure 8")
        c.partition([s5])
        c.submit("z@t3", node=s5)
        c.sim.run_for(0.005)
        self.stage = "b"
        return c

    def stage_c(self) -> RaftCluster:
        """S5 crashes; S1 restarts, wins term 4 and copies index 2 (term 2) to S3."""
        c = self.cluster
        s1, s2, s3, s4, s5 = c.ids
        c.crash(s5)
        c.restart(s1)
        c.partition([s1, s2, s3], [s4, s5])
        c.sim.run_for(0.005)
        _win(c, s1, "Figure 8")
        c.sim.run_for(0.03)  # heartbeats carry the term-2 entry to S3
        self.stage = "c"
        return c

    def stage_d(self) -> RaftCluster:
        """S1 crashes; S5 restarts, wins and overwrites index 2 with its term-3 entry."""
        c = self.cluster
        s1, s2, s3, s4, s5 = c.ids
        c.crash(s1)
        c.restart(s5)
        c.partition([s1], [s2, s3, s4, s5])
        c.sim.run_for(0.005)
        _win(c, s5, "Figure 8")
        self._settle("w@t5")
        self.stage = "d"
        return c

    def run(self) -> RaftCluster:
        """All four stages."""
        for step in (self.stage_a, self.stage_b, self.stage_c, self.stage_d):
            step()
        return self.cluster


# ---------------------------------------------------------------------------
# Disruptions that PreVote and CheckQuorum prevent (diss. §9.6)
# ---------------------------------------------------------------------------
def _elect(c: RaftCluster) -> str:
    if not c.run_until(lambda: c.leader() is not None, 3.0):
        raise RuntimeError("no leader was elected")
    return c.leader()  # type: ignore[return-value]


def _longest_gap(times: list[float]) -> float:
    times = sorted(times)
    return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


@dataclass(frozen=True, slots=True)
class Rejoin:
    """What :func:`rejoining_follower` saw."""

    cluster: RaftCluster
    server: str  # the follower that was cut off
    leader: str  # the leader when it was cut off
    leader_term: int  # that leader's term
    term_on_return: int  # the cut-off server's term when it came back
    deposed: bool  # whether the leader lost its leadership after the return
    gap: float  # the longest stretch without a client answer, from the return on (seconds)
    returned_at: float


def rejoining_follower(
    pre_vote: bool = False,
    *,
    seed: int = 3,
    away: float = 2.0,
    check_quorum: bool = False,
    node_factory: NodeFactory | None = None,
) -> Rejoin:
    """Cut a follower off for ``away`` seconds while a client works, then bring it back.

    Without PreVote the follower times out again and again, raising its term
    each time; back, its higher term reaches the leader (in a reply) and the
    leader steps down: an election, and no answers, for no reason. With
    PreVote its pre-votes go unanswered while it is away, so its term stays
    where it was (diss. §9.6). ``node_factory`` builds other servers (see
    :mod:`labkit.raft.plugins`).
    """
    valid.boolean("pre_vote", pre_vote)
    valid.number("away", away, gt=0, le=60, unit="seconds")
    c = RaftCluster(n=5, seed=seed, pre_vote=pre_vote, check_quorum=check_quorum, node_factory=node_factory)
    leader = _elect(c)
    c.client("client").start_workload(rate=50, duration=away + 2.0)
    c.sim.run_for(0.5)
    leader = c.leader() or leader
    term = c.node(leader).current_term
    server = next(n for n in c.ids if n != leader)
    c.disconnect(server)
    c.sim.run_for(away)
    back = c.sim.now
    term_on_return = c.node(server).current_term
    c.connect(server)
    c.sim.run_for(1.5)
    deposed = c.leader() != leader or c.node(leader).current_term != term
    answers = [h.ret for h in c.history if h.done and h.ret >= back - 0.1]
    return Rejoin(c, server, leader, term, term_on_return, deposed, _longest_gap(answers), back)


def deaf_follower(
    pre_vote: bool = False,
    *,
    seed: int = 3,
    duration: float = 2.0,
    workload: bool = True,
    node_factory: NodeFactory | None = None,
) -> Rejoin:
    """Cut only the link from the leader to one follower for ``duration`` seconds (the follower can
    still send to everyone), while a client works.

    The follower hears no heartbeat and times out. Without PreVote its
    RequestVote, with a higher term, reaches the others: the leader steps
    down, again and again. With PreVote it asks first, and every server that
    hears from the leader refuses (diss. §9.6), so nothing happens. The
    result's ``term_on_return`` is the follower's term when the link comes back.
    Without the client's ``workload`` every log stays the same, so only the
    "heard from a leader lately" half of the pre-vote rule can refuse.
    """
    valid.boolean("pre_vote", pre_vote)
    valid.number("duration", duration, gt=0, le=60, unit="seconds")
    c = RaftCluster(n=5, seed=seed, pre_vote=pre_vote, node_factory=node_factory)
    leader = _elect(c)
    if workload:
        c.client("client").start_workload(rate=50, duration=duration + 2.0)
    c.sim.run_for(0.5)
    leader = c.leader() or leader
    term = c.node(leader).current_term
    server = next(n for n in c.ids if n != leader)
    start = c.sim.now
    c.sim.cut(leader, server)
    c.sim.run_for(duration)
    back = c.sim.now
    term_on_return = c.node(server).current_term
    c.sim.uncut(leader, server)
    c.sim.run_for(0.5)
    deposed = c.leader() != leader or c.node(leader).current_term != term
    answers = [h.ret for h in c.history if h.done and h.ret >= start]
    return Rejoin(c, server, leader, term, term_on_return, deposed, _longest_gap(answers), back)


@dataclass(frozen=True, slots=True)
class MinorityLeader:
    """What :func:`leader_in_minority` saw."""

    cluster: RaftCluster
    leader: str  # the leader that ended up in the minority
    led_for: float  # how long it still believed it led after the partition (seconds)
    accepted: int  # submits it accepted while cut off
    committed: int  # how many of those it ever committed (always 0: it has no majority)
    partitioned_at: float
    healed_at: float | None = None  # when the partition healed (None: the run stopped before)


def leader_in_minority(
    check_quorum: bool = False,
    *,
    seed: int = 3,
    duration: float = 3.0,
    pre_vote: bool = False,
    after: float = 0.0,
) -> MinorityLeader:
    """Partition the leader and one follower away from the other three for ``duration`` seconds,
    submitting a command to the old leader every 50 ms; then, if ``after`` > 0, heal the partition
    and run ``after`` seconds more (the old leader hears the new term and steps down, §5.1, and the
    new leader overwrites its uncommitted entries, §5.3).

    Without CheckQuorum the old leader never learns it lost its majority: it
    accepts every submit, commits none, and stays leader until the partition
    heals. With CheckQuorum it steps down one election timeout after its last
    round of heartbeats a majority answered (diss. §6.2).
    """
    valid.boolean("check_quorum", check_quorum)
    valid.number("duration", duration, gt=0, le=60, unit="seconds")
    valid.number("after", after, ge=0, le=60, unit="seconds")
    c = RaftCluster(n=5, seed=seed, check_quorum=check_quorum, pre_vote=pre_vote)
    _elect(c)
    c.sim.run_for(0.3)
    old = c.leader()
    assert old is not None
    partner = next(n for n in c.ids if n != old)
    c.partition([old, partner])
    start = c.sim.now
    accepted: list[int] = []
    led_for = 0.0
    while c.sim.now < start + duration:
        if c.node(old).role is Role.LEADER:
            led_for = c.sim.now - start
            res = c.submit(f"cut-off {len(accepted)}", node=old)
            if res is not None:
                accepted.append(res[0])
        c.sim.run_for(0.05)
    committed = sum(1 for cmd in c.applied(old) if str(cmd).startswith("cut-off"))
    healed_at = None
    if after > 0:
        c.heal()
        healed_at = c.sim.now
        c.sim.run_for(after)
    return MinorityLeader(c, old, led_for, len(accepted), committed, start, healed_at)


# ---------------------------------------------------------------------------
# A lease read going stale (diss. §6.4.1)
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LeaseRead:
    """What :func:`stale_lease_read` saw."""

    cluster: RaftCluster
    old_leader: str
    new_leader: str | None
    write: HistoryEntry  # the write acknowledged by the new leader
    read: HistoryEntry  # the read that came after it
    linearizable: bool | None  # the checker's verdict on the whole history


def stale_lease_read(drift_ppm: float = 0.0, *, seed: int = 4, max_clock_drift: float = 0.01) -> LeaseRead:
    """Lease reads, and a leader whose clock drifts by ``drift_ppm`` (negative: it runs slow).

    The leader is cut off from the other servers (clients still reach it). A
    new leader is elected and acknowledges ``put x = 2``; then a client reads
    ``x`` from the old leader, which it last talked to. The old leader measures
    its lease on its own clock: within the bound (``max_clock_drift``) the lease
    has run out before the new leader could be elected, and the read waits for a
    round of heartbeats that never comes (the client moves on to the new leader);
    far outside it, the old leader still believes in its lease and answers ``1``.
    """
    valid.number("drift_ppm", drift_ppm, gt=-1e6, le=1e6, unit="ppm")
    c = RaftCluster(n=5, seed=seed, check_quorum=True, read_mode="lease", max_clock_drift=max_clock_drift)
    old = _elect(c)
    writer, reader = c.client("writer"), c.client("reader")
    writer.put("x", "1")
    reader.get("x")  # the reader now talks to the leader
    c.sim.run_for(0.3)
    c.sim.set_clock(old, drift_ppm=drift_ppm)
    c.sim.run_for(0.2)
    return _cut_off_then_read(c, old, writer, reader)


def _cut_off_then_read(c: RaftCluster, old: str, writer: ClientHandle, reader: ClientHandle) -> LeaseRead:
    """Cut ``old`` off from the other servers, let a new leader acknowledge ``put x = 2``, then read ``x``
    through the client that last talked to ``old``; the whole history is judged for linearizability."""
    c.partition([old])
    c.run_until(lambda: c.leader() not in (None, old), 2.0)
    new = c.leader()
    write = writer.put("x", "2")
    c.run_until(lambda: write.done, 2.0)
    read = reader.get("x")
    c.run_until(lambda: read.done, 3.0)
    from labkit.linearizability import KVModel, check

    verdict = check(c.operations(), KVModel(), timeout=10.0).ok
    return LeaseRead(c, old, new if new != old else None, write, read, verdict)


def deposed_leader_read(
    read_mode: str = "read-index", *, seed: int = 3, node_factory: NodeFactory | None = None
) -> LeaseRead:
    """A leader cut off from the other servers (clients still reach it), not told it was deposed.

    The majority elects a new leader, which acknowledges ``put x = 2``; then a
    client that last talked to the old leader reads ``x``. With ReadIndex the
    old leader cannot get a round of heartbeats confirmed, so it never answers,
    and the client finds the new leader and reads ``2``. A rule that answered
    from the old leader's state machine would return ``1``.
    """
    c = RaftCluster(n=5, seed=seed, read_mode=read_mode, node_factory=node_factory)
    old = _elect(c)
    writer, reader = c.client("writer"), c.client("reader")
    writer.put("x", "1")
    reader.get("x")
    c.run_until(lambda: not writer.busy and not reader.busy, 2.0)
    return _cut_off_then_read(c, old, writer, reader)


# ---------------------------------------------------------------------------
# Two servers at once (Figure 10 of the extended paper; diss. §4.1)
# ---------------------------------------------------------------------------
class TwoAtOnce:
    """Grow a cluster from three servers to five in one step, as Figure 10 of the extended paper draws it.

    n3 leads {n1, n2, n3}; n4 and n5 are started outside the cluster. A
    partition puts n1, n2 on one side and n3, n4, n5 on the other. n3 appends
    the configuration {n1..n5}: n4 and n5 take it at once (a server uses the
    latest configuration in its log), n1 and n2 never see it. Now n1 campaigns
    with the old configuration, where n1 and n2 are a majority, and n4 with the
    new one, where n3, n4 and n5 are: two leaders of one term. With
    ``Bug.TWO_AT_ONCE`` the leader takes the change and the invariant monitor
    reports the broken Election Safety; the correct server refuses it
    (``ValueError``: one server at a time, diss. §4.1).
    """

    def __init__(
        self, seed: int = 5, bugs: Iterable[Bug] = (Bug.TWO_AT_ONCE,), node_factory: NodeFactory | None = None
    ) -> None:
        if node_factory is not None:
            self.cluster = RaftCluster(n=3, seed=seed, node_factory=node_factory, strict=False)
        else:
            self.cluster = RaftCluster(n=3, seed=seed, bugs=bugs, strict=False)
        self.stage = ""

    def split(self) -> RaftCluster:
        """n3 leads; n4 and n5 start outside the cluster; the partition {n1, n2} | {n3, n4, n5}."""
        c = self.cluster
        c.sim.run_for(0.01)
        _win(c, "n3", "two-at-once")
        c.sim.run_for(0.05)
        for nid in ("n4", "n5"):
            c.start_server(nid)
        c.partition(["n1", "n2"], ["n3", "n4", "n5"])
        self.stage = "split"
        return c

    def change(self) -> RaftCluster:
        """n3 switches to {n1..n5} in one step; the entry reaches n4 and n5 only (raises
        ``ValueError`` on a correct server)."""
        c = self.cluster
        new = Configuration(("n1", "n2", "n3", "n4", "n5"))
        c.sim.call("n3", lambda n, ctx: n.change_configuration(ctx, new))
        c.sim.run_for(0.05)
        self.stage = "change"
        return c

    def elect_both(self) -> RaftCluster:
        """n1 wins with the old configuration's majority, n4 with the new one's, in the same term."""
        c = self.cluster
        _win(c, "n1", "two-at-once")
        _win(c, "n4", "two-at-once")
        c.sim.run_for(0.05)
        self.stage = "elect"
        return c

    def run(self) -> RaftCluster:
        """All three stages."""
        for step in (self.split, self.change, self.elect_both):
            step()
        return self.cluster


# ---------------------------------------------------------------------------
# Retiring the leader (diss. §4.2.2 and §3.10)
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RetiredLeader:
    """What :func:`retire_leader` saw."""

    cluster: RaftCluster
    old_leader: str
    new_leader: str | None
    transferred: bool  # whether the old leader began to hand its leadership over
    longest_wait: float  # the longest a client operation took from its call to its answer (seconds)


def retire_leader(hand_over: bool, *, seed: int = 1) -> RetiredLeader:
    """Remove the leader of five servers while a client writes and reads 50 times a second.

    Without ``hand_over`` the leader removes itself and steps down once that is
    committed (diss. §4.2.2): a request it took just before is never answered,
    and the others need an election timeout to elect a new leader. With it, the
    leader first hands its leadership to the most up-to-date other voter
    (diss. §3.10), which then removes it.
    """
    valid.boolean("hand_over", hand_over)
    c = RaftCluster(n=5, seed=seed)
    old = _elect(c)
    c.client("client").start_workload(rate=50, duration=2.5, kinds=("append", "get"))
    c.sim.run_for(1.0)
    c.remove_server(old, hand_over=hand_over)
    c.sim.run_for(1.5)
    transferred = any(e.node == old for e in c.sim.trace.notes("transfer"))
    waits = [h.ret - h.call for h in c.history if h.done]
    return RetiredLeader(c, old, c.leader(), transferred, max(waits, default=0.0))


@dataclass
class Lagging:
    """What :func:`lagging_follower` returns: the cluster, the follower that was down, when it came
    back, and when it crashed again in the middle of the transfer (None if it did not)."""

    cluster: RaftCluster
    server: str
    returned_at: float
    crashed_at: float | None = None


def lagging_follower(
    seed: int = 2,
    *,
    writes: int = 30,
    snapshot_threshold: int = 8,
    snapshot_chunk_size: int | None = None,
    crash_after: int | None = None,
) -> Lagging:
    """A 3-server cluster whose follower crashes while a client makes ``writes`` puts over 5 keys
    (the servers snapshot every ``snapshot_threshold`` entries, so the entries it lacks are
    compacted away), then restarts and is brought up to date: with InstallSnapshot, in chunks of
    ``snapshot_chunk_size`` bytes (default: RaftConfig's), then AppendEntries (§7, Figure 13).

    With ``crash_after`` the follower crashes again as soon as it has gathered that many bytes of
    the snapshot, and restarts 100 ms later."""
    valid.integer("writes", writes, ge=1, le=10_000)
    valid.integer("crash_after", crash_after, ge=1, none=True, note="bytes")
    chunks = {} if snapshot_chunk_size is None else {"snapshot_chunk_size": snapshot_chunk_size}
    c = RaftCluster(n=3, seed=seed, snapshot_threshold=snapshot_threshold, **chunks)
    leader = _elect(c)
    behind = next(n for n in c.ids if n != leader)
    c.crash(behind)
    writer = c.client("writer")
    for i in range(writes):
        writer.put(f"k{i % 5}", str(i))
    if not c.run_until(lambda: not writer.busy, 10.0):
        raise RuntimeError("the writes did not finish")
    back = c.sim.now
    c.restart(behind)
    crashed_at = None
    if crash_after is not None:

        def gathered() -> bool:
            partial = c.node(behind).partial_snapshot
            return partial is not None and len(partial.data) >= crash_after

        if not c.run_until(gathered, 1.0):
            raise ValueError(f"crash_after ({crash_after}) must be below the snapshot's size in bytes")
        crashed_at = c.sim.now
        c.crash(behind)
        c.sim.run_for(0.1)
        c.restart(behind)
    c.sim.run_for(0.3)
    return Lagging(c, behind, back, crashed_at)


# ---------------------------------------------------------------------------
# Measurements shared by notebook 10 and benchmarks/bench_raft_practice.py
# ---------------------------------------------------------------------------
def log_growth(
    snapshot_threshold: int | None,
    *,
    seconds: float = 20.0,
    rate: float = 100.0,
    every: float = 1.0,
    seed: int = 1,
) -> list[tuple[float, int, int]]:
    """A 3-server cluster taking ``rate`` puts per second (over 100 keys) for ``seconds``:
    every ``every`` seconds, ``(time, entries in the leader's log, log entries kept on disk by all
    servers)``. Without snapshots both grow for ever; with them they stay bounded (§7)."""
    valid.integer("snapshot_threshold", snapshot_threshold, ge=1, none=True)
    valid.number("seconds", seconds, gt=0, le=3600, unit="seconds")
    valid.number("rate", rate, gt=0, le=10_000, unit="writes per second")
    valid.number("every", every, gt=0, le=seconds, unit="seconds")
    c = RaftCluster(n=3, seed=seed, check=False, trace=False, snapshot_threshold=snapshot_threshold)
    _elect(c)
    start = c.sim.now
    count = [0]

    def write(sim: object) -> None:
        leader = c.leader()
        if leader is not None:
            count[0] += 1
            c.submit(("put", f"k{count[0] % 100}", str(count[0])), node=leader)
        c.sim.after(1.0 / rate, write)

    c.sim.after(0.0, write)
    out = []
    t = every
    while t <= seconds + 1e-9:
        c.sim.run(start + t)
        node = c.node(c.leader() or c.ids[0])
        stored = sum(sum(1 for k in c.sim.storage(n) if isinstance(k, tuple)) for n in c.ids)
        out.append((round(t, 6), len(node.log), stored))
        t += every
    return out


def read_costs(mode: str, *, writers: int = 0, reads: int = 50, seed: int = 1) -> dict[str, float]:
    """``reads`` reads by one client in read mode ``mode`` on 5 servers with a fixed one-way delay
    of 5 ms, while ``writers`` clients put 200 times a second each. Returns the log entries
    appended per read (``entries``), the AppendEntries the leader sent per read (``appends``) and
    the median and 90th-percentile read latency in milliseconds (``median_ms``, ``p90_ms``) and
    the median in round trips of 10 ms (``round_trips``; the client's own round trip to the
    leader is one)."""
    from labkit.raft.messages import AppendEntries, KVCommand
    from labkit.sim import Fixed, Kind

    valid.integer("writers", writers, ge=0, le=8)
    valid.integer("reads", reads, ge=1, le=10_000)
    c = RaftCluster(
        n=5,
        seed=seed,
        latency=Fixed(0.005),
        read_mode=mode,
        check_quorum=mode == "lease",
        check=False,
    )
    _elect(c)
    reader = c.client("reader")
    reader.put("k", "v")
    c.run_until(lambda: not reader.busy)
    for i in range(writers):
        c.client(f"writer{i}").start_workload(rate=200, duration=60.0, kinds=("put",), keys=("a", "b"))
    c.sim.run_for(0.5)
    leader = c.leader()
    assert leader is not None
    before = c.node(leader).log.last_index
    t0 = c.sim.now
    ops = [reader.get("k") for _ in range(reads)]
    if not c.run_until(lambda: all(h.done for h in ops), 60.0):
        raise RuntimeError("the reads did not finish within 60 s of simulated time")
    t1 = c.sim.now
    log = c.node(c.leader()).log  # type: ignore[arg-type]
    entries = sum(
        1 for e in log[before + 1 :] if isinstance(e.command, KVCommand) and e.command.op[0] == "get"
    )
    appends = sum(
        1 for e in c.sim.trace.of_kind(Kind.SEND) if t0 <= e.time <= t1 and type(e.message) is AppendEntries
    )
    latencies = sorted(h.ret - h.call for h in ops)
    median, p90 = latencies[len(ops) // 2], latencies[(9 * len(ops)) // 10 - (len(ops) % 10 == 0)]
    return {
        "entries": entries / reads,
        "appends": appends / reads,
        "median_ms": round(median * 1000, 3),
        "p90_ms": round(p90 * 1000, 3),
        "round_trips": round(median / 0.010, 3),
    }
