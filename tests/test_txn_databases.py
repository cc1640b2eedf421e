"""Real databases under the checker: SQLite (always) and a throwaway PostgreSQL server.

One contract (:class:`DatabaseContract`) for every database the runner
drives, subclassed per database with what its documentation promises at each
level it offers (PostgreSQL 15 manual §13.2; SQLite's "Isolation In SQLite"):

* PostgreSQL ``SERIALIZABLE``: no anomaly in any of ``RUNS`` random workloads;
  ``REPEATABLE READ`` (snapshot isolation): write skew, G2-item, in at least one
  of them and nothing else; ``READ COMMITTED`` (and ``READ UNCOMMITTED``, the
  same): read skew, G-single, in at least one, no appended element ever lost with
  atomic appends, and lost updates with lost elements when appends are
  read-modify-write.
* SQLite ``DEFERRED``, ``IMMEDIATE``, ``EXCLUSIVE``: no anomaly in any run,
  atomic or read-modify-write; shared-cache ``read_uncommitted``: intermediate
  reads (G1b) in at least one.

Each workload: 40 transactions of up to 4 reads and appends over 3 rows, 4
clients, turns in a seeded random order (``labkit.txn.databases.workload``).
The PostgreSQL tests need PostgreSQL's server programs: without them they are
skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from labkit.txn.databases import (
    PAIRS,
    Database,
    PgLevel,
    PostgresDatabase,
    SQLiteDatabase,
    SqliteLevel,
    run_pair,
    run_workload,
    survey,
    workload,
)
from labkit.txn.run import Append, Commit, Read

RUNS = 12  # random workloads per level and database in the default run; the slow test runs 30


def anomalies(s) -> dict[str, set[str]]:
    return {label: set(c) for label, c in s.counts().items()}


class DatabaseContract:
    """What every database driven by the runner must do; subclasses give ``db`` and the expectations."""

    name: str
    # level -> transactions of (doctors, deposits) that commit
    PAIRS_COMMITTED: dict
    SERIALIZABLE: tuple = ()  # levels at which no anomaly may ever show

    @pytest.fixture
    def db(self) -> Database:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_one_client_alone_sees_everything_and_loses_nothing(self, db):
        programs = {
            "T1": (Append(1, 1), Append(2, 1), Commit()),
            "T2": (Read(1), Append(1, 2), Commit()),
            "T3": (Read(1), Read(2), Commit()),
        }
        for level in db.levels:
            r = run_workload(db, level, programs, ["c"] * 9, {"c": ["T1", "T2", "T3"]})
            assert r.result.ok and r.aborted == 0 and r.lost_appends == ()
            assert r.final == {1: (1, 2), 2: (1,)}
            t3 = next(t for t in r.history if t.name == "T3")
            assert [o.value for o in t3.ops] == [(1, 2), (1,)]

    def test_two_transaction_pairs_commit_as_documented(self, db):
        for level, (doctors, deposits) in self.PAIRS_COMMITTED.items():
            assert run_pair(db, "doctors", level).committed == doctors, level
            assert run_pair(db, "deposits", level).committed == deposits, level

    def test_serializable_levels_show_no_anomaly_in_any_run(self, db):
        for rmw in (False, True):
            s = survey(db, self.SERIALIZABLE, runs=RUNS, read_modify_write=rmw, progress=False)
            for label, runs in s.runs.items():
                assert len(runs) == RUNS
                assert all(r.result.ok for r in runs), (label, s.table())
                assert sum(len(r.lost_appends) for r in runs) == 0

    def test_levels_it_does_not_offer_are_refused(self, db):
        programs, order, who = workload(0, txns=2)
        with pytest.raises(ValueError, match="level must be one of"):
            run_workload(db, "SNAPSHOT", programs, order, who)
        with pytest.raises(TypeError, match="keys are ints"):
            run_workload(db, db.levels[0], {"T1": (Read("x"), Commit())}, ["T1", "T1"])


class TestSQLite(DatabaseContract):
    PAIRS_COMMITTED = {level: (1, 1) for level in SqliteLevel}  # a second writer is refused at once
    SERIALIZABLE = (SqliteLevel.DEFERRED, SqliteLevel.IMMEDIATE, SqliteLevel.EXCLUSIVE)

    @pytest.fixture
    def db(self):
        d = SQLiteDatabase()
        yield d
        d.close()
        assert not d.path.parent.exists()

    def test_shared_cache_read_uncommitted_reads_uncommitted_writes(self, db):
        s = survey(db, [SqliteLevel.READ_UNCOMMITTED], runs=RUNS, progress=False)
        assert "G1b" in anomalies(s)["SQLite read_uncommitted (shared cache)"], s.table()
        # The notebook shows it as a table, one row per level, the anomalies in one short column.
        frame = s.frame()
        row = frame.loc["SQLite read_uncommitted (shared cache)"]
        assert list(frame.columns) == [
            "runs",
            "anomalies (runs with it)",
            "transactions aborted",
            "appends lost",
        ]
        assert row["runs"] == RUNS and "G1b in " in row["anomalies (runs with it)"]
        assert row["transactions aborted"].endswith(f" of {40 * RUNS}") and row["appends lost"] == 0

    def test_runs_are_the_same_every_time(self, db):
        programs, order, who = workload(3)
        a = run_workload(db, SqliteLevel.DEFERRED, programs, order, who)
        b = run_workload(db, SqliteLevel.DEFERRED, programs, order, who)
        assert a.history == b.history


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
def _need_postgres() -> None:
    from labkit.txn.postgres import postgres_missing

    why = postgres_missing()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture(scope="module")
def server():
    from labkit.txn.postgres import TempPostgres

    _need_postgres()
    pg = TempPostgres()
    yield pg
    pg.stop()


class TestPostgres(DatabaseContract):
    PAIRS_COMMITTED = {
        PgLevel.READ_UNCOMMITTED: (2, 2),
        PgLevel.READ_COMMITTED: (2, 2),  # write skew passes; the second deposit overwrites the first
        PgLevel.REPEATABLE_READ: (2, 1),  # write skew passes; "could not serialize ... concurrent update"
        PgLevel.SERIALIZABLE: (1, 1),  # "... read/write dependencies among transactions"
    }
    SERIALIZABLE = (PgLevel.SERIALIZABLE,)

    @pytest.fixture
    def db(self, server):
        d = PostgresDatabase(server)
        yield d
        d.close()

    def test_repeatable_read_shows_write_skew_and_nothing_else(self, db):
        s = survey(db, [PgLevel.REPEATABLE_READ], runs=RUNS, progress=False)
        assert anomalies(s)["PostgreSQL REPEATABLE READ"] == {"G2-item"}, s.table()

    def test_read_committed_shows_read_skew_but_loses_no_atomic_append(self, db):
        s = survey(db, [PgLevel.READ_COMMITTED, PgLevel.READ_UNCOMMITTED], runs=RUNS, progress=False)
        for label, runs in s.runs.items():
            assert "G-single" in anomalies(s)[label], s.table()
            assert anomalies(s)[label] <= {"G-single", "G2-item", "lost-update"}, s.table()
            assert sum(len(r.lost_appends) for r in runs) == 0

    def test_read_committed_loses_appends_done_by_read_modify_write(self, db):
        s = survey(db, [PgLevel.READ_COMMITTED], runs=RUNS, read_modify_write=True, progress=False)
        runs = s.runs["PostgreSQL READ COMMITTED (read-modify-write)"]
        assert "lost-update" in anomalies(s)["PostgreSQL READ COMMITTED (read-modify-write)"], s.table()
        assert sum(len(r.lost_appends) for r in runs) > 0

    def test_pairs_report_the_documented_errors(self, db):
        r = run_pair(db, "deposits", PgLevel.REPEATABLE_READ)
        assert "concurrent update" in r.reasons["T2"]
        r = run_pair(db, "doctors", PgLevel.SERIALIZABLE)
        assert "read/write dependencies" in next(iter(r.reasons.values()))
        assert run_pair(db, "deposits", PgLevel.READ_COMMITTED).lost_appends == ((1, 10),)
        assert set(PAIRS) == {"doctors", "deposits"}


def _processes_in(folder: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(folder) in line]


def test_temp_postgres_runs_unprivileged_on_a_socket_and_leaves_nothing_behind():
    from labkit.txn.postgres import TempPostgres

    _need_postgres()
    with TempPostgres() as pg:
        folder, pid = pg.folder, pg.pid
        assert folder.exists() and pid is not None and _processes_in(folder)
        assert Path(f"/proc/{pid}").stat().st_uid != 0  # initdb refuses root: the server runs as someone else
        with pg.connect(autocommit=True) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)  # no TCP port
            assert conn.execute("SHOW deadlock_timeout").fetchone() == ("20ms",)
    assert pg.folder is None and not folder.exists()
    assert _processes_in(folder) == []
    assert (
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    )
    pg.stop()  # stopping twice is fine


def test_temp_postgres_does_not_outlive_a_killed_python():
    """A kernel killed with SIGKILL runs no atexit: the watcher still shuts its server down and removes its folder."""
    import sys
    import time

    _need_postgres()
    script = "import os; from labkit.txn.postgres import TempPostgres; pg = TempPostgres(); "
    script += "print(pg.folder, pg.pid, flush=True); os.kill(os.getpid(), 9)"
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    folder, pid = out.stdout.split()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (Path(folder).exists() or Path(f"/proc/{pid}").exists()):
        time.sleep(0.1)
    assert not Path(folder).exists() and _processes_in(folder) == []
    assert (
        not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
    )


def test_temp_postgres_is_shut_down_when_its_watcher_is_terminated():
    """Killing everything a session started (e.g. pkill) may reach the watcher first: it takes the server down
    with it instead of leaving it running with no one to stop it."""
    import time

    from labkit.txn.postgres import TempPostgres

    _need_postgres()
    pg = TempPostgres()
    try:
        folder, pid = pg.folder, pg.pid
        pg._watcher.terminate()
        pg._watcher.wait(10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (folder.exists() or Path(f"/proc/{pid}").exists()):
            time.sleep(0.1)
        assert not folder.exists() and _processes_in(folder) == []
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
        )
        pg.stop()  # nothing left to stop: fine
        assert pg.folder is None and not pg.running
    finally:
        pg.stop()


@pytest.mark.slow
def test_postgres_survey_over_many_runs(server):
    db = PostgresDatabase(server)
    try:
        s = survey(db, runs=30, progress=False)
        s += survey(db, [PgLevel.READ_COMMITTED], runs=30, read_modify_write=True, progress=False)
    finally:
        db.close()
    found = anomalies(s)
    assert found["PostgreSQL SERIALIZABLE"] == set()
    assert found["PostgreSQL REPEATABLE READ"] == {"G2-item"}
    assert "G-single" in found["PostgreSQL READ COMMITTED"]
    print("\n" + s.table())


def test_positions_from_a_sequence_commit_out_of_order_so_a_reader_skips_one_as_notebook_16_says():
    # Notebook 16: "with an auto-increment sequence, position 11 may commit before 10, and a reader that saw
    # 11 would skip 10 for ever". PostgreSQL hands out sequence numbers when a transaction asks, without
    # waiting for the transactions holding the ones before (PostgreSQL 15 manual, §9.17): shown here.
    from labkit.txn.postgres import TempPostgres

    _need_postgres()
    with TempPostgres() as pg, pg.connect(autocommit=True) as reader:
        reader.execute("CREATE TABLE events (position bigserial PRIMARY KEY, body text NOT NULL)")
        reader.execute("SELECT setval('events_position_seq', 9)")  # the next position is 10
        after = "SELECT position FROM events WHERE position > %s ORDER BY position"
        with pg.connect() as a, pg.connect() as b:
            (ten,) = a.execute("INSERT INTO events (body) VALUES ('a') RETURNING position").fetchone()
            (eleven,) = b.execute("INSERT INTO events (body) VALUES ('b') RETURNING position").fetchone()
            b.commit()  # 11 commits while 10 is still in flight
            seen = [p for (p,) in reader.execute(after, (0,))]
            a.commit()
            resumed = [p for (p,) in reader.execute(after, (max(seen),))]  # "everything up to 11 is done"
            stored = [p for (p,) in reader.execute(after, (0,))]
    assert (ten, eleven) == (10, 11)
    assert seen == [11] and resumed == [] and stored == [10, 11]  # 10 was never seen by the reader
