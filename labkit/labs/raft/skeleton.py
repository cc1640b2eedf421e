"""The skeleton of a Raft server for the lab (notebook 09): everything but Figure 2's rules.

A learner writes a subclass of :class:`RaftServer` and adds Figure 2's rules
to it, one per notebook cell::

    class MyRaft(RaftServer):
        pass

    @MyRaft.rule
    def start_election(self, ctx):
        ...

The skeleton gives what is *not* a rule of the paper:

* Figure 2's state under Figure 2's names: ``current_term``, ``voted_for``,
  ``log`` (a 1-based :class:`~labkit.raft.RaftLog`), ``commit_index``,
  ``last_applied``, and on leaders ``next_index`` / ``match_index`` (dicts by
  peer); also ``role``, ``leader_id``, ``votes`` and ``peers``;
* the messages (:mod:`labkit.raft.messages`) and who handles which
  (:data:`RULES`);
* timers: :meth:`RaftServer.reset_election_timer`, and heartbeats every
  ``heartbeat_interval`` while leading (:meth:`RaftServer.send_heartbeats`);
* role changes (:meth:`RaftServer.set_role`, :meth:`RaftServer.become_follower`),
  which look after the timers and tell the trace;
* storage: :meth:`RaftServer.save_term_and_vote` and :meth:`RaftServer.save_log`
  write Figure 2's persistent state (what the simulator keeps across a crash);
* sending a follower what it lacks (:meth:`RaftServer.send_append_entries`),
  the state machine and the clients (:meth:`RaftServer.apply`,
  :meth:`RaftServer.handle_client_request`).

The rules (:data:`RULES`) raise ``NotImplementedError`` until written. The
skeleton runs anyway: a rule not written yet does nothing when it is called,
and the trace notes it once per server ("not written"), so a learner can run
the tests after the first rule and see exactly what is missing.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, ClassVar

from labkit.labs.rules import NOT_WRITTEN, NotWritten, RuleBook, rules_by_part, with_stubs
from labkit.raft.log import RaftLog
from labkit.raft.messages import (
    AppendEntries,
    AppendEntriesReply,
    ClientReply,
    ClientRequest,
    KVCommand,
    RequestVote,
    RequestVoteReply,
)
from labkit.raft.node import RaftConfig, Role
from labkit.raft.state_machine import KVStore
from labkit.sim import Context, Node

__all__ = ["RaftServer", "NotWritten", "RULES", "ELECTION_TIMER", "HEARTBEAT_TIMER", "NOT_WRITTEN"]

ELECTION_TIMER = "election"
HEARTBEAT_TIMER = "heartbeat"

# Every rule a learner writes, part by part of the lab, and the box of Figure 2 it comes from.
RULES = rules_by_part(
    election={
        "observe_term": "Rules for Servers, All Servers: a newer term",
        "start_election": "Rules for Servers, Candidates: on conversion to candidate",
        "handle_request_vote": "RequestVote RPC, receiver implementation",
        "handle_request_vote_reply": "Candidates: votes received from a majority",
        "become_leader": "Leaders: upon election",
        "handle_append_entries": "AppendEntries RPC, receiver step 1; followers and candidates",
    },
    replication={
        "append_new_entry": "Leaders: command received from client",
        "accept_entries": "AppendEntries RPC, receiver steps 2-5",
        "handle_append_entries_reply": "Leaders: nextIndex and matchIndex",
        "advance_commit_index": "Leaders: the commit rule",
        "apply_committed": "All Servers: apply what is committed",
    },
    persistence={
        "restore": "Persistent state on all servers",
    },
)


class NeverSaved(KeyError):
    """A key ``restore`` read that no rule ever saved; says which rule should have."""

    def __str__(self) -> str:
        return str(self.args[0])


class _Disk(Mapping[Hashable, Any]):
    """The read-only storage ``restore`` gets: a missing log entry says which save was forgotten.

    A plain ``KeyError: ('log', 1)`` points at ``restore``; the rule to fix is the one that changed
    the log without :meth:`RaftServer.save_log` (the length was saved later, by another rule).
    """

    __slots__ = ("_storage",)

    def __init__(self, storage: Mapping[Hashable, Any]) -> None:
        self._storage = storage

    def __getitem__(self, key: Hashable) -> Any:
        try:
            return self._storage[key]
        except KeyError:
            if isinstance(key, tuple) and len(key) == 2 and key[0] == "log":
                raise NeverSaved(
                    f"storage has no {key!r} although log_length is {self._storage.get('log_length', 0)}: "
                    f"entry {key[1]} was never saved (every rule that changes the log, accept_entries and "
                    "append_new_entry, must call save_log from the first index it changed)"
                ) from None
            raise

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._storage)

    def __len__(self) -> int:
        return len(self._storage)


class RaftServer(RuleBook, Node):
    """A Raft server without its rules; subclass it and add them with :meth:`rule`.

    Built by the lab as ``MyRaft(node_id, peers, config)``; ``config`` is a
    :class:`~labkit.raft.RaftConfig` (election timeout range, heartbeat
    interval, entries per message).
    """

    RULES = RULES  # the rules a learner writes (RuleBook adds them with @MyRaft.rule)

    # Which rule handles each message, and each timer.
    MESSAGE_RULES: ClassVar[dict[type, str]] = {
        RequestVote: "handle_request_vote",
        RequestVoteReply: "handle_request_vote_reply",
        AppendEntries: "handle_append_entries",
        AppendEntriesReply: "handle_append_entries_reply",
    }

    def __init__(self, node_id: str, peers: Iterable[str], config: RaftConfig | None = None) -> None:
        super().__init__(node_id)
        self.peers = tuple(p for p in peers if p != node_id)
        self.config = config if config is not None else RaftConfig()
        # Persistent state on all servers (Figure 2): saved with save_term_and_vote and save_log.
        self.current_term = 0
        self.voted_for: str | None = None
        self.log = RaftLog()
        # Volatile state on all servers.
        self.commit_index = 0
        self.last_applied = 0
        self.role = Role.FOLLOWER
        self.leader_id: str | None = None  # whom clients are sent to
        self.votes: set[str] = set()  # candidates: who voted for me this term
        # Volatile state on leaders (set up by become_leader).
        self.next_index: dict[str, int] = {}
        self.match_index: dict[str, int] = {}
        # The replicated key-value store and the clients waiting for an answer.
        self.state_machine = KVStore()
        self.applied: list[Any] = []  # commands applied since the last restart
        self.waiting: dict[int, tuple[str, int, int]] = {}  # log index -> (client, seq, term)

    @property
    def majority(self) -> int:
        """Votes or copies needed: a majority of all servers, this one included."""
        return (len(self.peers) + 1) // 2 + 1

    # ------------------------------------------------------------------
    # Given: what the simulator calls
    # ------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        """Boot or reboot: read back the persistent state (your ``restore``), start as a follower."""
        self.follow(ctx, "restore", _Disk(ctx.storage))
        self._note_role(ctx)
        self.reset_election_timer(ctx)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, ClientRequest):
            self.handle_client_request(ctx, src, msg)
            return
        rule = self.MESSAGE_RULES.get(type(msg))
        if rule is None:
            raise TypeError(f"{self.node_id} got a message it does not understand: {msg!r}")
        self.follow(ctx, "observe_term", ctx, msg.term)  # every RPC and reply carries a term
        self.follow(ctx, rule, ctx, src, msg)

    def campaign(self, ctx: Context) -> None:
        """Time out now and start an election (your ``start_election``): how tests force elections."""
        self.follow(ctx, "start_election", ctx)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == ELECTION_TIMER:
            if self.role is not Role.LEADER:
                self.follow(ctx, "start_election", ctx)
        elif name == HEARTBEAT_TIMER and self.role is Role.LEADER:
            self.send_heartbeats(ctx)

    # ------------------------------------------------------------------
    # Given: timers and roles
    # ------------------------------------------------------------------
    def reset_election_timer(self, ctx: Context) -> None:
        """Start a fresh random election timeout (§5.2: randomized, so split votes are rare)."""
        low, high = self.config.election_timeout
        ctx.set_timer(ELECTION_TIMER, ctx.random.uniform(low, high))

    def set_role(self, ctx: Context, role: Role) -> None:
        """Become ``role``: a leader sends heartbeats and has no election timeout; others the reverse.

        Call it *after* changing ``current_term``: the trace records the role with the term.
        """
        was = self.role
        self.role = role
        if role is Role.LEADER:
            ctx.cancel_timer(ELECTION_TIMER)
            ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat_interval)
        elif was is Role.LEADER:
            ctx.cancel_timer(HEARTBEAT_TIMER)
            self.waiting.clear()  # clients retry; another leader will answer
            self.reset_election_timer(ctx)
        if role is not was or role is Role.CANDIDATE:
            self._note_role(ctx)

    def become_follower(self, ctx: Context) -> None:
        """``set_role(ctx, Role.FOLLOWER)``."""
        self.set_role(ctx, Role.FOLLOWER)

    def _note_role(self, ctx: Context) -> None:
        ctx.note("role", role=self.role.value, term=self.current_term)

    def send_heartbeats(self, ctx: Context) -> None:
        """Leaders: an AppendEntries to every follower, again every ``heartbeat_interval``
        ("repeat during idle periods to prevent election timeouts", Figure 2)."""
        for peer in self.peers:
            self.send_append_entries(ctx, peer)
        ctx.set_timer(HEARTBEAT_TIMER, self.config.heartbeat_interval)

    # ------------------------------------------------------------------
    # Given: storage (Figure 2, "Persistent state on all servers")
    # ------------------------------------------------------------------
    def save_term_and_vote(self, ctx: Context) -> None:
        """Write ``current_term`` and ``voted_for`` to stable storage (before any reply that relies on them)."""
        ctx.persist("current_term", self.current_term)
        ctx.persist("voted_for", self.voted_for)

    def save_log(self, ctx: Context, first: int = 1) -> None:
        """Write the log from index ``first`` to its end, and its length, to stable storage.

        In ``storage``: ``"log_length"``, and ``("log", i)`` for every index i from 1 to it.
        """
        log = self.log
        for i in range(max(first, 1), log.last_index + 1):
            ctx.persist(("log", i), log[i])
        ctx.persist("log_length", log.last_index)

    # ------------------------------------------------------------------
    # Given: replication mechanics
    # ------------------------------------------------------------------
    def send_append_entries(self, ctx: Context, peer: str) -> None:
        """Send ``peer`` the log from ``next_index[peer]`` on (at most ``max_entries`` entries), with
        ``prev_log_index`` / ``prev_log_term`` just before it and this leader's commit index."""
        if peer not in self.next_index:
            raise KeyError(f"next_index has no entry for {peer!r}: become_leader sets it up for every peer")
        next_index = self.next_index[peer]
        if not 1 <= next_index <= self.log.last_index + 1:
            raise ValueError(
                f"next_index[{peer!r}] must be between 1 and {self.log.last_index + 1} "
                f"(one past the leader's last entry), got {next_index!r}"
            )
        prev = next_index - 1
        entries = self.log.entries(next_index, self.config.max_entries)
        ctx.send(
            peer,
            AppendEntries(
                self.current_term, self.node_id, prev, self.log.term(prev), entries, self.commit_index
            ),
        )

    def apply(self, ctx: Context, index: int) -> None:
        """Apply the entry at ``index`` to the state machine; answer the client waiting for it (if any)."""
        if index > self.log.last_index:
            raise IndexError(
                f"apply({index}), but the log ends at index {self.log.last_index}: commit_index "
                f"{self.commit_index} is past the end of the log. Look at accept_entries: step 2 refuses a "
                "message whose prev_log_index is past the log, and step 5 commits no further than the last "
                "entry the message carried, min(leader_commit, index of last new entry)"
            )
        entry = self.log[index]
        result = self.state_machine.apply(entry.command)
        self.applied.append(entry.command)
        waiting = self.waiting.pop(index, None)
        if waiting is not None and waiting[2] == entry.term:
            ctx.send(waiting[0], ClientReply(waiting[1], True, result))

    def handle_client_request(self, ctx: Context, src: str, m: ClientRequest) -> None:
        """A client's command: leaders put it in the log (your ``append_new_entry``) and answer once it is
        applied; others name the leader they know. A retried command is answered from the store's
        session table, not appended twice (§8)."""
        if self.role is not Role.LEADER:
            ctx.send(src, ClientReply(m.seq, False, leader_hint=self.leader_id))
            return
        seen, result = self.state_machine.duplicate(m.client, m.seq)
        if seen:
            ctx.send(src, ClientReply(m.seq, True, result))
            return
        self.waiting[self.log.last_index + 1] = (src, m.seq, self.current_term)
        if self.follow(ctx, "append_new_entry", ctx, KVCommand(m.client, m.seq, m.op)) is None:
            self.waiting.pop(self.log.last_index + 1, None)

    def submit(self, ctx: Context, command: Any) -> tuple[int, int] | None:
        """Put ``command`` in the log if this server leads: ``(index, term)``, else None."""
        if self.role is not Role.LEADER:
            return None
        index = self.follow(ctx, "append_new_entry", ctx, command)
        return None if index is None else (index, self.current_term)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.node_id!r}, {self.role.value}, term={self.current_term}, "
            f"log={self.log.last_index}, commit={self.commit_index})"
        )


with_stubs(RaftServer)  # until a learner writes them, the rules raise NotWritten
