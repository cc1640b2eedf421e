"""The server class a configuration needs: Figure 2's core plus only the extensions it uses.

:class:`~labkit.raft.node.RaftNode` is :class:`~labkit.raft.node.RaftCore`
with every extension of :mod:`labkit.raft.node`. Each extension extends some of
the core's steps and calls ``super()``, so in a RaftNode every message and
every append passes through each of them, even one whose feature is off.
:func:`server_class` builds the class with only the extensions a
:class:`~labkit.raft.node.RaftConfig` can use, in RaftNode's order, so a run
behaves exactly as it would with RaftNode (an extension that is switched off
does nothing but pass each step on):

* :class:`~labkit.raft.node.LeadershipTransfer` and
  :class:`~labkit.raft.node.MembershipChanges`: always, as a cluster may be
  asked to add or remove a server or to hand leadership over at any time;
* :class:`~labkit.raft.node.HeartbeatRounds`: always (every AppendEntries
  carries its round; a cluster hands leadership to a server that answered the
  latest one), and :class:`~labkit.raft.node.LeaderReads`, which builds on it,
  with a ``read_mode`` other than ``LOG``;
* :class:`~labkit.raft.node.PreVoteAndCheckQuorum`: with ``pre_vote`` or
  ``check_quorum``;
* :class:`~labkit.raft.node.LogCompaction`: with a ``snapshot_threshold``
  (without one no server snapshots, so none ever sends or receives an
  InstallSnapshot).

:class:`~labkit.raft.cluster.RaftCluster` builds its servers with it; anyone
who names RaftNode (a learner's subclass, the teaching bugs) still gets every
extension.
"""

from __future__ import annotations

from functools import cache

from labkit import validation as valid
from labkit.raft.node import (
    HeartbeatRounds,
    LeaderReads,
    LeadershipTransfer,
    LogCompaction,
    MembershipChanges,
    PreVoteAndCheckQuorum,
    RaftConfig,
    RaftCore,
    RaftNode,
    ReadMode,
)

__all__ = ["server_class"]


def server_class(config: RaftConfig) -> type[RaftCore]:
    """RaftCore with the extensions ``config`` can use (see the module docstring), in RaftNode's order."""
    valid.instance("config", config, RaftConfig)
    return _compose(
        reads=config.read_mode is not ReadMode.LOG,
        pre_vote_or_check_quorum=config.pre_vote or config.check_quorum,
        compaction=config.snapshot_threshold is not None,
    )


# RaftNode's extensions, in the order it puts them together (its bases).
EXTENSIONS = (LeadershipTransfer, MembershipChanges, PreVoteAndCheckQuorum, LeaderReads, LogCompaction)
assert RaftNode.__bases__ == EXTENSIONS


@cache
def _compose(reads: bool, pre_vote_or_check_quorum: bool, compaction: bool) -> type[RaftCore]:
    if reads and pre_vote_or_check_quorum and compaction:
        return RaftNode
    chosen = tuple(
        HeartbeatRounds if c is LeaderReads and not reads else c  # its rounds without the reads
        for c in EXTENSIONS
        if (c is not PreVoteAndCheckQuorum or pre_vote_or_check_quorum)
        and (c is not LogCompaction or compaction)
    )
    name = "RaftCore+" + "+".join(c.__name__ for c in chosen)
    return type(name, chosen, {"__module__": __name__, "__doc__": RaftNode.__doc__})
