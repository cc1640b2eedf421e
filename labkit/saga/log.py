"""The durable saga log, in SQLite.

The orchestrator writes what it is about to do, and what it learnt, to this
log *before* it acts (write-ahead, as in ARIES; Garcia-Molina and Salem,
SIGMOD 1987, section 4: every saga command is logged before any action is
taken). Like their section 7, which runs sagas on a database that does not
support them, the log is a set of ordinary tables. After a crash the log is
all a new orchestrator has: it replays each unfinished saga's records to
find where it stopped, then goes forward (section 5) or compensates
(section 4).

Every write is **one SQLite transaction**: ``BEGIN IMMEDIATE`` ... ``COMMIT``
(rolled back if anything in it, the ``COMMIT`` included, fails).
A process killed in the middle of a write leaves the whole batch or none of
it (SQLite's journal rolls an unfinished transaction back when the file is
next opened); ``tests/test_saga_log.py`` kills a writer with SIGKILL
mid-batch to check exactly that.

Durability setting: WAL journal with ``synchronous=FULL`` by default, so a
commit survives a power cut as well as a process crash. ``NORMAL`` (WAL
commits may be lost on power loss, never on a process crash) and ``OFF``
(for fast simulations only) can be chosen with ``synchronous=``.

Schema::

    sagas(saga_id PRIMARY KEY, definition, payload JSON, status)
    saga_log(saga_id, seq, kind, step, attempt, at, detail,
             PRIMARY KEY (saga_id, seq))

Records are stored as plain columns and JSON, never pickle.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.sqlite_tx import WriteTransaction


class LogKind(Enum):
    """The kinds of saga log record."""

    STARTED = "saga_started"
    STEP_SENT = "step_sent"  # about to send the step's action (attempt n)
    STEP_DONE = "step_done"  # the service applied it
    STEP_FAILED = "step_failed"  # the service refused it: definitely not applied
    STEP_MAYBE = "step_maybe"  # no answer after every attempt: maybe applied
    COMP_SENT = "comp_sent"  # about to send a compensation (attempt n)
    COMP_DONE = "comp_done"  # the compensation is done
    COMPLETED = "saga_completed"  # every step done
    ABORTED = "saga_aborted"  # every step that may have run is compensated


TERMINAL = frozenset({LogKind.COMPLETED, LogKind.ABORTED})


class SagaStatus(Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    ABORTED = "aborted"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One line of a saga's log. ``at`` is the orchestrator's virtual time."""

    kind: LogKind
    step: int = -1
    attempt: int = 0
    at: float = 0.0
    detail: str = ""


