"""The two ways a replicated store can answer when the network splits.

Brewer's CAP conjecture (PODC 2000 keynote; proved by Gilbert and Lynch,
2002) says that during a partition a store must choose between refusing some
requests and answering them with possibly stale or diverging data. Dynamo
(DeCandia et al., SOSP 2007, §4.6) leans towards availability with a *sloppy
quorum* and *hinted handoff*; a store with *strict quorums* (DDIA ch. 5,
"Quorums for reading and writing") leans towards consistency. :class:`Mode`
is that choice. Neither is "CP" or "AP" in the strict sense of the theorem:
a sloppy quorum still needs W live nodes, and a strict quorum with
R + W > N is still not linearizable (DDIA ch. 9, "Linearizability and
quorums"); notebook 04 measures both.

:class:`Resolution` is how replicas settle two versions of one key: keep
both as siblings when their vector clocks say they are concurrent (Dynamo
§4.4), or keep only the one with the larger timestamp (last writer wins,
which silently drops the other; DDIA ch. 5, "Last write wins").
"""

from __future__ import annotations

from enum import Enum


class Mode(Enum):
    """How a coordinator treats a quorum it cannot reach."""

    CONSISTENCY_FIRST = "consistency-first"
    """Strict quorum: only the N home replicas count; without R (or W) of them
    before the deadline the request fails."""

    AVAILABILITY_FIRST = "availability-first"
    """Sloppy quorum (Dynamo §4.6): unreachable home replicas are replaced by
    the next nodes further down the preference list, which keep the write as
    a *hint* and hand it off later. Stand-ins count towards R and W; without
    R (or W) answers before the deadline the request fails. W = 1 accepts a
    write that only a stand-in stored (what Cassandra calls consistency level
    ``ANY``)."""


class Resolution(Enum):
    """How a replica reconciles two versions of the same key."""

    VECTOR_CLOCKS = "vector-clocks"
    """Keep every version that no other version dominates (siblings)."""

    LAST_WRITER_WINS = "last-writer-wins"
    """Keep the single version with the largest (timestamp, writer) pair."""
