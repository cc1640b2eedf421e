"""A key-value client of a Raft cluster (extended Raft paper, §8).

A client sends each request to the server it believes leads. A follower
answers "not the leader" with a hint; silence (a crash, a partition, a lost
message) ends in a timeout, after which the client tries the next server.
Every retry of one operation carries the same ``(client, seq)`` so the
state machine applies it at most once.

Each operation the client starts becomes one :class:`~labkit.history.HistoryEntry`,
ready for a linearizability checker. A client runs one operation at a time;
operations asked for while one is running wait in a queue and their ``call``
time is when they are actually sent. :meth:`KVClient.start_workload` makes a
client ask random operations by itself.

The sharded store's router (:class:`labkit.shardkv.ShardRouter`) is this
client with another idea of where a key's servers are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labkit import validation as valid
from labkit.history import HistoryEntry
from labkit.raft.messages import ClientReply, ClientRequest
from labkit.raft.state_machine import OPS, validate_op
from labkit.sim import Context, Node, Simulator

__all__ = ["ClientHandle", "HistoryEntry", "KVClient", "RETRY_TIMER", "WORKLOAD_TIMER", "follow_hint_or_next"]

RETRY_TIMER = "retry"
WORKLOAD_TIMER = "workload"
KINDS = tuple(OPS)  # get, put, append
MAX_RATE = 10_000.0  # operations per second one client may generate


def follow_hint_or_next(servers: tuple[str, ...], asked: str, hint: str | None) -> str:
    """The server to ask next after ``asked`` refused or stayed silent (§8).

    A follower that refuses names the leader it knows of (``hint``): ask it.
    Without a usable hint (none, not one of ``servers``, or ``asked`` itself)
    or after silence (``hint`` is None), try the next server in turn.
    """
    if hint is not None and hint in servers and hint != asked:
        return hint
    return servers[(servers.index(asked) + 1) % len(servers)]


NextServer = Callable[[tuple[str, ...], str, "str | None"], str]


class KVClient(Node):
    """A simulated client node; see the module docstring for its protocol.

    ``servers`` (:meth:`_servers` says which, for the operation at hand) are
    tried as ``next_server`` says (:func:`follow_hint_or_next` by default); with
    ``reads_anywhere`` a read goes to a random server (for the deliberately
    broken ``Bug.STALE_READS`` cluster).
    """

    def __init__(
        self,
        node_id: str,
        servers: tuple[str, ...],
        history: list[HistoryEntry],
        *,
        retry_timeout: float = 0.3,
        backoff: float = 0.02,
        reads_anywhere: bool = False,
        next_server: NextServer = follow_hint_or_next,
    ) -> None:
        super().__init__(node_id)
        self.next_server = valid.function(
            "next_server", next_server, "a function (servers, asked, hint) -> server"
        )
        self.servers = valid.instance("servers", servers, tuple)
        for i, s in enumerate(servers):
            valid.string(f"servers[{i}]", s)
        self.history = valid.instance("history", history, list)
        self.retry_timeout = valid.number("retry_timeout", retry_timeout, gt=0, unit="seconds")
        self.backoff = valid.number("backoff", backoff, ge=0, unit="seconds")
        self.reads_anywhere = valid.boolean("reads_anywhere", reads_anywhere)
        self.target = 0  # which of _servers() is the presumed leader
        self.seq = 0
        self.current: HistoryEntry | None = None
        self.queue: deque[HistoryEntry] = deque()
        self.ops: list[HistoryEntry] = []
        # The built-in workload (start_workload): rate, end, keys, kinds.
        self._workload: tuple[float, float, tuple[str, ...], tuple[str, ...]] | None = None
        self._owed = False  # a workload tick passed while busy: start one as soon as free
        self._made = 0

    # -- asking --------------------------------------------------------------
    def invoke(self, ctx: Context, op: tuple) -> HistoryEntry:
        """Queue operation ``op`` (e.g. ``("put", "x", "1")``); returns its history entry."""
        return self._enqueue(ctx, validate_op(op))

    def _enqueue(self, ctx: Context, op: tuple) -> HistoryEntry:
        """Queue an operation already checked (the built-in workload makes only valid ones)."""
        entry = HistoryEntry(self.node_id, op)
        self.ops.append(entry)
        self.queue.append(entry)
        if self.current is None:
            self._next(ctx)
        return entry

    def _next(self, ctx: Context) -> None:
        if not self.queue:
            return
        entry = self.current = self.queue.popleft()
        entry.call = ctx.now
        self.history.append(entry)
        self._begin(ctx)

    def _begin(self, ctx: Context) -> None:
        """The current operation's first attempt, under a fresh sequence number."""
        self.seq += 1
        if self.reads_anywhere and self.current.input[0] == "get":  # type: ignore[union-attr]
            self.target = ctx.random.randrange(len(self._servers()))
        self._send(ctx)

    def _servers(self) -> tuple[str, ...]:
        """The servers that can answer the current operation."""
        return self.servers

    def _asked(self) -> str:
        """The server the current operation goes to."""
        servers = self._servers()
        return servers[self.target % len(servers)]

    def _send(self, ctx: Context) -> None:
        entry = self.current
        assert entry is not None
        entry.attempts += 1
        ctx.send(self._asked(), ClientRequest(self.node_id, self.seq, entry.input))
        ctx.set_timer(RETRY_TIMER, self.retry_timeout)

    def _choose(self, asked: str, hint: str | None) -> str:
        """Ask :attr:`next_server` where to go next and make it the target."""
        servers = self._servers()
        chosen = self.next_server(servers, asked, hint)
        if chosen not in servers:
            raise ValueError(f"next_server must return one of the group's servers {servers}, got {chosen!r}")
        self.target = servers.index(chosen)
        return chosen

    # -- answers -------------------------------------------------------------
    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if not isinstance(msg, ClientReply):
            raise TypeError(f"client {self.node_id} got an unexpected message {msg!r}")
        if self.current is None or msg.seq != self.seq:
            return  # an answer to an earlier attempt we no longer wait for
        if msg.ok:
            self._answered(ctx, src, msg.result)
        else:
            self._not_leader(ctx, src, msg.leader_hint)

    def _answered(self, ctx: Context, src: str, result: Any) -> None:
        self._finish(ctx, src, result)

    def _finish(self, ctx: Context, served_by: str, result: Any) -> None:
        entry = self.current
        assert entry is not None
        entry.ret, entry.output, entry.served_by = ctx.now, result, served_by
        self.current = None
        ctx.cancel_timer(RETRY_TIMER)
        if self._owed and not self.queue:
            self._owed = False
            self._random_op(ctx)
        else:
            self._next(ctx)

    def _not_leader(self, ctx: Context, src: str, hint: str | None) -> None:
        # "Not the leader": ask the hinted server at once; anyone else after a
        # pause (nobody may know a leader yet: an election is on).
        if self._choose(src, hint) == hint:
            self._send(ctx)
        else:
            ctx.set_timer(RETRY_TIMER, self.backoff)

    def on_timer(self, ctx: Context, name: str) -> None:
        if name == RETRY_TIMER:
            if self.current is not None:
                self._retry(ctx)
        elif name == WORKLOAD_TIMER:
            self._on_workload(ctx)

    def _retry(self, ctx: Context) -> None:
        # Silence: the server crashed, is cut off, or a message was lost.
        self._choose(self._asked(), None)
        self._send(ctx)

    # -- a built-in random workload ------------------------------------------
    def start_workload(
        self,
        ctx: Context,
        rate: float,
        duration: float,
        keys: tuple[str, ...],
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        """Start about ``rate`` random operations (of ``kinds``) per second for ``duration`` seconds.

        One operation runs at a time: when the previous one is still running at
        a tick, the next starts as soon as it returns (so the rate achieved is
        at most ``rate`` and at most 1 / latency).
        """
        self._workload = (rate, ctx.now + duration, keys, kinds)
        ctx.set_timer(WORKLOAD_TIMER, 0.0)

    def _on_workload(self, ctx: Context) -> None:
        rate, until, _, _ = self._workload  # type: ignore[misc]
        if ctx.now >= until:
            return
        if self.current is None and not self.queue:
            self._random_op(ctx)
        else:
            self._owed = True
        ctx.set_timer(WORKLOAD_TIMER, 1.0 / rate)

    def _random_op(self, ctx: Context) -> None:
        _, _, keys, kinds = self._workload  # type: ignore[misc]
        key = ctx.random.choice(keys)
        kind = ctx.random.choice(kinds)
        self._made += 1
        if kind == "get":
            self._enqueue(ctx, ("get", key))
        else:
            # Unique values make lost or doubled writes visible in the history.
            self._enqueue(ctx, (kind, key, f"{self.node_id}.{self._made};"))


class ClientHandle:
    """What a cluster's ``client(name)`` returns: start operations by name.

    Each method starts (or queues) one operation *in the simulation* and
    returns its :class:`~labkit.history.HistoryEntry`; run the simulator to see
    it finish. ``keys`` are the keys a workload picks from by default.
    """

    def __init__(self, sim: Simulator, name: str, keys: Sequence[str]) -> None:
        self._sim = valid.instance("sim", sim, Simulator)
        self.name = valid.string("name", name)
        if isinstance(keys, (str, bytes, Mapping)):
            raise valid.ArgumentTypeError(f"keys must be a sequence of keys, got {valid.shown(keys)}")
        self._keys = tuple(valid.string(f"keys[{i}]", k, empty=True) for i, k in enumerate(keys))

    def _invoke(self, op: tuple) -> HistoryEntry:
        return self._sim.call(self.name, lambda node, ctx: node.invoke(ctx, op))

    def put(self, key: str, value: str) -> HistoryEntry:
        """Set ``key`` to ``value``."""
        return self._invoke(("put", key, value))

    def get(self, key: str) -> HistoryEntry:
        """Read ``key`` (``""`` if never written)."""
        return self._invoke(("get", key))

    def append(self, key: str, value: str) -> HistoryEntry:
        """Append ``value`` to the string at ``key``."""
        return self._invoke(("append", key, value))

    def start_workload(
        self,
        rate: float = 100.0,
        duration: float = 10.0,
        keys: Sequence[str] = (),
        kinds: Sequence[str] = KINDS,
    ) -> None:
        """Random operations of ``kinds`` at about ``rate`` per second for ``duration`` s over
        ``keys`` (by default the cluster's keys)."""
        kinds = tuple(valid.non_empty("kinds", kinds, "subset of get, put, append"))
        for k in kinds:
            valid.one_of("kinds", k, KINDS)
        rate = valid.number("rate", rate, gt=0, le=MAX_RATE, unit="operations per second")
        duration = valid.number("duration", duration, ge=0, unit="seconds")
        keys = tuple(keys) or self._keys
        for i, k in enumerate(keys):
            valid.string(f"keys[{i}]", k, empty=True)
        self._sim.call(self.name, lambda node, ctx: node.start_workload(ctx, rate, duration, keys, kinds))

    @property
    def ops(self) -> list[HistoryEntry]:
        """Every operation asked of this client, in order."""
        return self._sim.node(self.name).ops  # type: ignore[attr-defined]

    @property
    def busy(self) -> bool:
        """True while an operation is running or queued."""
        node: Any = self._sim.node(self.name)
        return node.current is not None or bool(node.queue)

    def __repr__(self) -> str:
        return f"ClientHandle({self.name!r})"
