"""Deterministic discrete-event simulation of a message-passing system.

Protocol code implements :class:`Node` (sans-IO: handlers ask for effects
through a :class:`Context`); :class:`Simulator` runs nodes over a faulty
network in virtual time and records a :class:`Trace`.
"""

from labkit.sim.latency import Exponential, Fixed, Latency, Uniform
from labkit.sim.node import FORGOTTEN, Context, Effects, Node
from labkit.sim.script import schedule_at_nodes
from labkit.sim.simulator import Simulator
from labkit.sim.trace import COLUMNS, DropReason, Kind, Trace, TraceEvent

__all__ = [
    "COLUMNS",
    "FORGOTTEN",
    "Context",
    "DropReason",
    "Effects",
    "Exponential",
    "Fixed",
    "Kind",
    "Latency",
    "Node",
    "Simulator",
    "Trace",
    "TraceEvent",
    "Uniform",
    "schedule_at_nodes",
]
