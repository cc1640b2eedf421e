"""A first attempt at an order saga, ``OrderSaga``, kept as written, and what goes wrong with it.

:class:`OrderSaga` below is an order saga as it is often first sketched, and
notebook 15 starts from it. Its ``execute`` method is kept **exactly** as
written, bugs included. The only additions, each marked ``ADAPTED``, are
what it needs to run at all: a constructor that receives the three service
clients, the three exception classes, and synchronous clients that call the
simulated services over :mod:`labkit.sim` and wait (in virtual time) for the
answer.

What goes wrong (each shown by :func:`run_naive_saga`):

1. ``order_id`` is never defined: after all three steps succeed, ``execute``
   raises ``NameError``. The order is paid for, yet the caller sees a failure.
2. It has no idempotency keys: a caller that retries after that error (or
   after a timeout) reserves and charges **again**.
3. A timeout is not one of the three errors it catches: a slow payment
   escapes as ``TimeoutError`` with the stock still reserved, and the slow
   charge may still land later.
4. It keeps no log: if the process dies between two steps
   (:class:`OrchestratorCrashed`), nobody ever finishes or compensates.
5. A compensation that fails is not retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.saga.definition import Order
from labkit.saga.scenario import FaultDriver, OrderRun, judged, start_order_run
from labkit.saga.services import Op, Outcome, Reply, Request, ServiceFaults
from labkit.sim import Context, Fixed, Node


# ADAPTED: the first attempt uses these exceptions without defining them.
class InventoryError(Exception):
    """The inventory service refused (or failed) a request."""


class PaymentError(Exception):
    """The payment service refused (or failed) a request."""


class ShippingError(Exception):
    """The shipping service refused (or failed) a request."""


class OrchestratorCrashed(BaseException):
    """The process running the saga died (a crash, not an error it could catch)."""


# -- The first attempt. `execute` is verbatim; only the constructor is added. ----------------------
class OrderSaga:
    # ADAPTED: the first attempt reads self.inventory_service etc. without setting them.
    def __init__(self, inventory_service: Any, payment_service: Any, shipping_service: Any) -> None:
        self.inventory_service = inventory_service
        self.payment_service = payment_service
        self.shipping_service = shipping_service

    def execute(self, order_data):
        try:
            # Step 1: Reserve inventory
            inventory_id = self.inventory_service.reserve(order_data.items)

            # Step 2: Process payment
            payment_id = self.payment_service.charge(order_data.payment)

            # Step 3: Create shipping label
            shipping_id = self.shipping_service.create_label(order_data.address)  # noqa: F841 (as written)

            return {"status": "success", "order_id": order_id}  # noqa: F821 (its bug, kept)

        except InventoryError:
            # No compensation needed yet
            return {"status": "failed", "reason": "insufficient_inventory"}

        except PaymentError:
            # Compensate: Release inventory
            self.inventory_service.release(inventory_id)
            return {"status": "failed", "reason": "payment_failed"}

        except ShippingError:
            # Compensate: Refund payment and release inventory
            self.payment_service.refund(payment_id)
            self.inventory_service.release(inventory_id)
            return {"status": "failed", "reason": "shipping_failed"}


# -- ADAPTED: what the first attempt takes for granted, built on the simulated services. -----------
@dataclass(frozen=True, slots=True)
class OrderData:
    """The first attempt's ``order_data``: ``items``, ``payment`` and ``address``."""

    items: tuple[str, int]  # (sku, qty)
    payment: tuple[str, int]  # (customer, amount)
    address: str

    @classmethod
    def of(cls, order: Order) -> OrderData:
        return cls((order.sku, order.qty), (order.customer, order.amount), order.address)


#: The remote calls the first attempt makes, in the order they can happen.
NAIVE_CALLS = ("reserve", "charge", "create_label", "refund", "release")


