"""Linearizability: histories, sequential models and a checker.

"Consistency" in the CAP theorem means linearizability (Gilbert & Lynch
2002; DDIA ch. 9): the system behaves as if there were a single copy of the
data and every operation took effect atomically at one point between its call
and its return. This package decides that property for recorded histories:

>>> from labkit.linearizability import Operation, check, RegisterModel
>>> h = [Operation(client=0, call=0.0, ret=1.0, input=("write", 1), output=None),
...      Operation(client=1, call=2.0, ret=3.0, input=("read",), output=None)]
>>> check(h, RegisterModel()).ok   # the read began after the write ended: it must see 1
False

* :mod:`~labkit.linearizability.history`: :class:`Operation`, :data:`UNKNOWN`;
* :mod:`~labkit.linearizability.models`: :class:`Model`, :class:`RegisterModel`,
  :class:`KVModel`;
* :mod:`~labkit.linearizability.reference`: :func:`is_linearizable`, the search
  of Wing & Gong and Lowe in thirty lines, to read beside the papers;
* :mod:`~labkit.linearizability.checker`: :func:`check`, the same search made
  fast, with a time budget;
* :mod:`~labkit.linearizability.result`: :class:`CheckResult`, :class:`Verdict`,
  linearization points and the verdict in words;
* :mod:`~labkit.linearizability.shrink`: :func:`minimal_violation`, the few
  operations that conflict;
* :mod:`~labkit.linearizability.stale`: :func:`stale_read`, the common
  violations found with no search (a stale, non-monotonic or future read),
  and the few operations around one;
* :mod:`~labkit.linearizability.adapters`: histories of labkit's replicated
  register and Raft store as operations;
* :mod:`~labkit.linearizability.generate`: random histories of a correct
  object, and corrupted copies (for tests and benchmarks).

Pictures of histories are in :mod:`labkit.viz.linearizability`.
"""

from labkit.linearizability.checker import check
from labkit.linearizability.history import UNKNOWN, History, Operation, format_op
from labkit.linearizability.models import KVModel, Model, RegisterModel
from labkit.linearizability.reference import is_linearizable
from labkit.linearizability.result import CheckResult, PartitionResult, Verdict, explain, linearization_points
from labkit.linearizability.shrink import minimal_violation
from labkit.linearizability.stale import Anomaly, StaleRead, stale_read, stale_read_window

__all__ = [
    "UNKNOWN",
    "Anomaly",
    "CheckResult",
    "History",
    "KVModel",
    "Model",
    "Operation",
    "PartitionResult",
    "RegisterModel",
    "StaleRead",
    "Verdict",
    "check",
    "explain",
    "format_op",
    "is_linearizable",
    "linearization_points",
    "minimal_violation",
    "stale_read",
    "stale_read_window",
]
