"""Real databases under the checker: the same list-append transactions on SQLite and PostgreSQL.

A workload is a set of programs (reads and appends, as in
:mod:`labkit.txn.generate`) run by a few clients, each on its own connection,
at one isolation level. The order of turns is chosen in advance (seeded), as
in :func:`labkit.txn.run.run`, and the database does the rest: when a
statement has to wait for a lock, its client waits, and the others go on.
That the statement waits is not guessed from a timeout: PostgreSQL says so
(``pg_blocking_pids``), and SQLite never waits (``busy_timeout`` 0: a
conflict is an immediate ``SQLITE_BUSY``, the transaction is rolled back). So
a run is the same every time, up to which transaction PostgreSQL picks when
it breaks a deadlock.

Every key is a row ``(k, v)`` with ``v`` the list as text (``"1,4,2"``).
An append is either one atomic statement (``v = v || ',' || x``) or, with
``read_modify_write=True``, what application code often does: ``SELECT`` the
list, add the element in Python, write the whole list back (both statements
are recorded in the history: the read is a real read). A transaction the
database refuses (serialization failure, deadlock, busy) is rolled back and
recorded as aborted. After the workload, one more transaction reads every key
(``end``).

The levels offered (PostgreSQL 15 manual, §13.2 "Transaction Isolation";
SQLite's "Isolation In SQLite"):

* PostgreSQL: ``READ UNCOMMITTED`` (behaves as READ COMMITTED), ``READ
  COMMITTED``, ``REPEATABLE READ`` (snapshot isolation, §13.2.2),
  ``SERIALIZABLE`` (serializable snapshot isolation, §13.2.3; Ports & Grittner,
  VLDB 2012);
* SQLite (in WAL mode): ``BEGIN DEFERRED``, ``BEGIN IMMEDIATE``, ``BEGIN
  EXCLUSIVE``, all serializable (one writer at a time, readers on a snapshot);
  and ``read_uncommitted`` in shared-cache mode, where connections of one
  process may read each other's uncommitted writes.
"""

from __future__ import annotations

import concurrent.futures as cf
import random
import sqlite3
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Any

from labkit import validation as valid
from labkit.txn.checker import CheckResult, check
from labkit.txn.history import Fun, History, Op, Status, Txn, format_value
from labkit.txn.run import (
    OBSERVER,
    Append,
    Commit,
    Event,
    EventKind,
    Read,
    Step,
    Turns,
    _schedule,
    _validate_programs,
)

__all__ = [
    "PgLevel",
    "SqliteLevel",
    "Refused",
    "Session",
    "Database",
    "SQLiteDatabase",
    "PostgresDatabase",
    "DbRun",
    "run_workload",
    "workload",
    "Survey",
    "survey",
    "PAIRS",
    "run_pair",
]


class PgLevel(Enum):
    """PostgreSQL's isolation levels, as SQL names them."""

    READ_UNCOMMITTED = "READ UNCOMMITTED"
    READ_COMMITTED = "READ COMMITTED"
    REPEATABLE_READ = "REPEATABLE READ"
    SERIALIZABLE = "SERIALIZABLE"

    def __str__(self) -> str:
        return self.value


class SqliteLevel(Enum):
    """SQLite's ways to begin a transaction, and its one weaker mode."""

    DEFERRED = "DEFERRED"
    IMMEDIATE = "IMMEDIATE"
    EXCLUSIVE = "EXCLUSIVE"
    READ_UNCOMMITTED = "read_uncommitted (shared cache)"

    def __str__(self) -> str:
        return self.value


class Refused(Exception):
    """The database refused the transaction (serialization failure, deadlock, busy): it is rolled back."""


