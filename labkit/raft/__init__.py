"""Raft consensus on the deterministic simulator (Ongaro & Ousterhout, extended paper).

* :mod:`labkit.raft.messages`: log entries and the RPCs of Figure 2;
* :mod:`labkit.raft.log`: the 1-based replicated log and a follower's append/truncate (Figure 2);
* :mod:`labkit.raft.node`: :class:`RaftCore`, Figure 2's rules: election (§5.2), replication (§5.3), safety (§5.4);
  :class:`RaftNode`, the core with everything below;
* :mod:`labkit.raft.servers`: the core with only the extensions a configuration uses (what clusters run);
* :mod:`labkit.raft.progress`: a leader's next/match index per follower and flow control;
* :mod:`labkit.raft.bugs`: deliberately broken servers, one overridden rule each;
* :mod:`labkit.raft.state_machine`: the replicated key-value store with client sessions (§8);
* :mod:`labkit.raft.client`: clients that retry across leaders and record a history;
* :mod:`labkit.raft.figure3`: Figure 3's safety properties checked after every event, written to be read;
* :mod:`labkit.raft.invariants`: the same checks done incrementally (what clusters run), and snapshot checks;
* :mod:`labkit.raft.cluster`: :class:`RaftCluster`, the API notebooks use;
* :mod:`labkit.raft.scenarios`: Figure 8, stage by stage, and what production Rafts fix;
* :mod:`labkit.raft.schedules`: random fault schedules and history checks for tests and benchmarks.

What production Rafts add (Ongaro's dissertation, "diss."), switched by :class:`RaftConfig`:

* :mod:`labkit.raft.snapshot`: log compaction's bookkeeping (§7 of the paper): storage, a snapshot as
  JSON bytes, and the two ends of an InstallSnapshot sent in chunks (Figure 13);
* :mod:`labkit.raft.reads`: ReadIndex and lease reads (diss. §6.4);
* :mod:`labkit.raft.membership`: configurations, one server at a time, learners catching up (diss. ch. 4);
* each part's rules are a class beside :class:`RaftCore` in :mod:`labkit.raft.node`, PreVote, CheckQuorum
  and leadership transfer (diss. §9.6, §6.2, §3.10) too.

Deliberately broken variants for teaching: ``RaftCluster(bugs=[Bug.STALE_READS])``
(any server answers reads from its own copy), ``Bug.COMMIT_PRIOR_TERM`` (the
Figure 8 mistake), ``Bug.VOTE_TWICE`` (two leaders in one term) and
``Bug.TWO_AT_ONCE`` (a membership change of two voters in one step).
"""

from labkit.raft import messages
from labkit.raft.bugs import Bug
from labkit.raft.client import ClientHandle, HistoryEntry, KVClient
from labkit.raft.cluster import RaftCluster
from labkit.raft.figure3 import Figure3Monitor
from labkit.raft.invariants import (
    InvariantMonitor,
    InvariantViolation,
    election_safety,
    leader_completeness,
    log_matching,
    state_machine_safety,
)
from labkit.raft.log import RaftLog
from labkit.raft.messages import *  # noqa: F403  (every message type: messages.__all__)
from labkit.raft.node import RaftConfig, RaftCore, RaftNode, ReadMode, Role
from labkit.raft.progress import Progress
from labkit.raft.state_machine import KVStore, StateMachine

__all__ = [
    *messages.__all__,
    "Bug",
    "ClientHandle",
    "HistoryEntry",
    "InvariantMonitor",
    "Figure3Monitor",
    "InvariantViolation",
    "KVClient",
    "KVStore",
    "Progress",
    "RaftCluster",
    "RaftConfig",
    "RaftCore",
    "RaftLog",
    "RaftNode",
    "ReadMode",
    "Role",
    "StateMachine",
    "election_safety",
    "leader_completeness",
    "log_matching",
    "state_machine_safety",
]
