"""A Raft server as a sans-IO state machine (extended Raft paper, §5 and Figure 2).

:class:`RaftNode` implements leader election (§5.2), log replication (§5.3)
and the safety restrictions of §5.4: the election restriction (a vote only
for a candidate whose log is at least as up-to-date, §5.4.1) and the commit
rule that a leader counts replicas only for entries of its *current* term
(§5.4.2, Figure 8). A new leader appends a no-op entry (§8) so that earlier
entries commit as soon as possible.

Durability (Figure 2, "Persistent state on all servers"): ``current_term``,
``voted_for`` and the log are written with ``ctx.persist`` before any message
that depends on them is sent. The simulator's :class:`~labkit.sim.Effects`
applies persists before sends, so a vote or an acknowledgement is never
forgotten by a crash. ``commit_index``, ``last_applied`` and the leader's
``next_index`` / ``match_index`` are volatile and rebuilt after a restart.

Flow control (as etcd's raft limits "inflight" messages per follower): a
leader keeps at most one AppendEntries *with entries* outstanding per
follower. Entries appended while one is outstanding wait and travel together
in the next message, sent as soon as the follower's reply arrives. The reply
carries ``match_index`` so the leader knows exactly what the follower stored,
and echoes the request's ``term`` and ``prev_log_index``: a failure reply
that does not answer the leader's current probe (stale, duplicated or
overtaken, §5.3) is ignored rather than allowed to rewind ``next_index``.
A heartbeat to a follower with a message outstanding carries no entries
(it keeps the follower's election timer quiet and brings the commit index);
one outstanding for a whole heartbeat interval is presumed lost and sent
again from ``next_index``. Why this is safe: the rule only changes *when*
entries are sent, never *which*. Every AppendEntries still holds the leader's
log from ``next_index`` on, with ``prev_log_index`` / ``prev_log_term`` for
the consistency check of §5.3; followers handle each message exactly as
before, in any order and any number of times (§5.5); and nothing is held back
for long: the answer to a message releases the next one, and a heartbeat
interval without an answer resends it.

Dispatch follows etcd's raft: one handler table from message type to
method, one from timer name to method; the role decides inside a handler
only where Figure 2 itself distinguishes roles.

Deliberately broken variants (:class:`Bug`) exist for teaching: the course
shows the invariant checkers and the linearizability checker catching them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

from labkit.raft.log import RaftLog
from labkit.raft.messages import (
    NOOP,
    AppendEntries,
    AppendEntriesReply,
    ClientReply,
    ClientRequest,
    KVCommand,
    LogEntry,
    RequestVote,
    RequestVoteReply,
)
from labkit.raft.state_machine import KVStore, StateMachine
from labkit.sim import Context, Node

__all__ = ["Bug", "RaftConfig", "RaftNode", "Role", "ELECTION_TIMER", "HEARTBEAT_TIMER"]

ELECTION_TIMER = "election"
HEARTBEAT_TIMER = "heartbeat"


class Role(Enum):
    """The three roles of a Raft server (§5.1, Figure 4)."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


class Bug(Enum):
    """Deliberate protocol bugs, for demonstrations only. Never on by default.

    * ``COMMIT_PRIOR_TERM``: the leader commits an entry of an earlier term as
      soon as a majority stores it (the mistake Figure 8 warns against).
    * ``STALE_READS``: any server answers ``get`` from its own state machine
      without going through the log (and clients send reads to any server).
    * ``VOTE_TWICE``: a server grants every vote request of the current term,
      forgetting it already voted; two leaders can win one term.
    """

    COMMIT_PRIOR_TERM = "commit-prior-term"
    STALE_READS = "stale-reads"
    VOTE_TWICE = "vote-twice"


