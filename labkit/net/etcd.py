"""A real etcd cluster on 127.0.0.1 under the same nemesis, judged by the same checker.

:class:`EtcdCluster` starts ``n`` etcd 3.4 members (Debian's ``etcd-server``
package) as processes of one group, each with its own data folder, and puts
a proxy (:mod:`labkit.net.proxy`, in *bytes* mode) in front of every member's
peer URL and client URL. Which member opened a peer connection is found from
the operating system (the process that owns the other end of the socket,
:func:`~labkit.net.proxy.socket_owner`), so a partition cuts exactly the
links between the two sides. Process faults
(``SIGKILL``, ``SIGSTOP`` / ``SIGCONT``, restart on the same data folder) are
the same as for our Raft. A restarted member comes back on the same peer
and client ports (the other members and the clients know it by those URLs):
the cluster holds every port from start to close, and :meth:`~labkit.net.base.ClusterBase.restart`
refuses, with a clear error, when another program took one meanwhile.

Clients (:class:`EtcdClient`) use `aetcd <https://pypi.org/project/aetcd/>`_,
a maintained asyncio client of etcd's v3 gRPC API that works with etcd 3.4:
it runs on the same asyncio loop as our proxies and clients, offers both
read modes, and per-call timeouts. Each client talks to one member (its
endpoint). Reads are

* *linearizable* (etcd's default): the member confirms with a quorum that it
  has everything committed before it answers (Raft's ReadIndex, Ongaro's
  thesis §6.4), so a member cut off from the majority cannot answer;
* *serializable*: the member answers from its own copy at once, which may be
  stale (etcd's documentation, "API guarantees").

``append`` is not an etcd operation: the client reads the value and writes
``value + suffix`` in a transaction that succeeds only if the value is
unchanged (compare-and-swap), retrying until it succeeds or the operation
times out. Operations that time out are unknown outcomes, as for our Raft.

When etcd is not installed, :func:`etcd_available` says so and
:data:`INSTALL_HINT` says what to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
from typing import Any

from labkit import validation as v
from labkit.history import HistoryEntry
from labkit.net.base import CLIENTS, ClusterBase, _seconds
from labkit.net.procs import LOOPBACK, port_is_free, spawn
from labkit.net.proxy import Proxy, socket_owner

__all__ = [
    "EtcdCluster",
    "EtcdClient",
    "INSTALL_HINT",
    "etcd_available",
    "etcd_binary",
    "read_mode_run",
    "stale_reads",
]

INSTALL_HINT = (
    "etcd is not installed. On Debian or Ubuntu: `sudo apt-get install etcd-server` "
    "(Binder installs it from binder/apt.txt), and the Python client with `pip install aetcd`."
)
_CANDIDATES = ("/usr/bin/etcd", "/usr/local/bin/etcd")


def etcd_binary() -> str | None:
    """The path of the etcd server program, or None."""
    found = shutil.which("etcd")
    if found:
        return found
    return next((p for p in _CANDIDATES if os.access(p, os.X_OK)), None)


def etcd_available() -> tuple[bool, str]:
    """``(True, version)`` when etcd 3.x and the aetcd client are installed, else ``(False, why)``."""
    binary = etcd_binary()
    if binary is None:
        return False, INSTALL_HINT
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"{binary} does not run ({e}). {INSTALL_HINT}"
    m = re.search(r"etcd Version: (\d+)\.(\d+)\.(\d+)", out)
    if m is None or m.group(1) != "3":
        return False, f"{binary} is not etcd 3.x ({out.strip()[:80]!r}). {INSTALL_HINT}"
    try:
        import aetcd  # noqa: F401
    except ImportError:
        return False, "etcd is installed, but its Python client is not: `pip install aetcd`."
    return True, ".".join(m.groups())


class EtcdClient:
    """A key-value client of one etcd member (see the module docstring); records a :class:`~labkit.history.HistoryEntry` per operation."""

    def __init__(
        self,
        name: str,
        member: str,
        address: tuple[str, int],
        *,
        serializable: bool,
        clock: Any,
        records: list[HistoryEntry],
        timeout: float = 1.0,
    ) -> None:
        self.name = name
        self.member = member
        self.address = address
        self.serializable = serializable
        self.clock = clock
        self.records = records
        self.timeout = timeout
        self._client: Any = None

    async def _connect(self) -> Any:
        if self._client is None:
            import aetcd

            c = aetcd.Client(host=self.address[0], port=self.address[1], timeout=self.timeout)
            await c.connect()
            self._client = c
        return self._client

    async def _get(self, key: str) -> tuple[str, int]:
        c = await self._connect()
        got = await c.get(key.encode(), serializable=self.serializable)
        if got is None:
            return "", 0
        return got.value.decode(), got.mod_revision

    async def _put(self, key: str, value: str) -> None:
        c = await self._connect()
        await c.put(key.encode(), value.encode())

    async def _append(self, key: str, value: str) -> None:
        c = await self._connect()
        k = key.encode()
        while True:
            got = await c.get(k)  # a linearizable read: the CAS below needs the latest value
            tx = c.transactions
            if got is None:
                compare = [tx.version(k) == 0]
                new = value
            else:
                compare = [tx.mod(k) == got.mod_revision]
                new = got.value.decode() + value
            ok, _ = await c.transaction(compare=compare, success=[tx.put(k, new.encode())], failure=[])
            if ok:
                return

    async def invoke(self, op: tuple) -> HistoryEntry:
        """Run ``("get", k)``, ``("put", k, v)`` or ``("append", k, v)``; unknown outcome after ``timeout``."""
        from labkit.raft.state_machine import validate_op

        validate_op(op)
        rec = HistoryEntry(self.name, op, self.clock(), served_by=self.member)
        self.records.append(rec)
        kind = op[0]
        try:
            if kind == "get":
                value, _ = await asyncio.wait_for(self._get(op[1]), self.timeout)
                rec.output = value
            elif kind == "put":
                await asyncio.wait_for(self._put(op[1], op[2]), self.timeout)
            else:
                await asyncio.wait_for(self._append(op[1], op[2]), self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception:  # a timeout, a refused connection, a gRPC error: we do not know
            rec.output = None
            await self._reset()
            rec.gave_up = self.clock()
        else:
            rec.ret = self.clock()
        return rec

    async def _reset(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            with contextlib.suppress(Exception):  # closing a broken channel may fail; it is gone either way
                await asyncio.wait_for(c.close(), 1.0)

    async def put(self, key: str, value: str) -> HistoryEntry:
        return await self.invoke(("put", key, value))

    async def get(self, key: str) -> HistoryEntry:
        return await self.invoke(("get", key))

    async def append(self, key: str, value: str) -> HistoryEntry:
        return await self.invoke(("append", key, value))

    def close(self) -> None:
        self._client = None


class EtcdCluster(ClusterBase):
    """``n`` etcd members as processes on loopback, with the nemesis (see the module docstring).

    ``heartbeat`` and ``election_timeout`` are etcd's ``--heartbeat-interval``
    and ``--election-timeout`` (in seconds here). ``serializable`` is the read
    mode of the clients :meth:`client` makes unless told otherwise.
    """

    folder_prefix = "labkit-etcd-"

    def __init__(
        self,
        n: int = 3,
        *,
        nemesis: bool = True,
        heartbeat: float = 0.05,
        election_timeout: float = 0.5,
        serializable: bool = False,
        client_timeout: float = 1.0,
        folder: str | os.PathLike | None = None,
        seed: int = 0,
        leader_timeout: float = 20.0,
    ) -> None:
        v.integer("n", n, ge=1, le=7, note="members")
        super().__init__(nemesis=nemesis, folder=folder, seed=seed)
        self.ids = tuple(f"m{i}" for i in range(1, n + 1))
        self.heartbeat = _seconds("heartbeat", heartbeat)
        self.election_timeout = _seconds("election_timeout", election_timeout)
        if self.election_timeout < 5 * self.heartbeat:
            raise ValueError(
                f"election_timeout ({election_timeout}) should be at least 5 heartbeats ({5 * self.heartbeat:g} s)"
            )
        self.serializable = v.boolean("serializable", serializable)
        self.client_timeout = _seconds("client_timeout", client_timeout)
        self.leader_timeout = _seconds("leader_timeout", leader_timeout)
        self.binary = etcd_binary()
        self.client_ports: dict[str, int] = {}
        self.peer_ports: dict[str, int] = {}
        self.peer_urls: dict[str, str] = {}
        self.client_addr: dict[str, tuple[str, int]] = {}
        self._clients: dict[str, EtcdClient] = {}
        self._status_clients: dict[str, Any] = {}
        self._member_names: dict[int, str] = {}

    # -- starting ----------------------------------------------------------------
    def start(self, wait: bool = True) -> EtcdCluster:
        """Start the proxies and the members; with ``wait``, return once a leader is known."""
        ok, why = etcd_available()
        if not ok:
            raise RuntimeError(why)
        return super().start(wait)

    def _hold_ports(self) -> None:
        for m in self.ids:
            self.client_ports[m] = self._hold_port(socket.SO_REUSEADDR)  # etcd binds with SO_REUSEADDR
            self.peer_ports[m] = self._hold_port(socket.SO_REUSEADDR)

    async def _start_proxies(self) -> None:
        net = self.network
        if not self.nemesis:
            for m in self.ids:
                self.peer_urls[m] = f"http://{LOOPBACK}:{self.peer_ports[m]}"
                self.client_addr[m] = (LOOPBACK, self.client_ports[m])
            return
        for m in self.ids:
            p = await Proxy(net, (LOOPBACK, self.peer_ports[m]), dst=m, frames=False).start()
            p.classify = self._classifier(p.port)
            self._proxies.append(p)
            self.peer_urls[m] = f"http://{LOOPBACK}:{p.port}"
        for m in self.ids:
            p = await Proxy(net, (LOOPBACK, self.client_ports[m]), src=CLIENTS, dst=m, frames=False).start()
            self._proxies.append(p)
            self.client_addr[m] = p.address
        self._all_ports.update(p.port for p in self._proxies)

    def _classifier(self, proxy_port: int) -> Any:
        """Who opened a connection to a peer proxy: the member whose process owns the other end.

        (Reading the request instead does not work: etcd reuses one HTTP
        connection for requests of several kinds, and only some name the sender.)
        """

        def classify(peer: Any) -> str | None:
            owners = {p.pid: m for m, p in self.procs.items() if p is not None}
            pid = socket_owner(peer, proxy_port, owners) if peer else None
            return owners.get(pid) if pid is not None else None

        return classify

    def _spawn(self, m: str) -> None:
        assert self.folder is not None and self.binary is not None
        if m in self.procs:  # a restart: the member must come back on the URLs the others know it by
            self._check_ports(m)
        cluster = ",".join(f"{x}={self.peer_urls[x]}" for x in self.ids)
        client_url = f"http://{LOOPBACK}:{self.client_ports[m]}"
        argv = [
            self.binary,
            "--name", m,
            "--data-dir", str(self.folder / m),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", f"http://{self.client_addr[m][0]}:{self.client_addr[m][1]}",
            "--listen-peer-urls", f"http://{LOOPBACK}:{self.peer_ports[m]}",
            "--initial-advertise-peer-urls", self.peer_urls[m],
            "--initial-cluster", cluster,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"labkit-{os.getpid()}-{id(self)}",
            "--heartbeat-interval", str(round(self.heartbeat * 1000)),
            "--election-timeout", str(round(self.election_timeout * 1000)),
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip
        self.procs[m] = spawn(argv, group=self._pgid, log=self.folder / f"{m}.log", guard=True)
        self.paused.discard(m)

    def _check_ports(self, m: str) -> None:
        """Refuse to restart ``m`` if another program took one of its ports while it was down.

        The cluster holds each port from start to close (:func:`~labkit.net.procs.hold_port`,
        with ``SO_REUSEADDR`` because that is the option etcd binds with), which keeps the
        kernel from handing it out; but a program that binds that very port number with
        ``SO_REUSEADDR`` and listens can still take it. etcd would then exit at once
        ("bind: address already in use"), so say so here instead.
        """
        for what, port in (("client", self.client_ports[m]), ("peer", self.peer_ports[m])):
            if not port_is_free(port):
                raise RuntimeError(
                    f"cannot restart {m}: its {what} port {LOOPBACK}:{port} was taken while it was down, "
                    f"and a member must come back on the URLs the other members and the clients know it by; "
                    f"stop what listens there, or close this cluster and start a new one"
                )

    async def _shutdown(self) -> None:
        for c in list(self._clients.values()):
            await c._reset()
        for sc in list(self._status_clients.values()):
            with contextlib.suppress(Exception):  # closing a channel to a dead member may fail
                await asyncio.wait_for(sc.close(), 1.0)
        self._status_clients.clear()
        await super()._shutdown()

    # -- looking -------------------------------------------------------------------
    def statuses(self, timeout: float = 0.5) -> dict[str, dict[str, Any] | None]:
        """Each member's ``role`` and ``term`` as it reports them (None if it does not answer)."""
        return self._run(self._statuses(timeout))

    async def _statuses(self, timeout: float) -> dict[str, dict[str, Any] | None]:
        got = await asyncio.gather(*(self._status_of(m, timeout) for m in self.ids))
        return dict(zip(self.ids, got, strict=True))

    async def _status_of(self, m: str, timeout: float) -> dict[str, Any] | None:
        p = self.procs.get(m)
        if m in self.paused or p is None or p.poll() is not None:
            return None
        import aetcd

        try:
            c = self._status_clients.get(m)
            if c is None:
                c = aetcd.Client(host=LOOPBACK, port=self.client_ports[m], timeout=timeout)
                await asyncio.wait_for(c.connect(), timeout)
                self._status_clients[m] = c
            # The maintenance Status RPC alone (aetcd's status() also lists the
            # members, which needs a quorum and fails on an isolated member).
            from aetcd import rpc

            s = await asyncio.wait_for(
                c.maintenancestub.Status(rpc.StatusRequest(), timeout=timeout), timeout
            )
        except Exception:
            self._status_clients.pop(m, None)
            return None
        self._member_names[s.header.member_id] = m
        leader = self._member_names.get(s.leader) if s.leader else None
        return {
            "role": "leader" if s.leader == s.header.member_id else "follower",
            "term": s.raftTerm,
            "leader": leader,
            "raft_index": s.raftIndex,
            "version": s.version,
        }

    # -- clients -------------------------------------------------------------------
    def client(
        self, name: str = "c0", member: str | None = None, serializable: bool | None = None
    ) -> EtcdClient:
        """The client called ``name`` (created on first use), talking to ``member`` (default: m1)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        c = self._clients.get(name)
        if c is None:
            member = self.ids[len(self._clients) % len(self.ids)] if member is None else member
            self._check_server(member, "member")
            c = EtcdClient(
                name,
                member,
                self.client_addr[member],
                serializable=self.serializable if serializable is None else bool(serializable),
                clock=self.now,
                records=self.history,
                timeout=self.client_timeout,
            )
            self._clients[name] = c
        elif member is not None and member != c.member:
            raise ValueError(f"client {name!r} already talks to {c.member}, not {member}")
        return c


def read_mode_run(
    c: EtcdCluster,
    serializable: bool,
    *,
    before: float = 1.0,
    hold: float = 3.0,
    after: float = 1.0,
    keys: tuple[str, ...] = ("a", "b"),
    seed: int = 0,
    check_timeout: float = 20.0,
) -> Any:
    """The read-mode lab: isolate the leader from the other members while clients read and write.

    Two clients per member: one reads (``get``), one appends (appends make
    staleness easy to see: a read that misses an acknowledged append is
    stale, see :func:`stale_reads`), each talking only to its own member; all reads use the
    given mode. After ``before`` seconds the member that leads is partitioned
    from the rest (clients still reach it) for ``hold`` seconds; then the
    network heals and the run goes on for ``after`` seconds. Returns the
    checked :class:`~labkit.net.nemesis.NemesisRun`.

    What to expect (and why the result is reliable, not lucky): the majority
    side elects a new leader within about two election timeouts and its
    writers keep writing, while the reader on the isolated member keeps
    asking it. A serializable read there answers from the member's own,
    now old, copy: once a write on the majority side has completed, that
    answer is stale, and the checker must reject the history. A linearizable
    read there cannot confirm it is up to date (no quorum), so it times out:
    an unknown outcome, never a wrong one.
    """
    from labkit.net.nemesis import Fault, run_nemesis

    tag = "ser" if serializable else "lin"
    clients = []
    for m in c.ids:
        # Short names: they become the appended values, which the history picture shows.
        r = c.client(f"{tag[0]}{seed}r@{m}", member=m, serializable=serializable)
        r.kinds = ("get",)  # type: ignore[attr-defined]
        w = c.client(f"{tag[0]}{seed}w@{m}", member=m, serializable=serializable)
        w.kinds = ("append",)  # type: ignore[attr-defined]
        clients += [r, w]
    keys = tuple(f"{tag}{seed}-{k}" for k in keys)  # fresh keys: the history starts from empty values
    schedule = [Fault(before, "partition", "leader"), Fault(hold, "heal")]
    return run_nemesis(
        c, schedule, clients=clients, keys=keys, seed=seed, tail=after, check_timeout=check_timeout
    )


def stale_reads(history: list[HistoryEntry]) -> dict[str, int]:
    """How many reads at each member missed an append acknowledged before the read began.

    An illustration beside the checker's verdict (for append-only keys): such a
    read cannot be linearized, since the append's point lies before the read's.
    """
    out: dict[str, int] = {}
    acked = sorted((r.ret, r.input[1], r.input[2]) for r in history if r.done and r.input[0] == "append")
    for r in history:
        if r.input[0] != "get" or not r.done:
            continue
        member = r.served_by or "?"
        out.setdefault(member, 0)
        if any(t < r.call and k == r.input[1] and v not in r.output for t, k, v in acked):
            out[member] += 1
    return out
