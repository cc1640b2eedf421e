"""The durable saga orchestrator, with crash recovery.

Split the way etcd's raft library is split:

* :class:`SagaState` and the ``decide_*`` functions are the pure core. They
  take the saga's state and an event (start, reply, timer, recovery) and
  return a :class:`Decision`: the log records to write, then the requests to
  send, then the timer to set. No I/O.
* :class:`Orchestrator` is the thin shell, a :class:`~labkit.sim.Node`. It
  writes each decision's records to the :class:`~labkit.saga.log.SagaLog`
  as **one transaction before** it sends anything (write-ahead: a crash
  can never leave a service acting on a request the log does not know of).

Rules it follows (Garcia-Molina and Salem, SIGMOD 1987: section 4 for the
log and backward recovery, 5 for forward recovery, 6 for a compensation that
fails; DDIA ch. 9 and ch. 12 "end-to-end argument" for the keys):

1. Every request carries the step's idempotency key (``saga_id/step``), so a
   resend after a timeout or after recovery is applied at most once.
2. A step that does not answer after ``max_attempts`` timeouts is *maybe
   done*: the saga compensates it too. Compensations are safe on a step that
   never ran (the service leaves a tombstone).
3. A compensation is retried, with backoff, until it succeeds.
4. After a crash the new orchestrator replays each unfinished saga's log
   records (:meth:`SagaState.replay`) and resends the request it was waiting
   for: forward if it was going forward, compensating otherwise.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.resilience.retry import Backoff, Jitter, RetryPolicy
from labkit.saga.definition import ORDER_SAGA, Order, SagaDefinition, step_key
from labkit.saga.log import LogKind, LogRecord, SagaLog
from labkit.saga.services import Op, Outcome, Reply, Request
from labkit.sim import Context, Node


class Phase(Enum):
    FORWARD = "forward"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    ABORTED = "aborted"


SAGA_RETRY = RetryPolicy(max_attempts=3, backoff=Backoff(base=0.1, cap=1.6, jitter=Jitter.NONE), timeout=0.3)
"""The orchestrator's timeouts and retries (seconds of virtual time).

