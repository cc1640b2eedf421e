"""Ready-made models of labkit's protocols, correct and deliberately broken.

Each function returns a :class:`~labkit.explore.Model` built from labkit's
own nodes, the ones the other notebooks run in the simulator:

* :func:`raft`: :class:`labkit.raft.RaftNode` servers (or a bug of
  :mod:`labkit.raft.bugs`, or any class with the same constructor, such as a
  learner's own), with client commands as inputs;
* :func:`quorum_register`: the Dynamo-style store of
  :mod:`labkit.replication` with one client that writes, then reads;
* :func:`two_phase_commit` and :func:`saga`: an order placed across the
  inventory, payment and shipping services of :mod:`labkit.saga`, by a
  two-phase-commit coordinator or by the saga orchestrator's rules;
* :func:`lww_register`: the last-writer-wins register of
  :mod:`labkit.clocks.lww` under clock skew.

:data:`labkit.explore.checks.CHECKS` lists the ready-made checks: each model
with its invariants and the bounds within which the correct version is
checked, and each broken variant with the length of its shortest counterexample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, replace
from typing import Any

from labkit import validation as valid
from labkit.clocks.lww import LWWReplica, Stamping
from labkit.explore.model import Act, Action, Input, Model
from labkit.explore.space import Space
from labkit.raft.bugs import Bug, check_bugs, node_class
from labkit.raft.node import RaftConfig, Role
from labkit.replication import ClientNode, OpKind, ReplicaNode, StoreConfig
from labkit.replication.modes import Resolution
from labkit.saga.definition import ORDER_SAGA, Order, SagaDefinition
from labkit.saga.log import LogRecord
from labkit.saga.orchestrator import (
    SAGA_RETRY,
    Decision,
    RetryPolicy,
    SagaState,
    check_state,
    decide_recovery,
    decide_reply,
    decide_start,
    decide_timer,
)
from labkit.saga.services import SERVICE_CLASSES, Reply
from labkit.saga.twopc import TwoPhaseCoordinator, TxnPhase, TxnRecord
from labkit.sim import Context, Node

__all__ = [
    "raft",
    "raft_facts",
    "raft_columns",
    "figure8_start",
    "quorum_register",
    "two_phase_commit",
    "saga",
    "lww_register",
    "VolatileDecision",
    "LoggedOrchestrator",
    "drop_in_flight",
]


# ---------------------------------------------------------------------------
# Raft (extended paper, Figure 2)
# ---------------------------------------------------------------------------
def raft_facts(node_id: str, node: Any) -> list[tuple]:
    """What a Raft model remembers about a server's state, for the invariants of Figure 3.

    ``("leader", term, node)`` while it leads; while it leads, each entry it
    knows committed as ``("committed", index, entry term, its term)``; each
    entry it applied as ``("applied", index, entry)``.
    """
    facts: list[tuple] = []
    log = node.log
    last = log.last_index
    if node.role is Role.LEADER:
        term = node.current_term
        facts.append(("leader", term, node_id))
        facts.extend(("committed", i, log.term(i), term) for i in range(1, min(node.commit_index, last) + 1))
    facts.extend(("applied", i, log[i]) for i in range(1, min(node.last_applied, last) + 1))
    return facts


def raft_columns(node: Any) -> dict[str, Any]:
    """What the explorer shows of a Raft server."""
    entries = " ".join(
        f"{i}:t{e.term}{'' if e.command is None else ' ' + str(e.command)}" for i, e in enumerate(node.log, 1)
    )
    return {
        "role": node.role.value,
        "term": node.current_term,
        "voted for": node.voted_for or "–",
        "log": entries or "–",
        "commit": node.commit_index,
    }


def _is_leader(node: Any) -> bool:
    return node.role is Role.LEADER


def _no_round(msg: Any) -> Any:
    """A Raft message with its heartbeat round left out (the plain algorithm never reads it)."""
    return replace(msg, round=0) if getattr(msg, "round", 0) else msg


def raft(
    n: int = 3,
    *,
    bugs: Bug | Iterable[Bug] = (),
    node_factory: Callable[[str, tuple[str, ...], RaftConfig], Node] | None = None,
    commands: Sequence[str] = (),
    noop: bool = False,
    name: str | None = None,
) -> Model:
    """``n`` Raft servers ``n1..nN``; ``commands`` are client commands a leader may receive, each once.

    ``bugs`` builds labkit's deliberately broken servers (:mod:`labkit.raft.bugs`);
    ``node_factory(node_id, peers, config)`` builds servers of another class
    (as :class:`labkit.raft.RaftCluster` takes it: a learner's own Raft plugs in
    here). ``noop``: a new leader appends a no-op entry (§8); off by default,
    as in Figure 8, so that the commit rule alone must keep the log safe.

    The servers are interchangeable (symmetry reduction). Measures for
    :class:`Bounds`: ``term`` (a server's current term) and ``log`` (its
    log's length).
    """
    valid.integer("n", n, ge=1, le=7, note="servers")
    chosen = check_bugs(bugs)
    valid.boolean("noop", noop)
    valid.collection("commands", commands, "a list of strings", Sequence)
    for i, c in enumerate(commands):
        valid.string(f"commands[{i}]", c)
    valid.require(len(set(commands)) == len(commands), "commands", "distinct commands", list(commands))
    ids = tuple(f"n{i}" for i in range(1, n + 1))
    config = RaftConfig(noop=noop)
    if node_factory is None:
        server = node_class(chosen)

        def build(node_id: str) -> Node:
            return server(node_id, ids, config)

        label = "Raft" if not chosen else "Raft with " + ", ".join(sorted(b.name for b in chosen))
    else:
        if chosen:
            raise ValueError("give bugs to labkit's servers, or a node_factory, not both")
        valid.function("node_factory", node_factory, "callable as node_factory(node_id, peers, config)")

        def build(node_id: str) -> Node:
            return node_factory(node_id, ids, config)

        label = "Raft (your servers)"
    inputs = [
        Input(f"submit {c!r}", (lambda node, ctx, c=c: node.submit(ctx, c)), when=_is_leader)
        for c in commands
    ]
    return Model(
        {nid: build for nid in ids},
        inputs=inputs,
        symmetric=True,
        # Set when a server is built and never changed without membership changes (none here).
        constant=(
            "node_id",
            "peers",
            "config",
            "voters",
            "quorum",
            "membership",
            "_watch_leader",
            "leader_contact",
        ),
        # Rounds of heartbeats serve ReadIndex, leases and CheckQuorum (diss. §6.4), all off here:
        # every heartbeat starts a round, and counting them would make the state space infinite.
        # _voter_progress is a cached list of the progress records (in voter order).
        ignore=("rounds", "_voter_progress"),
        message_view=_no_round,
        measures={"term": lambda node: node.current_term, "log": lambda node: node.log.last_index},
        remember=raft_facts,
        describe=raft_columns,
        name=name or f"{label}, {n} servers",
    )


def drop_in_flight(model: Model, actions: Sequence[Action]) -> list[Action]:
    """``actions`` followed by a drop of every message still in flight after them.

    The state reached is "the same, with a quiet network": every message sent
    so far was delivered or lost. A good place to start a search from.
    """
    space = Space(model)
    state = space.view(space.after(actions))
    return [*actions, *(Action(Act.DROP, dst, src, msg) for src, dst, msg in state.in_flight)]


def figure8_start(model: Model) -> list[Action]:
    """The actions that lead a 3-server :func:`raft` model with commands ``"A"`` and ``"B"`` to the
    situation of Figure 8 (b) (§5.4.2), scaled down to three servers, with a quiet network.

    n1 wins term 1 (with n2's vote) and appends ``A``, which reaches nobody; n2
    wins term 2 (with n3's vote) and appends ``B``, which reaches nobody; n2's
    RequestVote reaches n1, which steps down to follower of term 2. Every
    other message is lost. Index 1 then holds ``A`` (term 1) on n1, ``B``
    (term 2) on n2 and nothing on n3.
    """
    valid.instance("model", model, Model)
    valid.require(model.ids == ("n1", "n2", "n3"), "model", "a 3-server raft model", model.ids)
    labels = [x.label for x in model.inputs]
    valid.require(labels[:2] == ["submit 'A'", "submit 'B'"], "model", "commands 'A' and 'B'", labels)
    from labkit.raft.messages import RequestVote, RequestVoteReply

    def vote(term: int, cand: str, last: tuple[int, int] = (0, 0)) -> RequestVote:
        return RequestVote(term, cand, *last)

    steps = [
        Action(Act.TIMEOUT, "n1", timer="election"),
        Action(Act.DELIVER, "n2", "n1", vote(1, "n1")),
        Action(Act.DELIVER, "n1", "n2", RequestVoteReply(1, True)),
        Action(Act.INPUT, "n1", label="submit 'A'"),
        Action(Act.TIMEOUT, "n2", timer="election"),
        Action(Act.DELIVER, "n3", "n2", vote(2, "n2")),
        Action(Act.DELIVER, "n2", "n3", RequestVoteReply(2, True)),
        Action(Act.INPUT, "n2", label="submit 'B'"),
        Action(Act.DELIVER, "n1", "n2", vote(2, "n2")),
    ]
    return drop_in_flight(model, steps)


# ---------------------------------------------------------------------------
# The quorum register (Dynamo, SOSP 2007, §4.5)
# ---------------------------------------------------------------------------
QUORUM_KEY = "x"


def _acked_write(client: Any) -> bool:
    return any(op.kind is OpKind.WRITE and op.ok for op in client.ops)


def quorum_register(
    n: int = 3, r: int = 2, w: int = 2, *, resolution: Resolution = Resolution.LAST_WRITER_WINS
) -> Model:
    """``n`` replicas ``n1..nN`` of labkit's replicated store and one client, ``c``.

    The client writes ``x = "v1"`` with write quorum ``w`` through ``n1``; once
    the write is acknowledged it may read ``x`` with read quorum ``r``. With
    ``r + w > n`` every read quorum meets every write quorum (Dynamo §4.5,
    DDIA ch. 5 "Quorums for reading and writing"); with ``r + w <= n`` the
    read can miss an acknowledged write.
    """
    valid.integer("n", n, ge=1, le=5)
    valid.integer("r", r, ge=1, le=n)
    valid.integer("w", w, ge=1, le=n)
    valid.instance("resolution", resolution, Resolution)
    ids = tuple(f"n{i}" for i in range(1, n + 1))
    config = StoreConfig(ids, n=n, resolution=resolution)
    nodes: dict[str, Callable[[str], Node]] = {nid: ReplicaNode.factory(config) for nid in ids}
    nodes["c"] = lambda nid: ClientNode(nid, ids[0])
    inputs = [
        Input(
            f"write {QUORUM_KEY}=v1 (W={w})",
            lambda node, ctx: node.submit(ctx, OpKind.WRITE, QUORUM_KEY, "v1", quorum=w),
            ("c",),
        ),
        Input(
            f"read {QUORUM_KEY} (R={r})",
            lambda node, ctx: node.submit(ctx, OpKind.READ, QUORUM_KEY, quorum=r),
            ("c",),
            _acked_write,
        ),
    ]
    return Model(
        nodes,
        inputs=inputs,
        constant=("node_id", "config", "timeout", "workload"),
        describe=_quorum_columns,
        name=f"quorum register, N={n}, R={r}, W={w}",
    )


def _quorum_columns(node: Any) -> dict[str, Any]:
    if isinstance(node, ClientNode):
        ops = "; ".join(f"{op.kind.value} {'→ ' + str(op.values) if op.ok else 'failed'}" for op in node.ops)
        return {"role": "client", "data": ops or "–", "pending": len(node._pending)}
    data = {k: [v.value for v in vs] for k, vs in node.data.items()}
    return {"role": "replica", "data": data or "–", "pending": len(node.coordinator.pending)}


# ---------------------------------------------------------------------------
# Two-phase commit and the saga (DDIA ch. 9; Garcia-Molina and Salem 1987)
# ---------------------------------------------------------------------------
SERVICES = ("inventory", "payment", "shipping")
ORDER = Order("order-1")
_INITIAL = {"inventory": {"book": 5}, "payment": {"alice": 100}, "shipping": {"labels": 0}}


def _services() -> dict[str, Callable[[str], Node]]:
    return {
        name: (lambda nid, name=name: SERVICE_CLASSES[name](nid, initial=dict(_INITIAL[name])))
        for name in SERVICES
    }


def _decisions(node_id: str, node: Any) -> list[tuple]:
    """What a coordinator decided, remembered for "at most one decision": ``("decision", id, outcome)``."""
    if isinstance(node, TwoPhaseCoordinator):
        out = []
        for rec in node.txns.values():
            if rec.phase is TxnPhase.COMMITTING:
                out.append(("decision", rec.txn_id, "commit"))
            elif rec.phase is TxnPhase.ABORTING:
                out.append(("decision", rec.txn_id, "abort"))
        return out
    if isinstance(node, LoggedOrchestrator):
        return [("decision", sid, st.phase.value) for sid, st in node.sagas.items() if st.finished]
    return []


def _service_columns(node: Any) -> dict[str, Any]:
    if isinstance(node, TwoPhaseCoordinator):
        return {"role": "coordinator", "state": {t: r.phase.value for t, r in node.txns.items()} or "–"}
    if isinstance(node, LoggedOrchestrator):
        return {
            "role": "orchestrator",
            "state": {sid: f"{st.phase.value} step {st.step}" for sid, st in node.sagas.items()} or "–",
        }
    entries = {k: e.status.value for k, e in sorted(node.entries.items())}
    return {"role": "service", "state": entries or "–", "locks": sorted(node.locks) or "–"}


class VolatileDecision(TwoPhaseCoordinator):
    """A broken coordinator: it keeps its decision in memory only, so a crash forgets it.

    The rule it breaks (DDIA ch. 9, "A system of promises"): the coordinator
    must write its decision to its log on disk *before* it sends it to anyone
    (the commit point). Recovering without it, the presumed-abort rule aborts
    a transaction some participants were already told to commit.
    """

    def _save(self, ctx: Context, rec: TxnRecord) -> None:
        self.txns[rec.txn_id] = rec
        if rec.phase is TxnPhase.PREPARING:
            ctx.persist(("txn", rec.txn_id), rec)
        ctx.note("coordinator", txn=rec.txn_id, phase=rec.phase.value)


def two_phase_commit(*, coordinator: type[TwoPhaseCoordinator] = TwoPhaseCoordinator) -> Model:
    """Order ``order-1`` placed by two-phase commit across inventory, payment and shipping.

    ``coordinator``: :class:`~labkit.saga.twopc.TwoPhaseCoordinator` (correct) or
    :class:`VolatileDecision` (decides without logging). The order is an input
    of the coordinator.
    """
    if not (isinstance(coordinator, type) and issubclass(coordinator, TwoPhaseCoordinator)):
        raise valid.ArgumentTypeError(
            f"coordinator must be a TwoPhaseCoordinator class, got {valid.shown(coordinator)}"
        )
    nodes = {"coordinator": lambda nid: coordinator(nid, SERVICES), **_services()}
    return Model(
        nodes,
        inputs=[Input("place order-1", lambda node, ctx: node.submit(ctx, ORDER), ("coordinator",))],
        constant=("node_id", "participants", "vote_timeout", "resend_every", "crash", "faults"),
        remember=_decisions,
        describe=_service_columns,
        name="two-phase commit"
        if coordinator is TwoPhaseCoordinator
        else f"two-phase commit ({coordinator.__name__})",
    )


class LoggedOrchestrator(Node):
    """The saga orchestrator's rules with its log in the node's durable storage.

    :class:`labkit.saga.orchestrator.Orchestrator` keeps its log in SQLite,
    which a model checker cannot copy; this shell runs the very same pure
    core (:class:`~labkit.saga.orchestrator.SagaState` and the ``decide_*``
    functions) and writes each decision's log records with ``ctx.persist``
    before it sends anything: the same write-ahead rule.
    """

    def __init__(
        self, node_id: str, definition: SagaDefinition = ORDER_SAGA, policy: RetryPolicy = SAGA_RETRY
    ) -> None:
        super().__init__(node_id)
        self.definition = valid.instance("definition", definition, SagaDefinition)
        self.policy = valid.instance("policy", policy, RetryPolicy)
        self.sagas: dict[str, SagaState] = {}
        # saga id -> (the order's fields, its log records): what storage holds, kept at hand.
        self.logs: dict[str, tuple[tuple, tuple[LogRecord, ...]]] = {}

    def on_start(self, ctx: Context) -> None:
        """Recovery: replay each saga's log and resend what it was waiting for."""
        for key, (payload, records) in sorted(ctx.storage.items()):
            saga_id = key[1]
            self.logs[saga_id] = (payload, records)
            state = self.sagas[saga_id] = SagaState.replay(
                saga_id, self.definition, Order(**dict(payload)), list(records)
            )
            if not state.finished:
                self._execute(ctx, state, decide_recovery(state, ctx.now, self.policy))

    def submit(self, ctx: Context, order: Order) -> str:
        """Start the saga for ``order``; its id is the order id."""
        valid.instance("order", order, Order)
        state = self.sagas[order.order_id] = SagaState.new(order.order_id, self.definition, order)
        self.logs[order.order_id] = (tuple(asdict(order).items()), ())
        self._execute(ctx, state, decide_start(state, ctx.now, self.policy))
        return order.order_id

    def _execute(self, ctx: Context, state: SagaState, d: Decision) -> None:
        """Carry out a decision: log its records, then send, then set the timer (write-ahead)."""
        check_state(state)
        if d.records:
            payload, records = self.logs[state.saga_id]
            self.logs[state.saga_id] = (payload, (*records, *d.records))
            ctx.persist(("saga", state.saga_id), self.logs[state.saga_id])
        for dst, request in d.sends:
            ctx.send(dst, request)
        if d.cancel_timer:
            ctx.cancel_timer(state.saga_id)
        elif d.timer is not None:
            ctx.set_timer(state.saga_id, d.timer)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        state = self.sagas.get(getattr(msg, "saga_id", None))  # type: ignore[arg-type]
        if isinstance(msg, Reply) and state is not None and not state.finished:
            self._execute(ctx, state, decide_reply(state, msg, ctx.now, self.policy))

    def on_timer(self, ctx: Context, name: str) -> None:
        state = self.sagas.get(name)
        if state is not None and not state.finished:
            self._execute(ctx, state, decide_timer(state, ctx.now, self.policy))


def saga() -> Model:
    """Order ``order-1`` placed by the saga orchestrator across inventory, payment and shipping."""
    nodes = {"orchestrator": LoggedOrchestrator, **_services()}
    return Model(
        nodes,
        inputs=[Input("place order-1", lambda node, ctx: node.submit(ctx, ORDER), ("orchestrator",))],
        constant=("node_id", "definition", "policy", "faults"),
        remember=_decisions,
        describe=_service_columns,
        name="saga",
    )


# ---------------------------------------------------------------------------
# Last-writer-wins under clock skew (DDIA ch. 8, "Timestamps for ordering events")
# ---------------------------------------------------------------------------
def lww_register(
    stamping: Stamping = Stamping.PHYSICAL,
    *,
    skew: float = 5.0,
    writes: Sequence[tuple[str, str]] = (("A", "x"), ("B", "y")),
) -> Model:
    """Two replicas ``A`` and ``B`` of labkit's LWW register; ``A``'s clock runs ``skew`` seconds ahead.

    ``writes``: ``(replica, value)`` client writes, each an input. With
    ``Stamping.PHYSICAL`` the later write can lose to an earlier one stamped
    by the fast clock; ``Stamping.HLC`` (or ``LAMPORT``) orders causally later
    writes after earlier ones whatever the skew.
    """
    valid.instance("stamping", stamping, Stamping)
    valid.number("skew", skew, unit="seconds")
    valid.collection("writes", writes, "a list of (replica, value) pairs", Sequence)
    inputs = []
    for i, item in enumerate(writes):
        if not (isinstance(item, tuple) and len(item) == 2):
            raise valid.ArgumentTypeError(
                f"writes[{i}] must be a (replica, value) pair, got {valid.shown(item)}"
            )
        where, value = item
        valid.one_of(f"writes[{i}] replica", where, ("A", "B"))
        valid.string(f"writes[{i}] value", value)
        inputs.append(
            Input(f"write {value}", (lambda node, ctx, value=value: node.write(ctx, value)), (where,))
        )
    return Model(
        {"A": lambda nid: LWWReplica(nid, stamping), "B": lambda nid: LWWReplica(nid, stamping)},
        inputs=inputs,
        constant=("node_id", "stamping", "max_offset"),
        clock_offsets={"A": skew},
        describe=_lww_columns,
        name=f"LWW register ({stamping.value} clocks, A {skew:+g} s)",
    )


def _lww_columns(node: Any) -> dict[str, Any]:
    return {
        "holds": ", ".join(map(str, node.versions)) or "–",
        "seen": len(node._seen),
        "hlc": str(node.stamps.hlc),
    }