def _seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Timing and behaviour of a Raft server.

    ``election_timeout`` is the (low, high) range each timeout is drawn from
    (§5.2 suggests 150-300 ms); ``heartbeat_interval`` must be well below
    ``low`` so a healthy leader is never suspected. ``max_entries`` bounds how
    many entries one AppendEntries carries. ``noop`` makes a new leader append
    a no-op entry (§8). ``bugs`` switches on deliberate mistakes (see :class:`Bug`).
    """

    election_timeout: tuple[float, float] = (0.15, 0.30)
    heartbeat_interval: float = 0.05
    max_entries: int = 64
    noop: bool = True
    bugs: frozenset[Bug] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        et = self.election_timeout
        if not isinstance(et, (tuple, list)) or len(et) != 2:
            raise TypeError(f"election_timeout must be a (low, high) pair of seconds, got {et!r}")
        low, high = _seconds("election_timeout low", et[0]), _seconds("election_timeout high", et[1])
        if high < low:
            raise ValueError(f"election_timeout must have low <= high, got {et!r}")
        hb = _seconds("heartbeat_interval", self.heartbeat_interval)
        if hb >= low:
            raise ValueError(
                f"heartbeat_interval ({hb}) must be shorter than the election timeout's low end ({low}); "
                "otherwise followers time out on a healthy leader"
            )
        if (
            isinstance(self.max_entries, bool)
            or not isinstance(self.max_entries, int)
            or self.max_entries < 1
        ):
            raise ValueError(f"max_entries must be an int >= 1, got {self.max_entries!r}")
        if not isinstance(self.noop, bool):
            raise TypeError(f"noop must be True or False, got {self.noop!r}")
        bugs = frozenset(self.bugs)
        for b in bugs:
            if not isinstance(b, Bug):
                raise TypeError(f"bugs must hold Bug members ({', '.join(b.name for b in Bug)}), got {b!r}")
        object.__setattr__(self, "election_timeout", (low, high))
        object.__setattr__(self, "heartbeat_interval", hb)
        object.__setattr__(self, "bugs", bugs)


class RaftNode(Node):
    """One Raft server. Field names follow Figure 2.

    Persistent: ``current_term``, ``voted_for``, ``log`` (a 1-based :class:`RaftLog`).
    Volatile: ``commit_index``, ``last_applied``; on leaders ``next_index`` and
    ``match_index`` (per peer). Also kept: ``role``, ``leader_id`` (who this
    server believes leads, for client redirects), ``state_machine`` and
    ``applied`` (the commands applied since the last restart, no-ops left out).
    """

    _MESSAGE_HANDLERS: ClassVar[dict[type, Callable[..., None]]] = {}
    _TIMER_HANDLERS: ClassVar[dict[str, Callable[..., None]]] = {}

    def __init__(
        self,
        node_id: str,
        peers: Iterable[str],
        config: RaftConfig | None = None,
        state_machine: Callable[[], StateMachine] = KVStore,
    ) -> None:
        super().__init__(node_id)
        self.peers = tuple(p for p in peers if p != node_id)
        self._quorum = (len(self.peers) + 1) // 2 + 1  # a majority of the whole cluster
        self.config = config if config is not None else RaftConfig()
        if not isinstance(self.config, RaftConfig):
            raise TypeError(f"config must be a RaftConfig, got {config!r}")
        self._make_state_machine = state_machine
        self.bugs = self.config.bugs
        # Persistent state (loaded in on_start).
        self.current_term = 0
        self.voted_for: str | None = None
        self.log = RaftLog()
        # Volatile state. Invariant: last_applied <= commit_index.
        self.commit_index = 0
        self.last_applied = 0
        self.role = Role.FOLLOWER
        self.leader_id: str | None = None
        self.votes: set[str] = set()
        self._election_deadline = math.inf
        self._election_armed_at = -math.inf  # when the armed election timer fires
        # Leader state. Invariant: match_index[p] < next_index[p] <= last_index + 1.
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        # Flow control (see the module docstring): per follower, (last index,
        # send time) of the AppendEntries with entries still awaiting an
        # answer, or None. Invariant: at most one per follower.
        self._inflight: dict[str, tuple[int, float] | None] = {}
        self._pending: dict[int, tuple[str, int, int]] = {}  # index -> (client, seq, term)
        self.state_machine: StateMachine = state_machine()
        self.applied: list[Any] = []

    @property
    def quorum(self) -> int:
        """Votes or replicas needed: a majority of the whole cluster."""
        return self._quorum

    # ------------------------------------------------------------------
    # Driver entry points
    # ------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        """Boot or reboot: recover the persistent state, start as a follower (§5.2)."""
        st = ctx.storage
        self.current_term = st.get("current_term", 0)
        self.voted_for = st.get("voted_for")
        n = st.get("log_length", 0)
        self.log = RaftLog([st[("log", i)] for i in range(1, n + 1)])
        self._note_role(ctx)
        self._reset_election_timer(ctx)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        term = getattr(msg, "term", None)
        # Figure 2, "Rules for Servers / All Servers": a higher term in any RPC
        # request or response makes us a follower of that term.
        if term is not None and term > self.current_term:
            self._become_follower(ctx, term)
        handler = self._MESSAGE_HANDLERS.get(type(msg))
        if handler is None:
            raise TypeError(f"{self.node_id} got a message it does not understand: {msg!r}")
        handler(self, ctx, src, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        self._TIMER_HANDLERS[name](self, ctx)

    # ------------------------------------------------------------------
    # Public operations (called through Simulator.call)
    # ------------------------------------------------------------------
    def submit(self, ctx: Context, command: Any) -> tuple[int, int] | None:
        """Append ``command`` if this server leads: ``(index, term)``, else ``None`` (§5.3)."""
        if self.role is not Role.LEADER:
            return None
        return self._append_new(ctx, command), self.current_term

    def start_election(self, ctx: Context) -> None:
        """Become a candidate for the next term now, as if the election timer fired (§5.2)."""
        self.role = Role.CANDIDATE
        self.current_term += 1
        self.voted_for = self.node_id
        self.leader_id = None
        self.votes = {self.node_id}
        self._pending.clear()
        ctx.persist("current_term", self.current_term)
        ctx.persist("voted_for", self.voted_for)
        ctx.cancel_timer(HEARTBEAT_TIMER)
        self._note_role(ctx)
        self._reset_election_timer(ctx)
        if len(self.votes) >= self.quorum:  # a cluster of one
            self._become_leader(ctx)
            return
        req = RequestVote(self.current_term, self.node_id, self.log.last_index, self.log.last_term)
        for p in self.peers:
            ctx.send(p, req)

    # ------------------------------------------------------------------
    # Role changes
    # ------------------------------------------------------------------
    def _note_role(self, ctx: Context) -> None:
        ctx.note("role", role=self.role.value, term=self.current_term)

    def _reset_election_timer(self, ctx: Context) -> None:
        # A fresh random timeout from now (§5.2). Followers reset it on every
        # AppendEntries, so instead of replacing the simulator timer each time
        # (one dead heap entry per message) we move a deadline and re-arm the
        # timer only when the new deadline is earlier than the armed one.
        low, high = self.config.election_timeout
        now = ctx.now
        self._election_deadline = deadline = now + ctx.random.uniform(low, high)
        if not self._election_armed_at <= deadline or self._election_armed_at < now:
            ctx.set_timer(ELECTION_TIMER, deadline - now)
            self._election_armed_at = deadline

    def _become_follower(self, ctx: Context, term: int) -> None:
        was_leader = self.role is Role.LEADER
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None
            self.leader_id = None
            ctx.persist("current_term", term)
            ctx.persist("voted_for", None)
        self.role = Role.FOLLOWER
        self._pending.clear()  # clients retry; another leader will answer
        self._note_role(ctx)
        if was_leader:
            ctx.cancel_timer(HEARTBEAT_TIMER)
            self._reset_election_timer(ctx)

    def _become_leader(self, ctx: Context) -> None:
        # Invariant: called only by a candidate holding votes from a majority of current_term.
        self.role = Role.LEADER
        self.leader_id = self.node_id
        nxt = self.log.last_index + 1
        self.next_index = dict.fromkeys(self.peers, nxt)
        self.match_index = dict.fromkeys(self.peers, 0)
        self._inflight = dict.fromkeys(self.peers)
        ctx.cancel_timer(ELECTION_TIMER)
        self._election_armed_at = -math.inf
        self._election_deadline = math.inf
        self._note_role(ctx)
        if self.config.noop:
            self._append_new(ctx, NOOP)
        else:
            for p in self.peers:
                self._send_append(ctx, p)
        ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat_interval)

    # ------------------------------------------------------------------
    # Timers
    # ------------------------------------------------------------------
    def _on_election_timeout(self, ctx: Context) -> None:
        # Followers and candidates: no word from a leader (or no win) in time (§5.2).
        self._election_armed_at = -math.inf
        if self.role is Role.LEADER:
            return
        if ctx.now < self._election_deadline:  # reset since armed: wait for the rest
            ctx.set_timer(ELECTION_TIMER, self._election_deadline - ctx.now)
            self._election_armed_at = self._election_deadline
            return
        self.start_election(ctx)

    def _on_heartbeat(self, ctx: Context) -> None:
        # Leaders: idle AppendEntries keep followers from timing out (§5.2);
        # they also resend whatever a lost message failed to deliver.
        if self.role is not Role.LEADER:
            return
        now, interval = ctx.now, self.config.heartbeat_interval
        for p in self.peers:
            outstanding = self._inflight[p]
            if outstanding is None or now - outstanding[1] >= interval:
                self._send_append(ctx, p)  # idle, or unanswered for a whole interval: (re)send
            else:
                self._send_heartbeat(ctx, p)  # entries are on their way; just say "still here"
        ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat_interval)

    # ------------------------------------------------------------------
    # RequestVote (§5.2, §5.4.1)
    # ------------------------------------------------------------------
    def _log_is_up_to_date(self, last_log_term: int, last_log_index: int) -> bool:
        """§5.4.1: the later last term wins; with equal last terms, the longer log."""
        if last_log_term != self.log.last_term:
            return last_log_term > self.log.last_term
        return last_log_index >= self.log.last_index

    def _on_request_vote(self, ctx: Context, src: str, m: RequestVote) -> None:
        free = self.voted_for in (None, m.candidate_id) or Bug.VOTE_TWICE in self.bugs
        grant = (
            m.term == self.current_term
            and free
            and self._log_is_up_to_date(m.last_log_term, m.last_log_index)
        )
        if grant:
            self.voted_for = m.candidate_id
            ctx.persist("voted_for", m.candidate_id)  # before the reply leaves
            self._reset_election_timer(ctx)
        ctx.send(src, RequestVoteReply(self.current_term, grant))

    def _on_request_vote_reply(self, ctx: Context, src: str, m: RequestVoteReply) -> None:
        if self.role is not Role.CANDIDATE or m.term != self.current_term or not m.vote_granted:
            return
        self.votes.add(src)
        if len(self.votes) >= self.quorum:
            self._become_leader(ctx)

    # ------------------------------------------------------------------
    # AppendEntries (§5.3)
    # ------------------------------------------------------------------
    def _append_new(self, ctx: Context, command: Any) -> int:
        self.log.append((LogEntry(self.current_term, command),))
        index = self.log.last_index
        ctx.persist(("log", index), self.log[index])
        ctx.persist("log_length", index)
        inflight = self._inflight
        for p in self.peers:
            if inflight[p] is None:  # otherwise it travels with the next message
                self._send_append(ctx, p)
        self._advance_commit(ctx)  # a cluster of one commits alone
        return index

    def _send_append(self, ctx: Context, peer: str) -> None:
        # The log from next_index on (at most max_entries of it), §5.3.
        prev = self.next_index[peer] - 1
        log = self.log
        entries = log.entries(prev + 1, self.config.max_entries)
        ctx.send(
            peer,
            AppendEntries(self.current_term, self.node_id, prev, log.term(prev), entries, self.commit_index),
        )
        self._inflight[peer] = (prev + len(entries), ctx.now) if entries else None

    def _send_heartbeat(self, ctx: Context, peer: str) -> None:
        # An AppendEntries without entries at next_index - 1: the same
        # consistency check, and it carries the commit index (§5.3).
        prev = self.next_index[peer] - 1
        ctx.send(
            peer,
            AppendEntries(self.current_term, self.node_id, prev, self.log.term(prev), (), self.commit_index),
        )

    def _on_append_entries(self, ctx: Context, src: str, m: AppendEntries) -> None:
        term, prev = self.current_term, m.prev_log_index
        if m.term < term:
            # A stale leader: our term tells it to step down; no hint (conflict_index 0).
            ctx.send(src, AppendEntriesReply(term, False, m.term, prev))
            return
        # m.term == current_term: src is this term's leader.
        if self.role is not Role.FOLLOWER:
            self._become_follower(ctx, m.term)
        self.leader_id = m.leader_id
        self._reset_election_timer(ctx)
        log = self.log
        last = log.last_index
        if prev > last:
            ctx.send(src, AppendEntriesReply(term, False, term, prev, conflict_index=last + 1))
            return
        ct = log.term(prev)
        if ct != m.prev_log_term:
            # Fast backtracking: name the conflicting term and where it starts,
            # so the leader can skip the whole term in one round trip.
            ctx.send(
                src,
                AppendEntriesReply(
                    term, False, term, prev, conflict_index=log.first_index_of_term(prev), conflict_term=ct
                ),
            )
            return
        # The logs match up to prev. Append what is new; truncate only on a real
        # conflict (a late, shorter AppendEntries must not cut off newer entries).
        entries = m.entries
        for k, e in enumerate(entries):
            i = prev + 1 + k
            if i <= last:
                if log.term(i) == e.term:
                    continue
                log.truncate(i - 1)
            new = entries[k:]
            log.append(new)
            for j, entry in enumerate(new, i):
                ctx.persist(("log", j), entry)
            ctx.persist("log_length", log.last_index)
            break
        match = prev + len(entries)  # the index of the last new entry (Figure 2)
        # Figure 2: "if leaderCommit > commitIndex, set commitIndex =
        # min(leaderCommit, index of last new entry)". Only ever raise it: a
        # late or stale message (a heartbeat built from an old next_index) may
        # name a last new entry below what this server already knows committed.
        # Invariant: commit_index never decreases while the server is up.
        new_commit = min(m.leader_commit, match)
        if new_commit > self.commit_index:
            self.commit_index = new_commit
            self._apply(ctx)
        ctx.send(src, AppendEntriesReply(term, True, term, prev, match_index=match))

    def _on_append_entries_reply(self, ctx: Context, src: str, m: AppendEntriesReply) -> None:
        if self.role is not Role.LEADER or m.term != self.current_term:
            return
        if m.success:
            match = m.match_index
            if match > self.match_index[src]:
                self.match_index[src] = match
                self._advance_commit(ctx)
            if match >= self.next_index[src]:
                self.next_index[src] = match + 1
            outstanding = self._inflight[src]
            if outstanding is not None and match < outstanding[0]:
                return  # an answer to an earlier message; the outstanding one is still on its way
            # Nothing outstanding now: whatever was appended meanwhile goes in one message.
            if self.next_index[src] <= self.log.last_index:
                self._send_append(ctx, src)
            else:
                self._inflight[src] = None
            return
        # §5.3: a failure says "my log does not match yours at prev_log_index",
        # so the leader steps next_index back and tries again. That is news only
        # for the request the leader would send now: one of this term, probing
        # at next_index - 1. Any other failure answers an older request (a stale
        # term's rejection, a duplicate, one overtaken by a reply that already
        # moved next_index); acting on it would move next_index by stale advice
        # and resend entries that are still on their way. The request it names
        # has been answered or superseded, so it is ignored; a request that is
        # really lost is resent by the heartbeat timer.
        if m.request_term != self.current_term or m.prev_log_index != self.next_index[src] - 1:
            return
        if m.conflict_term is None:
            nxt = m.conflict_index
        else:
            last = self.log.last_index_of_term(m.conflict_term)
            nxt = last + 1 if last else m.conflict_index
        self.next_index[src] = min(max(nxt, self.match_index[src] + 1, 1), self.log.last_index + 1)
        self._send_append(ctx, src)

    def _advance_commit(self, ctx: Context) -> None:
        """Leader: commit the highest index stored on a majority, if of this term (§5.4.2)."""
        matches = sorted((self.log.last_index, *self.match_index.values()), reverse=True)
        n = matches[self._quorum - 1]
        if n <= self.commit_index:
            return
        # Figure 8: an entry of an earlier term is committed only indirectly,
        # by committing an entry of the current term after it.
        if self.log.term(n) != self.current_term and Bug.COMMIT_PRIOR_TERM not in self.bugs:
            return
        self.commit_index = n
        self._apply(ctx)

    def _apply(self, ctx: Context) -> None:
        # Invariant: entries are applied once each, in index order, up to commit_index.
        limit = min(self.commit_index, self.log.last_index)
        sm = self.state_machine
        while self.last_applied < limit:
            self.last_applied += 1
            entry = self.log[self.last_applied]
            cmd = entry.command
            result = None
            if cmd is not NOOP:
                result = sm.apply(cmd)
                self.applied.append(cmd)
            waiting = self._pending.pop(self.last_applied, None)
            if waiting is not None and waiting[2] == entry.term:
                ctx.send(waiting[0], ClientReply(waiting[1], True, result))

    # ------------------------------------------------------------------
    # Clients (§8)
    # ------------------------------------------------------------------
    def _on_client_request(self, ctx: Context, src: str, m: ClientRequest) -> None:
        if Bug.STALE_READS in self.bugs and m.op[0] == "get":
            ctx.send(src, ClientReply(m.seq, True, self.state_machine.query(m.op)))
            return
        if self.role is not Role.LEADER:
            ctx.send(src, ClientReply(m.seq, False, leader_hint=self.leader_id))
            return
        seen, result = self.state_machine.duplicate(m.client, m.seq)
        if seen:
            ctx.send(src, ClientReply(m.seq, True, result))
            return
        index = self._append_new(ctx, KVCommand(m.client, m.seq, m.op))
        if self.last_applied < index:
            self._pending[index] = (src, m.seq, self.current_term)

    def _on_client_reply(self, ctx: Context, src: str, m: ClientReply) -> None:
        raise TypeError(f"{self.node_id} is a server and does not expect client replies")

    # ------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------
    def check_invariants(self) -> list[str]:
        """This server's own invariants; returns a description of each one broken."""
        out = []
        if not self.last_applied <= self.commit_index:
            out.append(f"{self.node_id}: last_applied {self.last_applied} > commit_index {self.commit_index}")
        if self.role is Role.LEADER:
            if self.voted_for != self.node_id:
                out.append(f"{self.node_id}: leads term {self.current_term} without having voted for itself")
            for p, m in self.match_index.items():
                if not m < self.next_index[p] <= self.log.last_index + 1:
                    out.append(f"{self.node_id}: next_index[{p}]={self.next_index[p]} vs match_index {m}")
        terms = self.log.terms()
        if any(a > b for a, b in zip(terms, terms[1:], strict=False)):
            out.append(f"{self.node_id}: log terms decrease somewhere: {terms}")
        if terms and terms[-1] > self.current_term:
            out.append(f"{self.node_id}: log holds term {terms[-1]} > current_term {self.current_term}")
        return out

    def __repr__(self) -> str:
        return (
            f"RaftNode({self.node_id!r}, {self.role.value}, term={self.current_term}, "
            f"log={self.log.last_index}, commit={self.commit_index})"
        )


RaftNode._MESSAGE_HANDLERS = {
    RequestVote: RaftNode._on_request_vote,
    RequestVoteReply: RaftNode._on_request_vote_reply,
    AppendEntries: RaftNode._on_append_entries,
    AppendEntriesReply: RaftNode._on_append_entries_reply,
    ClientRequest: RaftNode._on_client_request,
    ClientReply: RaftNode._on_client_reply,
}
RaftNode._TIMER_HANDLERS = {
    ELECTION_TIMER: RaftNode._on_election_timeout,
    HEARTBEAT_TIMER: RaftNode._on_heartbeat,
}
