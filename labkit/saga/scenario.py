"""Run an order saga against the simulated services, with faults, and judge it.

:func:`run_order_saga` builds a :class:`~labkit.sim.Simulator` with the three
services and a durable :class:`~labkit.saga.orchestrator.Orchestrator`
(its SQLite log in a temporary folder, removed afterwards), injects the
faults, crashes and restarts nodes when a fault asks for it, runs until
nothing is left to do, and returns a :class:`SagaRun`.

:func:`order_effects` and :func:`invariant_violations` state what must hold
at the end of *any* run (the course's saga invariant):

* all three effects hold (stock reserved, customer charged, label created)
  or none does;
* nobody is charged twice, no stock is reserved twice or leaked;
* the saga log agrees: completed means all, aborted means none.

:data:`FAULT_KINDS`, :func:`fault_combinations` and :func:`crash_points`
enumerate the faults and crash points the tests sweep.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from labkit import validation as valid
from labkit.saga.definition import Order
from labkit.saga.log import LogRecord, SagaLog, SagaStatus
from labkit.saga.orchestrator import SAGA_RETRY, CrashPoint, Orchestrator, RetryPolicy, check_saga_policy
from labkit.saga.services import (
    SERVICE_CLASSES,
    EntryStatus,
    Op,
    Outcome,
    Reply,
    Request,
    Service,
    ServiceFaults,
)
from labkit.sim import Context, Kind, Latency, Node, Simulator, Trace

SERVICES = ("inventory", "payment", "shipping")
ORCHESTRATOR = "orchestrator"

#: The faults one service can be given in a sweep. "slow" answers after one
#: timeout (a retry finds it done); "very slow" never answers in time, so the
#: step is maybe done and gets compensated before it is even applied.
FAULT_KINDS: dict[str, ServiceFaults] = {
    "none": ServiceFaults(),
    "reject": ServiceFaults(reject=True),
    "crash after apply": ServiceFaults(crash_after_apply=True),
    "slow": ServiceFaults(slow=0.45),
    "very slow": ServiceFaults(slow=3.0),
    "flaky compensation": ServiceFaults(flaky_undo=3),
}

DEFAULT_STOCK = {"book": 5}
DEFAULT_BALANCE = {"alice": 100, "bob": 100}

_CALLERS = (ORCHESTRATOR, "shop", "coordinator")
_LIVE = (EntryStatus.APPLIED, EntryStatus.PREPARED, EntryStatus.COMMITTED)


@dataclass(frozen=True, slots=True)
class OrderEffects:
    """What one order did to the three services' databases, counted from their
    entries (keys starting with the order id)."""

    reserved: int  # units held for the order
    reservations: int  # live reservation entries
    charged: int  # amount charged and not refunded
    charges: int  # live charge entries
    labels: int  # live shipping labels
    stock_conserved: bool  # stock + every live reservation == initial stock
    money_conserved: bool  # balances + every live charge == initial balances

    def outcome(self, order: Order) -> str:
        """ "all", "none" or "partial"."""
        if self.reserved == order.qty and self.charged == order.amount and self.labels == 1:
            return "all"
        if self.reserved == 0 and self.charged == 0 and self.labels == 0:
            return "none"
        return "partial"


def build_services(
    sim: Simulator,
    faults: Mapping[str, ServiceFaults] | None = None,
    stock: Mapping[str, int] | None = None,
    balance: Mapping[str, int] | None = None,
) -> None:
    """Add inventory, payment and shipping to ``sim`` with their faults.

    A crash fault fires once: the restarted service is built without it.
    """
    valid.instance("faults", faults, Mapping, none=True)
    valid.instance("stock", stock, Mapping, none=True)
    valid.instance("balance", balance, Mapping, none=True)
    faults = dict(faults or {})
    unknown = set(faults) - set(SERVICES)
    if unknown:
        raise ValueError(f"faults names unknown services {sorted(unknown)}; services are {list(SERVICES)}")
    for name, f in faults.items():
        valid.instance(f"faults[{name!r}]", f, ServiceFaults)
    initial = {
        "inventory": dict(DEFAULT_STOCK if stock is None else stock),
        "payment": dict(DEFAULT_BALANCE if balance is None else balance),
        "shipping": {"labels": 0},
    }
    for name in SERVICES:
        cls = SERVICE_CLASSES[name]
        f = faults.get(name, ServiceFaults())
        boots = [0]

        def factory(node_id: str, cls=cls, f=f, boots=boots, init=initial[name]) -> Service:
            boots[0] += 1
            return cls(node_id, f if boots[0] == 1 else replace(f, crash_after_apply=False), init)

        sim.add_node(name, factory)


def order_effects(sim: Simulator, order: Order) -> OrderEffects:
    """Count what ``order`` did, from the services' durable entries."""
    inv, pay, ship = (_service(sim, n) for n in SERVICES)

    def live(service: Service) -> list:
        return [
            e for k, e in service.entries.items() if k.startswith(order.order_id + "/") and e.status in _LIVE
        ]

    def conserved(service: Service) -> bool:  # over every key: other orders and probes included
        out = Counter(service.state)
        for e in service.entries.values():
            if e.status in _LIVE:
                out[e.args[0]] += e.args[1]
        return all(out[entity] == n for entity, n in service.initial.items())

    res, chg = live(inv), live(pay)
    reserved, charged = sum(e.args[1] for e in res), sum(e.args[1] for e in chg)
    return OrderEffects(
        reserved, len(res), charged, len(chg), len(live(ship)), conserved(inv), conserved(pay)
    )


