"""Checkable clock invariants over a run (the properties the papers prove).

:func:`clock_violations` takes the event table of :func:`clock_events` and
lists every place where a clock broke a property it promises:

* along each node, Lamport, vector and HLC values strictly increase
  (Lamport 1978, IR1; Kulkarni et al. 2014, Theorem 1);
* a receive is later than its send under all three clocks (the clock
  condition, C2 in Lamport's §3);
* ``pt <= l`` at every event, and ``l - pt <= eps`` when a skew bound
  ``eps`` is given (Kulkarni et al., Theorem 2).

An empty list means the run is consistent with those properties.
"""

from __future__ import annotations

from typing import Any

from labkit import validation as valid

_COLUMNS = ("node", "kind", "physical", "lamport", "vector", "hlc", "hlc_l", "sent_vector")
# Along each node, every clock strictly increases: (event-table column, name in messages).
_CLOCKS = (("lamport", "Lamport time"), ("vector", "vector"), ("hlc", "HLC"))


def clock_violations(events: Any, *, eps: float | None = None, limit: int = 20) -> list[str]:
    """Up to ``limit`` descriptions of broken clock properties in ``events`` (a
    :func:`~labkit.clocks.clock_events` DataFrame); ``eps`` is the skew bound in seconds."""
    missing = [c for c in _COLUMNS if c not in getattr(events, "columns", ())]
    if missing:
        raise TypeError(f"events must be a clock_events() DataFrame; missing columns {missing}")
    valid.number("eps", eps, ge=0, unit="seconds", none=True, note="a bound on clock skew")
    valid.integer("limit", limit, ge=1)
    out: list[str] = []
    last: dict[str, Any] = {}
    sends: dict[Any, Any] = {}
    for i, e in enumerate(events.itertuples(index=False)):
        where = f"event {i} ({e.kind} at {e.node})"
        prev = last.get(e.node)
        if prev is not None:
            for clock, name in _CLOCKS:
                before, now = getattr(prev, clock), getattr(e, clock)
                if not before < now:
                    out.append(f"{where}: {name} {now} is not after the node's previous {before}")
        if e.kind == "send":
            sends[e.vector] = e
        elif e.kind == "receive":
            s = sends.get(e.sent_vector)
            if s is None:
                out.append(f"{where}: no earlier send has the vector {e.sent_vector}")
            elif not (s.lamport < e.lamport and s.vector < e.vector and s.hlc < e.hlc):
                out.append(f"{where}: not later than its send at {s.node} under every clock")
        if e.hlc_l < e.physical:
            out.append(f"{where}: HLC l={e.hlc_l!r} is behind the physical clock {e.physical!r}")
        if eps is not None and e.hlc_l - e.physical > eps + 1e-9:
            out.append(
                f"{where}: HLC l is {e.hlc_l - e.physical:.6f} s ahead of the clock, more than eps={eps}"
            )
        last[e.node] = e
        if len(out) >= limit:
            return out[:limit]
    return out
