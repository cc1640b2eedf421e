"""Transaction programs, run on the store in a chosen interleaving.

A *program* is a list of steps, ending with :class:`Commit` or :class:`Abort`::

    deposit = [Read("x"), Write("x", lambda seen: seen["x"] + 10, show="x + 10"), Commit()]

An *interleaving* says whose turn it is, step by step: ``("T1", "T2", "T1",
"T2", "T1", "T2")`` lets T1 and T2 alternate. :func:`run` plays it on a fresh
:class:`~labkit.txn.store.Store`. When a step finds a lock held by someone
else, its transaction **waits**: its later turns are kept, and as soon as the
lock is free (the holder commits or aborts) the step goes through and the
transaction takes the turns it missed. A transaction that would wait for one
that waits for it (a deadlock, DDIA ch. 7 "Two-Phase Locking") is aborted:
the one whose request closed the cycle. The result is a :class:`Run`: the
events for a timeline, what each transaction saw, how each ended, the final
state, and the history for the checker (with a last read-only transaction,
``end``, that reads every key after everything finished, as Elle's final
reads do).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from typing import Any

from labkit import validation as valid
from labkit.txn.checker import CheckResult, check
from labkit.txn.history import History, Status, format_value
from labkit.txn.store import Aborted, Blocked, Done, Isolation, Outcome, Rules, Store

__all__ = [
    "Read",
    "Write",
    "Append",
    "Scan",
    "Commit",
    "Abort",
    "Step",
    "EventKind",
    "Event",
    "Run",
    "run",
    "serial_order",
    "interleavings",
    "random_schedule",
    "count_interleavings",
    "OBSERVER",
]

OBSERVER = "end"
"""The name of the read-only transaction that reads every key after the run."""


def _check_key(key: Any) -> None:
    try:
        hash(key)
    except TypeError:
        raise valid.ArgumentTypeError(
            f"key must be hashable (a str or an int), got {valid.shown(key)}"
        ) from None


@dataclass(frozen=True, slots=True)
class Read:
    """Read ``key``; what was read is in ``seen[key]`` for later steps."""

    key: Hashable

    def __post_init__(self) -> None:
        _check_key(self.key)

    def __str__(self) -> str:
        return f"r {self.key}"


@dataclass(frozen=True, slots=True)
class Write:
    """Write ``key``. ``value`` is a value, or a function of ``seen`` (what the
    transaction has read so far). With ``when``, the write happens only if
    ``when(seen)`` is true. ``show`` is how the value is written in pictures."""

    key: Hashable
    value: Any
    when: Callable[[Mapping[Hashable, Any]], bool] | None = None
    show: str | None = None

    def __post_init__(self) -> None:
        _check_key(self.key)
        valid.function("when", self.when, "a function of seen", none=True)
        valid.instance("show", self.show, str, none=True)

    def __str__(self) -> str:
        shown = self.show or (format_value(self.value) if not callable(self.value) else "f(seen)")
        return f"w {self.key} = {shown}" + (" if ..." if self.when is not None else "")


@dataclass(frozen=True, slots=True)
class Append:
    """Append ``element`` to the list at ``key``."""

    key: Hashable
    element: Any

    def __str__(self) -> str:
        return f"a {self.key} {self.element}"


@dataclass(frozen=True, slots=True)
class Scan:
    """Read every key starting with ``prefix`` (``seen[prefix]`` is a dict)."""

    prefix: str

    def __str__(self) -> str:
        return f"scan {self.prefix}*"


@dataclass(frozen=True, slots=True)
class Commit:
    def __str__(self) -> str:
        return "commit"


@dataclass(frozen=True, slots=True)
class Abort:
    def __str__(self) -> str:
        return "abort"


Step = Read | Write | Append | Scan | Commit | Abort
STEP_TYPES = (Read, Write, Append, Scan, Commit, Abort)


class EventKind(Enum):
    """What a timeline shows for one step."""

    READ = "read"
    WRITE = "write"
    SKIP = "skip"  # a conditional write whose condition was false
    WAIT = "wait"
    COMMIT = "commit"
    ABORT = "abort"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, at logical time ``tick``, to transaction ``txn``."""

    tick: int
    txn: str
    kind: EventKind
    text: str
    by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Run:
    """What :func:`run` did: events, outcomes, what was seen, the final state, the history."""

    rules: Rules
    programs: Mapping[str, tuple[Step, ...]]
    order: tuple[str, ...]
    events: tuple[Event, ...]
    status: Mapping[str, Status]
    reasons: Mapping[str, str]
    seen: Mapping[str, Mapping[Hashable, Any]]
    final: Mapping[Hashable, Any]
    history: History
    waited: frozenset[str] = field(default_factory=frozenset)

    @cached_property
    def result(self) -> CheckResult:
        """The checker's verdict on the history."""
        return check(self.history)

    def committed(self, name: str) -> bool:
        return self.status[name] is Status.COMMITTED

    def summary(self) -> str:
        """One line: how each transaction ended."""
        parts = []
        for name in self.programs:
            s = self.status[name].value
            if name in self.reasons:
                s += f" ({self.reasons[name]})"
            if name in self.waited:
                s += ", after waiting"
            parts.append(f"{name} {s}")
        return "; ".join(parts)