A step is sent at most ``max_attempts`` times, each waiting ``timeout`` for an
answer; then it is maybe done. A compensation is resent forever, waiting
``policy.delay(n)`` = ``min(cap, base * 2**n)`` after its ``n+1``-th transient failure.
"""


def check_saga_policy(policy: RetryPolicy) -> RetryPolicy:
    """The orchestrator needs a ``timeout``, a backoff that waits (``base > 0``: a compensation
    retried at once against a failing service would loop forever at one instant), no jitter (its
    decisions are deterministic) and no budget (a compensation must not give up)."""
    valid.instance("policy", policy, RetryPolicy)
    valid.require(policy.timeout is not None, "policy.timeout", "a number of seconds > 0", policy.timeout)
    b = policy.backoff
    valid.require(
        b is not None and b.base > 0 and b.jitter is Jitter.NONE,
        "policy.backoff",
        "a Backoff with base > 0 and jitter=Jitter.NONE",
        b,
    )
    valid.require(policy.budget_ratio is None, "policy.budget_ratio", "None", policy.budget_ratio)
    return policy


@dataclass(frozen=True, slots=True)
class CrashPoint:
    """Where an orchestrator incarnation dies: right after its ``after_write``-th
    log transaction commits, before sending that decision's requests
    (``before_send=True``) or just after (``False``)."""

    after_write: int
    before_send: bool = True

    def __post_init__(self) -> None:
        valid.integer("after_write", self.after_write, ge=1)
        valid.boolean("before_send", self.before_send)

    def __str__(self) -> str:
        return f"after write {self.after_write}, {'before' if self.before_send else 'after'} send"


@dataclass(slots=True)
class SagaState:
    """Where one saga stands; rebuilt from its log by :meth:`replay`.

    # Invariant: ``to_undo`` is ``[0, 1, ..., k-1]`` minus the steps already
    # compensated, where k is the number of steps that are done or maybe done;
    # in COMPENSATING, ``step`` is ``to_undo[-1]`` (undo in reverse order).
    """

    saga_id: str
    services: tuple[str, ...]
    args: tuple[tuple, ...]
    phase: Phase = Phase.FORWARD
    step: int = 0
    attempt: int = 0
    to_undo: list[int] = field(default_factory=list)

    @classmethod
    def new(cls, saga_id: str, definition: SagaDefinition, order: Order) -> SagaState:
        steps = definition.steps
        return cls(saga_id, tuple(s.service for s in steps), tuple(s.args(order) for s in steps))

    @classmethod
    def replay(
        cls, saga_id: str, definition: SagaDefinition, order: Order, records: list[LogRecord]
    ) -> SagaState:
        state = cls.new(saga_id, definition, order)
        for r in records:
            state.apply(r)
        return state

    def apply(self, r: LogRecord) -> None:
        """Fold one log record into the state (the only way state changes)."""
        kind = r.kind
        if kind is LogKind.STEP_SENT or kind is LogKind.COMP_SENT:
            self.step, self.attempt = r.step, r.attempt
        elif kind is LogKind.STEP_DONE:
            self.to_undo.append(r.step)
            self.step, self.attempt = r.step + 1, 0
        elif kind is LogKind.STEP_FAILED:
            self.phase = Phase.COMPENSATING
        elif kind is LogKind.STEP_MAYBE:
            self.to_undo.append(r.step)
            self.phase = Phase.COMPENSATING
        elif kind is LogKind.COMP_DONE:
            self.to_undo.remove(r.step)
        elif kind is LogKind.COMPLETED:
            self.phase = Phase.COMPLETED
        elif kind is LogKind.ABORTED:
            self.phase = Phase.ABORTED

    @property
    def finished(self) -> bool:
        return self.phase is Phase.COMPLETED or self.phase is Phase.ABORTED

    def request(self, step: int, op: Op) -> tuple[str, Request]:
        key = step_key(self.saga_id, step)
        return self.services[step], Request(self.saga_id, step, op, key, self.args[step])


def check_state(state: SagaState) -> None:
    """Raise AssertionError if the :class:`SagaState` invariant is broken."""
    assert all(a < b for a, b in zip(state.to_undo, state.to_undo[1:], strict=False)), state.to_undo
    if state.phase is Phase.FORWARD:
        assert state.to_undo == list(range(state.step)), (state.step, state.to_undo)
    if state.phase is Phase.ABORTED:
        assert state.to_undo == [], state.to_undo


@dataclass(slots=True)
class Decision:
    """What the shell must do, **in this order**: write ``records`` to the
    saga log as one transaction; only then send ``sends``; then set the
    saga's timer to ``timer`` seconds (None: leave it, 0 is not used)."""

    records: list[LogRecord] = field(default_factory=list)
    sends: list[tuple[str, Request]] = field(default_factory=list)
    timer: float | None = None
    cancel_timer: bool = False

    def emit(self, state: SagaState, record: LogRecord) -> None:
        state.apply(record)
        self.records.append(record)


def _send_step(d: Decision, state: SagaState, step: int, attempt: int, now: float, timeout: float) -> None:
    d.emit(state, LogRecord(LogKind.STEP_SENT, step, attempt, now))
    d.sends.append(state.request(step, Op.DO))
    d.timer = timeout


def _send_compensation(
    d: Decision, state: SagaState, attempt: int, now: float, timeout: float, why: str = ""
) -> None:
    """Undo the latest step not yet compensated (compensations run in reverse order)."""
    step = state.to_undo[-1]
    d.emit(state, LogRecord(LogKind.COMP_SENT, step, attempt, now, why))
    d.sends.append(state.request(step, Op.UNDO))
    d.timer = timeout


def _next_compensation(d: Decision, state: SagaState, now: float, timeout: float) -> None:
    if state.to_undo:
        _send_compensation(d, state, 1, now, timeout)
    else:
        d.emit(state, LogRecord(LogKind.ABORTED, -1, 0, now))
        d.cancel_timer = True


