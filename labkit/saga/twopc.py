"""Two-phase commit on the same three services, to see why it blocks.

The coordinator (Gray 1978; DDIA ch. 9 "Atomic Commit and Two-Phase
Commit", Figure 9-9) asks every participant to PREPARE. A participant that
votes yes has applied the change tentatively, **locked** what it touched and
promised to commit if told to: from then on it is *in doubt* and may not
decide alone. When every vote is yes the coordinator writes COMMIT to its
durable log (the commit point), otherwise ABORT, and then tells everyone.

If the coordinator crashes after the participants voted yes and before they
hear the decision, they stay in doubt, holding their locks, until it comes
back: the **blocking window**. A saga has no such window, because each of its
steps commits locally at once; it pays instead with compensations and with
other transactions seeing its intermediate states.

Recovery follows the presumed-abort rule: a transaction with no decision in
the coordinator's log is aborted; a logged decision is sent again until every
participant has acknowledged it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.saga.definition import ORDER_SAGA, Order
from labkit.saga.scenario import SERVICES, FaultDriver, OrderRun, add_prober, judged, start_order_run
from labkit.saga.services import Op, Outcome, Reply, Request, ServiceFaults
from labkit.sim import Context, Fixed, Kind, Node


class TxnPhase(Enum):
    PREPARING = "preparing"  # votes being collected; no decision yet
    COMMITTING = "committing"  # COMMIT logged: the transaction will commit
    ABORTING = "aborting"  # ABORT logged
    DONE = "done"  # every participant acknowledged the decision


class CoordinatorCrash(Enum):
    """Where the coordinator dies (fault injection)."""

    NONE = "none"
    AFTER_PREPARE = "after prepare"  # every vote is yes, nothing decided yet
    AFTER_DECISION = "after decision"  # COMMIT logged, not sent to anyone


@dataclass(frozen=True, slots=True)
class TxnRecord:
    """The coordinator's durable record of one transaction."""

    txn_id: str
    args: tuple[tuple, ...]  # one per participant
    phase: TxnPhase
    acked: frozenset[str] = frozenset()


class TwoPhaseCoordinator(Node):
    """Coordinates 2PC transactions over ``participants`` (service node ids).

    Durable: ``("txn", txn_id) -> TxnRecord`` (written before sending a
    decision). Volatile: the votes received so far.
    """

    def __init__(
        self,
        node_id: str,
        participants: tuple[str, ...] = SERVICES,
        *,
        vote_timeout: float = 0.5,
        resend_every: float = 0.5,
        crash: CoordinatorCrash = CoordinatorCrash.NONE,
    ) -> None:
        super().__init__(node_id)
        # participants: distinct service node ids; the two waits: finite seconds > 0.
        self.participants = tuple(valid.non_empty("participants", participants, "sequence of node ids"))
        for i, p in enumerate(self.participants):
            valid.string(f"participants[{i}]", p)
        valid.require(
            len(set(self.participants)) == len(self.participants), "participants", "distinct", participants
        )
        self.vote_timeout = valid.number("vote_timeout", vote_timeout, gt=0, unit="seconds")
        self.resend_every = valid.number("resend_every", resend_every, gt=0, unit="seconds")
        self.crash = valid.instance("crash", crash, CoordinatorCrash)
        self.txns: dict[str, TxnRecord] = {}
        self.votes: dict[str, set[str]] = {}
        self.crashing = False
        self._phase_handlers = {Op.PREPARE: self._on_vote, Op.COMMIT: self._on_ack, Op.ABORT: self._on_ack}

    def _save(self, ctx: Context, rec: TxnRecord) -> None:
        self.txns[rec.txn_id] = rec
        ctx.persist(("txn", rec.txn_id), rec)
        ctx.note("coordinator", txn=rec.txn_id, phase=rec.phase.value)

    def _send(self, ctx: Context, rec: TxnRecord, op: Op, only: frozenset[str] | None = None) -> None:
        for i, p in enumerate(self.participants):
            if only is None or p not in only:
                ctx.send(p, Request(rec.txn_id, i, op, f"{rec.txn_id}/{i}", rec.args[i]))

    def on_start(self, ctx: Context) -> None:
        for key, rec in ctx.storage.items():
            if key[0] != "txn":
                continue
            self.txns[rec.txn_id] = rec
            if rec.phase is TxnPhase.PREPARING:
                # Presumed abort: no decision was logged, so none was sent.
                ctx.note("coordinator", txn=rec.txn_id, recovered="no decision logged: abort")
                self._decide(ctx, rec, commit=False)
            elif rec.phase is not TxnPhase.DONE:
                self._send_decision(ctx, rec)

    def submit(self, ctx: Context, order: Order) -> str:
        valid.instance("order", order, Order)
        rec = TxnRecord(order.order_id, tuple(s.args(order) for s in ORDER_SAGA.steps), TxnPhase.PREPARING)
        self._save(ctx, rec)
        self.votes[rec.txn_id] = set()
        self._send(ctx, rec, Op.PREPARE)
        ctx.set_timer(f"votes/{rec.txn_id}", self.vote_timeout)
        return rec.txn_id

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if self.crashing or not isinstance(msg, Reply):
            return
        rec = self.txns.get(msg.saga_id)
        if rec is not None:
            self._phase_handlers[msg.op](ctx, src, rec, msg)

    def _on_vote(self, ctx: Context, src: str, rec: TxnRecord, msg: Reply) -> None:
        if rec.phase is not TxnPhase.PREPARING:
            return
        if msg.outcome is not Outcome.OK:
            self._decide(ctx, rec, commit=False)
            return
        votes = self.votes.setdefault(rec.txn_id, set())
        votes.add(src)
        if len(votes) == len(self.participants):
            if self.crash is CoordinatorCrash.AFTER_PREPARE:
                self.crashing = True
                ctx.note("coordinator", txn=rec.txn_id, event="crash after prepare")
                return
            self._decide(ctx, rec, commit=True)

    def _decide(self, ctx: Context, rec: TxnRecord, commit: bool) -> None:
        ctx.cancel_timer(f"votes/{rec.txn_id}")
        rec = replace(rec, phase=TxnPhase.COMMITTING if commit else TxnPhase.ABORTING)
        self._save(ctx, rec)  # the decision is durable before anyone hears it
        if commit and self.crash is CoordinatorCrash.AFTER_DECISION:
            self.crashing = True
            ctx.note("coordinator", txn=rec.txn_id, event="crash after decision")
            return
        self._send_decision(ctx, rec)

    def _send_decision(self, ctx: Context, rec: TxnRecord) -> None:
        op = Op.COMMIT if rec.phase is TxnPhase.COMMITTING else Op.ABORT
        self._send(ctx, rec, op, only=rec.acked)
        ctx.set_timer(f"resend/{rec.txn_id}", self.resend_every)

    def _on_ack(self, ctx: Context, src: str, rec: TxnRecord, msg: Reply) -> None:
        if rec.phase not in (TxnPhase.COMMITTING, TxnPhase.ABORTING) or src in rec.acked:
            return
        rec = replace(rec, acked=rec.acked | {src})
        if len(rec.acked) == len(self.participants):
            rec = replace(rec, phase=TxnPhase.DONE)
            ctx.cancel_timer(f"resend/{rec.txn_id}")
        self._save(ctx, rec)

    def on_timer(self, ctx: Context, name: str) -> None:
        if self.crashing:
            return
        what, txn_id = name.split("/", 1)
        rec = self.txns.get(txn_id)
        if rec is None:
            return
        if what == "votes" and rec.phase is TxnPhase.PREPARING:
            self._decide(ctx, rec, commit=False)  # a missing vote counts as no
        elif what == "resend" and rec.phase in (TxnPhase.COMMITTING, TxnPhase.ABORTING):
            self._send_decision(ctx, rec)


