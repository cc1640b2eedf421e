"""The quorum lab (notebook 05): a learner's Dynamo coordinator, tested like a lab.

>>> from labkit.labs.quorum import quorum_lab, QuorumServer
>>> class MyStore(QuorumServer): ...             # then add the coordinator's rules, one per cell
>>> report = quorum_lab.run("quorums", MyStore)  # a table per scenario; failures shrunk
>>> report.show_failure()                        # the first failure, as a picture to step through

* :mod:`~labkit.labs.quorum.skeleton`: :class:`QuorumServer`, a storage node without the coordinator's rules;
* :mod:`~labkit.labs.quorum.scenarios`: the scenarios of the three parts;
* :mod:`~labkit.labs.quorum.properties`: what they check;
* :mod:`~labkit.labs.quorum.lab`: :class:`QuorumLab`, the world, faults and checks.
"""

from labkit.labs.core import Fault
from labkit.labs.quorum.lab import QuorumLab, quorum_lab
from labkit.labs.quorum.skeleton import RULES, Pending, QuorumServer
from labkit.replication.messages import (
    ClientGet,
    ClientPut,
    Handoff,
    HandoffAck,
    ReadRepair,
    ReadReply,
    ReplicaRead,
    ReplicaWrite,
    WriteAck,
)
from labkit.replication.modes import Mode
from labkit.replication.versions import Dot, Versioned

__all__ = [
    "ClientGet",
    "ClientPut",
    "Dot",
    "Fault",
    "Handoff",
    "HandoffAck",
    "Mode",
    "Pending",
    "QuorumLab",
    "QuorumServer",
    "RULES",
    "ReadRepair",
    "ReadReply",
    "ReplicaRead",
    "ReplicaWrite",
    "Versioned",
    "WriteAck",
    "quorum_lab",
]
