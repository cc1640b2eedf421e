"""SQLite transactions, done right: the event store and the saga log share them.

``BEGIN IMMEDIATE`` takes the database's write lock at once, before the block
reads anything it will base a write on (the stream's version, the next
position), so no other writer can slip in between the read and the write.
The block's statements then commit together or not at all: ``ROLLBACK`` if
the block raises, and also if ``COMMIT`` itself raises (a full disk, a
``SQLITE_BUSY``), so a failed write never leaves the connection inside an open
transaction, where every later ``BEGIN`` would fail.

A :class:`ReadTransaction` is the same block opened with a plain ``BEGIN``: several reads
from one consistent snapshot of the database, taking no write lock.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["ReadTransaction", "WriteTransaction"]


class WriteTransaction:
    """``with WriteTransaction(conn) as cur:`` ... one atomic write (see the module docstring)."""

    __slots__ = ("_conn", "_cur")
    begin = "BEGIN IMMEDIATE"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Cursor:
        self._conn.execute(self.begin)
        self._cur = self._conn.cursor()
        return self._cur

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._cur.close()
        conn = self._conn
        if exc_type is None:
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        elif conn.in_transaction:
            conn.execute("ROLLBACK")


class ReadTransaction(WriteTransaction):
    """``with ReadTransaction(conn) as cur:`` ... reads from one snapshot (see the module docstring)."""

    __slots__ = ()
    begin = "BEGIN"
