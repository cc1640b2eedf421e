"""Coordinating one read or one write (Dynamo, SOSP 2007, §4.5-§4.6; DDIA ch. 5).

Any node can coordinate a request for any key. It sends the request to the
key's N home replicas and answers the client when enough of them did:

* a write waits for W acknowledgements, a read for R replies; a read
  returns the reconciled sibling set of the replies and sends the newer
  versions to every home replica that answered with stale ones
  (*read repair*);
* **consistency-first** (strict quorum): only home replicas count. If R (or
  W) of them have not answered by ``request_timeout``, the request fails.
  With R + W > N every read quorum overlaps every write quorum, which is
  why a read sees the latest completed write;
* **availability-first** (sloppy quorum, Dynamo §4.6): "all read and write
  operations are performed on the first N healthy nodes from the preference
  list". When a home replica has not answered after ``hint_after``, the
  coordinator asks the next node further down the key's preference list
  instead (and the one after that, if the stand-in is silent too). A
  stand-in stores a write as a *hint* naming the home replica and hands it
  back once it can reach it (:mod:`labkit.replication.replica`). A write
  still needs W acknowledgements and a read R replies, but stand-ins count
  (DDIA ch. 5, "Sloppy Quorums and Hinted Handoff"); without them by
  ``request_timeout`` the request fails, as in a strict quorum. So a side of
  a partition with fewer than W live nodes cannot write, sloppy or not.
  Dynamo's answer for "highest availability" is W = 1 (§4.6): then a single
  node, home replica or stand-in, accepts the write. Cassandra calls a
  write that may be acknowledged by a hint alone consistency level ``ANY``.

**Write-back reads** (``write_back_reads``, consistency-first only): R + W > N
makes a read see every write that *completed* before it began, but not a
write still in flight: one reader may get the new value from the one replica
that has it, and a later reader the old value from two that do not (DDIA
ch. 9, "Linearizability and quorums"). Attiya, Bar-Noy and Dolev (1995)
close that gap with a second phase: before it answers, the read writes what
it is about to return back to enough home replicas (``N - R + 1``, so every
later read quorum of R meets one of them) and waits for their
acknowledgements. Every later reader then sees at least that value. ABD's
register has one writer; with several, each writer also first reads the
highest timestamp from a quorum (Lynch and Shvartsman 1997); with
last-writer-wins and the simulator's synchronised clocks a write that starts
after another has finished already gets the larger timestamp.

Versions are stamped with dotted version vectors (:mod:`labkit.replication.versions`):
the new version gets a fresh dot ``(this node, counter)`` and keeps the
client's context as it is. The coordinator also remembers, per key, the
versions it stamped that no later context has covered, and sends them along
with every new write (and back to the client): a replica that missed
``n1:4`` but stores ``n1:5`` learns ``n1:4`` with it, so a reader's context
``[n1:5]`` never claims a write the reader has not seen.

:class:`Coordinator` is plain bookkeeping; the node it belongs to calls it
from its handlers and it asks for effects through the node's context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from labkit.clocks import VectorClock
from labkit.replication.config import StoreConfig
from labkit.replication.messages import (
    ClientGet,
    ClientPut,
    ClientReply,
    ReadRepair,
    ReadReply,
    ReplicaRead,
    ReplicaWrite,
    RequestId,
    WriteAck,
)
from labkit.replication.modes import Mode, Resolution
from labkit.replication.versions import Dot, Siblings, Versioned, merge_siblings, reconcile, same_versions
from labkit.sim import Context


@dataclass(slots=True)
class PendingRequest:
    """A read or write this coordinator is working on."""

    req: RequestId
    client: str
    op_id: int
    key: str
    need: int  # R or W
    home: tuple[str, ...]
    versions: Siblings | None = None  # a write: the new version first, then earlier ones; None for a read
    answered_home: set[str] = field(default_factory=set)
    answered_all: set[str] = field(default_factory=set)
    stand_in: dict[str, str] = field(default_factory=dict)  # home replica -> its current stand-in
    used: set[str] = field(default_factory=set)  # stand-ins already asked
    replies: dict[str, Siblings] = field(default_factory=dict)  # reads only
    merged: Siblings = ()
    replied: bool = False
    returning: Siblings | None = None  # a write-back read: what it will return, once written back
    confirmed: set[str] = field(default_factory=set)  # home replicas known to hold ``returning``

    @property
    def is_read(self) -> bool:
        return self.versions is None


class Coordinator:
    """The request bookkeeping of one node."""

    __slots__ = ("node_id", "config", "boot", "seq", "pending", "counter", "stamped")
    _timer_handlers: dict[str, Callable[[Coordinator, Context, PendingRequest], None]]

    def __init__(self, node_id: str, config: StoreConfig) -> None:
        self.node_id = node_id
        self.config = config
        self.boot = 0
        self.seq = 0
        self.counter = 0  # the counter of the last dot this node handed out (durable)
        # key -> the versions this node stamped that no later context has covered (durable)
        self.stamped: dict[str, Siblings] = {}
        self.pending: dict[RequestId, PendingRequest] = {}

    # -- starting requests ----------------------------------------------
    def _well_formed(self, ctx: Context, client: str, op_id: int, need: int, context_ok: bool = True) -> bool:
        """Whether a request names a quorum in 1..N (and, for a write, ``context_ok``).

        A malformed request from the network is refused, not raised: the node must survive whatever arrives.
        """
        ok = context_ok and type(need) is int and 1 <= need <= self.config.n
        if not ok:
            ctx.send(client, ClientReply(op_id, False, (), False, 0))
        return ok

    def _open(
        self, ctx: Context, client: str, op_id: int, key: str, need: int, versions: Siblings | None
    ) -> PendingRequest:
        self.seq += 1
        req = (self.boot, self.seq)
        p = PendingRequest(req, client, op_id, key, need, self.config.home(key), versions)
        self.pending[req] = p
        ctx.set_timer(f"deadline/{req[0]}/{req[1]}", self.config.request_timeout)
        if self.config.mode is Mode.AVAILABILITY_FIRST:
            ctx.set_timer(f"hint/{req[0]}/{req[1]}", self.config.hint_after)
        return p

    def start_put(self, ctx: Context, client: str, msg: ClientPut) -> None:
        if not self._well_formed(ctx, client, msg.op_id, msg.w, isinstance(msg.context, VectorClock)):
            return
        # A fresh dot names the write; the client's context, unchanged, says
        # what it supersedes: exactly the versions the client had seen.
        self.counter += 1
        ctx.persist(("counter",), self.counter)
        version = Versioned(msg.value, Dot(self.node_id, self.counter), msg.context, ctx.clock())
        versions = (version, *self._remember(ctx, msg.key, version))
        p = self._open(ctx, client, msg.op_id, msg.key, msg.w, versions)
        for h in p.home:
            ctx.send(h, ReplicaWrite(p.req, p.key, versions))

    def _remember(self, ctx: Context, key: str, version: Versioned) -> Siblings:
        """Record ``version`` as stamped here; return the earlier stamped versions it did not supersede.

        Sending those along keeps every replica's knowledge of this node's
        writes gap-free: whoever stores ``n1:5`` also knows ``n1:4`` (or a
        version that superseded it). Last-writer-wins needs no such care.
        """
        if self.config.resolution is not Resolution.VECTOR_CLOCKS:
            return ()
        mine = reconcile(self.stamped.get(key, ()), version)
        self.stamped[key] = mine
        ctx.persist(("stamped", key), mine)
        return tuple(v for v in mine if v is not version)

    def start_get(self, ctx: Context, client: str, msg: ClientGet) -> None:
        if not self._well_formed(ctx, client, msg.op_id, msg.r):
            return
        p = self._open(ctx, client, msg.op_id, msg.key, msg.r, None)
        for h in p.home:
            ctx.send(h, ReplicaRead(p.req, p.key))

    # -- answers from replicas --------------------------------------------
    def _count(self, p: PendingRequest) -> int:
        strict = self.config.mode is Mode.CONSISTENCY_FIRST
        return len(p.answered_home if strict else p.answered_all)

    def _record(self, p: PendingRequest, src: str) -> None:
        p.answered_all.add(src)
        if src in p.home:
            p.answered_home.add(src)

    def on_write_ack(self, ctx: Context, src: str, msg: WriteAck) -> None:
        p = self.pending.get(msg.req)
        if p is not None and p.is_read and p.returning is not None and not p.replied and src in p.home:
            self._confirm(ctx, p, src)  # a write-back read's second phase
            return
        if p is None or p.is_read:
            return  # late ack of a request already answered
        self._record(p, src)
        if self._count(p) >= p.need:
            self._finish(ctx, p, ok=True)

    def on_read_reply(self, ctx: Context, src: str, msg: ReadReply) -> None:
        p = self.pending.get(msg.req)
        if p is None or not p.is_read:
            return
        self._record(p, src)
        p.replies[src] = msg.versions
        p.merged = merge_siblings(p.merged, msg.versions, self.config.resolution)
        if p.replied:
            self._repair(ctx, p)  # a late reply: repair it (or the others, if it was newer)
        elif p.returning is not None:
            if src in p.home and same_versions(msg.versions, p.returning):
                self._confirm(ctx, p, src)  # a late replier that already holds the value
        elif self._count(p) >= p.need:
            if self.config.write_back_reads:
                self._write_back(ctx, p)
            else:
                self._answer(ctx, p, ok=True)
                self._repair(ctx, p)  # stays pending until the deadline to repair late repliers

    # -- write-back reads (Attiya, Bar-Noy and Dolev 1995) ------------------------
    def _write_back(self, ctx: Context, p: PendingRequest) -> None:
        """Phase two of a read: make ``N - R + 1`` home replicas hold what it returns."""
        p.returning = p.merged
        for node in p.home:
            if same_versions(p.replies.get(node, ()), p.returning):
                p.confirmed.add(node)
            else:
                ctx.send(node, ReplicaWrite(p.req, p.key, p.returning))
                if node in p.replies:
                    p.replies[node] = p.returning  # the write-back repairs it: no read repair needed
        self._confirm(ctx, p, None)

    def _confirm(self, ctx: Context, p: PendingRequest, node: str | None) -> None:
        if node is not None:
            p.confirmed.add(node)
        if len(p.confirmed) >= self.config.n - p.need + 1:
            self._answer(ctx, p, ok=True)
            self._repair(ctx, p)  # replies that came in meanwhile, newer or staler

    def _repair(self, ctx: Context, p: PendingRequest) -> None:
        for node, versions in p.replies.items():
            if node in p.home and not same_versions(versions, p.merged):
                ctx.send(node, ReadRepair(p.key, p.merged))
                p.replies[node] = p.merged

    # -- timers -------------------------------------------------------------
    def on_timer(self, ctx: Context, kind: str, req: RequestId) -> None:
        """A request's timer fired: ``kind`` is "deadline" or "hint"."""
        p = self.pending.get(req)
        handler = self._timer_handlers.get(kind)
        if p is not None and handler is not None:
            handler(self, ctx, p)

    def _on_deadline(self, ctx: Context, p: PendingRequest) -> None:
        if not p.replied:
            # Fewer than R (or W) replicas answered in time, counting
            # stand-ins in a sloppy quorum: the request fails in both modes.
            self._answer(ctx, p, ok=False)
        if p.is_read and p.replies:
            self._repair(ctx, p)  # even a read that fell short of R has seen which replicas are behind
        self.pending.pop(p.req, None)

    def _on_hint(self, ctx: Context, p: PendingRequest) -> None:
        if not p.replied:
            self._ask_stand_ins(ctx, p)

    def _ask_stand_ins(self, ctx: Context, p: PendingRequest) -> None:
        """Sloppy quorum (Dynamo §4.6): replace each silent home replica by the
        next node further down the key's preference list that was not asked yet."""
        free = [x for x in self.config.preference_list(p.key)[self.config.n :] if x not in p.used]
        asked = False
        for h in p.home:
            if h in p.answered_home or p.stand_in.get(h) in p.answered_all:
                continue
            if not free:
                break
            s = free.pop(0)
            p.used.add(s)
            p.stand_in[h] = s
            asked = True
            if p.is_read:
                ctx.send(s, ReplicaRead(p.req, p.key))
            else:
                ctx.send(s, ReplicaWrite(p.req, p.key, p.versions, hint_for=h))
        if asked and free:
            ctx.set_timer(f"hint/{p.req[0]}/{p.req[1]}", self.config.hint_after)

    # -- answering ------------------------------------------------------------
    def _answer(self, ctx: Context, p: PendingRequest, *, ok: bool) -> None:
        p.replied = True
        # A write answers with everything it sent, so the context the
        # client builds from the answer covers only versions it was shown.
        if not ok:
            versions: Siblings = ()
        elif p.is_read:
            versions = p.merged if p.returning is None else p.returning
        else:
            versions = p.versions  # type: ignore[assignment]
        met = len(p.answered_home) >= p.need  # a strict quorum of home replicas, stand-ins aside
        ctx.send(p.client, ClientReply(p.op_id, ok, versions, met, len(p.answered_all)))

    def _finish(self, ctx: Context, p: PendingRequest, *, ok: bool) -> None:
        self._answer(ctx, p, ok=ok)
        self.pending.pop(p.req, None)
        ctx.cancel_timer(f"deadline/{p.req[0]}/{p.req[1]}")
        ctx.cancel_timer(f"hint/{p.req[0]}/{p.req[1]}")


# Timer name prefix -> handler.
Coordinator._timer_handlers = {"deadline": Coordinator._on_deadline, "hint": Coordinator._on_hint}