def _service(sim: Simulator, name: str) -> Service:
    if not sim.is_up(name):  # read a crashed service's state from its storage
        node = SERVICE_CLASSES[name](name)
        node.restore(sim.storage(name))
        return node
    return sim.node(name)  # type: ignore[return-value]


def invariant_violations(effects: OrderEffects, order: Order, status: SagaStatus | None = None) -> list[str]:
    """Every way the end state breaks the saga invariant (empty: all good)."""
    valid.instance("effects", effects, OrderEffects)
    valid.instance("order", order, Order)
    valid.instance("status", status, SagaStatus, none=True)
    problems = []
    outcome = effects.outcome(order)
    if outcome == "partial":
        problems.append(
            f"partial: {effects.reserved} reserved, {effects.charged} charged, {effects.labels} labels"
        )
    if effects.charges > 1 or effects.charged > order.amount:
        problems.append(f"charged {effects.charges} times ({effects.charged} for an order of {order.amount})")
    if effects.reservations > 1 or effects.reserved > order.qty:
        problems.append(f"stock reserved {effects.reservations} times ({effects.reserved} units)")
    if effects.labels > 1:
        problems.append(f"{effects.labels} shipping labels")
    if not effects.stock_conserved:
        problems.append("stock leaked: stock + reservations != initial stock")
    if not effects.money_conserved:
        problems.append("money leaked: balances + charges != initial balances")
    if status is SagaStatus.COMPLETED and outcome != "all":
        problems.append("the log says completed but not every effect holds")
    if status is SagaStatus.ABORTED and outcome != "none":
        problems.append("the log says aborted but some effect remains")
    if status is SagaStatus.RUNNING:
        problems.append("the saga never finished")
    return problems


class Prober(Node):
    """Another client: every ``every`` seconds until ``stop``, it asks
    ``service`` to DO ``args`` under a fresh key (another customer's order
    touching the same product or account) and records what it was told.

    ``results``: ``(sent_at, outcome)`` per answered probe, outcome "ok" or
    "rejected: <why>".
    """

    def __init__(self, node_id: str, service: str, args: tuple, every: float, stop: float) -> None:
        super().__init__(node_id)
        self.service, self.args = service, args
        self.every = valid.number("every", every, gt=0, unit="seconds")
        self.stop = valid.number("stop", stop, ge=0, unit="seconds")
        self.sent: dict[str, float] = {}
        self.count = 0
        self.results: list[tuple[float, str]] = []

    def on_start(self, ctx: Context) -> None:
        ctx.set_timer("probe", self.every)

    def on_timer(self, ctx: Context, name: str) -> None:
        self.count += 1
        key = f"probe/{self.count}"
        self.sent[key] = ctx.now
        ctx.send(self.service, Request("probe", -1, Op.DO, key, self.args))
        if ctx.now + self.every <= self.stop:
            ctx.set_timer("probe", self.every)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Reply) and msg.key in self.sent:
            outcome = "ok" if msg.outcome is Outcome.OK else f"{msg.outcome.value}: {msg.detail}"
            self.results.append((self.sent.pop(msg.key), outcome))


