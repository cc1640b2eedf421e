"""The Raft lab's scenarios: what each part tests, and how.

Each scenario is a short script over a :class:`World` (a cluster of the
learner's servers) plus a fault schedule for each seed. The scripts check
properties that do not depend on the schedule ("while a majority can talk,
one of them leads within 2 s"), so a shrunk schedule is still a fair test. Four scenarios also state five
rules of Figure 2 whose breach costs only time (a vote restarts the timer, answer an old term's AppendEntries
with a refusal, back up only on a mismatch, matchIndex only grows, send a new entry at once) and check them
after every event (:mod:`labkit.labs.raft.requirements`).

Part **election** (§5.2): ``initial election``, ``re-election``, ``many elections``, ``late vote replies``,
``votes restart the timer``.
Part **replication** (§5.3, §5.4): ``basic agreement``, ``agreement with failures``,
``no agreement without a majority``, ``concurrent submits``, ``rejoin``, ``backup``,
``late AppendEntries``, ``late commit index``, ``stale refusals``, ``reordered replies``,
``prompt replication``, ``random faults``.
Part **persistence** (Figure 2's persistent state, §5.4.2): ``crash and restart``,
``crash while voting``, ``Figure 8``, ``unreliable network``, ``churn``.

The names and much of the plan follow the usual Raft lab tests (the MIT
6.824 labs' test names, rewritten here for a simulator and as properties).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from labkit.labs.core import Fault, Scenario, Trial, Violation
from labkit.labs.raft import requirements
from labkit.labs.raft.properties import LEADER_ELECTED, LINEARIZABLE, PROGRESS, STABLE_LEADER
from labkit.raft.cluster import RaftCluster
from labkit.raft.node import Role
from labkit.sim import Fixed, Kind, Latency, Uniform

__all__ = [
    "World",
    "SCENARIOS",
    "LEADER_WITHIN",
    "AGREE_WITHIN",
    "CLIENTS_WITHIN",
    "CHECKER_STEPS",
    "PROMPT_WITHIN",
]

LATENCY = Uniform(0.001, 0.010)  # one-way delay: a few milliseconds, with reordering
LEADER_WITHIN = 2.0  # seconds a majority that can talk may take to agree on a leader
AGREE_WITHIN = 2.0  # seconds a command may take to be applied by such a majority
CLIENTS_WITHIN = 5.0  # seconds every client operation may take to finish once the network heals
# The linearizability search's budget in one trial: steps, not seconds, so the verdict is the same on a
# busy machine. A history it cannot decide within it is noted, not failed. On the notebook's own solution
# the hardest of 1,000 seeds of "concurrent submits" takes about 650,000 steps.
CHECKER_STEPS = 2_000_000
# "prompt replication": every message takes PROMPT_LATENCY, and a command given to the leader with nothing
# failing commits within PROMPT_WITHIN: two round trips (one already under way to a follower, then the
# entry's own) and some slack. A leader that holds it until its next heartbeat (every 50 ms) takes up to a
# heartbeat interval and a round trip (§5.3).
PROMPT_LATENCY = 0.005
PROMPT_WITHIN = 0.025


class World:
    """A cluster of the learner's servers for one trial, and what faults and checks need of it."""

    def __init__(
        self,
        trial: Trial,
        factory: Callable[..., Any],
        *,
        n: int = 5,
        loss: float = 0.0,
        duplication: float = 0.0,
        latency: Latency | float = LATENCY,
        clients: int = 0,
        max_entries: int = 64,
    ) -> None:
        self.trial = trial
        self.cluster = RaftCluster(
            n=n,
            seed=trial.seed,
            latency=latency,
            loss=loss,
            duplication=duplication,
            max_entries=max_entries,
            noop=False,
            node_factory=factory,
            check=False,
        )
        self.sim = self.cluster.sim
        self.ids = self.cluster.ids
        self.majority = n // 2 + 1
        self.version = 0  # grows with every fault: cached views of the network are then stale
        self.inbound_cut: set[str] = set()
        self.outbound_cut: set[str] = set()
        self._healthy: tuple[int, tuple[str, ...]] = (-1, ())
        self.clients = [self.cluster.client(f"c{i}") for i in range(clients)]
        self.undecided = ""  # a client history the checker could not decide on: which (a note)

    # -- looking -------------------------------------------------------------------
    def live(self, node_id: str) -> Any:
        """The live server ``node_id``, or None while it is crashed."""
        return self.sim.node(node_id) if self.sim.is_up(node_id) else None

    @property
    def cut_off(self) -> set[str]:
        """Servers cut off by ``disconnect`` or ``deafen``."""
        return self.inbound_cut | self.outbound_cut

    def healthy(self) -> tuple[str, ...]:
        """The largest group of live servers that can all talk to each other (both ways)."""
        if self._healthy[0] != self.version:
            best: tuple[str, ...] = ()
            for side in self.sim.partitions:
                group = tuple(
                    s for s in side if s in self.ids and self.sim.is_up(s) and s not in self.cut_off
                )
                if len(group) > len(best):
                    best = group
            self._healthy = (self.version, best)
        return self._healthy[1]

    def leaders(self, among: tuple[str, ...]) -> list[str]:
        """The servers of ``among`` that believe they lead."""
        return [s for s in among if (n := self.live(s)) is not None and n.role is Role.LEADER]

    def holders(self, index: int, entry: Any) -> list[str]:
        """The servers that store ``entry`` at ``index``: in their log, or on disk while crashed."""
        out = []
        for s in self.ids:
            node = self.live(s)
            if node is not None:
                if node.log.last_index >= index and node.log[index] == entry:
                    out.append(s)
            else:
                disk = self.sim.storage(s)
                if disk.get("log_length", 0) >= index and disk.get(("log", index)) == entry:
                    out.append(s)
        return out

    # -- changing the network --------------------------------------------------------
    def isolate(self, server: str, *, inbound: bool, outbound: bool) -> None:
        """Cut (or restore) every link into and out of ``server``."""
        for other in self.sim.nodes:
            if other == server:
                continue
            (self.sim.cut if inbound else self.sim.uncut)(other, server)
            (self.sim.cut if outbound else self.sim.uncut)(server, other)
        for cut, on in ((self.inbound_cut, inbound), (self.outbound_cut, outbound)):
            (cut.add if on else cut.discard)(server)

    def heal(self) -> None:
        """Remove every partition and cut."""
        self.cluster.heal()
        self.inbound_cut.clear()
        self.outbound_cut.clear()


