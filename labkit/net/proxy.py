"""A fault-injecting TCP proxy on every link: the network part of the nemesis, without root.

Jepsen cuts links with ``iptables``; Binder gives us no root. Instead every
process talks to every other through a small proxy that the controller runs
(on 127.0.0.1, in its own asyncio loop), and the proxy decides what gets
through. :class:`Network` holds the rules, named like the simulator's faults:

* ``cut(src, dst)``: a one-way partition (``src`` can no longer reach ``dst``);
  ``partition(groups)`` and ``isolate(node)`` are built from cuts; ``heal()``;
* ``set_delay(seconds, jitter)``: extra one-way delay on every link;
* ``set_loss(p)``: each message is lost with probability ``p``.

Two kinds of proxy:

* **frames** (our nodes): the proxy reads whole frames
  (:mod:`labkit.net.codec`), so it can lose one message and keep the rest of
  the stream intact, and it delays frames in order (a TCP stream never
  reorders). A cut link loses every frame, exactly like the simulator's cut.
* **bytes** (etcd, whose protocol we do not parse): chunks are delayed in
  order; a cut closes the connection and holds new ones open without
  forwarding anything (a blackhole, as a real partition looks: no answer, not
  a refusal) until the link heals. Loss is not offered: losing bytes from the
  middle of a stream would corrupt it, which is not what a network does.

Who is speaking on a connection is known from where it arrives (one proxy
per directed link), or, for a proxy several senders share, from a
``classify`` function given the connection's source address (for etcd, the
process that owns that socket, see :func:`socket_owner`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from labkit import validation as v
from labkit.net.codec import MAX_FRAME, FrameReader, WireError
from labkit.net.procs import LOOPBACK

__all__ = ["Network", "Proxy", "socket_owner"]


def socket_owner(local: tuple[str, int], remote_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` owns the TCP socket at ``local`` connected to ``remote_port`` (Linux ``/proc``).

    A proxy knows the source address of a connection; the kernel knows which
    socket that is (``/proc/net/tcp``: local and remote address, inode) and
    each process lists its sockets' inodes under ``/proc/PID/fd``. No root
    needed for our own processes. None when not found (or not on Linux).
    """
    port = local[1]
    inode = None
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                lport = int(parts[1].rsplit(":", 1)[1], 16)
                rport = int(parts[2].rsplit(":", 1)[1], 16)
                if lport == port and rport == remote_port:
                    inode = parts[9]
                    break
    except (OSError, ValueError, IndexError):
        return None
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


class Network:
    """The fault rules all proxies of one cluster consult (see the module docstring)."""

    def __init__(self, seed: int = 0) -> None:
        self.cuts: set[tuple[str, str]] = set()
        self.delay = 0.0
        self.jitter = 0.0
        self.loss = 0.0
        self.random = random.Random(seed)
        self.version = 0  # bumped at every change (bytes proxies re-check held connections)
        self.lost = 0
        self.forwarded = 0

    # -- changing ------------------------------------------------------------------
    def cut(self, src: str, dst: str) -> None:
        """Messages from ``src`` to ``dst`` are lost from now on (one way)."""
        self.cuts.add((src, dst))
        self.version += 1

    def uncut(self, src: str, dst: str) -> None:
        """Undo :meth:`cut` for one direction."""
        self.cuts.discard((src, dst))
        self.version += 1

    def partition(self, groups: Iterable[Iterable[str]], among: Iterable[str]) -> None:
        """Cut every link between different groups of the nodes ``among`` (both ways)."""
        side: dict[str, int] = {}
        for i, g in enumerate(groups):
            for n in g:
                side[n] = i
        nodes = list(among)
        for a in nodes:
            for b in nodes:
                if a != b and side.get(a, -1) != side.get(b, -1):
                    self.cuts.add((a, b))
        self.version += 1

    def isolate(self, node: str, others: Iterable[str]) -> None:
        """Cut ``node`` off from every one of ``others``, both ways."""
        for o in others:
            if o != node:
                self.cuts.add((node, o))
                self.cuts.add((o, node))
        self.version += 1

    def heal(self) -> None:
        """Remove every cut (delay and loss stay as they are)."""
        self.cuts.clear()
        self.version += 1

    def set_delay(self, delay: float, jitter: float = 0.0) -> None:
        """Add ``delay`` seconds (plus up to ``jitter`` more, at random) to every message."""
        self.delay = v.number("delay", delay, ge=0, unit="seconds")
        self.jitter = v.number("jitter", jitter, ge=0, unit="seconds")
        self.version += 1

    def set_loss(self, p: float) -> None:
        """Lose each message with probability ``p`` (frames proxies only)."""
        self.loss = v.probability("loss", p)
        self.version += 1

    # -- asking ----------------------------------------------------------------------
    def blocked(self, src: str | None, dst: str) -> bool:
        return (src, dst) in self.cuts

    def release_time(self, now: float) -> float:
        d = self.delay
        if self.jitter:
            d += self.jitter * self.random.random()
        return now + d

    def lose(self) -> bool:
        return self.loss > 0 and self.random.random() < self.loss

    def describe(self) -> str:
        parts = []
        if self.cuts:
            parts.append("cut " + ", ".join(f"{a}->{b}" for a, b in sorted(self.cuts)))
        if self.delay or self.jitter:
            parts.append(f"delay {self.delay * 1e3:g}+{self.jitter * 1e3:g} ms")
        if self.loss:
            parts.append(f"loss {self.loss:g}")
        return "; ".join(parts) or "healthy"