class FaultDriver:
    """Steps a simulator one event at a time and carries out crash faults.

    A node asks to die by setting ``node.crashing``; right after the event in
    which it did, the driver crashes it (its file handles closed, as the OS
    would) and restarts it ``down_for`` seconds later (the service's own
    ``faults.down_for`` if it has one).
    """

    __slots__ = ("sim", "down_for", "crashes")

    def __init__(self, sim: Simulator, down_for: float = 1.0) -> None:
        self.sim = sim
        self.down_for = valid.number("down_for", down_for, ge=0, unit="seconds")
        self.crashes: list[tuple[float, str]] = []

    def check(self) -> None:
        sim = self.sim
        for name in sim.nodes:
            if not sim.is_up(name):
                continue
            node = sim.node(name)
            if getattr(node, "crashing", False):
                if hasattr(node, "close"):
                    node.close()
                sim.crash(name)
                self.crashes.append((sim.now, name))
                delay = getattr(getattr(node, "faults", None), "down_for", self.down_for)
                sim.after(delay, lambda s, n=name: s.restart(n))

    def step(self) -> bool:
        """Process one event, then any crash it asked for. False when idle."""
        if not self.sim.step():
            return False
        self.check()
        return True

    def run(self, until: float) -> None:
        """Run until nothing is scheduled or virtual time passes ``until``."""
        valid.number("until", until, ge=0, unit="seconds")
        self.check()
        while self.sim.now <= until and self.step():
            pass


def start_order_run(
    order: Order | None,
    seed: int,
    faults: Mapping[str, ServiceFaults] | None,
    stock: Mapping[str, int] | None = None,
    balance: Mapping[str, int] | None = None,
    **network: Any,
) -> tuple[Order, Simulator]:
    """``order`` (``Order("order-1")`` if None) and a simulator (``network``: its latency, loss...)
    with the three services in it: how every order run here (saga, 2PC, first attempt) begins."""
    order = Order("order-1") if order is None else valid.instance("order", order, Order)
    sim = Simulator(seed, **network)
    build_services(sim, faults, stock, balance)
    return order, sim


def add_prober(sim: Simulator, order: Order, every: float | None, stop: float) -> Prober | None:
    """Unless ``every`` is None, another customer's order charging ``order``'s customer (see Prober)."""
    if every is None:
        return None
    return sim.add_node("probe", lambda nid: Prober(nid, "payment", (order.customer, 1), every, stop))


def judged(sim: Simulator, order: Order, status: SagaStatus | None = None) -> dict[str, Any]:
    """What an order run ended with: ``order``, ``effects``, ``outcome``, ``violations`` and ``trace``."""
    effects = order_effects(sim, order)
    violations = tuple(invariant_violations(effects, order, status))
    return dict(
        order=order, effects=effects, outcome=effects.outcome(order), violations=violations, trace=sim.trace
    )


@dataclass(frozen=True, slots=True)
class OrderRun:
    """How an order run ended (a saga's, 2PC's, the first attempt's): what it did to the services'
    data, its ``outcome`` ("all", "none" or "partial"), the invariant's ``violations``, the trace."""

    order: Order
    effects: OrderEffects
    outcome: str
    violations: tuple[str, ...]
    trace: Trace

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True, slots=True)
class SagaRun(OrderRun):
    """The result of :func:`run_order_saga`."""

    status: SagaStatus | None
    records: tuple[LogRecord, ...]
    writes: int  # log transactions written (all incarnations)
    crashes: tuple[tuple[float, str], ...]
    probes: tuple[tuple[float, str], ...] = ()


