"""What a Raft leader knows of each follower, and when it sends (as etcd's raft ``tracker``).

Figure 2 keeps two numbers per follower on a leader: ``nextIndex`` (the next
entry to send) and ``matchIndex`` (the highest entry known replicated).
:class:`Progress` holds them, with the leader's rules for moving them, and
adds flow control in the manner of etcd's raft, in one of two states
(:class:`FlowState`):

* **probe** (always, with the default ``window`` of 1): at most one
  AppendEntries *with entries* (or one InstallSnapshot, §7) outstanding, and
  ``next_index`` moves only when an answer arrives. This is how a leader finds
  where a follower's log matches its own (§5.3), one question at a time.
* **replicate** (only with ``window`` > 1, after a success shows where the logs
  match): the leader streams. Each AppendEntries carries the entries after
  the previous one and ``next_index`` runs ahead of the answers, up to
  ``window`` messages in flight. On a real network the round trip (and the
  follower's fsync) then no longer caps throughput at one batch per round
  trip. A failure that is news (the follower lacks something sent), or a
  message unanswered for a heartbeat interval (presumed lost), sends the
  follower back to probe from ``match_index + 1``.

Entries appended while a follower's window is full wait and travel together
in the next message, sent as soon as an answer frees a place. A heartbeat to a
follower with messages outstanding carries no entries (it keeps the
follower's election timer quiet and brings the commit index). This changes
only *when* entries travel, never *which*: every AppendEntries still holds
the leader's log from some ``next_index`` on, with ``prev_log_index`` and
``prev_log_term`` for the consistency check of §5.3, and followers handle
each message as before, in any order and any number of times (§5.5).
``next_index`` never drops to ``match_index`` or below, so whatever the state,
nothing a follower acknowledged is sent again as news.

A snapshot (§7) goes out chunk by chunk (Figure 13), one chunk outstanding
at a time like a probe: ``transfer``, a :class:`~labkit.raft.snapshot.Transfer`,
knows which bytes go next, and :meth:`Progress.answers_chunk` takes only the
answer to the chunk on its way. The transfer ends when ``match_index`` reaches
the snapshot's last included entry.

Answers are filtered here too. A failure says "my log does not match yours
at prev_log_index" (§5.3). In probe state that is news only for the probe the
leader would send now, one of this term at ``next_index - 1``; in replicate
state, for any message of this term sent past ``match_index``. Any other
failure (a stale term's rejection, a duplicate, one overtaken by an answer
that already moved ``next_index``) answers a request that has been answered
or superseded, so the leader ignores it rather than rewind ``next_index`` on
stale advice.

:func:`quorum_match_index` is the commit rule's arithmetic (etcd's ``quorum``
package): the highest index stored on a majority.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from enum import Enum
from typing import TYPE_CHECKING

from labkit import validation as valid
from labkit.raft.messages import AppendEntriesReply, InstallSnapshotReply

if TYPE_CHECKING:
    from labkit.raft.snapshot import Transfer

__all__ = ["FlowState", "Progress", "quorum_match_index"]


class FlowState(Enum):
    """How a leader sends to one follower (etcd raft's ``StateProbe`` and ``StateReplicate``)."""

    PROBE = "probe"
    REPLICATE = "replicate"


class Progress:
    """A leader's ``next_index`` and ``match_index`` for one follower, with flow control.

    ``window``: how many AppendEntries with entries may be on their way at
    once in replicate state (1: the follower is always probed, one message at
    a time).

    Invariant: ``match_index < next_index <= last_index + 1`` of the leader's log.
    """

    __slots__ = (
        "next_index",
        "match_index",
        "window",
        "state",
        "transfer",
        "_inflight",
        "_sent_at",
        "_flights",
    )

    def __init__(self, next_index: int, window: int = 1) -> None:
        self.next_index = valid.integer("next_index", next_index, ge=1)
        self.match_index = 0
        self.window = valid.integer("window", window, ge=1)
        self.state = FlowState.PROBE
        self.transfer: Transfer | None = None  # a snapshot being sent in chunks (§7, Figure 13)
        # Probe: the last index of the AppendEntries with entries awaiting an
        # answer (0: none) and when it left.
        self._inflight = 0
        self._sent_at = 0.0
        # Replicate: (last index, when it left) of each message with entries on its way, oldest first.
        self._flights: deque[tuple[int, float]] = deque()

    def sent(self, prev_log_index: int, count: int, now: float) -> None:
        """Note an AppendEntries just sent from ``next_index`` with ``count`` entries."""
        if self.state is FlowState.REPLICATE:
            if count:
                last = prev_log_index + count
                self._flights.append((last, now))
                self.next_index = last + 1  # the next message carries what comes after
            return
        self._inflight = prev_log_index + count if count else 0
        self._sent_at = now

    def sent_snapshot(self, last_included_index: int, now: float) -> None:
        """Note an InstallSnapshot just sent (§7): it counts as a message with entries up to its last one."""
        self._probe()
        self._inflight = last_included_index
        self._sent_at = now

    @property
    def busy(self) -> bool:
        """True while no more entries may be sent: new entries wait for an answer."""
        if self.state is FlowState.REPLICATE:
            return len(self._flights) >= self.window
        return self._inflight != 0

    def awaiting_answer(self, now: float, interval: float) -> bool:
        """True while a message with entries is on its way, the oldest sent less than ``interval`` ago.

        One unanswered for longer is presumed lost: in replicate state the
        follower goes back to probe, so what it lacks is sent again from
        ``match_index + 1``.
        """
        if self.state is FlowState.REPLICATE:
            if not self._flights:
                return False
            if now - self._flights[0][1] < interval:
                return True
            self._probe()
            self.next_index = self.match_index + 1
            return False
        return self._inflight != 0 and now - self._sent_at < interval

    def update(self, match_index: int) -> bool:
        """A success reply: raise ``match_index`` and ``next_index``; True if ``match_index`` grew."""
        if match_index >= self.next_index:
            self.next_index = match_index + 1
        if match_index > self.match_index:
            self.match_index = match_index
            if self.transfer is not None and match_index >= self.transfer.last_included_index:
                self.transfer = None  # the follower holds all the snapshot holds
            return True
        return False

    def answers_chunk(self, reply: InstallSnapshotReply, term: int) -> bool:
        """Whether a reply that is not ``done`` answers the snapshot chunk on its way (sent in ``term``);
        if so the transfer moves to where the follower's file ends, and that chunk should go now."""
        return self.transfer is not None and reply.request_term == term and self.transfer.answered(reply)

    def ready_for_more(self, match_index: int, last_index: int) -> bool:
        """After a success reply: whether to send the entries appended meanwhile now."""
        if self.state is FlowState.REPLICATE:
            flights = self._flights
            while flights and flights[0][0] <= match_index:
                flights.popleft()
            return self.next_index <= last_index and len(flights) < self.window
        if self._inflight and match_index < self._inflight:
            return False  # an answer to an earlier message; the outstanding one is still on its way
        if self.window > 1:  # the logs match up to match_index: stream from here on
            self.state = FlowState.REPLICATE
            self._inflight = 0
            return self.next_index <= last_index
        if self.next_index <= last_index:
            return True
        self._inflight = 0  # the follower has everything
        return False

    def answers_probe(self, reply: AppendEntriesReply, term: int) -> bool:
        """Whether a failure reply is news (see the module docstring)."""
        if reply.request_term != term:
            return False
        if self.state is FlowState.REPLICATE:
            return self.match_index < reply.prev_log_index < self.next_index
        return reply.prev_log_index == self.next_index - 1

    def decrement_next_index(self, retry_index: int, last_index: int) -> None:
        """Move ``next_index`` back to ``retry_index``, kept above ``match_index`` and within the log.

        The follower is probed from there (one message at a time).
        """
        self._probe()
        self.next_index = min(max(retry_index, self.match_index + 1, 1), last_index + 1)

    def _probe(self) -> None:
        if self.state is FlowState.REPLICATE:
            self.state = FlowState.PROBE
            self._flights.clear()
            self._inflight = 0

    def __repr__(self) -> str:
        return (
            f"Progress(next_index={self.next_index}, match_index={self.match_index}, "
            f"state={self.state.value}, window={self.window})"
        )


def quorum_match_index(last_index: int, followers: Iterable[Progress], quorum: int) -> int:
    """The highest index stored on at least ``quorum`` servers: the leader (all of its log) and its followers."""
    matches = [pr.match_index for pr in followers]
    matches.append(last_index)
    matches.sort()
    return matches[-quorum]