# ---------------------------------------------------------------------------
# What the scripts check
# ---------------------------------------------------------------------------
def one_leader(world: World) -> str | None:
    """The leader of the healthy majority if exactly one of them leads and all are in its term."""
    group = world.healthy()
    if len(group) < world.majority:
        return None
    leaders = world.leaders(group)
    if len(leaders) != 1:
        return None
    term = world.live(leaders[0]).current_term
    if any(world.live(s).current_term != term for s in group):
        return None
    return leaders[0]


def _roles(world: World, group: tuple[str, ...]) -> str:
    return ", ".join(f"{s} {n.role.value} t{n.current_term}" for s in group if (n := world.live(s)))


def settle(trial: Trial, within: float = LEADER_WITHIN) -> str | None:
    """Wait until the healthy majority has exactly one leader and one term, the others its followers; its name.

    Returns None, requiring nothing, if no majority can talk any more before ``within`` s are up.
    """
    world: World = trial.world
    end = trial.sim.now + within
    while True:
        leader = one_leader(world)
        group = world.healthy()
        if leader is not None and not any(world.live(s).role is Role.CANDIDATE for s in group):
            return leader  # Figure 2, Candidates: "If AppendEntries RPC received from new leader: convert to follower"

        if len(group) < world.majority and trial.sim.now < end:
            return None
        if trial.sim.now >= end - 1e-12:
            stuck = [s for s in group if world.live(s).role is Role.CANDIDATE] if leader else []
            trial.fail(
                LEADER_ELECTED,
                f"servers {', '.join(group)} could all talk for {within:g} s, yet did not settle on one "
                f"leader in one term: {_roles(world, group)}"
                + (
                    f"; {', '.join(stuck)} {'is' if len(stuck) == 1 else 'are'} still a candidate in the term "
                    f"{leader} leads, although {leader}'s AppendEntries reach {'it' if len(stuck) == 1 else 'them'}"
                    if stuck
                    else ""
                ),
            )
        trial.run_until(min(end, trial.sim.now + 0.01))


def agree(trial: Trial, command: str, within: float = AGREE_WITHIN) -> None:
    """Give ``command`` to the leader of the healthy majority and wait until all of it has applied it.

    Submits again to a new leader if leadership changes meanwhile (as a client would). Requires
    nothing if, at the end, no majority can talk.
    """
    world: World = trial.world
    deadline = trial.sim.now + within
    submitted: set[tuple[str, int]] = set()
    while True:
        group = world.healthy()
        leader = one_leader(world)
        if leader is not None:
            node = world.live(leader)
            if (leader, node.current_term) not in submitted:
                submitted.add((leader, node.current_term))
                world.cluster.submit(command, node=leader)
        if len(group) >= world.majority and all(command in world.live(s).applied for s in group):
            return
        if trial.sim.now >= deadline - 1e-12:
            if len(group) < world.majority:
                return
            missing = [s for s in group if command not in world.live(s).applied]
            trial.fail(
                PROGRESS,
                f"{command!r} was not applied by {', '.join(missing)} within {within:g} s "
                f"although {', '.join(group)} could all talk ({_roles(world, group)})",
            )
        trial.run_until(min(deadline, trial.sim.now + 0.01))


def submit_to_leaders(world: World, among: tuple[str, ...], commands: list[str]) -> None:
    """Hand ``commands`` to every server of ``among`` that believes it leads."""
    for s in world.leaders(among):
        for c in commands:
            world.cluster.submit(c, node=s)


def recover(trial: Trial) -> None:
    """Lift every fault: heal the network, stop losing messages, restart every crashed server."""
    trial.act("recover")


