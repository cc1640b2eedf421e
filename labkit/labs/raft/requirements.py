"""Figure 2's rules that cost time, not safety, when broken: the lab states them as requirements.

A server that grants a vote without restarting its election timer, drops an AppendEntries of an old term
without a reply, backs ``next_index`` up on a stale reply, lets ``match_index`` go back on a late reply, or
holds a new entry until the next heartbeat keeps every property of Figure 3; it is only slower or chattier,
and the checks of safety and progress let it pass. Classic lab suites state such rules as expectations (an agreement within so many milliseconds, at
most so many RPCs). Here each one is a check that one scenario adds (:meth:`~labkit.labs.Trial.add_check`)
and that runs after every event, on what the skeleton gives a server under Figure 2's names, on the
simulator's timers and on the message the event delivered:

* :func:`vote_restarts_timer`: Figure 2, Followers: "If election timeout elapses without receiving
  AppendEntries RPC from current leader or granting vote to candidate: convert to candidate";
* :func:`refuse_stale`: Figure 2, AppendEntries RPC, receiver step 1: "Reply false if term <
  currentTerm (§5.1)";
* :func:`back_up_on_mismatch`: Figure 2, Leaders: "If AppendEntries fails because of log inconsistency:
  decrement nextIndex and retry", and only then;
* :func:`match_index_grows`: Figure 2, State: matchIndex is "initialized to 0, increases monotonically";
* :class:`PromptCommits`: §5.3: the leader "appends the command to its log as a new entry, then issues
  AppendEntries RPCs in parallel to each of the other servers to replicate the entry".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.labs.core import Violation
from labkit.labs.raft.properties import (
    BACK_UP_ON_MISMATCH,
    MATCH_INDEX_GROWS,
    PROMPT_REPLICATION,
    REFUSE_STALE,
    VOTE_RESTARTS_TIMER,
)
from labkit.labs.raft.skeleton import ELECTION_TIMER
from labkit.raft.messages import AppendEntries, AppendEntriesReply
from labkit.raft.node import Role
from labkit.sim import Kind

__all__ = [
    "vote_restarts_timer",
    "refuse_stale",
    "back_up_on_mismatch",
    "match_index_grows",
    "PromptCommits",
    "delivered",
]

Check = Callable[[str, Any], None]
_OUTPUTS = (Kind.SEND, Kind.STATE, Kind.DROP, Kind.DUPLICATE)  # what a handler's effects add to the trace


def delivered(world: Any, node_id: str) -> tuple[str, Any] | None:
    """``(sender, message)`` of the message ``node_id`` has just handled, or None (a timer, a boot, a call).

    Read from the end of the trace: the event's own row, then only the rows its effects added.
    """
    rows, now = world.sim.trace.rows, world.sim.now
    for row in reversed(rows):
        time, kind, node, src = row[0], row[1], row[2], row[3]
        if time != now:
            return None
        if kind in _OUTPUTS and (node == node_id or src == node_id):
            continue
        return (src, row[6]) if kind is Kind.DELIVER and node == node_id else None
    return None


def sent(world: Any, node_id: str) -> list[tuple[str, Any]]:
    """``(receiver, message)`` of every message ``node_id`` sent in the event it has just handled, in order."""
    rows, now = world.sim.trace.rows, world.sim.now
    out: list[tuple[str, Any]] = []
    for row in reversed(rows):
        if row[0] != now or row[1] not in _OUTPUTS or (row[2] != node_id and row[3] != node_id):
            break
        if row[1] is Kind.SEND and row[2] == node_id:
            out.append((row[4], row[6]))
    return out[::-1]


Seen = dict[str, tuple[Any, int, dict[str, int]] | None]


def _as_before(seen: Seen, node_id: str, node: Any, field: str) -> dict[str, int] | None:
    """A leader's ``field`` (``next_index`` or ``match_index``) as it was after its previous event, if it led
    the same term then (same server object: no restart since); None otherwise. Keeps it as it is now."""
    before = seen.get(node_id)
    leading = node.role is Role.LEADER and isinstance(getattr(node, field, None), dict)
    seen[node_id] = (node, node.current_term, dict(getattr(node, field))) if leading else None
    if not leading or before is None or before[0] is not node or before[1] != node.current_term:
        return None
    return before[2]


def vote_restarts_timer(world: Any) -> Check:
    """A server whose ``voted_for`` turns to another server in an event must have set its election timer
    again in that event (every setting gives the timer a new deadline)."""
    seen: dict[str, tuple[Any, int, Any, float | None]] = {}

    def check(node_id: str, node: Any) -> None:
        if node_id not in world.ids:
            return
        due = world.sim.timer_due(node_id, ELECTION_TIMER)
        before = seen.get(node_id)
        seen[node_id] = (node, node.current_term, node.voted_for, due)
        if before is None or before[0] is not node:
            return  # a boot or a restart: nothing to compare with
        voted, term = node.voted_for, node.current_term
        if voted in (None, node_id) or (before[1], before[2]) == (term, voted):
            return  # no vote granted in this event
        if due is not None and due != before[3]:
            return
        when = (
            "no election timer running"
            if due is None
            else (
                f"it still fires at t = {due:.3f} s, {1000 * (due - world.sim.now):.0f} ms after the vote, as set "
                "before it"
            )
        )
        if before[1] == term:  # the timer a new term restarts cannot stand in for this one
            when += f" (it was in term {term} already: no new term came with this vote)"
        raise Violation(
            VOTE_RESTARTS_TIMER,
            f"{node_id} granted its vote to {voted} for term {term} without restarting its election timer: "
            f"{when}; a voter that times out before the leader it elected is heard from deposes it",
            node=node_id,
        )

    return check


def refuse_stale(world: Any) -> Check:
    """A server that handles an AppendEntries of a term older than its own must have answered its sender, in
    that event, with an AppendEntriesReply that refuses and carries the server's term."""

    def check(node_id: str, node: Any) -> None:
        if node_id not in world.ids:
            return
        got = delivered(world, node_id)
        if got is None or not isinstance(got[1], AppendEntries) or got[1].term >= node.current_term:
            return
        src, m = got
        replies = [r for dst, r in sent(world, node_id) if dst == src and isinstance(r, AppendEntriesReply)]
        if any(not r.success and r.term == node.current_term for r in replies):
            return
        said = (
            f"answered {replies[-1]}"
            if replies
            else f"sent {src} no reply, so {src} does not hear of term {node.current_term} from it"
        )
        raise Violation(
            REFUSE_STALE,
            f"{node_id}, in term {node.current_term}, got an AppendEntries of term {m.term} from {src} and {said}; "
            f"step 1 replies false with the receiver's term",
            node=node_id,
        )

    return check


