"""Benchmark: labkit.eventstore's SQLite backend against the ``eventsourcing`` package's SQLite store.

Three measurements on a fresh database file each, same settings on both
sides (WAL, synchronous=FULL, an account aggregate whose events carry one
int):

* append 10,000 events in batches of 100 (100 transactions);
* append 10,000 events one per transaction;
* replay one 10,000-event stream into an aggregate (no snapshots).

Run:  python benchmarks/bench_eventstore.py [--events 10000] [--repeat 3]

Each figure is the best of ``--repeat`` runs. The ``eventsourcing`` column
needs that package (``pip install eventsourcing``); without it the script
says so and prints labkit's figures only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable

from labkit.eventstore import Durability, Repository, SQLiteEventStore
from labkit.eventstore.bank import Account, bank_upcasters


# ------------------------------------------------------------------------ labkit
def labkit_append(path: str, n: int, batch: int) -> float:
    with SQLiteEventStore(path, Durability.FULL) as store:
        repo = Repository(store, Account, upcasters=bank_upcasters())
        acc = Account.open("acct", "ada")
        repo.save(acc)
        t0 = time.perf_counter()
        for i in range(n):
            acc.deposit(1 + i % 100)
            if (i + 1) % batch == 0:
                repo.save(acc)
        repo.save(acc)
        elapsed = time.perf_counter() - t0
        assert store.stream_version("acct") == n + 1
    return elapsed


def labkit_replay(path: str, n: int) -> float:
    with SQLiteEventStore(path, Durability.FULL) as store:
        repo = Repository(store, Account, upcasters=bank_upcasters())
        t0 = time.perf_counter()
        acc = repo.load("acct")
        elapsed = time.perf_counter() - t0
        assert acc.version == n + 1
    return elapsed


# ---------------------------------------------------------------- eventsourcing
def eventsourcing_side():
    """(append, replay) functions for the eventsourcing package, or None if it is not installed."""
    try:
        from eventsourcing.application import Application
        from eventsourcing.domain import Aggregate, event
    except ImportError:
        return None

    class EsAccount(Aggregate):
        @event("Opened")
        def __init__(self, owner: str) -> None:
            self.owner = owner
            self.balance = 0

        @event("Deposited")
        def deposit(self, cents: int) -> None:
            self.balance += cents

    class Bank(Application):
        pass

    def make_app(path: str) -> Application:
        return Bank(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": path,
                "IS_SNAPSHOTTING_ENABLED": "n",
            }
        )

    ids: dict[str, object] = {}

    def append(path: str, n: int, batch: int) -> float:
        app = make_app(path)
        acc = EsAccount("ada")
        app.save(acc)
        t0 = time.perf_counter()
        for i in range(n):
            acc.deposit(1 + i % 100)
            if (i + 1) % batch == 0:
                app.save(acc)
        app.save(acc)
        elapsed = time.perf_counter() - t0
        ids[path] = acc.id
        app.close()
        return elapsed

    def replay(path: str, n: int) -> float:
        app = make_app(path)
        t0 = time.perf_counter()
        acc = app.repository.get(ids[path])
        elapsed = time.perf_counter() - t0
        assert acc.version == n + 1, acc.version
        app.close()
        return elapsed

    return append, replay


# ------------------------------------------------------------------------- main
def best_pair(
    ours: Callable[[], float], theirs: Callable[[], float] | None, repeat: int
) -> tuple[float, float | None]:
    """Best of ``repeat`` runs each, the two sides alternating so that a busy moment hits both."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(ours())
        if theirs is not None:
            b.append(theirs())
    return min(a), (min(b) if b else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.events < 100 or args.repeat < 1:
        parser.error("--events must be >= 100 and --repeat >= 1")
    n = args.events
    es = eventsourcing_side()
    if es is None:
        print("note: the 'eventsourcing' package is not installed (pip install eventsourcing);")
        print("      its column is skipped and only labkit's figures are printed.\n")

    with tempfile.TemporaryDirectory(prefix="bench-eventstore-") as tmp:
        counter = iter(range(10**6))

        def fresh() -> str:
            return os.path.join(tmp, f"db{next(counter)}.sqlite")

        append, replay = es if es else (None, None)

        def replay_pair(repeat: int) -> tuple[float, float | None]:
            ours_db, theirs_db = fresh(), fresh()
            labkit_append(ours_db, n, 100)
            if append:
                append(theirs_db, n, 100)
            return best_pair(
                lambda: labkit_replay(ours_db, n), (lambda: replay(theirs_db, n)) if replay else None, repeat
            )

        rows = [
            (
                f"append {n} events, batches of 100",
                *best_pair(
                    lambda: labkit_append(fresh(), n, 100),
                    (lambda: append(fresh(), n, 100)) if append else None,
                    args.repeat,
                ),
            ),
            (
                f"append {n} events, 1 per transaction",
                *best_pair(
                    lambda: labkit_append(fresh(), n, 1),
                    (lambda: append(fresh(), n, 1)) if append else None,
                    1,
                ),
            ),
            (f"replay one {n}-event stream", *replay_pair(args.repeat * 3)),
        ]

    print(
        f"SQLite {__import__('sqlite3').sqlite_version}, Python {sys.version.split()[0]}, WAL, synchronous=FULL"
    )
    print(f"{'measurement':<40} {'labkit (s)':>11} {'eventsourcing (s)':>18} {'speed-up':>9}")
    for name, ours, theirs in rows:
        theirs_s = f"{theirs:18.4f}" if theirs is not None else f"{'skipped':>18}"
        ratio = f"{theirs / ours:8.1f}x" if theirs is not None else f"{'-':>9}"
        print(f"{name:<40} {ours:11.4f} {theirs_s} {ratio}")
    if es:
        print("speed-up = eventsourcing time / labkit time (> 1 means labkit is faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
