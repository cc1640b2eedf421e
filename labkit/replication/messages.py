"""The messages of the replicated register (Dynamo, SOSP 2007, §4.5-§4.7).

Three conversations share one network:

* client <-> coordinator: :class:`ClientGet`, :class:`ClientPut` and the
  :class:`ClientReply` to either;
* coordinator <-> replicas: :class:`ReplicaWrite` / :class:`WriteAck`,
  :class:`ReplicaRead` / :class:`ReadReply`, and :class:`ReadRepair`;
* replica <-> replica in the background: :class:`Handoff` /
  :class:`HandoffAck` (hinted handoff, §4.6) and the Merkle-tree exchange
  :class:`MerkleLevel` / :class:`MerkleData` (anti-entropy, §4.7).

All are frozen dataclasses: a message in flight can never change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit.clocks import VectorClock
from labkit.replication.versions import Siblings

__all__ = [
    "RequestId",
    "ClientGet",
    "ClientPut",
    "ClientReply",
    "ReplicaWrite",
    "WriteAck",
    "ReplicaRead",
    "ReadReply",
    "ReadRepair",
    "Handoff",
    "HandoffAck",
    "MerkleLevel",
    "MerkleData",
]

RequestId = tuple[int, int]
"""(coordinator boot number, sequence number): unique across restarts."""


# -- client <-> coordinator ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class ClientGet:
    op_id: int
    key: str
    r: int


@dataclass(frozen=True, slots=True)
class ClientPut:
    op_id: int
    key: str
    value: Any
    context: VectorClock  # what the client had seen (the context of its last answer); empty for a blind write
    w: int


@dataclass(frozen=True, slots=True)
class ClientReply:
    """The coordinator's answer.

    ``ok`` is False when the coordinator gave up: fewer than R (or W)
    replicas answered in time (home replicas only in consistency-first mode,
    stand-ins too in availability-first mode). ``quorum_met`` says whether R
    (or W) *home* replicas answered; in availability-first mode ``ok`` can be
    True without it, when stand-ins made up the numbers. ``versions`` is the sibling set read, or the version
    written followed by the coordinator's earlier versions it sent along
    (the client has now seen them, and its next write supersedes them).
    """

    op_id: int
    ok: bool
    versions: Siblings
    quorum_met: bool
    answered: int  # replicas (home or stand-in) that answered in time


# -- coordinator <-> replicas ---------------------------------------------------
@dataclass(frozen=True, slots=True)
class ReplicaWrite:
    """Store ``versions`` of ``key``: the new version first, then the
    coordinator's earlier versions of the key that no context has covered
    yet (so no replica learns ``n1:5`` without ``n1:4``). ``hint_for`` names
    the home replica this node stands in for (sloppy quorum), or is None on
    a home replica."""

    req: RequestId
    key: str
    versions: Siblings
    hint_for: str | None = None


@dataclass(frozen=True, slots=True)
class WriteAck:
    req: RequestId
    key: str


@dataclass(frozen=True, slots=True)
class ReplicaRead:
    req: RequestId
    key: str


@dataclass(frozen=True, slots=True)
class ReadReply:
    req: RequestId
    key: str
    versions: Siblings


@dataclass(frozen=True, slots=True)
class ReadRepair:
    """Newer versions for a replica that answered a read with stale ones."""

    key: str
    versions: Siblings


# -- background: hinted handoff and anti-entropy ------------------------------
@dataclass(frozen=True, slots=True)
class Handoff:
    """A stand-in returning the versions it kept for ``key`` to their home."""

    key: str
    versions: Siblings


@dataclass(frozen=True, slots=True)
class HandoffAck:
    key: str
    versions: Siblings  # exactly what was received, so the sender can drop that hint


@dataclass(frozen=True, slots=True)
class MerkleLevel:
    """Hashes of some tree nodes at one ``level`` (0 is the root).

    The receiver compares them with its own tree for the same pair of
    replicas and answers with the children of the nodes that differ, so
    only the differing branches are walked.
    """

    session: tuple[str, int]
    level: int
    positions: tuple[int, ...]
    hashes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class MerkleData:
    """The versions of every key in some leaf buckets. ``reply`` asks the
    receiver to send its own versions of the same buckets back."""

    session: tuple[str, int]
    buckets: tuple[int, ...]
    items: tuple[tuple[str, Siblings], ...]
    reply: bool
