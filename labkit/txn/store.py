"""A small multi-version (MVCC) key-value store with selectable isolation.

Every write creates a new *version* of its key, stamped with the transaction
that wrote it; versions of transactions still running sit in the chain too
(as in PostgreSQL), and an abort removes them. What an isolation level
decides is only this (DDIA ch. 7, "Weak Isolation Levels" and
"Serializability"):

* which version a read sees (:class:`View`);
* which locks reads and writes take, held until the transaction ends;
* what is checked at commit.

Each level is a few such rules (:class:`Rules`, table :data:`RULES`):

============================  ==========================  ============  ===========  ================================
level                         a read sees                 read locks    write locks  at commit
============================  ==========================  ============  ===========  ================================
no isolation ("Degree 0")     the newest version, even    none          none         nothing
                              an uncommitted one
read uncommitted              the newest version, even    none          exclusive    nothing
                              an uncommitted one
read committed                the latest committed one    none          exclusive    nothing
snapshot isolation            the snapshot taken at the   none          none         first committer wins
                              transaction's first step
serializable (2PL)            the latest committed one    shared, and   exclusive    nothing
                                                          on predicates
serializable (SSI)            the snapshot                SIREAD marks  none         first committer wins; no pivot
============================  ==========================  ============  ===========  ================================

Sources: Berenson et al. 1995 ("A Critique of ANSI SQL Isolation Levels")
Table 2 (Degree 0 takes only short write locks, so it allows dirty writes;
locking read uncommitted holds write locks to the end, read committed adds
short read locks, which a multi-version store replaces by reading committed
versions) and §4.2 (snapshot isolation, first-committer-wins); DDIA ch. 7,
"Two-Phase Locking (2PL)" (shared and exclusive locks held to the end,
predicate locks for phantoms; a deadlock aborts one transaction);
Cahill, Röhm & Fekete 2008 ("Serializable Isolation for Snapshot
Databases", §3) for SSI: snapshot isolation plus tracking read-write
conflicts between concurrent transactions, aborting one that would be the
*pivot* with both an incoming and an outgoing conflict (Fekete et al. 2005
showed every non-serializable SI execution has one).

The store is sans-IO and deterministic: operations are method calls that
return at once with :class:`Done`, :class:`Blocked` (a lock is held by
someone else: try again later) or :class:`Aborted`. The driver that runs
transaction programs in a chosen interleaving, and waits and retries, is
:func:`labkit.txn.run.run`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.txn.history import Fun, Op, Status, Txn

__all__ = [
    "Isolation",
    "View",
    "Rules",
    "RULES",
    "Done",
    "Blocked",
    "Aborted",
    "Outcome",
    "TxnState",
    "Store",
    "CommitCheck",
    "PROGRAMMED_ABORT",
]


class Isolation(Enum):
    """The isolation levels of the store, weakest first."""

    NO_ISOLATION = "no isolation"
    READ_UNCOMMITTED = "read uncommitted"
    READ_COMMITTED = "read committed"
    SNAPSHOT = "snapshot isolation"
    SERIALIZABLE_2PL = "serializable (2PL)"
    SERIALIZABLE_SSI = "serializable (SSI)"

    def __str__(self) -> str:
        return self.value


class View(Enum):
    """Which version of a key a read sees (a transaction always sees its own writes)."""

    NEWEST = "the newest version, even an uncommitted one"
    LATEST_COMMITTED = "the latest committed version"
    SNAPSHOT = "the latest version committed before the transaction's first step"


PROGRAMMED_ABORT = "the transaction chose to abort"
"""The reason recorded when a transaction aborts on its own (not refused by the store)."""

CommitCheck = Callable[["Store", "TxnState"], "str | None"]
"""An extra rule run at commit: return a reason to abort, or None to let the commit go on."""


@dataclass(frozen=True, slots=True)
class Rules:
    """The rules of one isolation level (see the module docstring's table)."""

    name: str
    view: View
    read_locks: bool = False  # shared locks on keys and predicates, held to the end (2PL)
    write_locks: bool = False  # exclusive locks on written keys, held to the end
    first_committer_wins: bool = False  # abort if a concurrent transaction committed a write to a key I wrote
    ssi: bool = False  # track read-write conflicts; abort a pivot (Cahill et al. 2008)
    commit_check: CommitCheck | None = None  # an extra rule of your own (exercise)

    def describe(self) -> str:
        """The rules in words: what a read sees, the locks, what commit checks."""
        locks = []
        if self.read_locks:
            locks.append("shared locks on keys read and prefixes scanned")
        if self.write_locks:
            locks.append("exclusive locks on keys written")
        checks = []
        if self.first_committer_wins:
            checks.append("first committer wins")
        if self.ssi:
            checks.append("no pivot (SSI)")
        if self.commit_check is not None:
            checks.append(getattr(self.commit_check, "__name__", "an extra check"))
        if self.ssi:
            locks.append("none, but every read is noted to find read-write conflicts")
        return (
            f"reads see {self.view.value}; "
            f"locks: {', '.join(locks) or 'none'}; "
            f"at commit: {', '.join(checks) or 'nothing'}"
        )

    def __str__(self) -> str:
        return self.name


RULES: dict[Isolation, Rules] = {
    Isolation.NO_ISOLATION: Rules("no isolation", View.NEWEST),
    Isolation.READ_UNCOMMITTED: Rules("read uncommitted", View.NEWEST, write_locks=True),
    Isolation.READ_COMMITTED: Rules("read committed", View.LATEST_COMMITTED, write_locks=True),
    Isolation.SNAPSHOT: Rules("snapshot isolation", View.SNAPSHOT, first_committer_wins=True),
    Isolation.SERIALIZABLE_2PL: Rules(
        "serializable (2PL)", View.LATEST_COMMITTED, read_locks=True, write_locks=True
    ),
    Isolation.SERIALIZABLE_SSI: Rules(
        "serializable (SSI)", View.SNAPSHOT, first_committer_wins=True, ssi=True
    ),
}


# ---------------------------------------------------------------------------
# Outcomes of one operation
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Done:
    """The operation happened; ``value`` is what a read or scan returned (None for a write)."""

    value: Any = None


@dataclass(frozen=True, slots=True)
class Blocked:
    """A lock conflicts with locks held by ``by`` (transaction names): nothing happened, try again
    later. ``what`` says which lock the operation wants."""

    by: tuple[str, ...]
    what: str


@dataclass(frozen=True, slots=True)
class Aborted:
    """The transaction was aborted, for ``reason``."""

    reason: str


Outcome = Done | Blocked | Aborted


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------
@dataclass(slots=True)
class _Version:
    value: Any
    writer: TxnState


@dataclass(eq=False)
class TxnState:
    """One transaction inside the store.

    ``start_ts`` is set at its first operation (the snapshot a snapshot read
    uses, as PostgreSQL takes it at the first statement); ``commit_ts`` when
    it commits. ``read_at[key]`` is the commit timestamp of the first version
    of ``key`` it read from another transaction (0 for the initial state or a
    key never written, None for a version not committed when read; its own
    writes do not count); ``written`` maps the keys it wrote to the last value
    it wrote.
    """

    name: str
    start_ts: int | None = None
    commit_ts: int | None = None
    status: Status | None = None  # None while running
    abort_reason: str | None = None
    ops: list[Op] = field(default_factory=list)
    read_at: dict[Hashable, int | None] = field(default_factory=dict)
    written: dict[Hashable, Any] = field(default_factory=dict)
    # SSI: read-write conflicts with other transactions (Cahill et al. 2008, §3)
    rw_in: set[str] = field(default_factory=set)
    rw_out: set[str] = field(default_factory=set)
    doomed: str | None = None  # SSI chose this one to abort at its next step

    @property
    def active(self) -> bool:
        return self.status is None

    def as_txn(self) -> Txn:
        """The transaction as the checker sees it."""
        status = Status.UNKNOWN if self.status is None else self.status
        return Txn(self.name, tuple(self.ops), status)


class _Locks:
    """Exclusive and shared locks on keys, and shared locks on key prefixes (predicates).

    A predicate lock on ``prefix`` conflicts with an exclusive lock on any key
    starting with it: that is how 2PL keeps phantoms out (DDIA ch. 7,
    "Predicate locks").
    """

    def __init__(self) -> None:
        self.exclusive: dict[Hashable, str] = {}
        self.shared: dict[Hashable, set[str]] = {}
        self.predicates: dict[str, set[str]] = {}

    def blockers_shared(self, me: str, key: Hashable) -> list[str]:
        holder = self.exclusive.get(key)
        return [holder] if holder not in (None, me) else []

    def blockers_exclusive(self, me: str, key: Hashable) -> list[str]:
        out = self.blockers_shared(me, key)
        out += sorted(self.shared.get(key, set()) - {me})
        for prefix, holders in self.predicates.items():
            if isinstance(key, str) and key.startswith(prefix):
                out += sorted(holders - {me})
        return sorted(set(out))

    def blockers_predicate(self, me: str, prefix: str) -> list[str]:
        return sorted(
            {h for k, h in self.exclusive.items() if h != me and isinstance(k, str) and k.startswith(prefix)}
        )

    def release(self, me: str) -> None:
        self.exclusive = {k: h for k, h in self.exclusive.items() if h != me}
        for holders in (*self.shared.values(), *self.predicates.values()):
            holders.discard(me)


class Store:
    """The store. ``Store(Isolation.SNAPSHOT, initial={"x": 100})``, or ``Store(my_rules)``.

    ``initial`` values are written by a transaction ``T0`` that committed
    before any other began (a tuple value is a list, appended element by
    element). Operations take the transaction's name: ``begin("T1")``, then
    ``read("T1", "x")``, ``write("T1", "x", 5)``, ``append("T1", "l", 3)``,
    ``scan("T1", "room:")``, ``commit("T1")``, ``abort("T1")``.
    """

    def __init__(self, rules: Isolation | Rules, initial: Mapping[Hashable, Any] | None = None) -> None:
        valid.instance("rules", rules, (Isolation, Rules))
        if isinstance(rules, Isolation):
            rules = RULES[rules]
        self.rules = rules
        self.clock = 0  # the last commit timestamp handed out
        self.chains: dict[Hashable, list[_Version]] = {}
        self.txns: dict[str, TxnState] = {}
        self.locks = _Locks()
        self.siread: dict[Hashable, set[str]] = {}  # SSI: who read which key
        self.siread_predicates: dict[str, set[str]] = {}  # SSI: who scanned which prefix
        if initial:
            valid.instance("initial", initial, Mapping)
            t0 = self._new("T0")
            t0.start_ts = 0
            for key, value in initial.items():
                if value is None:
                    raise ValueError(f"initial[{key!r}]: None means 'never written'; leave the key out")
                if isinstance(value, (tuple, list)):
                    for e in value:
                        self._install(
                            t0, key, (*self._visible(t0, key, View.NEWEST, ()), e), Op(Fun.APPEND, key, e)
                        )
                else:
                    self._install(t0, key, value, Op(Fun.WRITE, key, value))
            t0.status, t0.commit_ts = Status.COMMITTED, 0

    # -- transactions ------------------------------------------------------
    def _new(self, name: str) -> TxnState:
        valid.string("name", name)
        if name in self.txns:
            raise ValueError(f"there is already a transaction named {name!r}")
        t = TxnState(name)
        self.txns[name] = t
        return t

    def begin(self, name: str) -> TxnState:
        """Start a transaction (its snapshot is taken at its first operation)."""
        return self._new(name)

    def _running(self, name: str) -> TxnState:
        t = self.txns.get(name)
        if t is None:
            raise ValueError(f"no transaction named {name!r}; begin it first (known: {sorted(self.txns)})")
        if not t.active:
            raise ValueError(f"{name} has already {t.status.value}")
        if t.start_ts is None:
            t.start_ts = self.clock
        return t

    def history(self) -> tuple[Txn, ...]:
        """Every transaction so far, as the checker sees it (running ones with an unknown outcome)."""
        return tuple(t.as_txn() for t in self.txns.values())

    # -- what a read sees --------------------------------------------------
    def _visible_version(self, t: TxnState, key: Hashable, view: View) -> _Version | None:
        chain = self.chains.get(key, [])
        for v in reversed(chain):
            w = v.writer
            if w is t:
                return v
            if view is View.NEWEST:
                if w.status is not Status.ABORTED:
                    return v
            elif w.status is Status.COMMITTED and (
                view is View.LATEST_COMMITTED or w.commit_ts <= t.start_ts
            ):
                return v
        return None

    def _visible(self, t: TxnState, key: Hashable, view: View, default: Any = None) -> Any:
        v = self._visible_version(t, key, view)
        return default if v is None else v.value

    def committed_at(self, key: Hashable) -> int:
        """The commit timestamp of the latest committed version of ``key`` (0: initial state or none)."""
        for v in reversed(self.chains.get(key, [])):
            if v.writer.status is Status.COMMITTED:
                return v.writer.commit_ts
        return 0

    def invariants(self) -> list[str]:
        """What must hold between any two operations, at every level; empty when it all holds."""
        problems = []
        stamps = [t.commit_ts for t in self.txns.values() if t.status is Status.COMMITTED and t.name != "T0"]
        # Invariant: commit timestamps are unique, at most the clock; only committed transactions have one.
        if len(stamps) != len(set(stamps)) or any(ts > self.clock for ts in stamps):
            problems.append(
                f"commit timestamps {sorted(stamps)} are not unique or exceed the clock {self.clock}"
            )
        for t in self.txns.values():
            if (t.commit_ts is not None) != (t.status is Status.COMMITTED):
                problems.append(f"{t.name} is {t.status} with commit timestamp {t.commit_ts}")
        for key, chain in self.chains.items():
            # Invariant: an abort leaves no version behind.
            gone = sorted({v.writer.name for v in chain if v.writer.status is Status.ABORTED})
            if gone:
                problems.append(f"{key} keeps versions of aborted {gone}")
            # Invariant: with write locks, a key's uncommitted versions are its lock holder's.
            if self.rules.write_locks:
                running = {v.writer.name for v in chain if v.writer.active}
                if running and running != {self.locks.exclusive.get(key)}:
                    problems.append(f"{key} has uncommitted versions of {sorted(running)} but is locked by "
                                    f"{self.locks.exclusive.get(key)}")  # fmt: skip
        # Invariant: locks are held by running transactions only, and exclusive excludes shared.
        for key, holder in self.locks.exclusive.items():
            if not self.txns[holder].active:
                problems.append(f"{holder} ended but holds the exclusive lock on {key}")
            if self.locks.shared.get(key, set()) - {holder}:
                problems.append(f"{key} is locked exclusively by {holder} and shared by others")
        return problems

    def committed_state(self) -> dict[Hashable, Any]:
        """The latest committed value of every key."""
        out = {}
        for key, chain in self.chains.items():
            for v in reversed(chain):
                if v.writer.status is Status.COMMITTED:
                    out[key] = v.value
                    break
        return out

    # -- operations --------------------------------------------------------
    def read(self, name: str, key: Hashable) -> Outcome:
        """Read ``key``: its value, or None if never written (a list key reads as a tuple)."""
        t = self._running(name)
        if (stop := self._doomed(t)) is not None:
            return stop
        if self.rules.read_locks:
            by = self.locks.blockers_shared(name, key)
            if by:
                return Blocked(tuple(by), f"wants a shared lock on {key}")
            self.locks.shared.setdefault(key, set()).add(name)
        version = self._visible_version(t, key, self.rules.view)
        value = None if version is None else version.value
        if key not in t.read_at and (version is None or version.writer is not t):
            t.read_at[key] = 0 if version is None else version.writer.commit_ts
        if self.rules.ssi and (stop := self._ssi_read(t, key)) is not None:
            return stop
        t.ops.append(Op(Fun.READ, key, value))
        return Done(value)

    def scan(self, name: str, prefix: str) -> Outcome:
        """Read every key starting with ``prefix`` that has a value: a dict (a predicate read)."""
        valid.string("prefix", prefix, empty=True)
        t = self._running(name)
        if (stop := self._doomed(t)) is not None:
            return stop
        if self.rules.read_locks:
            by = self.locks.blockers_predicate(name, prefix)
            if by:
                return Blocked(tuple(by), f"wants a predicate lock on {prefix}*")
            self.locks.predicates.setdefault(prefix, set()).add(name)
        found = {}
        for key in sorted(k for k in self.chains if isinstance(k, str) and k.startswith(prefix)):
            value = self._visible(t, key, self.rules.view)
            if value is not None:
                found[key] = value
        if self.rules.ssi and (stop := self._ssi_scan(t, prefix)) is not None:
            return stop
        t.ops.append(Op(Fun.SCAN, prefix, tuple(sorted(found.items()))))
        return Done(found)

    def write(self, name: str, key: Hashable, value: Any) -> Outcome:
        """Set ``key`` to ``value`` (not None)."""
        if value is None:
            raise ValueError(f"write {key!r}: None means 'never written'; write another value")
        return self._write(name, key, lambda t: value, lambda v: Op(Fun.WRITE, key, v))

    def append(self, name: str, key: Hashable, element: Any) -> Outcome:
        """Append ``element`` to the list at ``key``, as the transaction's view of it stands."""
        return self._write(
            name,
            key,
            lambda t: (*self._visible(t, key, self.rules.view, ()), element),
            lambda v: Op(Fun.APPEND, key, element),
        )

    def _write(
        self, name: str, key: Hashable, make: Callable[[TxnState], Any], op: Callable[[Any], Op]
    ) -> Outcome:
        t = self._running(name)
        if (stop := self._doomed(t)) is not None:
            return stop
        if self.rules.write_locks:
            by = self.locks.blockers_exclusive(name, key)
            if by:
                return Blocked(tuple(by), f"wants an exclusive lock on {key}")
            self.locks.exclusive[key] = name
        if self.rules.ssi and (stop := self._ssi_write(t, key)) is not None:
            return stop
        value = make(t)
        self._install(t, key, value, op(value))
        return Done()

    def _install(self, t: TxnState, key: Hashable, value: Any, op: Op) -> None:
        self.chains.setdefault(key, []).append(_Version(value, t))
        t.written[key] = value
        t.ops.append(op)

    def commit(self, name: str) -> Outcome:
        """Commit, unless a rule of the level says abort."""
        t = self._running(name)
        if (stop := self._doomed(t)) is not None:
            return stop
        if self.rules.first_committer_wins:
            for key in t.written:
                if self.committed_at(key) > t.start_ts:
                    return self._abort(t, f"first committer wins: {key} was written by a transaction that "
                                          "committed after this one began")  # fmt: skip
        if self.rules.ssi and self._is_pivot(t):
            return self._abort(t, self._pivot_reason(t))
        if self.rules.commit_check is not None:
            reason = self.rules.commit_check(self, t)
            if reason is not None:
                return self._abort(t, str(reason))
        self.clock += 1
        t.commit_ts = self.clock
        t.status = Status.COMMITTED
        self.locks.release(name)
        return Done()

    def abort(self, name: str, reason: str = PROGRAMMED_ABORT) -> Outcome:
        """Abort: remove the transaction's versions and release its locks."""
        return self._abort(self._running(name), reason)

    def _abort(self, t: TxnState, reason: str) -> Aborted:
        t.status = Status.ABORTED
        t.abort_reason = reason
        for key in t.written:
            self.chains[key] = [v for v in self.chains[key] if v.writer is not t]
        self.locks.release(t.name)
        return Aborted(reason)

    def _doomed(self, t: TxnState) -> Aborted | None:
        if t.doomed is None:
            return None
        if not self._is_pivot(t):  # the partner that made it a pivot has aborted since
            t.doomed = None
            return None
        return self._abort(t, t.doomed)

    # -- SSI (Cahill, Röhm & Fekete 2008, §3) ------------------------------
    # A read-write conflict R -> W: R read a version, and a concurrent W wrote
    # a newer one. Found from either side: when R reads and a newer version
    # exists ("stale MVCC read", DDIA), or when W writes a key R has read
    # ("writes that affect prior reads"). A transaction with a conflict in and
    # a conflict out is a pivot: it is aborted (or, if it already committed,
    # the transaction that completed the structure is).
    def _concurrent(self, a: TxnState, b: TxnState) -> bool:
        """Neither committed before the other took its snapshot."""

        def before(x: TxnState, y: TxnState) -> bool:
            return x.commit_ts is not None and y.start_ts is not None and x.commit_ts <= y.start_ts

        return not before(a, b) and not before(b, a)

    def _ssi_read(self, t: TxnState, key: Hashable) -> Aborted | None:
        self.siread.setdefault(key, set()).add(t.name)
        return self._conflicts_from_newer_versions(t, [key])

    def _ssi_scan(self, t: TxnState, prefix: str) -> Aborted | None:
        self.siread_predicates.setdefault(prefix, set()).add(t.name)
        keys = [k for k in self.chains if isinstance(k, str) and k.startswith(prefix)]
        return self._conflicts_from_newer_versions(t, keys)

    def _conflicts_from_newer_versions(self, t: TxnState, keys: Iterable[Hashable]) -> Aborted | None:
        for key in keys:
            for v in self.chains.get(key, []):
                w = v.writer
                if (
                    w is not t
                    and w.status is not Status.ABORTED
                    and self._concurrent(t, w)
                    and (stop := self._rw_conflict(t, w, t)) is not None
                ):
                    return stop
        return None

    def _ssi_write(self, t: TxnState, key: Hashable) -> Aborted | None:
        readers = set(self.siread.get(key, set()))
        for prefix, holders in self.siread_predicates.items():
            if isinstance(key, str) and key.startswith(prefix):
                readers |= holders
        for name in sorted(readers - {t.name}):
            r = self.txns[name]
            if (
                r.status is not Status.ABORTED
                and self._concurrent(r, t)
                and (stop := self._rw_conflict(r, t, t)) is not None
            ):
                return stop
        return None

    def _live(self, names: set[str]) -> set[str]:
        return {n for n in names if self.txns[n].status is not Status.ABORTED}

    def _is_pivot(self, t: TxnState) -> bool:
        return bool(self._live(t.rw_in)) and bool(self._live(t.rw_out))

    def _pivot_reason(self, t: TxnState) -> str:
        ins, outs = sorted(self._live(t.rw_in)), sorted(self._live(t.rw_out))
        return (
            f"serialization failure: {t.name} has a read-write conflict in (from {', '.join(ins)}) "
            f"and out (to {', '.join(outs)})"
        )

    def _rw_conflict(self, reader: TxnState, writer: TxnState, current: TxnState) -> Aborted | None:
        reader.rw_out.add(writer.name)
        writer.rw_in.add(reader.name)
        if self._is_pivot(current):
            return self._abort(current, self._pivot_reason(current))
        for pivot in (reader, writer):
            if pivot is current or not self._is_pivot(pivot):
                continue
            if pivot.active:
                if pivot.doomed is None:
                    pivot.doomed = self._pivot_reason(pivot)
            else:  # a committed pivot cannot be undone: abort the one that completed it
                return self._abort(
                    current, f"serialization failure: {pivot.name} (committed) would become a pivot"
                )
        return None
