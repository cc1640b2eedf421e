"""Simulated order services: inventory, payment and shipping.

Each service is a sans-IO :class:`~labkit.sim.Node` owning one local
database (its durable ``ctx.storage``). A saga step is one *local
transaction* in one service (Garcia-Molina and Salem, "Sagas", SIGMOD 1987,
section 1; DDIA ch. 9, "Distributed Transactions in Practice"). The services
speak one small protocol, :class:`Request` in and :class:`Reply` out, with
five operations (:class:`Op`):

* ``DO`` / ``UNDO``: the step and its compensation (for a saga);
* ``PREPARE`` / ``COMMIT`` / ``ABORT``: the participant side of two-phase
  commit (see :mod:`labkit.saga.twopc`).

Every request carries an **idempotency key**. The service remembers the
outcome of every key in durable storage, so a retried ``DO`` is applied at
most once and answered with the first outcome, and an ``UNDO`` is safe to
repeat. An ``UNDO`` that arrives *before* its ``DO`` (the ``DO`` was slow,
the orchestrator gave up and compensated) leaves a tombstone, so the late
``DO`` is refused instead of charging a customer nobody will refund.

Faults are injected per service with :class:`ServiceFaults`: a business
rejection, a crash right after applying a step (the reply never leaves), a
slow step (held before it is applied, longer than a timeout) and
compensations that fail transiently a number of times.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any

from labkit import validation as valid
from labkit.sim import Context, Node

MAX_FLAKY_UNDO = 1000  # more transient failures per service would only make a run slow, not teach more


class Op(Enum):
    """What a request asks a service to do."""

    DO = "do"  # apply the step (reserve, charge, create a label)
    UNDO = "undo"  # compensate it (release, refund, cancel the label)
    PREPARE = "prepare"  # 2PC phase 1: apply tentatively and lock, then vote
    COMMIT = "commit"  # 2PC phase 2: make the prepared change final
    ABORT = "abort"  # 2PC phase 2: roll the prepared change back


class Outcome(Enum):
    """A service's answer."""

    OK = "ok"  # done (for PREPARE: vote yes)
    REJECTED = "rejected"  # the business said no, definitely not applied (for PREPARE: vote no)
    RETRY = "retry"  # a transient failure: nothing happened, try again later


class EntryStatus(Enum):
    """What a service remembers about one idempotency key."""

    APPLIED = "applied"  # DO took effect
    REFUSED = "refused"  # DO was rejected; a retry gets the same answer
    COMPENSATED = "compensated"  # DO took effect, then UNDO reverted it
    VOIDED = "voided"  # UNDO came first: a later DO with this key is refused
    PREPARED = "prepared"  # 2PC: applied tentatively, entity locked, in doubt
    COMMITTED = "committed"  # 2PC: final
    ABORTED = "aborted"  # 2PC: rolled back (or aborted before any prepare)


