"""Transactions and isolation (DDIA ch. 7): an MVCC store, an anomaly checker, real databases.

Work in progress.
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

__all__ = [
    "DDIA_NAMES",
    "Anomaly",
    "CheckResult",
    "Dep",
    "Edge",
    "Finding",
    "Fun",
    "Op",
    "Status",
    "Txn",
    "append",
    "check",
    "format_txn",
    "parse_history",
    "parse_txn",
    "read",
    "scan",
    "write",
]
