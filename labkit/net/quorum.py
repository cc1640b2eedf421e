"""The Dynamo-style quorum store (:mod:`labkit.replication`) as real processes, judged the same way.

The design that carries our Raft carries the quorum store too: each server is
a ``python -m labkit.net.node`` process running
:class:`~labkit.replication.ReplicaNode` (kind ``"quorum"``: its own wire
registry, its own durable storage in the node's folder), behind the same
proxies, with the same faults (:class:`~labkit.net.base.ClusterBase`).

What differs is the client. A quorum store has no leader: each
:class:`QuorumClient` talks to one server, the *coordinator* of its requests
(Dynamo, SOSP 2007, §4.5), and chooses R and W per request. A read answers
every version the coordinator gathered: one value, or several concurrent ones
(siblings). The history records

* ``("put", key, value)``: a write; its outcome is unknown when the
  coordinator gave up (fewer than W acknowledgements: some replicas may
  still hold it) or did not answer in time;
* ``("get", key)``: the value read (``""`` for none), or a
  :class:`~labkit.linearizability.adapters.Siblings` of the values when
  concurrent versions came back (no register returns two values at once, so
  the checker refuses such a history).

So :meth:`QuorumCluster.operations` goes to :mod:`labkit.linearizability`
with :class:`~labkit.linearizability.KVModel`, exactly as our Raft's history
does. With strict quorums (R + W > N) one operation at a time is
linearizable; with R = W = 1 across a partition the checker finds the stale
read (DDIA ch. 5, "Limitations of Quorum Consistency").
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from labkit import validation as v
from labkit.clocks import VectorClock
from labkit.history import HistoryEntry
from labkit.net.base import ClusterBase, _seconds
from labkit.net.cluster import ProcessCluster
from labkit.net.codec import FrameReader, Registry, WireError, registry_for
from labkit.net.messages import Hello

__all__ = ["QuorumCluster", "QuorumClient"]


class _Conn(asyncio.Protocol):
    """A client's connection to its coordinator."""

    def __init__(self, client: QuorumClient) -> None:
        self.client = client
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.client.registry.encode(Hello(self.client.name)))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        try:
            for body in self.reader.feed(data):
                self.client._on_reply(self.client.registry.decode(body))
        except WireError:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class QuorumClient:
    """An asyncio client of one coordinator of the quorum store (see the module docstring).

    ``r`` and ``w`` are the quorums of its reads and writes. A write carries as
    context what the client's last answer for the key showed (as
    :class:`~labkit.replication.ClientNode` does), so its own writes supersede
    what it read. One operation runs at a time.
    """

    def __init__(
        self,
        name: str,
        server: str,
        address: tuple[str, int],
        registry: Registry,
        *,
        r: int,
        w: int,
        clock: Any = time.monotonic,
        records: list[HistoryEntry] | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.name = name
        self.server = server
        self.address = address
        self.registry = registry
        self.r = r
        self.w = w
        self.clock = clock
        self.records: list[HistoryEntry] = [] if records is None else records
        self.timeout = timeout
        self.op_id = 0
        self.context: dict[str, VectorClock] = {}
        self._conn: _Conn | None = None
        self._waiting: dict[int, asyncio.Future] = {}
        self._lock = asyncio.Lock()

    async def _connection(self) -> _Conn:
        c = self._conn
        if c is not None and c.transport is not None and not c.transport.is_closing():
            return c
        loop = asyncio.get_running_loop()
        _, c = await loop.create_connection(lambda: _Conn(self), *self.address)
        self._conn = c
        return c

    def _on_reply(self, msg: Any) -> None:
        fut = self._waiting.get(getattr(msg, "op_id", None))  # type: ignore[arg-type]
        if fut is not None and not fut.done():
            fut.set_result(msg)

    async def _ask(self, msg: Any) -> Any:
        conn = await self._connection()
        fut = asyncio.get_running_loop().create_future()
        self._waiting[msg.op_id] = fut
        try:
            assert conn.transport is not None
            conn.transport.write(self.registry.encode(msg))
            return await fut
        finally:
            self._waiting.pop(msg.op_id, None)

    async def invoke(self, op: tuple) -> HistoryEntry:
        """Run ``("get", key)`` or ``("put", key, value)``; its :class:`HistoryEntry` (also in :attr:`records`)."""
        from labkit.linearizability.adapters import Siblings
        from labkit.replication import context_of
        from labkit.replication.messages import ClientGet, ClientPut

        if not isinstance(op, tuple) or not op or op[0] not in ("get", "put"):
            raise ValueError(f"op must be ('get', key) or ('put', key, value), got {op!r}")
        if len(op) != (2 if op[0] == "get" else 3) or not all(isinstance(x, str) for x in op[1:]):
            raise ValueError(f"op must be ('get', key) or ('put', key, value) of strings, got {op!r}")
        async with self._lock:
            self.op_id += 1
            key = op[1]
            if op[0] == "get":
                msg: Any = ClientGet(self.op_id, key, self.r)
            else:
                msg = ClientPut(self.op_id, key, op[2], self.context.get(key, VectorClock()), self.w)
            rec = HistoryEntry(self.name, op, self.clock(), attempts=1, served_by=self.server)
            self.records.append(rec)
            try:
                reply = await asyncio.wait_for(self._ask(msg), self.timeout)
            except (TimeoutError, OSError):
                reply = None
            if reply is None or not reply.ok:  # a coordinator that gave up leaves the outcome unknown
                rec.gave_up = self.clock()
            else:
                rec.ret = self.clock()
                if op[0] == "get":
                    values = tuple(x.value for x in reply.versions)
                    rec.output = "" if not values else values[0] if len(values) == 1 else Siblings(values)
                known = self.context.get(key, VectorClock())
                self.context[key] = context_of(reply.versions).merge(known)
            return rec

    async def put(self, key: str, value: str) -> HistoryEntry:
        return await self.invoke(("put", key, value))

    async def get(self, key: str) -> HistoryEntry:
        return await self.invoke(("get", key))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class QuorumCluster(ProcessCluster):
    """``n`` quorum-store servers as processes on loopback (see the module docstring).

    ``replicas`` is N (copies of each key), ``r`` and ``w`` the quorums
    clients use unless told otherwise; ``mode`` and ``resolution`` are
    :class:`~labkit.replication.StoreConfig`'s (strict quorums and
    last-writer-wins by default, so a read returns one value);
    ``request_timeout`` is how long a coordinator waits for R or W answers.
    Faults, folders, ``durable`` and ``client_timeout`` are as for
    :class:`~labkit.net.ProcessCluster`.
    """

    kind = "quorum"

    def __init__(
        self,
        n: int = 3,
        *,
        nemesis: bool = True,
        replicas: int = 3,
        r: int = 2,
        w: int = 2,
        mode: Any = None,
        resolution: Any = None,
        request_timeout: float = 0.25,
        client_timeout: float = 1.0,
        folder: str | os.PathLike | None = None,
        seed: int = 0,
        durable: bool = True,
    ) -> None:
        from labkit.replication import Mode, Resolution, StoreConfig, check_quorum

        v.integer("n", n, ge=1, le=9, note="servers")
        ClusterBase.__init__(self, nemesis=nemesis, folder=folder, seed=seed)
        self.n = n
        self.ids = tuple(f"n{i}" for i in range(1, n + 1))
        mode = Mode.CONSISTENCY_FIRST if mode is None else mode
        resolution = Resolution.LAST_WRITER_WINS if resolution is None else resolution
        config = StoreConfig(  # checks the settings here, before any process starts
            nodes=self.ids, n=replicas, mode=mode, resolution=resolution, request_timeout=request_timeout
        )
        self.r = check_quorum("r", r, replicas)
        self.w = check_quorum("w", w, replicas)
        self.params = {
            "n": config.n,
            "mode": config.mode.name,
            "resolution": config.resolution.name,
            "request_timeout": config.request_timeout,
            "hint_after": min(config.hint_after, config.request_timeout / 2),
        }
        self.client_timeout = _seconds("client_timeout", client_timeout)
        self.attempt_timeout = self.client_timeout
        self.leader_timeout = 15.0
        self.early_sends = True
        self.durable = v.boolean("durable", durable)
        self.registry = registry_for("quorum")
        self.ports: dict[str, int] = {}
        self._peer_addr: dict[tuple[str, str], tuple[str, int]] = {}
        self._client_addr: dict[str, tuple[str, int]] = {}
        self._clients: dict[str, Any] = {}
        self._status: dict[str, Any] = {}

    def leader(self) -> str | None:
        """A quorum store has no leader: always None."""
        return None

    def wait_for_leader(self, timeout: float = 10.0) -> str | None:
        """A quorum store has no leader: wait until every running server answers; the first id, or None."""
        deadline = time.monotonic() + _seconds("timeout", timeout)
        while True:
            got = self.statuses()
            if all(got[nid] is not None for nid in self.ids if self.is_up(nid) and nid not in self.paused):
                return self.ids[0]
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def roles(self) -> dict[str, tuple[str, int] | None]:
        """No roles in a quorum store: each server's ``("replica", 0)``, None when it does not answer."""
        return {nid: None if s is None else ("replica", 0) for nid, s in self.statuses().items()}

    def client(
        self, name: str = "c0", server: str | None = None, *, r: int | None = None, w: int | None = None
    ) -> Any:
        """The client called ``name`` (made on first use), whose requests ``server`` coordinates.

        By default clients are spread over the servers in turn; ``r`` and ``w``
        default to the cluster's.
        """
        from labkit.replication import check_quorum

        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if name in self.ids:
            raise ValueError(f"name {name!r} is a server's id; pick another client name")
        c = self._clients.get(name)
        if c is None:
            server = (
                self.ids[len(self._clients) % self.n]
                if server is None
                else self._check_server(server, "server")
            )
            replicas = int(self.params["n"])
            c = QuorumClient(
                name,
                server,
                self._client_addr[server],
                self.registry,
                r=self.r if r is None else check_quorum("r", r, replicas),
                w=self.w if w is None else check_quorum("w", w, replicas),
                clock=self.now,
                records=self.history,
                timeout=self.client_timeout,
            )
            self._clients[name] = c
        elif server is not None and server != c.server:
            raise ValueError(f"client {name!r} already talks to {c.server}, not {server}")
        return c

    def append(self, key: str, value: str, client: str = "c0") -> HistoryEntry:
        """Not an operation of the quorum store (its writes replace a value): raises ValueError."""
        raise ValueError("the quorum store has get and put only (a write replaces the value), not append")

    def __repr__(self) -> str:
        state = "running" if self._loop is not None else "stopped"
        return f"QuorumCluster(n={self.n}, {state}, nemesis={self.nemesis}, r={self.r}, w={self.w})"
