"""A key-value client of the Raft processes, and the history it keeps of what it saw.

The client speaks the same protocol as the simulator's
:class:`~labkit.raft.KVClient` (extended Raft paper, §8): it sends a
:class:`~labkit.raft.ClientRequest` to the server it believes leads, follows
``leader_hint`` when told "not the leader", and after ``attempt_timeout``
seconds of silence (or at once, if the connection is lost) tries the next
server, always with the same ``(client, seq)`` so the state machine applies
the command at most once.

Hints need one precaution. A follower names the leader it last heard from
until an election ends, so right after the leader crashes, freezes or is cut
off, every follower's hint points back at the server that just went silent;
a client that trusted every hint would go back to it and wait out
``attempt_timeout`` again and again. So a server that went silent on us is
*suspect*: a hint naming it is not followed at once; the other servers are
asked in turn first (§8's clients likewise retry another server after a
timeout, a random one), and only when every other server that answers has
named it too is it tried again. Then either the hint was stale and a whole
round of quick answers went by, or it is a new leader that was slow to
answer once (busy with its election and its first entry), and the client
goes back to it without waiting out the old leader again. A suspect that
answers is trusted again (:meth:`RaftClient._answered`).

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
        self.suspects: dict[str, set[str]] = {}  # servers that went silent on us (see the module docstring)
        self.seq = 0
        self.records: list[HistoryEntry] = []
        self._conns: dict[str, _Conn] = {}
        self._waiting: asyncio.Future | None = None
        self._waiting_on: str | None = None
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
        w = self._waiting
        if w is not None and not w.done() and self._waiting_on == conn.server:
            w.set_exception(ConnectionError(f"lost the connection to {conn.server}"))  # no answer will come

    # -- whom to ask next ----------------------------------------------------------
    async def _back_off(self, deadline: float) -> None:
        """Wait a little before asking again (no leader known, or no way to reach one), never past ``deadline``."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(min(self.backoff, max(0.0, deadline - loop.time())))

    def _next_in_turn(self) -> None:
        self.target = (self.target + 1) % len(self.servers)

    def _went_silent(self, server: str) -> None:
        """No answer from ``server`` (timeout, lost or refused connection): suspect it, ask the next."""
        self.suspects[server] = set()  # the servers that named it as the leader since
        self._next_in_turn()

    def _answered(self, server: str, hint: str | None) -> bool:
        """``server`` said "not the leader, try ``hint``": whom to ask next. True: wait a little first.

        A hint naming a suspect is followed only once every other server that
        answers has named it since it went silent (it may be a new leader that was
        slow to answer once); until then the next server in turn is asked.
        """
        self.suspects.pop(server, None)  # it answered
        if hint not in self.addresses or hint == server:  # no leader known: an election is on
            self._next_in_turn()
            return True
        named = self.suspects.get(hint)
        if named is not None:
            named.add(server)
            if any(s not in named and s not in self.suspects for s in self.servers if s != hint):
                self._next_in_turn()  # ask the others first (at once: they answer): the hint may be stale
                return False
        self.target = self.servers.index(hint)
        return False

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
                    self._went_silent(server)
                    await self._back_off(deadline)
                    continue
                rec.attempts += 1
                self._waiting, self._waiting_on = loop.create_future(), server
                conn.transport.write(req)
                try:
                    answered, reply = await asyncio.wait_for(
                        self._waiting, min(self.attempt_timeout, max(0.001, deadline - loop.time()))
                    )
                except TimeoutError:
                    self._went_silent(server)
                    continue
                except ConnectionError:  # lost while we waited: no answer will come from there
                    self._went_silent(server)
                    await self._back_off(deadline)
                    continue
                finally:
                    self._waiting = self._waiting_on = None
                if reply.ok:
                    self.suspects.pop(answered, None)
                    rec.ret = self.clock()
                    rec.output = reply.result
                    rec.served_by = answered
                    return rec
                if self._answered(answered, reply.leader_hint):
                    await self._back_off(deadline)
            rec.gave_up = self.clock()  # the outcome is unknown
            return rec

    async def put(self, key: str, value: str) -> HistoryEntry:
        return await self.invoke(("put", key, value))

    async def get(self, key: str) -> HistoryEntry:
        return await self.invoke(("get", key))

    async def append(self, key: str, value: str) -> HistoryEntry:
        return await self.invoke(("append", key, value))