def _validate_programs(programs: Mapping[str, Sequence[Step]]) -> dict[str, tuple[Step, ...]]:
    valid.instance("programs", programs, Mapping)
    valid.non_empty("programs", programs, "mapping of name to a list of steps")
    out = {}
    for name, steps in programs.items():
        if not isinstance(name, str) or not name or name in ("T0", OBSERVER):
            raise ValueError(
                f"program names must be non-empty str other than 'T0' and {OBSERVER!r}, got {name!r}"
            )
        steps = tuple(steps)
        bad = [s for s in steps if not isinstance(s, STEP_TYPES)]
        if bad:
            raise TypeError(
                f"{name}: steps must be Read, Write, Append, Scan, Commit or Abort, got {bad[0]!r}"
            )
        ends = [i for i, s in enumerate(steps) if isinstance(s, (Commit, Abort))]
        if ends != [len(steps) - 1]:
            raise ValueError(f"{name}: a program ends with exactly one Commit() or Abort(), as its last step")
        out[name] = steps
    return out


def serial_order(programs: Mapping[str, Sequence[Step]]) -> tuple[str, ...]:
    """Each program from start to end, one after the other, in the given order."""
    return tuple(name for name, steps in programs.items() for _ in steps)


def interleavings(programs: Mapping[str, Sequence[Step]]) -> list[tuple[str, ...]]:
    """Every interleaving of the programs' steps (each program's steps stay in order)."""
    progs = _validate_programs(programs)
    names = list(progs)
    total = sum(len(s) for s in progs.values())
    if total > 16:
        raise ValueError(
            f"the programs have {total} steps in all; enumerating interleavings is for 16 or fewer"
        )
    out: list[tuple[str, ...]] = []

    def extend(prefix: list[str], left: dict[str, int]) -> None:
        if not any(left.values()):
            out.append(tuple(prefix))
            return
        for n in names:
            if left[n]:
                left[n] -= 1
                prefix.append(n)
                extend(prefix, left)
                prefix.pop()
                left[n] += 1

    extend([], {n: len(s) for n, s in progs.items()})
    return out


def _schedule(
    progs: dict[str, tuple[Step, ...]],
    order: Sequence[str] | None,
    clients: Mapping[str, Sequence[str]] | None,
) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """Who runs which programs (each program alone by default) and the order of their turns
    (default: one after another), checked: every program run by one client, each client given
    one turn per step of its programs."""
    if clients is None:
        who = {n: [n] for n in progs}
        need = {n: len(s) for n, s in progs.items()}
    else:
        if not isinstance(clients, Mapping):
            raise TypeError(f"clients must map a client name to a list of program names, got {clients!r}")
        who = {c: list(names) for c, names in clients.items()}
        listed = [n for names in who.values() for n in names]
        if sorted(listed) != sorted(progs):
            raise ValueError(f"clients must list every program exactly once; they list {listed}")
        need = {c: sum(len(progs[n]) for n in names) for c, names in who.items()}
    if order is None:
        order = [c for c in who for _ in range(need[c])]
    if isinstance(order, str):
        raise TypeError("order must be a sequence of names, e.g. ['T1', 'T2', 'T1'], not one str")
    order = tuple(order)
    for name in order:
        if name not in who:
            raise ValueError(f"order names {name!r}, which is not a {'client' if clients else 'program'} "
                             f"(known: {list(who)})")  # fmt: skip
    for name, n in need.items():
        if order.count(name) != n:
            raise ValueError(
                f"order must give {name} exactly {n} turns (one per step), it gives {order.count(name)}"
            )
    return who, order


def random_schedule(
    rng: random.Random, programs: Mapping[str, Sequence[Step]], clients: int = 3
) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """Clients and a random order of their turns, for :func:`run`.

    Program i goes to client ``c{i mod clients}``; each client runs its programs
    one after another, and the clients' turns are shuffled at random. Returns
    ``(clients, order)``.
    """
    valid.instance("rng", rng, random.Random)
    valid.integer("clients", clients, ge=1, le=1000)
    progs = _validate_programs(programs)
    who: dict[str, list[str]] = {f"c{i}": [] for i in range(min(clients, len(progs)))}
    for i, name in enumerate(progs):
        who[f"c{i % clients}"].append(name)
    turns = [c for c, names in who.items() for name in names for _ in progs[name]]
    rng.shuffle(turns)
    return who, tuple(turns)


