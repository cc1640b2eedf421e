"""The SQLite saga log: every write is one transaction, and a writer killed
with SIGKILL in the middle of one loses nothing that was committed and
leaves nothing half written (DESIGN.md, "Errors and faults")."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from labkit.saga.log import LogKind, LogRecord, SagaLog, SagaStatus

R = LogRecord


def test_begin_append_read_and_status(tmp_path):
    with SagaLog(tmp_path / "s.db") as log:
        log.begin("s1", "order", {"order_id": "s1"}, [R(LogKind.STARTED), R(LogKind.STEP_SENT, 0, 1, 0.5)])
        log.begin("s2", "order", {"order_id": "s2"}, [R(LogKind.STARTED)])
        log.append("s1", [R(LogKind.STEP_DONE, 0, 1, 0.7), R(LogKind.COMPLETED, -1, 0, 0.7)])
        assert [r.kind for r in log.records("s1")] == [
            LogKind.STARTED,
            LogKind.STEP_SENT,
            LogKind.STEP_DONE,
            LogKind.COMPLETED,
        ]
        assert log.records("s1")[1] == R(LogKind.STEP_SENT, 0, 1, 0.5)
        assert log.status("s1") is SagaStatus.COMPLETED
        assert log.unfinished() == ["s2"]
        assert log.payload("s2") == {"order_id": "s2"}
        assert log.writes == 3
    with SagaLog(tmp_path / "s.db") as again:  # durable across handles
        assert again.sagas() == [("s1", SagaStatus.COMPLETED), ("s2", SagaStatus.RUNNING)]
        assert len(again.records("s1")) == 4


def test_a_failed_batch_leaves_nothing(tmp_path):
    with SagaLog(tmp_path / "s.db") as log:
        log.begin("s1", "order", {}, [R(LogKind.STARTED)])
        with pytest.raises(TypeError, match="LogRecord"):
            log.append("s1", [R(LogKind.STEP_SENT, 0, 1), "not a record"])
        assert len(log.records("s1")) == 1
        with pytest.raises(ValueError, match="already exists"):
            log.begin("s1", "order", {}, [R(LogKind.STARTED)])
        with pytest.raises(ValueError, match="unknown saga_id"):
            log.append("nope", [R(LogKind.STARTED)])
        with pytest.raises(TypeError, match="JSON"):
            log.begin("s3", "order", {"x": object()}, [])
        assert [s for s, _ in log.sagas()] == ["s1"]
        log.append("s1", [R(LogKind.STEP_SENT, 0, 1)])  # the log still works
        assert len(log.records("s1")) == 2


def test_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="synchronous"):
        SagaLog(tmp_path / "s.db", synchronous="SOMETIMES")
    with pytest.raises(TypeError, match="path"):
        SagaLog(42)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from labkit.saga.log import LogKind, LogRecord, SagaLog

    log = SagaLog(sys.argv[1])
    if sys.argv[2] == "mid":
        log.begin("s0", "order", {}, [LogRecord(LogKind.STARTED)])
        print("committed s0", flush=True)

        def records():
            for i in range(100):
                if i == 50:  # half the batch is inside the open transaction
                    print("MID", flush=True)
                    time.sleep(60)
                yield LogRecord(LogKind.STEP_SENT, i, 1)

        log.append("s0", records())
    else:
        i = 0
        while True:
            batch = [LogRecord(LogKind.STARTED)] + [LogRecord(LogKind.STEP_SENT, j, 1) for j in range(200)]
            log.begin(f"s{i:05d}", "order", {"i": i}, batch)
            print(f"committed s{i:05d}", flush=True)
            i += 1
    """
)


def _spawn(path, mode):
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), mode], stdout=subprocess.PIPE, text=True, bufsize=1
    )


def test_sigkill_in_the_middle_of_a_batch_loses_the_whole_batch_only(tmp_path):
    path = tmp_path / "s.db"
    child = _spawn(path, "mid")
    assert child.stdout.readline().strip() == "committed s0"
    assert child.stdout.readline().strip() == "MID"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    with SagaLog(path) as log:
        assert log.records("s0") == [R(LogKind.STARTED)], "half a batch survived the kill"
        log.append("s0", [R(LogKind.STEP_SENT, 0, 1)])  # no stale lock is left behind
        assert len(log.records("s0")) == 2


def test_sigkill_at_random_moments_keeps_every_committed_batch_whole(tmp_path):
    rng = random.Random(8)
    for round_ in range(5):
        path = tmp_path / f"s{round_}.db"
        acknowledged: set[str] = set()
        child = _spawn(path, "loop")
        # Wait for it to be writing, then kill it at a random moment.
        acknowledged.add(child.stdout.readline().split()[1])
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
        acknowledged |= {line.split()[1] for line in out.splitlines() if line.startswith("committed")}
        with SagaLog(path) as log:
            present = {s for s, _ in log.sagas()}
            assert acknowledged <= present, "an acknowledged write was lost"
            for saga_id in present:
                n = len(log.records(saga_id))
                assert n == 201, f"{saga_id} has {n} of 201 records: a torn batch"


class _CommitFailsOnce:
    """A stand-in for the connection whose next COMMIT fails (as a full disk or
    an I/O error would make it fail); everything else goes to the real one."""

    def __init__(self, conn):
        self._conn = conn
        self.armed = True

    def execute(self, sql, *args):
        if self.armed and sql == "COMMIT":
            self.armed = False
            raise sqlite3.OperationalError("disk I/O error (forced)")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_failed_commit_is_rolled_back_and_the_log_still_works(tmp_path):
    with SagaLog(tmp_path / "s.db") as log:
        log.begin("s1", "order", {}, [R(LogKind.STARTED)])
        real = log._conn
        log._conn = _CommitFailsOnce(real)
        with pytest.raises(sqlite3.OperationalError, match="forced"):
            log.append("s1", [R(LogKind.STEP_SENT, 0, 1)])
        assert not real.in_transaction, "a failed COMMIT left the transaction open"
        assert log.records("s1") == [R(LogKind.STARTED)]
        assert log.writes == 1  # the failed write is not counted
        log.begin("s2", "order", {}, [R(LogKind.STARTED)])  # a later BEGIN works
        log.append("s1", [R(LogKind.STEP_SENT, 0, 1)])
        log._conn = real
        assert [s for s, _ in log.sagas()] == ["s1", "s2"] and len(log.records("s1")) == 2


@pytest.mark.parametrize("kind", [tuple, iter, lambda rs: (r for r in rs)])
def test_any_iterable_with_a_terminal_record_sets_the_status(tmp_path, kind):
    with SagaLog(tmp_path / "s.db") as log:
        log.begin("s1", "order", {}, [R(LogKind.STARTED)])
        log.append("s1", kind([R(LogKind.COMP_DONE, 0, 1), R(LogKind.ABORTED)]))
        assert log.status("s1") is SagaStatus.ABORTED
        assert log.unfinished() == []
        assert [r.kind for r in log.records("s1")] == [LogKind.STARTED, LogKind.COMP_DONE, LogKind.ABORTED]


def test_refuses_to_run_without_wal(tmp_path):
    # SQLite keeps an in-memory database in "memory" journal mode whatever we ask.
    with pytest.raises(ValueError, match="WAL"):
        SagaLog(":memory:")
    with SagaLog(tmp_path / "s.db") as log:
        assert log._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
