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
    "KVCommand",
    "LogEntry",
    "NoOp",
    "RequestVote",
    "RequestVoteReply",
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


@message
class RequestVoteReply:
    """RequestVote RPC results (Figure 2)."""

    term: int
    vote_granted: bool


@message
class AppendEntries:
    """AppendEntries RPC arguments (Figure 2): replication and heartbeat (§5.3)."""

    term: int
    leader_id: str
    prev_log_index: int
    prev_log_term: int
    entries: tuple[LogEntry, ...]
    leader_commit: int


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