def run_order_saga(
    order: Order | None = None,
    *,
    faults: Mapping[str, ServiceFaults] | None = None,
    crashes: Sequence[CrashPoint] = (),
    seed: int = 0,
    policy: RetryPolicy | None = None,
    down_for: float = 1.0,
    stock: Mapping[str, int] | None = None,
    balance: Mapping[str, int] | None = None,
    until: float = 120.0,
    synchronous: str = "OFF",
    workdir: str | os.PathLike | None = None,
    latency: Latency | float = 0.01,
    loss: float = 0.0,
    duplication: float = 0.0,
    probe_every: float | None = None,
    probe_for: float = 5.0,
) -> SagaRun:
    """Run one order saga with ``faults`` and orchestrator ``crashes``.

    ``crashes[i]`` is where incarnation ``i`` of the orchestrator dies (so
    two crash points crash it again during its recovery). The log is a
    SQLite file in a fresh temporary folder (inside ``workdir`` if given),
    deleted at the end. ``latency``, ``loss`` and ``duplication`` set the
    network (varying latency reorders messages). ``probe_every``: as in 2PC's runner, another client
    charges the same customer this often for ``probe_for`` seconds.
    ``synchronous`` is the SQLite durability setting:
    "OFF" is enough here because simulated crashes kill the process, not the
    machine (a process crash never loses a committed SQLite transaction).
    """
    if isinstance(crashes, (str, bytes, Mapping)):
        raise valid.ArgumentTypeError(f"crashes must be a sequence of CrashPoint, got {valid.shown(crashes)}")
    crashes = tuple(crashes)
    for i, c in enumerate(crashes):
        valid.instance(f"crashes[{i}]", c, CrashPoint)
    if workdir is not None:
        valid.require(os.path.isdir(workdir), "workdir", "an existing folder or None", workdir)
    policy = SAGA_RETRY if policy is None else check_saga_policy(policy)
    valid.number("until", until, gt=0, unit="seconds")
    valid.number("down_for", down_for, ge=0, unit="seconds")
    valid.one_of("synchronous", synchronous, ("OFF", "NORMAL", "FULL"))
    valid.number("probe_every", probe_every, gt=0, unit="seconds", none=True)
    valid.number("probe_for", probe_for, ge=0, unit="seconds")
    order, sim = start_order_run(
        order, seed, faults, stock, balance, latency=latency, loss=loss, duplication=duplication
    )
    prober = add_prober(sim, order, probe_every, probe_for)
    with tempfile.TemporaryDirectory(prefix="labkit-saga-", dir=workdir) as tmp:
        path = os.path.join(tmp, "saga.db")
        incarnations: list[Orchestrator] = []

        def factory(node_id: str) -> Orchestrator:
            i = len(incarnations)
            crash_at = crashes[i] if i < len(crashes) else None
            incarnations.append(
                Orchestrator(node_id, path, policy=policy, crash_at=crash_at, synchronous=synchronous)
            )
            return incarnations[-1]

        sim.add_node(ORCHESTRATOR, factory)
        sim.run(0.0)  # boot everyone
        driver = FaultDriver(sim, down_for)
        sim.call(ORCHESTRATOR, lambda node, ctx: node.submit(ctx, order))
        driver.run(until)
        if sim.is_up(ORCHESTRATOR):
            sim.node(ORCHESTRATOR).close()  # type: ignore[attr-defined]
        with SagaLog(path) as log:
            known = dict(log.sagas())
            status = known.get(order.order_id)
            records = tuple(log.records(order.order_id)) if status is not None else ()
    return SagaRun(
        **judged(sim, order, status),
        status=status,
        records=records,
        writes=sum(o.writes for o in incarnations),
        crashes=tuple(driver.crashes),
        probes=tuple(prober.results) if prober is not None else (),
    )


def fault_combinations(kinds: Sequence[str] | None = None) -> Iterator[dict[str, ServiceFaults]]:
    """Every assignment of a fault kind to each service (``len(kinds) ** 3``)."""
    kinds = list(FAULT_KINDS) if kinds is None else list(kinds)
    for k in kinds:
        if k not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {k!r}; known: {list(FAULT_KINDS)}")
    for combo in itertools.product(kinds, repeat=len(SERVICES)):
        yield {s: FAULT_KINDS[k] for s, k in zip(SERVICES, combo, strict=True) if k != "none"}


def single_fault_cases() -> list[dict[str, ServiceFaults]]:
    """No fault, then each fault kind on each service alone (16 cases)."""
    return [{}] + [{s: f} for s in SERVICES for k, f in FAULT_KINDS.items() if k != "none"]


