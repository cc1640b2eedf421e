"""An event store in a Python list: the reference backend.

Same contract as the SQLite backend, nothing durable. Events are kept as
JSON text, exactly as a database would keep them, so that a caller who
mutates a dict after appending (or after reading) cannot change history, and
so that a non-serializable event fails here just as it would on disk.

A single lock makes check-version-and-append one atomic step for threads in
one process; that lock plays the role of the database's write lock.
"""

from __future__ import annotations

import json
import threading

from labkit.eventstore.errors import ConcurrencyError, StreamNotFoundError
from labkit.eventstore.recorder import (
    EncodedEvent,
    EventStore,
    RecordedEvent,
    StreamInfo,
    decode_rows,
    stored_rows,
)

# A stored row: (position, stream_id, version, type, data_json, schema_version, metadata_json)
_Row = tuple[int, str, int, str, str, int, str]


class InMemoryEventStore(EventStore):
    """All streams in memory; thread-safe; lost when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[_Row] = []  # Invariant: self._rows[i][0] == i + 1 (positions gap-free)
        self._streams: dict[str, list[_Row]] = {}  # Invariant: rows[i][2] == i + 1 (versions gap-free)
        self._stream_metadata: dict[str, str] = {}

    def _append(
        self, stream_id: str, events: list[EncodedEvent], expected_version: int, meta_json: str | None
    ) -> list[RecordedEvent]:
        with self._lock:
            stream = self._streams.get(stream_id)
            actual = len(stream) if stream is not None else 0
            if actual != expected_version:
                raise ConcurrencyError(stream_id, expected_version, actual)
            new_rows: list[_Row] = stored_rows(events, stream_id, len(self._rows), expected_version)
            # Nothing above can fail half-way through the batch; the two extends are the commit.
            if stream is None:
                stream = self._streams[stream_id] = []
                self._stream_metadata[stream_id] = meta_json or "{}"
            stream.extend(new_rows)
            self._rows.extend(new_rows)
        return decode_rows(new_rows)

    def _read(self, stream_id: str, from_version: int, to_version: int | None) -> list[RecordedEvent]:
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is None:
                raise StreamNotFoundError(stream_id)
            rows = stream[from_version:to_version]  # version v is at index v - 1
        return decode_rows(rows)

    def _read_all(self, from_position: int, limit: int | None) -> list[RecordedEvent]:
        with self._lock:
            end = None if limit is None else from_position + limit
            rows = self._rows[from_position:end]  # position p is at index p - 1
        return decode_rows(rows)

    def _stream_info(self, stream_id: str) -> StreamInfo:
        with self._lock:
            stream = self._streams.get(stream_id)
            if stream is None:
                raise StreamNotFoundError(stream_id)
            meta = self._stream_metadata[stream_id]
            return StreamInfo(stream_id, len(stream), stream[0][0], stream[-1][0], json.loads(meta))

    def _stream_version(self, stream_id: str) -> int:
        with self._lock:
            stream = self._streams.get(stream_id)
            return 0 if stream is None else len(stream)

    def _set_stream_metadata(self, stream_id: str, metadata_json: str) -> None:
        with self._lock:
            if stream_id not in self._streams:
                raise StreamNotFoundError(stream_id)
            self._stream_metadata[stream_id] = metadata_json

    def _stream_ids(self) -> list[str]:
        with self._lock:
            return list(self._streams)  # dicts keep insertion order: creation order

    def _head_position(self) -> int:
        with self._lock:
            return len(self._rows)

    def check_invariants(self) -> None:
        """Raise AssertionError if positions or versions have a gap or a repeat."""
        self._require_open()
        with self._lock:
            for i, row in enumerate(self._rows):
                assert row[0] == i + 1, f"position gap at index {i}: {row[0]}"
            for sid, rows in self._streams.items():
                for i, row in enumerate(rows):
                    assert row[1] == sid and row[2] == i + 1, f"stream {sid!r} version gap at {i}"

    def __repr__(self) -> str:
        return f"InMemoryEventStore(streams={len(self._streams)}, events={len(self._rows)})"
