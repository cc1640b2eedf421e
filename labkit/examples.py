"""Tiny protocols for the first notebooks: greeting, request/response, broadcast.

They are deliberately small so that the *network* is the interesting part
(DDIA ch. 8, "Unreliable Networks"):

* :class:`Greeter` says hello to every peer once;
* :class:`Server` and :class:`Client`: a request/response exchange where the
  client retries on a timeout, so a lost request, a lost response and a slow
  server all look the same to it;
* :class:`FloodBroadcast`: each node forwards a message the first time it
  sees it, so it reaches everyone still connected to the origin;
* :class:`Heartbeat`: every node pings every peer periodically (the demo
  workload of the cluster widget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.sim import Context, Node, Simulator

__all__ = [
    "Greeter",
    "Hello",
    "Request",
    "Response",
    "Server",
    "Client",
    "Rumor",
    "FloodBroadcast",
    "Ping",
    "Heartbeat",
    "request_response_cluster",
    "broadcast_cluster",
    "heartbeat_cluster",
    "request_report",
]

MAX_NODES_OR_REQUESTS = 10_000  # more simulated nodes, or requests per client, is a typo, not an experiment


@dataclass(frozen=True, slots=True)
class Hello:
    sender: str


class Greeter(Node):
    """Sends one :class:`Hello` to every peer when it starts."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.greeted_by: list[str] = []

    def on_start(self, ctx: Context) -> None:
        ctx.broadcast(Hello(self.node_id))

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Hello):
            self.greeted_by.append(msg.sender)


# -- Request / response with retries ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    request_id: int  # unique per client: (client, request_id) names the operation
    amount: int  # "add this amount to the account": not idempotent


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    balance: int


class Server(Node):
    """Adds each request's amount to a balance and replies.

    It applies every request it receives, so a retried or duplicated request
    is applied twice: at-least-once delivery turns into double charging.
    ``applied`` counts how often each (client, request_id) was applied.
    """

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.balance = 0
        self.applied: dict[tuple[str, int], int] = {}

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Request):
            self.balance += msg.amount
            key = (src, msg.request_id)
            self.applied[key] = self.applied.get(key, 0) + 1
            ctx.send(src, Response(msg.request_id, self.balance))


class Client(Node):
    """Sends ``requests`` requests one after another to ``server``.

    For each request it waits ``timeout`` seconds for the response and
    resends on expiry, at most ``max_attempts`` times in all. It reports every
    outcome with ``ctx.note("request", ...)``: ``ok`` or ``gave_up``.
    """

    def __init__(
        self,
        node_id: str,
        server: str = "server",
        requests: int = 5,
        timeout: float = 0.1,
        max_attempts: int = 3,
    ) -> None:
        super().__init__(node_id)
        self.server = valid.string("server", server)
        self.requests = valid.integer("requests", requests, ge=0, le=MAX_NODES_OR_REQUESTS)
        self.timeout = valid.number("timeout", timeout, gt=0, unit="seconds")
        self.max_attempts = valid.integer("max_attempts", max_attempts, ge=1)
        self.current = 0  # request_id in flight; 0 before the first
        self.attempts = 0
        self.outcomes: dict[int, str] = {}

    def on_start(self, ctx: Context) -> None:
        self._next(ctx)

    def _next(self, ctx: Context) -> None:
        if self.current >= self.requests:
            ctx.cancel_timer("timeout")
            return
        self.current += 1
        self.attempts = 0
        self._attempt(ctx)

    def _attempt(self, ctx: Context) -> None:
        self.attempts += 1
        ctx.send(self.server, Request(self.current, amount=10))
        ctx.set_timer("timeout", self.timeout)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        # A response to an older request (a late duplicate) is ignored.
        if isinstance(msg, Response) and msg.request_id == self.current and self.current not in self.outcomes:
            self._finish(ctx, "ok")

    def on_timer(self, ctx: Context, name: str) -> None:
        if self.attempts < self.max_attempts:
            self._attempt(ctx)
        else:
            self._finish(ctx, "gave_up")  # the request may or may not have been applied

    def _finish(self, ctx: Context, outcome: str) -> None:
        self.outcomes[self.current] = outcome
        ctx.note("request", request_id=self.current, outcome=outcome, attempts=self.attempts)
        self._next(ctx)


