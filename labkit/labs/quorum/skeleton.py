"""The quorum lab's skeleton: a Dynamo storage node without its coordinator's rules.

Dynamo (DeCandia et al., SOSP 2007) lets any node coordinate a read or a
write of any key: it asks the key's N home replicas (the first N nodes of
the key's preference list, §4.3) and answers the client once R of them
replied (a read) or W acknowledged (a write), §4.5. When home replicas are
unreachable, a *sloppy quorum* asks the next nodes of the preference list
instead, which keep the write as a *hint* and hand it home later (§4.6).
Concurrent writes are kept side by side as *siblings* (§4.4), and a read
that finds a replica behind brings it up to date (*read repair*, §5).

:class:`QuorumServer` gives the learner everything but those rules:

* the **replica** (given, like the disk of a real node): it stores what a
  :class:`~labkit.replication.messages.ReplicaWrite` carries (as its own data
  if it is a home replica of the key, as a hint if the write names another
  home replica, ``hint_for``), answers
  :class:`~labkit.replication.messages.ReplicaRead` with what it holds (hints
  included), applies ``ReadRepair`` and stores a ``Handoff``, answering it
  with a ``HandoffAck``; all of it durable (:attr:`data`, :attr:`hints`);
* the **coordinator's mechanics**: :meth:`stamp` names a new version (a dot,
  and the client's context; :mod:`labkit.replication.versions`),
  :meth:`open_request` keeps a :class:`Pending` request with its timers,
  :meth:`answer` replies to the client, and the timers fire by themselves:
  at ``request_timeout`` the request closes (a client not yet answered is
  told it failed; a read then gets its read repair), and in a sloppy quorum
  every ``hint_after`` while nobody has answered the client, stand-ins are
  asked (your ``ask_stand_ins``); every ``handoff_interval`` a stand-in
  tries to hand its hints home (your ``hand_off``);
* the rules (:data:`RULES`) raise ``NotImplementedError`` until written; the
  node runs anyway and a rule not written does nothing (see
  :mod:`labkit.labs.rules`). ``newest`` and ``quorum_reached`` must return
  what :data:`RETURNS` says (a tuple of versions; True or False): anything
  else stops the node with an error naming the rule.

Durable storage (``ctx.storage``, survives a crash): ``("data", key)``,
``("hint", home, key)`` (None once handed off), ``("stamped", key)``,
``("counter",)`` and ``("boot",)``. Pending requests are volatile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from labkit import validation as valid
from labkit.clocks import VectorClock
from labkit.labs.rules import RuleBook, rules_by_part, with_stubs
from labkit.replication.config import StoreConfig
from labkit.replication.messages import (
    ClientGet,
    ClientPut,
    ClientReply,
    Handoff,
    HandoffAck,
    ReadRepair,
    ReadReply,
    ReplicaRead,
    ReplicaWrite,
    RequestId,
    WriteAck,
)
from labkit.replication.modes import Mode
from labkit.replication.versions import Dot, Siblings, Versioned, merge_siblings, same_versions
from labkit.sim import Context, Node

__all__ = ["QuorumServer", "Pending", "RULES", "RETURNS", "DEADLINE", "STAND_INS", "HANDOFF"]

DEADLINE = "deadline"  # timer: a request closes (request_timeout after it opened)
STAND_INS = "stand-ins"  # timer: ask stand-ins for silent home replicas (sloppy quorums only)
HANDOFF = "handoff"  # timer: hand hints home (every handoff_interval)

# Every rule a learner writes, part by part of the lab, and what it is in the Dynamo paper.
RULES = rules_by_part(
    quorums={
        "coordinate_put": "§4.5: a write goes to the key's N home replicas",
        "coordinate_get": "§4.5: a read asks the key's N home replicas",
        "quorum_reached": "§4.5, §4.6: R replies or W acknowledgements, and who counts",
        "handle_write_ack": "§4.5: answer the client after W acknowledgements",
        "handle_read_reply": "§4.5: answer after R replies, with the newest versions",
        "newest": "§4.4: keep every version no other version has seen (siblings)",
    },
    repair={
        "read_repair": "§5: send the newest versions to replicas that answered with stale ones",
    },
    sloppy={
        "ask_stand_ins": "§4.6: ask the next nodes of the preference list for silent home replicas",
        "hand_off": "§4.6: a stand-in sends its hints to their home replica",
        "handle_handoff_ack": "§4.6: forget a hint once its home replica has stored it",
    },
)


def _versions(result: Any) -> bool:
    return isinstance(result, tuple) and all(isinstance(v, Versioned) for v in result)


# What a rule must return, since your other rules use it: (a test of the result, what is allowed).
RETURNS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "quorum_reached": (lambda result: isinstance(result, bool), "True or False"),
    "newest": (_versions, "a tuple of Versioned, the versions to keep (tuple(kept) makes one of a list)"),
}


@dataclass(slots=True, eq=False)
class Pending:
    """A read or a write this node coordinates, from :meth:`QuorumServer.open_request` until it closes.

    ``need`` is R (a read) or W (a write); ``home`` the key's N home
    replicas; ``versions`` what a write writes (None for a read). Yours to
    keep up to date: ``answered`` (every node, home replica or stand-in, that
    acknowledged or replied), ``replies`` (a read: what each node answered),
    ``merged`` (a read: the newest versions seen so far), ``stand_ins`` (home
    replica -> the stand-in asked in its place) and ``asked`` (every node
    asked, the home replicas to start with). ``replied`` turns True when
    :meth:`QuorumServer.answer` has answered the client.
    """

    req: RequestId
    client: str
    op_id: int
    key: str
    need: int
    home: tuple[str, ...]
    versions: Siblings | None = None
    answered: set[str] = field(default_factory=set)
    replies: dict[str, Siblings] = field(default_factory=dict)
    merged: Siblings = ()
    stand_ins: dict[str, str] = field(default_factory=dict)
    asked: set[str] = field(default_factory=set)
    replied: bool = False

    @property
    def is_read(self) -> bool:
        return self.versions is None

    def __repr__(self) -> str:
        kind = "read" if self.is_read else "write"
        return (
            f"Pending({kind} {self.key!r} for {self.client}, need {self.need} of {', '.join(self.home)}, "
            f"answered {sorted(self.answered)}{', replied' if self.replied else ''})"
        )


def _timer(kind: str, req: RequestId) -> str:
    return f"{kind}/{req[0]}/{req[1]}"


class QuorumServer(RuleBook, Node):
    """A Dynamo storage node without its coordinator's rules; subclass it and add them with :meth:`rule`.

    Built by the lab as ``MyStore(node_id, config)``, ``config`` a
    :class:`~labkit.replication.StoreConfig` (nodes, N, mode, timeouts).
    """

    RULES: ClassVar[dict[str, tuple[str, str]]] = RULES
    RETURNS: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = RETURNS

    def __init__(self, node_id: str, config: StoreConfig) -> None:
        super().__init__(node_id)
        valid.instance("config", config, StoreConfig)
        if node_id not in config.nodes:
            raise ValueError(f"node_id {node_id!r} is not one of the store's nodes {config.nodes!r}")
        self.config = config
        # The replica's durable state (restored by on_start).
        self.data: dict[str, Siblings] = {}  # key -> versions, for keys this node is a home replica of
        self.hints: dict[tuple[str, str], Siblings] = {}  # (home replica, key) -> versions kept for it
        # The coordinator's state: durable (counter, stamped) and volatile (pending).
        self.counter = 0  # the counter of the last dot this node handed out
        self.stamped: dict[str, Siblings] = {}  # key -> versions stamped here that no context covered yet
        self.boot = 0
        self.seq = 0
        self.pending: dict[RequestId, Pending] = {}
        self._replica: dict[type, Callable[[Context, str, Any], None]] = {
            ReplicaWrite: self._on_write,
            ReplicaRead: self._on_read,
            ReadRepair: self._on_repair,
            Handoff: self._on_handoff,
        }
        self._rules: dict[type, str] = {
            ClientPut: "coordinate_put",
            ClientGet: "coordinate_get",
            WriteAck: "handle_write_ack",
            ReadReply: "handle_read_reply",
            HandoffAck: "handle_handoff_ack",
        }

    # ------------------------------------------------------------------
    # Given: what the simulator calls
    # ------------------------------------------------------------------
    def on_start(self, ctx: Context) -> None:
        """Boot or reboot: read the durable state back, start handing hints off."""
        for skey, value in ctx.storage.items():
            if skey[0] == "data":
                self.data[skey[1]] = value
            elif skey[0] == "hint" and value:
                self.hints[(skey[1], skey[2])] = value
            elif skey[0] == "stamped":
                self.stamped[skey[1]] = value
        self.counter = ctx.storage.get(("counter",), 0)
        self.boot = ctx.storage.get(("boot",), 0) + 1
        ctx.persist(("boot",), self.boot)
        ctx.set_timer(HANDOFF, self.config.handoff_interval)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        replica = self._replica.get(type(msg))
        if replica is not None:
            replica(ctx, src, msg)
            return
        rule = self._rules.get(type(msg))
        if rule is None:
            return  # not for this protocol
        if isinstance(msg, (ClientPut, ClientGet)) and not self._well_formed(ctx, src, msg):
            return
        self.follow(ctx, rule, ctx, src, msg)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == HANDOFF:
            self.follow(ctx, "hand_off", ctx)
            ctx.set_timer(HANDOFF, self.config.handoff_interval)
            return
        kind, boot, seq = name.split("/")
        p = self.pending.get((int(boot), int(seq)))
        if p is None:
            return
        if kind == DEADLINE:
            self._close(ctx, p)
        elif kind == STAND_INS and not p.replied:
            self.follow(ctx, "ask_stand_ins", ctx, p)
            ctx.set_timer(_timer(STAND_INS, p.req), self.config.hint_after)

    def _well_formed(self, ctx: Context, client: str, msg: ClientPut | ClientGet) -> bool:
        """Refuse a malformed request (a quorum outside 1..N, a context that is not a vector clock)."""
        need = msg.w if isinstance(msg, ClientPut) else msg.r
        ok = not isinstance(need, bool) and isinstance(need, int) and 1 <= need <= self.config.n
        if isinstance(msg, ClientPut) and not isinstance(msg.context, VectorClock):
            ok = False
        if not ok:
            ctx.send(client, ClientReply(msg.op_id, False, (), False, 0))
        return ok

    def _close(self, ctx: Context, p: Pending) -> None:
        """The request's time is up: a client not answered yet hears it failed; a read gets its repair."""
        if not p.replied:
            self.answer(ctx, p, ok=False)
        if p.is_read:
            self.follow(ctx, "read_repair", ctx, p)
        self.pending.pop(p.req, None)

    # ------------------------------------------------------------------
    # Given: the coordinator's mechanics
    # ------------------------------------------------------------------
    def home(self, key: str) -> tuple[str, ...]:
        """The key's N home replicas: the first N nodes of its preference list."""
        return self.config.home(key)

    def stamp(self, ctx: Context, m: ClientPut) -> Siblings:
        """Name the new version of a write: the versions to send, the new one first.

        The new version gets a fresh dot ``(this node, counter)`` and keeps the
        client's context (what it had seen, so what it supersedes). The versions
        this node stamped earlier for the key that no context has covered yet
        follow it, so no replica learns ``n1:5`` without ``n1:4``
        (:mod:`labkit.replication.coordinator` explains why).
        """
        self.counter += 1
        ctx.persist(("counter",), self.counter)
        version = Versioned(m.value, Dot(self.node_id, self.counter), m.context, ctx.clock())
        mine = merge_siblings(self.stamped.get(m.key, ()), (version,))
        self.stamped[m.key] = mine
        ctx.persist(("stamped", m.key), mine)
        return (version, *(v for v in mine if v is not version))

    def open_request(
        self, ctx: Context, client: str, op_id: int, key: str, need: int, versions: Siblings | None = None
    ) -> Pending:
        """Start coordinating a read (``versions`` None) or a write of ``versions``; ``need`` is R or W.

        The request is kept in :attr:`pending` under its ``req`` (what replicas
        answer with) until ``request_timeout``; in a sloppy quorum its stand-in
        timer starts too.
        """
        self.seq += 1
        req = (self.boot, self.seq)
        home = self.home(key)
        p = Pending(req, client, op_id, key, need, home, versions, asked=set(home))
        self.pending[req] = p
        ctx.set_timer(_timer(DEADLINE, req), self.config.request_timeout)
        if self.config.mode is Mode.AVAILABILITY_FIRST:
            ctx.set_timer(_timer(STAND_INS, req), self.config.hint_after)
        return p

    def answer(self, ctx: Context, p: Pending, *, ok: bool, versions: Iterable[Versioned] = ()) -> None:
        """Answer the client of ``p`` (once): ``ok`` and, if so, the versions read or written."""
        if p.replied:
            raise ValueError(f"the client of {p!r} already has its answer: answer each request once")
        versions = tuple(versions) if ok else ()
        for i, v in enumerate(versions):
            valid.instance(f"versions[{i}]", v, Versioned)
        p.replied = True
        met = len(p.answered & set(p.home)) >= p.need  # a strict quorum of home replicas
        ctx.send(p.client, ClientReply(p.op_id, ok, versions, met, len(p.answered)))

    @staticmethod
    def same(a: Siblings, b: Siblings) -> bool:
        """True if two sets of versions hold the same versions (the same dots), in any order."""
        return same_versions(a, b)

    def forget_hint(self, ctx: Context, home: str, key: str) -> None:
        """Drop the hint kept for ``home``'s ``key``, on disk too."""
        if self.hints.pop((home, key), None) is not None:
            ctx.persist(("hint", home, key), None)
            ctx.note("handed off", home=home, key=key)

    # ------------------------------------------------------------------
    # Given: the replica
    # ------------------------------------------------------------------
    def _store(self, ctx: Context, key: str, versions: Siblings) -> None:
        current = self.data.get(key, ())
        merged = merge_siblings(current, versions)
        if not same_versions(merged, current):
            self.data[key] = merged
            ctx.persist(("data", key), merged)

    def _on_write(self, ctx: Context, src: str, msg: ReplicaWrite) -> None:
        if msg.hint_for is None:
            self._store(ctx, msg.key, msg.versions)
        else:
            hk = (msg.hint_for, msg.key)
            before = self.hints.get(hk, ())
            merged = merge_siblings(before, msg.versions)
            if not same_versions(merged, before):
                self.hints[hk] = merged
                ctx.persist(("hint", *hk), merged)
                ctx.note("hint", home=msg.hint_for, key=msg.key)
        ctx.send(src, WriteAck(msg.req, msg.key))

    def local_versions(self, key: str) -> Siblings:
        """What this node answers a read of ``key`` with: its data and its hints for the key."""
        versions = self.data.get(key, ())
        for (_, k), hinted in self.hints.items():
            if k == key:
                versions = merge_siblings(versions, hinted)
        return versions

    def _on_read(self, ctx: Context, src: str, msg: ReplicaRead) -> None:
        ctx.send(src, ReadReply(msg.req, msg.key, self.local_versions(msg.key)))

    def _on_repair(self, ctx: Context, src: str, msg: ReadRepair) -> None:
        before = self.data.get(msg.key, ())
        self._store(ctx, msg.key, msg.versions)
        if self.data.get(msg.key, ()) is not before:
            ctx.note("repaired", key=msg.key)

    def _on_handoff(self, ctx: Context, src: str, msg: Handoff) -> None:
        self._store(ctx, msg.key, msg.versions)
        ctx.send(src, HandoffAck(msg.key, msg.versions))

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.node_id!r}, keys={sorted(self.data)}, hints={len(self.hints)}, "
            f"pending={len(self.pending)})"
        )


with_stubs(QuorumServer)
