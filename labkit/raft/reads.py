"""Reads without the log (§8 of the extended paper; Ongaro's dissertation §6.4).

A read must not return stale data: the server answering must be the leader
*now*, not a deposed one that has not noticed yet. Committing the read like a
write proves that, at the cost of a log entry and its disk writes.
:class:`~labkit.raft.node.RaftNode` offers three ways, chosen by
:class:`ReadMode`:

* ``LOG``: the read is appended and committed like any command (§8's simplest);
* ``READ_INDEX`` (diss. §6.4): the leader notes its commit index as the *read
  index*, confirms it still leads with one round of heartbeats acknowledged by
  a majority, waits until its state machine has applied the read index, and
  answers from it. No log entry; one round trip to the followers.
* ``LEASE`` (diss. §6.4.1): a round acknowledged by a majority also promises
  that no other leader is elected for an election timeout (followers refuse to
  vote while they hear from a leader, diss. §4.2.3), so for that long, minus
  what the leader's clock may drift, the leader answers with no round trip at
  all. This trusts clocks: a leader whose clock runs slower than the bound
  allows serves stale reads.

Either way the leader must first have committed an entry of its own term
(its no-op, §8), or its commit index may be behind what an earlier leader
committed.

The mechanics live here: :class:`Rounds`, the rounds of heartbeats and which
one a majority has acknowledged, and :class:`ReadQueue`, the reads waiting for
their round and their apply.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

__all__ = ["PendingRead", "ReadMode", "ReadQueue", "Rounds"]


class ReadMode(Enum):
    """How a leader answers a read (see the module docstring)."""

    LOG = "log"
    READ_INDEX = "read-index"
    LEASE = "lease"


class Rounds:
    """A leader's rounds of heartbeats and what they confirmed (diss. §6.4).

    Every AppendEntries (and InstallSnapshot) carries the number of the round
    current when it left; every answer of this term echoes it. When servers
    forming a majority of the voters (the leader among them, if it votes) have
    answered round ``r`` or a later one, the leader still led when round ``r``
    began: ``confirmed`` is the highest such round and ``confirmed_at`` the
    time on the leader's clock when it began. That one number serves ReadIndex
    (which waits for a round begun after the read arrived), the lease (which
    runs from ``confirmed_at``) and CheckQuorum (which steps down when
    ``confirmed_at`` grows too old).
    """

    __slots__ = ("current", "started", "acked", "confirmed", "confirmed_at")

    def __init__(self, now: float) -> None:
        self.current = 0
        self.started: dict[int, float] = {0: now}  # round -> when it began (leader's clock); unconfirmed ones
        self.acked: dict[str, int] = {}  # server -> highest round it answered
        self.confirmed = 0
        # Winning the election is contact with a majority too (their votes).
        self.confirmed_at = now

    def begin(self, now: float) -> int:
        """Start a new round now; returns its number."""
        self.current += 1
        self.started[self.current] = now
        return self.current

    def ack(self, server: str, round_: int, voters: Iterable[str], leader: str, quorum: int) -> bool:
        """``server`` answered a message of round ``round_``; True if that confirmed a later round."""
        if round_ <= self.acked.get(server, -1):
            return False
        self.acked[server] = round_
        if round_ <= self.confirmed:
            return False
        acked = self.acked
        rounds = sorted(
            (self.current if v == leader else acked.get(v, -1) for v in voters),
            reverse=True,
        )
        top = rounds[quorum - 1] if len(rounds) >= quorum else -1
        if top <= self.confirmed:
            return False
        self.confirmed, self.confirmed_at = top, self.started[top]
        for r in [r for r in self.started if r < top]:
            del self.started[r]
        return True

    def __repr__(self) -> str:
        return f"Rounds(current={self.current}, confirmed={self.confirmed})"


@dataclass(slots=True)
class PendingRead:
    """A read a leader has not answered yet.

    ``read_index`` is None until the leader has committed an entry of its
    term; ``round`` is the round that must be confirmed first (None for a
    read under a valid lease, which needs none).
    """

    client: str
    seq: int
    op: tuple
    read_index: int | None
    round: int | None


class ReadQueue:
    """Reads waiting for their round to be confirmed and their read index to be applied."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting: list[PendingRead] = []  # in arrival order

    def add(self, read: PendingRead) -> None:
        self.waiting.append(read)

    def set_read_index(self, commit_index: int) -> None:
        """The leader has now committed an entry of its term: reads still without a read index get this one."""
        for r in self.waiting:
            if r.read_index is None:
                r.read_index = commit_index

    def ready(self, confirmed: int, last_applied: int) -> list[PendingRead]:
        """Take out and return every read whose round is confirmed and whose read index is applied."""
        done, waiting = [], []
        for r in self.waiting:
            ok = r.read_index is not None and r.read_index <= last_applied
            if ok and (r.round is None or r.round <= confirmed):
                done.append(r)
            else:
                waiting.append(r)
        self.waiting = waiting
        return done

    def clear(self) -> None:
        """Forget every waiting read (the leader stepped down; clients retry elsewhere)."""
        self.waiting.clear()

    def __len__(self) -> int:
        return len(self.waiting)
