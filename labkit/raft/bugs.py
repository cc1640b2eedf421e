"""Deliberately broken Raft servers, for teaching. Never used unless asked for.

Each bug is a subclass of :class:`~labkit.raft.node.RaftNode` that overrides
one method, the one holding the rule it breaks, so the correct rules stay
free of switches. Ask for them by name: ``RaftCluster(bugs=[Bug.VOTE_TWICE])``
builds its servers from :func:`node_class`.

* ``Bug.COMMIT_PRIOR_TERM``: a leader commits an entry of an earlier term as
  soon as a majority stores it, the mistake Figure 8 warns against (§5.4.2).
* ``Bug.STALE_READS``: any server answers ``get`` from its own state machine
  without going through the log (and clients send reads to any server).
* ``Bug.VOTE_TWICE``: a server grants every vote request of the current
  term, forgetting it already voted; two leaders can win one term.
* ``Bug.TWO_AT_ONCE``: a leader accepts a configuration that adds or removes
  several voters in one step, which the single-server rule of Ongaro's
  dissertation (§4.1) forbids: old and new majorities may then be disjoint
  and elect two leaders in one term (Figure 10 of the extended paper, §6).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from labkit.raft.messages import ClientReply, ClientRequest, Configuration
from labkit.raft.node import RaftNode
from labkit.sim import Context

__all__ = ["Bug", "CommitPriorTerm", "StaleReads", "TwoAtOnce", "VoteTwice", "node_class"]


class Bug(Enum):
    """The deliberate mistakes :func:`node_class` can build into a server."""

    COMMIT_PRIOR_TERM = "commit-prior-term"
    STALE_READS = "stale-reads"
    VOTE_TWICE = "vote-twice"
    TWO_AT_ONCE = "two-at-once"


class CommitPriorTerm(RaftNode):
    """Counts replicas for entries of any term: drops Figure 8's current-term check."""

    def may_commit(self, index: int) -> bool:
        return True


class StaleReads(RaftNode):
    """Answers every ``get`` from its own copy, leader or not, without the log."""

    def handle_client_request(self, ctx: Context, src: str, m: ClientRequest) -> None:
        if m.op[0] == "get":
            ctx.send(src, ClientReply(m.seq, True, self.state_machine.query(m.op)))
        else:
            super().handle_client_request(ctx, src, m)


class VoteTwice(RaftNode):
    """Forgets its vote: grants any candidate of the current term whose log is up to date."""

    def may_vote_for(self, candidate_id: str) -> bool:
        return True


class TwoAtOnce(RaftNode):
    """Accepts any new configuration in one step: drops the single-server rule of diss. §4.1."""

    def may_change_configuration(self, old: Configuration, new: Configuration) -> bool:
        return True


_CLASSES: dict[Bug, type[RaftNode]] = {
    Bug.COMMIT_PRIOR_TERM: CommitPriorTerm,
    Bug.STALE_READS: StaleReads,
    Bug.VOTE_TWICE: VoteTwice,
    Bug.TWO_AT_ONCE: TwoAtOnce,
}


def check_bugs(bugs: Bug | Iterable[Bug]) -> frozenset[Bug]:
    """The set of bugs asked for; a single :class:`Bug` counts as one."""
    if isinstance(bugs, Bug):
        return frozenset((bugs,))
    out = frozenset(bugs)
    for b in out:
        if not isinstance(b, Bug):
            raise TypeError(f"bugs must hold Bug members ({', '.join(b.name for b in Bug)}), got {b!r}")
    return out


def node_class(bugs: Bug | Iterable[Bug] = ()) -> type[RaftNode]:
    """The server class with ``bugs`` built in: :class:`RaftNode` itself when there are none."""
    chosen = [_CLASSES[b] for b in Bug if b in check_bugs(bugs)]
    if not chosen:
        return RaftNode
    if len(chosen) == 1:
        return chosen[0]
    return type("+".join(c.__name__ for c in chosen), tuple(chosen), {})