def check_clients(trial: Trial, within: float = CLIENTS_WITHIN) -> None:
    """Every client operation finishes, and the history is linearizable."""
    world: World = trial.world
    history = world.cluster.history
    if not trial.wait_for(lambda: all(h.done for h in history), within, step=0.02):
        waiting = [h for h in history if not h.done]
        h = waiting[0]
        trial.fail(
            PROGRESS,
            f"{len(waiting)} client operations got no answer within {within:g} s after the network healed, "
            f"e.g. {h.client}'s {h.input!r} asked at t = {h.call:.3f} s",
        )
    from labkit.linearizability import KVModel, check, minimal_violation
    from labkit.linearizability.history import format_op

    ops = world.cluster.operations()
    result = check(ops, KVModel(), timeout=None, max_steps=CHECKER_STEPS)
    if result.ok is False:
        core = minimal_violation(result, max_steps=20_000)
        culprits = [result.history[i] for i in core]
        last = max(culprits, key=lambda op: op.ret)
        shown = "; ".join(format_op(op) for op in sorted(culprits, key=lambda op: op.call)[:6])
        v = Violation(
            LINEARIZABLE,
            f"no sequential execution explains these {len(culprits)} results together: {shown}",
            node=last.client,
            time=last.ret,
        )
        v.event = _delivery_row(world, last.client, last.ret)
        raise v
    if result.ok is None:  # not a violation: nobody knows (see CHECKER_STEPS)
        world.undecided = f"{trial.scenario.name} seed {trial.seed} ({len(ops)} operations)"


def _delivery_row(world: World, client: str, when: float) -> int | None:
    trace = world.sim.trace
    for i in range(len(trace) - 1, -1, -1):
        e = trace[i]
        if e.time < when:
            break
        if e.time == when and e.dst == client and e.kind is Kind.DELIVER:
            return i
    return None


def start_clients(world: World, duration: float, rate: float = 30.0) -> None:
    """Every client asks about ``rate`` appends and reads per second for ``duration`` seconds."""
    for c in world.clients:
        c.start_workload(rate=rate, duration=duration, keys=("a", "b"), kinds=("get", "append"))


def clients_through_faults(trial: Trial, duration: float, rate: float = 30.0) -> None:
    """Clients write for ``duration`` seconds while the scenario's faults strike; then every fault
    is lifted, a leader settles, and every operation must finish in a linearizable history."""
    start_clients(trial.world, duration=duration, rate=rate)
    trial.run_until(duration)
    recover(trial)
    settle(trial)
    check_clients(trial)


# ---------------------------------------------------------------------------
# Part 1: election
# ---------------------------------------------------------------------------
def initial_election(trial: Trial) -> None:
    """Five servers start; a leader must appear, and keep its place while nothing fails."""
    leader = settle(trial, within=1.0)
    world: World = trial.world
    term = world.live(leader).current_term
    trial.run_for(2.0)
    now = one_leader(world)
    node = world.live(now) if now else None
    trial.expect(
        now == leader and node.current_term == term,
        STABLE_LEADER,
        f"{leader} led term {term} and nothing failed, yet 2 s later "
        + (f"{now} leads term {node.current_term}" if node else f"nobody leads: {_roles(world, world.ids)}"),
    )


def reelection_faults(rng: random.Random) -> list[Fault]:
    return [
        Fault(1.0, "disconnect", "leader"),  # a new leader must take over
        Fault(3.0, "deafen", "disconnected"),  # the old one talks again, but hears nobody
        Fault(3.1, "crash", "leader"),  # ...and the new leader crashes: another election
        Fault(5.2, "heal"),
        Fault(5.2, "restart", "all"),
    ]


def reelection(trial: Trial) -> None:
    """The leader is cut off, then comes back half-connected while the next leader crashes."""
    settle(trial, within=1.0)
    for checkpoint in (1.0, 3.1, 5.2):
        trial.run_until(checkpoint)
        settle(trial)
    trial.run_until(7.0)
    settle(trial)


def many_elections_faults(rng: random.Random) -> list[Fault]:
    ids = [f"n{i}" for i in range(1, 6)]
    out = []
    for r in range(6):
        t = 0.8 + 0.9 * r
        out.append(Fault(t, "connect", "all"))
        for s in rng.sample(ids, rng.randint(0, 2)):
            out.append(Fault(t, "disconnect", s))
        if rng.random() < 0.5:  # two servers time out at once: a split vote to resolve
            for s in rng.sample(ids, 2):
                out.append(Fault(t + 0.3, "campaign", s))
    return out


def many_elections(trial: Trial) -> None:
    """Up to two of five servers cut off at a time, six times over, with forced rival campaigns."""
    settle(trial, within=1.0)
    for r in range(6):
        trial.run_until(0.8 + 0.9 * r + 0.3)
        settle(trial)
    trial.act("connect", "all")
    settle(trial)


def late_votes_faults(rng: random.Random) -> list[Fault]:
    return [
        Fault(0.05, "slow", ("n3", "n1", 0.1)),  # n3's replies take 100 ms to reach n1 ...
        Fault(0.05, "slow", ("n2", "n1", 1.0)),  # ... and n2's a whole second: n1 hears nothing of n2
        Fault(0.1, "campaign", "n1"),  # n1 asks for votes in term 1; n3 grants, its reply is on the way
        Fault(0.12, "campaign", "n2"),  # n2 campaigns in term 2, n3 grants: n2 leads term 2
        Fault(0.13, "campaign", "n1"),  # n1 campaigns in term 2 too, then n3's term-1 "yes" arrives
    ]


