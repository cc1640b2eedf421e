"""Our Raft key-value store as real processes on 127.0.0.1, started and stopped from Python.

>>> with ProcessCluster(n=3) as c:          # starts 3 processes, waits for a leader
...     c.put("x", "1")
...     c.get("x").output
'1'

:class:`ProcessCluster` is the real-world twin of :class:`~labkit.raft.RaftCluster`:
each server is a ``python -m labkit.net.node`` process with its own folder
(its write-ahead file and its log), and the faults have the same names
(:class:`~labkit.net.base.ClusterBase`: partition, disconnect, cut, heal,
delay, loss; crash, restart, pause, resume).

Nothing here is deterministic: the operating system schedules the processes
and the clock is real. So instead of replaying a run we *record* it (every
client operation with its wall-clock call and return) and *check* the record
with :mod:`labkit.linearizability` (:mod:`labkit.net.nemesis`).

With ``nemesis=False`` there are no proxies (the nodes talk directly;
network faults are refused, process faults still work): that is what the
benchmark measures.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import Any

from labkit import validation as v
from labkit.net.base import CLIENTS, ClusterBase, _seconds
from labkit.net.client import RaftClient
from labkit.net.codec import FrameReader, WireError, registry_for
from labkit.net.messages import Hello, StatusReply, StatusRequest
from labkit.net.node import NodeConfig
from labkit.net.procs import LOOPBACK, spawn
from labkit.net.proxy import Proxy

__all__ = ["ProcessCluster", "CLIENTS"]


class ProcessCluster(ClusterBase):
    """``n`` Raft servers as processes on loopback, with a nemesis and clients (see the module docstring).

    Parameters: ``n`` servers (1..9); ``nemesis`` puts a proxy on every link;
    ``election_timeout`` (low, high) and ``heartbeat_interval`` in seconds
    (longer than the simulator's: real processes share real CPUs, and a
    busy machine must not look like a dead leader); ``max_entries`` per
    AppendEntries; ``max_inflight``: how many AppendEntries with entries the
    leader streams to one follower before it waits for an answer
    (:mod:`labkit.raft.progress`; 1, the default, sends the next batch when
    the previous one is answered, so entries that arrive meanwhile travel
    together: fewer, larger messages); ``client_timeout``: how long a client tries one operation
    before it records an unknown outcome (:attr:`attempt_timeout`, 0.3 s, is how
    long it waits for one server before it tries the next; set it before
    making clients); ``folder``: where the servers keep
    their files (a fresh temporary folder by default, removed on close);
    ``early_sends``: let the leader's AppendEntries leave before its own sync
    (see :mod:`labkit.net.node`); ``seed`` seeds the proxies' loss and delay
    and the servers' timeouts (not the operating system: runs still differ).
    ``durable=False`` builds deliberately broken servers that keep their state
    in memory only and forget it when they restart (to see what the disk is for).
    """

    kind = "raft"  # the node kind the processes run (labkit.net.node.KINDS)

    def __init__(
        self,
        n: int = 3,
        *,
        nemesis: bool = True,
        election_timeout: tuple[float, float] = (0.3, 0.6),
        heartbeat_interval: float = 0.05,
        max_entries: int = 256,
        max_inflight: int = 1,
        client_timeout: float = 1.0,
        folder: str | os.PathLike | None = None,
        early_sends: bool = True,
        seed: int = 0,
        leader_timeout: float = 15.0,
        durable: bool = True,
    ) -> None:
        v.integer("n", n, ge=1, le=9, note="servers")
        super().__init__(nemesis=nemesis, folder=folder, seed=seed)
        from labkit.raft import RaftConfig

        RaftConfig(  # check the settings here, before any process starts
            election_timeout=tuple(election_timeout),
            heartbeat_interval=heartbeat_interval,
            max_entries=max_entries,
            max_inflight=max_inflight,
        )
        self.n = n
        self.ids: tuple[str, ...] = tuple(f"n{i}" for i in range(1, n + 1))
        self.params = {
            "election_timeout": list(election_timeout),
            "heartbeat_interval": heartbeat_interval,
            "max_entries": max_entries,
            "max_inflight": max_inflight,
        }
        self.client_timeout = _seconds("client_timeout", client_timeout)
        self.attempt_timeout = 0.3  # how long a client waits for one server before it tries the next
        self.leader_timeout = _seconds("leader_timeout", leader_timeout)
        self.early_sends = bool(early_sends)
        self.durable = bool(durable)
        self.registry = registry_for("raft")
        self.ports: dict[str, int] = {}
        self._peer_addr: dict[tuple[str, str], tuple[str, int]] = {}  # (src, dst) -> where src sends
        self._client_addr: dict[str, tuple[str, int]] = {}
        self._clients: dict[str, RaftClient] = {}
        self._status: dict[str, _StatusConn] = {}

    @property
    def attempt_timeout(self) -> float:
        """How long (seconds) a client waits for one server before it tries the next; set it before making clients."""
        return self._attempt_timeout

    @attempt_timeout.setter
    def attempt_timeout(self, value: float) -> None:
        self._attempt_timeout = _seconds("attempt_timeout", value)

    # ------------------------------------------------------------------
    # Starting and stopping
    # ------------------------------------------------------------------
    def _hold_ports(self) -> None:
        for nid in self.ids:
            self.ports[nid] = self._hold_port(socket.SO_REUSEPORT)

    async def _start_proxies(self) -> None:
        if not self.nemesis:  # the servers talk directly
            for a in self.ids:
                for b in self.ids:
                    if a != b:
                        self._peer_addr[a, b] = (LOOPBACK, self.ports[b])
                self._client_addr[a] = (LOOPBACK, self.ports[a])
            return
        net = self.network
        for a in self.ids:
            for b in self.ids:
                if a != b:
                    p = await Proxy(net, (LOOPBACK, self.ports[b]), src=a, dst=b).start()
                    self._proxies.append(p)
                    self._peer_addr[a, b] = p.address
        for b in self.ids:
            p = await Proxy(net, (LOOPBACK, self.ports[b]), src=CLIENTS, dst=b).start()
            self._proxies.append(p)
            self._client_addr[b] = p.address
        self._all_ports.update(p.port for p in self._proxies)

    async def _shutdown(self) -> None:
        for c in self._clients.values():
            c.close()
        for s in self._status.values():
            s.close()
        await super()._shutdown()

    def _spawn(self, nid: str) -> None:
        assert self.folder is not None
        folder = self.folder / nid
        folder.mkdir(exist_ok=True)
        sock = _listener(self.ports[nid])
        try:
            config = NodeConfig(
                node_id=nid,
                kind=self.kind,
                folder=str(folder),
                peers={p: self._peer_addr[nid, p] for p in self.ids if p != nid},
                listen_fd=sock.fileno(),
                seed=self.seed,
                params=self.params,
                parent=os.getpid(),
                early_sends=self.early_sends,
                durable=self.durable,
            )
            path = folder / "config.json"
            path.write_text(config.to_json())
            self.procs[nid] = spawn(
                [sys.executable, "-m", "labkit.net.node", str(path)],
                group=self._pgid,
                log=folder / "node.log",
                pass_fds=[sock.fileno()],
            )
        finally:
            sock.close()  # the child has its own copy; ours would keep the port bound after it dies
        self.paused.discard(nid)

    # ------------------------------------------------------------------
    # Looking
    # ------------------------------------------------------------------
    def status(self, nid: str, full: bool = False, timeout: float = 0.3) -> dict[str, Any] | None:
        """What server ``nid`` says about itself (role, term, log ...), or None if it does not answer."""
        self._check_server(nid)
        return self._run(self._status_of(nid, full, timeout))

    def statuses(self, timeout: float = 0.3) -> dict[str, dict[str, Any] | None]:
        """:meth:`status` of every server, asked in parallel."""
        return self._run(self._statuses(timeout))

    async def _statuses(self, timeout: float) -> dict[str, dict[str, Any] | None]:
        got = await asyncio.gather(*(self._status_of(nid, False, timeout) for nid in self.ids))
        return dict(zip(self.ids, got, strict=True))

    async def _status_of(self, nid: str, full: bool, timeout: float) -> dict[str, Any] | None:
        if nid in self.paused or self.procs.get(nid) is None or self.procs[nid].poll() is not None:
            return None
        conn = self._status.get(nid)
        if conn is None or conn.closed:
            conn = _StatusConn(self.registry)
            try:
                await asyncio.wait_for(
                    asyncio.get_running_loop().create_connection(lambda: conn, LOOPBACK, self.ports[nid]),
                    timeout,
                )
            except (TimeoutError, OSError):
                return None
            self._status[nid] = conn
        return await conn.ask(full, timeout)

    # ------------------------------------------------------------------
    # Clients
    # ------------------------------------------------------------------
    def client(self, name: str = "c0") -> RaftClient:
        """The client called ``name`` (created on first use); its operations go into :attr:`history`."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if name in self.ids:
            raise ValueError(f"name {name!r} is a server's id; pick another client name")
        c = self._clients.get(name)
        if c is None:
            c = RaftClient(
                name,
                dict(self._client_addr),
                self.registry,
                clock=self.now,
                timeout=self.client_timeout,
                attempt_timeout=self.attempt_timeout,
            )
            c.records = self.history  # one shared history, in the order operations start
            self._clients[name] = c
        return c

    # ------------------------------------------------------------------
    # Faults
    # ------------------------------------------------------------------
    def __repr__(self) -> str:
        state = "running" if self._loop is not None else "stopped"
        return f"ProcessCluster(n={self.n}, {state}, nemesis={self.nemesis})"