# ---------------------------------------------------------------------------
# The interface a database offers the runner
# ---------------------------------------------------------------------------
class Session(ABC):
    """One client's connection. Each method runs one or two statements and may raise :class:`Refused`."""

    @abstractmethod
    def begin(self) -> None: ...

    @abstractmethod
    def read(self, key: int) -> tuple: ...

    @abstractmethod
    def append(self, key: int, element: int) -> None: ...

    @abstractmethod
    def read_modify_write(self, key: int, element: int) -> tuple:
        """Read the list, add ``element`` in Python, write it back; return what was read."""

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def rollback(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def blocked(self) -> bool:
        """Is this session's statement waiting for a lock right now?"""
        return False


class Database(ABC):
    """A database the runner can test: its levels, a fresh table, sessions."""

    name: str
    levels: tuple[Enum, ...]
    waits: bool  # can a statement wait for a lock (then sessions run on their own threads)

    @abstractmethod
    def reset(self) -> None:
        """An empty table ``lists(k, v)``."""

    @abstractmethod
    def session(self, level: Enum) -> Session: ...

    def close(self) -> None:  # noqa: B027 - optional
        pass


def _decode(v: str | None) -> tuple:
    return () if v is None or v == "" else tuple(int(x) for x in v.split(","))


class _SqlSession(Session):
    """The statements of both databases, on a table ``lists(k, v)`` that holds each list as
    comma-separated ints. A subclass opens ``conn``, begins at its level, and maps the
    database's refusals to :class:`Refused` in ``_do``."""

    conn: Any
    mark = "?"  # the driver's parameter placeholder

    @abstractmethod
    def _do(self, sql: str, args: Sequence[Any] = ()) -> Any: ...

    def _upsert(self, key: int, v: str, update: str) -> None:
        m = self.mark
        self._do(
            f"INSERT INTO lists (k, v) VALUES ({m}, {m}) ON CONFLICT (k) DO UPDATE SET v = {update}", (key, v)
        )

    def read(self, key: int) -> tuple:
        row = self._do(f"SELECT v FROM lists WHERE k = {self.mark}", (key,)).fetchone()
        return _decode(row[0] if row else None)

    def append(self, key: int, element: int) -> None:
        self._upsert(key, str(element), "lists.v || ',' || excluded.v")

    def read_modify_write(self, key: int, element: int) -> tuple:
        seen = self.read(key)
        self._upsert(key, ",".join(str(e) for e in (*seen, element)), "excluded.v")
        return seen

    def commit(self) -> None:
        self._do("COMMIT")

    def close(self) -> None:
        self.conn.close()


# ---------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------
class _SqliteSession(_SqlSession):
    def __init__(self, db: SQLiteDatabase, level: SqliteLevel) -> None:
        self.level = level
        shared = level is SqliteLevel.READ_UNCOMMITTED
        uri = f"file:{db.path}" + ("?cache=shared" if shared else "")
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=0)
        self.conn.execute("PRAGMA busy_timeout = 0")
        self.conn.execute("PRAGMA synchronous = OFF")  # a throwaway file: no fsync per commit
        if shared:
            self.conn.execute("PRAGMA read_uncommitted = 1")

    def _do(self, sql: str, args: Sequence[Any] = ()) -> Any:
        try:
            return self.conn.execute(sql, args)
        except sqlite3.OperationalError as exc:
            msg = str(exc)
            if "locked" in msg or "busy" in msg:
                raise Refused(f"SQLite: {msg}") from exc
            raise

    def begin(self) -> None:
        mode = "DEFERRED" if self.level is SqliteLevel.READ_UNCOMMITTED else self.level.value
        self._do(f"BEGIN {mode}")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