def late_votes(trial: Trial) -> None:
    """A vote granted in term 1 reaches its candidate when it already campaigns in term 2: it must not count."""
    trial.run_until(0.5)
    for src in ("n2", "n3"):
        trial.act("slow", (src, "n1", 0.005))
    settle(trial)


def vote_timer_faults(rng: random.Random) -> list[Fault]:
    ids = [f"n{i}" for i in range(1, 6)]
    # After the first election: two rivals of one term, and a voter that hears of that term first from a leader.
    a, b, v = rng.sample(ids, 3)
    rest = [s for s in ids if s not in (a, b, v)]
    return [
        # A vote granted in a term the voter already has: no term change restarts its timer for it.
        Fault(0.57, "slow", (a, v, 0.5)),  # a's RequestVote to v will arrive late ...
        Fault(0.57, "slow", (b, v, 0.2)),  # ... and b's after a's first quick heartbeat
        *(Fault(0.57, "slow", (b, s, 0.05)) for s in rest),  # a's requests reach the others first
        Fault(0.6, "campaign", a),  # a and b campaign in the same new term; a wins with the other two
        Fault(0.6, "campaign", b),
        Fault(0.63, "slow", (a, v, 0.005)),  # a's heartbeats reach v quickly: v takes the term without voting
        # b's request reaches v at 0.8 s: v grants it, in the term it has (a's, at 1.1 s, is refused)
        *(Fault(0.9, "slow", (b, s, 0.005)) for s in (v, *rest)),
        # Then elections with a new term each, some forced by a rival's campaign.
        *(
            Fault(round(1.15 + 0.4 * r + rng.uniform(0.0, 0.2), 3), "campaign", rng.choice(ids))
            for r in range(4)
        ),
    ]


def vote_restarts_timer(trial: Trial) -> None:
    """Elections, some forced by a rival's campaign: every voter restarts its election timer as it votes.

    Figure 2, Followers: convert to candidate if the timeout elapses "without receiving AppendEntries RPC
    from current leader or granting vote to candidate". A voter that keeps its old timer may time out
    before the leader it just elected is heard from, and depose it; the scenario checks the rule itself,
    at every vote (see :mod:`labkit.labs.raft.requirements`). After the first election, one vote comes
    without a new term: rivals a and b campaign in the same new term and a wins; a's heartbeat tells a
    voter of that term before b's late request, then a's own, reach it, and the voter grants the first
    in the term it already has (rightly: it has not voted in it). So a server that restarts its timer
    only when its term changes is caught too, on every seed.
    """
    trial.add_check(requirements.vote_restarts_timer(trial.world))
    settle(trial, within=1.0)
    trial.run_until(2.8)
    settle(trial)


# ---------------------------------------------------------------------------
# Part 2: log replication
# ---------------------------------------------------------------------------
def basic_agreement(trial: Trial) -> None:
    """No faults: three commands, one after another, are applied by every server, in order."""
    settle(trial, within=1.0)
    for i in range(3):
        agree(trial, f"x{i + 1}")
    world: World = trial.world
    for s in world.ids:
        got = [c for c in world.live(s).applied if isinstance(c, str)]
        trial.expect(
            got[:3] == ["x1", "x2", "x3"],
            PROGRESS,
            f"{s} applied {got[:6]!r}, expected 'x1', 'x2', 'x3' first, in order",
            node=s,
        )


def failures_faults(rng: random.Random) -> list[Fault]:
    ids = [f"n{i}" for i in range(1, 6)]
    first, second = rng.sample(ids, 2)
    return [
        Fault(1.0, "disconnect", first),
        Fault(2.5, "disconnect", second),
        Fault(4.0, "connect", "all"),
    ]


def agreement_with_failures(trial: Trial) -> None:
    """One server, then two, are cut off: the rest keep agreeing; back together, everyone catches up."""
    settle(trial, within=1.0)
    agree(trial, "a")
    for i, until in enumerate((1.0, 2.5)):
        trial.run_until(until)
        for k in range(3):
            agree(trial, f"b{i}{k}")
    trial.run_until(4.0)
    agree(trial, "c")


def no_majority_faults(rng: random.Random) -> list[Fault]:
    ids = [f"n{i}" for i in range(1, 6)]
    return [Fault(1.0, "disconnect", s) for s in rng.sample(ids, 3)] + [Fault(3.0, "connect", "all")]


def no_majority(trial: Trial) -> None:
    """Three of five servers cut off: whatever the others accept must not commit; then all agree again."""
    settle(trial, within=1.0)
    agree(trial, "before")
    trial.run_until(1.0)
    world: World = trial.world
    submit_to_leaders(world, world.ids, ["minority-1", "minority-2"])
    trial.run_for(1.5)  # "Commit needs a majority" is checked after every event meanwhile
    trial.run_until(3.0)
    agree(trial, "after")


def concurrent_submits(trial: Trial) -> None:
    """Five clients at once, each sending appends and reads: all answered, all linearizable."""
    settle(trial, within=1.0)
    start_clients(trial.world, duration=1.5, rate=40.0)
    trial.run_for(1.5)
    check_clients(trial)


