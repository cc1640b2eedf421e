"""Raft's messages and log entries (Ongaro & Ousterhout, extended paper, Figure 2).

Each RPC of Figure 2 is a pair of frozen dataclasses: the request, named
after the RPC (:class:`RequestVote`, :class:`AppendEntries`), and its reply.
Field names follow the figure, in snake case. Two extensions are marked:

* :class:`AppendEntriesReply` carries ``conflict_index`` / ``conflict_term``
  so a leader can skip a whole term of mismatching entries per round trip
  (the optimisation sketched at the end of §5.3), and echoes the request's
  ``term`` and ``prev_log_index`` so a leader ignores stale answers (§5.3);
* :class:`ClientRequest` / :class:`ClientReply` are the client protocol of
  §8: a client id and a sequence number let the state machine apply a retried
  command at most once.

What production Rafts add (Ongaro's dissertation, cited as "diss."), each
marked where it is declared:

* :class:`InstallSnapshot` and its reply (Figure 13, §7), which carry a
  :class:`Snapshot` as bytes, in chunks: log compaction;
* :class:`PreVote` and its reply (diss. §9.6): ask before starting an election;
* ``round`` on :class:`AppendEntries` and its reply (diss. §6.4): which round of
  heartbeats an answer acknowledges, so a leader can confirm it still leads
  before it answers a read;
* :class:`Configuration`, a log command (diss. §4): which servers vote and
  which only learn;
* :class:`TimeoutNow` and ``leadership_transfer`` on :class:`RequestVote`
  (diss. §3.10, §4.2.3): handing leadership over on purpose.
"""

from __future__ import annotations

from typing import Any

from labkit import validation as valid
from labkit.sim.message import message

__all__ = [
    "NOOP",
    "AppendEntries",
    "AppendEntriesReply",
    "ClientReply",
    "ClientRequest",
    "Configuration",
    "InstallSnapshot",
    "InstallSnapshotReply",
    "KVCommand",
    "LogEntry",
    "NoOp",
    "PreVote",
    "PreVoteReply",
    "RequestVote",
    "RequestVoteReply",
    "Snapshot",
    "TimeoutNow",
]


@message
class NoOp:
    """The blank entry a new leader appends at the start of its term (§8).

    Committing it commits every earlier entry (Figure 8 / §5.4.2) and tells
    the leader which entries are committed before it serves reads.
    """

    def __repr__(self) -> str:
        return "no-op"


NOOP = NoOp()


@message
class LogEntry:
    """One log entry: the command and the term in which a leader received it."""

    term: int
    command: Any

    def __post_init__(self) -> None:
        if type(self.term) is not int or self.term < 0:  # the common case checked in one step
            valid.integer("term", self.term, ge=0)


@message
class Configuration:
    """A log command naming the servers of the cluster (diss. §4.1).

    ``voters`` elect leaders and count for commitment; ``learners`` receive
    the log but do neither (diss. §4.2.1: a new server catches up as a
    non-voting member before it counts). A server uses the latest
    configuration in its log, committed or not (diss. §4.1).
    """

    voters: tuple[str, ...]
    learners: tuple[str, ...] = ()

    @property
    def members(self) -> tuple[str, ...]:
        """Every server of the configuration, voters first."""
        return self.voters + self.learners

    def __repr__(self) -> str:
        learners = f" learners={list(self.learners)}" if self.learners else ""
        return f"config(voters={list(self.voters)}{learners})"


@message
class KVCommand:
    """A key-value operation from client ``client`` with sequence number ``seq``.

    ``op`` is ``("get", key)``, ``("put", key, value)`` or ``("append", key, value)``.
    """

    client: str
    seq: int
    op: tuple


@message
class RequestVote:
    """RequestVote RPC arguments (Figure 2), sent by candidates (§5.2)."""

    term: int
    candidate_id: str
    last_log_index: int
    last_log_term: int
    # Diss. §4.2.3: the leader asked for this election (after a TimeoutNow, diss. §3.10); voters heed it.
    leadership_transfer: bool = False


@message
class RequestVoteReply:
    """RequestVote RPC results (Figure 2)."""

    term: int
    vote_granted: bool


