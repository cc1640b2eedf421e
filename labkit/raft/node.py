"""A Raft server as a sans-IO state machine (extended Raft paper, §5 and Figure 2).

:class:`RaftNode` implements leader election (§5.2), log replication (§5.3)
and the safety restrictions of §5.4: a vote only for a candidate whose log
is at least as up-to-date (§5.4.1), and a leader counts replicas only for
entries of its *current* term (§5.4.2, Figure 8). A new leader appends a
no-op entry (§8) so that earlier entries commit as soon as possible.

Read it beside Figure 2. Each handler is one box or one rule of the figure
and quotes it; the mechanics live beside the rules: the log's append and
truncate in :mod:`labkit.raft.log`, a leader's per-follower ``next_index`` /
``match_index``, flow control and stale-reply filtering in
:mod:`labkit.raft.progress`. Deliberately broken variants for teaching are
subclasses in :mod:`labkit.raft.bugs`; the checks of Figure 3 are in
:mod:`labkit.raft.invariants`.

Durability (Figure 2, "Persistent state on all servers"): ``current_term``,
``voted_for`` and the log are written with ``ctx.persist`` before any message
that depends on them is sent. The simulator's :class:`~labkit.sim.Effects`
applies persists before sends, so a vote or an acknowledgement is never
forgotten by a crash. ``commit_index``, ``last_applied`` and the leader's
progress per follower are volatile and rebuilt after a restart.

Dispatch follows etcd's raft: one table from message type to the method
holding its rule, one from timer name to method; the role decides inside a
handler only where Figure 2 itself distinguishes roles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from labkit import validation as valid
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
from labkit.raft.progress import Progress, quorum_match_index
from labkit.raft.state_machine import KVStore, StateMachine
from labkit.sim import Context, Node

__all__ = ["RaftConfig", "RaftNode", "Role", "ELECTION_TIMER", "HEARTBEAT_TIMER"]

ELECTION_TIMER = "election"
HEARTBEAT_TIMER = "heartbeat"


class Role(Enum):
    """The three roles of a Raft server (§5.1, Figure 4)."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Timing and behaviour of a Raft server.

    ``election_timeout`` is the (low, high) range each timeout is drawn from
    (§5.2 suggests 150-300 ms); ``heartbeat_interval`` must be well below
    ``low`` so a healthy leader is never suspected. ``max_entries`` bounds how
    many entries one AppendEntries carries. ``noop`` makes a new leader append
    a no-op entry (§8).
    """

    election_timeout: tuple[float, float] = (0.15, 0.30)
    heartbeat_interval: float = 0.05
    max_entries: int = 64
    noop: bool = True

    def __post_init__(self) -> None:
        et = self.election_timeout
        if not isinstance(et, (tuple, list)) or len(et) != 2:
            raise TypeError(f"election_timeout must be a (low, high) pair of seconds, got {et!r}")
        low = valid.number("election_timeout low", et[0], gt=0, unit="seconds")
        high = valid.number("election_timeout high", et[1], ge=low, unit="seconds", note="low <= high")
        hb = valid.number("heartbeat_interval", self.heartbeat_interval, gt=0, unit="seconds")
        if hb >= low:
            raise ValueError(
                f"heartbeat_interval ({hb}) must be shorter than the election timeout's low end ({low}); "
                "otherwise followers time out on a healthy leader"
            )
        valid.integer("max_entries", self.max_entries, ge=1)
        valid.boolean("noop", self.noop)
        object.__setattr__(self, "election_timeout", (low, high))
        object.__setattr__(self, "heartbeat_interval", hb)


class RaftNode(Node):
    """One Raft server. Field names follow Figure 2.

    Persistent: ``current_term``, ``voted_for``, ``log`` (a 1-based :class:`RaftLog`).
    Volatile: ``commit_index``, ``last_applied``; on leaders ``progress``, one
    :class:`~labkit.raft.progress.Progress` per peer holding its ``next_index``
    and ``match_index``. Also kept: ``role``, ``leader_id`` (who this server
    believes leads, for client redirects), ``state_machine`` and ``applied``
    (the commands applied since the last restart, no-ops left out).
    """

    # Each message type and timer with the method holding its rule. Subclasses
    # (the teaching bugs, a learner's variant) override methods; the tables follow.
    MESSAGE_RULES: ClassVar[dict[type, str]] = {
        RequestVote: "handle_request_vote",
        RequestVoteReply: "handle_request_vote_reply",
        AppendEntries: "handle_append_entries",
        AppendEntriesReply: "handle_append_entries_reply",
        ClientRequest: "handle_client_request",
    }
    TIMER_RULES: ClassVar[dict[str, str]] = {
        ELECTION_TIMER: "handle_election_timeout",
        HEARTBEAT_TIMER: "send_heartbeats",
    }
    _on_message: ClassVar[dict[type, Callable[..., None]]]
    _on_timer: ClassVar[dict[str, Callable[..., None]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._bind_rules()

    @classmethod
    def _bind_rules(cls) -> None:
        cls._on_message = {t: getattr(cls, name) for t, name in cls.MESSAGE_RULES.items()}
        cls._on_timer = {t: getattr(cls, name) for t, name in cls.TIMER_RULES.items()}

    def __init__(
        self,
        node_id: str,
        peers: Iterable[str],
        config: RaftConfig | None = None,
        state_machine: Callable[[], StateMachine] = KVStore,
    ) -> None:
        super().__init__(node_id)
        # peers: the other servers' ids; config: a RaftConfig; state_machine: a factory.
        if isinstance(peers, (str, bytes)) or not isinstance(peers, Iterable):
            raise valid.ArgumentTypeError(
                f"peers must be a collection of server ids, got {valid.shown(peers)}"
            )
        self.peers = tuple(valid.string("peers[i]", p) for p in peers if p != node_id)
        self.quorum = (len(self.peers) + 1) // 2 + 1  # a majority of the whole cluster: votes or replicas
        self.config = valid.instance("config", config, RaftConfig, none=True) or RaftConfig()
        if not callable(state_machine):
            raise valid.ArgumentTypeError(
                f"state_machine must be a factory, got {valid.shown(state_machine)}"
            )
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
        # Leader state, reinitialized after election.
        self.progress: dict[str, Progress] = {}
        self._waiting: dict[int, tuple[str, int, int]] = {}  # log index -> (client, seq, term)
        self.state_machine: StateMachine = state_machine()
        self.applied: list[Any] = []

    @property
    def next_index(self) -> dict[str, int]:
        """Figure 2's ``nextIndex[]`` (leaders): for each peer, the next log entry to send it."""
        return {p: pr.next_index for p, pr in self.progress.items()}

    @property
    def match_index(self) -> dict[str, int]:
        """Figure 2's ``matchIndex[]`` (leaders): for each peer, the highest entry known replicated on it."""
        return {p: pr.match_index for p, pr in self.progress.items()}

    # ------------------------------------------------------------------
    # Driver entry points
    # ------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        """Boot or reboot: recover the persistent state, start as a follower (§5.2)."""
        st = ctx.storage
        self.current_term = st.get("current_term", 0)
        self.voted_for = st.get("voted_for")
        self.log = RaftLog(st[("log", i)] for i in range(1, st.get("log_length", 0) + 1))
        self._note_role(ctx)
        self.reset_election_timer(ctx)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        # Rules for Servers, All Servers: "If RPC request or response contains
        # term T > currentTerm: set currentTerm = T, convert to follower (§5.1)".
        term = getattr(msg, "term", None)
        if term is not None and term > self.current_term:
            self.become_follower(ctx, term)
        rule = self._on_message.get(type(msg))
        if rule is None:
            raise TypeError(f"{self.node_id} got a message it does not understand: {msg!r}")
        rule(self, ctx, src, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        self._on_timer[name](self, ctx)

    # ------------------------------------------------------------------
    # Public operations (called through Simulator.call)
    # ------------------------------------------------------------------
    def submit(self, ctx: Context, command: Any) -> tuple[int, int] | None:
        """Append ``command`` if this server leads: ``(index, term)``, else ``None`` (§5.3)."""
        if self.role is not Role.LEADER:
            return None
        return self.append_new_entry(ctx, command), self.current_term

    # ------------------------------------------------------------------
    # Elections (§5.2)
    # ------------------------------------------------------------------
    def start_election(self, ctx: Context) -> None:
        """Candidates: "On conversion to candidate, start election" (Figure 2, §5.2).

        Increment currentTerm; vote for self; reset election timer; send
        RequestVote RPCs to all other servers.
        """
        self.role = Role.CANDIDATE
        self.current_term += 1
        self.voted_for = self.node_id
        self.leader_id = None
        self.votes = {self.node_id}
        self._waiting.clear()
        ctx.persist("current_term", self.current_term)
        ctx.persist("voted_for", self.voted_for)
        ctx.cancel_timer(HEARTBEAT_TIMER)
        self._note_role(ctx)
        self.reset_election_timer(ctx)
        if len(self.votes) >= self.quorum:  # a cluster of one
            self.become_leader(ctx)
            return
        req = RequestVote(self.current_term, self.node_id, self.log.last_index, self.log.last_term)
        for p in self.peers:
            ctx.send(p, req)

    def handle_election_timeout(self, ctx: Context) -> None:
        """Followers and candidates: "If election timeout elapses without receiving AppendEntries
        RPC from current leader or granting vote to candidate: convert to candidate" (Figure 2);
        a candidate whose election times out starts a new one."""
        if self.role is not Role.LEADER:
            self.start_election(ctx)

    def reset_election_timer(self, ctx: Context) -> None:
        """A fresh random election timeout from now (§5.2: randomized, to make split votes rare)."""
        low, high = self.config.election_timeout
        ctx.set_timer(ELECTION_TIMER, ctx.random.uniform(low, high))

    def handle_request_vote(self, ctx: Context, src: str, m: RequestVote) -> None:
        """RequestVote RPC, receiver implementation (Figure 2).

        1. Reply false if term < currentTerm (§5.1).
        2. If votedFor is null or candidateId, and candidate's log is at least
           as up-to-date as receiver's log, grant vote (§5.2, §5.4).
        """
        grant = (
            m.term == self.current_term
            and self.may_vote_for(m.candidate_id)
            and self._log_is_up_to_date(m.last_log_term, m.last_log_index)
        )
        if grant:
            self.voted_for = m.candidate_id
            ctx.persist("voted_for", m.candidate_id)  # before the reply leaves
            self.reset_election_timer(ctx)  # granting a vote, too, restarts the timeout
        ctx.send(src, RequestVoteReply(self.current_term, grant))

    def may_vote_for(self, candidate_id: str) -> bool:
        """ "If votedFor is null or candidateId": one vote per term."""
        return self.voted_for is None or self.voted_for == candidate_id

    def _log_is_up_to_date(self, last_log_term: int, last_log_index: int) -> bool:
        """§5.4.1: the later last term wins; with equal last terms, the longer log."""
        if last_log_term != self.log.last_term:
            return last_log_term > self.log.last_term
        return last_log_index >= self.log.last_index

    def handle_request_vote_reply(self, ctx: Context, src: str, m: RequestVoteReply) -> None:
        """Candidates: "If votes received from majority of servers: become leader" (Figure 2)."""
        if self.role is not Role.CANDIDATE or m.term != self.current_term or not m.vote_granted:
            return
        self.votes.add(src)
        if len(self.votes) >= self.quorum:
            self.become_leader(ctx)

    # ------------------------------------------------------------------
    # Role changes
    # ------------------------------------------------------------------
    def become_follower(self, ctx: Context, term: int) -> None:
        """Step down: adopt ``term`` if it is newer (forgetting the vote) and follow (§5.1)."""
        was_leader = self.role is Role.LEADER
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None
            self.leader_id = None
            ctx.persist("current_term", term)
            ctx.persist("voted_for", None)
        self.role = Role.FOLLOWER
        self._waiting.clear()  # clients retry; another leader will answer
        self._note_role(ctx)
        if was_leader:
            ctx.cancel_timer(HEARTBEAT_TIMER)
            self.reset_election_timer(ctx)

    def become_leader(self, ctx: Context) -> None:
        """Leaders: "Upon election: send initial empty AppendEntries RPCs (heartbeat) to each server"
        (Figure 2), with ``nextIndex`` just past the leader's last entry and ``matchIndex`` 0.
        With ``noop`` the first AppendEntries carries the new term's no-op entry (§8)."""
        # Invariant: called only by a candidate holding votes from a majority of current_term.
        self.role = Role.LEADER
        self.leader_id = self.node_id
        self.progress = {p: Progress(self.log.last_index + 1) for p in self.peers}
        ctx.cancel_timer(ELECTION_TIMER)
        self._note_role(ctx)
        if self.config.noop:
            self.append_new_entry(ctx, NOOP)
        else:
            for p in self.peers:
                self.send_append_entries(ctx, p)
        ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat_interval)

    def _note_role(self, ctx: Context) -> None:
        ctx.note("role", role=self.role.value, term=self.current_term)

    # ------------------------------------------------------------------
    # Log replication, leader side (§5.3)
    # ------------------------------------------------------------------
    def append_new_entry(self, ctx: Context, command: Any) -> int:
        """Leaders: "If command received from client: append entry to local log" (§5.3); returns its index.

        Followers with no AppendEntries on its way get it at once; for the
        others it travels with the next message (:mod:`labkit.raft.progress`).
        """
        self.log.append((LogEntry(self.current_term, command),))
        index = self.log.last_index
        self._persist_log(ctx, index)
        for p, pr in self.progress.items():
            if not pr.busy:
                self.send_append_entries(ctx, p)
        self.advance_commit_index(ctx)  # a cluster of one commits alone
        return index

    def send_append_entries(self, ctx: Context, peer: str) -> None:
        """Leaders: "If last log index >= nextIndex for a follower: send AppendEntries RPC
        with log entries starting at nextIndex" (at most ``max_entries`` of them, §5.3)."""
        pr = self.progress[peer]
        prev = pr.next_index - 1
        entries = self.log.entries(pr.next_index, self.config.max_entries)
        ctx.send(
            peer,
            AppendEntries(
                self.current_term, self.node_id, prev, self.log.term(prev), entries, self.commit_index
            ),
        )
        pr.sent(prev, len(entries), ctx.now)

    def send_heartbeats(self, ctx: Context) -> None:
        """Leaders: send AppendEntries "during idle periods to prevent election timeouts (§5.2)".

        A follower with entries on their way gets an empty one (the same
        consistency check, and the commit index); the others get what they
        lack, which also resends a message presumed lost.
        """
        if self.role is not Role.LEADER:
            return
        now, interval = ctx.now, self.config.heartbeat_interval
        for p, pr in self.progress.items():
            if pr.awaiting_answer(now, interval):
                prev = pr.next_index - 1
                ctx.send(
                    p,
                    AppendEntries(
                        self.current_term, self.node_id, prev, self.log.term(prev), (), self.commit_index
                    ),
                )
            else:
                self.send_append_entries(ctx, p)
        ctx.set_timer(HEARTBEAT_TIMER, interval)

    def handle_append_entries_reply(self, ctx: Context, src: str, m: AppendEntriesReply) -> None:
        """Leaders (Figure 2): "If successful: update nextIndex and matchIndex for follower (§5.3).
        If AppendEntries fails because of log inconsistency: decrement nextIndex and retry (§5.3)."
        """
        if self.role is not Role.LEADER or m.term != self.current_term:
            return
        pr = self.progress[src]
        if m.success:
            if pr.update(m.match_index):
                self.advance_commit_index(ctx)
            if pr.ready_for_more(m.match_index, self.log.last_index):
                self.send_append_entries(ctx, src)
        elif pr.answers_probe(m, self.current_term):  # a stale failure is ignored
            # Decrement nextIndex: past the follower's whole conflicting term at once (end of §5.3).
            pr.decrement_next_index(
                self.log.retry_index(m.conflict_index, m.conflict_term), self.log.last_index
            )
            self.send_append_entries(ctx, src)

    def advance_commit_index(self, ctx: Context) -> None:
        """Leaders: "If there exists an N such that N > commitIndex, a majority of matchIndex[i] >= N,
        and log[N].term == currentTerm: set commitIndex = N (§5.3, §5.4)."

        Only the highest N stored on a majority needs looking at: terms never
        decrease along the log, so if its term is not current, no lower one is.
        """
        n = quorum_match_index(self.log.last_index, self.progress.values(), self.quorum)
        if n > self.commit_index and self.may_commit(n):
            self.commit_index = n
            self.apply_committed(ctx)

    def may_commit(self, index: int) -> bool:
        """Figure 8 (§5.4.2): an entry of an earlier term is committed only indirectly, by
        committing an entry of the current term after it."""
        return self.log.term(index) == self.current_term

    # ------------------------------------------------------------------
    # Log replication, follower side (§5.3)
    # ------------------------------------------------------------------
    def handle_append_entries(self, ctx: Context, src: str, m: AppendEntries) -> None:
        """AppendEntries RPC, receiver implementation (Figure 2)."""
        term, prev = self.current_term, m.prev_log_index
        # 1. Reply false if term < currentTerm (§5.1): our term tells a stale leader to step down.
        if m.term < term:
            ctx.send(src, AppendEntriesReply(term, False, m.term, prev))
            return
        # From this term's leader. Candidates: "If AppendEntries RPC received from new
        # leader: convert to follower"; followers hear from the leader: reset the election timer.
        if self.role is not Role.FOLLOWER:
            self.become_follower(ctx, m.term)
        self.leader_id = m.leader_id
        self.reset_election_timer(ctx)
        # 2. Reply false if log doesn't contain an entry at prevLogIndex whose
        #    term matches prevLogTerm (§5.3); say where ours differs.
        if not self.log.matches(prev, m.prev_log_term):
            conflict_index, conflict_term = self.log.conflict_hint(prev)
            ctx.send(src, AppendEntriesReply(term, False, term, prev, 0, conflict_index, conflict_term))
            return
        # 3.-4. Delete conflicting entries, append any new ones not already in the log.
        first_written = self.log.maybe_append(prev, m.entries)
        if first_written:
            self._persist_log(ctx, first_written)
        # 5. "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of
        #    last new entry)". Only ever raise it: a late message may name a last new entry
        #    below what this server already knows committed.
        last_new = prev + len(m.entries)
        if min(m.leader_commit, last_new) > self.commit_index:
            self.commit_index = min(m.leader_commit, last_new)
            self.apply_committed(ctx)
        ctx.send(src, AppendEntriesReply(term, True, term, prev, match_index=last_new))

    def _persist_log(self, ctx: Context, first: int) -> None:
        """Write the log from index ``first`` to its end, and its length."""
        for i, entry in enumerate(self.log.entries(first), first):
            ctx.persist(("log", i), entry)
        ctx.persist("log_length", self.log.last_index)

    # ------------------------------------------------------------------
    # The state machine and its clients (§5.3, §8)
    # ------------------------------------------------------------------
    def apply_committed(self, ctx: Context) -> None:
        """All servers: "If commitIndex > lastApplied: increment lastApplied, apply
        log[lastApplied] to state machine (§5.3)"; a leader then answers the client (§8)."""
        # Invariant: entries are applied once each, in index order, up to commit_index.
        limit = min(self.commit_index, self.log.last_index)
        for entry in self.log.entries(self.last_applied + 1, limit - self.last_applied):
            self.last_applied += 1
            result = None
            if entry.command is not NOOP:
                result = self.state_machine.apply(entry.command)
                self.applied.append(entry.command)
            waiting = self._waiting.pop(self.last_applied, None)
            if waiting is not None and waiting[2] == entry.term:
                ctx.send(waiting[0], ClientReply(waiting[1], True, result))

    def handle_client_request(self, ctx: Context, src: str, m: ClientRequest) -> None:
        """Leaders: "If command received from client: append entry to local log, respond after
        entry applied to state machine (§5.3)". Others name the leader they know (§8); a retried
        command is answered from the state machine's session table, not applied twice (§8)."""
        if self.role is not Role.LEADER:
            ctx.send(src, ClientReply(m.seq, False, leader_hint=self.leader_id))
            return
        seen, result = self.state_machine.duplicate(m.client, m.seq)
        if seen:
            ctx.send(src, ClientReply(m.seq, True, result))
            return
        # Remember who waits before appending: a cluster of one applies at once.
        self._waiting[self.log.last_index + 1] = (src, m.seq, self.current_term)
        self.append_new_entry(ctx, KVCommand(m.client, m.seq, m.op))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.node_id!r}, {self.role.value}, term={self.current_term}, "
            f"log={self.log.last_index}, commit={self.commit_index})"
        )


RaftNode._bind_rules()
