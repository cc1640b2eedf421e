"""An event store in one SQLite file (Python's ``sqlite3``; no server).

How the contract is kept
------------------------

*Whole batch or nothing.* Every append is one transaction
(``BEGIN IMMEDIATE`` ... ``COMMIT``); any failure rolls it back. SQLite's
write-ahead log makes a commit atomic even if the process is killed half-way
through writing it: frames of a transaction that never reached its commit
record are ignored when the database is next opened.

*Optimistic concurrency enforced by the database.* The ``events`` table has
``UNIQUE (stream_id, version)``. A writer that read the stream at version
``e`` inserts versions ``e+1, e+2, ...``; if anybody appended since, version
``e+1`` already exists and the insert fails with a constraint violation,
which becomes :class:`~labkit.eventstore.errors.ConcurrencyError`. There is
no window between "check the version" and "write" because the check *is*
the write. (The one case a uniqueness constraint cannot see is a writer
claiming a version the stream has not reached yet; a lookup of version ``e``
in the same transaction refuses it.)

*A global order without gaps.* ``read_all`` follows ``position``, an
integer assigned as ``max(position) + 1`` *inside* the write transaction.
``BEGIN IMMEDIATE`` takes SQLite's single write lock before that ``max`` is
read and keeps it until ``COMMIT``, so transactions receive positions in the
order they commit, and a transaction that rolls back gives its positions to
the next one. In WAL mode a reader sees a snapshot that contains exactly the
transactions committed before it started: always a prefix ``1..p`` of the
positions. A reader that resumes from its checkpoint can therefore never
skip an event that commits "late". (Databases with concurrent writers and
non-transactional sequences, e.g. PostgreSQL ``BIGSERIAL``, do not give this
for free: position 11 may commit before position 10, and a reader that saw
11 would move its checkpoint past 10.)

*Durability* is chosen with :class:`Durability`: ``FULL`` (the default)
syncs the write-ahead log to disk at every commit, so a committed append
survives a power cut; ``NORMAL`` syncs only at checkpoints, which is much
faster for one-event transactions, survives a crash of the process (the data
is in the operating system's cache) and never corrupts the file, but may
lose the last commits if the machine itself loses power.

One :class:`SQLiteEventStore` owns one connection; open one per process
(never share a connection across ``fork``). Many processes may write to the
same file at once: they queue on the write lock (``busy_timeout``).
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, ClassVar

from labkit import validation as valid
from labkit.eventstore.errors import ConcurrencyError, StoreOpenError, StreamNotFoundError
from labkit.eventstore.recorder import (
    EncodedEvent,
    EventStore,
    RecordedEvent,
    StreamInfo,
    decode_objects,
    decode_rows,
    stored_rows,
)
from labkit.sqlite_tx import ReadTransaction, WriteTransaction


class Durability(enum.Enum):
    """How hard a commit tries to reach the disk (SQLite ``PRAGMA synchronous`` in WAL mode)."""

    FULL = "FULL"  # fsync the WAL at every commit: survives power loss
    NORMAL = "NORMAL"  # fsync only at checkpoints: survives process crashes, not power loss


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,         -- global order, assigned under the write lock
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    type           TEXT    NOT NULL,
    data           TEXT    NOT NULL,            -- JSON object
    schema_version INTEGER NOT NULL,
    metadata       TEXT    NOT NULL,            -- JSON object
    UNIQUE (stream_id, version)                 -- the optimistic-concurrency guard
);
-- Stream metadata only: versions and positions are read from the events index, so an
-- append touches one table (fewer pages to write per commit).
CREATE TABLE IF NOT EXISTS streams (
    stream_id      TEXT    PRIMARY KEY,
    metadata       TEXT    NOT NULL
);
"""

_COLUMNS = "position, stream_id, version, type, data, schema_version, metadata"


