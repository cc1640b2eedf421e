"""Leaving the simulator: labkit's sans-IO nodes as real processes on 127.0.0.1 (notebook 13).

* :mod:`~labkit.net.codec`: length-prefixed JSON frames and the registry of message types;
* :mod:`~labkit.net.storage`: a node's durable storage, an fsynced write-ahead file;
* :mod:`~labkit.net.node`: one node as a process (the ``Ready`` loop: persist, sync, send);
* :mod:`~labkit.net.procs`: process groups, parent-death guards, free ports;
* :mod:`~labkit.net.proxy`: the fault-injecting TCP proxy (partitions, delay, loss);
* :mod:`~labkit.net.cluster`: :class:`ProcessCluster`, our Raft store as processes;
* :mod:`~labkit.net.client`: clients that record wall-clock histories;
* :mod:`~labkit.net.nemesis`: fault schedules, concurrent workloads, and the checks;
* :mod:`~labkit.net.etcd`: a real etcd cluster under the same nemesis;
* :mod:`~labkit.net.quorum`: the Dynamo-style quorum store (:mod:`labkit.replication`) as processes.

The names below are imported on first use (PEP 562), so the processes started
as ``python -m labkit.net.node`` or ``python -m labkit.net.procs`` load only
what they run, and load it once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.net.client import RaftClient, to_operations
    from labkit.net.cluster import ProcessCluster
    from labkit.net.codec import Registry, WireError, registry_for

__all__ = ["ProcessCluster", "RaftClient", "Registry", "WireError", "registry_for", "to_operations"]

_HOME = {
    "ProcessCluster": "labkit.net.cluster",
    "RaftClient": "labkit.net.client",
    "to_operations": "labkit.net.client",
    "Registry": "labkit.net.codec",
    "WireError": "labkit.net.codec",
    "registry_for": "labkit.net.codec",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'labkit.net' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