_SYNC = ("FULL", "NORMAL", "OFF")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sagas (
    saga_id    TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    payload    TEXT NOT NULL,
    status     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS saga_log (
    saga_id TEXT NOT NULL REFERENCES sagas(saga_id),
    seq     INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    step    INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at      REAL NOT NULL,
    detail  TEXT NOT NULL,
    PRIMARY KEY (saga_id, seq)
) WITHOUT ROWID;
"""


class SagaLog:
    """A saga log stored in the SQLite file at ``path``.

    >>> log = SagaLog(tmp / "saga.db")
    >>> log.begin("s1", "order", {"order_id": "o1"}, [LogRecord(LogKind.STARTED)])
    >>> log.append("s1", [LogRecord(LogKind.STEP_SENT, 0, 1)])
    >>> [r.kind for r in log.records("s1")]
    [<LogKind.STARTED: 'saga_started'>, <LogKind.STEP_SENT: 'step_sent'>]
    """

    def __init__(self, path: str | os.PathLike, *, synchronous: str = "FULL") -> None:
        # path: a file on disk (the log must outlive the process); synchronous: one of _SYNC.
        self.path = os.fspath(valid.instance("path", path, (str, os.PathLike)))
        valid.require(
            self.path not in ("", ":memory:"),
            "path",
            "a file on disk, not '' or ':memory:' (only a file has the WAL journal the log relies on)",
            path,
        )
        valid.one_of("synchronous", synchronous, _SYNC)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is
        # exactly one transaction and nothing is committed behind our back.
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        # synchronous first: switching to WAL then costs no fsync when it is OFF.
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        # SQLite silently keeps the old mode where WAL is impossible (a file system without shared
        # memory): refuse rather than run without the journal the guarantees above rest on.
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            self._conn.close()
            raise RuntimeError(
                f"could not switch {self.path} to WAL mode (got {mode!r}); use a file on a local disk"
            )
        self._conn.executescript(_SCHEMA)
        self.writes = 0  # committed transactions through this handle

    # -- lifecycle ---------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SagaLog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- writing (each call one transaction; `writes` counts the committed ones) --
    @staticmethod
    def _rows(saga_id: str, first_seq: int, records: Iterable[LogRecord]) -> Iterator[tuple]:
        for i, r in enumerate(records):
            valid.instance(f"records[{i}]", r, LogRecord)
            yield (saga_id, first_seq + i, r.kind.value, r.step, r.attempt, r.at, r.detail)

    @staticmethod
    def _status_after(records: Sequence[LogRecord]) -> SagaStatus | None:
        ends = (SagaStatus(r.kind.value.removeprefix("saga_")) for r in records if r.kind in TERMINAL)
        return next(ends, None)

    def begin(self, saga_id: str, definition: str, payload: dict, records: Iterable[LogRecord]) -> None:
        """Create saga ``saga_id`` and write its first records, in one transaction."""
        valid.string("saga_id", saga_id)
        valid.instance("payload", payload, dict)
        try:
            text = json.dumps(payload, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"payload must be JSON-serializable: {exc}") from None
        with WriteTransaction(self._conn) as cur:
            try:
                cur.execute(
                    "INSERT INTO sagas VALUES (?, ?, ?, ?)",
                    (saga_id, definition, text, SagaStatus.RUNNING.value),
                )
            except sqlite3.IntegrityError:
                raise ValueError(f"saga_id {saga_id!r} already exists in the log") from None
            cur.executemany(
                "INSERT INTO saga_log VALUES (?, ?, ?, ?, ?, ?, ?)", self._rows(saga_id, 0, records)
            )
        self.writes += 1

    def append(self, saga_id: str, records: Iterable[LogRecord]) -> None:
        """Append ``records`` to saga ``saga_id`` as one transaction.

        ``records`` may be any iterable (list, tuple, generator); it is read
        once, inside the transaction. A terminal record (completed / aborted)
        among them also updates the saga's status in the same transaction.
        """
        with WriteTransaction(self._conn) as cur:
            batch = list(records)
            row = cur.execute("SELECT status FROM sagas WHERE saga_id = ?", (saga_id,)).fetchone()
            if row is None:
                raise ValueError(f"unknown saga_id {saga_id!r}: call begin() first")
            (next_seq,) = cur.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM saga_log WHERE saga_id = ?", (saga_id,)
            ).fetchone()
            cur.executemany(
                "INSERT INTO saga_log VALUES (?, ?, ?, ?, ?, ?, ?)", self._rows(saga_id, next_seq, batch)
            )
            status = self._status_after(batch)
            if status is not None:
                cur.execute("UPDATE sagas SET status = ? WHERE saga_id = ?", (status.value, saga_id))
        self.writes += 1

    # -- reading ---------------------------------------------------------------
    def records(self, saga_id: str) -> list[LogRecord]:
        """Every record of ``saga_id``, in order."""
        rows = self._conn.execute(
            "SELECT kind, step, attempt, at, detail FROM saga_log WHERE saga_id = ? ORDER BY seq", (saga_id,)
        ).fetchall()
        return [LogRecord(LogKind(k), s, a, t, d) for k, s, a, t, d in rows]

    def _saga_column(self, column: str, saga_id: str) -> Any:
        row = self._conn.execute(f"SELECT {column} FROM sagas WHERE saga_id = ?", (saga_id,)).fetchone()
        if row is None:
            raise ValueError(f"unknown saga_id {saga_id!r}")
        return row[0]

    def payload(self, saga_id: str) -> dict:
        return json.loads(self._saga_column("payload", saga_id))

    def status(self, saga_id: str) -> SagaStatus:
        return SagaStatus(self._saga_column("status", saga_id))

    def sagas(self) -> list[tuple[str, SagaStatus]]:
        """(saga_id, status) of every saga, in id order."""
        rows = self._conn.execute("SELECT saga_id, status FROM sagas ORDER BY saga_id").fetchall()
        return [(s, SagaStatus(st)) for s, st in rows]

    def unfinished(self) -> list[str]:
        """Ids of the sagas that are neither completed nor aborted, in id order."""
        return [saga_id for saga_id, status in self.sagas() if status is SagaStatus.RUNNING]

    def __repr__(self) -> str:
        return f"SagaLog({self.path!r}, writes={self.writes})"
