"""Invariants for the checked protocols: plain predicates over a :class:`~labkit.explore.space.State`.

Each returns a list of what is wrong (empty when the state is fine), in
the words of the paper it comes from. The Raft ones hand the work to the
checks of :mod:`labkit.raft.invariants` (Figure 3 of the extended Raft
paper); they read both the live servers and the facts the Raft model
remembers along a run (:func:`labkit.explore.protocols.raft_facts`), so a
property about the *past* ("at most one leader per term, ever") holds
across crashes too.

Invariants that only read the remembered facts cache their verdict per set
of facts: many states share one history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.explore.space import State
from labkit.raft import invariants as raft_checks
from labkit.raft.node import Role
from labkit.replication.client import ClientNode, OpKind
from labkit.saga.services import EntryStatus

__all__ = [
    "election_safety",
    "log_matching",
    "leader_completeness",
    "state_machine_safety",
    "RAFT_INVARIANTS",
    "no_lost_acknowledged_write",
    "at_most_one_decision",
    "never_blocked",
    "no_causal_overwrite",
]


def _per_memory(name: str, state: State, compute: Callable[[frozenset], list[str]]) -> list[str]:
    """``compute(memory)``, cached per set of remembered facts where the state allows it."""
    return state.remembered(name, compute)


def election_safety(state: State) -> list[str]:
    """Election Safety (Figure 3): at most one leader can be elected in a given term, ever."""

    def compute(memory: frozenset) -> list[str]:
        return raft_checks.election_safety([(f[2], f[1]) for f in memory if f[0] == "leader"])

    found = _per_memory("election", state, compute)
    if found:
        return found
    # Leaders that are up now count even in a model that remembers nothing.
    now = [(nid, n.current_term) for nid, n in state.live().items() if n.role is Role.LEADER]
    return raft_checks.election_safety(now) if len(now) > 1 else []


def log_matching(state: State) -> list[str]:
    """Log Matching (Figure 3): two logs with an entry of the same index and term agree up to it."""
    logs = {nid: n.log for nid, n in state.live().items()}
    if sum(len(log) for log in logs.values()) == 0:
        return []
    return raft_checks.log_matching(logs)


def state_machine_safety(state: State) -> list[str]:
    """State Machine Safety (Figure 3): no two servers ever apply different entries at one index.

    Reads the servers up now and every apply remembered along the run (a
    server that applied an entry and then crashed still counts).
    """

    def compute(memory: frozenset) -> list[str]:
        first: dict[int, Any] = {}
        out = []
        for f in sorted((f for f in memory if f[0] == "applied"), key=lambda f: (f[1], repr(f[2]))):
            i, entry = f[1], f[2]
            if i in first and first[i] != entry:
                out.append(f"State Machine Safety: index {i} was applied as {first[i]!r} and as {entry!r}")
            first.setdefault(i, entry)
        return out

    found = _per_memory("applied", state, compute)
    if found:
        return found
    applied = {
        nid: [n.log[i] for i in range(1, min(n.last_applied, n.log.last_index) + 1)]
        for nid, n in state.live().items()
    }
    return raft_checks.state_machine_safety(applied)


def leader_completeness(state: State) -> list[str]:
    """Leader Completeness (Figure 3): an entry committed in a term is in the log of every
    leader of a higher term.

    A leader's commits are remembered as ``("committed", index, entry term, leader's term)``.
    """
    out: list[str] = []
    facts = [f for f in state.memory if f[0] == "committed"]
    if not facts:
        return out
    for nid, n in state.live().items():
        if n.role is not Role.LEADER:
            continue
        committed = {f[1]: f[2] for f in sorted(facts) if f[3] < n.current_term}
        if committed:
            out += raft_checks.leader_completeness(committed, nid, n.log)
    return out


RAFT_INVARIANTS: dict[str, Callable[[State], list[str]]] = {
    "Election Safety": election_safety,
    "Log Matching": log_matching,
    "Leader Completeness": leader_completeness,
    "State Machine Safety": state_machine_safety,
}
"""Figure 3's four safety properties, by name, for :func:`labkit.explore.bfs`."""


