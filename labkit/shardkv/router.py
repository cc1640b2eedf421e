"""A client that routes each key to its group's leader (a "smart client", DDIA ch. 6, "Request Routing").

The router looks the key up in the :class:`Directory` (the current
:class:`~labkit.shardkv.store.ShardConfig` and the servers of each group),
sends the request to the server it believes leads that group, and follows
"not the leader" hints or, on silence, tries the group's next server, exactly
as :class:`labkit.raft.KVClient` does within one cluster (Raft §8). That rule
is :func:`follow_hint_or_next`; a router can be given another one
(``next_server=``), which is how notebook 18's exercise plugs in a learner's.
A client knows only the answers it gets: it never asks the simulator who leads.

# Invariant: an operation stays with the group it was first sent to, under the
# same sequence number, until that group answers. Only a :class:`WrongGroup`
# answer (proof that the group refused it and never applied it) lets the router
# pick a group again, under a fresh sequence number. Re-routing an operation
# whose fate is unknown could apply it in two groups.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labkit.raft import ClientReply, ClientRequest
from labkit.shardkv.store import ShardConfig, WrongGroup
from labkit.sim import Context, Node

__all__ = ["Directory", "ShardOp", "ShardRouter", "follow_hint_or_next"]

RETRY_TIMER = "retry"
WORKLOAD_TIMER = "workload"
_KINDS = ("get", "put", "append")
_ARITY = {"get": 2, "put": 3, "append": 3}


def validate_op(op: Any) -> tuple:
    """Check a key-value operation tuple; raise TypeError/ValueError naming what is wrong."""
    if not isinstance(op, tuple) or not op:
        raise TypeError(f"op must be a tuple like ('put', key, value), got {op!r}")
    if op[0] not in _ARITY:
        raise ValueError(f"op name must be one of get, put, append, got {op[0]!r}")
    if len(op) != _ARITY[op[0]]:
        raise ValueError(f"{op[0]} takes {_ARITY[op[0]] - 1} argument(s) after its name, got {op!r}")
    if not all(isinstance(x, str) for x in op[1:]):
        raise TypeError(f"key and value must be str, got {op!r}")
    return op


def follow_hint_or_next(servers: tuple[str, ...], asked: str, hint: str | None) -> str:
    """The server to ask next after ``asked`` refused or stayed silent (Raft §8).

    A follower that refuses names the leader it knows of (``hint``): ask it.
    Without a usable hint (none, not of this group, or ``asked`` itself) or
    after silence (``hint`` is None), try the group's next server in turn.
    """
    if hint is not None and hint in servers and hint != asked:
        return hint
    return servers[(servers.index(asked) + 1) % len(servers)]


NextServer = Callable[[tuple[str, ...], str, "str | None"], str]


@dataclass(slots=True)
class Directory:
    """Where keys live: the current config and each group's servers.

    A real deployment keeps this in its own small Raft group (the "shard
    controller"); here it is one shared object the controller updates once a
    move is complete.
    """

    config: ShardConfig
    servers: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class ShardOp:
    """One client operation; ``group`` is the group that answered (``""`` until then)."""

    client: str
    input: tuple
    call: float = math.nan
    ret: float = math.inf
    output: Any = None
    group: str = ""
    attempts: int = 0
    refused: int = 0  # WrongGroup answers on the way

    @property
    def done(self) -> bool:
        return self.ret != math.inf


class ShardRouter(Node):
    """A simulated client node of the sharded store; one operation at a time."""

    def __init__(
        self,
        node_id: str,
        directory: Directory,
        history: list[ShardOp],
        *,
        retry_timeout: float = 0.3,
        backoff: float = 0.02,
        next_server: NextServer = follow_hint_or_next,
    ) -> None:
        super().__init__(node_id)
        if not callable(next_server):
            raise TypeError(
                f"next_server must be a function (servers, asked, hint) -> server, got {next_server!r}"
            )
        self.next_server = next_server
        self.directory = directory
        self.history = history
        self.retry_timeout = retry_timeout
        self.backoff = backoff
        self.target: dict[str, int] = {}  # group -> index of its presumed leader
        self.seq = 0
        self.group = ""  # the group the current operation is bound to
        self.current: ShardOp | None = None
        self.queue: deque[ShardOp] = deque()
        self.ops: list[ShardOp] = []
        self._rate = 0.0
        self._until = 0.0
        self._keys: tuple[str, ...] = ()
        self._kinds: tuple[str, ...] = _KINDS
        self._owed = False
        self._made = 0

    def invoke(self, ctx: Context, op: tuple) -> ShardOp:
        """Queue ``op`` (``("put", k, v)``, ``("get", k)``, ``("append", k, v)``)."""
        entry = ShardOp(self.node_id, validate_op(op))
        self.ops.append(entry)
        self.queue.append(entry)
        if self.current is None:
            self._next(ctx)
        return entry

    def _next(self, ctx: Context) -> None:
        if not self.queue:
            return
        entry = self.queue.popleft()
        self.current = entry
        entry.call = ctx.now
        self.history.append(entry)
        self._route(ctx)

    def _route(self, ctx: Context) -> None:
        # A fresh sequence number: the previous one (if any) was refused, never applied.
        self.seq += 1
        assert self.current is not None
        self.group = self.directory.config.owner(self.current.input[1])
        self._send(ctx)

    def _send(self, ctx: Context) -> None:
        entry = self.current
        assert entry is not None
        entry.attempts += 1
        servers = self.directory.servers[self.group]
        i = self.target.get(self.group, 0) % len(servers)
        ctx.send(servers[i], ClientRequest(self.node_id, self.seq, entry.input))
        ctx.set_timer(RETRY_TIMER, self.retry_timeout)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if not isinstance(msg, ClientReply):
            raise TypeError(f"router {self.node_id} got an unexpected message {msg!r}")
        entry = self.current
        if entry is None or msg.seq != self.seq:
            return  # a late answer to an attempt we gave up waiting for
        if not self.group:
            return  # already refused; waiting to route again
        servers = self.directory.servers[self.group]
        if msg.ok and isinstance(msg.result, WrongGroup):
            # Refused, so never applied: safe to route again (after a pause for the move).
            entry.refused += 1
            self.group = ""
            ctx.set_timer(RETRY_TIMER, self.backoff)
            return
        if msg.ok:
            entry.ret = ctx.now
            entry.output = msg.result
            entry.group = self.group
            self.current = None
            ctx.cancel_timer(RETRY_TIMER)
            if self._owed and not self.queue:
                self._owed = False
                self._random_op(ctx)
            else:
                self._next(ctx)
            return
        # "Not the leader": ask the hinted server at once, anyone else after a pause.
        chosen = self._choose(servers, src, msg.leader_hint)
        if chosen == msg.leader_hint:
            self._send(ctx)
        else:
            ctx.set_timer(RETRY_TIMER, self.backoff)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == RETRY_TIMER:
            if self.current is None:
                return
            if not self.group:
                self._route(ctx)
            else:
                # Silence from this server: ask another one, same seq.
                servers = self.directory.servers[self.group]
                asked = servers[self.target.get(self.group, 0) % len(servers)]
                self._choose(servers, asked, None)
                self._send(ctx)
        elif name == WORKLOAD_TIMER:
            if ctx.now >= self._until:
                return
            if self.current is None and not self.queue:
                self._random_op(ctx)
            else:
                self._owed = True
            ctx.set_timer(WORKLOAD_TIMER, 1.0 / self._rate)

    def _choose(self, servers: tuple[str, ...], asked: str, hint: str | None) -> str:
        """Ask :attr:`next_server` where to go next and remember the answer as this group's target."""
        chosen = self.next_server(servers, asked, hint)
        if chosen not in servers:
            raise ValueError(f"next_server must return one of the group's servers {servers}, got {chosen!r}")
        self.target[self.group] = servers.index(chosen)
        return chosen

    def start_workload(
        self,
        ctx: Context,
        rate: float,
        duration: float,
        keys: tuple[str, ...],
        kinds: tuple[str, ...] = _KINDS,
    ) -> None:
        """About ``rate`` random operations (of ``kinds``) per second over ``keys`` for ``duration`` s."""
        self._kinds = kinds
        self._rate = rate
        self._until = ctx.now + duration
        self._keys = keys
        ctx.set_timer(WORKLOAD_TIMER, 0.0)

    def _random_op(self, ctx: Context) -> None:
        rng = ctx.random
        key = rng.choice(self._keys)
        kind = rng.choice(self._kinds)
        self._made += 1
        if kind == "get":
            self.invoke(ctx, ("get", key))
        else:
            # Unique values make a lost or doubled write visible.
            self.invoke(ctx, (kind, key, f"{self.node_id}.{self._made};"))
