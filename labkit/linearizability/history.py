"""Operations and histories: what a client saw, as the checker needs it.

A *history* is a sequence of :class:`Operation` records, one per client
request: who asked (``client``), when the request was sent (``call``), when
the answer came back (``ret``), what was asked (``input``) and what was
answered (``output``). This is the model of Herlihy & Wing, "Linearizability:
A Correctness Condition for Concurrent Objects" (TOPLAS 1990), §2: an
operation is an invocation event and a matching response event, and a
*pending* invocation has no response yet.

Two kinds of uncertainty come from real systems:

* an operation that never returned has ``ret=math.inf`` (the client crashed
  or the history ended first); its output is :data:`UNKNOWN`;
* an operation that returned without a result (a timeout) has a finite
  ``ret`` and ``output=UNKNOWN``.

Both may or may not have taken effect, and if they did, possibly *after*
the client stopped waiting (the request may still be in flight). The checker
therefore treats both the same way: the operation may be placed anywhere
after its call, or left out. :attr:`Operation.latest_effect` is that bound.

Real-time order (Herlihy & Wing's "precedes"): ``a`` precedes ``b`` when
``a.latest_effect < b.call``. Touching intervals (``a.ret == b.call``) count
as concurrent: with equal timestamps nobody can tell which came first, so the
checker never reports a violation that rests on a tie.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from labkit import validation as valid


class _Unknown(Enum):
    """The type of :data:`UNKNOWN`: an Enum, so its one member survives pickling and copying."""

    UNKNOWN = "UNKNOWN"

    def __repr__(self) -> str:
        return "UNKNOWN"

    __str__ = __repr__


UNKNOWN: Final = _Unknown.UNKNOWN
"""The output of an operation whose result the client never learned."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client request as seen from outside the system.

    ``input`` is a tuple whose first element names the operation, e.g.
    ``("read",)``, ``("write", 3)``, ``("put", "x", "1")``. ``output`` is what
    the client got back, or :data:`UNKNOWN`. An operation that never returned
    has ``ret=math.inf`` and must have ``output=UNKNOWN`` (the default).
    """

    client: Hashable
    call: float
    ret: float
    input: tuple
    output: Any = UNKNOWN

    def __post_init__(self) -> None:
        valid.hashable("client", self.client, "hashable (an int or a str)")
        valid.number("call", self.call, note="a time")
        valid.number(
            "ret", self.ret, ge=self.call, finite=False, note="a time; math.inf if it never returned"
        )
        if not isinstance(self.input, tuple) or not self.input:
            raise TypeError(f"input must be a non-empty tuple such as ('read',), got {self.input!r}")
        if self.ret == math.inf and self.output is not UNKNOWN:
            raise ValueError(
                f"an operation that never returned (ret=math.inf) has no output: "
                f"use output=UNKNOWN, got {self.output!r}"
            )

    @property
    def pending(self) -> bool:
        """True if the operation never returned."""
        return self.ret == math.inf

    @property
    def certain(self) -> bool:
        """True if the client saw the result, so the operation surely took effect."""
        return self.output is not UNKNOWN

    @property
    def latest_effect(self) -> float:
        """The latest time at which the operation can have taken effect.

        ``ret`` for an operation with a known output; ``math.inf`` for one
        whose output is unknown (it may still take effect later, or never).
        """
        return self.ret if self.output is not UNKNOWN else math.inf


History = Sequence[Operation]


def as_history(history: Iterable[Operation], name: str = "history") -> tuple[Operation, ...]:
    """Validate ``history`` and return it as a tuple (positions are operation ids)."""
    valid.collection(name, history, "a sequence of Operation")
    ops = tuple(history)
    for i, op in enumerate(ops):
        valid.instance(f"{name}[{i}]", op, Operation)
    return ops


def format_call(input: tuple) -> str:
    """``("write", 3)`` -> ``write(3)``."""
    name, *args = input
    return f"{name}({', '.join(repr(a) for a in args)})"


def format_op(op: Operation) -> str:
    """A short human description, e.g. ``client 2: write(3) -> None [1.0, 2.5]``."""
    valid.instance("op", op, Operation)
    ret = "never returned" if op.pending else f"{op.ret:g}"
    out = "?" if op.output is UNKNOWN else repr(op.output)
    return f"client {op.client}: {format_call(op.input)} -> {out} [{op.call:g}, {ret}]"
