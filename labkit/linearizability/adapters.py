"""Histories recorded by labkit's own stores, as checker operations.

* Raft (:mod:`labkit.raft`): ``RaftCluster.operations()`` already returns
  :class:`~labkit.linearizability.Operation` records of the key-value store
  (check them with :class:`~labkit.linearizability.KVModel`);
  :func:`from_raft` is the same for a list of its history entries.
* Quorum replication (:mod:`labkit.replication`): its history records a read
  as the tuple of sibling values it saw and a write as ``"ok"`` (or
  ``ret=inf`` when its fate is unknown). :func:`from_replication` turns that
  into register operations for :class:`~labkit.linearizability.RegisterModel`:
  a read of one value returns the value, a read of a never-written register
  returns ``None``, and a read that saw several siblings returns
  :class:`Siblings`, which no single register can ever return.

Both are duck-typed (any objects with the right attributes), so this module
imports neither store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit.linearizability.history import UNKNOWN, Operation


@dataclass(frozen=True, slots=True)
class Siblings:
    """A read that returned several concurrent versions at once."""

    values: tuple

    def __repr__(self) -> str:
        return f"siblings{self.values!r}"


def _fields(rec: Any, i: int) -> tuple[Any, float, float, tuple, Any]:
    try:
        return rec.client, rec.call, rec.ret, tuple(rec.input), rec.output
    except AttributeError:
        raise TypeError(
            f"history[{i}] must have client, call, ret, input and output attributes, got {rec!r}"
        ) from None


def from_replication(history: Iterable[Any]) -> list[Operation]:
    """Register operations from a :mod:`labkit.replication` history (``ScenarioResult.history()``)."""
    out = []
    for i, rec in enumerate(history):
        client, call, ret, input, output = _fields(rec, i)
        if not input or input[0] not in ("read", "write"):
            raise ValueError(f"history[{i}] must be a read or a write, got input {input!r}")
        if ret == math.inf or output is None:
            register_input = ("write", input[1]) if input[0] == "write" else ("read",)
            out.append(Operation(client, call, math.inf, register_input, UNKNOWN))
        elif input[0] == "write":
            out.append(Operation(client, call, ret, ("write", input[1]), None))
        else:
            values = tuple(output)
            value = None if not values else values[0] if len(values) == 1 else Siblings(values)
            out.append(Operation(client, call, ret, ("read",), value))
    return out


def from_raft(history: Iterable[Any]) -> list[Operation]:
    """Key-value operations from ``RaftCluster.history`` entries.

    Unfinished entries get ``UNKNOWN`` and ``ret`` the time their client gave up on them
    (``math.inf`` if it never did); entries never sent are left out.
    """
    out = []
    for i, rec in enumerate(history):
        client, call, ret, input, output = _fields(rec, i)
        if isinstance(call, float) and math.isnan(call):
            continue  # queued behind another operation, never sent
        if ret != math.inf:
            out.append(Operation(client, call, ret, input, output))
        else:
            out.append(Operation(client, call, getattr(rec, "gave_up", math.inf), input, UNKNOWN))
    return out