def rejoin_faults(rng: random.Random) -> list[Fault]:
    return [
        Fault(1.0, "disconnect", "leader"),
        Fault(2.5, "connect", "all"),
        Fault(2.5, "disconnect", "leader"),
        Fault(4.0, "connect", "all"),
    ]


def rejoin(trial: Trial) -> None:
    """A cut-off leader takes commands it cannot commit, then rejoins and must give them up."""
    world: World = trial.world
    settle(trial, within=1.0)
    agree(trial, "a")
    for i, when in enumerate((1.0, 2.5)):
        trial.run_until(when)
        submit_to_leaders(world, tuple(world.cut_off), [f"lost-{i}-{k}" for k in range(3)])
        agree(trial, f"b{i}")
    trial.run_until(4.0)
    agree(trial, "c")


def backup_faults(rng: random.Random) -> list[Fault]:
    third = rng.choice(["n3", "n4", "n5"])
    return [
        Fault(0.3, "campaign", "n1"),
        Fault(1.0, "partition", ("n1", "n2")),
        Fault(2.5, "partition", ("n1", "n2", third)),
        Fault(4.0, "heal"),
    ]


def backup(trial: Trial) -> None:
    """Two leaders in turn pile up entries in a minority; the majority's log must win everywhere."""
    world: World = trial.world
    settle(trial, within=1.0)
    agree(trial, "start")
    for i, when in enumerate((1.0, 2.5)):
        trial.run_until(when + 0.01)
        minority = [side for side in world.sim.partitions if len(side) < world.majority]
        for side in minority:
            submit_to_leaders(world, tuple(side), [f"doomed-{i}-{k}" for k in range(30)])
        settle(trial)
        leader = one_leader(world)
        for k in range(30):
            world.cluster.submit(f"kept-{i}-{k}", node=leader)
        agree(trial, f"kept-{i}")
    trial.run_until(4.0)
    agree(trial, "end")


def late_append_faults(rng: random.Random) -> list[Fault]:
    return [
        Fault(0.1, "campaign", "n1"),  # n1 leads; n1 and n2 are the majority while n3 is cut off
        Fault(0.2, "disconnect", "n3"),
        Fault(0.3, "slow", ("n1", "n2", 0.2)),  # what n1 sends n2 now arrives 200 ms late: x1 alone ...
        Fault(0.305, "submit", ("n1", "x1")),
        Fault(0.36, "slow", ("n1", "n2", 0.002)),  # ... what it sends from now on, in 2 ms:
        Fault(0.365, "submit", ("n1", "x2")),  # x1, x2, x3 reach n2 and commit before the late x1 alone
        Fault(0.365, "submit", ("n1", "x3")),
        Fault(0.48, "slow", ("n1", "n2", 5.0)),  # nothing n1 sends now reaches n2 in time to repair it
        Fault(0.6, "connect", "n3"),  # n3 is back and n1 is gone (cut off, not crashed: persistence is
        Fault(0.6, "disconnect", "n1"),  # part 3): n2 and n3 must elect a leader that holds x1, x2, x3
    ]


def late_append(trial: Trial) -> None:
    """A late AppendEntries carrying fewer entries must not cut committed entries off a follower's log.

    Figure 2, AppendEntries step 3 deletes entries only where one *conflicts* with a new one; a follower
    that cuts its log after ``prev_log_index`` whatever it holds loses x2 and x3 when the late message
    with x1 alone arrives, then leads without them once n1 is gone (Leader Completeness).
    """
    trial.run_until(0.6)
    trial.act("slow", ("n1", "n2", 0.002))  # n1 is cut off: its link to n2 back to normal for the rest
    settle(trial)
    agree(trial, "y")
    recover(trial)
    settle(trial)
    agree(trial, "z")


LATE_COMMIT_SUBMIT = 0.3  # when the script hands n1 the five commands of "late commit index"


def late_commit_faults(rng: random.Random) -> list[Fault]:
    return [
        Fault(0.005, "slow", ("n1", "n2", 0.08)),  # what n1 sends n2 takes 80 ms ...
        Fault(0.005, "slow", ("n2", "n1", 0.15)),  # ... and n2's replies 150 ms
        Fault(0.01, "campaign", "n1"),  # n1 leads; n3 holds x1-x5 at once, n1 commits all five by 0.32 s,
        # and every heartbeat until n2's first reply is back (0.53 s) re-sends n2 entries 1-2, saying "5 committed"
        Fault(0.525, "slow", ("n1", "n2", 0.002)),  # from now on n1 -> n2 is quick: entries 3-4 overtake
    ]  # the heartbeats of 0.45-0.52 s, which arrive while n2 has committed up to 4 and not yet 5


def late_commit(trial: Trial) -> None:
    """A late AppendEntries saying "5 committed" but carrying entries 1-2 only must not lower commit_index.

    Figure 2, AppendEntries step 5: commitIndex = min(leaderCommit, index of last new entry) "if
    leaderCommit > commitIndex", and commitIndex "increases monotonically". Read literally, step 5 lowers
    it: n2 has committed 4 (entries 3-4 came), then a late heartbeat with entries 1-2 sets it to 2. A leader
    sends at most two entries per message here (``max_entries=2``), so a late message carries fewer
    entries than the leader has committed.
    """
    trial.run_until(LATE_COMMIT_SUBMIT)
    for k in range(1, 6):
        trial.world.cluster.submit(f"x{k}", node="n1")
    trial.run_until(1.0)
    recover(trial)
    settle(trial)
    agree(trial, "y")


