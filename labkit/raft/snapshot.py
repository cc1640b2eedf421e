"""Log compaction's bookkeeping (extended Raft paper, §7, Figures 12 and 13).

The rules (when to snapshot, what a follower does with a leader's snapshot)
are in :class:`~labkit.raft.node.RaftNode`; this module holds what they need
around them: how the durable storage looks, and when a log is long enough to
compact.

Storage: ``"snapshot"`` holds the latest :class:`~labkit.raft.messages.Snapshot`;
``("log", i)`` holds entry i for i in ``snapshot.last_included_index + 1 ..
log_length``. Writing a snapshot and forgetting the entries it replaces are
one batch of persists, in that order, so a crash between the two (possible
with a real disk, :mod:`labkit.net.storage`) leaves old entries behind that
recovery ignores, never a gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labkit.raft.log import RaftLog
from labkit.raft.messages import Snapshot
from labkit.sim import Context

__all__ = ["SNAPSHOT_KEY", "due", "forget_entries", "load_log", "persist_snapshot"]

SNAPSHOT_KEY = "snapshot"


def due(threshold: int | None, last_applied: int, log: RaftLog) -> bool:
    """Whether the log holds at least ``threshold`` entries already applied (None: never compact).

    The dissertation (ch. 5) suggests compacting when the log has grown large
    compared with the snapshot; a count of entries is the simple form of that policy.
    """
    return threshold is not None and last_applied - log.snapshot_index >= threshold


def persist_snapshot(ctx: Context, snapshot: Snapshot, first: int, last: int) -> None:
    """Write ``snapshot``, then forget the stored entries ``first..last`` it made useless."""
    ctx.persist(SNAPSHOT_KEY, snapshot)
    forget_entries(ctx, first, last)


def forget_entries(ctx: Context, first: int, last: int) -> None:
    """Delete the stored log entries ``first..last``."""
    for i in range(first, last + 1):
        ctx.forget(("log", i))


def load_log(storage: Mapping[Any, Any]) -> tuple[Snapshot | None, RaftLog]:
    """The snapshot (None if there is none) and the log after it, as stored."""
    snapshot: Snapshot | None = storage.get(SNAPSHOT_KEY)
    if snapshot is None:
        base, term = 0, 0
    else:
        base, term = snapshot.last_included_index, snapshot.last_included_term
    length = storage.get("log_length", 0)
    entries = (storage[("log", i)] for i in range(base + 1, length + 1))
    return snapshot, RaftLog(entries, snapshot_index=base, snapshot_term=term)
