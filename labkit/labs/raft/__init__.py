"""The Raft lab (notebook 09): a learner's Raft server, tested like a lab.

>>> from labkit.labs.raft import raft_lab, RaftServer
>>> class MyRaft(RaftServer): ...           # then add Figure 2's rules, one per cell
>>> report = raft_lab.run("election", MyRaft)   # a table per scenario; failures shrunk
>>> report.show_failure()                   # the first failure, as a picture to step through

* :mod:`~labkit.labs.raft.skeleton`: :class:`RaftServer`, everything but the rules;
* :mod:`~labkit.labs.raft.scenarios`: the scenarios of the three parts;
* :mod:`~labkit.labs.raft.properties`: what they check;
* :mod:`~labkit.labs.raft.requirements`: five rules of Figure 2 whose breach costs only time, each checked
  by the scenario that states it;
* :mod:`~labkit.labs.raft.lab`: :class:`RaftLab`, the world, faults and checks;
* :mod:`~labkit.labs.raft.delegation`: why a submission built on labkit's own Raft scores zero.
"""

from labkit.labs.core import Fault
from labkit.labs.raft.lab import RaftLab, raft_lab
from labkit.labs.raft.skeleton import RULES, RaftServer
from labkit.raft.log import RaftLog
from labkit.raft.messages import (
    AppendEntries,
    AppendEntriesReply,
    ClientReply,
    ClientRequest,
    KVCommand,
    LogEntry,
    RequestVote,
    RequestVoteReply,
)
from labkit.raft.node import RaftConfig, Role

__all__ = [
    "AppendEntries",
    "AppendEntriesReply",
    "ClientReply",
    "ClientRequest",
    "Fault",
    "KVCommand",
    "LogEntry",
    "RULES",
    "RaftConfig",
    "RaftLab",
    "RaftLog",
    "RaftServer",
    "RequestVote",
    "RequestVoteReply",
    "Role",
    "raft_lab",
]
