"""The sans-IO node interface: what protocol code sees of the world.

A protocol node is a pure state machine (DESIGN.md, "labkit: the
architecture"). It never touches sockets, threads, wall-clock time or the
global ``random`` module. The driver (the simulator here) calls one of three
handlers:

* ``on_start(ctx)`` when the node boots, and again after every restart;
* ``on_message(ctx, src, msg)`` when a message is delivered;
* ``on_timer(ctx, name)`` when a timer the node set fires.

A handler does not *perform* effects: it asks for them through ``ctx``
(``ctx.send``, ``ctx.set_timer``, ``ctx.persist`` ...). The asks are collected
in an :class:`Effects` batch that the driver carries out after the handler
returns, in the order documented on that class.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Container, Hashable, Mapping
from typing import Any

from labkit import validation as valid

__all__ = ["FORGOTTEN", "Context", "Effects", "Node"]


class _Forgotten:
    """The value of a persist that deletes its key (see :meth:`Context.forget`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "FORGOTTEN"


FORGOTTEN = _Forgotten()


class Effects:
    """One handler's worth of requested effects.

    Ordering rule (as in etcd's ``Ready``): the driver applies ``persists``
    **before** it sends any of ``sends``. A node may therefore promise in a
    message ("I voted for you") what it has just written to durable storage,
    and a crash can never leave a peer believing something the node forgot.
    Timers are applied last; notes go straight to the trace. Persists are
    applied in the order asked; one whose value is :data:`FORGOTTEN` deletes
    its key (:meth:`Context.forget`).

    A batch is all or nothing for the handler that asked for it: if the
    handler raises, the driver discards the batch (nothing it asked for
    happens), and if carrying it out fails the rest is discarded too, so a
    failed call never leaks stale effects into the node's next handler.
    """

    __slots__ = ("persists", "sends", "timers", "notes", "forgets")

    def __init__(self) -> None:
        self.persists: list[tuple[Hashable, Any]] = []
        self.forgets = False  # some of the persists are forgets
        self.sends: list[tuple[str, Any]] = []
        # (name, delay) sets or replaces a timer; (name, None) cancels it.
        self.timers: list[tuple[str, float | None]] = []
        self.notes: list[tuple[str, dict[str, Any]]] = []

    def __bool__(self) -> bool:
        return bool(self.persists or self.sends or self.timers or self.notes)

    def clear(self) -> None:
        self.persists.clear()
        self.forgets = False
        self.sends.clear()
        self.timers.clear()
        self.notes.clear()


class Context:
    """The window a node has on its driver during one handler call.

    Reading: ``node_id``, ``peers``, ``now`` (the driver's time in seconds),
    ``clock()`` (this node's own physical clock, which may be skewed and
    drift), ``random`` (a generator seeded for this node by the driver) and
    ``storage`` (a read-only view of the node's durable storage, which
    survives crashes).

    Asking: ``send``, ``broadcast``, ``set_timer``, ``cancel_timer``,
    ``persist``, ``forget`` and ``note``. Each appends to :attr:`effects`.
    """

    __slots__ = ("node_id", "peers", "now", "random", "storage", "effects", "_driver", "_known")

    def __init__(
        self,
        node_id: str,
        peers: tuple[str, ...],
        rng: random.Random,
        storage: Mapping[Hashable, Any],
        driver: Any,
        known: Container[str] | None = None,
    ) -> None:
        self.node_id = node_id
        self.peers = peers
        # The driver's time in seconds (its "true" time; real machines cannot read it:
        # protocols that reason about clocks use clock()). A plain attribute, as handlers
        # read it often: the driver sets it before each handler call.
        self.now: float = driver.now
        self.random = rng
        self.storage = storage
        self.effects = Effects()
        self._driver = driver
        # Every node id a message may go to (the driver passes its live table,
        # so nodes added later count); by default this node and its peers.
        self._known: Container[str] = _SelfAndPeers(self) if known is None else known

    # -- reading ---------------------------------------------------------
    def clock(self) -> float:
        """This node's physical clock: true time plus its skew and drift."""
        return self._driver.local_time(self.node_id)

    # -- asking ------------------------------------------------------------
    def send(self, dst: str, msg: Any) -> None:
        """Ask the network to carry ``msg`` to node ``dst`` (may be lost).

        ``dst`` must be a node of the cluster (this node included); anything
        else raises ``ValueError`` here, in the handler that asked.
        """
        if dst not in self._known:
            self._unknown_dst(dst)
        self.effects.sends.append((dst, msg))

    def _unknown_dst(self, dst: Any) -> None:
        listed = ", ".join(map(repr, self._known)) or "none"  # type: ignore[call-overload]
        raise ValueError(f"dst {dst!r} is not a node of this simulation (nodes: {listed})")

    def broadcast(self, msg: Any) -> None:
        """Send ``msg`` to every peer (every other node of the cluster)."""
        sends = self.effects.sends
        for dst in self.peers:
            sends.append((dst, msg))

    def set_timer(self, name: str, delay: float) -> None:
        """Fire ``on_timer(ctx, name)`` after ``delay`` seconds.

        ``name`` is a str; ``delay`` a finite number of seconds >= 0.
        Setting a timer that is already pending replaces it.
        """
        if type(name) is not str or type(delay) is not float or not 0 <= delay < math.inf:
            _check_timer(name, delay)  # the common case checked in one step, above
        self.effects.timers.append((name, delay))

    def cancel_timer(self, name: str) -> None:
        """Cancel timer ``name`` if it is pending; otherwise do nothing."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str naming the timer, got {name!r}")
        self.effects.timers.append((name, None))

    def persist(self, key: Hashable, value: Any) -> None:
        """Write ``key = value`` to durable storage (survives a crash).

        Store immutable values (tuples, frozen dataclasses): the storage keeps
        a reference, not a copy.
        """
        self.effects.persists.append((key, value))

    def forget(self, key: Hashable) -> None:
        """Delete ``key`` from durable storage (nothing happens if it is not there).

        Ordered with the persists: a node that writes a snapshot and then
        forgets the log entries it replaces never leaves storage without either.
        """
        self.effects.persists.append((key, FORGOTTEN))
        self.effects.forgets = True

    def note(self, what: str, **detail: Any) -> None:
        """Report a state change (e.g. ``note("role", role="leader")``)."""
        self.effects.notes.append((what, detail))


def _check_timer(name: Any, delay: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str naming the timer, got {name!r}")
    if type(delay) is not float and (isinstance(delay, bool) or not isinstance(delay, numbers.Real)):
        raise TypeError(f"delay must be a number of seconds, got {delay!r}")
    if not 0 <= delay < math.inf:  # also refuses NaN
        raise ValueError(f"delay must be a finite number of seconds >= 0, got {delay!r}")


class _SelfAndPeers:
    """A context's node and its peers, as they are now (peers may grow)."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __contains__(self, node_id: object) -> bool:
        return node_id == self.ctx.node_id or node_id in self.ctx.peers

    def __iter__(self) -> Any:
        return iter((self.ctx.node_id, *self.ctx.peers))


class Node:
    """Base class for protocol nodes; override the handlers you need.

    A node is built by a factory ``factory(node_id) -> Node`` so the driver
    can rebuild it after a crash. The new instance must recover everything
    it needs from ``ctx.storage`` in :meth:`on_start`.
    """

    def __init__(self, node_id: str) -> None:
        self.node_id = valid.string("node_id", node_id)

    def on_start(self, ctx: Context) -> None:
        """Called when the node boots and after every restart."""

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        """Called when a message from ``src`` is delivered."""

    def on_timer(self, ctx: Context, name: str) -> None:
        """Called when the timer ``name`` fires."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.node_id!r})"
