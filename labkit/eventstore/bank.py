"""A worked example: a bank account as an event-sourced aggregate.

The account is the course's running example for notebook 16. Its events
tell its whole story (opened, money in, money out, closed); its balance is
only ever computed from them. The one business rule worth protecting is
"never below zero", and it is exactly the rule two concurrent withdrawals
break when the store lets both of them through.

Schema history (to show upcasting): the first version of ``Deposited``
stored ``{"amount": 12.5}``, euros as a float; the current one stores
``{"cents": 1250}``, an int, because floats cannot hold most amounts of
money exactly (0.1 + 0.2 != 0.3). Old events are never rewritten; the
upcaster :func:`deposited_v1_to_v2` converts them when they are read.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from labkit import validation as valid
from labkit.eventstore.aggregate import Aggregate, Repository, applies
from labkit.eventstore.projections import Projection
from labkit.eventstore.upcasting import Upcasters


class AccountError(ValueError):
    """A command broke a business rule (overdraft, closed account, bad amount)."""


@dataclass(frozen=True, slots=True)
class AccountOpened:
    owner: str


@dataclass(frozen=True, slots=True)
class Deposited:
    schema_version: ClassVar[int] = 2
    cents: int


@dataclass(frozen=True, slots=True)
class Withdrawn:
    cents: int


@dataclass(frozen=True, slots=True)
class AccountClosed:
    reason: str = ""


def deposited_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v1 ``{"amount": euros as float}`` -> v2 ``{"cents": int}``."""
    return {"cents": round(data["amount"] * 100)}


def bank_upcasters() -> Upcasters:
    up = Upcasters()
    up.add("Deposited", 1, deposited_v1_to_v2)
    return up


def _check_cents(cents: Any) -> int:
    valid.integer("cents", cents, note="an amount in cents")
    if cents <= 0:
        raise AccountError(f"cents must be > 0, got {cents}")
    return cents


