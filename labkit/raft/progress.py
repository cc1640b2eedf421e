"""What a Raft leader knows of each follower, and when it sends (as etcd's raft ``tracker``).

Figure 2 keeps two numbers per follower on a leader: ``nextIndex`` (the next
entry to send) and ``matchIndex`` (the highest entry known replicated).
:class:`Progress` holds them, with the leader's rules for moving them, and
adds flow control in the manner of etcd's "inflight" limit: at most one
AppendEntries *with entries* (or one InstallSnapshot, §7) outstanding per
follower.

Entries appended while one is outstanding wait and travel together in the
next message, sent as soon as the follower's answer arrives. A heartbeat to a
follower with a message outstanding carries no entries (it keeps the
follower's election timer quiet and brings the commit index); one outstanding
for a whole heartbeat interval is presumed lost and sent again. This changes
only *when* entries travel, never *which*: every AppendEntries still holds the
leader's log from ``next_index`` on, with ``prev_log_index`` and
``prev_log_term`` for the consistency check of §5.3, and followers handle each
message as before, in any order and any number of times (§5.5).

Answers are filtered here too. A failure says "my log does not match yours
at prev_log_index" (§5.3); that is news only for the probe the leader would
send now, one of this term at ``next_index - 1``. Any other failure (a stale
term's rejection, a duplicate, one overtaken by an answer that already moved
``next_index``) answers a request that has been answered or superseded, so
the leader ignores it rather than rewind ``next_index`` on stale advice.

:func:`quorum_match_index` is the commit rule's arithmetic (etcd's ``quorum``
package): the highest index stored on a majority.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from labkit import validation as valid
from labkit.raft.messages import AppendEntriesReply

__all__ = ["Progress", "quorum_match_index"]


class Progress:
    """A leader's ``next_index`` and ``match_index`` for one follower, with flow control.

    Invariant: ``match_index < next_index <= last_index + 1`` of the leader's log.
    """

    __slots__ = ("next_index", "match_index", "_inflight", "_sent_at")

    def __init__(self, next_index: int) -> None:
        self.next_index = valid.integer("next_index", next_index, ge=1)
        self.match_index = 0
        # The last index of the AppendEntries with entries awaiting an answer
        # (0: none) and when it left.
        self._inflight = 0
        self._sent_at = 0.0

    def sent(self, prev_log_index: int, count: int, now: float) -> None:
        """Note an AppendEntries just sent from ``next_index`` with ``count`` entries."""
        self._inflight = prev_log_index + count if count else 0
        self._sent_at = now

    def sent_snapshot(self, last_included_index: int, now: float) -> None:
        """Note an InstallSnapshot just sent (§7): it counts as a message with entries up to its last one."""
        self._inflight = last_included_index
        self._sent_at = now

    @property
    def busy(self) -> bool:
        """True while an AppendEntries with entries is on its way: new entries wait for its answer."""
        return self._inflight != 0

    def awaiting_answer(self, now: float, interval: float) -> bool:
        """True while an AppendEntries with entries is on its way, sent less than ``interval`` ago.

        One unanswered for longer is presumed lost.
        """
        return self._inflight != 0 and now - self._sent_at < interval

    def update(self, match_index: int) -> bool:
        """A success reply: raise ``match_index`` and ``next_index``; True if ``match_index`` grew."""
        if match_index >= self.next_index:
            self.next_index = match_index + 1
        if match_index > self.match_index:
            self.match_index = match_index
            return True
        return False

    def ready_for_more(self, match_index: int, last_index: int) -> bool:
        """After a success reply: whether to send the entries appended meanwhile now."""
        if self._inflight and match_index < self._inflight:
            return False  # an answer to an earlier message; the outstanding one is still on its way
        if self.next_index <= last_index:
            return True
        self._inflight = 0  # the follower has everything
        return False

    def answers_probe(self, reply: AppendEntriesReply, term: int) -> bool:
        """Whether a failure reply answers the request the leader would send now (see the module docstring)."""
        return reply.request_term == term and reply.prev_log_index == self.next_index - 1

    def decrement_next_index(self, retry_index: int, last_index: int) -> None:
        """Move ``next_index`` back to ``retry_index``, kept above ``match_index`` and within the log."""
        self.next_index = min(max(retry_index, self.match_index + 1, 1), last_index + 1)

    def __repr__(self) -> str:
        return f"Progress(next_index={self.next_index}, match_index={self.match_index})"


_match_index = attrgetter("match_index")


def quorum_match_index(last_index: int, followers: Iterable[Progress], quorum: int) -> int:
    """The highest index stored on at least ``quorum`` servers: the leader (all of its log) and its followers."""
    matches = list(map(_match_index, followers))
    matches.append(last_index)
    matches.sort(reverse=True)
    return matches[quorum - 1]