class _Shop(Node):
    """The node the naive saga runs in: it only collects replies."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.inbox: dict[tuple[str, Op], Reply] = {}

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if isinstance(msg, Reply):
            self.inbox.setdefault((msg.key, msg.op), msg)


class _Rpc:
    """Blocking calls over the simulator: send, then run virtual time until the
    answer comes back or ``timeout`` passes (then ``TimeoutError``).

    Every call gets a fresh key, because the first attempt has no notion of one: the
    services cannot tell a retry from a new request.
    """

    def __init__(self, driver: FaultDriver, order_id: str, timeout: float, crash_before: str | None) -> None:
        self.driver = driver
        self.order_id = order_id
        self.timeout = timeout
        self.crash_before = crash_before
        self.calls: list[str] = []
        self._n = 0

    def call(self, service: str, name: str, op: Op, args: tuple = (), key: str | None = None) -> Reply:
        if name == self.crash_before:
            self.crash_before = None  # a process dies once
            raise OrchestratorCrashed(f"the orchestrator died before calling {name}")
        self.calls.append(name)
        if key is None:
            self._n += 1
            key = f"{self.order_id}/naive-{self._n}"
        sim = self.driver.sim
        sim.call("shop", lambda node, ctx: ctx.send(service, Request(self.order_id, -1, op, key, args)))
        deadline = sim.now + self.timeout
        shop: _Shop = sim.node("shop")  # type: ignore[assignment]
        while (key, op) not in shop.inbox and sim.now <= deadline and self.driver.step():
            pass
        reply = shop.inbox.get((key, op))
        if reply is None or sim.now > deadline:
            raise TimeoutError(f"{name} got no answer within {self.timeout}s")
        return reply


class _Client:
    """One service's client: a call it refuses raises ``error``; a DO returns the id an UNDO takes."""

    def __init__(self, rpc: _Rpc, service: str, error: type[Exception]) -> None:
        self.rpc, self.service, self.error = rpc, service, error

    def _call(self, name: str, op: Op, args: tuple = (), key: str | None = None) -> str:
        reply = self.rpc.call(self.service, name, op, args, key)
        if reply.outcome is not Outcome.OK:
            raise self.error(reply.detail)
        return reply.key


class _InventoryClient(_Client):
    def reserve(self, items: tuple[str, int]) -> str:
        return self._call("reserve", Op.DO, tuple(items))

    def release(self, inventory_id: str) -> None:
        self._call("release", Op.UNDO, key=inventory_id)


class _PaymentClient(_Client):
    def charge(self, payment: tuple[str, int]) -> str:
        return self._call("charge", Op.DO, tuple(payment))

    def refund(self, payment_id: str) -> None:
        self._call("refund", Op.UNDO, key=payment_id)


class _ShippingClient(_Client):
    def create_label(self, address: str) -> str:
        return self._call("create_label", Op.DO, (address,))


@dataclass(frozen=True, slots=True)
class NaiveRun(OrderRun):
    """The result of :func:`run_naive_saga`.

    ``attempts`` has one ``(how, what)`` per call of ``execute``: how is
    "returned", "raised" or "crashed".
    """

    attempts: tuple[tuple[str, str], ...]
    calls: tuple[str, ...]


def run_naive_saga(
    order: Order | None = None,
    *,
    faults: Mapping[str, ServiceFaults] | None = None,
    crash_before: str | None = None,
    retries: int = 0,
    seed: int = 0,
    timeout: float = 0.3,
    until: float = 60.0,
) -> NaiveRun:
    """Run the first-attempt saga for ``order`` against the simulated services.

    crash_before:
        One of :data:`NAIVE_CALLS`: the process dies just before making that
        call (and, having no log, never comes back to this order).
    retries:
        How many times the caller calls ``execute`` again after it raised
        (a natural reaction to an error: "try again").
    """
    if crash_before is not None:
        valid.one_of("crash_before", crash_before, NAIVE_CALLS)
    valid.integer("retries", retries, ge=0, le=10)
    valid.number("timeout", timeout, gt=0, unit="seconds")
    valid.number("until", until, gt=0, unit="seconds")
    order, sim = start_order_run(order, seed, faults, latency=Fixed(0.01))
    sim.add_node("shop", _Shop)
    sim.run(0.0)
    driver = FaultDriver(sim)
    rpc = _Rpc(driver, order.order_id, timeout, crash_before)
    saga = OrderSaga(
        _InventoryClient(rpc, "inventory", InventoryError),
        _PaymentClient(rpc, "payment", PaymentError),
        _ShippingClient(rpc, "shipping", ShippingError),
    )
    attempts: list[tuple[str, str]] = []
    for _ in range(1 + retries):
        try:
            result = saga.execute(OrderData.of(order))
        except OrchestratorCrashed as exc:
            attempts.append(("crashed", str(exc)))
            sim.crash("shop")  # the process is gone, and with it all it knew
            break
        except Exception as exc:  # what the caller of the first attempt would see
            attempts.append(("raised", f"{type(exc).__name__}: {exc}"))
            continue
        attempts.append(("returned", repr(result)))
        break
    driver.run(until)  # late (slow) requests still land after execute gave up
    return NaiveRun(**judged(sim, order), attempts=tuple(attempts), calls=tuple(rpc.calls))
