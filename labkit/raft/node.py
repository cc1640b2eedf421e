"""A Raft server as a sans-IO state machine (extended Raft paper, §5 and Figure 2).

:class:`RaftCore` is Figure 2 and nothing else: leader election (§5.2), log
replication (§5.3) and the safety restrictions of §5.4: a vote only for a
candidate whose log is at least as up-to-date (§5.4.1), and a leader counts
replicas only for entries of its *current* term (§5.4.2, Figure 8). A new
leader appends a no-op entry (§8) so that earlier entries commit as soon as
possible. Read it beside Figure 2: each handler is one box or one rule of the
figure and quotes it. The mechanics live beside the rules: the log's append
and truncate in :mod:`labkit.raft.log`, a leader's per-follower
``next_index`` / ``match_index``, flow control and stale-reply filtering in
:mod:`labkit.raft.progress`. Deliberately broken variants for teaching are
subclasses in :mod:`labkit.raft.bugs`; the checks of Figure 3 are in
:mod:`labkit.raft.invariants`.

What production Rafts add comes after the core, one mixin class each, switched
by :class:`RaftConfig` where it changes behaviour (Ongaro's dissertation is
cited as "diss."); each extends a few of the core's steps by overriding them
and calling ``super()``, so the core's rules stay as the figure has them:

* :class:`LogCompaction` (§7, Figure 13): snapshots and InstallSnapshot
  (``snapshot_threshold``; bookkeeping in :mod:`labkit.raft.snapshot`);
* :class:`HeartbeatRounds`: rounds of heartbeats, which a leader counts to know a
  majority still follows it (diss. §6.4); :class:`LeaderReads` builds ReadIndex
  and leases on them (``read_mode``; mechanics in :mod:`labkit.raft.reads`);
* :class:`PreVoteAndCheckQuorum` (diss. §9.6, §6.2, ``pre_vote``,
  ``check_quorum``, with the vote-refusal rule of diss. §4.2.3);
* :class:`MembershipChanges`: one server at a time, new servers catching up as
  learners (diss. chapter 4; mechanics in :mod:`labkit.raft.membership`);
* :class:`LeadershipTransfer` (diss. §3.10).

:class:`RaftNode` is the core with all of them; :func:`labkit.raft.servers.server_class`
builds the core with only those a configuration uses (as :class:`RaftCluster` does).

Durability (Figure 2, "Persistent state on all servers"): ``current_term``,
``voted_for`` and the log (and the latest snapshot) are written with
``ctx.persist`` before any message that depends on them is sent. The
simulator's :class:`~labkit.sim.Effects` applies persists before sends, so a
vote or an acknowledgement is never forgotten by a crash. ``commit_index``,
``last_applied`` and the leader's progress per follower are volatile and
rebuilt after a restart.

Time: election and heartbeat timers are the driver's timers; every "how long
since" a rule asks (the lease, CheckQuorum, whether a leader was heard from
lately, a learner's catch-up round) is measured on the server's own clock,
``ctx.clock()``, which the simulator can skew and make drift.

Dispatch follows etcd's raft: one table from message type to the method
holding its rule, one from timer name to method (each class adds its own);
the role decides inside a handler only where Figure 2 itself distinguishes roles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from labkit import validation as valid
from labkit.raft import snapshot as snapshots
from labkit.raft.log import RaftLog
from labkit.raft.membership import CatchUp, Membership, Outcome, single_server_change
from labkit.raft.messages import (
    NOOP,
    AppendEntries,
    AppendEntriesReply,
    ClientReply,
    ClientRequest,
    Configuration,
    InstallSnapshot,
    InstallSnapshotReply,
    KVCommand,
    LogEntry,
    NoOp,
    PreVote,
    PreVoteReply,
    RequestVote,
    RequestVoteReply,
    Snapshot,
    TimeoutNow,
)
from labkit.raft.progress import Progress, quorum_match_index
from labkit.raft.reads import PendingRead, ReadMode, ReadQueue, Rounds
from labkit.raft.state_machine import KVStore, StateMachine
from labkit.sim import Context, Node

__all__ = [
    "RaftConfig",
    "RaftCore",
    "RaftNode",
    "ReadMode",
    "Role",
    "ELECTION_TIMER",
    "HEARTBEAT_TIMER",
    "SNAPSHOT_TIMER",
    "QUORUM_TIMER",
    "TRANSFER_TIMER",
]

ELECTION_TIMER = "election"
HEARTBEAT_TIMER = "heartbeat"
SNAPSHOT_TIMER = "snapshot"
QUORUM_TIMER = "check-quorum"
TRANSFER_TIMER = "transfer"

# Commands that are Raft's own: they are in the log but never reach the state machine.
RAFT_COMMANDS = (NoOp, Configuration)


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
    a no-op entry (§8). ``max_inflight`` is how many AppendEntries with entries
    a leader may have on their way to one follower (1: one at a time; more
    streams them, as etcd's raft does on real networks; see
    :mod:`labkit.raft.progress`).

    What production Rafts add, all off by default (the plain algorithm of the paper):

    * ``snapshot_threshold``: a server snapshots its state machine and compacts
      its log once that many applied entries pile up (§7); None never compacts;
    * ``snapshot_chunk_size``: the most bytes of a snapshot one InstallSnapshot
      carries (Figure 13's chunks). The default, 64 KiB, is far more than any
      snapshot of the course's runs holds (the Raft tests' largest is under
      1 KiB), so there a snapshot travels in one chunk; set it small to watch
      one arrive in pieces;
    * ``pre_vote``: ask for pre-votes before raising the term (diss. §9.6);
    * ``check_quorum``: a leader that has not heard from a majority for an
      election timeout steps down, and a server that has heard from a leader
      within the minimum election timeout ignores vote requests (diss. §6.2,
      §9.6, §4.2.3);
    * ``read_mode``: how a leader answers reads (:class:`ReadMode`: through the
      log, ReadIndex or lease; diss. §6.4). ``LEASE`` needs ``check_quorum``;
    * ``max_clock_drift``: the bound a lease trusts, as a fraction (0.01: any
      clock gains or loses at most 1 % against true time, diss. §6.4.1);
    * ``catch_up_rounds``: how many rounds a new server gets to catch up
      before the leader gives up adding it (diss. §4.2.1).
    """

    election_timeout: tuple[float, float] = (0.15, 0.30)
    heartbeat_interval: float = 0.05
    max_entries: int = 64
    noop: bool = True
    snapshot_threshold: int | None = None
    snapshot_chunk_size: int = snapshots.DEFAULT_CHUNK_SIZE
    pre_vote: bool = False
    check_quorum: bool = False
    read_mode: ReadMode = ReadMode.LOG
    max_clock_drift: float = 0.01
    catch_up_rounds: int = 10
    max_inflight: int = 1

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
        valid.integer("snapshot_threshold", self.snapshot_threshold, ge=1, none=True)
        valid.integer(
            "snapshot_chunk_size", self.snapshot_chunk_size, ge=1, le=snapshots.MAX_CHUNK_SIZE, note="bytes"
        )
        valid.boolean("pre_vote", self.pre_vote)
        valid.boolean("check_quorum", self.check_quorum)
        mode = valid.enum_member("read_mode", self.read_mode, ReadMode)
        drift = valid.number("max_clock_drift", self.max_clock_drift, ge=0, lt=1, note="a fraction")
        valid.integer("catch_up_rounds", self.catch_up_rounds, ge=1)
        valid.integer("max_inflight", self.max_inflight, ge=1)
        if mode is ReadMode.LEASE and not self.check_quorum:
            raise ValueError(
                "read_mode LEASE needs check_quorum=True: a lease holds only if followers refuse to vote "
                "while they hear from a leader (diss. §4.2.3, §6.4.1)"
            )
        object.__setattr__(self, "election_timeout", (low, high))
        object.__setattr__(self, "heartbeat_interval", hb)
        object.__setattr__(self, "read_mode", mode)
        object.__setattr__(self, "max_clock_drift", drift)

    @property
    def lease_duration(self) -> float:
        """How long a confirmed round of heartbeats lets a leader serve lease reads, on its own clock.

        No follower that acknowledged the round votes for another leader until
        the minimum election timeout has passed on *its* clock (diss. §4.2.3).
        The leader's clock may run slow by ``max_clock_drift`` and a follower's
        fast by as much, so the lease is the minimum election timeout shrunk by
        both (diss. §6.4.1).
        """
        d = self.max_clock_drift
        return self.election_timeout[0] * (1 - d) / (1 + d)


