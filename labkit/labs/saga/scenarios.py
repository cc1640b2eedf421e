"""The saga lab's scenarios: what each part tests, and how.

Each scenario is a short script over a :class:`World`: the learner's
orchestrator (its log in SQLite), labkit's inventory, payment and shipping
services (:mod:`labkit.saga.services`, idempotent by key), and a shop that
submits a few orders, plus a fault schedule per seed. Some orders are meant
to fail: carol cannot pay, dave gave no address. The safety properties are
checked after every event (:mod:`labkit.labs.saga.properties`); the scripts
then lift every fault, wait for every saga to end and check that each order
is all or nothing.

Part **steps** (forward, with retries): ``happy path``, ``slow service``,
``duplicated messages``, ``lost messages``.
Part **compensation**: ``refused steps``, ``timeouts``, ``flaky compensations``, ``service crashes``.
Part **recovery** (the orchestrator crashes): ``crash at every log write``,
``crashes while compensating``, ``chaos``.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from labkit.labs.core import Fault, Scenario, Trial, Violation
from labkit.labs.saga.properties import ALL_OR_NOTHING, COMPLETES, FINISHED
from labkit.labs.saga.skeleton import WriteCounter
from labkit.saga.definition import Order
from labkit.saga.log import SagaLog, SagaStatus
from labkit.saga.scenario import SERVICES, build_services, invariant_violations, order_effects
from labkit.saga.services import ServiceFaults
from labkit.sim import Kind, Latency, Simulator, Uniform

__all__ = ["World", "SCENARIOS", "ORCHESTRATOR", "ORDERS", "SERVICE_FAULTS", "FAULTS_END"]

ORCHESTRATOR = "orchestrator"
LATENCY = Uniform(0.005, 0.015)
DOWN_FOR = 0.5  # a crashed orchestrator is back this long after (its supervisor restarts it)
FAULTS_END = 3.0  # every scenario's faults are over by then
FINISH_WITHIN = 15.0  # seconds after that for every saga to end
WRITES = (
    17  # log writes of orders o1 and o4 without a fault (one record or a done step and the end per write)
)
STOCK = {"book": 10}
BALANCE = {"alice": 100, "bob": 100, "carol": 20, "dave": 100}

# The shop's orders; carol cannot pay (20 for 30), dave gave no address.
ORDERS = {
    "o1": Order("o1", customer="alice"),
    "o2": Order("o2", customer="bob", address="2 Oak Ave"),
    "o3": Order("o3", customer="carol", address="3 Elm Rd"),
    "o4": Order("o4", customer="dave", address=""),
}
GOOD = ("o1", "o2")
ALL = ("o1", "o2", "o3", "o4")

# What a "service" fault does to one service (all of it, from the start of the run).
SERVICE_FAULTS: dict[str, ServiceFaults] = {
    "slow": ServiceFaults(slow=0.45),  # answers after one timeout: a retry finds it done
    "very slow": ServiceFaults(slow=3.0),  # never answers in time: maybe done, compensated
    "crash after apply": ServiceFaults(crash_after_apply=True, down_for=0.6),
    "flaky compensation": ServiceFaults(flaky_undo=3),
}


class World:
    """The learner's orchestrator, the three services and the shop, for one trial."""

    def __init__(
        self,
        trial: Trial,
        factory: Callable[..., Any],
        *,
        orders: tuple[str, ...] = GOOD,
        every: float = 0.05,
        loss: float = 0.0,
        duplication: float = 0.0,
        latency: Latency | float = LATENCY,
    ) -> None:
        self.trial = trial
        self.folder = tempfile.mkdtemp(prefix="labkit-saga-lab-")
        self.path = os.path.join(self.folder, "saga.db")
        faults: dict[str, ServiceFaults] = {}
        plan: dict[int, str] = {}
        for f in trial.faults:
            if f.kind == "service":
                service, kind = f.target
                faults[service] = SERVICE_FAULTS[kind]
            elif f.kind == "crash at write":
                number, when = f.target
                plan[number] = when
        self.writes = WriteCounter(plan)
        self.sim = Simulator(trial.seed, latency=latency, loss=loss, duplication=duplication)
        self.sim.add_node(ORCHESTRATOR, lambda node_id: factory(node_id, self.path, writes=self.writes))
        build_services(self.sim, faults, STOCK, BALANCE)
        self.ids = (ORCHESTRATOR, *SERVICES)
        self.orders = tuple(ORDERS[o] for o in orders)
        self.submitted: dict[str, bool] = {}  # order id -> accepted by the orchestrator
        self.crashes: list[tuple[float, str]] = []
        self._dying: set[str] = set()
        for i, order in enumerate(self.orders):
            self.sim.at(i * every, lambda sim, order=order: self.submit(order))
        # What the checks keep (see labkit.labs.saga.lab): the orchestrator's requests seen so far.
        self.scanned = 0
        self.requested: set[tuple[str, int, Any]] = set()  # (saga, step, op)
        self.key_of: dict[str, tuple[str, int]] = {}  # idempotency key -> (saga, step)

    # -- the shop ------------------------------------------------------------------
    def submit(self, order: Order) -> None:
        """Hand ``order`` to the orchestrator; while it is down, try again a little later.

        If the orchestrator dies while taking the order, the shop tells the customer
        it failed and does not try again: nothing of it may remain.
        """
        sim = self.sim
        sim.run(sim.now)  # whatever else is due now (a crash, say) happens first
        if not sim.is_up(ORCHESTRATOR) or getattr(sim.node(ORCHESTRATOR), "crashing", False):
            sim.after(0.05, lambda sim: self.submit(order))
            return
        accepted = sim.call(ORCHESTRATOR, lambda node, ctx: node.submit(ctx, order))
        self.submitted[order.order_id] = bool(accepted)

    # -- crashes ---------------------------------------------------------------------
    def crash(self, name: str, down_for: float) -> None:
        """Crash ``name`` now (its files closed, as the OS would) and restart it ``down_for`` later."""
        if not self.sim.is_up(name) or name in self._dying:
            return
        node = self.sim.node(name)
        if hasattr(node, "close"):
            node.close()
        self.sim.crash(name)
        self.crashes.append((self.sim.now, name))
        self.sim.after(down_for, lambda sim: sim.restart(name) if not sim.is_up(name) else None)

    def crash_soon(self, name: str, down_for: float) -> None:
        """Crash ``name`` right after the event in progress (a node that asked to die)."""
        if name in self._dying:
            return
        self._dying.add(name)

        def now(sim: Simulator) -> None:
            self._dying.discard(name)
            self.crash(name, down_for)

        self.sim.at(self.sim.now, now)

    # -- looking -----------------------------------------------------------------------
    def read_log(self, records: bool = True) -> tuple[dict[str, SagaStatus], dict[str, list[Any]]]:
        """Every saga's status (and records), read from the log file (the orchestrator may be down)."""
        if not os.path.exists(self.path):
            return {}, {}
        node = self.sim.node(ORCHESTRATOR) if self.sim.is_up(ORCHESTRATOR) else None
        log = getattr(node, "log", None)
        if not isinstance(log, SagaLog):
            with SagaLog(self.path, synchronous="OFF") as log:
                return _read(log, records)
        return _read(log, records)

    def close(self) -> None:
        """Close the orchestrator's log and delete the folder it lived in."""
        if self.sim.is_up(ORCHESTRATOR):
            node = self.sim.node(ORCHESTRATOR)
            if hasattr(node, "close"):
                node.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _read(log: SagaLog, records: bool) -> tuple[dict[str, SagaStatus], dict[str, list[Any]]]:
    statuses = dict(log.sagas())
    return statuses, ({s: log.records(s) for s in statuses} if records else {})