def back_up_on_mismatch(world: Any) -> Check:
    """A leader's ``next_index`` of a follower changes on a failed reply only if that reply answers the
    request the leader would send now: of this term, with ``prev_log_index = next_index - 1``."""
    seen: Seen = {}

    def check(node_id: str, node: Any) -> None:
        if node_id not in world.ids:
            return
        before = _as_before(seen, node_id, node, "next_index")
        if before is None:
            return
        got = delivered(world, node_id)
        if got is None or not isinstance(got[1], AppendEntriesReply) or got[1].success:
            return
        src, m = got
        old, new, term = before.get(src), node.next_index.get(src), node.current_term
        if old is None or new == old or (m.request_term == term and m.prev_log_index == old - 1):
            return
        if m.request_term < term:
            why = (
                f"it refused an AppendEntries of term {m.request_term} because that term was old (step 1), "
                "not because the logs differ"
            )
        else:
            why = (
                f"it answers an earlier AppendEntries, with prev_log_index {m.prev_log_index} (a late or "
                "duplicated reply)"
            )
        raise Violation(
            BACK_UP_ON_MISMATCH,
            f"{node_id}, leader of term {term}, moved next_index[{src!r}] from {old} to {new} on a failed reply "
            f"from {src}: {why}; only a failure of the request it sends now (term {term}, prev_log_index "
            f"{old - 1}) says the logs differ there",
            node=node_id,
        )

    return check