def decide_start(state: SagaState, now: float, policy: RetryPolicy) -> Decision:
    d = Decision()
    d.emit(state, LogRecord(LogKind.STARTED, -1, 0, now))
    _send_step(d, state, 0, 1, now, policy.timeout)
    return d


def decide_reply(state: SagaState, reply: Reply, now: float, policy: RetryPolicy) -> Decision:
    """React to a service's reply. Replies that do not answer what the saga is
    waiting for now (duplicates, late answers to earlier attempts) are ignored."""
    d = Decision()
    if reply.step != state.step:
        return d
    if state.phase is Phase.FORWARD and reply.op is Op.DO:
        if reply.outcome is Outcome.OK:
            d.emit(state, LogRecord(LogKind.STEP_DONE, reply.step, state.attempt, now))
            if state.step == len(state.services):
                d.emit(state, LogRecord(LogKind.COMPLETED, -1, 0, now))
                d.cancel_timer = True
            else:
                _send_step(d, state, state.step, 1, now, policy.timeout)
        elif reply.outcome is Outcome.REJECTED:
            d.emit(state, LogRecord(LogKind.STEP_FAILED, reply.step, state.attempt, now, reply.detail))
            _next_compensation(d, state, now, policy.timeout)
        # Outcome.RETRY on a step: nothing happened; the timeout resends it.
    elif state.phase is Phase.COMPENSATING and reply.op is Op.UNDO:
        if reply.outcome is Outcome.OK:
            d.emit(state, LogRecord(LogKind.COMP_DONE, reply.step, state.attempt, now, reply.detail))
            _next_compensation(d, state, now, policy.timeout)
        else:
            # A compensation must not give up: wait, then resend (decide_timer).
            d.timer = policy.delay(state.attempt - 1)
    return d


def decide_timer(state: SagaState, now: float, policy: RetryPolicy) -> Decision:
    """The saga's timer fired: a step timed out, or a compensation is due again."""
    d = Decision()
    if state.phase is Phase.FORWARD:
        if state.attempt < policy.max_attempts:
            _send_step(d, state, state.step, state.attempt + 1, now, policy.timeout)
        else:
            # No answer is not a "no": the step may have run. Compensate it too.
            d.emit(state, LogRecord(LogKind.STEP_MAYBE, state.step, state.attempt, now, "timed out"))
            _next_compensation(d, state, now, policy.timeout)
    elif state.phase is Phase.COMPENSATING:
        _send_compensation(d, state, state.attempt + 1, now, policy.timeout)
    return d


def decide_recovery(state: SagaState, now: float, policy: RetryPolicy) -> Decision:
    """After a restart: resend whatever the saga was waiting for (same key)."""
    d = Decision()
    if state.phase is Phase.FORWARD:
        if state.step == len(state.services):
            d.emit(state, LogRecord(LogKind.COMPLETED, -1, 0, now))
        else:
            _send_step(d, state, state.step, state.attempt + 1, now, policy.timeout)
    elif state.phase is Phase.COMPENSATING:
        if state.to_undo:
            attempt = state.attempt + 1 if state.to_undo[-1] == state.step else 1
            _send_compensation(d, state, attempt, now, policy.timeout, "recovery")
        else:
            d.emit(state, LogRecord(LogKind.ABORTED, -1, 0, now))
    return d