@dataclass(frozen=True, slots=True)
class Request:
    """``op`` on behalf of saga (or transaction) ``saga_id``, step ``step``."""

    saga_id: str
    step: int
    op: Op
    key: str
    args: tuple = ()


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a :class:`Request`, echoing its identifiers."""

    saga_id: str
    step: int
    op: Op
    key: str
    outcome: Outcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Entry:
    """The durable record of one idempotency key."""

    status: EntryStatus
    args: tuple
    at: float  # virtual time of the last change


@dataclass(frozen=True, slots=True)
class ServiceFaults:
    """Faults to inject into one service."""

    # Every DO/PREPARE is refused by the business rule (out of stock, card declined, bad address).
    reject: bool = False
    # The first DO is applied and made durable, then the service crashes before replying and
    # restarts ``down_for`` seconds later: the caller sees a timeout, the step is *maybe done*.
    crash_after_apply: bool = False
    # Every DO waits this many seconds before it is applied (and answered); longer than the
    # caller's timeout, the step is maybe done.
    slow: float = 0.0
    flaky_undo: int = 0  # the first this many UNDOs fail transiently (Outcome.RETRY), doing nothing
    down_for: float = 1.0  # how long a crashed service stays down

    def __post_init__(self) -> None:
        valid.boolean("reject", self.reject)
        valid.boolean("crash_after_apply", self.crash_after_apply)
        valid.number("slow", self.slow, ge=0, unit="seconds")
        valid.number("down_for", self.down_for, ge=0, unit="seconds")
        valid.integer("flaky_undo", self.flaky_undo, ge=0, le=MAX_FLAKY_UNDO)


_NO_FAULTS = ServiceFaults()
_S = EntryStatus

# The only moves an entry may make (see the Service invariant).
_ALLOWED: dict[EntryStatus | None, set[EntryStatus]] = {
    None: {_S.APPLIED, _S.REFUSED, _S.VOIDED, _S.PREPARED, _S.ABORTED},
    _S.APPLIED: {_S.COMPENSATED},
    _S.PREPARED: {_S.COMMITTED, _S.ABORTED},
}


def check_transition(old: EntryStatus | None, new: EntryStatus) -> None:
    """Raise AssertionError unless an entry may move from ``old`` to ``new``."""
    assert new in _ALLOWED.get(old, ()), f"entry may not move from {old} to {new}"


class Service(Node, ABC):
    """Base class: idempotency, tombstones, 2PC locks and fault injection.

    A subclass says what its step does with four small methods over its own
    durable state: :meth:`refuse` (the business rule), :meth:`apply`,
    :meth:`revert` and :meth:`entity` (what a 2PC prepare locks).

    Durable storage layout (survives crashes): ``("initial",) -> opening
    state``, ``("entry", key) -> Entry`` and whatever the subclass keeps
    under ``("state", name)``. Volatile:
    the fault counters and the queue of held (slow) requests.

    # Invariant: a key's entry moves only along
    #   (none) -> APPLIED -> COMPENSATED, (none) -> REFUSED, (none) -> VOIDED,
    #   (none) -> PREPARED -> COMMITTED | ABORTED, (none) -> ABORTED;
    # so a key is applied at most once, whatever is retried or duplicated.
    """

    #: Names of DO / UNDO as the business calls them (for timelines).
    do_name = "do"
    undo_name = "undo"
    rejection = "rejected"

    def __init__(self, node_id: str, faults: ServiceFaults = _NO_FAULTS, initial: dict | None = None) -> None:
        super().__init__(node_id)
        self.faults = valid.instance("faults", faults, ServiceFaults)
        self.initial = dict(initial or {})
        self.entries: dict[str, Entry] = {}
        self.state: dict[str, Any] = {}
        self.locks: dict[Any, str] = {}  # 2PC: entity -> key holding it
        self.crashing = False  # set when a fault wants this node crashed now
        self.undo_failures_left = faults.flaky_undo
        self.crash_armed = faults.crash_after_apply
        self._held = 0
        # Volatile: held (slow) requests vanish with a crash, as in a real process.
        self._pending: dict[str, tuple[str, Request]] = {}
        self._handlers: dict[Op, Callable[[Context, str, Request], None]] = {
            Op.DO: self._on_do,
            Op.UNDO: self._on_undo,
            Op.PREPARE: self._on_prepare,
            # Bound methods (not lambdas over self), so that a copied service dispatches to itself.
            Op.COMMIT: partial(self._finish, commit=True),
            Op.ABORT: partial(self._finish, commit=False),
        }

    # -- subclass hooks ---------------------------------------------------
    @abstractmethod
    def refuse(self, args: tuple) -> str | None:
        """Why the business refuses this step now, or None to accept it."""

    @abstractmethod
    def apply(self, ctx: Context, args: tuple) -> None:
        """Do the step's local transaction (persisting through ctx)."""

    @abstractmethod
    def revert(self, ctx: Context, args: tuple) -> None:
        """Undo what apply did (the compensation's local transaction)."""

    @abstractmethod
    def entity(self, args: tuple) -> Any:
        """What a 2PC prepare of this step locks (an account, a product...)."""

    # -- storage helpers ----------------------------------------------------
    def _set_state(self, ctx: Context, name: str, value: Any) -> None:
        self.state[name] = value
        ctx.persist(("state", name), value)

    def _set_entry(self, ctx: Context, key: str, status: EntryStatus, args: tuple) -> None:
        previous = self.entries.get(key)
        check_transition(previous.status if previous is not None else None, status)
        entry = Entry(status, args, ctx.now)
        self.entries[key] = entry
        ctx.persist(("entry", key), entry)

    # -- node handlers ------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        # The opening state is stored on first boot, so the database alone says what "nothing leaked" means.
        if ("initial",) not in ctx.storage:
            ctx.persist(("initial",), tuple(sorted(self.initial.items())))
        self.restore(ctx.storage)

    def restore(self, storage: Mapping[tuple, Any]) -> None:
        """Rebuild everything from durable storage: the local database (also read for a crashed service)."""
        self.initial = dict(storage.get(("initial",), self.initial))
        self.entries.clear()
        self.state = dict(self.initial)
        self.locks.clear()
        for key, value in storage.items():
            if key[0] == "entry":
                self.entries[key[1]] = value
                if value.status is EntryStatus.PREPARED:
                    self.locks[self.entity(value.args)] = key[1]
            elif key[0] == "state":
                self.state[key[1]] = value

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if self.crashing or not isinstance(msg, Request):
            return
        if msg.op is Op.DO and self.faults.slow > 0:
            # Hold the request: it is applied (and answered) only later.
            self._held += 1
            name = f"held/{self._held}"
            self._pending[name] = (src, msg)
            ctx.set_timer(name, self.faults.slow)
            ctx.note("service", op=self.do_name, key=msg.key, outcome="held (slow)")
            return
        self._handlers[msg.op](ctx, src, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        held = self._pending.pop(name, None)
        if held is not None and not self.crashing:
            self._handlers[held[1].op](ctx, held[0], held[1])

    def _reply(self, ctx: Context, src: str, msg: Request, outcome: Outcome, detail: str = "") -> None:
        ctx.send(src, Reply(msg.saga_id, msg.step, msg.op, msg.key, outcome, detail))

    def _refusal(self, args: tuple) -> str | None:
        """Why a DO or PREPARE of ``args`` is refused now (forced fault, business rule, 2PC lock)."""
        why = "forced failure: " + self.rejection if self.faults.reject else self.refuse(args)
        if why is None and self.entity(args) in self.locks:
            why = "locked by an in-doubt 2PC transaction"
        return why

    # -- saga operations ------------------------------------------------------
    def _on_do(self, ctx: Context, src: str, msg: Request) -> None:
        entry = self.entries.get(msg.key)
        if entry is not None:
            # A retry or a duplicate: answer as the first time, change nothing.
            ok = entry.status in (EntryStatus.APPLIED, EntryStatus.COMPENSATED)
            voided = entry.status is EntryStatus.VOIDED
            why = "" if ok else "compensated before it arrived" if voided else self.rejection
            self._reply(ctx, src, msg, Outcome.OK if ok else Outcome.REJECTED, why)
            ctx.note("service", op=self.do_name, key=msg.key, outcome="duplicate", status=entry.status.value)
            return
        why = self._refusal(msg.args)
        if why is not None:
            self._set_entry(ctx, msg.key, EntryStatus.REFUSED, msg.args)
            self._reply(ctx, src, msg, Outcome.REJECTED, why)
            ctx.note("service", op=self.do_name, key=msg.key, outcome="rejected", detail=why)
            return
        self.apply(ctx, msg.args)
        self._set_entry(ctx, msg.key, EntryStatus.APPLIED, msg.args)
        ctx.note("service", op=self.do_name, key=msg.key, outcome="applied")
        if self.crash_armed:
            # The local transaction committed; the process dies before replying.
            self.crash_armed = False
            self.crashing = True
            ctx.note("service", op=self.do_name, key=msg.key, outcome="crash before reply")
            return
        self._reply(ctx, src, msg, Outcome.OK)

    def _on_undo(self, ctx: Context, src: str, msg: Request) -> None:
        if self.undo_failures_left > 0:
            self.undo_failures_left -= 1
            self._reply(ctx, src, msg, Outcome.RETRY, "transient failure")
            ctx.note("service", op=self.undo_name, key=msg.key, outcome="transient failure")
            return
        entry = self.entries.get(msg.key)
        if entry is None:
            # Compensating a step that has not arrived (yet): leave a tombstone.
            self._set_entry(ctx, msg.key, EntryStatus.VOIDED, msg.args)
            result = "voided (nothing to undo)"
        elif entry.status is EntryStatus.APPLIED:
            self.revert(ctx, entry.args)
            self._set_entry(ctx, msg.key, EntryStatus.COMPENSATED, entry.args)
            result = "compensated"
        else:  # already compensated, voided or refused: nothing to do
            result = "no-op (" + entry.status.value + ")"
        self._reply(ctx, src, msg, Outcome.OK, result)
        ctx.note("service", op=self.undo_name, key=msg.key, outcome=result)

    # -- two-phase commit (participant side) ----------------------------------
    def _on_prepare(self, ctx: Context, src: str, msg: Request) -> None:
        entry = self.entries.get(msg.key)
        if entry is not None:
            yes = entry.status in (EntryStatus.PREPARED, EntryStatus.COMMITTED)
            self._reply(ctx, src, msg, Outcome.OK if yes else Outcome.REJECTED, "duplicate")
            return
        entity = self.entity(msg.args)
        why = self._refusal(msg.args)
        if why is not None:
            self._set_entry(ctx, msg.key, EntryStatus.ABORTED, msg.args)
            self._reply(ctx, src, msg, Outcome.REJECTED, why)
            ctx.note("participant", key=msg.key, vote="no", detail=why)
            return
        # Apply tentatively and lock the entity until the coordinator decides.
        self.apply(ctx, msg.args)
        self.locks[entity] = msg.key
        self._set_entry(ctx, msg.key, EntryStatus.PREPARED, msg.args)
        self._reply(ctx, src, msg, Outcome.OK)
        ctx.note("participant", key=msg.key, vote="yes", entity=str(entity))

    def _finish(self, ctx: Context, src: str, msg: Request, commit: bool) -> None:
        entry = self.entries.get(msg.key)
        if entry is not None and entry.status is EntryStatus.PREPARED:
            if not commit:
                self.revert(ctx, entry.args)
            self.locks.pop(self.entity(entry.args), None)
            status = EntryStatus.COMMITTED if commit else EntryStatus.ABORTED
            self._set_entry(ctx, msg.key, status, entry.args)
            ctx.note("participant", key=msg.key, decision=status.value)
        elif entry is None and not commit:
            self._set_entry(ctx, msg.key, EntryStatus.ABORTED, msg.args)
        self._reply(ctx, src, msg, Outcome.OK)


class _Ledger(Service):
    """A count per entity (units of a product, a customer's balance): DO takes
    ``amount`` from it, refused if that would go below zero; UNDO gives it back.

    args: ``(entity, amount)``. State: ``("state", entity) -> count``.
    """

    def refuse(self, args: tuple) -> str | None:
        entity, amount = args
        return None if self.state.get(entity, 0) >= amount else self.rejection

    def apply(self, ctx: Context, args: tuple) -> None:
        entity, amount = args
        self._set_state(ctx, entity, self.state.get(entity, 0) - amount)

    def revert(self, ctx: Context, args: tuple) -> None:
        entity, amount = args
        self._set_state(ctx, entity, self.state.get(entity, 0) + amount)

    def entity(self, args: tuple) -> Any:
        return args[0]


class InventoryService(_Ledger):
    """Stock per product. DO reserves ``qty`` of ``sku``; UNDO releases it. args: ``(sku, qty)``."""

    do_name, undo_name, rejection = "reserve", "release", "insufficient stock"


class PaymentService(_Ledger):
    """Customer balances. DO charges ``amount``; UNDO refunds it. args: ``(customer, amount)``."""

    do_name, undo_name, rejection = "charge", "refund", "card declined"


class ShippingService(Service):
    """Shipping labels. DO creates a label for ``address``; UNDO cancels it.

    args: ``(address,)``. State: ``("state", "labels") -> active label count``.
    """

    do_name, undo_name, rejection = "create_label", "cancel_label", "address not deliverable"

    def refuse(self, args: tuple) -> str | None:
        (address,) = args
        return None if address else self.rejection

    def apply(self, ctx: Context, args: tuple) -> None:
        self._set_state(ctx, "labels", self.state.get("labels", 0) + 1)

    def revert(self, ctx: Context, args: tuple) -> None:
        self._set_state(ctx, "labels", self.state.get("labels", 0) - 1)

    def entity(self, args: tuple) -> Any:
        return ("address", args[0])


SERVICE_CLASSES: dict[str, type[Service]] = {
    "inventory": InventoryService,
    "payment": PaymentService,
    "shipping": ShippingService,
}