def stale_refusal_faults(rng: random.Random) -> list[Fault]:
    return [
        Fault(0.01, "campaign", "n1"),  # n1 leads term 1
        Fault(0.05, "submit", ("n1", "x1")),
        Fault(0.05, "submit", ("n1", "x2")),
        Fault(0.1, "slow", ("n1", "n3", 0.2)),  # n1's heartbeats of term 1 take 200 ms to reach n3 ...
        Fault(0.2, "slow", ("n1", "n3", 0.002)),  # ... its messages from now on 2 ms:
        Fault(
            0.2, "campaign", "n1"
        ),  # n1 leads term 2, n3 follows it, then refuses the late term-1 heartbeats
    ]


def stale_refusals(trial: Trial) -> None:
    """A follower refuses late AppendEntries of an old term (step 1): its leader must not back up for that.

    Figure 2, AppendEntries step 1: "Reply false if term < currentTerm (§5.1)": n3 must answer each late
    heartbeat of term 1 with a refusal that carries its own term (the reply is how a deposed leader hears
    of the newer term). A follower that drops them silently passes every other check, so the scenario checks
    that too.

    Figure 2 decrements nextIndex "if AppendEntries fails because of log inconsistency"; n3's refusals
    here answer n1's requests of term 1, which n3 refused for their term, and come while n1 leads term 2:
    they say nothing about n3's log. The scenario checks the rule after every event (see
    :mod:`labkit.labs.raft.requirements`): a leader moves ``next_index`` on a failed reply only if it
    answers the request it would send now.
    """
    trial.add_check(requirements.refuse_stale(trial.world))
    trial.add_check(requirements.back_up_on_mismatch(trial.world))
    trial.run_until(0.6)
    settle(trial)
    agree(trial, "y")


def reordered_reply_faults(rng: random.Random) -> list[Fault]:
    return [
        Fault(0.01, "campaign", "n1"),  # n1 leads term 1
        Fault(0.1, "slow", ("n2", "n1", 0.15)),  # n2's replies take 150 ms: its "I hold x1" is on its way ...
        Fault(0.105, "submit", ("n1", "x1")),
        Fault(0.13, "slow", ("n2", "n1", 0.002)),  # ... when its replies are quick again,
        Fault(0.135, "submit", ("n1", "x2")),  # and its "I hold x1 and x2" overtakes it
    ]


def reordered_replies(trial: Trial) -> None:
    """A follower's replies arrive out of order: the leader's match_index for it must not go back.

    Figure 2: matchIndex, the "index of highest log entry known to be replicated on server", "increases
    monotonically". Here n2's reply saying it holds x1 arrives after its reply saying it holds x1 and x2;
    taking the late one as news lowers ``match_index['n2']``. The scenario checks the rule after every
    event (see :mod:`labkit.labs.raft.requirements`).
    """
    trial.add_check(requirements.match_index_grows(trial.world))
    trial.run_until(0.5)
    settle(trial)
    agree(trial, "y")


PROMPT_COMMANDS = (
    17  # given to the leader 53 ms apart: each comes 3 ms later after a heartbeat than the one before
)
PROMPT_GAP = 0.053


def prompt_replication(trial: Trial) -> None:
    """Nothing fails; commands come one at a time: each commits on the leader within two round trips.

    §5.3: the leader "appends the command to its log as a new entry, then issues AppendEntries RPCs in
    parallel to each of the other servers to replicate the entry". A leader that waits for its next
    heartbeat (every 50 ms) instead commits every command eventually, just late: the commands come at
    every point between two heartbeats, so some wait almost a whole interval.
    """
    world: World = trial.world
    leader = settle(trial, within=1.0)
    term = world.live(leader).current_term
    prompt = requirements.PromptCommits(world, leader, PROMPT_WITHIN, 2 * PROMPT_LATENCY)
    trial.add_check(prompt)
    start = trial.sim.now
    for k in range(PROMPT_COMMANDS):
        trial.run_until(start + 0.01 + k * PROMPT_GAP)
        prompt.submit(f"p{k + 1}")
    trial.run_for(2 * PROMPT_WITHIN)
    now = one_leader(world)
    trial.expect(
        now == leader and world.live(now).current_term == term and not prompt.pending,
        STABLE_LEADER,
        f"{leader} led term {term} and nothing failed, yet now "
        + (
            f"{now} leads term {world.live(now).current_term}"
            if now
            else f"nobody leads: {_roles(world, world.ids)}"
        ),
    )