class RaftCore(Node):
    """One Raft server with the rules of Figure 2 only. Field names follow Figure 2.

    Persistent: ``current_term``, ``voted_for``, ``log`` (a 1-based
    :class:`RaftLog`). Volatile: ``commit_index``, ``last_applied``; on
    leaders ``progress``, one :class:`~labkit.raft.progress.Progress` per peer
    holding its ``next_index`` and ``match_index``. Also kept: ``role``,
    ``leader_id`` (who this server believes leads, for client redirects),
    ``state_machine`` and ``applied`` (the commands of the log this server
    applied since it started, no-ops left out).

    The cluster is ``peers`` as given to the constructor: ``voters`` all of
    them, ``peers`` the others, ``quorum`` a majority (:class:`MembershipChanges`
    lets them change).

    Where each box of Figure 2 is:

    * State: the attributes above; ``next_index`` and ``match_index`` read
      ``progress``; :meth:`init_leader_state` reinitializes them after election.
    * AppendEntries RPC, receiver steps 1-5: :meth:`handle_append_entries`.
    * RequestVote RPC, receiver steps 1-2: :meth:`handle_request_vote`.
    * Rules for Servers, All Servers: "apply log[lastApplied]" is
      :meth:`apply_committed`; "term T > currentTerm: convert to follower" is
      :meth:`on_message` with :meth:`become_follower`.
    * Followers: :meth:`handle_election_timeout`; the election timer is reset
      on hearing from the leader (:meth:`recognize_leader`) and on granting a
      vote (:meth:`handle_request_vote`).
    * Candidates: :meth:`start_election`, :meth:`handle_request_vote_reply`
      (majority), :meth:`recognize_leader` (AppendEntries from the new leader),
      :meth:`handle_election_timeout` (start a new election).
    * Leaders: :meth:`become_leader` and :meth:`send_heartbeats` (heartbeats),
      :meth:`handle_client_request` and :meth:`append_new_entry` (client
      commands), :meth:`send_append_entries` (entries from nextIndex),
      :meth:`handle_append_entries_reply` (update, or decrement nextIndex and
      retry), :meth:`advance_commit_index` with :meth:`may_commit` (the commit
      rule).

    A few small steps that are no rule of their own (:meth:`recover_log`,
    :meth:`persist_log`, :meth:`append_entries`, :meth:`stop_leading`,
    :meth:`replicated`) exist so that the extension classes below can extend
    them; in the core they do only what their docstrings say.
    """

    # Each message type and timer with the method holding its rule. Subclasses
    # (the extensions, the teaching bugs, a learner's variant) add rules or
    # override methods; the tables follow.
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
        messages: dict[type, str] = {}
        timers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            messages.update(vars(klass).get("MESSAGE_RULES", {}))
            timers.update(vars(klass).get("TIMER_RULES", {}))
        cls._on_message = {t: getattr(cls, name) for t, name in messages.items()}
        cls._on_timer = {t: getattr(cls, name) for t, name in timers.items()}

    def __init__(
        self,
        node_id: str,
        peers: Iterable[str],
        config: RaftConfig | None = None,
        state_machine: Callable[[], StateMachine] = KVStore,
    ) -> None:
        super().__init__(node_id)
        if isinstance(peers, (str, bytes)) or not isinstance(peers, Iterable):
            raise valid.ArgumentTypeError(
                f"peers must be a collection of server ids, got {valid.shown(peers)}"
            )
        servers = tuple(dict.fromkeys(valid.string("peers[i]", p) for p in peers))
        self.config = valid.instance("config", config, RaftConfig, none=True) or RaftConfig()
        if not callable(state_machine):
            raise valid.ArgumentTypeError(
                f"state_machine must be a factory, got {valid.shown(state_machine)}"
            )
        self.use_servers(Configuration(servers))
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
        self._voter_progress: list[Progress] = []
        self._waiting: dict[int, tuple[str, int, int]] = {}  # log index -> (client, seq, term)
        self.state_machine: StateMachine = state_machine()
        self.applied: list[Any] = []

    def use_servers(self, conf: Configuration) -> None:
        """Who votes (``voters``, this server among them or not), who gets the log (``peers``) and
        how many make a majority (``quorum``)."""
        self.voters = conf.voters
        self.is_voter = self.node_id in conf.voters
        self.peers = tuple(s for s in conf.members if s != self.node_id)
        self.quorum = len(conf.voters) // 2 + 1

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
        self.recover_log(st)
        self._note_role(ctx)
        self.reset_election_timer(ctx)

    def recover_log(self, storage: Any) -> None:
        """The log as persisted: entries 1 to ``log_length``."""
        length = storage.get("log_length", 0)
        self.log = RaftLog(storage[("log", i)] for i in range(1, length + 1))

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        """All Servers: "If RPC request or response contains term T > currentTerm: set currentTerm = T,
        convert to follower (§5.1)"; then the message's own rule (``MESSAGE_RULES``)."""
        term = getattr(msg, "term", None)
        if term is not None and term > self.current_term:
            self.become_follower(ctx, term)
        rule = self._on_message.get(type(msg))
        if rule is None:
            raise TypeError(f"{self.node_id} got a message it does not understand: {msg!r}")
        rule(self, ctx, src, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        """A timer went off: run the rule named for it (``TIMER_RULES``)."""
        self._on_timer[name](self, ctx)

    def submit(self, ctx: Context, command: Any) -> tuple[int, int] | None:
        """Append ``command`` if this server leads: ``(index, term)``, else ``None`` (§5.3).
        Called through ``Simulator.call``."""
        if self.role is not Role.LEADER:
            return None
        return self.append_new_entry(ctx, command), self.current_term

    # ------------------------------------------------------------------
    # Elections (§5.2)
    # ------------------------------------------------------------------
    def handle_election_timeout(self, ctx: Context) -> None:
        """Followers and candidates: "If election timeout elapses without receiving AppendEntries
        RPC from current leader or granting vote to candidate: convert to candidate" (Figure 2);
        Candidates: "If election timeout elapses: start new election".

        The timer runs out only if nothing reset it: hearing from the leader
        (:meth:`recognize_leader`) or granting a vote (:meth:`handle_request_vote`)
        does."""
        if self.role is not Role.LEADER:
            self.start_election(ctx)

    def start_election(self, ctx: Context, transfer: bool = False) -> None:
        """Candidates: "On conversion to candidate, start election" (Figure 2, §5.2).

        Increment currentTerm; vote for self; reset election timer; send
        RequestVote RPCs to all other servers (the voters).

        ``transfer`` belongs to an extension, not to Figure 2: only
        :class:`LeadershipTransfer` sets it, after a TimeoutNow, so that the
        requests say the leader asked for this election (diss. §3.10, §4.2.3).
        """
        # Figure 2 never makes a leader a candidate, but RaftCluster.start_election may:
        # such a leader steps down first, as it would for a newer term.
        if self.role is Role.LEADER:
            self.stop_leading(ctx)
        self._waiting.clear()  # clients retry; the next leader will answer
        self.role = Role.CANDIDATE
        self.current_term += 1  # increment currentTerm
        self.voted_for = self.node_id  # vote for self
        self.leader_id = None
        self.votes = {self.node_id}
        ctx.persist("current_term", self.current_term)
        ctx.persist("voted_for", self.voted_for)
        self._note_role(ctx)
        self.reset_election_timer(ctx)  # reset election timer
        if self.has_quorum(self.votes):  # a cluster of one
            self.become_leader(ctx)
            return
        # Send RequestVote RPCs to all other servers.
        req = RequestVote(self.current_term, self.node_id, self.log.last_index, self.log.last_term, transfer)
        for p in self.voters:
            if p != self.node_id:
                ctx.send(p, req)

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
        # 1. A newer term was adopted on arrival (on_message), so any other term is < currentTerm.
        # 2. votedFor is null or candidateId, and the candidate's log is at least as up-to-date.
        grant = (
            m.term == self.current_term
            and self.may_vote_for(m.candidate_id)
            and self._log_is_up_to_date(m.last_log_term, m.last_log_index)
        )
        if grant:
            self.voted_for = m.candidate_id
            ctx.persist("voted_for", m.candidate_id)  # before the reply leaves
            self.reset_election_timer(ctx)  # Followers: granting a vote resets the election timer
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
        if self.has_quorum(self.votes):
            self.become_leader(ctx)

    def has_quorum(self, servers: set[str]) -> bool:
        """Whether ``servers`` include a majority of the voters."""
        return sum(1 for v in self.voters if v in servers) >= self.quorum

    # ------------------------------------------------------------------
    # Role changes
    # ------------------------------------------------------------------
    def become_follower(self, ctx: Context, term: int) -> None:
        """All Servers: "set currentTerm = T, convert to follower (§5.1)": adopt ``term`` if it is
        newer (a new term has no vote cast yet) and follow. A leader stepping down restarts its
        election timer, which leaders do not run."""
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
            self.leader_id = None
            self.stop_leading(ctx)
            self.reset_election_timer(ctx)

    def stop_leading(self, ctx: Context) -> None:
        """A leader steps down: no more heartbeats (the extensions stop their leader-only work here)."""
        ctx.cancel_timer(HEARTBEAT_TIMER)

    def become_leader(self, ctx: Context) -> None:
        """Leaders: "Upon election: send initial empty AppendEntries RPCs (heartbeat) to each server"
        (Figure 2). With ``noop`` the first AppendEntries carries the new term's no-op entry (§8)."""
        # Invariant: called only by a candidate holding votes from a majority of current_term.
        self.role = Role.LEADER
        self.leader_id = self.node_id
        self.init_leader_state(ctx)
        ctx.cancel_timer(ELECTION_TIMER)
        self._note_role(ctx)
        if self.config.noop:
            self.append_new_entry(ctx, NOOP)
        else:
            for p in self.peers:
                self.send_append_entries(ctx, p)
        ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat_interval)

    def init_leader_state(self, ctx: Context) -> None:
        """Figure 2, "Volatile state on leaders (Reinitialized after election)": ``nextIndex`` just
        past the leader's last entry and ``matchIndex`` 0 for each peer."""
        self.progress = {p: Progress(self.log.last_index + 1, self.config.max_inflight) for p in self.peers}
        self._voter_progress = [self.progress[v] for v in self.voters if v in self.progress]

    def _note_role(self, ctx: Context) -> None:
        ctx.note("role", role=self.role.value, term=self.current_term)

    # ------------------------------------------------------------------
    # Log replication, leader side (§5.3)
    # ------------------------------------------------------------------
    def append_new_entry(self, ctx: Context, command: Any) -> int:
        """Leaders: "If command received from client: append entry to local log" (§5.3); returns its index.

        Then "If last log index >= nextIndex for a follower: send AppendEntries
        RPC": followers with no AppendEntries on its way get it at once; for the
        others it travels with the next message (:mod:`labkit.raft.progress`).
        """
        entry = LogEntry(self.current_term, command)
        self.log.append((entry,))
        index = self.log.last_index
        self.persist_log(ctx, index, (entry,))
        for p, pr in self.progress.items():
            if not pr.busy:
                self.send_append_entries(ctx, p)
        self.advance_commit_index(ctx)  # a cluster of one commits alone
        return index

    def append_entries(self, prev: int, entries: tuple[LogEntry, ...]) -> AppendEntries:
        """The AppendEntries RPC carrying ``entries`` after index ``prev`` (Figure 2, arguments)."""
        return AppendEntries(
            self.current_term, self.node_id, prev, self.log.term(prev), entries, self.commit_index
        )

    def send_append_entries(self, ctx: Context, peer: str) -> None:
        """Leaders: "If last log index >= nextIndex for a follower: send AppendEntries RPC
        with log entries starting at nextIndex" (at most ``max_entries`` of them, §5.3)."""
        pr = self.progress[peer]
        prev = pr.next_index - 1
        entries = self.log.entries(pr.next_index, self.config.max_entries)
        ctx.send(peer, self.append_entries(prev, entries))
        pr.sent(prev, len(entries), ctx.now)

    def send_heartbeat(self, ctx: Context, peer: str) -> None:
        """An AppendEntries without entries: the same consistency check at ``nextIndex - 1``, and
        the commit index."""
        ctx.send(peer, self.append_entries(self.progress[peer].next_index - 1, ()))

    def send_heartbeats(self, ctx: Context) -> None:
        """Leaders: "send initial empty AppendEntries RPCs (heartbeat) to each server; repeat during
        idle periods to prevent election timeouts (§5.2)"; this is the repeat, every
        ``heartbeat_interval``."""
        if self.role is not Role.LEADER:
            return
        self.broadcast_append_entries(ctx)
        ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat_interval)

    def broadcast_append_entries(self, ctx: Context) -> None:
        """An AppendEntries to every follower now: a heartbeat to one with entries on their way,
        what it lacks to the others (which also resends a message presumed lost)."""
        now, interval = ctx.now, self.config.heartbeat_interval
        for p, pr in self.progress.items():
            if pr.awaiting_answer(now, interval):
                self.send_heartbeat(ctx, p)
            else:
                self.send_append_entries(ctx, p)

    def handle_append_entries_reply(self, ctx: Context, src: str, m: AppendEntriesReply) -> None:
        """Leaders (Figure 2): "If successful: update nextIndex and matchIndex for follower (§5.3)";
        "If AppendEntries fails because of log inconsistency: decrement nextIndex and retry (§5.3)"."""
        if self.role is not Role.LEADER or m.term != self.current_term:
            return
        pr = self.progress.get(src)
        if pr is None:  # no longer in the configuration
            return
        if m.success:
            if pr.update(m.match_index):  # update nextIndex and matchIndex
                self.replicated(ctx, src)  # (the commit rule may now hold further on)
            # Last log index >= nextIndex (entries appended meanwhile): send them.
            if pr.ready_for_more(m.match_index, self.log.last_index):
                self.send_append_entries(ctx, src)
        elif pr.answers_probe(m, self.current_term):  # a stale failure is ignored
            # Decrement nextIndex: past the follower's whole conflicting term at once (end of §5.3).
            pr.decrement_next_index(
                self.log.retry_index(m.conflict_index, m.conflict_term), self.log.last_index
            )
            self.send_append_entries(ctx, src)  # and retry

    def replicated(self, ctx: Context, peer: str) -> None:
        """``matchIndex`` of ``peer`` went up: the commit rule may now hold further on."""
        self.advance_commit_index(ctx)

    def advance_commit_index(self, ctx: Context) -> None:
        """Leaders: "If there exists an N such that N > commitIndex, a majority of matchIndex[i] >= N,
        and log[N].term == currentTerm: set commitIndex = N (§5.3, §5.4)."

        Only the highest N stored on a majority needs looking at: terms never
        decrease along the log, so if its term is not current, no lower one is.
        The majority is of the voters; a leader that is removing itself does
        not count its own log (diss. §4.2.2).
        """
        own = self.log.last_index if self.is_voter else 0
        # N: the highest index with a majority of matchIndex[i] >= N (the leader's own log counts).
        n = quorum_match_index(own, self._voter_progress, self.quorum)
        # N > commitIndex and log[N].term == currentTerm: set commitIndex = N.
        if n > self.commit_index and self.may_commit(n):
            self.commit_index = n
            self.apply_committed(ctx)

    def may_commit(self, index: int) -> bool:
        """Figure 8 (§5.4.2): an entry of an earlier term is committed only indirectly, by
        committing an entry of the current term after it."""
        return self.log.term(index) == self.current_term

    def committed_in_term(self) -> bool:
        """Whether this leader has committed an entry of its own term (then its commit index is
        at least every earlier leader's, §5.4.2 and §8). ReadIndex and membership changes wait for it."""
        return self.log.term(self.commit_index) == self.current_term

    # ------------------------------------------------------------------
    # Log replication, follower side (§5.3)
    # ------------------------------------------------------------------
    def handle_append_entries(self, ctx: Context, src: str, m: AppendEntries) -> None:
        """AppendEntries RPC, receiver implementation (Figure 2), steps 1-5.

        Every reply echoes the request's ``term`` and ``prev_log_index``, so the
        leader can tell it from a late answer to an older request
        (:mod:`labkit.raft.progress`), and its ``round``, which only
        :class:`HeartbeatRounds` uses (diss. §6.4; 0 in the core).
        """
        term, prev = self.current_term, m.prev_log_index
        # 1. Reply false if term < currentTerm (§5.1): our term tells a stale leader to step down.
        if m.term < term:
            ctx.send(src, AppendEntriesReply(term, False, m.term, prev, round=m.round))
            return
        self.recognize_leader(ctx, m.leader_id)
        # 2. Reply false if log doesn't contain an entry at prevLogIndex whose
        #    term matches prevLogTerm (§5.3); say where ours differs.
        if not self.log.matches(prev, m.prev_log_term):
            conflict_index, conflict_term = self.log.conflict_hint(prev)
            ctx.send(
                src,
                AppendEntriesReply(term, False, term, prev, 0, conflict_index, conflict_term, m.round),
            )
            return
        # 3.-4. Delete conflicting entries, append any new ones not already in the log.
        first_written = self.log.maybe_append(prev, m.entries)
        if first_written:
            self.persist_log(ctx, first_written, m.entries[first_written - prev - 1 :])
        # 5. "If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of
        #    last new entry)". Only ever raise it: a late message may name a last new entry
        #    below what this server already knows committed.
        last_new = prev + len(m.entries)
        leader_commit = min(m.leader_commit, last_new)
        if leader_commit > self.commit_index:
            self.commit_index = leader_commit
            self.apply_committed(ctx)
        ctx.send(src, AppendEntriesReply(term, True, term, prev, match_index=last_new, round=m.round))

    def recognize_leader(self, ctx: Context, leader_id: str) -> None:
        """A message from this term's leader. Candidates: "If AppendEntries RPC received from new
        leader: convert to follower" (Figure 2); followers hear from the leader: reset the election timer."""
        if self.role is not Role.FOLLOWER:
            self.become_follower(ctx, self.current_term)
        self.leader_id = leader_id
        self.reset_election_timer(ctx)

    def persist_log(self, ctx: Context, first: int, entries: tuple[LogEntry, ...]) -> None:
        """Write ``entries``, the log from index ``first`` to its end, and its length: Figure 2's
        persistent state is "updated on stable storage before responding to RPCs"."""
        for i, entry in enumerate(entries, first):
            ctx.persist(("log", i), entry)
        ctx.persist("log_length", self.log.last_index)

    # ------------------------------------------------------------------
    # The state machine and its clients (§5.3, §8)
    # ------------------------------------------------------------------
    def apply_committed(self, ctx: Context) -> None:
        """All servers: "If commitIndex > lastApplied: increment lastApplied, apply
        log[lastApplied] to state machine (§5.3)"; a leader then answers the client (§8)."""
        # Invariant: entries are applied once each, in index order, up to commit_index.
        # While commitIndex > lastApplied: increment lastApplied, apply log[lastApplied].
        limit = min(self.commit_index, self.log.last_index)
        for entry in self.log.entries(self.last_applied + 1, limit - self.last_applied):
            self.last_applied += 1
            result = None
            if not isinstance(entry.command, RAFT_COMMANDS):
                result = self.state_machine.apply(entry.command)
                self.applied.append(entry.command)
            # "Respond after entry applied to state machine", if the entry is still the client's
            # (same term: no other leader has put another entry at this index, §5.3).
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


