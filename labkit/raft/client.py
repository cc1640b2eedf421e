"""A key-value client of a Raft cluster (extended Raft paper, §8).

A client sends each request to the server it believes leads. A follower
answers "not the leader" with a hint; silence (a crash, a partition, a lost
message) ends in a timeout, after which the client tries the next server.
Every retry of one operation carries the same ``(client, seq)`` so the
state machine applies it at most once.

Each operation the client starts becomes one :class:`HistoryEntry`: who
asked, when (``call``), what (``input``), when the answer came (``ret``,
``math.inf`` while there is none) and the answer (``output``). Those are the
fields of an operation in Herlihy & Wing's model, ready for a
linearizability checker. A client runs one operation at a time; operations
asked for while one is running wait in a queue and their ``call`` time is when
they are actually sent.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from labkit.raft.messages import ClientReply, ClientRequest
from labkit.raft.state_machine import validate_op
from labkit.sim import Context, Node

__all__ = ["HistoryEntry", "KVClient", "RETRY_TIMER", "WORKLOAD_TIMER"]

RETRY_TIMER = "retry"
WORKLOAD_TIMER = "workload"
_KINDS = ("get", "put", "append")


@dataclass(slots=True)
class HistoryEntry:
    """One client operation. ``ret`` is ``math.inf`` until (unless) it returns."""

    client: str
    input: tuple
    call: float = math.nan
    ret: float = math.inf
    output: Any = None
    attempts: int = 0

    @property
    def done(self) -> bool:
        """True once the client has its answer."""
        return self.ret != math.inf


class KVClient(Node):
    """A simulated client node; see the module docstring for its protocol."""

    def __init__(
        self,
        node_id: str,
        servers: tuple[str, ...],
        history: list[HistoryEntry],
        *,
        retry_timeout: float = 0.3,
        backoff: float = 0.02,
        reads_anywhere: bool = False,
    ) -> None:
        super().__init__(node_id)
        self.servers = servers
        self.history = history
        self.retry_timeout = retry_timeout
        self.backoff = backoff
        self.reads_anywhere = reads_anywhere
        self.target = 0  # index into servers of the presumed leader
        self.seq = 0
        self.current: HistoryEntry | None = None
        self.queue: deque[HistoryEntry] = deque()
        self.ops: list[HistoryEntry] = []
        # Optional built-in workload (see start_workload).
        self._rate = 0.0
        self._until = 0.0
        self._keys: tuple[str, ...] = ()
        self._owed = False
        self._made = 0

    # -- asking --------------------------------------------------------------
    def invoke(self, ctx: Context, op: tuple) -> HistoryEntry:
        """Queue operation ``op`` (e.g. ``("put", "x", "1")``); returns its history entry."""
        entry = HistoryEntry(self.node_id, validate_op(op))
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
        self.seq += 1
        entry.call = ctx.now
        self.history.append(entry)
        if self.reads_anywhere and entry.input[0] == "get":
            self.target = ctx.random.randrange(len(self.servers))
        self._send(ctx)

    def _send(self, ctx: Context) -> None:
        entry = self.current
        assert entry is not None
        entry.attempts += 1
        ctx.send(self.servers[self.target], ClientRequest(self.node_id, self.seq, entry.input))
        ctx.set_timer(RETRY_TIMER, self.retry_timeout)

    # -- answers -------------------------------------------------------------
    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if not isinstance(msg, ClientReply):
            raise TypeError(f"client {self.node_id} got an unexpected message {msg!r}")
        entry = self.current
        if entry is None or msg.seq != self.seq:
            return  # an answer to an earlier attempt we no longer wait for
        if msg.ok:
            entry.ret = ctx.now
            entry.output = msg.result
            self.current = None
            ctx.cancel_timer(RETRY_TIMER)
            if self._owed and not self.queue:
                self._owed = False
                self._random_op(ctx)
            else:
                self._next(ctx)
            return
        hint = msg.leader_hint
        if hint is not None and hint in self.servers and hint != src:
            self.target = self.servers.index(hint)
            self._send(ctx)
        else:
            # Nobody knows a leader yet (an election is on): wait a little.
            self.target = (self.target + 1) % len(self.servers)
            ctx.set_timer(RETRY_TIMER, self.backoff)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == RETRY_TIMER:
            if self.current is not None:
                # Silence: the server crashed, is cut off, or a message was lost.
                self.target = (self.target + 1) % len(self.servers)
                self._send(ctx)
        elif name == WORKLOAD_TIMER:
            self._on_workload(ctx)

    # -- a built-in random workload ------------------------------------------
    def start_workload(self, ctx: Context, rate: float, duration: float, keys: tuple[str, ...]) -> None:
        """Start about ``rate`` random operations per second for ``duration`` seconds.

        One operation runs at a time: when the previous one is still running at
        a tick, the next starts as soon as it returns (so the rate achieved is
        at most ``rate`` and at most 1 / latency).
        """
        self._rate = rate
        self._until = ctx.now + duration
        self._keys = keys
        ctx.set_timer(WORKLOAD_TIMER, 0.0)

    def _on_workload(self, ctx: Context) -> None:
        if ctx.now >= self._until:
            return
        if self.current is None and not self.queue:
            self._random_op(ctx)
        else:
            self._owed = True
        ctx.set_timer(WORKLOAD_TIMER, 1.0 / self._rate)

    def _random_op(self, ctx: Context) -> None:
        rng = ctx.random
        key = rng.choice(self._keys)
        kind = rng.choice(_KINDS)
        self._made += 1
        if kind == "get":
            self.invoke(ctx, ("get", key))
        else:
            # Unique values make lost or doubled writes visible in the history.
            self.invoke(ctx, (kind, key, f"{self.node_id}.{self._made};"))