class SQLiteDatabase(Database):
    """A SQLite database file in a temporary folder, in WAL mode (deleted by ``close()``).

    Commits are not flushed to disk (``synchronous = OFF``): the file is thrown
    away, and durability has nothing to do with isolation.
    """

    name = "SQLite"
    levels = tuple(SqliteLevel)
    waits = False

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="labkit-sqlite-")
        self.path = Path(self._dir.name) / "lists.db"
        self._keeper: sqlite3.Connection | None = None

    def reset(self) -> None:
        if self._keeper is not None:  # the shared cache lives while one connection to it is open
            self._keeper.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE lists (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.close()
        self._keeper = sqlite3.connect(f"file:{self.path}?cache=shared", uri=True, check_same_thread=False)

    def session(self, level: Enum) -> Session:
        valid.one_of("level", level, self.levels)
        return _SqliteSession(self, level)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._keeper is not None:
            self._keeper.close()
            self._keeper = None
        self._dir.cleanup()


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
REFUSED_SQLSTATES = {"40001": "serialization failure", "40P01": "deadlock detected"}


class _PgSession(_SqlSession):
    mark = "%s"

    def __init__(self, db: PostgresDatabase, level: PgLevel) -> None:
        self.db = db
        self.level = level
        self.conn = db.server.connect(autocommit=True)
        self.pid = self.conn.info.backend_pid

    def _do(self, sql: str, args: Sequence[Any] = ()) -> Any:
        import psycopg

        try:
            return self.conn.execute(sql, args)
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None)
            if state in REFUSED_SQLSTATES:
                raise Refused(f"PostgreSQL: {REFUSED_SQLSTATES[state]} ({str(exc).splitlines()[0]})") from exc
            raise

    def begin(self) -> None:
        self._do(f"BEGIN ISOLATION LEVEL {self.level.value}")

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def blocked(self) -> bool:
        return self.db.blocked(self.pid)


class PostgresDatabase(Database):
    """A database on a :class:`~labkit.txn.postgres.TempPostgres` server."""

    name = "PostgreSQL"
    levels = tuple(PgLevel)
    waits = True

    def __init__(self, server: Any) -> None:
        self.server = server
        self._monitor = server.connect(autocommit=True)
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._monitor.execute("DROP TABLE IF EXISTS lists")
            self._monitor.execute("CREATE TABLE lists (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")

    def session(self, level: Enum) -> Session:
        valid.one_of("level", level, self.levels)
        return _PgSession(self, level)  # type: ignore[arg-type]

    def blocked(self, pid: int) -> bool:
        """Whether backend ``pid`` waits for a lock another backend holds (the server's own answer)."""
        with self._lock:
            row = self._monitor.execute("SELECT cardinality(pg_blocking_pids(%s))", (pid,)).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self._monitor.close()


# ---------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DbRun:
    """One workload on one database at one level: the history and what was seen."""

    database: str
    level: Enum
    read_modify_write: bool
    history: History
    events: tuple[Event, ...]
    reasons: Mapping[str, str]
    final: Mapping[int, tuple]
    seconds: float
    lost_appends: tuple[tuple[int, int], ...] = field(default=())

    @cached_property
    def result(self) -> CheckResult:
        return check(self.history)

    @property
    def committed(self) -> int:
        return sum(t.status is Status.COMMITTED for t in self.history if t.name != OBSERVER)

    @property
    def aborted(self) -> int:
        return sum(t.status is Status.ABORTED for t in self.history)

    def summary(self) -> str:
        found = ", ".join(sorted(a.value for a in self.result.anomalies)) or "no anomaly"
        return (
            f"{self.database} {self.level}{' (read-modify-write)' if self.read_modify_write else ''}: "
            f"{self.committed} committed, {self.aborted} aborted; {found}"
        )


class _Client:
    """A session, and a thread to run its statements when the database can make them wait."""

    def __init__(self, session: Session, threaded: bool) -> None:
        self.session = session
        self.pool = cf.ThreadPoolExecutor(max_workers=1) if threaded else None

    def submit(self, fn: Callable[[], Any]) -> cf.Future:
        if self.pool is not None:
            return self.pool.submit(fn)
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        self.session.close()


