"""Which servers make up the cluster, and how that changes (Ongaro's dissertation, chapter 4).

A configuration (:class:`~labkit.raft.messages.Configuration`) names the
*voters*, who elect leaders and whose majority commits entries, and the
*learners*, who receive the log but count for nothing (diss. §4.2.1). It
travels in the log as an ordinary entry, and "a server always uses the latest
configuration in its log, regardless of whether the entry is committed"
(diss. §4.1). :class:`Membership` keeps that latest configuration as the log
changes at its end (appends, a follower's truncation), and what a snapshot
recorded for the entries it replaced (§7).

Changes go one server at a time (diss. §4.1): any majority of the old voters
and any majority of the new ones then share a server, so two leaders cannot be
elected in one term by disjoint majorities. :func:`single_server_change` is that
rule; a leader starts no change before the previous one is committed, nor
before it has committed an entry of its own term (the no-op; the fix to the
single-server algorithm that Ongaro posted to the raft-dev list in 2015).

A new server first catches up as a learner (diss. §4.2.1): the leader
replicates to it in rounds, each round bringing it up to the leader's log as
it was when the round began, and makes it a voter once a round takes less than
an election timeout. :class:`CatchUp` counts those rounds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from labkit import validation as valid
from labkit.raft.messages import Configuration, LogEntry

__all__ = ["CatchUp", "Membership", "Outcome", "single_server_change"]


def single_server_change(old: Configuration, new: Configuration) -> bool:
    """Whether ``new`` differs from ``old`` by at most one voter added or removed (diss. §4.1).

    Learners come and go freely: they are in no majority.
    """
    return len(set(old.voters) ^ set(new.voters)) <= 1


class Membership:
    """The latest configuration in a server's log, kept up to date as the log changes (diss. §4.1).

    ``base`` is the configuration as of ``base_index``: the snapshot's (§7),
    or the cluster's first one (index 0). ``entries`` lists the configuration
    entries of the log after it, in index order.
    """

    __slots__ = ("base", "base_index", "entries")

    def __init__(self, base: Configuration, base_index: int = 0) -> None:
        self.base = valid.instance("base", base, Configuration)
        self.base_index = valid.integer("base_index", base_index, ge=0)
        self.entries: list[tuple[int, Configuration]] = []

    @property
    def current(self) -> Configuration:
        """The latest configuration in the log, committed or not."""
        return self.entries[-1][1] if self.entries else self.base

    @property
    def index(self) -> int:
        """The log index of the latest configuration (``base_index`` if the log holds none)."""
        return self.entries[-1][0] if self.entries else self.base_index

    def at(self, index: int) -> Configuration:
        """The configuration in force at log ``index`` (the latest one at or before it)."""
        for i, conf in reversed(self.entries):
            if i <= index:
                return conf
        return self.base

    def logged(self, first: int, entries: Iterable[LogEntry]) -> bool:
        """The log changed from index ``first`` on and now holds ``entries`` there (appended or
        rewritten); True if that changed the configuration entries."""
        changed = False
        while self.entries and self.entries[-1][0] >= first:
            self.entries.pop()  # truncated away: the previous configuration is back in force
            changed = True
        i = first
        for e in entries:
            if e.command.__class__ is Configuration:
                self.entries.append((i, e.command))
                changed = True
            i += 1
        return changed

    def compacted(self, index: int) -> None:
        """A snapshot now replaces the log up to ``index``: it records the configuration in force there."""
        self.base = self.at(index)
        self.base_index = index
        self.entries = [(i, c) for i, c in self.entries if i > index]

    def restored(self, configuration: Configuration, index: int, entries: Iterable[LogEntry]) -> None:
        """Start again from a snapshot's configuration, then the log ``entries`` after ``index``."""
        self.base, self.base_index, self.entries = configuration, index, []
        self.logged(index + 1, entries)

    def __repr__(self) -> str:
        return f"Membership({self.current!r} at index {self.index})"


class Outcome(Enum):
    """How a new server's catching up ended (diss. §4.2.1)."""

    PROMOTE = "promote"  # its last round took less than an election timeout: make it a voter
    ABORT = "abort"  # too many slow rounds: take it out again


@dataclass(slots=True)
class CatchUp:
    """A leader bringing a new server up to date in rounds before it may vote (diss. §4.2.1).

    Round ``rounds`` replicates the leader's log up to ``round_end`` and began
    at ``started`` (the leader's clock); ``outcome`` is None while it goes on.
    """

    server: str
    round_end: int
    started: float
    rounds: int = 1
    outcome: Outcome | None = None

    def reached(self, now: float, last_index: int, election_timeout: float, max_rounds: int) -> None:
        """The learner's log reached ``round_end`` at ``now``: promote it if the round took less than
        an election timeout, give up after ``max_rounds`` rounds, else begin the next round (up to
        the leader's ``last_index``)."""
        if now - self.started < election_timeout:
            self.outcome = Outcome.PROMOTE
        elif self.rounds >= max_rounds:
            self.outcome = Outcome.ABORT
        else:
            self.rounds += 1
            self.round_end, self.started = last_index, now