def fault_label(faults: Mapping[str, ServiceFaults]) -> str:
    """A short name for a fault assignment, e.g. "payment: very slow"."""
    names = {v: k for k, v in FAULT_KINDS.items()}
    return ", ".join(f"{s}: {names.get(f, repr(f))}" for s, f in faults.items()) or "no fault"


def sweep_crash_points(
    cases: Sequence[Mapping[str, ServiceFaults]],
    *,
    progress: Callable[[Iterable], Iterable] | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Run each fault case without a crash, then once per crash point.

    One dict per run: ``faults`` (a label), ``crash`` ("none" or the crash
    point), ``outcome``, ``violations`` (how many) and ``writes``.
    ``progress`` wraps the iterable of cases (e.g. ``tqdm.auto.tqdm``);
    ``kwargs`` go to :func:`run_order_saga`.
    """
    rows: list[dict[str, Any]] = []
    for faults in progress(cases) if progress is not None else cases:
        base = run_order_saga(faults=faults, **kwargs)
        for cp in [None, *crash_points(base.writes)]:
            run = base if cp is None else run_order_saga(faults=faults, crashes=[cp], **kwargs)
            crash = "none" if cp is None else str(cp)
            rows.append(dict(faults=fault_label(faults), crash=crash, outcome=run.outcome,
                             violations=len(run.violations), writes=run.writes))  # fmt: skip
    return rows


def crash_points(writes: int) -> list[CrashPoint]:
    """Every single crash point of a run that wrote ``writes`` log transactions."""
    valid.integer("writes", writes, ge=0)
    return [CrashPoint(k, b) for k in range(1, writes + 1) for b in (True, False)]


def timeline(trace: Trace) -> list[dict[str, Any]]:
    """The events of a saga run worth drawing, one dict per event.

    Keys: ``time``, ``lane`` (a service or "orchestrator"), ``what``
    (a short label) and ``category``: request, compensation (sent by the
    orchestrator), effect (a service changed its data), no effect (it
    changed nothing: held, refused, duplicate, transient failure...), log
    (a saga log record), crash, restart. A service that dies between its
    change and its reply is one crash, "crash before the create_label
    reply": its note of it is no event of its own (and no "no effect": the
    change was made, the row before says so).
    """
    rows: list[dict[str, Any]] = []
    dying: dict[str, str] = {}  # node -> the op it dies before answering

    def add(ev: Any, lane: str, what: str, category: str) -> None:
        rows.append({"time": ev.time, "lane": lane, "what": what, "category": category})

    for ev in trace:
        d = ev.detail or {}
        if ev.kind is Kind.SEND and ev.src in _CALLERS:
            op = getattr(ev.message, "op", None)
            if op is None:
                continue
            cls = SERVICE_CLASSES.get(ev.dst)
            name = {"do": cls.do_name, "undo": cls.undo_name}.get(op.value, op.value) if cls else op.value
            add(ev, ev.dst, f"{name} sent", "compensation" if op.value in ("undo", "abort") else "request")
        elif ev.kind is Kind.STATE and ev.reason in ("service", "participant") and d:
            if d.get("outcome") == "crash before reply":  # the crash that follows tells it
                dying[ev.node] = str(d["op"])
                continue
            if "op" in d:
                label = f"{d['op']} {d.get('outcome', '')}".strip()
                changed = d.get("outcome") in ("applied", "compensated")
            else:
                label = ", ".join(f"{k}={v}" for k, v in d.items())
                changed = d.get("vote") == "yes" or "decision" in d
            add(ev, ev.node, label, "effect" if changed else "no effect")
        elif ev.kind is Kind.STATE and ev.reason == "saga_log":
            step = d.get("step", -1)
            add(ev, ORCHESTRATOR, d["kind"] + (f" step {step}" if step >= 0 else ""), "log")
        elif ev.kind is Kind.CRASH and ev.node in dying:
            add(ev, ev.node, f"crash before the {dying.pop(ev.node)} reply", "crash")
        elif ev.kind in (Kind.CRASH, Kind.RESTART):
            add(ev, ev.node, ev.kind.value, ev.kind.value)
    return rows
