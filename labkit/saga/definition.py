"""What a saga is: an ordered list of steps, each with its compensation.

A saga (Garcia-Molina and Salem, SIGMOD 1987, section 1) is a sequence of
local transactions T1..Tn, each with a compensating transaction Ci that
semantically undoes it. The system guarantees that either T1..Tn all run,
or T1..Tj, Cj..C1 run for some j: never a prefix left half done. This module
only *describes* a saga; :mod:`labkit.saga.orchestrator` runs it.

The order saga of the course has three steps:

====  ==========  ==============  ================
step  service     action (DO)     compensation
====  ==========  ==============  ================
0     inventory   reserve stock   release stock
1     payment     charge          refund
2     shipping    create label    cancel label
====  ==========  ==============  ================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from labkit import validation as valid


@dataclass(frozen=True, slots=True)
class Order:
    """One customer order: ``qty`` units of ``sku`` for ``amount`` cents."""

    order_id: str
    customer: str = "alice"
    sku: str = "book"
    qty: int = 1
    amount: int = 30
    address: str = "1 Main St"

    def __post_init__(self) -> None:
        for name in ("order_id", "customer", "sku"):
            valid.string(name, getattr(self, name))
        valid.integer("qty", self.qty, gt=0)
        valid.integer("amount", self.amount, gt=0)
        valid.string("address", self.address, empty=True)


@dataclass(frozen=True, slots=True)
class Step:
    """One local transaction of a saga.

    ``args(order)`` builds the request arguments sent to ``service``; the
    same arguments go with the compensation.
    """

    name: str
    service: str
    action: str
    compensation: str
    args: Callable[[Order], tuple]

    def __post_init__(self) -> None:
        for name in ("name", "service", "action", "compensation"):
            valid.string(f"Step.{name}", getattr(self, name))
        valid.function("Step.args", self.args, "callable as args(order) -> tuple")


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    """A named, ordered tuple of :class:`Step` (at least one)."""

    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        valid.string("name", self.name)
        valid.non_empty("steps", valid.instance("steps", self.steps, tuple), "tuple of Step")
        for i, step in enumerate(self.steps):
            valid.instance(f"steps[{i}]", step, Step)
        names = [s.name for s in self.steps]
        valid.require(len(set(names)) == len(names), "step names", "unique", names)

    def __len__(self) -> int:
        return len(self.steps)

    def index(self, step_name: str) -> int:
        """The position of the step called ``step_name``."""
        for i, step in enumerate(self.steps):
            if step.name == step_name:
                return i
        raise ValueError(f"no step named {step_name!r}; steps are {[s.name for s in self.steps]}")


def step_key(saga_id: str, step: int) -> str:
    """The idempotency key of a step: the same for every retry of it.

    Its compensation uses the same key, which is how a service matches an
    UNDO to the DO it undoes (or to a DO that has not arrived yet).
    """
    return f"{saga_id}/{step}"


ORDER_SAGA = SagaDefinition(
    "order",
    (
        Step("reserve", "inventory", "reserve", "release", lambda o: (o.sku, o.qty)),
        Step("charge", "payment", "charge", "refund", lambda o: (o.customer, o.amount)),
        Step("ship", "shipping", "create_label", "cancel_label", lambda o: (o.address,)),
    ),
)