class Turns:
    """Clients taking turns, as :func:`run` plays them on the store and
    :func:`~labkit.txn.databases.run_workload` on a real database.

    Each client runs its transactions one after another. A turn that comes
    while the client's transaction waits for a lock is owed to the client;
    when the wait ends, the transaction takes the turns it missed. Subclasses
    say what a step is (:meth:`attempt`), when a transaction is over
    (:meth:`done`) and how a waiting one tries again (:meth:`resume`).
    """

    def __init__(self, clients: Mapping[str, Sequence[str]]) -> None:
        self.queue = {c: list(names) for c, names in clients.items()}
        self.client_of = {n: c for c, names in clients.items() for n in names}
        self.owed = dict.fromkeys(clients, 0)
        self.waiting: dict[str, Any] = {}  # the transactions that wait, in the order they began waiting

    def done(self, name: str) -> bool:
        raise NotImplementedError

    def attempt(self, name: str) -> Any:
        """Try ``name``'s next step; it either goes through or makes ``name`` wait."""
        raise NotImplementedError

    def resume(self, name: str) -> bool:
        """Let the waiting ``name`` try again: whether its wait ended."""
        raise NotImplementedError

    def current(self, client: str) -> str | None:
        """The client's transaction now: its first that has not ended."""
        q = self.queue[client]
        while q and self.done(q[0]):
            q.pop(0)
        return q[0] if q else None

    def wake(self) -> None:
        """Let waiting transactions go on, oldest wait first, until none can; each then takes
        the turns its client missed while it waited."""
        progress = True
        while progress:
            progress = False
            for name in list(self.waiting):
                if self.resume(name):
                    progress = True
                    client = self.client_of[name]
                    while self.owed[client] and (cur := self.current(client)) and cur not in self.waiting:
                        self.owed[client] -= 1
                        self.attempt(cur)
                    break

    def play(self, order: Sequence[str]) -> None:
        for client in order:
            name = self.current(client)
            if name is None:
                continue
            if name in self.waiting:
                self.owed[client] += 1
                continue
            self.attempt(name)
            self.wake()


class _Driver(Turns):
    """Plays an order of turns on a store: waits, owed turns, deadlocks."""

    def __init__(
        self, programs: dict[str, tuple[Step, ...]], store: Store, clients: dict[str, list[str]], check: bool
    ) -> None:
        super().__init__(clients)
        self.check_invariants = check
        self.programs = programs
        self.store = store
        self.pc = dict.fromkeys(programs, 0)
        self.seen: dict[str, dict[Hashable, Any]] = {n: {} for n in programs}
        self.waiting: dict[str, Blocked] = {}  # who blocks each waiting transaction now
        self.events: list[Event] = []
        self.waited: set[str] = set()
        for n in programs:
            store.begin(n)

    def done(self, name: str) -> bool:
        return not self.store.txns[name].active

    def emit(self, name: str, kind: EventKind, text: str, by: tuple[str, ...] = ()) -> None:
        self.events.append(Event(len(self.events), name, kind, text, by))

    def apply(self, name: str, step: Step) -> tuple[Outcome, EventKind, str]:
        s, seen = self.store, self.seen[name]
        if isinstance(step, Read):
            out = s.read(name, step.key)
            if isinstance(out, Done):
                seen[step.key] = out.value
            return (
                out,
                EventKind.READ,
                f"r {step.key} = {format_value(out.value) if isinstance(out, Done) else ''}",
            )
        if isinstance(step, Scan):
            out = s.scan(name, step.prefix)
            if isinstance(out, Done):
                seen[step.prefix] = out.value
                shown = "{" + ", ".join(f"{k}={format_value(v)}" for k, v in out.value.items()) + "}"
                return out, EventKind.READ, f"scan {step.prefix}* = {shown}"
            return out, EventKind.READ, ""
        if isinstance(step, Write):
            if step.when is not None and not step.when(seen):
                return Done(), EventKind.SKIP, f"w {step.key} skipped (condition false)"
            value = step.value(seen) if callable(step.value) else step.value
            return s.write(name, step.key, value), EventKind.WRITE, f"w {step.key} = {format_value(value)}"
        if isinstance(step, Append):
            return s.append(name, step.key, step.element), EventKind.WRITE, f"a {step.key} {step.element}"
        if isinstance(step, Commit):
            return s.commit(name), EventKind.COMMIT, "commit"
        return s.abort(name), EventKind.ABORT, "abort (as programmed)"

    def attempt(self, name: str) -> bool:
        """Try ``name``'s next step. False if it is (still) blocked."""
        progressed = self._attempt(name)
        if self.check_invariants and (problems := self.store.invariants()):
            raise AssertionError(f"after {name}'s step: " + "; ".join(problems))
        return progressed

    def _attempt(self, name: str) -> bool:
        step = self.programs[name][self.pc[name]]
        outcome, kind, text = self.apply(name, step)
        if isinstance(outcome, Blocked):
            if name not in self.waiting:
                self.waited.add(name)
                self.emit(name, EventKind.WAIT, f"{step}: waits for {', '.join(outcome.by)} ({outcome.what})",
                          outcome.by)  # fmt: skip
            self.waiting[name] = outcome  # who blocks it now
            cycle = self.deadlock(name)
            if cycle:
                del self.waiting[name]
                reason = "deadlock: " + " waits for ".join(cycle)
                self.store.abort(name, reason)
                self.emit(name, EventKind.ABORT, f"abort ({reason})")
                return True
            return False
        self.waiting.pop(name, None)
        if isinstance(outcome, Aborted):
            if isinstance(step, Abort):
                self.emit(name, EventKind.ABORT, text)
            else:
                self.emit(name, EventKind.ABORT, f"{step}: abort ({outcome.reason})")
            return True
        self.emit(name, kind, text)
        self.pc[name] += 1
        return True

    def deadlock(self, start: str) -> list[str]:
        """A cycle of waits through ``start``, as names (start first and last), or []."""
        stack = [(start, [start])]
        visited = set()
        while stack:
            node, path = stack.pop()
            blocked = self.waiting.get(node)
            for nxt in blocked.by if blocked else ():
                if nxt == start:
                    return [*path, start]
                if nxt not in visited and nxt in self.waiting:
                    visited.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return []

    def resume(self, name: str) -> bool:
        return self.attempt(name)  # the waiting step is tried again

    def play(self, order: Sequence[str]) -> None:
        super().play(order)
        stuck = [n for n in self.programs if not self.done(n)]
        if stuck:  # cannot happen: every program ends with Commit/Abort and waits end in a commit or abort
            raise RuntimeError(f"transactions {stuck} did not finish; waiting: {self.waiting}")


