"""Reliability of the SQLite event store with real processes.

* 8 writer processes (8 distinct pids, running at the same time) append to
  the same 2 streams with retries on conflict: every acknowledged batch is
  there exactly once, whole and contiguous, and
  a reader following ``read_all`` while they write never sees a gap.
* A writer killed with SIGKILL in the middle of a batch leaves all of the
  batch or none of it, and the store stays usable.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from collections import Counter

import pytest

from labkit.eventstore import Durability, NewEvent, SQLiteEventStore
from labkit.eventstore.stress import audit_writers, run_writers, writer_process

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs fork and SIGKILL")
CTX = multiprocessing.get_context("fork") if os.name == "posix" else None


def _writer(path: str, writer: int, appends: int, start, results) -> None:
    """One writer process: wait until all are up, write, report (writer, pid, start, end, conflicts)."""
    start.wait(timeout=60)  # all writers are alive at once before any of them writes
    began = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process on the machine
    conflicts = writer_process(path, writer, ["stream-0", "stream-1"], appends, 3, Durability.FULL.name)
    results.put((writer, os.getpid(), began, time.monotonic(), conflicts))


def test_eight_writer_processes_lose_and_duplicate_nothing(tmp_path):
    # One Process per writer (a Pool of 8 may hand two writers to the same worker).
    path = str(tmp_path / "w.db")
    n_writers, appends = 8, 120
    SQLiteEventStore(path, Durability.FULL).close()  # the schema exists before the race
    start, results = CTX.Barrier(n_writers), CTX.Queue()
    procs = [CTX.Process(target=_writer, args=(path, w, appends, start, results)) for w in range(n_writers)]
    for p in procs:
        p.start()
    reports = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    # 8 distinct writer processes ran, and they ran at the same time.
    assert sorted(w for w, *_ in reports) == list(range(n_writers))
    pids = {pid for _, pid, *_ in reports}
    assert len(pids) == n_writers and os.getpid() not in pids
    assert max(began for _, _, began, _, _ in reports) < min(end for _, _, _, end, _ in reports), (
        "some writer finished before another started: their appends did not overlap"
    )
    with SQLiteEventStore(path) as store:
        audit = audit_writers(store, n_writers, appends, sum(c for *_, c in reports))
    assert audit.batches_expected == 960
    assert audit.batches_missing == 0 and audit.batches_duplicated == 0 and audit.batches_torn == 0
    assert audit.position_gaps == 0 and audit.version_gaps == 0
    assert audit.conflicts > 0, (
        "the writers never collided: the test did not exercise the concurrency control"
    )
    # Count every event independently of the audit helper.
    with SQLiteEventStore(path) as store:
        records = store.read_all()
        store.check_invariants()
    per_batch = Counter((r.data["writer"], r.data["seq"]) for r in records)
    assert len(per_batch) == 960
    assert all(per_batch[key] == r.data["of"] for r in records for key in [(r.data["writer"], r.data["seq"])])
    assert [r.position for r in records] == list(range(1, len(records) + 1))


def test_audit_notices_missing_duplicated_and_torn_batches():
    """The audit must be able to fail: feed it a store with each kind of damage."""
    from labkit.eventstore import InMemoryEventStore

    s = InMemoryEventStore()
    s.append("x", [NewEvent("Wrote", {"writer": 0, "seq": 0, "part": 0, "of": 1})], 0)
    s.append("x", [NewEvent("Wrote", {"writer": 0, "seq": 0, "part": 0, "of": 1})], 1)  # duplicate
    s.append("x", [NewEvent("Wrote", {"writer": 0, "seq": 1, "part": 0, "of": 2})], 2)  # torn: part 1 missing
    audit = audit_writers(s, n_writers=1, appends=3)
    assert (audit.batches_missing, audit.batches_duplicated, audit.batches_torn) == (1, 1, 1)
    assert not audit.ok


def _follower(path: str, queue, stop_at: int) -> None:
    """Follow read_all from a checkpoint; report the first gap or repeat, if any."""
    with SQLiteEventStore(path) as store:
        checkpoint = problems = reads = 0
        deadline = time.monotonic() + 60
        while checkpoint < stop_at and time.monotonic() < deadline:
            batch = store.read_all(checkpoint, limit=50)
            reads += 1
            for r in batch:
                if r.position != checkpoint + 1:
                    problems += 1
                checkpoint = r.position
        queue.put((checkpoint, problems, reads))


def test_a_reader_following_concurrent_writers_sees_no_gap(tmp_path):
    path = str(tmp_path / "w.db")
    SQLiteEventStore(path).close()
    n_writers, appends = 6, 80
    queue = CTX.Queue()
    # Each batch is 1-3 events; the reader stops once it has seen at least every batch's first event.
    reader = CTX.Process(target=_follower, args=(path, queue, n_writers * appends))
    reader.start()
    audit = run_writers(path, n_writers=n_writers, appends=appends, streams=3, seed=5)
    checkpoint, problems, reads = queue.get(timeout=60)
    reader.join(10)
    assert audit.ok
    assert problems == 0
    assert checkpoint >= n_writers * appends
    assert reads > 1  # it followed the log batch by batch (it starts before the writers do)


# --------------------------------------------------------------------- SIGKILL
class _DiesMidBatch(SQLiteEventStore):
    """Writes half of the batch inside the transaction, tells the parent, then waits to be killed."""

    def __init__(self, path, signal_fd):
        super().__init__(path, Durability.FULL)
        self._signal_fd = signal_fd
        # A tiny page cache forces uncommitted pages out into the WAL file before the kill.
        self._conn.execute("PRAGMA cache_size = 20")

    def _insert_rows(self, cur, rows):
        half = len(rows) // 2
        cur.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows[:half])
        os.write(self._signal_fd, b"M")
        time.sleep(60)


def _dying_writer(path: str, signal_fd: int) -> None:
    store = _DiesMidBatch(path, signal_fd)
    big = [NewEvent("Big", {"i": i, "pad": "x" * 400}) for i in range(3000)]
    store.append("s", big, expected_version=2)


def test_sigkill_in_the_middle_of_a_batch_leaves_none_of_it(tmp_path):
    path = str(tmp_path / "k.db")
    with SQLiteEventStore(path) as store:
        store.append("s", [NewEvent("Before", {"i": 0}), NewEvent("Before", {"i": 1})], 0)
    wal = path + "-wal"
    wal_before = os.path.getsize(wal) if os.path.exists(wal) else 0
    r, w = os.pipe()
    child = CTX.Process(target=_dying_writer, args=(path, w))
    child.start()
    assert os.read(r, 1) == b"M"  # the child is inside the transaction, half the batch inserted
    wal_during = os.path.getsize(wal)
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert child.exitcode == -signal.SIGKILL
    assert wal_during > wal_before + 100_000, "the half batch never reached the WAL: the kill tested nothing"
    with SQLiteEventStore(path) as store:
        assert [r.type for r in store.read("s")] == ["Before", "Before"]
        assert store.head_position() == 2
        store.check_invariants()
        assert store.append("s", [NewEvent("After", {})], 2)[0].position == 3  # still usable, no gap
    os.close(r)
    os.close(w)


def _endless_writer(path: str) -> None:
    with SQLiteEventStore(path, Durability.FULL) as store:
        while True:
            batch_id = store.head_position()
            size = 50 + batch_id % 200
            store.append(
                f"s{batch_id % 3}",
                [
                    NewEvent("Part", {"batch": batch_id, "k": k, "of": size, "pad": "y" * 100})
                    for k in range(size)
                ],
                store.stream_version(f"s{batch_id % 3}"),
            )


def test_sigkill_at_random_moments_leaves_every_batch_whole(tmp_path):
    path = str(tmp_path / "r.db")
    rng = random.Random(8)
    SQLiteEventStore(path).close()
    for _ in range(6):
        child = CTX.Process(target=_endless_writer, args=(path,))
        child.start()
        time.sleep(rng.uniform(0.05, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        child.join(10)
    with SQLiteEventStore(path) as store:
        store.check_invariants()
        records = store.read_all()
    sizes = Counter(r.data["batch"] for r in records)
    assert len(sizes) > 6  # several batches committed in all
    for batch, count in sizes.items():
        first = next(r for r in records if r.data["batch"] == batch)
        assert count == first.data["of"], f"batch {batch} has {count} of {first.data['of']} events"