class _Runner(Turns):
    """Turns of clients, as in :mod:`labkit.txn.run`, against a real database."""

    SETTLE_TIMEOUT = 30.0

    def __init__(
        self,
        db: Database,
        level: Enum,
        programs: dict[str, tuple[Step, ...]],
        clients: dict[str, list[str]],
        rmw: bool,
    ) -> None:
        super().__init__(clients)
        self.db, self.level, self.programs, self.rmw = db, level, programs, rmw
        self.conn = {c: _Client(db.session(level), db.waits) for c in clients}
        self.pc = dict.fromkeys(programs, 0)
        self.ops: dict[str, list[Op]] = {n: [] for n in programs}
        self.status: dict[str, Status] = {}
        self.reasons: dict[str, str] = {}
        self.started: set[str] = set()
        self.waiting: dict[str, tuple[cf.Future, Step]] = {}  # a statement that waits for a lock
        self.events: list[Event] = []

    def emit(self, name: str, kind: EventKind, text: str) -> None:
        self.events.append(Event(len(self.events), name, kind, text))

    def done(self, name: str) -> bool:
        return name in self.status

    def call(self, name: str, step: Step) -> Callable[[], Any]:
        s = self.conn[self.client_of[name]].session
        first = name not in self.started
        self.started.add(name)

        def go() -> Any:
            if first:
                s.begin()
            if isinstance(step, Read):
                return s.read(step.key)
            if isinstance(step, Append):
                return (
                    s.read_modify_write(step.key, step.element)
                    if self.rmw
                    else s.append(step.key, step.element)
                )
            return s.commit()

        return go

    def settle(self, fut: cf.Future, name: str) -> bool:
        """Wait until the statement finished (True) or waits for a lock (False)."""
        session = self.conn[self.client_of[name]].session
        deadline = time.monotonic() + self.SETTLE_TIMEOUT
        while True:
            try:
                fut.result(timeout=0.002)
                return True
            except cf.TimeoutError:
                pass
            except Exception:  # noqa: BLE001 - the statement failed: it finished
                return True
            if session.blocked() and not fut.done():
                return False
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name}'s statement neither finished nor waited for a lock in {self.SETTLE_TIMEOUT} s"
                )

    def finish(self, name: str, step: Step, fut: cf.Future) -> None:
        try:
            value = fut.result()
        except Refused as exc:
            self.conn[self.client_of[name]].session.rollback()
            self.status[name] = Status.ABORTED
            self.reasons[name] = str(exc)
            self.emit(name, EventKind.ABORT, f"{step}: abort ({exc})")
            return
        if isinstance(step, Read):
            self.ops[name].append(Op(Fun.READ, step.key, value))
            self.emit(name, EventKind.READ, f"r {step.key} = {format_value(value)}")
        elif isinstance(step, Append):
            if self.rmw:
                self.ops[name].append(Op(Fun.READ, step.key, value))
            self.ops[name].append(Op(Fun.APPEND, step.key, step.element))
            self.emit(name, EventKind.WRITE, f"a {step.key} {step.element}")
        else:
            self.status[name] = Status.COMMITTED
            self.emit(name, EventKind.COMMIT, "commit")
        self.pc[name] += 1

    def attempt(self, name: str) -> None:
        step = self.programs[name][self.pc[name]]
        fut = self.conn[self.client_of[name]].submit(self.call(name, step))
        if self.settle(fut, name):
            self.finish(name, step, fut)
        else:
            self.waiting[name] = (fut, step)
            self.emit(name, EventKind.WAIT, f"{step}: waits for a lock")

    def resume(self, name: str) -> bool:
        fut, step = self.waiting[name]
        if not self.settle(fut, name):
            return False
        del self.waiting[name]
        self.finish(name, step, fut)
        return True

    def play(self, order: Sequence[str]) -> None:
        super().play(order)
        # Everything left waits for a lock: only a deadlock can be left, and the database breaks it.
        deadline = time.monotonic() + self.SETTLE_TIMEOUT
        while self.waiting:
            self.wake()
            if self.waiting:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"transactions {sorted(self.waiting)} still wait after the workload")
                time.sleep(0.005)
        unfinished = [n for n in self.programs if n not in self.status]
        if unfinished:
            raise RuntimeError(f"transactions {unfinished} did not finish")

    def close(self) -> None:
        for c in self.conn.values():
            c.close()


