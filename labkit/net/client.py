"""A key-value client of the Raft processes, and the history it keeps of what it saw.

The client speaks the same protocol as the simulator's
:class:`~labkit.raft.KVClient` (extended Raft paper, §8): it sends a
:class:`~labkit.raft.ClientRequest` to the server it believes leads, follows
``leader_hint`` when told "not the leader", and after ``attempt_timeout``
seconds of silence tries the next server, always with the same
``(client, seq)`` so the state machine applies the command at most once.

What is new on a real network is the clock and the give-up: each operation
is recorded as a :class:`~labkit.history.HistoryEntry`, as in the simulator,
with wall-clock ``call`` and ``ret`` times (seconds since the cluster
started, from the monotonic clock), and an operation that has no answer
within ``timeout`` seconds ends with an *unknown* outcome, at ``gave_up``: it
may have taken effect or not, and may still take effect later (Herlihy &
Wing's pending operation; :mod:`labkit.linearizability` treats it exactly so).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from labkit import validation as valid
from labkit.history import HistoryEntry
from labkit.net.codec import FrameReader, Registry, WireError
from labkit.net.messages import Hello
from labkit.raft.messages import ClientReply, ClientRequest
from labkit.raft.state_machine import validate_op

__all__ = ["RaftClient", "to_operations"]


def to_operations(history: list[HistoryEntry]) -> list[Any]:
    """``history`` as :class:`labkit.linearizability.Operation` records, by call time (unknown outcomes as ``UNKNOWN``)."""
    from labkit.linearizability.adapters import from_raft

    return from_raft(sorted(valid.instance("history", history, (list, tuple)), key=lambda r: r.call))


class _Conn(asyncio.Protocol):
    """One client's connection to one server."""

    def __init__(self, client: RaftClient, server: str) -> None:
        self.client = client
        self.server = server
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self.client.registry.encode(Hello(self.client.name)))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        try:
            for body in self.reader.feed(data):
                self.client._on_reply(self.server, self.client.registry.decode(body))
        except WireError:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.client._on_lost(self)


class RaftClient:
    """An asyncio key-value client of a Raft cluster of processes (see the module docstring).

    ``addresses`` maps server ids to where this client connects (the server, or
    the proxy of its client link). ``clock`` gives the time recorded in the
    history. One operation runs at a time.
    """

    def __init__(
        self,
        name: str,
        addresses: dict[str, tuple[str, int]],
        registry: Registry,
        *,
        clock: Any = time.monotonic,
        timeout: float = 1.0,
        attempt_timeout: float = 0.3,
        backoff: float = 0.02,
    ) -> None:
        self.name = name
        self.addresses = addresses
        self.servers = tuple(addresses)
        self.registry = registry
        self.clock = clock
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.backoff = backoff
        self.target = 0
        self.seq = 0
        self.records: list[HistoryEntry] = []
        self._conns: dict[str, _Conn] = {}
        self._waiting: asyncio.Future | None = None
        self._lock = asyncio.Lock()

    # -- connections -------------------------------------------------------------
    async def _conn(self, server: str) -> _Conn | None:
        c = self._conns.get(server)
        if c is not None and c.transport is not None and not c.transport.is_closing():
            return c
        loop = asyncio.get_running_loop()
        try:
            _, c = await asyncio.wait_for(
                loop.create_connection(lambda: _Conn(self, server), *self.addresses[server]),
                self.attempt_timeout,
            )
        except (TimeoutError, OSError):
            return None
        self._conns[server] = c
        return c

    def _on_reply(self, server: str, msg: Any) -> None:
        w = self._waiting
        if type(msg) is ClientReply and w is not None and not w.done() and msg.seq == self.seq:
            w.set_result((server, msg))

    def _on_lost(self, conn: _Conn) -> None:
        if self._conns.get(conn.server) is conn:
            del self._conns[conn.server]

    def close(self) -> None:
        for c in list(self._conns.values()):
            c.close()
        self._conns.clear()

    # -- operations ----------------------------------------------------------------
    async def invoke(self, op: tuple, timeout: float | None = None) -> HistoryEntry:
        """Run one operation; its :class:`HistoryEntry` (also appended to :attr:`records`)."""
        validate_op(op)
        timeout = self.timeout if timeout is None else timeout
        async with self._lock:
            loop = asyncio.get_running_loop()
            self.seq += 1
            rec = HistoryEntry(self.name, op, self.clock())
            self.records.append(rec)
            deadline = loop.time() + timeout
            req = self.registry.encode(ClientRequest(self.name, self.seq, op))
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    break
                server = self.servers[self.target]
                conn = await self._conn(server)
                if conn is None or conn.transport is None:
                    self.target = (self.target + 1) % len(self.servers)
                    await asyncio.sleep(min(self.backoff, max(0.0, deadline - loop.time())))
                    continue
                rec.attempts += 1
                self._waiting = loop.create_future()
                conn.transport.write(req)
                try:
                    answered, reply = await asyncio.wait_for(
                        self._waiting, min(self.attempt_timeout, max(0.001, deadline - loop.time()))
                    )
                except TimeoutError:
                    self.target = (self.target + 1) % len(self.servers)  # silence: try the next server
                    continue
                finally:
                    self._waiting = None
                if reply.ok:
                    rec.ret = self.clock()
                    rec.output = reply.result
                    rec.served_by = answered
                    return rec
                hint = reply.leader_hint
                if hint in self.addresses and hint != answered:
                    self.target = self.servers.index(hint)
                else:  # nobody knows a leader yet (an election is on): wait a little
                    self.target = (self.target + 1) % len(self.servers)
                    await asyncio.sleep(min(self.backoff, max(0.0, deadline - loop.time())))
            rec.gave_up = self.clock()  # the outcome is unknown
            return rec

    async def put(self, key: str, value: str) -> HistoryEntry:
        return await self.invoke(("put", key, value))

    async def get(self, key: str) -> HistoryEntry:
        return await self.invoke(("get", key))

    async def append(self, key: str, value: str) -> HistoryEntry:
        return await self.invoke(("append", key, value))