def connect(
    path: str | os.PathLike[str], durability: Durability = Durability.FULL, busy_timeout: float = 30.0
) -> sqlite3.Connection:
    """Open ``path`` in WAL mode with the given durability; autocommit (we issue BEGIN ourselves)."""
    valid.instance("durability", durability, Durability)
    valid.number("busy_timeout", busy_timeout, gt=0, unit="seconds")
    valid.instance("path", path, (str, os.PathLike))
    try:
        conn = sqlite3.connect(
            os.fspath(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StoreOpenError(_cannot_open(path, exc)) from exc
    try:
        if os.fspath(path) != ":memory:":
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":  # e.g. a file system without shared memory
                raise StoreOpenError(
                    f"could not switch {os.fspath(path)!r} to WAL mode (got {mode!r}); "
                    "put the file on a local disk"
                )
        conn.execute(f"PRAGMA synchronous={durability.value}")
    except sqlite3.Error as exc:
        conn.close()
        raise StoreOpenError(_cannot_open(path, exc)) from exc
    except StoreOpenError:
        conn.close()
        raise
    return conn


def _cannot_open(path: str | os.PathLike[str], exc: Exception) -> str:
    return (
        f"cannot open the SQLite file {os.fspath(path)!r}: {exc}. Check that its folder exists, "
        "that you may write there, and that the file (if it exists) is an SQLite database"
    )


class SQLiteTable:
    """A store kept in one table of an SQLite file (``schema``: the table's name and columns),
    behind a lock so that threads may share it: the snapshot and the checkpoint stores."""

    schema: ClassVar[str]

    def __init__(self, path: str | os.PathLike[str], durability: Durability = Durability.FULL) -> None:
        self._conn = connect(path, durability)
        self._lock = threading.Lock()
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS {self.schema}")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class SQLiteEventStore(EventStore):
    """Event streams in an SQLite file (see the module docstring for the guarantees)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        durability: Durability = Durability.FULL,
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = Path(path) if os.fspath(path) != ":memory:" else None
        self.durability = durability
        self._conn = connect(path, durability, busy_timeout)
        self._lock = threading.Lock()  # one connection: one statement at a time across threads
        try:
            with self._lock, WriteTransaction(self._conn) as cur:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        cur.execute(statement)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreOpenError(_cannot_open(path, exc)) from exc

    # ------------------------------------------------------------- writes
    def _insert_rows(self, cur: sqlite3.Cursor, rows: list[tuple]) -> None:
        """Insert the batch (one statement, many rows); a test overrides this to die half-way."""
        cur.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def _append(
        self, stream_id: str, events: list[EncodedEvent], expected_version: int, meta_json: str | None
    ) -> list[RecordedEvent]:
        with self._lock, WriteTransaction(self._conn) as cur:
            # Only for a claim beyond the stream's end; "someone wrote first" is caught by UNIQUE below.
            if expected_version > 0 and self._position_of(cur, stream_id, expected_version) is None:
                raise ConcurrencyError(stream_id, expected_version, self._version_in(cur, stream_id))
            # Under the write lock (BEGIN IMMEDIATE): nobody else can take positions until we commit.
            head = cur.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]
            rows = stored_rows(events, stream_id, head, expected_version)
            try:
                self._insert_rows(cur, rows)
            except sqlite3.IntegrityError as exc:
                if "stream_id" not in str(exc):
                    raise
                raise ConcurrencyError(
                    stream_id, expected_version, self._version_in(cur, stream_id)
                ) from None
            if meta_json is not None:  # only for a new stream: inside the same transaction
                cur.execute("INSERT OR REPLACE INTO streams VALUES (?, ?)", (stream_id, meta_json))
        return decode_rows(rows)

    @staticmethod
    def _version_in(cur: sqlite3.Cursor, stream_id: str) -> int:
        row = cur.execute(
            "SELECT version FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1", (stream_id,)
        ).fetchone()
        return 0 if row is None else row[0]

    @staticmethod
    def _position_of(cur: sqlite3.Cursor, stream_id: str, version: int) -> int | None:
        row = cur.execute(
            "SELECT position FROM events WHERE stream_id = ? AND version = ?", (stream_id, version)
        ).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------------- reads
    def _stream_rows(self, columns: str, stream_id: str, from_version: int, to_version: int | None) -> list:
        """``columns`` of the stream's events with ``from_version < version <= to_version``, in order."""
        sql = f"SELECT {columns} FROM events WHERE stream_id = ? AND version > ?"
        args: tuple = (stream_id, from_version)
        if to_version is not None:
            sql += " AND version <= ?"
            args += (to_version,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY version", args).fetchall()
            if not rows and self._position_of(self._conn.cursor(), stream_id, 1) is None:
                raise StreamNotFoundError(stream_id)
        return rows

    def _read(self, stream_id: str, from_version: int, to_version: int | None) -> list[RecordedEvent]:
        return decode_rows(self._stream_rows(_COLUMNS, stream_id, from_version, to_version))

    def _read_payloads(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[tuple[str, dict[str, Any], int, int]]:
        # Only the four columns replay needs: fewer values to fetch, no record objects to build.
        rows = self._stream_rows("type, data, schema_version, position", stream_id, from_version, to_version)
        datas = decode_objects([r[1] for r in rows], [r[3] for r in rows])
        return [(r[0], d, r[2], r[3]) for r, d in zip(rows, datas, strict=True)]

    def _read_all(self, from_position: int, limit: int | None) -> list[RecordedEvent]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
                (from_position, -1 if limit is None else limit),
            ).fetchall()
        return decode_rows(rows)

    def _stream_info(self, stream_id: str) -> StreamInfo:
        with self._lock, ReadTransaction(self._conn) as cur:  # one snapshot for the three lookups
            first = self._position_of(cur, stream_id, 1)
            if first is None:
                raise StreamNotFoundError(stream_id)
            version, last = cur.execute(
                "SELECT version, position FROM events WHERE stream_id = ? ORDER BY version DESC LIMIT 1",
                (stream_id,),
            ).fetchone()
            meta = cur.execute("SELECT metadata FROM streams WHERE stream_id = ?", (stream_id,)).fetchone()
        return StreamInfo(stream_id, version, first, last, {} if meta is None else json.loads(meta[0]))

    def _stream_version(self, stream_id: str) -> int:
        with self._lock:
            return self._version_in(self._conn.cursor(), stream_id)

    def _set_stream_metadata(self, stream_id: str, metadata_json: str) -> None:
        with self._lock, WriteTransaction(self._conn) as cur:
            if self._position_of(cur, stream_id, 1) is None:
                raise StreamNotFoundError(stream_id)
            cur.execute("INSERT OR REPLACE INTO streams VALUES (?, ?)", (stream_id, metadata_json))

    def _stream_ids(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT stream_id FROM events WHERE version = 1 ORDER BY position"
            ).fetchall()
        return [r[0] for r in rows]

    def _head_position(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0]

    # -------------------------------------------------------------- housekeeping
    def check_invariants(self) -> None:
        """Raise AssertionError if positions or versions have a gap or a repeat."""
        self._require_open()
        with self._lock, ReadTransaction(self._conn) as cur:
            count, top = cur.execute("SELECT count(*), coalesce(max(position), 0) FROM events").fetchone()
            assert count == top, f"positions have a gap: {count} events, highest position {top}"
            bad = cur.execute(
                "SELECT stream_id, count(*), min(version), max(version) FROM events GROUP BY stream_id "
                "HAVING min(version) != 1 OR max(version) != count(*)"
            ).fetchall()
            assert not bad, f"streams with version gaps: {bad[:5]}"
            orphans = cur.execute(
                "SELECT count(*) FROM streams WHERE stream_id NOT IN (SELECT stream_id FROM events)"
            ).fetchone()[0]
            assert orphans == 0, f"{orphans} stream metadata rows without events"

    def close(self) -> None:
        super().close()
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteEventStore({str(self.path or ':memory:')!r}, durability={self.durability.name})"