def _final_read(db: Database, level: Enum, keys: Sequence[int]) -> tuple[Txn, dict[int, tuple]]:
    s = db.session(level)
    try:
        s.begin()
        final = {k: s.read(k) for k in keys}
        s.commit()
    finally:
        s.close()
    return Txn(OBSERVER, tuple(Op(Fun.READ, k, v) for k, v in final.items())), final


def run_workload(
    db: Database,
    level: Enum,
    programs: Mapping[str, Sequence[Step]],
    order: Sequence[str],
    clients: Mapping[str, Sequence[str]] | None = None,
    *,
    read_modify_write: bool = False,
) -> DbRun:
    """Run ``programs`` (reads, appends, commit; integer keys) on ``db`` at ``level``.

    ``clients`` maps each client to the programs it runs in turn, and
    ``order`` lists client names, one per step (see
    :func:`labkit.txn.run.random_schedule`); without ``clients`` each program
    is a client of its own and ``order`` lists program names. Each client has
    its own connection.
    """
    valid.instance("db", db, Database)
    valid.one_of("level", level, db.levels)
    progs = _validate_programs(programs)
    keys: set[Hashable] = set()
    for name, steps in progs.items():
        for s in steps:
            if not isinstance(s, (Read, Append, Commit)):
                raise TypeError(
                    f"{name}: a database workload has Read, Append and Commit steps only, got {s!r}"
                )
            if isinstance(s, (Read, Append)):
                if isinstance(s.key, bool) or not isinstance(s.key, int):
                    raise TypeError(f"{name}: keys are ints (rows of a table), got {s.key!r}")
                keys.add(s.key)
            if isinstance(s, Append) and (isinstance(s.element, bool) or not isinstance(s.element, int)):
                raise TypeError(f"{name}: elements are ints, got {s.element!r}")
    who, order = _schedule(progs, valid.instance("order", order, Sequence), clients)
    db.reset()
    start = time.perf_counter()
    runner = _Runner(db, level, progs, who, read_modify_write)
    try:
        runner.play(order)
    finally:
        runner.close()
    seconds = time.perf_counter() - start
    txns = [Txn(n, tuple(runner.ops[n]), runner.status[n]) for n in progs]
    end, final = _final_read(db, level, sorted(keys))
    appended = {(o.key, o.value) for t in txns if t.committed for o in t.ops if o.f is Fun.APPEND}
    present = {(k, e) for k, v in final.items() for e in v}
    return DbRun(
        database=db.name,
        level=level,
        read_modify_write=read_modify_write,
        history=(*txns, end),
        events=tuple(runner.events),
        reasons=dict(runner.reasons),
        final=final,
        seconds=seconds,
        lost_appends=tuple(sorted(appended - present)),
    )


# ---------------------------------------------------------------------------
# Workloads and surveys for the notebook and the tests
# ---------------------------------------------------------------------------
def workload(
    seed: int, txns: int = 40, keys: int = 3, clients: int = 4, max_ops: int = 4
) -> tuple[dict[str, tuple[Step, ...]], tuple[str, ...], dict[str, list[str]]]:
    """A random list-append workload on rows ``0..keys-1``: ``(programs, order, clients)``, from ``seed``."""
    from labkit.txn.generate import list_append_programs
    from labkit.txn.run import random_schedule

    rng = random.Random(seed)
    programs = list_append_programs(rng, txns, keys, max_ops, prefix=None)
    who, order = random_schedule(rng, programs, clients)
    return programs, order, who