def run(
    programs: Mapping[str, Sequence[Step]],
    order: Sequence[str] | None = None,
    isolation: Isolation | Rules = Isolation.READ_COMMITTED,
    initial: Mapping[Hashable, Any] | None = None,
    *,
    clients: Mapping[str, Sequence[str]] | None = None,
    observe: bool = True,
    check_invariants: bool = False,
) -> Run:
    """Run ``programs`` on a fresh store in the interleaving ``order`` (default: one after another).

    ``order`` lists program names, each as many times as it has steps.
    ``isolation`` is an :class:`Isolation` or your own :class:`Rules`;
    ``initial`` the values written by ``T0`` before anything else. With
    ``clients`` (client name -> the programs it runs, one after another),
    ``order`` lists client names instead, each as many times as its programs
    have steps. With ``observe``, a last transaction ``end`` reads every key.
    With ``check_invariants``, the store's invariants are checked after every
    step (:meth:`~labkit.txn.store.Store.invariants`; an ``AssertionError`` if one fails).
    """
    progs = _validate_programs(programs)
    who, order = _schedule(progs, order, clients)
    store = Store(isolation, initial)
    driver = _Driver(progs, store, who, valid.boolean("check_invariants", check_invariants))
    driver.play(order)
    final = store.committed_state()
    if observe:
        store.begin(OBSERVER)
        for key in sorted(store.chains, key=repr):
            store.read(OBSERVER, key)
        store.commit(OBSERVER)
    states = {n: store.txns[n] for n in progs}
    return Run(
        rules=store.rules,
        programs=progs,
        order=order,
        events=tuple(driver.events),
        status={n: t.status for n, t in states.items()},
        reasons={
            n: t.abort_reason for n, t in states.items() if t.abort_reason and t.status is Status.ABORTED
        },
        seen={n: dict(s) for n, s in driver.seen.items()},
        final=final,
        history=store.history(),
        waited=frozenset(driver.waited),
    )


def count_interleavings(programs: Mapping[str, Sequence[Step]]) -> int:
    """How many interleavings :func:`interleavings` would list (a multinomial coefficient)."""
    sizes = [len(s) for s in _validate_programs(programs).values()]
    total, out = 0, 1
    for n in sizes:
        total += n
        out *= _binom(total, n)
    return out


def _binom(n: int, k: int) -> int:
    num = 1
    for i in range(k):
        num = num * (n - i) // (i + 1)
    return num