@dataclass(frozen=True, slots=True)
class TwoPCRun(OrderRun):
    """The result of :func:`run_two_phase_commit`.

    ``in_doubt`` maps each participant to ``(voted_yes_at, decided_at)``
    (``decided_at`` is None if it never heard the decision); ``probes`` are
    ``(time, outcome)`` of another order's charges to the same customer.
    """

    decision: str | None
    in_doubt: dict[str, tuple[float, float | None]]
    probes: tuple[tuple[float, str], ...]
    crashes: tuple[tuple[float, str], ...]

    @property
    def blocking_window(self) -> float:
        """Longest time any participant spent in doubt (seconds)."""
        spans = [(end if end is not None else float("inf")) - start for start, end in self.in_doubt.values()]
        return max(spans, default=0.0)


def run_two_phase_commit(
    order: Order | None = None,
    *,
    crash: CoordinatorCrash = CoordinatorCrash.NONE,
    down_for: float = 3.0,
    faults: Mapping[str, ServiceFaults] | None = None,
    probe_every: float | None = 0.25,
    seed: int = 0,
    until: float = 60.0,
) -> TwoPCRun:
    """Run one 2PC transaction for ``order``; the coordinator may crash
    (``crash``) and come back ``down_for`` seconds later.

    ``probe_every``: a second client tries to charge the same customer (a
    different order) this often, for ``down_for + 2`` seconds, to show the
    lock an in-doubt participant holds.
    """
    valid.instance("crash", crash, CoordinatorCrash)
    valid.number("down_for", down_for, ge=0, unit="seconds")
    valid.number("probe_every", probe_every, gt=0, unit="seconds", none=True)
    valid.number("until", until, gt=0, unit="seconds")
    order, sim = start_order_run(order, seed, faults, latency=Fixed(0.01))
    boots = [0]

    def coordinator(node_id: str) -> TwoPhaseCoordinator:
        boots[0] += 1  # the crash fault fires in the first incarnation only
        return TwoPhaseCoordinator(node_id, crash=crash if boots[0] == 1 else CoordinatorCrash.NONE)

    sim.add_node("coordinator", coordinator)
    prober = add_prober(sim, order, probe_every, down_for + 2.0)
    sim.run(0.0)
    driver = FaultDriver(sim, down_for)
    sim.call("coordinator", lambda node, ctx: node.submit(ctx, order))
    driver.run(until)
    in_doubt: dict[str, tuple[float, float | None]] = {}
    decision = None
    for ev in sim.trace:
        if ev.kind is not Kind.STATE:
            continue
        d = ev.detail or {}
        if ev.reason == "participant" and d.get("key", "").startswith(order.order_id + "/"):
            if d.get("vote") == "yes":
                in_doubt[ev.node] = (ev.time, None)
            elif "decision" in d and ev.node in in_doubt:
                in_doubt[ev.node] = (in_doubt[ev.node][0], ev.time)
        elif ev.reason == "coordinator" and d.get("phase") in ("committing", "aborting"):
            decision = "commit" if d["phase"] == "committing" else "abort"
    return TwoPCRun(
        **judged(sim, order),
        decision=decision,
        in_doubt=in_doubt,
        probes=tuple(prober.results) if prober is not None else (),
        crashes=tuple(driver.crashes),
    )
