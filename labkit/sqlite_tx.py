"""One SQLite write transaction, done right: the event store and the saga log share it.

``BEGIN IMMEDIATE`` takes the database's write lock at once, before the block
reads anything it will base a write on (the stream's version, the next
position), so no other writer can slip in between the read and the write.
The block's statements then commit together or not at all: ``ROLLBACK`` if
the block raises, and also if ``COMMIT`` itself raises (a full disk, a
``SQLITE_BUSY``), so a failed write never leaves the connection inside an open
transaction, where every later ``BEGIN`` would fail.
"""

from __future__ import annotations

import sqlite3
from typing import Any

__all__ = ["WriteTransaction"]


class WriteTransaction:
    """``with WriteTransaction(conn) as cur:`` ... one atomic write (see the module docstring)."""

    __slots__ = ("_conn", "_cur")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Cursor:
        self._conn.execute("BEGIN IMMEDIATE")
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