def random_replication_faults(rng: random.Random) -> list[Fault]:
    ids = [f"n{i}" for i in range(1, 6)]
    out, t = [], 0.5
    while t < 3.5:
        kind = rng.choice(["disconnect", "connect", "partition", "heal", "loss", "campaign"])
        if kind == "disconnect" or kind == "campaign":
            target: Any = rng.choice(ids)
        elif kind == "partition":
            target = tuple(sorted(rng.sample(ids, rng.randint(1, 2))))
        elif kind == "loss":
            target = rng.choice([0.0, 0.05, 0.15])
        else:
            target = "all" if kind == "connect" else None
        out.append(Fault(round(t, 3), kind, target))
        t += rng.uniform(0.1, 0.5)
    return out


def random_replication(trial: Trial) -> None:
    """Clients keep writing while servers are cut off, partitioned and lose messages; then all heal."""
    clients_through_faults(trial, duration=3.5)


# ---------------------------------------------------------------------------
# Part 3: persistence
# ---------------------------------------------------------------------------
def persistence_faults(rng: random.Random) -> list[Fault]:
    ids = [f"n{i}" for i in range(1, 4)]
    return [
        Fault(1.0, "crash", "all"),
        Fault(1.1, "restart", "all"),
        Fault(2.5, "crash", "leader"),
        Fault(2.6, "restart", "all"),
        Fault(4.0, "crash", rng.choice(ids)),
        Fault(5.5, "restart", "all"),
    ]


def persistence(trial: Trial) -> None:
    """Committed commands survive crashes of every server, of the leader, of a follower."""
    settle(trial, within=1.0)
    agree(trial, "a")
    for i, until in enumerate((1.1, 2.6, 4.0, 5.5)):
        trial.run_until(until)
        agree(trial, f"b{i}")
    world: World = trial.world
    trial.run_for(0.5)
    for s in world.ids:
        got = [c for c in world.live(s).applied if isinstance(c, str)]
        trial.expect(
            got[:1] == ["a"],
            PROGRESS,
            f"after its restarts {s} applied {got[:4]!r}: the first command committed was 'a'",
            node=s,
        )


def crash_voting_faults(rng: random.Random) -> list[Fault]:
    return [
        Fault(0.05, "slow", ("n1", "n2", 0.1)),  # n1's messages take 100 ms to reach n2
        Fault(0.1, "campaign", "n1"),  # n1 asks n3 for its vote in term 1 ...
        Fault(0.118, "crash", "n3"),  # ... n3 has given it, and crashes ...
        Fault(0.125, "restart", "n3"),  # ... and restarts
        Fault(0.13, "campaign", "n2"),  # n2, not yet aware of term 1, asks n3 in term 1 too
    ]


def crash_voting(trial: Trial) -> None:
    """A server votes, crashes and restarts before a rival asks: it must remember its vote."""
    trial.run_until(0.5)
    trial.act("slow", ("n1", "n2", 0.005))
    settle(trial)


def figure8_faults(rng: random.Random) -> list[Fault]:
    """Figure 8 of the extended paper, stage by stage (see :mod:`labkit.raft.scenarios`)."""
    return [
        # (a) S1 leads term 2 and gives index 2 to S2 only.
        Fault(0.01, "campaign", "n1"),
        Fault(0.06, "submit", ("n1", "x@t1")),
        Fault(0.2, "campaign", "n1"),
        Fault(0.25, "partition", ("n1", "n2")),
        Fault(0.25, "submit", ("n1", "y@t2")),
        # (b) S1 crashes; S5 wins term 3 with S3 and S4 and writes index 2 only locally.
        Fault(0.28, "crash", "n1"),
        Fault(0.28, "partition", ("n3", "n4", "n5")),
        Fault(0.29, "campaign", "n5"),
        Fault(0.33, "partition", ("n5",)),
        Fault(0.33, "submit", ("n5", "z@t3")),
        # (c) S5 crashes; S1 restarts, wins term 4 and copies its term-2 entry to S3.
        Fault(0.34, "crash", "n5"),
        Fault(0.34, "restart", "n1"),
        Fault(0.34, "partition", ("n1", "n2", "n3")),
        Fault(0.35, "campaign", "n1"),
        Fault(0.39, "campaign", "n1"),
        # (d) S1 crashes; S5 restarts, wins and overwrites index 2 with its term-3 entry.
        Fault(0.5, "crash", "n1"),
        Fault(0.5, "restart", "n5"),
        Fault(0.5, "partition", ("n2", "n3", "n4", "n5")),
        Fault(0.51, "campaign", "n5"),
        Fault(0.56, "campaign", "n5"),
        Fault(0.62, "submit", ("leader", "w@t5")),
    ]


def figure8(trial: Trial) -> None:
    """The paper's Figure 8: an entry of an earlier term stored on a majority is not yet committed."""
    trial.run_until(1.2)
    recover(trial)
    settle(trial)
    agree(trial, "after")


def unreliable_faults(rng: random.Random) -> list[Fault]:
    ids = [f"n{i}" for i in range(1, 6)]
    out, t, down = [], 0.4, 0
    while t < 4.0:
        roll = rng.random()
        if roll < 0.35 and down < 2:
            out.append(Fault(round(t, 3), "crash", "leader"))
            down += 1
        elif roll < 0.6 and down:
            out.append(Fault(round(t, 3), "restart", "all"))
            down = 0
        elif roll < 0.8:
            out.append(Fault(round(t, 3), "partition", tuple(sorted(rng.sample(ids, 2)))))
        else:
            out.append(Fault(round(t, 3), "heal"))
        t += rng.uniform(0.15, 0.6)
    return out


