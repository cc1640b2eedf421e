"""The service model: a worker pool, a queue and calls to dependencies.

Each :class:`Service` is a sans-IO node on :mod:`labkit.sim`. A request that
arrives waits in the queue for a free worker; the worker does the service's
own work (a latency drawn from ``spec.latency``; with probability
``spec.failure_rate`` it ends in an error), then calls the dependencies the
request's kind needs, one after another, and replies. **The worker is held
while it waits for a dependency.** That is the whole mechanism of a cascade
(Nygard, *Release It!*, ch. 4 "Cascading Failures"; the Google SRE book,
ch. 22): when a dependency slows down, its callers' workers fill up with
waiting requests, their queues grow, and they fail too, although nothing
is wrong with them.

The :class:`Policies` of a service guard its outgoing calls (timeouts,
deadline propagation, retries with backoff and a budget, a circuit breaker
and a bulkhead per dependency) and its front door (load shedding). All of
them, and every knob of the spec, can be changed mid-run.

A :class:`LoadGenerator` sends open-loop traffic (Poisson arrivals at
``rate`` requests/s, each with a deadline): it does not slow down when the
service does, as real users do not.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.resilience.breaker import Admission, BreakerConfig, CircuitBreaker
from labkit.resilience.bulkhead import Bulkhead
from labkit.resilience.messages import RETRYABLE, Outcome, Request, Response
from labkit.resilience.metrics import (
    ARRIVED,
    ATTEMPTS,
    CALLS,
    ERRORS,
    EXPIRED,
    FAST_FAILS,
    GOOD,
    OK,
    REJECTED,
    RETRIES,
    TIMEOUTS,
    ClientStats,
    ServiceStats,
)
from labkit.resilience.retry import RetryBudget, RetryPolicy
from labkit.resilience.shedding import LoadShedder, ServiceTimeEstimate
from labkit.resilience.timeouts import Timeouts
from labkit.sim import Context, Latency, Node
from labkit.sim.latency import as_latency

MAX_WORKERS = 10_000  # a worker pool is a list of slots: more than this is a typo
MAX_BURST = 1_000_000  # requests one burst() may send at one instant
MAX_RATE = 100_000.0  # requests/s: far beyond what the model's services can serve, and still fast to refuse


@dataclass
class ServiceSpec:
    """What a service is: ``workers`` (concurrency limit), ``queue_limit``
    (requests that may wait; more are rejected), ``latency`` of its own work,
    ``failure_rate`` of that work, and ``calls``: for each request kind, the
    dependencies called in order (a kind not listed calls nothing)."""

    workers: int = 8
    queue_limit: int = 1000
    latency: Latency | float = 0.01
    failure_rate: float = 0.0
    calls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workers = valid.integer("workers", self.workers, ge=1, le=MAX_WORKERS)
        self.queue_limit = valid.integer("queue_limit", self.queue_limit, ge=0)
        self.latency = as_latency(self.latency, "latency")
        self.failure_rate = valid.probability("failure_rate", self.failure_rate)
        for kind, route in valid.instance("calls", self.calls, Mapping).items():
            valid.instance(f"calls[{kind!r}]", route, (tuple, list))  # not a str: "BC" is no route ("B", "C")
            for dep in route:
                valid.string(f"calls[{kind!r}]: service names", dep)
        self.calls = {str(k): tuple(v) for k, v in self.calls.items()}


@dataclass(frozen=True, slots=True)
class Policies:
    """The resilience policies of one service; every field off by default.

    ``timeouts`` and ``retry``, ``breaker`` and ``bulkhead`` (a slot limit
    per dependency) apply to calls the service makes; ``shedding`` to
    requests it receives.
    """

    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy | None = None
    breaker: BreakerConfig | None = None
    bulkhead: int | None = None
    shedding: LoadShedder | None = None

    def __post_init__(self) -> None:
        valid.instance("timeouts", self.timeouts, Timeouts)  # Timeouts() for none
        valid.instance("retry", self.retry, RetryPolicy, none=True)
        valid.instance("breaker", self.breaker, BreakerConfig, none=True)
        valid.instance("shedding", self.shedding, LoadShedder, none=True)
        valid.integer("bulkhead", self.bulkhead, ge=1, none=True)


@dataclass(slots=True, eq=False)
class _Job:
    """One request inside a service, from arrival to reply."""

    seq: int
    src: str
    rid: int
    kind: str
    deadline: float | None
    arrived: float
    started: float
    route: tuple[str, ...]
    step: int = 0  # index into route of the dependency being called
    attempt: int = 0  # attempts made on route[step]
    delay: float = 0.0  # last backoff delay (decorrelated jitter grows from it)
    call: int = 0  # id of the outstanding call, 0 if none
    # The breaker that admitted the outstanding call, its admission ticket and the bulkhead
    # it holds a slot of (policies may be swapped while it is in flight).
    breaker: CircuitBreaker | None = None
    admission: Admission | None = None
    slot: Bulkhead | None = None


_NO_ROUTE: tuple[str, ...] = ()


class Service(Node):
    """A service node; see the module docstring.

    Timers: ``w<seq>`` (a worker finished its own work on job seq),
    ``r<seq>`` (a retry's backoff elapsed), and one ``timeouts`` alarm for
    the earliest call that may time out: calls wait in a heap by expiry (an
    answered one is skipped when it reaches the top), so a call still times
    out at exactly its expiry without a timer of its own.
    """

    def __init__(self, node_id: str, spec: ServiceSpec, policies: Policies, stats: ServiceStats) -> None:
        super().__init__(node_id)
        self.spec = valid.instance("spec", spec, ServiceSpec)
        valid.instance("policies", policies, Policies)
        self.stats = valid.instance("stats", stats, ServiceStats)
        self.now = 0.0
        self.queue: deque[_Job] = deque()
        self.busy = 0
        self.jobs: dict[int, _Job] = {}  # by seq: jobs holding a worker
        self.calls: dict[int, _Job] = {}  # by call id: calls awaiting an answer
        # (expiry, call id) of calls made with a timeout, answered ones included
        # until they reach the top; the alarm is set for `alarm` (inf: not set).
        self.expiries: list[tuple[float, int]] = []
        self.alarm = math.inf
        self._seq = 0
        self._estimate = ServiceTimeEstimate(spec.latency.mean)
        self.policies = Policies()
        self.breakers: dict[str, CircuitBreaker] = {}
        self.bulkheads: dict[str, Bulkhead] = {}
        self.budget: RetryBudget | None = None
        self._set_policies(policies)
        self._timer_handlers = {"w": self._work_done, "r": self._retry_due}

    # -- configuration ------------------------------------------------------
    def _clock(self) -> float:
        return self.now

    def _dependencies(self) -> list[str]:
        return list(dict.fromkeys(d for route in self.spec.calls.values() for d in route))

    def _set_policies(self, policies: Policies) -> None:
        old = self.policies
        self.policies = policies
        deps = self._dependencies()
        if policies.breaker != old.breaker or not self.breakers and policies.breaker:
            self.stats.retire_breakers(self.now)
            self.breakers = {}
            if policies.breaker is not None:
                for d in deps:
                    b = CircuitBreaker(policies.breaker, clock=self._clock)
                    self.breakers[d] = b
                    self.stats.breakers.append((d, self.now, b))
        if policies.bulkhead != old.bulkhead or not self.bulkheads and policies.bulkhead:
            # Calls in flight give their slot back to the bulkhead they took it from.
            self.bulkheads = {}
            if policies.bulkhead is not None:
                for d in deps:
                    self.bulkheads[d] = Bulkhead(policies.bulkhead)
        if policies.retry != old.retry or self.budget is None:
            self.budget = policies.retry.make_budget(self._clock) if policies.retry else None

    def configure(self, ctx: Context, policies: Policies) -> None:
        """Switch to new policies now (breakers restart closed if their settings change)."""
        self.now = ctx.now
        self._set_policies(valid.instance("policies", policies, Policies))

    def respec(self, ctx: Context) -> None:
        """The spec was changed: start queued work if workers were added."""
        self.now = ctx.now
        self._drain(ctx)
        self._gauges()

    def _gauges(self) -> None:
        self.stats.gauges(self.now, len(self.queue), self.busy, self.spec.workers)

    # -- handlers -----------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        self.now = ctx.now
        self._gauges()

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        self.now = ctx.now
        if type(msg) is Request:
            self._arrive(ctx, src, msg)
        elif type(msg) is Response:
            job = self.calls.pop(msg.rid, None)
            if job is None:
                return  # the answer to a call we gave up on
            # Its entry in `expiries`, if any, is skipped when it comes up.
            self._call_ended(ctx, job, msg.outcome)
        else:
            raise TypeError(f"{self.node_id} got an unexpected message {msg!r}")

    def on_timer(self, ctx: Context, name: str) -> None:
        self.now = ctx.now
        if name == "timeouts":
            self._timeouts_due(ctx)
        else:
            self._timer_handlers[name[0]](ctx, int(name[1:]))

    # -- the front door -------------------------------------------------------
    def _arrive(self, ctx: Context, src: str, req: Request) -> None:
        now = self.now
        stats = self.stats
        row = stats.row(now)
        row[ARRIVED] += 1
        spec = self.spec
        # The service knows the deadline only if its caller passed it on; it
        # acts on it only with deadline propagation on.
        shed = self.policies.shedding
        if shed is not None:
            deadline = req.deadline if self.policies.timeouts.propagate_deadline else None
            if not shed.admit(now, len(self.queue), spec.workers, deadline, self._estimate.value):
                row[REJECTED] += 1
                self._reply(ctx, src, req.rid, Outcome.REJECTED, now, req.deadline)
                return
        self._seq += 1
        job = _Job(
            self._seq, src, req.rid, req.kind, req.deadline, now, now, spec.calls.get(req.kind, _NO_ROUTE)
        )
        if self.busy < spec.workers:
            self._start(ctx, job)
        elif len(self.queue) < spec.queue_limit:
            self.queue.append(job)
        else:
            row[REJECTED] += 1
            self._reply(ctx, src, req.rid, Outcome.REJECTED, now, req.deadline)
            return
        self._gauges()

    def _start(self, ctx: Context, job: _Job) -> None:
        self.busy += 1
        job.started = self.now
        self.jobs[job.seq] = job
        ctx.set_timer(f"w{job.seq}", self.spec.latency.sample(ctx.random))

    def _drain(self, ctx: Context) -> None:
        """Give free workers to queued jobs, dropping those already too late."""
        queue = self.queue
        honour = self.policies.timeouts.propagate_deadline
        while queue and self.busy < self.spec.workers:
            job = queue.popleft()
            if honour and job.deadline is not None and self.now >= job.deadline:
                self.stats.row(self.now)[EXPIRED] += 1
                self._reply(ctx, job.src, job.rid, Outcome.EXPIRED, job.arrived, job.deadline)
                continue
            self._start(ctx, job)

    def _reply(
        self, ctx: Context, dst: str, rid: int, outcome: Outcome, arrived: float, deadline: float | None
    ) -> None:
        ctx.send(dst, Response(rid, outcome))
        row = self.stats.row(self.now)
        if outcome is Outcome.OK:
            row[OK] += 1
            if deadline is None or self.now <= deadline:
                row[GOOD] += 1
        else:
            row[ERRORS] += 1
        self.stats.latency(self.now, self.now - arrived)

    def _finish(self, ctx: Context, job: _Job, outcome: Outcome) -> None:
        del self.jobs[job.seq]
        self.busy -= 1
        self._estimate.observe(self.now - job.started)
        self._reply(ctx, job.src, job.rid, outcome, job.arrived, job.deadline)
        self._drain(ctx)
        self._gauges()

    # -- the work and the calls ---------------------------------------------
    def _work_done(self, ctx: Context, seq: int) -> None:
        job = self.jobs[seq]
        if self.spec.failure_rate and ctx.random.random() < self.spec.failure_rate:
            self._finish(ctx, job, Outcome.FAILED)
        else:
            self._next_call(ctx, job)

    def _next_call(self, ctx: Context, job: _Job) -> None:
        if job.step == len(job.route):
            self._finish(ctx, job, Outcome.OK)
            return
        self.stats.row(self.now)[CALLS] += 1
        if self.budget is not None:
            self.budget.deposit()
        self._attempt(ctx, job)

    def _attempt(self, ctx: Context, job: _Job) -> None:
        dep = job.route[job.step]
        pol = self.policies
        now = self.now
        row = self.stats.row(now)
        wait = pol.timeouts.wait_for(now, job.deadline)
        if wait is not None and wait <= 0:
            row[EXPIRED] += 1
            self._finish(ctx, job, Outcome.EXPIRED)
            return
        bulkhead = self.bulkheads.get(dep)
        if bulkhead is not None and not bulkhead.try_acquire():
            row[FAST_FAILS] += 1
            self._finish(ctx, job, Outcome.BULKHEAD_FULL)
            return
        breaker = self.breakers.get(dep)
        if breaker is not None:
            admission = breaker.allow()
            if admission is None:
                if bulkhead is not None:
                    bulkhead.release()
                row[FAST_FAILS] += 1
                self._finish(ctx, job, Outcome.BREAKER_OPEN)
                return
            job.admission = admission
        job.breaker = breaker
        job.slot = bulkhead
        row[ATTEMPTS] += 1
        job.attempt += 1
        self._seq += 1
        call = job.call = self._seq
        self.calls[call] = job
        ctx.send(dep, Request(call, job.kind, pol.timeouts.deadline_for_downstream(job.deadline)))
        if wait is not None:
            expiry = now + wait
            heapq.heappush(self.expiries, (expiry, call))
            if expiry < self.alarm:
                self.alarm = expiry
                ctx.set_timer("timeouts", wait)

    def _timeouts_due(self, ctx: Context) -> None:
        """The alarm rang: time out every outstanding call due by now, then re-arm."""
        # Due means "expiry <= the time the alarm was set for", not "<= now":
        # now is that time recomputed as (then + delay), which may differ in
        # the last bit, and a call must not miss its own alarm by a rounding.
        due_by = self.alarm
        self.alarm = math.inf
        expiries, calls = self.expiries, self.calls
        while expiries:
            expiry, call = expiries[0]
            if call not in calls:
                heapq.heappop(expiries)  # answered (or given up) long ago
                continue
            if expiry > due_by:
                break
            heapq.heappop(expiries)
            job = calls.pop(call)
            self.stats.row(self.now)[TIMEOUTS] += 1
            self._call_ended(ctx, job, Outcome.TIMEOUT)  # may make a new call, and set the alarm
        # The loop stopped at an outstanding call (or emptied the heap).
        if expiries and expiries[0][0] < self.alarm:
            self.alarm = expiries[0][0]
            ctx.set_timer("timeouts", max(0.0, self.alarm - self.now))

    def _call_ended(self, ctx: Context, job: _Job, outcome: Outcome) -> None:
        job.call = 0
        if job.slot is not None:
            job.slot.release()
            job.slot = None
        if job.breaker is not None:
            job.breaker.record(job.admission, outcome is Outcome.OK)
            job.breaker = None
            job.admission = None
        if outcome is Outcome.OK:
            job.step += 1
            job.attempt = 0
            job.delay = 0.0
            self._next_call(ctx, job)
            return
        retry = self.policies.retry
        if (
            retry is not None
            and outcome in RETRYABLE
            and job.attempt < retry.max_attempts
            and (self.budget is None or self.budget.try_withdraw())
        ):
            self.stats.row(self.now)[RETRIES] += 1
            if retry.backoff is None:
                self._attempt(ctx, job)
            else:
                job.delay = retry.backoff.delay(job.attempt - 1, ctx.random, job.delay)
                ctx.set_timer(f"r{job.seq}", job.delay)
            return
        self._finish(ctx, job, outcome)

    def _retry_due(self, ctx: Context, seq: int) -> None:
        self._attempt(ctx, self.jobs[seq])


def check_service_invariants(service: Service) -> None:
    """Raise AssertionError if the service's bookkeeping is inconsistent."""
    s = service
    # Invariant: busy == jobs holding a worker <= workers (unless workers were just reduced).
    assert s.busy == len(s.jobs), "busy count out of step with the jobs holding workers"
    assert s.busy >= 0 and len(s.queue) >= 0
    # Invariant: every outstanding call belongs to a job that holds a worker.
    for call, job in s.calls.items():
        assert job.call == call and s.jobs.get(job.seq) is job, "a call without its job"
    # Invariant: the alarm rings no later than the earliest outstanding call may time out.
    pending = [expiry for expiry, call in s.expiries if call in s.calls]
    assert not pending or s.alarm <= min(pending), "a call would time out late"
    holding = Counter(id(job.slot) for job in s.calls.values() if job.slot is not None)
    # Invariant: a bulkhead's slots in use are exactly the calls holding one.
    for b in s.bulkheads.values():
        assert 0 <= b.in_use <= b.limit, "bulkhead count out of range"
        assert b.in_use == holding[id(b)], "bulkhead slots out of step with calls in flight"


class LoadGenerator(Node):
    """Open-loop clients: Poisson arrivals at ``rate`` req/s to ``target``.

    Each request gets a kind drawn from ``mix`` (kind -> weight) and a
    deadline ``deadline`` seconds after it is sent.
    """

    def __init__(
        self,
        node_id: str,
        target: str,
        rate: float,
        mix: Mapping[str, float],
        deadline: float,
        stats: ClientStats,
    ) -> None:
        super().__init__(node_id)
        self.target = valid.string("target", target)
        self.stats = valid.instance("stats", stats, ClientStats)
        self._rid = 0
        self.set_load(rate, mix, deadline)

    def set_load(self, rate: float, mix: Mapping[str, float], deadline: float) -> None:
        """Validate and apply new load settings (takes effect at the next arrival)."""
        rate = valid.number("rate", rate, ge=0, le=MAX_RATE, unit="requests/s")
        deadline = valid.number("deadline", deadline, gt=0, unit="seconds")
        valid.instance("mix", mix, Mapping)
        valid.non_empty("mix", mix, "mapping of request kind -> weight")
        for kind, w in mix.items():
            valid.number(f"mix[{kind!r}]", w, ge=0, note="a weight")
        total = float(sum(mix.values()))
        valid.require(total > 0, "mix", "weights that are not all zero", dict(mix))
        self.rate = rate
        self.deadline = deadline
        self.mix = dict(mix)
        self._kinds = list(self.mix)
        self._edges = list(itertools.accumulate(w / total for w in self.mix.values()))

    def on_start(self, ctx: Context) -> None:
        self.reschedule(ctx)

    def reschedule(self, ctx: Context) -> None:
        """Draw the next arrival from the current rate (or stop at rate 0)."""
        if self.rate > 0:
            ctx.set_timer("arrive", ctx.random.expovariate(self.rate))
        else:
            ctx.cancel_timer("arrive")

    def on_timer(self, ctx: Context, name: str) -> None:
        self.send_one(ctx)
        self.reschedule(ctx)

    def send_one(self, ctx: Context, kind: str | None = None) -> None:
        """Send one request now (of a random kind unless ``kind`` is given)."""
        if kind is None:  # the first kind whose cumulative weight exceeds a uniform draw
            kind = self._kinds[min(bisect.bisect(self._edges, ctx.random.random()), len(self._kinds) - 1)]
        self._rid += 1
        now = ctx.now
        deadline = now + self.deadline
        self.stats.on_send(self._rid, kind, now, deadline)
        ctx.send(self.target, Request(self._rid, kind, deadline))

    def burst(self, ctx: Context, n: int, kind: str | None = None) -> None:
        """Send ``n`` requests at this instant (a flash crowd)."""
        valid.integer("n", n, ge=0, le=MAX_BURST)
        for _ in range(n):
            self.send_one(ctx, kind)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if type(msg) is Response:
            self.stats.on_response(msg.rid, msg.outcome is Outcome.OK, ctx.now)
