"""Conflict-free replicated data types: replicas that converge without coordination.

Shapiro, Preguiça, Baquero & Zawirski, *Conflict-free Replicated Data Types*
(SSS 2011) and *A comprehensive study of Convergent and Commutative
Replicated Data Types* (INRIA RR-7506, 2011); Roh et al. (2011) for RGA.

* :class:`GCounter`, :class:`PNCounter`: counters;
* :class:`LWWRegister`, :class:`MVRegister`: registers that keep the last
  write, or every concurrent one;
* :class:`ORSet`: a set whose adds win over concurrent removes;
* :class:`RGA`: a list, and so a shared text;
* :class:`GossipReplica` (state-based) and :class:`OpReplica`
  (operation-based) run them on the simulator; :func:`run_replicas` checks
  that replicas converge under partitions, loss, duplication and reordering.
"""

from labkit.crdt.base import StateCRDT, merge_law_violations
from labkit.crdt.counters import GCounter, PNCounter
from labkit.crdt.orset import ORSet, Tag
from labkit.crdt.registers import LWWRegister, MVRegister
from labkit.crdt.replica import (
    Add,
    Assign,
    Decrement,
    Delete,
    Edit,
    GossipReplica,
    Increment,
    Insert,
    OpReplica,
    Remove,
    ReplicaRun,
    State,
    random_faults,
    run_replicas,
    value_of,
)
from labkit.crdt.rga import RGA, ROOT, Id

__all__ = [
    "RGA",
    "ROOT",
    "Add",
    "Assign",
    "Decrement",
    "Delete",
    "Edit",
    "GCounter",
    "GossipReplica",
    "Id",
    "Increment",
    "Insert",
    "LWWRegister",
    "MVRegister",
    "ORSet",
    "OpReplica",
    "PNCounter",
    "Remove",
    "ReplicaRun",
    "State",
    "StateCRDT",
    "Tag",
    "merge_law_violations",
    "random_faults",
    "run_replicas",
    "value_of",
]
