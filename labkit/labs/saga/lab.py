"""The saga lab: the learner's orchestrator, labkit's services, crashes and checks.

:class:`SagaLab` says what a lab says (see :class:`labkit.labs.Lab`):

* the world of a trial (:class:`~labkit.labs.saga.scenarios.World`): the
  learner's orchestrator built as ``MySagas(node_id, log_path, writes=...)``
  with its saga log in a fresh SQLite file (deleted after the trial),
  labkit's inventory, payment and shipping services, and a shop submitting
  orders;
* faults: ``service`` (a service misbehaves all run long: ``slow``, ``very
  slow``, ``crash after apply``, ``flaky compensation``), ``crash at write``
  (the orchestrator dies at its n-th log write, ``before`` it commits or
  ``after``), ``crash`` (the orchestrator dies now), ``loss`` and
  ``duplication``. A crashed orchestrator is restarted half a second later;
  a crashed service after its own ``down_for``;
* after every event, the checks of :mod:`labkit.labs.saga.properties`;
* a node's state for the picture: each saga's phase and step, each order's
  entries at a service;
* a submission must not delegate to labkit's own orchestrator
  (:mod:`labkit.saga.orchestrator`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.labs import delegation
from labkit.labs.core import Fault, Lab, Trial, Violation
from labkit.labs.saga.properties import ONCE, ONLY_RAN, RESUME, REVERSE
from labkit.labs.saga.scenarios import DOWN_FOR, ORCHESTRATOR, SCENARIOS, World
from labkit.labs.saga.skeleton import SagaOrchestrator
from labkit.saga import orchestrator as _orchestrator
from labkit.saga.definition import ORDER_SAGA
from labkit.saga.log import LogKind
from labkit.saga.naive import OrderSaga
from labkit.saga.orchestrator import Orchestrator, SagaState
from labkit.saga.scenario import SERVICES
from labkit.saga.services import EntryStatus, Op, Request
from labkit.sim import Kind

__all__ = ["SagaLab", "saga_lab", "REFERENCE"]

REFERENCE = delegation.Reference(
    "labkit's saga orchestrator (labkit.saga.orchestrator), the course's reference implementation",
    classes=(Orchestrator, SagaState, OrderSaga),
    objects=(
        Orchestrator,
        SagaState,
        _orchestrator,
        _orchestrator.decide_start,
        _orchestrator.decide_reply,
        _orchestrator.decide_timer,
        _orchestrator.decide_recovery,
        _orchestrator.check_state,
    ),
    names=frozenset(
        {
            "Orchestrator",
            "SagaState",
            "decide_start",
            "decide_reply",
            "decide_timer",
            "decide_recovery",
            "Decision",
            "_send_step",
            "_next_compensation",
            "run_order_saga",
        }
    ),  # fmt: skip
    trip=(
        *delegation.functions_of(Orchestrator, SagaState),
        _orchestrator.decide_start,
        _orchestrator.decide_reply,
        _orchestrator.decide_timer,
        _orchestrator.decide_recovery,
    ),
)

_OUTCOME = frozenset({LogKind.STEP_DONE, LogKind.STEP_FAILED})
_BACKWARD = frozenset(
    {LogKind.STEP_FAILED, LogKind.STEP_MAYBE, LogKind.COMP_SENT, LogKind.COMP_DONE, LogKind.ABORTED}
)
_LIVE = EntryStatus.APPLIED


class SagaLab(Lab):
    """A durable saga orchestrator in three parts: steps, compensation, recovery from the log."""

    name = "saga"
    handle = "saga_lab"
    parts = ("steps", "compensation", "recovery")
    scenarios = SCENARIOS
    world_class = World
    skeleton = SagaOrchestrator
    reference = REFERENCE
    max_events = 200_000
    trial_seconds = 15.0

    # -- the world ---------------------------------------------------------------
    def clean_up(self, trial: Trial) -> None:
        trial.world.close()

    # -- faults --------------------------------------------------------------------
    def inject(self, trial: Trial, fault: Fault) -> str | None:
        world: World = trial.world
        if fault.kind == "service":  # set up when the world was built
            service, kind = fault.target
            return f"{service}: {kind} all along"
        if fault.kind == "crash at write":
            number, when = fault.target
            return f"the orchestrator will die at its log write {number}, {when} it commits"
        if fault.kind == "crash":
            if not world.sim.is_up(ORCHESTRATOR):
                return "crash the orchestrator: already down"
            world.crash(ORCHESTRATOR, DOWN_FOR)
            return "crash the orchestrator (back in 0.5 s)"
        if fault.kind == "loss":
            world.sim.set_loss(fault.target)
            return f"lose {fault.target:.0%} of messages"
        if fault.kind == "duplication":
            world.sim.set_duplication(fault.target)
            return f"duplicate {fault.target:.0%} of messages"
        kinds = "service, crash at write, crash, loss, duplication"
        raise ValueError(f"fault kind must be one of {kinds}, got {fault.kind!r}")

    # -- checks --------------------------------------------------------------------
    def watch(self, trial: Trial) -> Callable[[str, Any], None]:
        world: World = trial.world

        def check(node_id: str, node: Any) -> None:
            if node_id == ORCHESTRATOR:
                _scan_requests(world, node)
                if getattr(node, "crashing", False):
                    world.crash_soon(ORCHESTRATOR, DOWN_FOR)
            elif node_id in SERVICES:
                _check_service(world, node_id, node)
                if getattr(node, "crashing", False):
                    world.crash_soon(node_id, node.faults.down_for)

        return check

    def describe(self, node: Any) -> dict[str, Any] | None:
        if isinstance(node, SagaOrchestrator):
            if node.crashing:
                return {"state": "dying"}
            return {s.saga_id: _saga_text(s) for s in node.sagas.values()} or {"state": "no saga yet"}
        entries = getattr(node, "entries", None)
        if entries is None:
            return None
        return {key: e.status.value for key, e in sorted(entries.items())} or {"state": "nothing yet"}


def _saga_text(saga: Any) -> str:
    try:
        what = f"{saga.phase.value} step {saga.step} (attempt {saga.attempt})"
        return what + (f", to undo {saga.to_undo}" if saga.to_undo else "")
    except AttributeError:
        return repr(saga)


# -- the checks --------------------------------------------------------------------
def _scan_requests(world: World, node: Any) -> None:
    """Every request the orchestrator sent since the last look: may it send that, given its log?"""
    trace = world.sim.trace
    for i in range(world.scanned, len(trace)):
        e = trace[i]
        if e.kind is not Kind.SEND or e.src != ORCHESTRATOR or not isinstance(e.message, Request):
            continue
        req: Request = e.message
        world.key_of.setdefault(req.key, (req.saga_id, req.step))
        records = _records(node, req.saga_id)
        step_name = _step_name(req.step)
        if req.op is Op.DO:
            done = [x for x in records if x.kind in _OUTCOME and x.step == req.step]
            back = [x for x in records if x.kind in _BACKWARD]
            if done or back:
                why = (
                    f"its log already records {done[0].kind.value} for step {req.step}"
                    if done
                    else f"the saga is compensating (its log records {back[0].kind.value})"
                )
                raise _violation(
                    RESUME, f"the orchestrator asked again for {req.saga_id}'s step {req.step} ({step_name}), "
                    f"although {why}", world, i
                )  # fmt: skip
        elif req.op is Op.UNDO:
            if (req.saga_id, req.step, Op.DO) not in world.requested:
                raise _violation(
                    ONLY_RAN,
                    f"the orchestrator compensates {req.saga_id}'s step {req.step} ({step_name}), "
                    "which it never asked for",
                    world,
                    i,
                )
            refused = [x for x in records if x.kind is LogKind.STEP_FAILED and x.step == req.step]
            if refused:
                raise _violation(
                    ONLY_RAN,
                    f"the orchestrator compensates {req.saga_id}'s step {req.step} ({step_name}), which its "
                    f"log records as refused ({refused[0].detail or 'step_failed'}): it never ran",
                    world,
                    i,
                )
        world.requested.add((req.saga_id, req.step, req.op))
    world.scanned = len(trace)


def _step_name(step: int) -> str:
    return ORDER_SAGA.steps[step].action if 0 <= step < len(ORDER_SAGA) else "?"


def _records(node: Any, saga_id: str) -> list[Any]:
    log = getattr(node, "log", None)
    if log is None:
        return []
    try:
        return log.records(saga_id)
    except Exception:  # a log the learner's code broke: the other checks will say so
        return []


def _violation(prop: Any, detail: str, world: World, row: int) -> Violation:
    v = Violation(prop, detail, node=ORCHESTRATOR, time=world.sim.trace[row].time)
    v.event = row
    return v


def _check_service(world: World, name: str, node: Any) -> None:
    """At most one live entry per saga at this service; a compensated step has no later step in effect."""
    live: dict[str, str] = {}
    for key, entry in node.entries.items():
        owner = world.key_of.get(key)
        if owner is None:
            continue
        saga, step = owner
        if entry.status is _LIVE:
            if saga in live:
                raise Violation(
                    ONCE,
                    f"{name} applied {saga}'s step {step} ({_step_name(step)}) twice: under keys "
                    f"{live[saga]!r} and {key!r}",
                    node=name,
                )
            live[saga] = key
        elif entry.status is EntryStatus.COMPENSATED:
            later = _live_steps_after(world, saga, step)
            if later:
                raise Violation(
                    REVERSE,
                    f"{name} compensated {saga}'s step {step} ({_step_name(step)}) while its later step "
                    f"{later[0]} ({_step_name(later[0])}) is still in effect: compensations run last step first",
                    node=name,
                )


def _live_steps_after(world: World, saga: str, step: int) -> list[int]:
    out = []
    for service in SERVICES:
        sim = world.sim
        if sim.is_up(service):
            entries = sim.node(service).entries  # type: ignore[attr-defined]
        else:
            entries = {k[1]: v for k, v in sim.storage(service).items() if k[0] == "entry"}
        for key, entry in entries.items():
            owner = world.key_of.get(key)
            if owner is not None and owner[0] == saga and owner[1] > step and entry.status is _LIVE:
                out.append(owner[1])
    return sorted(out)


saga_lab = SagaLab()