def unreliable(trial: Trial) -> None:
    """Messages lost, duplicated and reordered while leaders crash: clients' results stay linearizable."""
    clients_through_faults(trial, duration=4.0, rate=25.0)


def churn_faults(rng: random.Random) -> list[Fault]:
    ids = [f"n{i}" for i in range(1, 6)]
    out, t = [], 0.3
    while t < 4.0:
        kind = rng.choice(["crash", "crash", "restart", "disconnect", "connect"])
        target = rng.choice(ids) if kind != "connect" else "all"
        out.append(Fault(round(t, 3), kind, target))
        t += rng.uniform(0.1, 0.4)
    return out


def churn(trial: Trial) -> None:
    """Servers crash, restart and drop off the network all the time while clients write."""
    clients_through_faults(trial, duration=4.0, rate=25.0)


_LOSSY = {"loss": 0.1, "duplication": 0.05, "latency": Uniform(0.001, 0.03)}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("initial election", "election", initial_election, seeds=10,
             about="a leader appears within 1 s and keeps its place (§5.2)"),
    Scenario("re-election", "election", reelection, reelection_faults, seeds=10,
             about="a cut-off or crashed leader is replaced; a deposed leader steps down (§5.2)"),
    Scenario("many elections", "election", many_elections, many_elections_faults, seeds=10,
             about="servers come and go, rivals campaign at once: one leader per term (§5.2)"),
    Scenario("late vote replies", "election", late_votes, late_votes_faults, seeds=3, options={"n": 3},
             about="a vote granted in an earlier term arrives late: it does not count (§5.2, Figure 2)"),
    Scenario("votes restart the timer", "election", vote_restarts_timer, vote_timer_faults, seeds=5,
             about="a server that grants a vote restarts its election timeout (Figure 2, Followers)"),
    Scenario("basic agreement", "replication", basic_agreement, seeds=5,
             about="commands are applied by every server, in order (§5.3)"),
    Scenario("agreement with failures", "replication", agreement_with_failures, failures_faults, seeds=10,
             about="a majority keeps agreeing; a server that comes back catches up (§5.3)"),
    Scenario("no agreement without a majority", "replication", no_majority, no_majority_faults, seeds=10,
             about="nothing commits without a majority (§5.3)"),
    Scenario("concurrent submits", "replication", concurrent_submits, seeds=5, options={"clients": 5},
             about="many clients at once: every result linearizable (§8)"),
    Scenario("rejoin", "replication", rejoin, rejoin_faults, seeds=10, options={"n": 3},
             about="a cut-off leader's uncommitted entries are overwritten when it rejoins (§5.3)"),
    Scenario("backup", "replication", backup, backup_faults, seeds=5, options={"max_entries": 8},
             about="a leader repairs a follower whose log diverged by many entries, 8 per message (§5.3)"),
    Scenario("late AppendEntries", "replication", late_append, late_append_faults, seeds=5, options={"n": 3},
             about="a late AppendEntries with fewer entries cuts nothing off a follower's log (Figure 2)"),
    Scenario("late commit index", "replication", late_commit, late_commit_faults, seeds=5,
             options={"n": 3, "max_entries": 2},
             about="a late AppendEntries with a smaller log lowers no commit index (Figure 2, step 5)"),
    Scenario("stale refusals", "replication", stale_refusals, stale_refusal_faults, seeds=5, options={"n": 3},
             about="a refusal of an old term's AppendEntries does not move next_index back (Figure 2, Leaders)"),
    Scenario("reordered replies", "replication", reordered_replies, reordered_reply_faults, seeds=5,
             options={"n": 3}, about="a late reply does not lower match_index (Figure 2: it only grows)"),
    Scenario("prompt replication", "replication", prompt_replication, seeds=5,
             options={"latency": Fixed(PROMPT_LATENCY)},
             about="a new entry goes out at once: it commits within two round trips (§5.3)"),
    Scenario("random faults", "replication", random_replication, random_replication_faults, seeds=20,
             options={"clients": 3},
             about="random cuts, partitions and loss under client load: linearizable (§5, §8)"),
    Scenario("crash and restart", "persistence", persistence, persistence_faults, seeds=10, options={"n": 3},
             about="committed commands survive crashes of every server (Figure 2)"),
    Scenario("crash while voting", "persistence", crash_voting, crash_voting_faults, seeds=3,
             options={"n": 3}, about="a vote survives a crash: one leader per term (Figure 2, §5.2)"),
    Scenario("Figure 8", "persistence", figure8, figure8_faults, seeds=5,
             about="an earlier term's entry on a majority is not committed by counting (§5.4.2)"),
    Scenario("unreliable network", "persistence", unreliable, unreliable_faults, seeds=20,
             options={"clients": 3, **_LOSSY},
             about="loss, duplication, reordering and leader crashes: linearizable (§5.5)"),
    Scenario("churn", "persistence", churn, churn_faults, seeds=20, options={"clients": 3},
             about="servers crash and restart all the time: linearizable (§5)"),
)  # fmt: skip
