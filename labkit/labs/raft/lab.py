"""The Raft lab: a cluster of the learner's servers on the simulator, its faults and its checks.

:class:`RaftLab` says the five things a lab says (see :class:`labkit.labs.Lab`):

* the world of a trial is a :class:`~labkit.raft.RaftCluster` whose servers
  are the learner's class (``node_factory``), so the clients, the widgets and
  the checks of labkit's own Raft work on it unchanged;
* faults: ``crash``, ``restart``, ``disconnect`` (cut off from everyone),
  ``connect``, ``deafen`` (hears nobody, can still send), ``partition``,
  ``heal``, ``loss``, ``slow`` (one link's delay), ``campaign`` (a server's
  election timeout fires now), ``submit`` (a command to one server) and
  ``recover`` (heal, no loss, restart every crashed server: the scripts' end of faults).
  Targets are server names, ``"leader"`` (whoever leads when the fault fires),
  ``"all"`` or ``"disconnected"``;
* after every event, Figure 3's properties (:mod:`labkit.labs.raft.properties`);
* a server's state for the picture: role, term, vote, log and commit index;
* a submission must not delegate to labkit's own :class:`~labkit.raft.RaftNode`
  (see :mod:`labkit.labs.raft.delegation`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from labkit.labs.core import Fault, Lab, Trial, Violation
from labkit.labs.raft import delegation, scenarios
from labkit.labs.raft.properties import APPLY_ONCE, MAJORITY_COMMIT, MONITOR_PREFIXES, SKELETON
from labkit.labs.raft.scenarios import SCENARIOS, World
from labkit.labs.raft.skeleton import RaftServer
from labkit.raft.invariants import InvariantMonitor, InvariantViolation
from labkit.raft.log import RaftLog
from labkit.raft.node import Role
from labkit.sim import Fixed

__all__ = ["RaftLab", "raft_lab"]


def _log_text(log: RaftLog, runs: int = 5) -> str:
    """A log as runs of indexes by term, e.g. ``"1-32 t1, 33-40 t3"`` (the last ``runs`` runs)."""
    terms = log.terms()
    if not terms:
        return "(empty)"
    out: list[tuple[int, int, int]] = []  # (first index, last index, term)
    for i, t in enumerate(terms, 1):
        if out and out[-1][2] == t:
            out[-1] = (out[-1][0], i, t)
        else:
            out.append((i, i, t))
    text = ", ".join(f"{a} t{t}" if a == b else f"{a}-{b} t{t}" for a, b, t in out[-runs:])
    return text if len(out) <= runs else "…, " + text


def _where_committed(detail: str, first_commit: dict[int, tuple[str, float]]) -> tuple[str, tuple]:
    """``detail`` of a violation about a committed entry, plus who committed it first and when; and that
    commit as the violation's ``earlier`` event (node, time, what).

    A leader that lacks a committed entry shows where it went wrong only at the election; the commit
    itself (too early, or by counting replicas of an earlier term, Figure 8) happened before. Saying
    when, and drawing it in the picture's first view, lets the learner see both ends at once.
    """
    found = re.search(
        r"lacks committed entry (\d+)|committed index (\d+) with|applied .* at index (\d+), another", detail
    )
    index = next((int(g) for g in found.groups() if g), None) if found else None
    if index is None or index not in first_commit:
        return detail, ()
    server, when = first_commit[index]
    earlier = ((server, when, f"{server} commits entry {index}"),)
    return f"{detail}; {server} committed it first, at t = {when:.3f} s", earlier


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def applied_once(node_id: str, node: RaftServer, checked: int) -> None:
    """Figure 2: "increment lastApplied, apply log[lastApplied]": the commands a server has applied since it
    started (the skeleton's ``applied``) are its log's, from index 1, each once, and ``last_applied`` counts
    them. Checks the applications after the first ``checked``; raises a :class:`Violation` if one is wrong."""
    applied, log = node.applied, node.log
    for k in range(checked, len(applied)):
        command, index = applied[k], k + 1
        if index <= log.last_index and log[index].command == command:
            continue
        again = next((i for i in range(1, min(index, log.last_index + 1)) if log[i].command == command), None)
        if again is not None:
            what = (
                f"{node_id} applied entry {again} ({command!r}) a second time: it had applied "
                + (f"entries 1-{k}" if k > 1 else "entry 1")
                + f" already, so the next one to apply was entry {index}"
            )
        else:
            what = (
                f"{node_id}'s {_ordinal(index)} application since it started was {command!r}, but entry {index} "
                "of its log is "
                + (f"{log[index].command!r}" if index <= log.last_index else "not there")
                + ": entries are applied in index order, from 1"
            )
        raise Violation(APPLY_ONCE, what, node=node_id)
    if len(applied) != node.last_applied:
        raise Violation(
            APPLY_ONCE,
            f"{node_id} has applied {len(applied)} {'entry' if len(applied) == 1 else 'entries'} since it started, "
            f"yet its last_applied is "
            f"{node.last_applied}: last_applied is the index of the last entry applied",
            node=node_id,
        )


def _votes_note(detail: str, world: World) -> str:
    """``detail`` of a leader that lacks a committed entry, plus who voted for it when that is short of a majority.

    While no server has a term above the leader's, the votes of that term are exactly the servers of that
    term (live, or on disk while crashed) whose ``voted_for`` names the leader. Fewer than a majority means
    the leader counted some vote twice (a duplicated reply) or one it never got: no up-to-date check is
    to blame then, and the hint would send the learner the wrong way.
    """
    found = re.match(r"(\S+) leads term (\d+) but lacks", detail)
    if not found:
        return detail
    leader, term = found.group(1), int(found.group(2))
    voters = []
    for s in world.ids:
        node = world.live(s)
        if node is not None:
            state = (node.current_term, node.voted_for)
        else:
            disk = world.sim.storage(s)
            state = (disk.get("current_term", 0), disk.get("voted_for"))
        if state[0] > term:
            return detail  # a vote of this term may be forgotten: nothing certain to say
        if state == (term, leader):
            voters.append(s)
    if len(voters) >= world.majority:
        return detail
    return (
        f"{detail}; only {', '.join(voters) or 'nobody'} voted for {leader} in term {term}, and a majority is "
        f"{world.majority}: did handle_request_vote_reply count a vote twice (a duplicated reply)?"
    )


class RaftLab(Lab):
    """Raft in three parts: leader election and log replication (two of the three subproblems of the extended
    paper's §5; its third, safety, is checked in every part) and persistence (Figure 2's persistent state)."""

    name = "Raft"
    handle = "raft_lab"
    parts = ("election", "replication", "persistence")
    scenarios = SCENARIOS
    world_class = World
    skeleton = RaftServer
    reference = delegation.REFERENCE

    # -- faults ----------------------------------------------------------------
    def inject(self, trial: Trial, fault: Fault) -> str | None:
        world: World = trial.world
        world.version += 1
        act = _FAULTS.get(fault.kind)
        if act is None:
            raise ValueError(f"fault kind must be one of {', '.join(_FAULTS)}, got {fault.kind!r}")
        return act(world, fault.target)

    def say(self, fault: Fault) -> str:
        return fault_words(fault.kind, fault.target)

    # -- checks ------------------------------------------------------------------
    def watch(self, trial: Trial) -> Callable[[str, Any], None]:
        world: World = trial.world
        monitor = InvariantMonitor(world.live, world.ids, strict=True)
        commits: dict[str, tuple[Any, int]] = {}  # server -> (incarnation, commit index checked)
        first_commit: dict[int, tuple[str, float]] = {}  # index -> (server, time) of its first commit
        applies: dict[str, tuple[Any, int]] = {}  # server -> (incarnation, applications checked)

        def check(node_id: str, node: Any) -> None:
            if node_id not in monitor.servers:
                return
            if type(node.log) is not RaftLog or type(node.role) is not Role:
                raise Violation(
                    SKELETON,
                    f"{node_id}.log must stay a RaftLog and {node_id}.role a Role, got "
                    f"{type(node.log).__name__} and {type(node.role).__name__}",
                    node=node_id,
                )
            try:
                monitor.observe(node_id, node)
            except InvariantViolation as exc:
                text = str(exc)
                prop = next(p for prefix, p in MONITOR_PREFIXES.items() if text.startswith(prefix))
                detail, earlier = _where_committed(text.split(": ", 1)[1], first_commit)
                detail = _votes_note(detail, world)
                raise Violation(prop, detail, node=node_id, earlier=earlier) from None
            if isinstance(node, RaftServer):  # the skeleton records every application (labkit's RaftNode: no)
                seen_node, done = applies.get(node_id, (None, 0))
                applied_once(node_id, node, done if seen_node is node else 0)
                applies[node_id] = (node, len(node.applied))
            # Commit needs a majority (§5.3): checked when a server's commit index grows.
            commit = min(node.commit_index, node.log.last_index)
            seen, checked = commits.get(node_id, (None, 0))
            if seen is not node:
                checked = 0  # a restarted server starts again from commit index 0
            if commit > checked:
                for i in range(checked + 1, commit + 1):
                    first_commit.setdefault(i, (node_id, world.sim.now))
                entry = node.log[commit]
                holders = world.holders(commit, entry)
                if len(holders) < world.majority:
                    raise Violation(
                        MAJORITY_COMMIT,
                        f"{node_id} committed index {commit} (term {entry.term}, {entry.command!r}) "
                        f"stored only on {', '.join(holders)}: {len(holders)} of {len(world.ids)} servers",
                        node=node_id,
                    )
            commits[node_id] = (node, max(commit, checked))

        return check

    def describe(self, node: Any) -> dict[str, Any] | None:
        try:
            return {
                "role": node.role.value,
                "term": node.current_term,
                "voted for": node.voted_for,
                "log (terms)": _log_text(node.log),
                "commit": node.commit_index,
                "applied": node.last_applied,
            }
        except AttributeError:
            return None

    def notes(self, trial: Trial) -> list[str]:
        out = super().notes(trial)  # the rules not written yet
        if trial.world.undecided:
            out.append(
                "clients' results not judged (the linearizability checker gave up after "
                f"{scenarios.CHECKER_STEPS:_} steps): {trial.world.undecided}"
            )
        return out


# -- the fault vocabulary --------------------------------------------------------
def _servers(world: World, target: Any) -> list[str]:
    """The servers a target names: a name, "leader", "all", "disconnected", or a list of those."""
    if isinstance(target, (list, tuple)):
        out: list[str] = []
        for t in target:
            out += [s for s in _servers(world, t) if s not in out]
        return out
    if target == "leader":
        leader = world.cluster.leader()
        return [] if leader is None else [leader]
    if target == "all":
        return list(world.ids)
    if target == "disconnected":
        return sorted(world.cut_off)
    if target in world.ids:
        return [target]
    raise ValueError(
        f"fault target must be a server ({', '.join(world.ids)}), 'leader', 'all' or 'disconnected', got {target!r}"
    )


def fault_words(kind: str, target: Any) -> str:
    """A fault in words, the same in the failure's summary (``target`` as scheduled: ``"leader"``...)
    and in the picture (``target`` as it was resolved when the fault fired: the servers it hit)."""
    if isinstance(target, (list, tuple)) and kind not in ("slow", "submit"):
        who = ", ".join(_WHO.get(t, str(t)) for t in target) or "nobody"
    else:
        who = _WHO.get(target, str(target)) if isinstance(target, str) else ""
    if kind == "slow":
        src, dst, seconds = target
        return f"{src} → {dst} takes {seconds * 1000:g} ms"
    if kind == "submit":
        server, command = target
        return f"submit {command!r} to {_WHO.get(server, server)}"
    if kind == "loss":
        return f"lose {target:.0%} of messages"
    return _WORDS.get(kind, kind + " {who}").format(who=who)


_WHO = {"leader": "the leader", "all": "every server", "disconnected": "the servers cut off"}
_WORDS = {
    "crash": "crash {who}",
    "restart": "restart {who}",
    "disconnect": "disconnect {who}",
    "deafen": "deafen {who} (hears nobody, can still send)",
    "connect": "connect {who}",
    "partition": "partition {who} | the rest",
    "heal": "heal the network",
    "recover": "all faults lifted",
    "campaign": "{who} times out now and campaigns",
}


def _crash(world: World, target: Any) -> str:
    done = [s for s in _servers(world, target) if world.cluster.is_up(s)]
    for s in done:
        world.cluster.crash(s)
    return fault_words("crash", done)


def _restart(world: World, target: Any) -> str:
    done = [s for s in _servers(world, target) if not world.cluster.is_up(s)]
    for s in done:
        world.cluster.restart(s)
    return fault_words("restart", done)


def _isolate(world: World, target: Any, *, kind: str, inbound: bool, outbound: bool) -> str:
    """``disconnect`` (cut off both ways), ``deafen`` (hears nobody, can still send) or ``connect`` (neither)."""
    servers = _servers(world, target)
    for s in servers:
        world.isolate(s, inbound=inbound, outbound=outbound)
    return fault_words(kind, servers)


def _partition(world: World, target: Any) -> str:
    side = _servers(world, target)
    if not side or len(side) == len(world.ids):
        return "partition: nothing to split"
    world.cluster.partition(side)
    return fault_words("partition", side)


def _heal(world: World, target: Any) -> str:
    world.heal()
    return fault_words("heal", None)


def _recover(world: World, target: Any) -> str:
    """Every fault lifted at once (one mark in the picture): the network whole, no loss, everybody up."""
    _heal(world, None)
    _loss(world, 0.0)
    restarted = _restart(world, "all")
    return fault_words("recover", None) + ("" if restarted.endswith("nobody") else f", {restarted}")


def _loss(world: World, target: Any) -> str:
    world.sim.set_loss(target)
    return fault_words("loss", target)


def _slow(world: World, target: Any) -> str:
    src, dst, seconds = target
    world.sim.set_latency(Fixed(seconds), src, dst)
    return fault_words("slow", target)


def _campaign(world: World, target: Any) -> str:
    servers = [s for s in _servers(world, target) if world.cluster.is_up(s)]
    for s in servers:  # the skeleton's campaign; labkit's own RaftNode starts an election directly
        world.sim.call(s, lambda n, ctx: n.campaign(ctx) if hasattr(n, "campaign") else n.start_election(ctx))
    return fault_words("campaign", servers)


def _submit(world: World, target: Any) -> str:
    who, command = target
    servers = [s for s in _servers(world, who) if world.cluster.is_up(s)]
    for s in servers:
        world.cluster.submit(command, node=s)
    return fault_words("submit", (", ".join(servers) or "nobody", command))


_FAULTS: dict[str, Callable[[World, Any], str]] = {
    "crash": _crash,
    "restart": _restart,
    "disconnect": partial(_isolate, kind="disconnect", inbound=True, outbound=True),
    "deafen": partial(_isolate, kind="deafen", inbound=True, outbound=False),
    "connect": partial(_isolate, kind="connect", inbound=False, outbound=False),
    "partition": _partition,
    "heal": _heal,
    "loss": _loss,
    "recover": _recover,
    "slow": _slow,
    "campaign": _campaign,
    "submit": _submit,
}

raft_lab = RaftLab()