class Account(Aggregate):
    """A bank account; balance in cents.

    # Invariant: balance >= 0, and no event follows AccountClosed.
    """

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.owner: str | None = None
        self.balance = 0
        self.is_open = False
        self.is_closed = False

    # ------------------------------------------------------------- commands
    @classmethod
    def open(cls, account_id: str, owner: str) -> Account:
        valid.string("owner", owner)
        account = cls(account_id)
        account.trigger(AccountOpened(owner))
        return account

    def _require_open(self) -> None:
        if not self.is_open:
            raise AccountError(f"account {self.id!r} is {'closed' if self.is_closed else 'not open'}")

    def deposit(self, cents: int) -> None:
        _check_cents(cents)
        self._require_open()
        self.trigger(Deposited(cents))

    def withdraw(self, cents: int) -> None:
        _check_cents(cents)
        self._require_open()
        if cents > self.balance:
            raise AccountError(f"cannot withdraw {cents} cents from {self.id!r}: balance is {self.balance}")
        self.trigger(Withdrawn(cents))

    def close(self, reason: str = "") -> None:
        self._require_open()
        if self.balance != 0:
            raise AccountError(f"cannot close {self.id!r} with a balance of {self.balance} cents")
        self.trigger(AccountClosed(reason))

    # --------------------------------------------------- state changes only
    @applies(AccountOpened)
    def _opened(self, event: AccountOpened) -> None:
        self.owner = event.owner
        self.is_open = True

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.cents

    @applies(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.cents

    @applies(AccountClosed)
    def _closed(self, event: AccountClosed) -> None:
        self.is_open = False
        self.is_closed = True

    def check_invariants(self) -> None:
        assert self.balance >= 0, f"{self.id}: negative balance {self.balance}"
        assert not (self.is_open and self.is_closed), f"{self.id}: open and closed"


class BalancesProjection(Projection):
    """Read model: balance per account, total money held, and how many events of each kind."""

    name = "balances"

    def reset(self) -> None:
        self.balances: dict[str, int] = {}
        self.owners: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    @applies(AccountOpened)
    def _opened(self, event: AccountOpened, record: Any) -> None:
        self.balances[record.stream_id] = 0
        self.owners[record.stream_id] = event.owner
        self._count("opened")

    @applies(Deposited)
    def _deposited(self, event: Deposited, record: Any) -> None:
        self.balances[record.stream_id] += event.cents
        self._count("deposited")

    @applies(Withdrawn)
    def _withdrawn(self, event: Withdrawn, record: Any) -> None:
        self.balances[record.stream_id] -= event.cents
        self._count("withdrawn")

    @property
    def total(self) -> int:
        return sum(self.balances.values())


def simulate_activity(
    repo: Repository[Account], n_accounts: int, n_operations: int, seed: int, *, prefix: str = "acct"
) -> list[str]:
    """Open ``n_accounts`` accounts and run ``n_operations`` random deposits and withdrawals.

    Each operation is saved as it happens, so the global log interleaves the
    accounts as a bank's would. Deterministic for a given seed (and a store
    that starts without these accounts). Withdrawals that would overdraw are
    skipped, as the account refuses them. Returns the account ids.
    """
    if not isinstance(repo, Repository) or repo.aggregate_cls is not Account:
        raise TypeError("repo must be a Repository of Account")
    valid.integer("n_accounts", n_accounts, ge=0)
    valid.integer("n_operations", n_operations, ge=0)
    if n_accounts == 0 and n_operations > 0:
        raise ValueError("n_operations > 0 needs n_accounts >= 1")
    rng = random.Random(seed)
    owners = ["ada", "grace", "edsger", "barbara", "leslie", "tony", "radia", "ken"]
    ids = [f"{prefix}-{i}" for i in range(n_accounts)]
    accounts = {}
    for i, aid in enumerate(ids):
        if repo.store.stream_version(aid) > 0:
            raise ValueError(f"account {aid!r} already exists in the store; use another prefix")
        accounts[aid] = Account.open(aid, owners[i % len(owners)])
        repo.save(accounts[aid])
    for _ in range(n_operations):
        acc = accounts[rng.choice(ids)]
        if acc.balance > 0 and rng.random() < 0.45:
            acc.withdraw(rng.randint(1, acc.balance))
        else:
            acc.deposit(rng.randint(1, 200) * 100)
        repo.save(acc)
    return ids


def measure_load_times(
    directory: str | os.PathLike[str],
    lengths: Sequence[int] = (200, 1000, 3000),
    snapshot_every: int = 100,
    repeats: int = 5,
    progress: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Time ``Repository.load`` of one account with and without snapshots, per stream length.

    For each length a fresh SQLite file in ``directory`` gets one account
    with that many events (saved in batches of ``snapshot_every``, so a
    snapshot is taken at every multiple). Returns one row per (length, mode)
    with the fastest of ``repeats`` load times in seconds (the least disturbed
    by whatever else the machine is doing) and how many events the load
    replayed. Times depend on the machine; the replay counts do not.
    """
    from labkit.eventstore.snapshots import SQLiteSnapshotStore
    from labkit.eventstore.sqlite import Durability, SQLiteEventStore

    valid.require(os.path.isdir(directory), "directory", "an existing folder", directory)
    for i, n in enumerate(valid.non_empty("lengths", lengths, "list of stream lengths")):
        valid.integer(f"lengths[{i}]", n, ge=2)
    valid.integer("snapshot_every", snapshot_every, ge=1)
    valid.integer("repeats", repeats, ge=1)
    rows: list[dict[str, Any]] = []
    for n in lengths:
        path = os.path.join(directory, f"load-times-{n}.db")
        if os.path.exists(path):
            os.remove(path)
        # NORMAL durability only speeds up building the test stream; loads are reads.
        store = SQLiteEventStore(path, Durability.NORMAL)
        snaps = SQLiteSnapshotStore(path, Durability.NORMAL)
        with_snaps = Repository(store, Account, snapshots=snaps, snapshot_every=snapshot_every)
        plain = Repository(store, Account)
        acc = Account.open("acct", "ada")
        for i in range(n - 1):
            acc.deposit(100 + i % 7)
            if acc.version % snapshot_every == 0:
                with_snaps.save(acc)
        with_snaps.save(acc)
        for mode, repo in (("full replay", plain), ("from snapshot", with_snaps)):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                loaded = repo.load("acct")
                times.append(time.perf_counter() - t0)
            assert loaded.balance == acc.balance
            stats = repo.last_load
            rows.append(dict(events=n, mode=mode, seconds=min(times), events_replayed=stats.events_replayed,
                             snapshot_version=stats.snapshot_version))  # fmt: skip
        snaps.close()
        store.close()
        if progress is not None:
            progress()
    return rows
