"""Many processes writing to one SQLite event store: the harness and its audit.

Each writer process opens its own :class:`SQLiteEventStore` on the same
file and performs ``appends`` appends to streams chosen at random (seeded per
writer). An append is a batch of 1-3 events tagged ``(writer, seq, part)``;
on a :class:`ConcurrencyError` the writer reads the new version and tries
again, the standard optimistic-concurrency loop. :func:`audit_writers` then
reads everything back and counts, for every batch that was acknowledged,
whether it is there exactly once, whole, in order and contiguous.

The same code drives the reliability tests and the notebook's demo.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from labkit import validation as valid
from labkit.eventstore.errors import ConcurrencyError
from labkit.eventstore.recorder import EventStore, NewEvent
from labkit.eventstore.sqlite import Durability, SQLiteEventStore


def _batch(writer: int, seq: int, size: int) -> list[NewEvent]:
    return [NewEvent("Wrote", {"writer": writer, "seq": seq, "part": k, "of": size}) for k in range(size)]


def writer_process(
    path: str, writer: int, streams: list[str], appends: int, seed: int, durability: str
) -> int:
    """Body of one writer process; returns the number of conflicts it retried."""
    rng = random.Random(seed * 1_000_003 + writer)
    conflicts = 0
    with SQLiteEventStore(path, Durability[durability]) as store:
        for seq in range(appends):
            stream = rng.choice(streams)
            events = _batch(writer, seq, rng.randint(1, 3))
            while True:
                version = store.stream_version(stream)
                try:
                    store.append(stream, events, version)
                    break
                except ConcurrencyError:
                    conflicts += 1
    return conflicts


@dataclass(frozen=True, slots=True)
class WritersAudit:
    """What :func:`audit_writers` found."""

    batches_expected: int
    batches_found: int
    batches_missing: int
    batches_duplicated: int
    batches_torn: int  # present but not whole, out of order, or not contiguous
    events: int
    position_gaps: int
    version_gaps: int
    conflicts: int

    @property
    def ok(self) -> bool:
        return (
            self.batches_found == self.batches_expected
            and self.batches_missing == self.batches_duplicated == self.batches_torn == 0
            and self.position_gaps == self.version_gaps == 0
        )


def audit_writers(store: EventStore, n_writers: int, appends: int, conflicts: int = 0) -> WritersAudit:
    """Read the whole store and check every batch the writers were told was appended."""
    valid.instance("store", store, EventStore)
    valid.integer("n_writers", n_writers, ge=1)
    valid.integer("appends", appends, ge=1)
    records = store.read_all()
    position_gaps = sum(1 for i, r in enumerate(records) if r.position != i + 1)
    last_version: dict[str, int] = {}
    version_gaps = 0
    batches: dict[tuple[int, int], list] = {}
    for r in records:
        if r.version != last_version.get(r.stream_id, 0) + 1:
            version_gaps += 1
        last_version[r.stream_id] = r.version
        batches.setdefault((r.data["writer"], r.data["seq"]), []).append(r)
    torn = duplicated = 0
    for rs in batches.values():
        size = rs[0].data["of"]
        parts = [r.data["part"] for r in rs]
        if len(rs) > size and Counter(parts)[0] > 1:
            duplicated += 1
        elif (
            parts != list(range(size))
            or len({r.stream_id for r in rs}) != 1
            or [r.version for r in rs] != list(range(rs[0].version, rs[0].version + size))
        ):
            torn += 1
    expected = n_writers * appends
    missing = sum(1 for w in range(n_writers) for s in range(appends) if (w, s) not in batches)
    return WritersAudit(
        expected,
        len(batches),
        missing,
        duplicated,
        torn,
        len(records),
        position_gaps,
        version_gaps,
        conflicts,
    )


def run_writers(
    path: str | os.PathLike[str],
    n_writers: int = 8,
    appends: int = 50,
    streams: int = 3,
    seed: int = 0,
    durability: Durability = Durability.NORMAL,
    on_writer_done: Callable[[], None] | None = None,
) -> WritersAudit:
    """Run ``n_writers`` processes against ``path`` at once, wait, and audit the result."""
    valid.integer("n_writers", n_writers, ge=1)
    valid.integer("appends", appends, ge=1)
    valid.integer("streams", streams, ge=1)
    valid.instance("durability", durability, Durability)
    path = os.fspath(path)
    SQLiteEventStore(path, durability).close()  # create the schema once, before the race
    names = [f"stream-{i}" for i in range(streams)]
    # fork is fast and safe on Linux; elsewhere (macOS, Windows) spawn, which re-imports writer_process.
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    conflicts = 0
    # One process per writer: with maxtasksperchild=1 no worker runs two writers
    # one after the other, so all n_writers really race.
    with ctx.Pool(n_writers, maxtasksperchild=1) as pool:
        results = [
            pool.apply_async(writer_process, (path, w, names, appends, seed, durability.name))
            for w in range(n_writers)
        ]
        for res in results:
            conflicts += res.get(timeout=120)
            if on_writer_done is not None:
                on_writer_done()
    with SQLiteEventStore(path, durability) as store:
        return audit_writers(store, n_writers, appends, conflicts)
