"""Logical and hybrid clocks: ordering events without trusting wall clocks.

* :class:`LamportClock`: a total order consistent with causality (Lamport 1978);
* :class:`VectorClock` and :class:`Ordering`: happened-before and concurrency
  (Fidge 1988, Mattern 1989); also the version stamp of Dynamo-style values;
* :class:`HLC`: hybrid logical clocks, causal and close to physical time
  (Kulkarni et al. 2014);
* :class:`ClockedNode`, :func:`run_chatter`, :func:`clock_events`: simulated
  processes that stamp every event with every clock, and
  :func:`clock_violations`, the properties those stamps must have;
* :class:`LWWReplica`, :func:`run_lww`, :class:`Stamping`: a last-writer-wins
  register, and what each clock does to its writes.
"""

from labkit.clocks.hlc import HLC, ClockOffsetError
from labkit.clocks.invariants import clock_violations
from labkit.clocks.lamport import LamportClock
from labkit.clocks.lww import LWWReplica, LWWRun, Stamping, Write, run_lww
from labkit.clocks.stamped import (
    Chatter,
    ClockedNode,
    Envelope,
    EventKind,
    Stamps,
    clock_events,
    configure_clocks,
    run_chatter,
)
from labkit.clocks.vector import Ordering, VectorClock

__all__ = [
    "HLC",
    "Chatter",
    "ClockOffsetError",
    "ClockedNode",
    "Envelope",
    "EventKind",
    "LWWReplica",
    "LWWRun",
    "LamportClock",
    "Ordering",
    "Stamping",
    "Stamps",
    "VectorClock",
    "Write",
    "clock_events",
    "clock_violations",
    "configure_clocks",
    "run_chatter",
    "run_lww",
]
