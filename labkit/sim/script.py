"""A scripted run: calls at named nodes, and faults, at given times.

Several runs that notebooks drive (broadcast, CRDT replicas, last-writer-wins
registers) are a list of ``(time, node_id, x)`` entries: at ``time``, node
``node_id`` does something with ``x`` (broadcasts it, applies it, writes it).
:func:`schedule_at_nodes` checks such a list and puts it on the simulator's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from labkit.sim.node import Context
from labkit.sim.simulator import Simulator

__all__ = ["schedule_at_nodes"]


def schedule_at_nodes(
    sim: Simulator,
    nodes: Sequence[str],
    entries: Sequence[tuple[float, str, Any]],
    faults: Sequence[tuple[float, Callable[[Simulator], Any]]],
    act: Callable[[Any, Context, Any], Any],
    *,
    name: str,
    fields: tuple[str, str, str],
) -> float:
    """Have ``sim`` call ``act(node, ctx, x)`` for each ``(time, node_id, x)`` of ``entries`` and
    ``fn(sim)`` for each ``(time, fn)`` of ``faults``; return the time of the last of them.

    A node that is down at its time does nothing. ``name`` and ``fields`` (the
    entries' argument name and the names of a tuple's three parts) word the errors.
    """
    last = 0.0
    for i, entry in enumerate(entries):
        if not (isinstance(entry, tuple) and len(entry) == 3):
            raise TypeError(f"{name}[{i}] must be a ({', '.join(fields)}) tuple, got {entry!r}")
        t, nid, x = entry
        if nid not in nodes:
            raise ValueError(f"{name}[{i}] names {fields[1]} {nid!r}, which is not one of {list(nodes)}")

        def do(s: Simulator, nid: str = nid, x: Any = x) -> None:
            if s.is_up(nid):
                s.call(nid, lambda node, ctx: act(node, ctx, x))

        sim.at(t, do)
        last = max(last, t)
    for i, entry in enumerate(faults):
        if not (isinstance(entry, tuple) and len(entry) == 2 and callable(entry[1])):
            raise TypeError(f"faults[{i}] must be a (time, fn) pair with fn(sim), got {entry!r}")
        sim.at(entry[0], entry[1])
        last = max(last, entry[0])
    return last
