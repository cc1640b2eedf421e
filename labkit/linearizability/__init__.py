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
* :mod:`~labkit.linearizability.checker`: :func:`check`, :class:`Verdict`;
* :mod:`~labkit.linearizability.explain`: linearization points, explanations,
  minimal counterexamples;
* :mod:`~labkit.linearizability.adapters`: histories of labkit's replicated
  register and Raft store as operations;
* :mod:`~labkit.linearizability.generate`: random histories of a correct
  object, and corrupted copies (for tests and benchmarks).

Pictures of histories are in :mod:`labkit.viz.linearizability`.
"""

from labkit.linearizability.checker import CheckResult, PartitionResult, Verdict, check
from labkit.linearizability.explain import explain, linearization_points, minimal_violation
from labkit.linearizability.history import UNKNOWN, History, Operation, format_op
from labkit.linearizability.models import KVModel, Model, RegisterModel

__all__ = [
    "UNKNOWN",
    "CheckResult",
    "History",
    "KVModel",
    "Model",
    "Operation",
    "PartitionResult",
    "RegisterModel",
    "Verdict",
    "check",
    "explain",
    "format_op",
    "linearization_points",
    "minimal_violation",
]