# How a server's port stays ours from start to close, across crashes and restarts
# (Linux's bind rules, socket(7): SO_REUSEADDR, SO_REUSEPORT):
#
# * the cluster keeps a *keeper* (procs.hold_port): a socket bound to the port with SO_REUSEPORT
#   only, never listening. Another socket can bind the port only if it asks
#   for SO_REUSEPORT too and runs as the same user; SO_REUSEADDR alone is not
#   enough, since the keeper did not set it. So a crashed server's port cannot
#   be taken by another program (a parallel test's server or proxy, an etcd)
#   before the server restarts; a client that connects meanwhile is refused
#   at once, because nothing listens;
# * each incarnation of the server gets a fresh *listener*: SO_REUSEPORT (to
#   share the port with the keeper) and SO_REUSEADDR (so the connections its
#   previous incarnation left in TIME_WAIT do not block it), bound and
#   listening here, passed to the child process, and closed here.
#
# Connections go only to listening sockets, so the keeper never takes one.


def _listener(port: int) -> socket.socket:
    """A listening socket on ``port``, which the cluster's keeper holds, for one server process."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((LOOPBACK, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


class _StatusConn(asyncio.Protocol):
    """The controller's own line to a server, for status questions (never through a proxy)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry
        self.reader = FrameReader()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.seq = 0
        self.waiting: dict[int, asyncio.Future] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.registry.encode(Hello("controller")))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        try:
            bodies = [self.registry.decode(b) for b in self.reader.feed(data)]
        except WireError:
            self.close()
            return
        for msg in bodies:
            if type(msg) is StatusReply:
                fut = self.waiting.pop(msg.seq, None)
                if fut is not None and not fut.done():
                    fut.set_result(msg.state)

    async def ask(self, full: bool, timeout: float) -> dict[str, Any] | None:
        if self.transport is None or self.closed:
            return None
        self.seq += 1
        seq = self.seq
        fut = asyncio.get_running_loop().create_future()
        self.waiting[seq] = fut
        self.transport.write(self.registry.encode(StatusRequest(seq, full)))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return None
        finally:
            self.waiting.pop(seq, None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.transport = None
