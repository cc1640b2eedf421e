"""What every cluster of processes shares: faults by name, clients' history, and a clean stop.

:class:`ClusterBase` is the part of :class:`~labkit.net.ProcessCluster` (our
Raft) and :class:`~labkit.net.etcd.EtcdCluster` (etcd) that does not depend on
what runs inside the processes:

* network faults, through the proxies of :mod:`labkit.net.proxy`:
  :meth:`~ClusterBase.partition`, :meth:`~ClusterBase.disconnect`,
  :meth:`~ClusterBase.cut` (one way), :meth:`~ClusterBase.heal`,
  :meth:`~ClusterBase.set_delay`, :meth:`~ClusterBase.set_loss`. As in
  :class:`~labkit.raft.RaftCluster`, a partition separates servers from
  servers while clients still reach every server, and a disconnected server
  is cut off from everyone;
* process faults: :meth:`~ClusterBase.crash` (``SIGKILL``: only what was
  synced to disk survives), :meth:`~ClusterBase.restart` (a new process on
  the same folder), :meth:`~ClusterBase.pause` / :meth:`~ClusterBase.resume`
  (``SIGSTOP`` / ``SIGCONT``: frozen, sockets still open, like a long
  garbage-collection pause);
* the record: every client operation goes into :attr:`~ClusterBase.history`
  with wall-clock call and return times (seconds since the cluster started),
  every fault into :attr:`~ClusterBase.events`;
* :meth:`~ClusterBase.close` kills the servers, dismisses the reaper
  (:mod:`labkit.net.procs`), kills anything left in the process group,
  closes the proxies and removes the temporary folder; :meth:`~ClusterBase.leftovers`
  proves it (no live process, no bound port).

:meth:`~ClusterBase.start` is the same for every cluster: a folder, the loop and the
reaper, the ports, the proxies, the processes, then wait for a leader. A subclass
provides the steps that differ: ``_hold_ports()``, ``_start_proxies()``,
``_spawn(nid)``, ``statuses()`` (each server's ``role`` and ``term`` at least),
``client(name)`` and ``_shutdown()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from labkit import validation as v
from labkit import watchdog
from labkit.history import HistoryEntry
from labkit.net.client import to_operations
from labkit.net.loop import LoopThread
from labkit.net.procs import alive, hold_port, port_is_free, start_reaper
from labkit.net.proxy import Network, Proxy

__all__ = ["ClusterBase", "CLIENTS"]

CLIENTS = "clients"  # the name the network rules give to every client


def _seconds(name: str, value: Any, *, zero: bool = False) -> float:
    if zero:
        return v.number(name, value, ge=0, unit="seconds")
    return v.number(name, value, gt=0, unit="seconds")


class ClusterBase:
    """Processes, proxies, faults and the history (see the module docstring)."""

    ids: tuple[str, ...] = ()
    leader_timeout: float = 15.0  # how long start(wait=True) waits for a leader
    folder_prefix = "labkit-net-"  # of the temporary folder made when none is given

    def __init__(self, *, nemesis: bool, folder: str | os.PathLike | None, seed: int) -> None:
        self.nemesis = v.boolean("nemesis", nemesis)
        self.seed = seed
        self._own_folder = folder is None
        self.folder = Path(folder) if folder is not None else None
        self.network = Network(seed)
        self.events: list[tuple[float, str, Any]] = []
        self.history: list[HistoryEntry] = []
        self.procs: dict[str, subprocess.Popen | None] = {}
        self.paused: set[str] = set()
        self._proxies: list[Proxy] = []
        self._loop: LoopThread | None = None
        self._reaper: subprocess.Popen | None = None
        self._pgid: int | None = None
        self._t0 = time.monotonic()
        self._all_ports: set[int] = set()
        # The servers' ports, held from start to close, across crashes and restarts (procs.hold_port).
        self._keepers: list[socket.socket] = []
        self._started = False

    def start(self, wait: bool = True) -> Self:
        """Start the proxies and the servers; with ``wait``, return once a leader is known."""
        if self._started:
            raise RuntimeError("this cluster is already started")
        self._started = True
        try:
            if self.folder is None:
                self.folder = Path(tempfile.mkdtemp(prefix=self.folder_prefix))
            self.folder.mkdir(parents=True, exist_ok=True)
            self._loop = LoopThread()
            self._reaper = start_reaper(folder=self.folder if self._own_folder else None)
            self._pgid = self._reaper.pid
            self._hold_ports()
            self._loop.run(self._start_proxies())
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

    def _hold_port(self, option: int) -> int:
        """A free port, held until the cluster closes (:func:`~labkit.net.procs.hold_port`): nothing
        else can take it, even between a crash and a restart of the server it is for."""
        sock = hold_port(option)
        self._keepers.append(sock)
        port = sock.getsockname()[1]
        self._all_ports.add(port)
        return port

    def _hold_ports(self) -> None:  # pragma: no cover - subclasses
        """Choose and hold every server's ports (with :meth:`_hold_port`)."""
        raise NotImplementedError

    async def _start_proxies(self) -> None:  # pragma: no cover - subclasses
        """A proxy on every link (with the nemesis), or the servers' own addresses (without)."""
        raise NotImplementedError

    def _spawn(self, nid: str) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError

    def statuses(self, timeout: float = 0.3) -> dict[str, dict[str, Any] | None]:  # pragma: no cover
        raise NotImplementedError

    def client(self, name: str = "c0") -> Any:  # pragma: no cover
        raise NotImplementedError

    async def _shutdown(self) -> None:
        for p in self._proxies:
            await p.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def now(self) -> float:
        """Seconds since the cluster started (the clock of the history and the events)."""
        return time.monotonic() - self._t0

    def close(self) -> None:
        """Stop every process and proxy, free every port, remove the temporary folder."""
        servers = [p for p in self.procs.values() if p is not None]
        for p in servers:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()  # SIGKILL: works on a paused server too
        for p in servers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        if self._reaper is not None:  # the servers are gone: the reaper has nothing left to do
            watchdog.dismiss(self._reaper, before_reaping=self._kill_group)
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.run(self._shutdown(), timeout=10)
            self._loop.stop()
            self._loop = None
        if self._own_folder and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        for sock in self._keepers:  # the servers are gone: give their ports back
            sock.close()
        self._keepers.clear()

    def _kill_group(self) -> None:
        """Kill whatever is left in the cluster's process group (the servers are known and gone already)."""
        if self._pgid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pgid, signal.SIGKILL)

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

    def _check_server(self, nid: Any, name: str = "node") -> str:
        if nid not in self.ids:
            raise ValueError(f"{name} must be one of {', '.join(self.ids)}, got {nid!r}")
        return nid

    def _run(self, coro: Any, timeout: float | None = None) -> Any:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the cluster is not running: use it inside `with ProcessCluster(...) as c:`")
        return self._loop.run(coro, timeout)

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

    def put(self, key: str, value: str, client: str = "c0") -> HistoryEntry:
        """Set ``key`` to ``value``; the operation's :class:`~labkit.history.HistoryEntry`."""
        return self._run(self.client(client).put(key, value))

    def get(self, key: str, client: str = "c0") -> HistoryEntry:
        """Read ``key``."""
        return self._run(self.client(client).get(key))

    def append(self, key: str, value: str, client: str = "c0") -> HistoryEntry:
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
        norm = v.partition_groups(groups, self._check_server)
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
        return f"{type(self).__name__}(n={len(self.ids)}, {state}, nemesis={self.nemesis})"