def match_index_grows(world: Any) -> Check:
    """While a server leads one term, ``match_index[peer]`` never goes down."""
    seen: Seen = {}

    def check(node_id: str, node: Any) -> None:
        if node_id not in world.ids:
            return
        before = _as_before(seen, node_id, node, "match_index")
        if before is None:
            return
        for peer, old in before.items():
            new = node.match_index.get(peer, 0)
            if new < old:
                got = delivered(world, node_id)
                how = ""
                if got is not None and isinstance(got[1], AppendEntriesReply) and got[1].success:
                    how = (
                        f" on a late reply from {got[0]}: it answers an AppendEntries with prev_log_index "
                        f"{got[1].prev_log_index} and knows entries up to {got[1].match_index} only"
                    )
                raise Violation(
                    MATCH_INDEX_GROWS,
                    f"{node_id}, leader of term {node.current_term}, lowered match_index[{peer!r}] from {old} "
                    f"to {new}{how}; {peer} still holds entry {old}",
                    node=node_id,
                )

    return check


class PromptCommits:
    """Commands given to ``leader`` one by one, each of which must commit on it within ``within`` seconds.

    Add it as a check (``trial.add_check(prompt)``) and hand commands over with :meth:`submit`; after
    every event it notes what the leader has committed and fails the first command past its deadline,
    saying when the leader first sent it.
    """

    def __init__(self, world: Any, leader: str, within: float, round_trip: float) -> None:
        self.world, self.leader, self.within, self.round_trip = world, leader, within, round_trip
        self.term = world.live(leader).current_term
        self.pending: list[tuple[str, int, float, int]] = []  # (command, index, given at, trace row then)
        self.committed: dict[str, float] = {}  # command -> when the leader committed it

    def submit(self, command: str) -> None:
        """Give ``command`` to the leader now (nothing if it no longer leads)."""
        sim = self.world.sim
        placed = self.world.cluster.submit(command, node=self.leader)
        if placed is not None:
            self.pending.append((command, placed[0], sim.now, len(sim.trace.rows)))

    def __call__(self, node_id: str, node: Any) -> None:
        if not self.pending:
            return
        leader = self.world.live(self.leader)
        if leader is None or leader.role is not Role.LEADER or leader.current_term != self.term:
            return  # leadership changed: the scenario's own check says so
        now = self.world.sim.now
        for command, index, at, row in list(self.pending):
            if leader.commit_index >= index:
                self.pending.remove((command, index, at, row))
                self.committed[command] = now
            elif now > at + self.within:
                raise Violation(
                    PROMPT_REPLICATION,
                    f"{command!r}, given to leader {self.leader} at t = {at:.3f} s, was not committed "
                    f"{1000 * self.within:.0f} ms later (a round trip takes {1000 * self.round_trip:.0f} ms here); "
                    + self._first_sent(index, at, row),
                    node=self.leader,
                    earlier=((self.leader, at, f"{command!r} given to {self.leader}"),),
                )

    def _first_sent(self, index: int, at: float, row: int) -> str:
        """When the leader first sent entry ``index`` to a follower, in words."""
        for r in self.world.sim.trace.rows[row:]:
            m = r[6]
            if (
                r[1] is Kind.SEND
                and r[2] == self.leader
                and isinstance(m, AppendEntries)
                and m.prev_log_index < index <= m.prev_log_index + len(m.entries)
            ):
                return f"{self.leader} first sent it at t = {r[0]:.3f} s, {1000 * (r[0] - at):.0f} ms after it came"
        return f"{self.leader} has not sent it to any follower yet"