# ---------------------------------------------------------------------------
# What the scripts check
# ---------------------------------------------------------------------------
def lift(trial: Trial) -> None:
    """No more lost or duplicated messages."""
    trial.act("loss", 0.0)
    trial.act("duplication", 0.0)


def finish(trial: Trial, *, completes: tuple[str, ...] = ()) -> None:
    """Lift the faults, wait until every saga ends, then judge every order (all or nothing).

    ``completes``: orders that must end completed (every step of theirs is accepted).
    """
    world: World = trial.world
    trial.run_until(FAULTS_END)
    lift(trial)

    def running() -> list[str]:
        statuses, _ = world.read_log(records=False)
        accepted = [o for o, yes in world.submitted.items() if yes and o not in statuses]
        return accepted + [s for s, st in statuses.items() if st is SagaStatus.RUNNING]

    end = trial.sim.now + FINISH_WITHIN
    while running() and trial.sim.now < end:
        trial.run_for(0.1)
    left = running()
    if left:
        _, records = world.read_log()
        if left[0] not in records:
            v = Violation(
                FINISHED,
                f"the orchestrator accepted order {left[0]}, yet by t = {end:g} s, with no fault left to strike "
                f"since t = {FAULTS_END:g} s, its log has never heard of it",
                node=ORCHESTRATOR,
            )
            trace = world.sim.trace
            accepted = [
                i for i, e in enumerate(trace) if e.reason == "order accepted" and e.detail["saga"] == left[0]
            ]
            if accepted:
                v.event, v.time = accepted[-1], trace[accepted[-1]].time
            raise v
        last = records[left[0]][-1]
        trial.fail(
            FINISHED,
            f"by t = {end:g} s, with no fault left to strike since t = {FAULTS_END:g} s, saga {left[0]} is still "
            "running; its last log record "
            f"is {last.kind.value}" + (f" of step {last.step}" if last.step >= 0 else ""),
            node=ORCHESTRATOR,
        )
    trial.run_for(3.5)  # requests held by a very slow service land (and must be refused)
    statuses, _ = world.read_log(records=False)
    for order in world.orders:
        status = statuses.get(order.order_id)
        effects = order_effects(world.sim, order)
        problems = invariant_violations(effects, order, status)
        if status is None and effects.outcome(order) != "none":
            how = "never accepted" if order.order_id in world.submitted else "never submitted"
            problems.insert(0, f"the log has no saga {order.order_id} ({how}), yet it left effects")
        if problems:
            v = Violation(ALL_OR_NOTHING, f"order {order.order_id}: " + "; ".join(problems))
            v.event = _effect_row(world, order.order_id)
            if v.event is not None:
                seen = world.sim.trace[v.event]
                v.node, v.time = seen.node, seen.time
            raise v
    for order_id in completes:
        st = statuses.get(order_id)
        trial.expect(
            st is SagaStatus.COMPLETED,
            COMPLETES,
            f"order {order_id} "
            + ("never reached the log" if st is None else f"ended {st.value}")
            + ", although every service would accept its steps: it should have completed",
        )