RaftCore._bind_rules()


# ----------------------------------------------------------------------
# What production Rafts add. Each class extends the core's steps through
# super(); RaftNode, at the end, puts them together. They lean on one another
# where the thesis does: a snapshot records the configuration, InstallSnapshot
# carries the round of heartbeats, no change of membership during a transfer.
# ----------------------------------------------------------------------
class LogCompaction(RaftCore):
    """Log compaction (§7, Figures 12 and 13): snapshots, and InstallSnapshot for followers that
    lag behind. Persistent: ``snapshot``, the latest one (or None).

    Extends the core's :meth:`~RaftCore.apply_committed` (snapshot once enough
    entries are applied) and :meth:`~RaftCore.send_append_entries` (a follower
    whose next entry was discarded gets the snapshot, in chunks of at most
    ``snapshot_chunk_size`` bytes); replaces
    :meth:`~RaftCore.recover_log` (start from the snapshot) and
    :meth:`~RaftCore.send_heartbeat` (check at the snapshot's last entry at
    least); adds the InstallSnapshot rules of Figure 13. Leans on
    :class:`HeartbeatRounds` (InstallSnapshot carries the round of heartbeats) and
    :class:`MembershipChanges` (a snapshot holds the configuration).
    """

    MESSAGE_RULES: ClassVar[dict[type, str]] = {
        InstallSnapshot: "handle_install_snapshot",
        InstallSnapshotReply: "handle_install_snapshot_reply",
    }
    TIMER_RULES: ClassVar[dict[str, str]] = {SNAPSHOT_TIMER: "take_snapshot"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.snapshot: Snapshot | None = None
        # Volatile: the snapshot being gathered from a leader's chunks (Figure 13, steps 2-4).
        self.partial_snapshot: snapshots.PartialSnapshot | None = None
        self._encoded: tuple[Snapshot, bytes] | None = None  # the latest snapshot as bytes

    def recover_log(self, storage: Any) -> None:
        """With a snapshot the state machine starts from it, and everything it replaced counts as
        committed and applied."""
        self.snapshot, self.log = snapshots.load_log(storage)
        if self.snapshot is not None:
            self.state_machine.restore(self.snapshot.state)
            self.commit_index = self.last_applied = self.snapshot.last_included_index

    def apply_committed(self, ctx: Context) -> None:
        super().apply_committed(ctx)
        threshold = self.config.snapshot_threshold
        if threshold is not None and snapshots.due(threshold, self.last_applied, self.log):
            ctx.set_timer(SNAPSHOT_TIMER, 0.0)  # compaction runs as a step of its own (§7)

    def take_snapshot(self, ctx: Context) -> None:
        """§7: "Each server takes snapshots independently, covering just the committed entries in its
        log": the state machine's state at ``last_applied``, with the latest configuration as of that
        index, replaces the log up to there.

        It runs as a timer step of its own right after the apply that made it
        due (as real servers snapshot in the background, diss. ch. 5).
        """
        index = self.last_applied
        if index <= self.log.snapshot_index:
            return
        first = self.log.first_index
        s = Snapshot(index, self.log.term(index), self.state_machine.snapshot(), self.membership.at(index))
        self._forget_applied(first, index)
        self.log.compact(index)
        self.membership.compacted(index)
        self.snapshot = s
        snapshots.persist_snapshot(ctx, s, first, index)
        ctx.note("snapshot", index=index, term=s.last_included_term)

    def _forget_applied(self, first: int, last: int) -> None:
        """Drop from ``applied`` the commands of the entries ``first..last`` (a snapshot replaces them)."""
        count = sum(1 for e in self.log[first : last + 1] if not isinstance(e.command, RAFT_COMMANDS))
        del self.applied[:count]

    def send_append_entries(self, ctx: Context, peer: str) -> None:
        """Leaders (§7): "the leader must occasionally send snapshots to followers that lag behind",
        those whose next entry it has already discarded; a snapshot begun goes on to its last chunk."""
        pr = self.progress[peer]
        if pr.transfer is None and pr.next_index > self.log.snapshot_index:
            super().send_append_entries(ctx, peer)
            return
        assert self.snapshot is not None, "a log compacted without a snapshot"
        if pr.transfer is None or pr.transfer.superseded_by(self.snapshot):
            pr.transfer = snapshots.Transfer(
                self.snapshot, self.snapshot_data(), self.config.snapshot_chunk_size
            )
        self.send_snapshot_chunk(ctx, peer)

    def send_snapshot_chunk(self, ctx: Context, peer: str) -> None:
        """Figure 13, arguments: the chunk of the snapshot that starts at ``offset``, ``done`` on the
        last one. "Leaders always send chunks in order" (Figure 13): the next leaves when this one
        is answered (:class:`~labkit.raft.snapshot.Transfer`)."""
        pr = self.progress[peer]
        t = pr.transfer
        assert t is not None, "no snapshot on its way"
        offset, data, done = t.chunk()
        ctx.send(
            peer,
            InstallSnapshot(
                self.current_term,
                self.node_id,
                t.last_included_index,
                t.last_included_term,
                offset,
                data,
                done,
                self.rounds.current,
            ),
        )
        pr.sent_snapshot(t.last_included_index, ctx.now)

    def snapshot_data(self) -> bytes:
        """The latest snapshot as bytes (:func:`~labkit.raft.snapshot.encode`), written once per
        snapshot, when a follower first needs it."""
        if self._encoded is None or self._encoded[0] is not self.snapshot:
            assert self.snapshot is not None, "no snapshot to encode"
            self._encoded = (self.snapshot, snapshots.encode(self.snapshot))
        return self._encoded[1]

    def send_heartbeat(self, ctx: Context, peer: str) -> None:
        # With a snapshot on its way, the check is at the snapshot's last entry at least.
        prev = max(self.progress[peer].next_index - 1, self.log.snapshot_index)
        ctx.send(peer, self.append_entries(prev, ()))

    def handle_install_snapshot(self, ctx: Context, src: str, m: InstallSnapshot) -> None:
        """InstallSnapshot RPC, receiver implementation (Figure 13).

        1. Reply immediately if term < currentTerm.
        2. Create new snapshot file if first chunk (offset is 0).
        3. Write data into snapshot file at given offset.
        4. Reply and wait for more data chunks if done is false.
        5. Save snapshot file, discard any existing or partial snapshot with a smaller index.
        6. If existing log entry has same index and term as snapshot's last included entry,
           retain log entries following it and reply.
        7. Discard the entire log.
        8. Reset state machine using snapshot contents (and load snapshot's cluster configuration).

        The file being gathered is ``partial_snapshot``, volatile state
        (:class:`~labkit.raft.snapshot.PartialSnapshot` says why losing it in a
        crash is safe). Every reply echoes the request and says how many bytes of
        this snapshot are gathered (``stored``: where the next chunk must start);
        ``done`` says this server now holds everything up to the snapshot's last
        included entry. Steps 5-8 are :meth:`install_snapshot`.
        """
        # 1. Reply immediately if term < currentTerm: our term tells a stale leader to step down.
        if m.term < self.current_term:
            ctx.send(src, self.snapshot_reply(m, stored=0, done=False))
            return
        self.recognize_leader(ctx, m.leader_id)
        # (A snapshot of entries this server has committed already, repeated or older, brings
        # nothing: as in step 6 the log stays, and the state machine, which may have applied
        # more, must not go back. Reply at once that it holds all of it.)
        if m.last_included_index <= self.commit_index:
            ctx.send(src, self.snapshot_reply(m, stored=0, done=True))
            return
        # 2. Create new snapshot file if first chunk (offset is 0), not if it repeats the file's first.
        if snapshots.starts_new_file(self.partial_snapshot, m):
            self.partial_snapshot = snapshots.PartialSnapshot(m)
        # 3. Write data into snapshot file at given offset: only where the file ends, so that a
        #    duplicate, a chunk after a lost one, or a chunk of another snapshot changes nothing.
        file = self.partial_snapshot
        written = file is not None and file.write(m)
        # 4. Reply and wait for more data chunks if done is false (or the chunk was not written).
        if file is None or not (written and m.done):
            stored = file.stored(m) if file is not None else 0
            ctx.send(src, self.snapshot_reply(m, stored=stored, done=False))
            return
        # 5.-8. Save snapshot file, discard any partial one; keep or discard the log; reset the state machine.
        self.partial_snapshot = None
        self.install_snapshot(ctx, file.snapshot())
        ctx.send(src, self.snapshot_reply(m, stored=len(file.data), done=True))

    def snapshot_reply(self, m: InstallSnapshot, stored: int, done: bool) -> InstallSnapshotReply:
        """The answer to ``m``: this server's term (Figure 13's result), the request echoed, and where
        the transfer stands."""
        return InstallSnapshotReply(
            self.current_term, m.term, m.last_included_index, m.offset, stored, done, m.round
        )

    def install_snapshot(self, ctx: Context, s: Snapshot) -> None:
        """Figure 13, receiver steps 5-8, for a whole snapshot ``s`` whose last included entry this
        server has not committed.

        The state machine is reset whether the log after the snapshot is kept or
        not: the entries up to its last included one leave the log, and this
        server had not applied them all.
        """
        index = s.last_included_index
        first, last = self.log.first_index, self.log.last_index
        # 6. If existing log entry has same index and term as snapshot's last included entry,
        #    retain log entries following it; 7. otherwise discard the entire log.
        kept = self.log.restore(index, s.last_included_term)
        # 5. Save snapshot file (it replaces this server's older one) and forget the entries it replaces.
        self.snapshot = s
        snapshots.persist_snapshot(ctx, s, first, index if kept else last)
        if not kept:
            ctx.persist("log_length", index)
        # 8. Reset state machine using snapshot contents (and load snapshot's cluster configuration).
        self.state_machine.restore(s.state)
        self.commit_index = self.last_applied = index
        self.applied = []
        self.membership.restored(s.configuration, index, self.log)
        self.use_configuration(ctx)
        ctx.note("snapshot", index=index, term=s.last_included_term)

    def handle_install_snapshot_reply(self, ctx: Context, src: str, m: InstallSnapshotReply) -> None:
        """Leaders (§7): once the follower holds everything up to the snapshot's last included entry,
        go on with AppendEntries after it; until then, send the chunk it needs next."""
        if self.role is not Role.LEADER or m.term != self.current_term:
            return
        pr = self.progress.get(src)
        if pr is None:  # no longer in the configuration
            return
        if m.round > self.rounds.confirmed and m.request_term == self.current_term:
            self.acknowledged(ctx, src, m.round)
        if m.done:
            if pr.update(m.last_included_index):  # (this ends the transfer)
                self.replicated(ctx, src)
            if pr.ready_for_more(m.last_included_index, self.log.last_index):
                self.send_append_entries(ctx, src)
        elif pr.answers_chunk(m, self.current_term):  # the chunk on its way arrived, or was refused
            self.send_snapshot_chunk(ctx, src)


class HeartbeatRounds(RaftCore):
    """Rounds of heartbeats (diss. §6.4).

    Each heartbeat begins a new round; every AppendEntries carries the current
    round and every answer echoes it, so the leader learns when a majority
    still followed it after a round began (:class:`~labkit.raft.reads.Rounds`).
    That serves ReadIndex and the lease (:class:`LeaderReads`), CheckQuorum
    and the choice of whom to hand leadership to.

    Replaces the core's :meth:`~RaftCore.append_entries` (the message carries
    the round); extends :meth:`~RaftCore.send_heartbeats` (each begins a round),
    :meth:`~RaftCore.handle_append_entries_reply` (count who answered) and
    :meth:`~RaftCore.init_leader_state`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rounds = Rounds(0.0)  # rounds of heartbeats (diss. §6.4)

    def init_leader_state(self, ctx: Context) -> None:
        super().init_leader_state(ctx)
        self.rounds = Rounds(ctx.clock())

    def append_entries(self, prev: int, entries: tuple[LogEntry, ...]) -> AppendEntries:
        return AppendEntries(
            self.current_term,
            self.node_id,
            prev,
            self.log.term(prev),
            entries,
            self.commit_index,
            self.rounds.current,
        )

    def send_heartbeats(self, ctx: Context) -> None:
        """Each heartbeat begins a new round (diss. §6.4): the answers keep the leader's lease and
        CheckQuorum's count of recent contact fresh."""
        if self.role is Role.LEADER:
            self.start_round(ctx)
        super().send_heartbeats(ctx)

    def handle_append_entries_reply(self, ctx: Context, src: str, m: AppendEntriesReply) -> None:
        """Any answer to this term's request also shows ``src`` still follows this leader (diss. §6.4)."""
        if (
            self.role is Role.LEADER
            and m.term == m.request_term == self.current_term
            and src in self.progress
            and m.round > self.rounds.confirmed  # (an answer to a confirmed round adds nothing)
        ):
            self.acknowledged(ctx, src, m.round)
        super().handle_append_entries_reply(ctx, src, m)

    def start_round(self, ctx: Context) -> int:
        """Begin a new round of heartbeats (diss. §6.4); the leader answers for itself at once."""
        round_ = self.rounds.begin(ctx.clock())
        self.acknowledged(ctx, self.node_id, round_)
        return round_

    def acknowledged(self, ctx: Context, server: str, round_: int) -> None:
        """``server`` answered a message of round ``round_`` in this term: it followed this leader after
        that round began. Once a majority has, the round is confirmed (:meth:`round_confirmed`)."""
        if self.rounds.ack(server, round_, self.voters, self.node_id, self.quorum):
            self.round_confirmed(ctx)

    def round_confirmed(self, ctx: Context) -> None:
        """A majority followed this leader after a newer round began (:class:`LeaderReads` answers
        the reads waiting for it)."""


class LeaderReads(HeartbeatRounds):
    """Reads without the log (§8; diss. §6.4): ReadIndex and leases, on rounds of heartbeats.

    Extends the core's :meth:`~RaftCore.handle_client_request` (reads may skip
    the log), :meth:`~RaftCore.apply_committed` (answer reads whose index is
    applied), :meth:`~RaftCore.init_leader_state` and
    :meth:`~RaftCore.stop_leading`, and :meth:`HeartbeatRounds.round_confirmed`
    (answer reads waiting for that round). Leans on :class:`LeadershipTransfer`
    (no lease during a transfer).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reads = ReadQueue()  # reads answered without the log

    def init_leader_state(self, ctx: Context) -> None:
        super().init_leader_state(ctx)
        self.reads.clear()

    def stop_leading(self, ctx: Context) -> None:
        super().stop_leading(ctx)
        self.reads.clear()

    def handle_client_request(self, ctx: Context, src: str, m: ClientRequest) -> None:
        """Reads may skip the log (``read_mode``, diss. §6.4)."""
        if (
            self.role is Role.LEADER
            and self.config.read_mode is not ReadMode.LOG
            and self.state_machine.is_read(m.op)
        ):
            self.serve_read(ctx, src, m)
        else:
            super().handle_client_request(ctx, src, m)

    def apply_committed(self, ctx: Context) -> None:
        super().apply_committed(ctx)
        if self.reads.waiting:
            self.answer_reads(ctx)

    def round_confirmed(self, ctx: Context) -> None:
        if self.reads.waiting:
            self.answer_reads(ctx)

    def serve_read(self, ctx: Context, src: str, m: ClientRequest) -> None:
        """Diss. §6.4, ReadIndex: (1) once it has committed an entry of its own term, the leader
        notes its commit index as the read index; (2) it makes sure no newer leader exists with a
        new round of heartbeats that a majority acknowledges; (3) it waits until its state machine
        has applied the read index; (4) it answers from its state machine.

        Step 1 waits, if need be, until the leader has committed an entry of its
        term. A lease (diss. §6.4.1) replaces step 2 while it lasts.
        """
        read_index = self.commit_index if self.committed_in_term() else None
        if self.config.read_mode is ReadMode.LEASE and read_index is not None and self.holds_lease(ctx):
            round_ = None
        else:
            round_ = self.start_round(ctx)
            self.broadcast_append_entries(ctx)
        self.reads.add(PendingRead(src, m.seq, m.op, read_index, round_))
        self.answer_reads(ctx)

    def answer_reads(self, ctx: Context) -> None:
        """Answer each waiting read whose round is confirmed and whose read index is applied."""
        if self.committed_in_term():
            self.reads.set_read_index(self.commit_index)
        for r in self.reads.ready(self.rounds.confirmed, self.last_applied):
            ctx.send(r.client, ClientReply(r.seq, True, self.state_machine.query(r.op)))

    def holds_lease(self, ctx: Context) -> bool:
        """Diss. §6.4.1: after a round confirmed by a majority, no other leader can be elected for
        the minimum election timeout, less what clocks may drift (``lease_duration``), measured on
        this leader's clock from the start of that round. No lease while handing leadership over:
        the new leader's election does not wait (diss. §3.10, §6.4.1)."""
        return self.transfer is None and ctx.clock() < self.rounds.confirmed_at + self.config.lease_duration


class PreVoteAndCheckQuorum(RaftCore):
    """PreVote (diss. §9.6) and CheckQuorum (diss. §6.2) with disruptive servers' votes refused
    (diss. §4.2.3): a server that cannot win does not disrupt a working leader, and a leader that
    lost its majority steps down.

    Extends the core's :meth:`~RaftCore.on_message` (a disruptive vote request is
    dropped before the All Servers term rule sees it),
    :meth:`~RaftCore.handle_election_timeout` (a pre-vote before the election),
    :meth:`~RaftCore.recognize_leader` (note when the leader was last heard),
    :meth:`~RaftCore.start_election`, :meth:`~RaftCore.become_follower`,
    :meth:`~RaftCore.become_leader` and :meth:`~RaftCore.stop_leading`. Leans on
    :class:`HeartbeatRounds` (CheckQuorum counts its rounds of heartbeats).
    """

    MESSAGE_RULES: ClassVar[dict[type, str]] = {
        PreVote: "handle_pre_vote",
        PreVoteReply: "handle_pre_vote_reply",
    }
    TIMER_RULES: ClassVar[dict[str, str]] = {QUORUM_TIMER: "check_quorum"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watch_leader = self.config.pre_vote or self.config.check_quorum
        self.leader_contact = -1e18  # when this server last heard from leader_id (its clock)
        self.pre_votes: set[str] = set()  # while asking for pre-votes

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        # Diss. §4.2.3 (with CheckQuorum): a vote request while a leader is heard is ignored, term and all.
        if type(msg) is RequestVote and self.ignores_vote_request(ctx, msg):
            return
        super().on_message(ctx, src, msg)

    def handle_election_timeout(self, ctx: Context) -> None:
        """With ``pre_vote`` a pre-vote comes before the election (diss. §9.6)."""
        if self.config.pre_vote and self.role is not Role.LEADER:
            self.start_pre_vote(ctx)
        else:
            super().handle_election_timeout(ctx)

    def start_election(self, ctx: Context, transfer: bool = False) -> None:
        self.pre_votes = set()
        super().start_election(ctx, transfer)

    def become_follower(self, ctx: Context, term: int) -> None:
        self.pre_votes = set()
        super().become_follower(ctx, term)

    def recognize_leader(self, ctx: Context, leader_id: str) -> None:
        super().recognize_leader(ctx, leader_id)
        if self._watch_leader:  # only PreVote and CheckQuorum ask when the leader was last heard
            self.leader_contact = ctx.clock()
            self.pre_votes.clear()  # (a pre-vote under way is over: there is a leader)

    def become_leader(self, ctx: Context) -> None:
        super().become_leader(ctx)
        if self.config.check_quorum:
            ctx.set_timer(QUORUM_TIMER, self.config.heartbeat_interval)

    def stop_leading(self, ctx: Context) -> None:
        super().stop_leading(ctx)
        ctx.cancel_timer(QUORUM_TIMER)

    def start_pre_vote(self, ctx: Context) -> None:
        """Diss. §9.6, PreVote: before a real election, ask the voters whether they would vote for
        this server in the next term; only if a majority says yes does it raise its term and
        campaign. Its term stays put meanwhile, so a server that cannot win (cut off, or behind)
        never drives the cluster's term up."""
        self.pre_votes = {self.node_id}
        self.reset_election_timer(ctx)
        if self.has_quorum(self.pre_votes):
            self.start_election(ctx)
            return
        req = PreVote(self.current_term + 1, self.node_id, self.log.last_index, self.log.last_term)
        for p in self.voters:
            if p != self.node_id:
                ctx.send(p, req)

    def handle_pre_vote(self, ctx: Context, src: str, m: PreVote) -> None:
        """Diss. §9.6: a server agrees if the candidate's log is at least as up-to-date as its own
        (§5.4.1) and it has not heard from a valid leader for at least a baseline election timeout
        (diss. §4.2.3 gives real votes the same heartbeat rule). It changes no state either way."""
        grant = (
            m.next_term > self.current_term
            and not self.hears_from_leader(ctx)
            and self._log_is_up_to_date(m.last_log_term, m.last_log_index)
        )
        ctx.send(src, PreVoteReply(self.current_term, grant, m.next_term))

    def handle_pre_vote_reply(self, ctx: Context, src: str, m: PreVoteReply) -> None:
        """Pre-candidates: with pre-votes from a majority, start the real election (diss. §9.6)."""
        if not self.pre_votes or m.next_term != self.current_term + 1 or not m.vote_granted:
            return
        self.pre_votes.add(src)
        if self.has_quorum(self.pre_votes):
            self.start_election(ctx)

    def hears_from_leader(self, ctx: Context) -> bool:
        """Whether this server heard from a leader within the minimum election timeout (a leader hears itself)."""
        if self.role is Role.LEADER:
            return True
        return (
            self.leader_id is not None and ctx.clock() - self.leader_contact < self.config.election_timeout[0]
        )

    def check_quorum(self, ctx: Context) -> None:
        """Diss. §6.2, CheckQuorum: a leader steps down once an election timeout has passed without
        a round of heartbeats that a majority of the cluster answered, so a leader cut off in a
        minority stops accepting requests it can never commit."""
        if self.role is not Role.LEADER:
            return
        if ctx.clock() - self.rounds.confirmed_at >= self.config.election_timeout[0]:
            ctx.note("check-quorum", confirmed_at=self.rounds.confirmed_at)
            self.become_follower(ctx, self.current_term)
            return
        ctx.set_timer(QUORUM_TIMER, self.config.heartbeat_interval)

    def ignores_vote_request(self, ctx: Context, m: RequestVote) -> bool:
        """Diss. §4.2.3 (with ``check_quorum``): a server that has heard from a current leader within
        the minimum election timeout neither updates its term nor grants its vote on a RequestVote,
        unless the leader itself asked for the election (diss. §3.10)."""
        return (
            self.config.check_quorum
            and m.term > self.current_term
            and not m.leadership_transfer
            and self.hears_from_leader(ctx)
        )


class MembershipChanges(RaftCore):
    """Membership changes, one server at a time (diss. chapter 4).

    ``membership`` tracks the latest configuration in the log, committed or
    not, which this server uses at once (diss. §4.1): ``voters``, ``peers``
    and ``quorum`` follow it. The first configuration is ``peers`` as given to
    the constructor; a server that is not in it starts outside the cluster,
    waiting to be added (diss. §4.2.1). ``catching_up``: the learners a leader
    is bringing up to date.

    Extends the core's :meth:`~RaftCore.persist_log` (a configuration is used as
    soon as it is in the log), :meth:`~RaftCore.recover_log`,
    :meth:`~RaftCore.handle_election_timeout` (non-voters never campaign),
    :meth:`~RaftCore.advance_commit_index` (a committed configuration),
    :meth:`~RaftCore.replicated` (a learner's round of catching up),
    :meth:`~RaftCore.init_leader_state` and :meth:`~RaftCore.stop_leading`.
    Leans on :class:`LogCompaction`, where there is one (the configuration in a snapshot),
    and :class:`LeadershipTransfer` (no change during a transfer).
    """

    snapshot: Snapshot | None = None  # LogCompaction's latest snapshot; a server without it has none

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.membership = Membership(Configuration(self.voters))
        self.catching_up: dict[str, CatchUp] = {}  # learners being brought up to date (diss. §4.2.1)

    @property
    def configuration(self) -> Configuration:
        """The latest configuration in this server's log, committed or not (diss. §4.1)."""
        return self.membership.current

    def recover_log(self, storage: Any) -> None:
        super().recover_log(storage)
        s = self.snapshot
        if s is not None:
            self.membership.restored(s.configuration, s.last_included_index, self.log)
        else:
            self.membership.logged(1, self.log)
        self.use_servers(self.membership.current)

    def persist_log(self, ctx: Context, first: int, entries: tuple[LogEntry, ...]) -> None:
        """A configuration takes effect as soon as it is in the log, or leaves with it (diss. §4.1)."""
        super().persist_log(ctx, first, entries)
        if self.membership.logged(first, entries):
            self.use_configuration(ctx)

    def handle_election_timeout(self, ctx: Context) -> None:
        """A server that is not a voter never campaigns (diss. §4.2.1)."""
        if self.is_voter or self.role is Role.LEADER:
            super().handle_election_timeout(ctx)
        else:
            self.reset_election_timer(ctx)

    def init_leader_state(self, ctx: Context) -> None:
        super().init_leader_state(ctx)
        now = ctx.clock()
        self.catching_up = {s: CatchUp(s, self.log.last_index, now) for s in self.configuration.learners}

    def stop_leading(self, ctx: Context) -> None:
        super().stop_leading(ctx)
        self.catching_up.clear()

    def advance_commit_index(self, ctx: Context) -> None:
        """A committed configuration may remove this leader, or let a learner become a voter."""
        before = self.commit_index
        super().advance_commit_index(ctx)
        if self.commit_index > before and (self.catching_up or not self.is_voter):
            self.configuration_committed(ctx)

    def replicated(self, ctx: Context, peer: str) -> None:
        """``peer``'s log grew: it may be a learner finishing a round of catching up (diss. §4.2.1)."""
        super().replicated(ctx, peer)
        cu = self.catching_up.get(peer)
        if cu is not None and cu.outcome is None and self.progress[peer].match_index >= cu.round_end:
            low = self.config.election_timeout[0]
            cu.reached(ctx.clock(), self.log.last_index, low, self.config.catch_up_rounds)
            self.promote_learners(ctx)

    def add_server(self, ctx: Context, server: str) -> bool:
        """Diss. §4.2.1: a new server joins as a learner: it receives the log but neither votes nor
        counts for commitment, and becomes a voter once it has caught up. False if this server cannot
        start a change now (not the leader, or the previous change is not committed yet)."""
        valid.string("server", server)
        conf = self.configuration
        if server in conf.members:
            raise ValueError(f"server {server!r} is already in the configuration {conf!r}")
        new = Configuration(conf.voters, (*conf.learners, server))
        if not self.change_configuration(ctx, new):
            return False
        self.catching_up[server] = CatchUp(server, self.log.last_index, ctx.clock())
        return True

    def remove_server(self, ctx: Context, server: str) -> bool:
        """Diss. §4.2.2: append a configuration without ``server``. A leader may remove itself: it
        steps down once that entry is committed. False if this server cannot start a change now."""
        valid.string("server", server)
        conf = self.configuration
        if server not in conf.members:
            raise ValueError(f"server must be one of {', '.join(conf.members)}, got {server!r}")
        voters = tuple(v for v in conf.voters if v != server)
        if not voters:
            raise ValueError(f"removing {server!r} would leave no voters")
        return self.change_configuration(
            ctx, Configuration(voters, tuple(s for s in conf.learners if s != server))
        )

    def change_configuration(self, ctx: Context, new: Configuration) -> bool:
        """Append configuration ``new`` if this leader may start a change now (diss. §4.1): the previous
        configuration is committed, and so is an entry of this term (the fix Ongaro posted to the
        raft-dev list in 2015). ``new`` must be a single-server change (:meth:`may_change_configuration`)."""
        old = self.configuration
        if not self.may_change_configuration(old, new):
            raise ValueError(
                f"{new!r} adds or removes more than one voter of {old!r}: change one server at a time "
                "(diss. §4.1)"
            )
        if not self.can_start_change():
            return False
        self.append_new_entry(ctx, new)
        return True

    def can_start_change(self) -> bool:
        """Whether this server leads and no configuration change is under way."""
        return (
            self.role is Role.LEADER
            and self.transfer is None
            and self.membership.index <= self.commit_index
            and self.committed_in_term()
        )

    def may_change_configuration(self, old: Configuration, new: Configuration) -> bool:
        """Diss. §4.1: one voter added or removed at a time, so every majority of the old voters
        shares a server with every majority of the new ones."""
        return single_server_change(old, new)

    def use_configuration(self, ctx: Context) -> None:
        """The latest configuration in the log changed: use it at once (diss. §4.1)."""
        before = (self.voters, self.peers)
        self.use_servers(self.membership.current)
        if (self.voters, self.peers) == before:
            return
        if self.role is Role.LEADER:
            for p in self.peers:
                if p not in self.progress:
                    self.progress[p] = Progress(self.log.last_index + 1, self.config.max_inflight)
                    self.send_append_entries(ctx, p)
            for p in [p for p in self.progress if p not in self.peers]:
                del self.progress[p]
                self.catching_up.pop(p, None)
            self._voter_progress = [self.progress[v] for v in self.voters if v in self.progress]
        conf = self.configuration
        ctx.note("configuration", voters=conf.voters, learners=conf.learners)

    def configuration_committed(self, ctx: Context) -> None:
        """The commit index moved: a leader removed by a committed configuration steps down
        (diss. §4.2.2); caught-up learners may now be made voters (diss. §4.2.1)."""
        if not self.is_voter and self.membership.index <= self.commit_index:
            self.become_follower(ctx, self.current_term)
        elif self.catching_up:
            self.promote_learners(ctx)

    def promote_learners(self, ctx: Context) -> None:
        """Diss. §4.2.1: a learner whose last round took less than an election timeout becomes a
        voter; one that needed too many rounds is removed. One change at a time."""
        for server, cu in list(self.catching_up.items()):
            if cu.outcome is None or not self.can_start_change():
                continue
            conf = self.configuration
            learners = tuple(s for s in conf.learners if s != server)
            voters = (*conf.voters, server) if cu.outcome is Outcome.PROMOTE else conf.voters
            del self.catching_up[server]
            ctx.note("catch-up", server=server, outcome=cu.outcome.value, rounds=cu.rounds)
            self.change_configuration(ctx, Configuration(voters, learners))


class LeadershipTransfer(RaftCore):
    """Leadership transfer (diss. §3.10): ``transfer`` is the server leadership is being handed to.

    Extends the core's :meth:`~RaftCore.submit` and
    :meth:`~RaftCore.handle_client_request` (no new commands meanwhile),
    :meth:`~RaftCore.replicated` (TimeoutNow once the target has caught up),
    :meth:`~RaftCore.init_leader_state` and :meth:`~RaftCore.stop_leading`; its
    TimeoutNow calls :meth:`~RaftCore.start_election` with ``transfer=True``.
    """

    MESSAGE_RULES: ClassVar[dict[type, str]] = {TimeoutNow: "handle_timeout_now"}
    TIMER_RULES: ClassVar[dict[str, str]] = {TRANSFER_TIMER: "abort_transfer"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transfer: str | None = None

    def init_leader_state(self, ctx: Context) -> None:
        super().init_leader_state(ctx)
        self.transfer = None

    def stop_leading(self, ctx: Context) -> None:
        super().stop_leading(ctx)
        self.transfer = None
        ctx.cancel_timer(TRANSFER_TIMER)

    def submit(self, ctx: Context, command: Any) -> tuple[int, int] | None:
        """A leader handing its leadership over takes nothing new (diss. §3.10)."""
        return None if self.transfer is not None else super().submit(ctx, command)

    def handle_client_request(self, ctx: Context, src: str, m: ClientRequest) -> None:
        """A leader handing its leadership over refuses, naming nobody (diss. §3.10)."""
        if self.role is Role.LEADER and self.transfer is not None:
            ctx.send(src, ClientReply(m.seq, False))
        else:
            super().handle_client_request(ctx, src, m)

    def replicated(self, ctx: Context, peer: str) -> None:
        super().replicated(ctx, peer)
        if peer == self.transfer:
            self.send_timeout_now(ctx)

    def transfer_leadership(self, ctx: Context, target: str) -> bool:
        """Diss. §3.10, leadership transfer: the leader stops accepting client requests, brings the
        target's log up to date with its own, then sends it a TimeoutNow. False if this server does
        not lead."""
        valid.string("target", target)
        if self.role is not Role.LEADER:
            return False
        if target == self.node_id or target not in self.voters:
            others = ", ".join(v for v in self.voters if v != self.node_id) or "none"
            raise ValueError(f"target must be another voter ({others}), got {target!r}")
        self.transfer = target
        ctx.set_timer(TRANSFER_TIMER, self.config.election_timeout[0])
        ctx.note("transfer", target=target)
        self.send_timeout_now(ctx)
        return True

    def send_timeout_now(self, ctx: Context) -> None:
        """Once the target's log matches the leader's, tell it to start an election (diss. §3.10)."""
        target = self.transfer
        pr = self.progress.get(target) if target is not None else None
        if pr is not None and pr.match_index == self.log.last_index:
            ctx.send(target, TimeoutNow(self.current_term, self.node_id))  # type: ignore[arg-type]

    def handle_timeout_now(self, ctx: Context, src: str, m: TimeoutNow) -> None:
        """Diss. §3.10: the target of a TimeoutNow starts an election at once, without a pre-vote,
        and its RequestVotes say the leader asked for it (diss. §4.2.3)."""
        if m.term == self.current_term and self.role is Role.FOLLOWER and self.is_voter:
            self.start_election(ctx, transfer=True)

    def abort_transfer(self, ctx: Context) -> None:
        """Diss. §3.10: a transfer that has not completed within about an election timeout is given
        up, and the leader takes client requests again."""
        if self.role is Role.LEADER and self.transfer is not None:
            ctx.note("transfer-aborted", target=self.transfer)
            self.transfer = None


class RaftNode(LeadershipTransfer, MembershipChanges, PreVoteAndCheckQuorum, LeaderReads, LogCompaction):
    """One Raft server: Figure 2 (:class:`RaftCore`) with everything production Rafts add, each
    part off until :class:`RaftConfig` switches it on (membership changes and leadership
    transfer happen only when asked for)."""