def request_response_cluster(
    seed: int = 0,
    *,
    clients: int = 1,
    requests: int = 5,
    timeout: float = 0.1,
    max_attempts: int = 3,
    server: type[Node] = Server,
    **network: Any,
) -> Simulator:
    """A server ``"server"`` and clients ``"c1"``, ``"c2"``... on a fresh simulator.

    ``network`` goes to :class:`~labkit.sim.Simulator` (latency, loss,
    duplication). ``server`` may be any Node class that answers Requests.
    """
    valid.integer("clients", clients, ge=1, le=MAX_NODES_OR_REQUESTS)
    sim = Simulator(seed, **network)
    sim.add_node("server", server)
    for i in range(1, clients + 1):
        sim.add_node(
            f"c{i}", lambda nid: Client(nid, requests=requests, timeout=timeout, max_attempts=max_attempts)
        )
    return sim


# -- Flooding broadcast ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rumor:
    origin: str
    text: str


class FloodBroadcast(Node):
    """Forward a rumour to every peer except the sender, the first time only.

    The origin sends to its n - 1 peers; every other node forwards to the
    n - 2 peers that are not the one it heard from.
    """

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seen: dict[Rumor, float] = {}  # rumour -> time first heard

    def originate(self, ctx: Context, text: str) -> Rumor:
        rumor = Rumor(self.node_id, text)
        self.seen[rumor] = ctx.now
        ctx.note("heard", text=text)
        ctx.broadcast(rumor)
        return rumor

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Rumor) and msg not in self.seen:
            self.seen[msg] = ctx.now
            ctx.note("heard", text=msg.text)
            for peer in ctx.peers:
                if peer != src:
                    ctx.send(peer, msg)


def _cluster(node: type[Node], n: int, seed: int, network: dict[str, Any]) -> Simulator:
    """``n`` nodes of class ``node`` called ``"n1"``..``"nN"`` on a fresh simulator."""
    valid.integer("n", n, ge=1, le=MAX_NODES_OR_REQUESTS)
    sim = Simulator(seed, **network)
    for i in range(1, n + 1):
        sim.add_node(f"n{i}", node)
    return sim


def broadcast_cluster(n: int = 5, seed: int = 0, **network: Any) -> Simulator:
    """``n`` :class:`FloodBroadcast` nodes ``"n1"``..``"nN"``; nothing sent yet."""
    return _cluster(FloodBroadcast, n, seed, network)


# -- Heartbeats: the widget's demo workload --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ping:
    seq: int


class Heartbeat(Node):
    """Every ``interval`` seconds, ping every peer; track when each was last heard.

    A node *suspects* a peer it has not heard from for ``3 * interval``.
    Suspicion is all a timeout can give: the peer may be dead, or just
    slow, or cut off by the network.
    """

    interval = 0.25

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.seq = 0
        self.last_heard: dict[str, float] = {}
        self.suspected: set[str] = set()

    def on_start(self, ctx: Context) -> None:
        # Desynchronise nodes a little so their pings do not all coincide.
        ctx.set_timer("beat", ctx.random.uniform(0, self.interval))

    def on_timer(self, ctx: Context, name: str) -> None:
        self.seq += 1
        ctx.broadcast(Ping(self.seq))
        now = ctx.now
        for peer in ctx.peers:
            silent = now - self.last_heard.get(peer, 0.0) > 3 * self.interval
            if silent and peer not in self.suspected:
                self.suspected.add(peer)
                ctx.note("suspect", peer=peer)
            elif not silent and peer in self.suspected:
                self.suspected.discard(peer)
                ctx.note("trust", peer=peer)
        ctx.set_timer("beat", self.interval)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Ping):
            self.last_heard[src] = ctx.now


def heartbeat_cluster(seed: int = 0, n: int = 4, **network: Any) -> Simulator:
    """``n`` :class:`Heartbeat` nodes ``"n1"``..``"nN"``."""
    return _cluster(Heartbeat, n, seed, network)


def request_report(sim: Simulator):  # -> pandas.DataFrame
    """One row per request: client, request_id, outcome, attempts, times_applied.

    ``times_applied`` is how often the server applied the request: 1 is right,
    0 means it was lost, 2 or more means a retry or a duplicate applied it again.
    """
    import pandas as pd

    valid.instance("sim", sim, Simulator)
    server = sim.node("server")
    applied = getattr(server, "applied", {})
    rows = [(e.node, e.detail["request_id"], e.detail["outcome"], e.detail["attempts"],
             applied.get((e.node, e.detail["request_id"]), 0)) for e in sim.trace.notes("request")]  # fmt: skip
    return pd.DataFrame(rows, columns=["client", "request_id", "outcome", "attempts", "times_applied"])