def _effect_row(world: World, order_id: str) -> int | None:
    """The trace row where a service last took a step of ``order_id`` (a leftover effect shows there)."""
    trace = world.sim.trace
    prefix = order_id + "/"
    for i in range(len(trace) - 1, -1, -1):
        e = trace[i]
        if e.kind is not Kind.STATE or e.reason != "service":  # a STATE row's reason is the note's name
            continue
        if str(e.detail.get("key", "")).startswith(prefix) and e.detail.get("outcome") in (
            "applied",
            "compensated",
        ):
            return i
    return None


# ---------------------------------------------------------------------------
# Part 1: steps
# ---------------------------------------------------------------------------
def happy_path(trial: Trial) -> None:
    """Two orders, nothing fails: both complete, each step once."""
    finish(trial, completes=GOOD)


def slow_faults(rng: random.Random) -> list[Fault]:
    return [Fault(0.0, "service", (rng.choice(SERVICES), "slow"))]


def slow_service(trial: Trial) -> None:
    """A service answers only after a timeout: the retry must carry the same key, so it takes effect once."""
    finish(trial, completes=GOOD)


def duplicated(trial: Trial) -> None:
    """A third of the messages arrive twice, in any order: duplicate answers must not move a saga on."""
    finish(trial, completes=GOOD)


def lost(trial: Trial) -> None:
    """One message in twenty is lost: timeouts resend, with the same key."""
    finish(trial)


# ---------------------------------------------------------------------------
# Part 2: compensation
# ---------------------------------------------------------------------------
def refused(trial: Trial) -> None:
    """carol cannot pay, dave gave no address: their steps done so far are compensated, last first."""
    finish(trial, completes=GOOD)


def timeout_faults(rng: random.Random) -> list[Fault]:
    return [Fault(0.0, "service", (rng.choice(SERVICES), "very slow"))]


def timeouts(trial: Trial) -> None:
    """A service never answers in time: its step is maybe done and compensated too; the late request is refused."""
    finish(trial)


def flaky_faults(rng: random.Random) -> list[Fault]:
    return [Fault(0.0, "service", (rng.choice(["inventory", "payment"]), "flaky compensation"))]


def flaky(trial: Trial) -> None:
    """Compensations fail three times before they work: a compensation never gives up."""
    finish(trial, completes=GOOD)