class _Pipe:
    """One direction of one proxied connection: frames or chunks, delayed in order."""

    def __init__(self, proxy: Proxy, src: str | None, dst: str, writer: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.src = src
        self.dst = dst
        self.writer = writer
        self.queue: deque[tuple[float, bytes]] = deque()
        self.wake = asyncio.Event()
        self.last_release = 0.0
        self.task = asyncio.get_running_loop().create_task(self._drain())

    def push(self, data: bytes) -> bool:
        """Queue ``data``; False if the link is cut (and, for bytes, the connection must close)."""
        net = self.proxy.network
        if net.blocked(self.src, self.dst):
            net.lost += 1
            return False
        if self.proxy.frames and net.lose():
            net.lost += 1
            return True
        now = asyncio.get_running_loop().time()
        release = max(self.last_release, net.release_time(now))
        self.last_release = release
        self.queue.append((release, data))
        self.wake.set()
        return True

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        net = self.proxy.network
        try:
            while True:
                if not self.queue:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                release, data = self.queue[0]
                wait = release - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.queue.popleft()
                if net.blocked(self.src, self.dst):  # cut while it waited
                    net.lost += 1
                    if not self.proxy.frames:
                        self.writer.close()
                        return
                    continue
                net.forwarded += 1
                self.writer.write(data)
                if self.writer.transport.get_write_buffer_size() > (8 << 20):
                    await self.writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass


class Proxy:
    """Listens on 127.0.0.1 and forwards every connection to ``target``, applying :class:`Network`.

    ``src`` names who speaks on connections to this proxy (one proxy per
    directed link); with ``classify`` the proxy asks it, given the source
    address of each connection. ``dst`` names the target. ``frames``:
    parse length-prefixed frames (our protocol) or forward raw bytes.
    ``reply_src``: the name replies are attributed to (default ``dst``); the
    reply direction of a connection is the link ``dst -> src``.
    """

    def __init__(
        self,
        network: Network,
        target: tuple[str, int],
        *,
        dst: str,
        src: str | None = None,
        classify: Callable[[Any], str | None] | None = None,
        frames: bool = True,
        port: int = 0,
    ) -> None:
        self.network = network
        self.target = target
        self.dst = dst
        self.src = src
        self.classify = classify
        self.frames = frames
        self.port = port
        self.server: asyncio.base_events.Server | None = None
        self._conns: dict[tuple[asyncio.StreamWriter, asyncio.StreamWriter], str | None] = {}
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> Proxy:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.server = await asyncio.start_server(self._handle, sock=sock, limit=1 << 20)
        return self

    @property
    def address(self) -> tuple[str, int]:
        return (LOOPBACK, self.port)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        for a, b in list(self._conns):
            a.close()
            if b is not None:
                b.close()
        for t in list(self._tasks):
            t.cancel()
        self._conns.clear()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        entry: list[Any] = [writer, None]
        try:
            src = self.src
            if self.classify is not None:
                src = self.classify(writer.get_extra_info("peername"))
            net = self.network
            if not self.frames and (net.blocked(src, self.dst) or net.blocked(self.dst, src)):
                await self._blackhole(reader, writer, src)
                return
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*self.target, limit=1 << 20), 2.0)
            except (TimeoutError, OSError):
                writer.close()  # the target is down: the client sees the connection close
                return
            entry[1] = up_w
            key = (writer, up_w)
            self._conns[key] = src
            for w in (writer, up_w):
                s = w.get_extra_info("socket")
                if s is not None:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            forward = _Pipe(self, src, self.dst, up_w)
            backward = _Pipe(self, self.dst, src if src is not None else "?", writer)
            await asyncio.gather(
                self._pump(reader, forward, up_w, writer), self._pump(up_r, backward, writer, up_w)
            )
            forward.task.cancel()
            backward.task.cancel()
            self._conns.pop(key, None)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            for w in entry:
                if w is not None:
                    w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        pipe: _Pipe,
        out: asyncio.StreamWriter,
        back: asyncio.StreamWriter,
    ) -> None:
        frames = FrameReader(MAX_FRAME + 8) if self.frames else None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if frames is None:
                    if not pipe.push(data):
                        break  # cut: close the connection (see the module docstring)
                    continue
                try:
                    bodies = frames.feed(data)
                except WireError:
                    break
                for body in bodies:
                    pipe.push(len(body).to_bytes(4, "big") + body)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            # Let queued data go out before closing, unless the link is cut.
            with contextlib.suppress(Exception):
                while pipe.queue and not pipe.task.done():
                    await asyncio.sleep(0.01)
            out.close()
            back.close()

    async def _blackhole(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, src: str | None
    ) -> None:
        """Hold a connection on a cut link: read and discard until the link heals, then close it."""
        net = self.network

        async def discard() -> None:
            with contextlib.suppress(ConnectionError):
                while await reader.read(65536):
                    pass

        t = asyncio.get_running_loop().create_task(discard())
        try:
            while not t.done() and (net.blocked(src, self.dst) or net.blocked(self.dst, src)):
                await asyncio.sleep(0.05)
        finally:
            t.cancel()
            writer.close()