# ---------------------------------------------------------------------------
# The quorum register
# ---------------------------------------------------------------------------
def no_lost_acknowledged_write(state: State) -> list[str]:
    """A read that starts after a write was acknowledged returns that write (or a later one).

    The promise of a strict quorum with R + W > N (Dynamo §4.5; DDIA ch. 5,
    "Quorums for reading and writing"). Read off each client's own record
    of its operations, in the order it made them.
    """
    out = []
    for nid, node in state.live().items():
        if not isinstance(node, ClientNode):
            continue
        acked: dict[str, Any] = {}
        for op in node.ops:
            if op.kind is OpKind.WRITE and op.ok:
                acked[op.key] = op.value
            elif op.kind is OpKind.READ and op.ok and op.key in acked and acked[op.key] not in op.values:
                out.append(
                    f"{nid} read {op.key} = {list(op.values)} after its write {op.key} = {acked[op.key]!r} was acknowledged"
                )
    return out


# ---------------------------------------------------------------------------
# Two-phase commit and sagas
# ---------------------------------------------------------------------------
COORDINATORS = ("coordinator", "orchestrator")
_FINAL = {EntryStatus.COMMITTED: "commit", EntryStatus.ABORTED: "abort"}


def at_most_one_decision(state: State) -> list[str]:
    """A transaction gets one decision, ever: commit or abort, never both.

    The agreement property of atomic commit (DDIA ch. 9, "Atomic Commit and
    Two-Phase Commit"). Checked on the coordinator's decisions remembered
    along the run and on the participants' durable entries: no participant
    commits what another aborts.
    """
    out = []

    def compute(memory: frozenset) -> list[str]:
        decided: dict[str, set[str]] = {}
        for f in memory:
            if f[0] == "decision":
                decided.setdefault(f[1], set()).add(f[2])
        return [
            f"{tid} was decided both ways: {', '.join(sorted(d))}"
            for tid, d in sorted(decided.items())
            if len(d) > 1
        ]

    out += _per_memory("decisions", state, compute)
    finals: dict[str, dict[str, str]] = {}
    for nid in state.nodes:
        if nid in COORDINATORS:
            continue
        for key, entry in state.storage(nid).items():
            if isinstance(key, tuple) and key[0] == "entry" and entry.status in _FINAL:
                finals.setdefault(key[1].split("/")[0], {})[nid] = _FINAL[entry.status]
    for tid, by in sorted(finals.items()):
        if len(set(by.values())) > 1:
            out.append(f"{tid}: " + ", ".join(f"{n} {d}s" for n, d in sorted(by.items())))
    return out


def never_blocked(state: State) -> list[str]:
    """No participant is left in doubt while its coordinator is down.

    A participant that voted yes in two-phase commit holds its locks and may
    not decide alone until the coordinator tells it (DDIA ch. 9, "Coordinator
    failure"): if the coordinator is down, it is *blocked*. Sagas make no
    such promise to wait, so they never block.
    """
    down = [c for c in COORDINATORS if c in state.nodes and c in state.crashed]
    if not down:
        return []
    out = []
    for nid in state.nodes:
        if nid in COORDINATORS:
            continue
        for key, entry in state.storage(nid).items():
            if isinstance(key, tuple) and key[0] == "entry" and entry.status is EntryStatus.PREPARED:
                out.append(
                    f"{nid} is in doubt about {key[1]} (it voted yes, holds its lock) while {down[0]} is down"
                )
    return out


# ---------------------------------------------------------------------------
# Last-writer-wins
# ---------------------------------------------------------------------------
def no_causal_overwrite(state: State) -> list[str]:
    """No replica keeps a write in place of one that happened after it.

    Last-writer-wins may drop one of two *concurrent* writes, by design; what
    it must never do is drop a write that causally follows the one it keeps
    (Lamport's clock condition, CACM 1978, "Logical Clocks"; DDIA ch. 8, "Timestamps for
    ordering events"). The vector stamps of the writes tell which came first.
    """
    out = []
    for nid, node in state.live().items():
        seen = getattr(node, "_seen", None)
        if seen is None:
            continue
        for kept in node.versions:
            later = [vc for vc in seen if kept.stamps.vector < vc]
            if later:
                out.append(f"{nid} keeps {kept} although it saw a write made after it (and discarded it)")
    return out
