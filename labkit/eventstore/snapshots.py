"""Snapshots: a saved aggregate state so that loading replays only the tail.

A snapshot is a *cache*, never the truth: the events are. It records the
state after version ``v`` of a stream; loading then starts from it and
replays events ``v+1..`` only. It is written after the events it summarises
have committed, in its own transaction, so a lost or missing snapshot only
costs time. A snapshot also records the aggregate class and the class's
``snapshot_schema``; when the code's idea of the state changes, bump that
number and old snapshots are ignored (the events are replayed instead).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.eventstore.recorder import encode_json
from labkit.eventstore.sqlite import SQLiteTable


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of one aggregate right after event ``version`` of its stream."""

    stream_id: str
    version: int
    aggregate_type: str
    snapshot_schema: int
    state: dict[str, Any]


class SnapshotStore(ABC):
    """Where snapshots live: save one, get the latest at or before a version."""

    def save(self, snapshot: Snapshot) -> None:
        valid.instance("snapshot", snapshot, Snapshot)
        valid.string("stream_id", snapshot.stream_id)
        valid.integer("snapshot.version", snapshot.version, ge=1)
        self._save(snapshot, encode_json(snapshot.state, f"snapshot state of {snapshot.stream_id!r}"))

    def latest(self, stream_id: str, max_version: int | None = None) -> Snapshot | None:
        """The newest snapshot of ``stream_id`` with ``version <= max_version`` (None if there is none)."""
        valid.string("stream_id", stream_id)
        valid.integer("max_version", max_version, ge=0, none=True)
        return self._latest(stream_id, max_version)

    @abstractmethod
    def _save(self, snap: Snapshot, state_json: str) -> None: ...

    @abstractmethod
    def _latest(self, stream_id: str, max_version: int | None) -> Snapshot | None: ...

    def close(self) -> None:
        """Release resources."""
        return None


class SQLiteSnapshotStore(SQLiteTable, SnapshotStore):
    """Snapshots in a ``snapshots`` table (may share the event store's file)."""

    schema = (
        "snapshots (stream_id TEXT NOT NULL, version INTEGER NOT NULL, aggregate_type TEXT NOT NULL, "
        "snapshot_schema INTEGER NOT NULL, state TEXT NOT NULL, PRIMARY KEY (stream_id, version))"
    )

    def _save(self, snap: Snapshot, state_json: str) -> None:
        with self._lock:
            self._conn.execute(  # one statement: its own transaction in autocommit mode
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?)",
                (snap.stream_id, snap.version, snap.aggregate_type, snap.snapshot_schema, state_json),
            )

    def _latest(self, stream_id: str, max_version: int | None) -> Snapshot | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT version, aggregate_type, snapshot_schema, state FROM snapshots "
                "WHERE stream_id = ? AND version <= ? ORDER BY version DESC LIMIT 1",
                (stream_id, (1 << 62) if max_version is None else max_version),
            ).fetchone()
        if row is None:
            return None
        return Snapshot(stream_id, row[0], row[1], row[2], json.loads(row[3]))


class InMemorySnapshotStore(SQLiteSnapshotStore):
    """The same table in an SQLite database held in memory: nothing survives the process."""

    def __init__(self) -> None:
        super().__init__(":memory:")
