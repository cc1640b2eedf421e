"""The saga lab's skeleton: a durable saga orchestrator without its rules.

A saga (Garcia-Molina and Salem, SIGMOD 1987) runs steps T1..Tn, each a
local transaction in one service; if one fails, the compensations of the
steps that may have run, Cj..C1, run in reverse order. The orchestrator that
drives it keeps a **saga log** (§4): it writes what it is about to do before
it does it, so that after a crash a new orchestrator can read the log and
go on from there, forward (§5) or backward (§4). Every request carries an
**idempotency key**, so the retries that timeouts and recovery make take
effect once.

:class:`SagaOrchestrator` gives the learner everything but the rules:

* the log: :meth:`write` appends records to the saga's log in SQLite
  (:class:`~labkit.saga.log.SagaLog`) as **one transaction**, creating the
  saga in the log on its first write, and then folds each record into the
  saga's state with your ``apply`` rule: the state is what the log says;
* requests: :meth:`send` sends a step's ``DO`` or ``UNDO`` to its service
  with the key you give; replies come to ``handle_step_reply`` or
  ``handle_compensation_reply``;
* a timer per saga (:meth:`set_timer`, :meth:`cancel_timer`): when it fires,
  ``step_timed_out`` or ``compensation_timed_out`` (by the saga's phase);
* the order's steps (:attr:`definition`, ORDER_SAGA: reserve, charge, ship)
  and the timeouts and retries (:attr:`policy`);
* recovery: on every boot the skeleton reads each unfinished saga's records
  back, folds them into a fresh :class:`Saga` with your ``apply``, then
  calls your ``resume``.

Crashes: the lab can make the orchestrator die at a log write, just before
it commits or just after (:class:`Crashed`). A request sent before that
write has left; nothing asked for after it happens. The orchestrator then
ignores everything until the lab has crashed and restarted it.

The rules (:data:`RULES`) raise ``NotImplementedError`` until written; the
orchestrator runs anyway and a rule not written does nothing (see
:mod:`labkit.labs.rules`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from labkit import validation as valid
from labkit.labs.rules import RuleBook, rules_by_part, with_stubs
from labkit.saga.definition import ORDER_SAGA, Order, SagaDefinition
from labkit.saga.log import LogKind, LogRecord, SagaLog
from labkit.saga.orchestrator import SAGA_RETRY, Phase, RetryPolicy, check_saga_policy
from labkit.saga.services import Op, Reply, Request
from labkit.sim import Context, Node

__all__ = ["SagaOrchestrator", "Saga", "Crashed", "WriteCounter", "RULES"]

# Every rule a learner writes, part by part of the lab, and what it is.
RULES = rules_by_part(
    steps={
        "apply": "the saga's state is what its log says: fold one record into it",
        "send_step": "log, then act: record the step's request, then send it with its key",
        "handle_step_reply": "a step's answer: done (next step, or completed), or refused",
        "step_timed_out": "no answer: send again with the same key, or give up (maybe done)",
    },
    compensation={
        "compensate_next": "undo the steps that may have run, last one first",
        "send_compensation": "log, then act: record the compensation, then send it",
        "handle_compensation_reply": "a compensation's answer: done (next one), or try later",
        "compensation_timed_out": "no answer: a compensation never gives up",
    },
    recovery={
        "resume": "after a restart: go on from where the log says",
    },
)


@dataclass(slots=True)
class Saga:
    """Where one saga stands, in memory; changed only by your ``apply`` rule, one log record at a time.

    ``phase``: FORWARD, COMPENSATING, COMPLETED or ABORTED; ``step``: the step
    being done (forward) or undone (compensating); ``attempt``: how many times
    its request was sent; ``to_undo``: the steps done or maybe done that are
    not compensated yet, in step order.
    """

    saga_id: str
    order: Order
    phase: Phase = Phase.FORWARD
    step: int = 0
    attempt: int = 0
    to_undo: list[int] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.COMPLETED, Phase.ABORTED)

    def __repr__(self) -> str:
        return (
            f"Saga({self.saga_id!r}, {self.phase.value}, step={self.step}, attempt={self.attempt}, "
            f"to_undo={self.to_undo})"
        )


class Crashed(BaseException):
    """The orchestrator died at a log write (raised by :meth:`SagaOrchestrator.write` when the lab says so).

    A ``BaseException``, like ``SystemExit``: an ``except Exception`` in a rule
    does not stop a crash.
    """

    def __init__(self, sends: int, timers: int, where: str) -> None:
        super().__init__(where)
        self.sends = sends  # the requests asked for before the crash: they left
        self.timers = timers
        self.where = where


class WriteCounter:
    """Counts the log writes of every incarnation of an orchestrator, and where one should die.

    ``plan`` maps a write's number (1, 2, ... over the whole run) to "before"
    (it dies as it writes: the write does not commit) or "after" (it dies
    right after the write commits).
    """

    __slots__ = ("count", "plan")

    def __init__(self, plan: dict[int, str] | None = None) -> None:
        self.count = 0
        self.plan = dict(plan or {})

    def next(self) -> tuple[int, str | None]:
        self.count += 1
        return self.count, self.plan.get(self.count)


class SagaOrchestrator(RuleBook, Node):
    """A saga orchestrator without its rules; subclass it and add them with :meth:`rule`.

    Built by the lab as ``MySagas(node_id, log_path, writes=...)``: the saga
    log lives in the SQLite file ``log_path`` (it survives crashes).
    """

    RULES: ClassVar[dict[str, tuple[str, str]]] = RULES

    def __init__(
        self,
        node_id: str,
        log_path: str | os.PathLike,
        *,
        policy: RetryPolicy = SAGA_RETRY,
        definition: SagaDefinition = ORDER_SAGA,
        writes: WriteCounter | None = None,
    ) -> None:
        super().__init__(node_id)
        self.log_path = os.fspath(valid.instance("log_path", log_path, (str, os.PathLike)))
        self.policy = check_saga_policy(policy)
        self.definition = valid.instance("definition", definition, SagaDefinition)
        self.writes = writes if writes is not None else WriteCounter()
        self.log: SagaLog | None = None
        self.sagas: dict[str, Saga] = {}
        self.crashing = False  # died at a log write: ignores everything until the lab crashes it
        self._logged: set[str] = set()  # sagas that exist in the log

    # ------------------------------------------------------------------
    # Given: what the simulator calls (every handler stops at a crash)
    # ------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        """Boot or reboot: open the log, rebuild every unfinished saga from it (your ``apply``),
        then let each go on (your ``resume``)."""
        self.log = SagaLog(self.log_path, synchronous="OFF")
        self.sagas.clear()
        self._logged = {saga_id for saga_id, _ in self.log.sagas()}
        for saga_id in self.log.unfinished():
            saga = Saga(saga_id, Order(**self.log.payload(saga_id)))
            for record in self.log.records(saga_id):
                self.follow(ctx, "apply", saga, record)
            self.sagas[saga_id] = saga
            ctx.note("recovered", saga=saga_id, state=repr(saga))
        self._guard(ctx, self._resume_all, ctx)

    def _resume_all(self, ctx: Context) -> None:
        for saga in list(self.sagas.values()):
            if not saga.finished:
                self.follow(ctx, "resume", ctx, saga)

    def submit(self, ctx: Context, order: Order) -> bool:
        """The shop's new order: start its saga with step 0 (your ``send_step``). False if refused.

        An order whose id already has a saga is refused (the order id names the saga).
        """
        valid.instance("order", order, Order)
        if self.crashing or order.order_id in self.sagas or order.order_id in self._logged:
            return False
        saga = Saga(order.order_id, order)
        self.sagas[saga.saga_id] = saga
        self._guard(ctx, self.follow, ctx, "send_step", ctx, saga, 0, 1)
        if not self.crashing:
            ctx.note("order accepted", saga=saga.saga_id)
        return not self.crashing

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if self.crashing or not isinstance(msg, Reply):
            return
        saga = self.sagas.get(msg.saga_id)
        if saga is None or saga.finished:
            return  # a late answer for a saga that is over
        rule = "handle_step_reply" if msg.op is Op.DO else "handle_compensation_reply"
        self._guard(ctx, self.follow, ctx, rule, ctx, saga, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        saga = self.sagas.get(name)
        if self.crashing or saga is None or saga.finished:
            return
        rule = "step_timed_out" if saga.phase is Phase.FORWARD else "compensation_timed_out"
        self._guard(ctx, self.follow, ctx, rule, ctx, saga)

    def _guard(self, ctx: Context, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn``; if the orchestrator dies at a log write meanwhile, keep only what it asked before."""
        try:
            fn(*args)
        except Crashed as crash:
            del ctx.effects.sends[crash.sends :]
            del ctx.effects.timers[crash.timers :]
            self.crashing = True
            ctx.note("orchestrator", event="dies", where=crash.where)

    # ------------------------------------------------------------------
    # Given: the log, requests and timers
    # ------------------------------------------------------------------
    def write(self, ctx: Context, saga: Saga, *records: LogRecord) -> None:
        """Append ``records`` to ``saga``'s log as one transaction, then fold each into ``saga`` (your ``apply``).

        The first write of a saga also creates it in the log (with a ``saga_started``
        record first). A record's time (``at``) is filled in.
        """
        if self.log is None:
            raise RuntimeError("the orchestrator has not started yet: run the simulator until it boots")
        valid.instance("saga", saga, Saga)
        if not records:
            raise ValueError("write needs at least one LogRecord")
        stamped = []
        for i, r in enumerate(records):
            valid.instance(f"records[{i}]", r, LogRecord)
            stamped.append(dataclasses.replace(r, at=ctx.now))
        number, crash = self.writes.next()
        where = f"log write {number} ({', '.join(r.kind.value for r in stamped)} of {saga.saga_id})"
        if crash == "before":
            raise Crashed(len(ctx.effects.sends), len(ctx.effects.timers), f"at {where}, before it committed")
        if saga.saga_id in self._logged:
            self.log.append(saga.saga_id, stamped)
        else:
            first = LogRecord(LogKind.STARTED, at=ctx.now)
            self.log.begin(
                saga.saga_id, self.definition.name, dataclasses.asdict(saga.order), [first, *stamped]
            )
            self._logged.add(saga.saga_id)
        for r in stamped:
            ctx.note("saga log", saga=saga.saga_id, kind=r.kind.value, step=r.step, attempt=r.attempt)
            self.follow(ctx, "apply", saga, r)
        if crash == "after":
            raise Crashed(len(ctx.effects.sends), len(ctx.effects.timers), f"right after {where} committed")

    def records(self, saga: Saga) -> list[LogRecord]:
        """Every record of ``saga``'s log, in order (empty before its first write)."""
        if self.log is None or saga.saga_id not in self._logged:
            return []
        return self.log.records(saga.saga_id)

    def send(self, ctx: Context, saga: Saga, step: int, op: Op, key: str) -> None:
        """Send step ``step``'s ``op`` (``Op.DO`` or ``Op.UNDO``) to its service, with idempotency key ``key``."""
        valid.integer("step", step, ge=0, le=len(self.definition) - 1)
        valid.one_of("op", op, (Op.DO, Op.UNDO))
        valid.string("key", key)
        s = self.definition.steps[step]
        ctx.send(s.service, Request(saga.saga_id, step, op, key, s.args(saga.order)))

    def set_timer(self, ctx: Context, saga: Saga, delay: float) -> None:
        """Fire the saga's timer in ``delay`` seconds (replacing the one pending)."""
        ctx.set_timer(saga.saga_id, delay)

    def cancel_timer(self, ctx: Context, saga: Saga) -> None:
        """Cancel the saga's timer."""
        ctx.cancel_timer(saga.saga_id)

    def close(self) -> None:
        """Release the log file (what the OS does when the process dies)."""
        if self.log is not None:
            self.log.close()
            self.log = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.node_id!r}, sagas={list(self.sagas)})"


with_stubs(SagaOrchestrator)