@dataclass
class Survey:
    """Many runs of :func:`workload` per level: ``runs[label]`` lists them, label as ``"PostgreSQL READ COMMITTED"``."""

    runs: dict[str, list[DbRun]] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        """label -> anomaly name -> in how many runs the checker found it."""
        out = {}
        for label, runs in self.runs.items():
            c: dict[str, int] = {}
            for r in runs:
                for a in r.result.anomalies:
                    c[a.value] = c.get(a.value, 0) + 1
            out[label] = c
        return out

    def totals(self) -> dict[str, int]:
        return {label: len(runs) for label, runs in self.runs.items()}

    def table(self) -> str:
        """One line per label: runs, anomalies found (in how many runs), aborts, appends lost."""
        lines = []
        for label, runs in self.runs.items():
            found = ", ".join(f"{a} in {n}" for a, n in sorted(self.counts()[label].items())) or "no anomaly"
            aborted = sum(r.aborted for r in runs)
            total = sum(len(r.history) - 1 for r in runs)
            lost = sum(len(r.lost_appends) for r in runs)
            lines.append(
                f"{label:48} {len(runs)} runs: {found}; {aborted}/{total} transactions aborted; {lost} appends lost"
            )
        return "\n".join(lines)

    def frame(self) -> Any:
        """The same as :meth:`table`, as a pandas DataFrame: one row per label (a notebook shows it as a
        table that fits its width, where a line of text would wrap)."""
        import pandas as pd

        rows = {}
        counts = self.counts()
        for label, runs in self.runs.items():
            found = ", ".join(f"{a} in {n}" for a, n in sorted(counts[label].items())) or "none"
            total = sum(len(r.history) - 1 for r in runs)
            rows[label] = {
                "runs": len(runs),
                "anomalies (runs with it)": found,
                "transactions aborted": f"{sum(r.aborted for r in runs)} of {total}",
                "appends lost": sum(len(r.lost_appends) for r in runs),
            }
        return pd.DataFrame.from_dict(rows, orient="index")

    def __add__(self, other: Survey) -> Survey:
        return Survey({**self.runs, **other.runs})


def survey(
    db: Database,
    levels: Sequence[Enum] | None = None,
    runs: int = 10,
    *,
    read_modify_write: bool = False,
    progress: bool = True,
    **workload_args: Any,
) -> Survey:
    """Run :func:`workload` with seeds ``0..runs-1`` at each level (default: every level ``db`` offers)."""
    valid.integer("runs", runs, ge=1, le=1000)
    levels = list(db.levels if levels is None else levels)
    for level in levels:
        valid.one_of("levels", level, db.levels)
    out = Survey()
    todo = [(level, seed) for level in levels for seed in range(runs)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc=db.name + (" (read-modify-write)" if read_modify_write else ""))
    for level, seed in todo:
        programs, order, who = workload(seed, **workload_args)
        label = f"{db.name} {level}" + (" (read-modify-write)" if read_modify_write else "")
        r = run_workload(db, level, programs, order, who, read_modify_write=read_modify_write)
        out.runs.setdefault(label, []).append(r)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return out


def _pair(reads: tuple[int, ...], target: int, element: int) -> tuple[Step, ...]:
    return (*(Read(k) for k in reads), Append(target, element), Commit())


PAIRS: dict[str, tuple[dict[str, tuple[Step, ...]], tuple[str, ...], bool]] = {
    # Write skew: each reads rows 1 and 2, then appends to its own row.
    "doctors": (
        {"T1": _pair((1, 2), 1, 10), "T2": _pair((1, 2), 2, 20)},
        ("T1", "T1", "T2", "T2", "T1", "T2", "T1", "T2"),
        False,
    ),
    # Lost update: each reads row 1, then appends to it by read-modify-write.
    "deposits": (
        {"T1": _pair((1,), 1, 10), "T2": _pair((1,), 1, 20)},
        ("T1", "T2", "T1", "T2", "T1", "T2"),
        True,
    ),
}
"""Two-transaction workloads for predicting a database: name -> (programs, order, read_modify_write)."""


def run_pair(db: Database, name: str, level: Enum) -> DbRun:
    """Run the two-transaction workload ``PAIRS[name]`` on ``db`` at ``level``."""
    valid.one_of("name", name, PAIRS)
    programs, order, rmw = PAIRS[name]
    return run_workload(db, level, programs, order, read_modify_write=rmw)