def service_crash_faults(rng: random.Random) -> list[Fault]:
    return [Fault(0.0, "service", (rng.choice(SERVICES), "crash after apply"))]


def service_crashes(trial: Trial) -> None:
    """A service applies a step, then crashes before it answers: the step is maybe done."""
    finish(trial)


# ---------------------------------------------------------------------------
# Part 3: recovery
# ---------------------------------------------------------------------------
def every_write_faults(rng: random.Random) -> list[Fault]:
    """Seed s: the orchestrator dies at its log write (s // 2) % WRITES + 1, before it commits (s even) or after.

    Seeds 0 to 2 * WRITES - 1 go through every crash point of a run without faults, in order.
    """
    seed = getattr(rng, "trial_seed", rng.randrange(2 * WRITES))
    return [Fault(0.0, "crash at write", ((seed // 2) % WRITES + 1, "before" if seed % 2 == 0 else "after"))]


def every_write(trial: Trial) -> None:
    """The orchestrator dies at one of its log writes (each seed another), and is restarted."""
    finish(trial)


def compensating_faults(rng: random.Random) -> list[Fault]:
    out = [Fault(0.0, "service", (rng.choice(["inventory", "payment"]), "flaky compensation"))]
    for number in sorted(rng.sample(range(5, 26), 2)):
        out.append(Fault(0.0, "crash at write", (number, rng.choice(["before", "after"]))))
    out.append(Fault(round(rng.uniform(0.1, 1.5), 3), "crash", ORCHESTRATOR))
    return out


def compensating(trial: Trial) -> None:
    """The orchestrator dies again and again while sagas compensate."""
    finish(trial)


def chaos_faults(rng: random.Random) -> list[Fault]:
    out = []
    for service in rng.sample(SERVICES, rng.randint(0, 2)):
        out.append(Fault(0.0, "service", (service, rng.choice(list(SERVICE_FAULTS)))))
    for number in sorted(rng.sample(range(1, 30), 2)):
        out.append(Fault(0.0, "crash at write", (number, rng.choice(["before", "after"]))))
    t = 0.1
    while t < 2.5:
        kind = rng.choice(["crash", "loss", "duplication"])
        if kind == "crash":
            out.append(Fault(round(t, 3), "crash", ORCHESTRATOR))
        else:
            out.append(Fault(round(t, 3), kind, rng.choice([0.0, 0.1, 0.3])))
        t += rng.uniform(0.3, 0.8)
    return out


def chaos(trial: Trial) -> None:
    """Service faults, lost and duplicated messages, and orchestrator crashes at random, all at once."""
    finish(trial)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("happy path", "steps", happy_path, seeds=3,
             about="two orders complete, each step taking effect once"),
    Scenario("slow service", "steps", slow_service, slow_faults, seeds=6,
             about="a retry after a timeout carries the same key: it takes effect once"),
    Scenario("duplicated messages", "steps", duplicated, seeds=10,
             options={"duplication": 0.3, "latency": Uniform(0.001, 0.05)},
             about="duplicated and reordered answers do not move a saga on twice"),
    Scenario("lost messages", "steps", lost, seeds=10, options={"loss": 0.05},
             about="lost messages are resent after a timeout, with the same key"),
    Scenario("refused steps", "compensation", refused, seeds=3, options={"orders": ALL},
             about="a refused step's predecessors are compensated, last first (§1)"),
    Scenario("timeouts", "compensation", timeouts, timeout_faults, seeds=6, options={"orders": ALL},
             about="a step that never answers is maybe done, and compensated too"),
    Scenario("flaky compensations", "compensation", flaky, flaky_faults, seeds=4, options={"orders": ALL},
             about="a compensation is retried until it succeeds"),
    Scenario("service crashes", "compensation", service_crashes, service_crash_faults, seeds=6,
             options={"orders": ALL}, about="a service that crashes before answering: maybe done"),
    Scenario("crash at every log write", "recovery", every_write, every_write_faults, seeds=2 * WRITES,
             options={"orders": ("o1", "o4")},
             about="the orchestrator dies at each log write in turn, before or after it commits (§4, §5)"),
    Scenario("crashes while compensating", "recovery", compensating, compensating_faults, seeds=20,
             options={"orders": ALL}, about="crashes during compensation: recovery goes on backwards (§4)"),
    Scenario("chaos", "recovery", chaos, chaos_faults, seeds=20, options={"orders": ALL},
             about="service faults, loss, duplicates and crashes together"),
)  # fmt: skip
