"""Our Raft key-value store as real processes on 127.0.0.1, started and stopped from Python.

>>> with ProcessCluster(n=3) as c:          # starts 3 processes, waits for a leader
...     c.put("x", "1")
...     c.get("x").output
'1'

:class:`ProcessCluster` is the real-world twin of :class:`~labkit.raft.RaftCluster`:
each server is a ``python -m labkit.net.node`` process with its own folder
(its write-ahead file and its log), and the faults have the same names:

* network (through the proxies of :mod:`labkit.net.proxy`): :meth:`partition`,
  :meth:`disconnect` / :meth:`connect`, :meth:`cut` (one way), :meth:`heal`,
  :meth:`set_delay`, :meth:`set_loss`. As in the simulator, a partition
  separates servers from servers while clients still reach every server;
  a disconnected server is cut off from everyone;
* processes: :meth:`crash` (``SIGKILL``: nothing is flushed, only what was
  synced survives), :meth:`restart` (a new process on the same folder),
  :meth:`pause` / :meth:`resume` (``SIGSTOP`` / ``SIGCONT``: the process is
  frozen but its sockets stay open, like a long garbage-collection pause).

Nothing here is deterministic: the operating system schedules the processes
and the clock is real. So instead of replaying a run we *record* it (every
client operation with its wall-clock call and return) and *check* the record
with :mod:`labkit.linearizability`.

Processes never outlive the cluster: :meth:`close` (the ``with`` block's end)
kills the process group, and :mod:`labkit.net.procs` makes sure they die
with the controller even if it is killed. With ``nemesis=False`` there are no
proxies (the nodes talk directly; faults other than process faults are
refused): that is what the benchmark measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from labkit.net.client import RaftClient, Record, to_operations
from labkit.net.codec import FrameReader, WireError, registry_for
from labkit.net.loop import LoopThread
from labkit.net.messages import Hello, StatusReply, StatusRequest
from labkit.net.node import NodeConfig
from labkit.net.procs import LOOPBACK, alive, port_is_free, spawn, start_reaper
from labkit.net.proxy import Network, Proxy

__all__ = ["ProcessCluster", "CLIENTS"]

CLIENTS = "clients"  # the name the network rules give to every client


def _seconds(name: str, value: Any, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not zero):
        raise ValueError(f"{name} must be a number of seconds {'>=' if zero else '>'} 0, got {value!r}")
    return float(value)


class ProcessCluster:
    """``n`` Raft servers as processes on loopback, with a nemesis and clients (see the module docstring).

    Parameters: ``n`` servers (1..9); ``nemesis`` puts a proxy on every link;
    ``election_timeout`` (low, high) and ``heartbeat_interval`` in seconds
    (longer than the simulator's: real processes share real CPUs, and a
    busy machine must not look like a dead leader); ``max_entries`` per
    AppendEntries; ``client_timeout``: how long a client tries one operation
    before it records an unknown outcome; ``folder``: where the servers keep
    their files (a fresh temporary folder by default, removed on close);
    ``early_sends``: let the leader's AppendEntries leave before its own sync
    (see :mod:`labkit.net.node`); ``seed`` seeds the proxies' loss and delay
    and the servers' timeouts (not the operating system: runs still differ).
    """

    def __init__(
        self,
        n: int = 3,
        *,
        nemesis: bool = True,
        election_timeout: tuple[float, float] = (0.3, 0.6),
        heartbeat_interval: float = 0.05,
        max_entries: int = 256,
        client_timeout: float = 1.0,
        folder: str | os.PathLike | None = None,
        early_sends: bool = True,
        seed: int = 0,
        leader_timeout: float = 15.0,
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int number of servers, got {n!r}")
        if not 1 <= n <= 9:
            raise ValueError(f"n must be between 1 and 9 servers, got {n}")
        if not isinstance(nemesis, bool):
            raise TypeError(f"nemesis must be True or False, got {nemesis!r}")
        from labkit.raft import RaftConfig

        RaftConfig(  # check the settings here, before any process starts
            election_timeout=tuple(election_timeout),
            heartbeat_interval=heartbeat_interval,
            max_entries=max_entries,
        )
        self.n = n
        self.ids: tuple[str, ...] = tuple(f"n{i}" for i in range(1, n + 1))
        self.nemesis = nemesis
        self.params = {
            "election_timeout": list(election_timeout),
            "heartbeat_interval": heartbeat_interval,
            "max_entries": max_entries,
        }
        self.client_timeout = _seconds("client_timeout", client_timeout)
        self.leader_timeout = _seconds("leader_timeout", leader_timeout)
        self.early_sends = bool(early_sends)
        self.seed = seed
        self._own_folder = folder is None
        self.folder = Path(folder) if folder is not None else None
        self.registry = registry_for("raft")
        self.network = Network(seed)
        self.events: list[tuple[float, str, Any]] = []
        self.history: list[Record] = []
        self.procs: dict[str, subprocess.Popen | None] = {}
        self.paused: set[str] = set()
        self.ports: dict[str, int] = {}
        self._proxies: list[Proxy] = []
        self._peer_addr: dict[tuple[str, str], tuple[str, int]] = {}  # (src, dst) -> where src sends
        self._client_addr: dict[str, tuple[str, int]] = {}
        self._clients: dict[str, RaftClient] = {}
        self._status: dict[str, _StatusConn] = {}
        self._loop: LoopThread | None = None
        self._reaper: subprocess.Popen | None = None
        self._pgid: int | None = None
        self._t0 = time.monotonic()
        self._all_ports: set[int] = set()
        self._started = False

    # ------------------------------------------------------------------
    # Starting and stopping
    # ------------------------------------------------------------------
    def __enter__(self) -> ProcessCluster:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def now(self) -> float:
        """Seconds since the cluster started (the clock of the history and the events)."""
        return time.monotonic() - self._t0

    def start(self, wait: bool = True) -> ProcessCluster:
        """Start the proxies and the servers; with ``wait``, return once a leader is known."""
        if self._started:
            raise RuntimeError("this cluster is already started")
        self._started = True
        try:
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix="labkit-net-"))
            self.folder.mkdir(parents=True, exist_ok=True)
            self._loop = LoopThread()
            self._reaper = start_reaper()
            self._pgid = self._reaper.pid
            for nid in self.ids:
                self.ports[nid] = _reserve_port()
            self._all_ports.update(self.ports.values())
            if self.nemesis:
                self._loop.run(self._start_proxies())
            else:
                for a in self.ids:
                    for b in self.ids:
                        if a != b:
                            self._peer_addr[a, b] = (LOOPBACK, self.ports[b])
                    self._client_addr[a] = (LOOPBACK, self.ports[a])
            self._t0 = time.monotonic()
            for nid in self.ids:
                self._spawn(nid)
            if wait and self.wait_for_leader(self.leader_timeout) is None:
                raise RuntimeError(
                    f"no leader within {self.leader_timeout:g} s; the servers' logs are in {self.folder}"
                )
        except BaseException:
            self.close()
            raise
        return self

    async def _start_proxies(self) -> None:
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

    def _spawn(self, nid: str) -> None:
        assert self.folder is not None
        folder = self.folder / nid
        folder.mkdir(exist_ok=True)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, self.ports[nid]))
        sock.listen(128)
        try:
            config = NodeConfig(
                node_id=nid,
                kind="raft",
                folder=str(folder),
                peers={p: self._peer_addr[nid, p] for p in self.ids if p != nid},
                listen_fd=sock.fileno(),
                seed=self.seed,
                params=self.params,
                parent=os.getpid(),
                early_sends=self.early_sends,
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

    def close(self) -> None:
        """Stop every process and proxy, free every port, remove the temporary folder."""
        for p in list(self.procs.values()) + [self._reaper]:
            if p is not None and p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
        if self._pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pgid, signal.SIGKILL)
        for p in list(self.procs.values()) + [self._reaper]:
            if p is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(5)
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.run(self._shutdown(), timeout=10)
            self._loop.stop()
            self._loop = None
        if self._own_folder and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def _shutdown(self) -> None:
        for c in self._clients.values():
            c.close()
        for s in self._status.values():
            s.close()
        for p in self._proxies:
            await p.close()
        await asyncio.sleep(0)

    @property
    def pids(self) -> dict[str, int]:
        """The process id of each server process started so far (the latest incarnation)."""
        return {nid: p.pid for nid, p in self.procs.items() if p is not None}

    def all_pids(self) -> list[int]:
        """Every process this cluster started that may still exist (servers and the reaper)."""
        out = [p.pid for p in self.procs.values() if p is not None]
        if self._reaper is not None:
            out.append(self._reaper.pid)
        return out

    @property
    def used_ports(self) -> set[int]:
        """Every port this cluster bound (servers and proxies)."""
        return set(self._all_ports)

    def leftovers(self) -> tuple[list[int], list[int]]:
        """``(live pids, bound ports)`` of this cluster; both empty after a clean close."""
        pids = [pid for pid in self.all_pids() if alive(pid)]
        ports = [p for p in sorted(self._all_ports) if not port_is_free(p)]
        return pids, ports

    # ------------------------------------------------------------------
    # Looking
    # ------------------------------------------------------------------
    def _check_server(self, nid: Any, name: str = "node") -> str:
        if nid not in self.ids:
            raise ValueError(f"{name} must be one of {', '.join(self.ids)}, got {nid!r}")
        return nid

    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the cluster is not running: use it inside `with ProcessCluster(...) as c:`")
        return self._loop.run(coro, timeout)

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

    def roles(self) -> dict[str, tuple[str, int] | None]:
        """``server -> (role, term)``; None for a server that is down, paused or silent."""
        return {nid: (s["role"], s["term"]) if s else None for nid, s in self.statuses().items()}

    def leader(self) -> str | None:
        """The answering leader with the highest term, or None."""
        best: tuple[int, str] | None = None
        for nid, s in self.statuses().items():
            if s and s["role"] == "leader" and (best is None or s["term"] > best[0]):
                best = (s["term"], nid)
        return None if best is None else best[1]

    def wait_for_leader(self, timeout: float = 10.0) -> str | None:
        """Poll until some server leads (and answers); its id, or None after ``timeout`` s."""
        deadline = time.monotonic() + _seconds("timeout", timeout)
        while True:
            leader = self.leader()
            if leader is not None or time.monotonic() >= deadline:
                return leader
            time.sleep(0.05)

    def is_up(self, nid: str) -> bool:
        """True while the process of ``nid`` runs (paused counts as up)."""
        p = self.procs.get(self._check_server(nid))
        return p is not None and p.poll() is None

    def log_text(self, nid: str) -> str:
        """What server ``nid`` wrote to its log file so far (all its incarnations)."""
        assert self.folder is not None
        path = self.folder / self._check_server(nid) / "node.log"
        return path.read_text() if path.exists() else ""

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
                name, dict(self._client_addr), self.registry, clock=self.now, timeout=self.client_timeout
            )
            c.records = self.history  # one shared history, in the order operations start
            self._clients[name] = c
        return c

    def put(self, key: str, value: str, client: str = "c0") -> Record:
        """Set ``key`` to ``value``; the operation's :class:`Record`."""
        return self._run(self.client(client).put(key, value))

    def get(self, key: str, client: str = "c0") -> Record:
        """Read ``key`` (through the log: linearizable)."""
        return self._run(self.client(client).get(key))

    def append(self, key: str, value: str, client: str = "c0") -> Record:
        """Append ``value`` to ``key``."""
        return self._run(self.client(client).append(key, value))

    def operations(self) -> list[Any]:
        """:attr:`history` as :class:`labkit.linearizability.Operation` records."""
        return to_operations(self.history)

    def submit(self, coro: Any) -> Any:
        """Start a coroutine on the cluster's loop; a ``concurrent.futures.Future`` of its result."""
        if self._loop is None:
            coro.close()
            raise RuntimeError("the cluster is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop.loop)

    def lift_faults(self, timeout: float = 15.0) -> str | None:
        """Heal the network, resume paused and restart crashed servers; wait for a leader (its id)."""
        if self.nemesis:
            self.heal()
            if self.network.loss:
                self.set_loss(0.0)
            if self.network.delay or self.network.jitter:
                self.set_delay(0.0)
        for nid in self.ids:
            if nid in self.paused:
                self.resume(nid)
            elif not self.is_up(nid):
                self.restart(nid)
        return self.wait_for_leader(timeout)

    def final_reads(
        self, keys: Iterable[str], timeout: float = 10.0, client: str = "final"
    ) -> dict[str, Any]:
        """Read each key until a read succeeds (at most ``timeout`` s in all); None where none did."""
        deadline = time.monotonic() + timeout
        out: dict[str, Any] = {}
        for k in keys:
            out[k] = None
            while time.monotonic() < deadline:
                r = self.get(k, client=client)
                if r.done:
                    out[k] = r.output
                    break
        return out

    # ------------------------------------------------------------------
    # Faults
    # ------------------------------------------------------------------
    def _event(self, kind: str, arg: Any = None) -> None:
        self.events.append((self.now(), kind, arg))

    def crash(self, nid: str) -> None:
        """Kill server ``nid`` with SIGKILL: it loses everything not yet synced to its disk."""
        p = self.procs.get(self._check_server(nid))
        if p is None or p.poll() is not None:
            return
        if nid in self.paused:
            p.send_signal(signal.SIGCONT)
        p.kill()
        p.wait(5)
        self.paused.discard(nid)
        self._event("crash", nid)

    def restart(self, nid: str) -> None:
        """Start a new process for a crashed server, on the same folder (its durable state)."""
        self._check_server(nid)
        if self.is_up(nid):
            return
        self._spawn(nid)
        self._event("restart", nid)

    def pause(self, nid: str) -> None:
        """Freeze server ``nid`` (SIGSTOP): it neither runs nor answers, but its sockets stay open."""
        p = self.procs.get(self._check_server(nid))
        if p is None or p.poll() is not None or nid in self.paused:
            return
        p.send_signal(signal.SIGSTOP)
        self.paused.add(nid)
        self._event("pause", nid)

    def resume(self, nid: str) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        p = self.procs.get(self._check_server(nid))
        if p is None or nid not in self.paused:
            return
        p.send_signal(signal.SIGCONT)
        self.paused.discard(nid)
        self._event("resume", nid)

    def _need_nemesis(self, what: str) -> None:
        if not self.nemesis:
            raise RuntimeError(f"{what} needs the proxies: start the cluster with nemesis=True")

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the servers into groups that cannot talk to each other (clients reach everyone).

        Servers named in no group form one more group. Replaces an earlier partition.
        """
        self._need_nemesis("partition")
        if not groups:
            raise ValueError("partition needs at least one group of server ids")
        seen: dict[str, int] = {}
        norm = []
        for i, g in enumerate(groups):
            if isinstance(g, str):
                raise TypeError(
                    f"each group must be a list of server ids, got the string {g!r}; write [{g!r}]"
                )
            members = [self._check_server(x, f"group {i} member") for x in g]
            if not members:
                raise ValueError(f"group {i} is empty; every group needs at least one server")
            for x in members:
                if x in seen:
                    raise ValueError(f"server {x!r} is in group {seen[x]} and group {i}; pick one side")
                seen[x] = i
            norm.append(members)
        self._loop_call(self._partition, norm)
        self._event("partition", [sorted(g) for g in norm])

    def _partition(self, groups: list[list[str]]) -> None:
        net = self.network
        net.cuts = {c for c in net.cuts if CLIENTS in c}  # a new partition replaces the old one
        net.partition(groups, self.ids)

    def disconnect(self, nid: str) -> None:
        """Cut ``nid`` off from every server and every client."""
        self._need_nemesis("disconnect")
        self._check_server(nid)
        self._loop_call(self.network.isolate, nid, [*self.ids, CLIENTS])
        self._event("disconnect", nid)

    def cut(self, src: str, dst: str) -> None:
        """A one-way partition: messages from ``src`` to ``dst`` are lost (``dst``'s replies still flow)."""
        self._need_nemesis("cut")
        self._check_server(src, "src")
        self._check_server(dst, "dst")
        if src == dst:
            raise ValueError(f"src and dst must differ, got {src!r} twice")
        self._loop_call(self.network.cut, src, dst)
        self._event("cut", (src, dst))

    def heal(self) -> None:
        """Remove every partition, cut and disconnection (delay and loss stay)."""
        if self.nemesis:
            self._loop_call(self.network.heal)
        self._event("heal")

    def set_delay(self, delay: float, jitter: float = 0.0) -> None:
        """Add ``delay`` (+ up to ``jitter``) seconds to every message on every link."""
        self._need_nemesis("set_delay")
        self._loop_call(self.network.set_delay, delay, jitter)
        self._event("delay", (delay, jitter))

    def set_loss(self, p: float) -> None:
        """Lose each message on every link with probability ``p``."""
        self._need_nemesis("set_loss")
        self._loop_call(self.network.set_loss, p)
        self._event("loss", p)

    def _loop_call(self, fn: Any, *args: Any) -> None:
        async def call() -> None:
            fn(*args)

        self._run(call())

    def __repr__(self) -> str:
        state = "running" if self._loop is not None else "stopped"
        return f"ProcessCluster(n={self.n}, {state}, nemesis={self.nemesis})"


def _reserve_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


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
