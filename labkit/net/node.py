"""One sans-IO node as an operating-system process: asyncio TCP on 127.0.0.1 and a disk.

``python -m labkit.net.node CONFIG.json`` runs one node. It is the simulator's
job done with real things: the same :class:`~labkit.sim.Node` handlers, the
same :class:`~labkit.sim.Context`, but messages travel over TCP, timers are
``loop.call_later``, ``ctx.now`` is the monotonic clock and ``ctx.storage``
is a file (:class:`~labkit.net.storage.DiskStorage`) in the node's folder.

The driver's loop is etcd raft's ``Ready`` loop (DESIGN.md): everything that
arrived since the last turn (messages from peers and clients, timers that
fired) is handed to the node, one handler call each; then the effects of the
whole batch are carried out together:

1. the batch's ``persists`` are appended to the write-ahead file;
2. messages of the types the registry marks *early* are sent;
3. the file is ``fsync``-ed (one sync for the whole batch: group commit);
4. every other message is sent;
5. timers are set and cancelled.

So a message is sent only after the durable state it depends on is on disk
(the ordering rule of :class:`~labkit.sim.Effects`). The *early* exception is
the leader's AppendEntries: it promises nothing about the leader's own disk,
so it may leave while the leader's write is being synced (Ongaro's thesis,
§10.2.1: "the leader can write to its disk in parallel with replicating to
its followers"). The leader still never *counts* its own copy before it is
durable: the sync blocks the loop, so no reply is handled until it is done.
A follower's reply, a vote and an answer to a client are never early.

Connections: the first frame on every connection is a
:class:`~labkit.net.messages.Hello` naming the speaker. A node sends to each
peer over a connection it opens itself (directed links, so a proxy in
between can cut one direction); clients send requests on their own
connection and get the answers back on it. A frame that is too long, not
JSON, or not of a registered type closes that connection with a log line;
the node itself keeps running. Messages to a peer that is unreachable are
dropped, as a network would: the protocol retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from labkit.net.codec import MAX_FRAME, FrameReader, Registry, WireError, registry_for
from labkit.net.messages import Hello, StatusReply, StatusRequest
from labkit.net.procs import set_parent_death_signal
from labkit.net.storage import DiskStorage
from labkit.sim import Context, Node

__all__ = ["NodeConfig", "NodeDriver", "main", "KINDS"]

log = logging.getLogger("labkit.net.node")

_SEND_BUFFER_LIMIT = 4 << 20  # bytes queued for one peer before its messages are dropped
_RECONNECT_EVERY = 0.05  # seconds between connection attempts to one peer


@dataclass
class NodeConfig:
    """Everything a node process needs, written as JSON by the controller.

    ``peers`` maps every other node id to the ``(host, port)`` this node sends
    to (the peer itself, or the proxy of that link). ``params`` are the node
    kind's settings (for Raft: ``election_timeout``, ``heartbeat_interval``,
    ``max_entries``). ``listen_fd``: an already bound and listening socket
    inherited from the controller (no race for the port), or -1 to bind ``port``.
    ``durable=False`` keeps the node's storage in memory only: a deliberately
    broken server that forgets everything when it restarts (tests use it to
    show that the checks catch lost writes).
    """

    node_id: str
    kind: str
    folder: str
    peers: dict[str, tuple[str, int]]
    port: int = 0
    listen_fd: int = -1
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    parent: int | None = None
    early_sends: bool = True
    max_frame: int = MAX_FRAME
    durable: bool = True

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> NodeConfig:
        raw = json.loads(text)
        raw["peers"] = {k: (v[0], int(v[1])) for k, v in raw["peers"].items()}
        return cls(**raw)


# ---------------------------------------------------------------------------
# Node kinds: how to build one, and what its status says
# ---------------------------------------------------------------------------
def _make_raft(cfg: NodeConfig) -> Callable[[str], Node]:
    from labkit.raft import RaftConfig, RaftNode

    p = dict(cfg.params)
    if "election_timeout" in p:
        p["election_timeout"] = tuple(p["election_timeout"])
    config = RaftConfig(**p)
    ids = (cfg.node_id, *cfg.peers)
    return lambda node_id: RaftNode(node_id, ids, config)


def _raft_status(node: Any, full: bool) -> dict[str, Any]:
    out = {
        "role": node.role.value,
        "term": node.current_term,
        "voted_for": node.voted_for,
        "leader_id": node.leader_id,
        "commit_index": node.commit_index,
        "last_applied": node.last_applied,
        "last_index": node.log.last_index,
    }
    if full:
        out["data"] = dict(getattr(node.state_machine, "data", {}))
    return out


def _make_quorum(cfg: NodeConfig) -> Callable[[str], Node]:
    from labkit.replication import Mode, ReplicaNode, Resolution, StoreConfig

    p = dict(cfg.params)
    p["nodes"] = tuple(p.get("nodes", sorted((cfg.node_id, *cfg.peers))))
    for name, enum in (("mode", Mode), ("resolution", Resolution)):
        if isinstance(p.get(name), str):  # JSON holds the member's name
            p[name] = enum[p[name]]
    config = StoreConfig(**p)
    return ReplicaNode.factory(config)


def _quorum_status(node: Any, full: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"keys": len(node.data), "hints": len(node.hints)}
    if full:
        out["data"] = {k: repr(v) for k, v in node.data.items()}
    return out


KINDS: dict[str, tuple[Callable[[NodeConfig], Callable[[str], Node]], Callable[[Any, bool], dict]]] = {
    "raft": (_make_raft, _raft_status),
    "quorum": (_make_quorum, _quorum_status),
}


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------
class _Inbound(asyncio.Protocol):
    """A connection someone opened to us: a peer's messages, or a client's requests."""

    def __init__(self, driver: NodeDriver) -> None:
        self.driver = driver
        self.reader = FrameReader(driver.config.max_frame)
        self.transport: asyncio.Transport | None = None
        self.sender: str | None = None
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        addr = transport.get_extra_info("peername")
        self.peer = f"{addr[0]}:{addr[1]}" if addr else "?"

    def data_received(self, data: bytes) -> None:
        d = self.driver
        try:
            for body in self.reader.feed(data):
                msg = d.registry.decode(body)
                if self.sender is None:
                    if type(msg) is not Hello or not isinstance(msg.sender, str) or not msg.sender:
                        raise WireError(
                            f"the first frame must be a Hello naming the sender, got {msg!r}"[:200]
                        )
                    self.sender = msg.sender
                    if msg.sender not in d.peers:
                        d.clients[msg.sender] = self
                    continue
                if type(msg) is StatusRequest:
                    self.write(d.registry.encode(d.status_reply(msg)))
                    continue
                if type(msg) is Hello:
                    raise WireError("a second Hello on one connection")
                d.deliver(self.sender, msg)
        except WireError as e:
            d.refused += 1
            log.warning("refused connection from %s (%s): %s", self.peer, self.sender or "no hello", e)
            self.close()

    def write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        d = self.driver
        if self.sender is not None and d.clients.get(self.sender) is self:
            del d.clients[self.sender]
        self.transport = None


class _PeerLink(asyncio.Protocol):
    """Our connection to one peer (send only; opened on demand, re-opened after a failure)."""

    def __init__(self, driver: NodeDriver, peer: str, addr: tuple[str, int]) -> None:
        self.driver = driver
        self.peer = peer
        self.addr = addr
        self.transport: asyncio.Transport | None = None
        self.connecting = False
        self.last_attempt = -math.inf
        self.dropped = 0

    def send(self, data: bytes) -> None:
        t = self.transport
        if t is None or t.is_closing():
            self.dropped += 1
            self._connect()
            return
        if t.get_write_buffer_size() > _SEND_BUFFER_LIMIT:
            self.dropped += 1  # the peer does not read (paused?): lose it, as a full network would
            return
        t.write(data)

    def _connect(self) -> None:
        now = time.monotonic()
        if self.connecting or now - self.last_attempt < _RECONNECT_EVERY:
            return
        self.connecting = True
        self.last_attempt = now
        self.driver.loop.create_task(self._open())

    async def _open(self) -> None:
        loop = self.driver.loop
        try:
            await asyncio.wait_for(loop.create_connection(lambda: self, *self.addr), 1.0)
        except (TimeoutError, OSError):
            pass
        finally:
            self.connecting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.driver.registry.encode(Hello(self.driver.node_id)))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        pass  # peers never answer on our connection; their replies come on theirs

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class _Known:
    """The ids a message may go to: the peers and every client connected now."""

    __slots__ = ("driver",)

    def __init__(self, driver: NodeDriver) -> None:
        self.driver = driver

    def __contains__(self, dst: object) -> bool:
        d = self.driver
        return dst in d.peers or dst in d.clients or dst == d.node_id

    def __iter__(self) -> Iterator[str]:
        d = self.driver
        return iter([d.node_id, *d.peers, *d.clients])


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------
class NodeDriver:
    """Runs one node on an asyncio loop: see the module docstring for the loop."""

    def __init__(self, config: NodeConfig, loop: asyncio.AbstractEventLoop) -> None:
        if config.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {config.kind!r}")
        self.config = config
        self.loop = loop
        self.node_id = config.node_id
        self.registry: Registry = registry_for(config.kind)
        make, self._status = KINDS[config.kind]
        self.node: Node = make(config)(config.node_id)
        self.peers: dict[str, _PeerLink] = {p: _PeerLink(self, p, a) for p, a in config.peers.items()}
        self.peer_ids = tuple(config.peers)
        self.clients: dict[str, _Inbound] = {}
        self.storage = DiskStorage(config.folder, self.registry, memory=not config.durable).open()
        self.random = random.Random(f"{config.seed}/{config.node_id}/{os.getpid()}")
        self._known = _Known(self)
        self._inbox: deque[tuple[Any, ...]] = deque()
        self._scheduled = False
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._early = self.registry.early if config.early_sends else frozenset()
        self._t0 = time.monotonic()
        self.refused = 0
        self.batches = 0
        self.handled = 0
        self.errors = 0

    # -- what Context reads ----------------------------------------------------
    @property
    def now(self) -> float:
        return time.monotonic() - self._t0

    def local_time(self, node_id: str) -> float:
        return time.time()

    # -- inputs ------------------------------------------------------------------
    def deliver(self, src: str, msg: Any) -> None:
        self._inbox.append((src, msg))
        self._schedule()

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self._inbox.append((None, name))
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._drain)

    def start(self) -> None:
        """Boot the node: open a connection to every peer, then ``on_start`` as the first batch."""
        for link in self.peers.values():
            link._connect()  # the first messages need not wait for a connection opened on demand
        self._run_batch([(None, None)])

    # -- the Ready loop ------------------------------------------------------------
    def _drain(self) -> None:
        self._scheduled = False
        items, self._inbox = list(self._inbox), deque()
        if items:
            self._run_batch(items)

    def _run_batch(self, items: list[tuple[Any, ...]]) -> None:
        node, storage = self.node, self.storage
        persists: list = []
        sends: list = []
        timers: list = []
        for src, what in items:
            ctx = Context(self.node_id, self.peer_ids, self.random, storage, self, self._known)
            try:
                if src is None and what is None:
                    node.on_start(ctx)
                elif src is None:
                    node.on_timer(ctx, what)
                else:
                    node.on_message(ctx, src, what)
            except Exception:  # a handler's failure discards its own effects only
                self.errors += 1
                log.exception("handler failed on %r from %s; its effects are discarded", what, src)
                continue
            eff = ctx.effects
            persists += eff.persists
            sends += eff.sends
            timers += eff.timers
        self.batches += 1
        self.handled += len(items)
        storage.write(persists)
        early = self._early
        if early:
            for dst, msg in sends:
                if type(msg) in early:
                    self._send(dst, msg)
        storage.sync()
        for dst, msg in sends:
            if type(msg) not in early:
                self._send(dst, msg)
        for name, delay in timers:
            old = self._timers.pop(name, None)
            if old is not None:
                old.cancel()
            if delay is not None:
                self._timers[name] = self.loop.call_later(delay, self._fire, name)

    def _send(self, dst: str, msg: Any) -> None:
        data = self.registry.encode(msg)
        link = self.peers.get(dst)
        if link is not None:
            link.send(data)
            return
        conn = self.clients.get(dst)
        if conn is not None:
            conn.write(data)
        elif dst == self.node_id:
            self.deliver(dst, msg)

    # -- status ----------------------------------------------------------------
    def status_reply(self, req: StatusRequest) -> StatusReply:
        state = self._status(self.node, req.full is True)
        state.update(
            batches=self.batches,
            handled=self.handled,
            syncs=self.storage.syncs,
            refused=self.refused,
            errors=self.errors,
            dropped=sum(p.dropped for p in self.peers.values()),
        )
        return StatusReply(req.seq, self.node_id, os.getpid(), state)


async def _serve(config: NodeConfig) -> None:
    loop = asyncio.get_running_loop()
    driver = NodeDriver(config, loop)
    if config.listen_fd >= 0:
        sock = socket.socket(fileno=config.listen_fd)
        server = await loop.create_server(lambda: _Inbound(driver), sock=sock)
    else:
        server = await loop.create_server(lambda: _Inbound(driver), "127.0.0.1", config.port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    driver.start()
    log.info(
        "%s (%s) serving on %s, pid %d",
        config.node_id,
        config.kind,
        server.sockets[0].getsockname(),
        os.getpid(),
    )

    async def watchdog() -> None:
        # The parent-death check: prctl covers Linux; this covers the rest.
        while config.parent is None or os.getppid() == config.parent:
            await asyncio.sleep(0.5)
        log.warning("parent %s is gone; exiting", config.parent)
        stop.set()

    dog = loop.create_task(watchdog())
    await stop.wait()
    dog.cancel()
    server.close()
    driver.storage.close()
    log.info("%s stopped", config.node_id)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``python -m labkit.net.node CONFIG.json``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m labkit.net.node CONFIG.json")
    with open(argv[0]) as f:
        config = NodeConfig.from_json(f.read())
    set_parent_death_signal(config.parent)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {config.node_id} %(levelname)s %(message)s",
    )
    asyncio.run(_serve(config))


if __name__ == "__main__":  # pragma: no cover - runs in the node process
    main()