class Orchestrator(Node):
    """Runs sagas of one :class:`SagaDefinition`, logging to SQLite at ``log_path``.

    ``crash_at`` makes this incarnation die at a :class:`CrashPoint` (fault
    injection for tests and the notebook): the node sets :attr:`crashing` and
    ignores everything until its driver crashes it.
    """

    def __init__(
        self,
        node_id: str,
        log_path: str | os.PathLike,
        *,
        definition: SagaDefinition = ORDER_SAGA,
        policy: RetryPolicy = SAGA_RETRY,
        crash_at: CrashPoint | None = None,
        synchronous: str = "FULL",
    ) -> None:
        super().__init__(node_id)
        self.log_path = os.fspath(log_path)
        self.definition = valid.instance("definition", definition, SagaDefinition)
        self.policy = check_saga_policy(policy)
        self.crash_at = valid.instance("crash_at", crash_at, CrashPoint, none=True)
        self.synchronous = valid.one_of("synchronous", synchronous, ("OFF", "NORMAL", "FULL"))
        self.log: SagaLog | None = None
        self.writes = 0  # log transactions this incarnation has committed
        self.sagas: dict[str, SagaState] = {}
        self.crashing = False

    # -- the shell: log first, then send ------------------------------------
    def _execute(self, ctx: Context, state: SagaState, d: Decision, *, begin: dict | None = None) -> None:
        if not d.records and not d.sends and d.timer is None:
            return
        if self.log is None:
            raise RuntimeError("the orchestrator has not started yet: run the simulator until it boots")
        check_state(state)  # cheap, and it turns a logic slip into a loud failure in every test run
        if d.records:
            if begin is not None:
                self.log.begin(state.saga_id, self.definition.name, begin, d.records)
            else:
                self.log.append(state.saga_id, d.records)
            self.writes += 1
            for r in d.records:
                ctx.note("saga_log", saga=state.saga_id, kind=r.kind.value, step=r.step, attempt=r.attempt)
        crash = self.crash_at is not None and self.writes == self.crash_at.after_write
        if crash and self.crash_at.before_send:  # type: ignore[union-attr]
            self._die(ctx)
            return
        for dst, request in d.sends:
            ctx.send(dst, request)
        if d.cancel_timer:
            ctx.cancel_timer(state.saga_id)
        elif d.timer is not None:
            ctx.set_timer(state.saga_id, d.timer)
        if crash:
            self._die(ctx)

    def _die(self, ctx: Context) -> None:
        self.crashing = True
        ctx.note("orchestrator", event="crash", point=str(self.crash_at))

    # -- node handlers ----------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        self.log = SagaLog(self.log_path, synchronous=self.synchronous)
        self.sagas.clear()
        for saga_id in self.log.unfinished():
            order = Order(**self.log.payload(saga_id))
            state = SagaState.replay(saga_id, self.definition, order, self.log.records(saga_id))
            self.sagas[saga_id] = state
            ctx.note("orchestrator", event="recover", saga=saga_id, phase=state.phase.value, step=state.step)
            if self.crashing:
                return
            self._execute(ctx, state, decide_recovery(state, ctx.now, self.policy))

    def submit(self, ctx: Context, order: Order) -> str:
        """Start the saga for ``order``; its id is the order id."""
        valid.instance("order", order, Order)
        if self.crashing:
            raise RuntimeError("the orchestrator is down")
        saga_id = order.order_id
        if saga_id in self.sagas:
            raise ValueError(f"order {saga_id!r} already has a saga")
        state = SagaState.new(saga_id, self.definition, order)
        self.sagas[saga_id] = state
        self._execute(ctx, state, decide_start(state, ctx.now, self.policy), begin=asdict(order))
        return saga_id

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        state = self._running(msg.saga_id) if isinstance(msg, Reply) else None
        if state is not None:
            self._execute(ctx, state, decide_reply(state, msg, ctx.now, self.policy))

    def on_timer(self, ctx: Context, name: str) -> None:
        state = self._running(name)  # a saga's timer is named after it
        if state is not None:
            self._execute(ctx, state, decide_timer(state, ctx.now, self.policy))

    def _running(self, saga_id: str) -> SagaState | None:
        """The saga's state, or None if it is unknown, finished, or this incarnation is dying."""
        state = self.sagas.get(saga_id)
        return None if self.crashing or state is None or state.finished else state

    def close(self) -> None:
        """Release the log file (what the OS does when the process dies)."""
        if self.log is not None:
            self.log.close()
            self.log = None
