"""What the quorum lab checks: quorums, versions, read repair and hinted handoff (Dynamo, SOSP 2007).

Safety is checked after every event:

* :data:`WRITE_QUORUM`, the moment a client hears that its write succeeded:
  W nodes store it (§4.5), home replicas only in a strict quorum, home
  replicas and stand-ins' hints in a sloppy one (§4.6);
* :data:`NO_INVENTION`, the moment a client reads: every version it got was
  written by a client's write of that key, value and context unchanged;
* :data:`NO_LOST_WRITE`, the moment a client reads, where quorums overlap
  (R + W > N with strict quorums, or once everything has healed): every write
  acknowledged before the read began is among the versions read, or was seen
  by one of them (its dot covered by a version's context, §4.4); reads and
  writes of one key overlap in R + W - N >= 1 home replicas (DDIA ch. 5,
  "Quorums for reading and writing");
* :data:`STAND_INS`: a node keeps data only for keys it is a home replica of;
  a stand-in keeps a write as a hint naming the home replica it belongs to
  (§4.6).

The scripts check the rest once the faults are over: requests succeed when
enough replicas can answer (:data:`AVAILABLE`), hints reach home and are
forgotten (:data:`HANDOFF`), and a read that sees every home replica leaves
them all holding what it read (:data:`READ_REPAIR`).

Where to look (``look_at``) depends on the part: parts 1 and 2 run strict
quorums, where no stand-in is ever asked, so their hints name only their own
rules; part 3 runs sloppy quorums. :func:`in_mode` gives a property as a
store in a given mode checks it (:data:`AVAILABLE` and :data:`STAND_INS`
have a sloppy twin, :data:`AVAILABLE_SLOPPY` and :data:`STAND_INS_SLOPPY`).
"""

from __future__ import annotations

from dataclasses import replace

from labkit.labs.core import Property
from labkit.replication.modes import Mode

__all__ = [
    "WRITE_QUORUM",
    "NO_INVENTION",
    "NO_LOST_WRITE",
    "STAND_INS",
    "STAND_INS_SLOPPY",
    "AVAILABLE",
    "AVAILABLE_SLOPPY",
    "HANDOFF",
    "READ_REPAIR",
    "SAFETY",
    "in_mode",
]

WRITE_QUORUM = Property(
    "Write quorum",
    "a write is acknowledged only once W nodes store it: home replicas in a strict quorum, "
    "home replicas or stand-ins in a sloppy one",
    "Dynamo §4.5, §4.6",
    look_at=(
        "handle_write_ack (answer the client only once quorum_reached) and quorum_reached (W answers: "
        "home replicas only in a strict quorum, stand-ins too in a sloppy one)"
    ),
)
NO_INVENTION = Property(
    "No invention",
    "a read returns only versions that a client's write of that key wrote",
    "Dynamo §4.4",
    look_at="coordinate_put (the versions self.stamp names), handle_read_reply and newest (keep versions, never make one)",
)
NO_LOST_WRITE = Property(
    "No lost write",
    "where read and write quorums overlap, a read sees every write acknowledged before it began "
    "(the version itself, or a version whose writer had seen it): siblings are kept, not dropped",
    "Dynamo §4.4, §4.5; DDIA ch. 5",
    look_at=(
        "newest (drop only a version another one supersedes; concurrent ones stay as siblings), "
        "handle_read_reply (merge every reply) and quorum_reached (R and W count the right nodes)"
    ),
)
STAND_INS = Property(
    "Hints for stand-ins",
    "a node stores data only for keys it is a home replica of; a stand-in keeps a write as a hint "
    "naming the home replica it stands in for",
    "Dynamo §4.6",
    look_at=(
        "coordinate_put (send ReplicaWrite to the key's home replicas, p.home, and no other node) "
        "and read_repair (repair home replicas only)"
    ),
)
STAND_INS_SLOPPY = replace(
    STAND_INS,
    look_at="ask_stand_ins (a write to a stand-in carries hint_for=home) and read_repair (stand-ins are not repaired)",
)
AVAILABLE = Property(
    "Availability",
    "a request succeeds when R (or W) of the key's home replicas can answer (a strict quorum)",
    "Dynamo §4.5",
    look_at=(
        "coordinate_put and coordinate_get (ask every home replica, p.home), handle_write_ack and "
        "handle_read_reply (note who answered in p.answered, answer the client once quorum_reached) and "
        "quorum_reached (count the home replicas in p.answered against p.need)"
    ),
)
AVAILABLE_SLOPPY = replace(
    AVAILABLE,
    says="a request succeeds when R (or W) nodes that count can answer: home replicas or stand-ins "
    "(a sloppy quorum)",
    source="Dynamo §4.5, §4.6",
    look_at="quorum_reached (stand-ins count too) and ask_stand_ins (ask the next nodes of the preference list)",
)
HANDOFF = Property(
    "Hinted handoff",
    "once a stand-in can reach the home replica, the hint is delivered there and then forgotten",
    "Dynamo §4.6",
    look_at="hand_off (send every hint home) and handle_handoff_ack (forget a hint only if it still holds what was acked)",
)
READ_REPAIR = Property(
    "Read repair",
    "a read that found home replicas with stale versions leaves them holding the versions it read",
    "Dynamo §5",
    look_at="read_repair (every home replica that replied with other versions than p.merged) and handle_read_reply",
)

SAFETY = (WRITE_QUORUM, NO_INVENTION, NO_LOST_WRITE, STAND_INS)


_SLOPPY = {STAND_INS: STAND_INS_SLOPPY, AVAILABLE: AVAILABLE_SLOPPY}


def in_mode(prop: Property, mode: Mode) -> Property:
    """``prop`` as a store in ``mode`` checks it: its sloppy twin in a sloppy quorum (part 3), if it has one."""
    return _SLOPPY.get(prop, prop) if mode is Mode.AVAILABILITY_FIRST else prop
