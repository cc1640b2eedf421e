"""Clients of the replicated store, and the history they record.

A client is a simulated node too, so a partition cuts clients off exactly
as it cuts off servers: a client on one side can reach only the
coordinators on its side. Each client has at most one request in flight and
records every operation with the time it was called and the time it
returned, its input and its output: a *history* in the sense of Herlihy and
Wing (1990), which a linearizability checker can judge.

An operation whose reply never comes (the coordinator crashed, or the
client's timeout passed) has ``ret = inf``: it may or may not have taken
effect. As Jepsen does, the client then continues under a new process name
(``A``, ``A/1``, ``A/2`` ...) so each process in the history still runs one
operation at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.clocks import VectorClock
from labkit.replication.messages import ClientGet, ClientPut, ClientReply
from labkit.replication.versions import Dot, Siblings, Versioned, context_of
from labkit.sim import Context, Node


class OpKind(Enum):
    READ = "read"
    WRITE = "write"


@dataclass(frozen=True, slots=True)
class ClientOp:
    """Everything a client saw of one operation.

    ``ok`` is True (answered), False (refused: no quorum) or None (no answer
    before the client's timeout; then ``ret`` is ``inf``). ``versions`` is,
    for a read, the siblings; for a write, the version written followed by
    the coordinator's earlier versions it sent along. ``context`` is what a
    write carried (None for a read).

    Not a :class:`~labkit.history.HistoryEntry`: that records only what a
    linearizability checker reads (input, output, call and return), while
    this keeps what the Dynamo-style experiments count: the siblings a read
    saw, the context a write carried, whether a quorum was met and how many
    replicas answered, and a refusal as distinct from silence.
    :func:`~labkit.replication.experiments.to_history` turns these into
    history entries for the checker.
    """

    client: str
    coordinator: str
    kind: OpKind
    key: str
    value: Any  # written value; None for reads
    call: float
    ret: float
    ok: bool | None
    versions: Siblings  # read: the siblings; write: the version written, then the ones sent along
    quorum_met: bool
    answered: int
    context: VectorClock | None = None  # a write's context; None for a read

    @property
    def values(self) -> tuple:
        """The values read (sorted by repr for stable output), or the value written."""
        if self.kind is OpKind.WRITE:
            return (self.versions[0].value,) if self.versions else ()
        return tuple(sorted((v.value for v in self.versions), key=repr))

    @property
    def version(self) -> Versioned | None:
        """The written version (writes that succeeded only)."""
        if self.kind is OpKind.WRITE and self.versions:
            return self.versions[0]
        return None

    @property
    def dot(self) -> Dot | None:
        """The written version's dot (writes that succeeded only)."""
        return None if self.version is None else self.version.dot


@dataclass(frozen=True, slots=True)
class Workload:
    """A closed loop: think, then read or write ``key``, wait, repeat.

    ``read_fraction`` of operations are reads (chosen with the client's
    seeded generator). Writes carry as context the context of the last
    answer for the key, so a client's own writes supersede what it last saw.
    """

    key: str = "x"
    read_fraction: float = 0.5
    think: float = 0.05
    start: float = 0.0
    stop: float = math.inf
    r: int = 1
    w: int = 1

    def __post_init__(self) -> None:
        valid.string("key", self.key, empty=True)
        valid.integer("r", self.r, ge=1)
        valid.integer("w", self.w, ge=1)
        valid.probability("read_fraction", self.read_fraction)
        valid.number("think", self.think, ge=0, unit="seconds")
        valid.number("start", self.start, ge=0, unit="seconds")
        valid.number("stop", self.stop, ge=0, unit="seconds", finite=False)


class ClientNode(Node):
    """A client talking to one coordinator at a time.

    Drive it by hand with :meth:`submit` (through ``Simulator.call``), or
    give it a :class:`Workload` to run a closed loop on its own.
    """

    def __init__(
        self, node_id: str, coordinator: str, workload: Workload | None = None, timeout: float = 1.0
    ) -> None:
        super().__init__(node_id)
        valid.instance("workload", workload, Workload, none=True)
        self.coordinator = valid.string("coordinator", coordinator)
        self.workload = workload
        self.timeout = valid.number("timeout", timeout, gt=0, unit="seconds")
        self.ops: list[ClientOp] = []
        self.context: dict[str, VectorClock] = {}
        self.process = node_id
        self._crashes = 0
        self._next_op = 0
        self._written = 0
        # op_id -> the operation as recorded if no answer comes (ret = inf, ok = None)
        self._pending: dict[int, ClientOp] = {}

    def on_start(self, ctx: Context) -> None:
        wl = self.workload
        if wl is not None:
            ctx.set_timer("next", max(0.0, wl.start - ctx.now) + wl.think * ctx.random.random())

    def submit(
        self,
        ctx: Context,
        kind: OpKind,
        key: str,
        value: Any = None,
        *,
        quorum: int,
        context: VectorClock | None = None,
    ) -> int:
        """Send one request to the current coordinator; returns its op id."""
        valid.instance("kind", kind, OpKind)
        self._next_op += 1
        op_id = self._next_op
        if kind is OpKind.READ:
            msg: Any = ClientGet(op_id, key, quorum)
        else:
            context = self.context.get(key, VectorClock()) if context is None else context
            msg = ClientPut(op_id, key, value, context, quorum)
        self._pending[op_id] = ClientOp(
            self.process, self.coordinator, kind, key, value, ctx.now, math.inf, None, (), False, 0, context
        )
        ctx.send(self.coordinator, msg)
        ctx.set_timer(f"timeout/{op_id}", self.timeout)
        return op_id

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if not isinstance(msg, ClientReply) or msg.op_id not in self._pending:
            return  # a duplicate, or the answer to an operation already given up on
        op = self._pending.pop(msg.op_id)
        ctx.cancel_timer(f"timeout/{msg.op_id}")
        self.ops.append(replace(op, client=self.process, ret=ctx.now, ok=msg.ok, versions=msg.versions,
                                quorum_met=msg.quorum_met, answered=msg.answered))  # fmt: skip
        if msg.ok:
            self.context[op.key] = context_of(msg.versions).merge(self.context.get(op.key, VectorClock()))
        self._schedule_next(ctx)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == "next":
            self._issue(ctx)
            return
        op_id = int(name.split("/")[1])
        if op_id in self._pending:
            self.ops.append(replace(self._pending.pop(op_id), client=self.process))
            self._crashes += 1
            self.process = f"{self.node_id}/{self._crashes}"
            self._schedule_next(ctx)

    def _schedule_next(self, ctx: Context) -> None:
        wl = self.workload
        if wl is not None:
            ctx.set_timer("next", wl.think * (0.5 + ctx.random.random()))

    def _issue(self, ctx: Context) -> None:
        wl = self.workload
        if wl is None or ctx.now >= wl.stop or self._pending:
            return
        if ctx.random.random() < wl.read_fraction:
            self.submit(ctx, OpKind.READ, wl.key, quorum=wl.r)
        else:
            self._written += 1
            self.submit(ctx, OpKind.WRITE, wl.key, f"{self.node_id}{self._written}", quorum=wl.w)
