"""Transactions and isolation (DDIA ch. 7): a small MVCC store, an anomaly checker, real databases.

* :mod:`~labkit.txn.store`: :class:`Store`, a multi-version key-value store
  whose isolation level is a few rules (:class:`Isolation`, :class:`Rules`,
  :data:`RULES`): no isolation, read uncommitted, read committed, snapshot
  isolation, serializable by two-phase locking or by SSI;
* :mod:`~labkit.txn.run`: transaction programs (:class:`Read`, :class:`Write`,
  :class:`Append`, :class:`Scan`, :class:`Commit`, :class:`Abort`) and
  :func:`run`, which plays them in a chosen interleaving;
* :mod:`~labkit.txn.stories`: DDIA's anomalies as two-transaction stories
  (:data:`STORIES`);
* :mod:`~labkit.txn.history`, :mod:`~labkit.txn.infer`,
  :mod:`~labkit.txn.checker`: histories and an Elle-style checker
  (:func:`check`) that names anomalies by Adya's classes (:class:`Anomaly`);
* :mod:`~labkit.txn.generate`: random workloads and one generator per anomaly;
* :mod:`~labkit.txn.databases` and :mod:`~labkit.txn.postgres`: the same
  workloads on SQLite and on a throwaway PostgreSQL server.

Pictures are in :mod:`labkit.viz.txn`.

>>> from labkit.txn import STORIES, Isolation
>>> STORIES["lost update"].run(Isolation.READ_COMMITTED).final["x"]   # 100 + 10 + 20 would be right
120
"""

from labkit.txn.checker import DDIA_NAMES, Anomaly, CheckResult, Dep, Edge, Finding, check
from labkit.txn.history import (
    Fun,
    Op,
    Status,
    Txn,
    append,
    format_txn,
    parse_history,
    parse_txn,
    read,
    scan,
    write,
)
from labkit.txn.run import Abort, Append, Commit, Read, Run, Scan, Write, interleavings, run
from labkit.txn.store import RULES, Isolation, Rules, Store, View
from labkit.txn.stories import EXPECTED, STORIES, Story

__all__ = [
    "DDIA_NAMES",
    "EXPECTED",
    "RULES",
    "STORIES",
    "Abort",
    "Anomaly",
    "Append",
    "CheckResult",
    "Commit",
    "Dep",
    "Edge",
    "Finding",
    "Fun",
    "Isolation",
    "Op",
    "Read",
    "Rules",
    "Run",
    "Scan",
    "Status",
    "Store",
    "Story",
    "Txn",
    "View",
    "Write",
    "append",
    "check",
    "format_txn",
    "interleavings",
    "parse_history",
    "parse_txn",
    "read",
    "run",
    "scan",
    "write",
]
