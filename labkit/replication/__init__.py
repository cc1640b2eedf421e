"""Quorum replication in the style of Dynamo (DeCandia et al., SOSP 2007; DDIA ch. 5).

* :mod:`~labkit.replication.modes`: :class:`Mode` (consistency-first strict
  quorums vs availability-first sloppy quorums) and :class:`Resolution`;
* :mod:`~labkit.replication.versions`: versions with dotted version vectors, siblings;
* :mod:`~labkit.replication.messages`: the protocol's messages;
* :mod:`~labkit.replication.coordinator` and :mod:`~labkit.replication.replica`:
  the storage node (coordinator, replica, stand-in with hinted handoff,
  anti-entropy);
* :mod:`~labkit.replication.merkle`: Merkle trees for anti-entropy;
* :mod:`~labkit.replication.client` and :mod:`~labkit.replication.store`:
  clients with recorded histories and the whole store in a simulator;
* :mod:`~labkit.replication.experiments`: partition scenarios and their
  measurements as pandas DataFrames.
"""

from labkit.replication.client import ClientNode, ClientOp, OpKind, Workload
from labkit.replication.config import StoreConfig, check_quorum
from labkit.replication.merkle import MerkleTree, diff
from labkit.replication.modes import Mode, Resolution
from labkit.replication.replica import ReplicaNode, check_replica
from labkit.replication.store import ReplicatedStore
from labkit.replication.versions import (
    Dot,
    Siblings,
    Versioned,
    check_siblings,
    context_of,
    covers,
    reconcile,
)

__all__ = [
    "ClientNode",
    "ClientOp",
    "Dot",
    "MerkleTree",
    "Mode",
    "OpKind",
    "ReplicaNode",
    "ReplicatedStore",
    "Resolution",
    "Siblings",
    "StoreConfig",
    "Versioned",
    "Workload",
    "check_quorum",
    "check_replica",
    "check_siblings",
    "context_of",
    "covers",
    "diff",
    "reconcile",
]