@message
class PreVote:
    """Diss. §9.6: "would you vote for me in term ``next_term``?", asked *before* a real election.

    The field is not called ``term`` on purpose: the receiver does not adopt
    it (Figure 2's "if RPC request contains term T > currentTerm" rule is for
    real terms), and neither does the sender until a majority says yes.
    """

    next_term: int
    candidate_id: str
    last_log_index: int
    last_log_term: int


@message
class PreVoteReply:
    """The answer to a :class:`PreVote`: ``term`` is the receiver's current term; ``next_term`` echoes the request's."""

    term: int
    vote_granted: bool
    next_term: int


@message
class AppendEntries:
    """AppendEntries RPC arguments (Figure 2): replication and heartbeat (§5.3)."""

    term: int
    leader_id: str
    prev_log_index: int
    prev_log_term: int
    entries: tuple[LogEntry, ...]
    leader_commit: int
    # Diss. §6.4: the leader's current round of heartbeats; the reply echoes it.
    round: int = 0


@message
class AppendEntriesReply:
    """AppendEntries RPC results (Figure 2) plus fast-backtracking hints.

    ``term`` is the follower's ``current_term`` (Figure 2). Two fields echo the
    request this reply answers, so a leader can tell an answer to its latest
    request from a late, duplicated or reordered answer to an older one (§5.3):
    ``request_term`` is the request's ``term`` and ``prev_log_index`` its
    ``prev_log_index``.

    On success ``match_index`` is the index of the last entry the follower now
    knows to match the leader's log (``prev_log_index + len(entries)``). On
    failure ``conflict_term`` is the term of the follower's entry at
    ``prev_log_index`` (``None`` when its log is too short or the request's
    term was stale) and ``conflict_index`` the first index the leader should
    try next (0 when the request's term was stale: there is no hint).
    """

    term: int
    success: bool
    request_term: int
    prev_log_index: int
    match_index: int = 0
    conflict_index: int = 0
    conflict_term: int | None = None
    round: int = 0  # echoes the request's round (diss. §6.4)


@message
class Snapshot:
    """A state machine's state as of a log index (§7, Figure 12).

    ``last_included_index`` and ``last_included_term`` name the last entry the
    snapshot replaces; ``state`` is what :meth:`StateMachine.snapshot` returned
    (immutable); ``configuration`` is the latest configuration as of that
    index (§7: "the snapshot also includes the latest configuration").
    """

    last_included_index: int
    last_included_term: int
    state: Any
    configuration: Configuration


@message
class InstallSnapshot:
    """InstallSnapshot RPC arguments (Figure 13), sent by a leader to a follower it cannot
    bring up to date with AppendEntries because the entries it needs were compacted (§7).

    The snapshot travels as bytes (:func:`labkit.raft.snapshot.encode`: the state
    machine's state and the configuration as JSON), cut into chunks of at most
    ``RaftConfig.snapshot_chunk_size`` bytes: ``data`` is the chunk that starts
    ``offset`` bytes into the snapshot, and ``done`` is true on the last one.
    "Leaders always send chunks in order" (Figure 13's caption), one at a time.
    ``round`` is as on :class:`AppendEntries`.
    """

    term: int
    leader_id: str
    last_included_index: int
    last_included_term: int
    offset: int
    data: bytes
    done: bool
    round: int = 0


@message
class InstallSnapshotReply:
    """InstallSnapshot RPC results (Figure 13): ``term``, plus what the leader needs to go on.

    Echoed from the request, so the leader knows which of its requests this
    answers: ``request_term``, ``last_included_index``, ``offset`` and ``round``.
    ``stored`` is how many bytes of that snapshot the follower has gathered, from
    the start without a gap: where the next chunk must begin (unused when
    ``done``). ``done`` says the follower holds everything up to
    ``last_included_index`` (it installed the snapshot, or had committed that
    far already).
    """

    term: int
    request_term: int
    last_included_index: int
    offset: int = 0
    stored: int = 0
    done: bool = False
    round: int = 0


@message
class TimeoutNow:
    """Diss. §3.10: the leader tells a caught-up follower to start an election at once."""

    term: int
    leader_id: str


@message
class ClientRequest:
    """A client asks a server to run ``op`` (§8)."""

    client: str
    seq: int
    op: tuple


@message
class ClientReply:
    """The answer to a :class:`ClientRequest`.

    ``ok=False`` means "I am not the leader": try ``leader_hint`` (if known).
    """

    seq: int
    ok: bool
    result: Any = None
    leader_hint: str | None = None
