"""The two ways a replicated store can answer when the network splits.

Brewer's CAP conjecture (PODC 2000 keynote; proved by Gilbert and Lynch,
2002) says that during a partition a store must choose between refusing some
requests and answering them with possibly stale or diverging data. Dynamo
(DeCandia et al., SOSP 2007, §4.6) chose availability with a *sloppy quorum*
and *hinted handoff*; a store with *strict quorums* (DDIA ch. 5, "Quorums for
reading and writing") chooses consistency. :class:`Mode` is that choice.

:class:`Resolution` is how replicas settle two versions of one key: keep
both as siblings when their vector clocks say they are concurrent (Dynamo
§4.4), or keep only the one with the larger timestamp (last writer wins,
which silently drops the other; DDIA ch. 5, "Last write wins").
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Mode", "Resolution"]


class Mode(Enum):
    """How a coordinator treats a quorum it cannot reach."""

    CONSISTENCY_FIRST = "consistency-first"
    """Strict quorum: only the N home replicas count; without R (or W) of them
    before the deadline the request fails."""

    AVAILABILITY_FIRST = "availability-first"
    """Sloppy quorum: unreachable home replicas are replaced by the next nodes
    on the preference list, which keep the write as a *hint* and hand it off
    later; at the deadline the coordinator answers with whatever it has."""


class Resolution(Enum):
    """How a replica reconciles two versions of the same key."""

    VECTOR_CLOCKS = "vector-clocks"
    """Keep every version that no other version dominates (siblings)."""

    LAST_WRITER_WINS = "last-writer-wins"
    """Keep the single version with the largest (timestamp, writer) pair."""
