"""The capstone: a sharded, replicated key-value store (consistent hashing over Raft groups).

* :mod:`labkit.shardkv.store`: :class:`ShardStore`, the per-group state machine
  that decides key ownership in the Raft log, and its commands;
* :mod:`labkit.shardkv.router`: :class:`ShardRouter`, a client that sends each
  key to its group's leader and retries across leaders, and its rule for the
  next server to try, :func:`follow_hint_or_next`;
* :mod:`labkit.shardkv.kv`: :class:`ShardedKV`, groups on one simulator, faults,
  adding a group with a key move that loses no acknowledged write.

Built from :mod:`labkit.hashing` (the ring), :mod:`labkit.raft` (each group)
and checked with :mod:`labkit.linearizability`.
"""

from labkit.raft.client import ClientHandle, follow_hint_or_next
from labkit.shardkv.kv import Migration, Phase, ShardedKV
from labkit.shardkv.router import Directory, ShardRouter
from labkit.shardkv.store import Install, Reconfigure, ShardConfig, ShardStore, WrongGroup

__all__ = [
    "ClientHandle",
    "Directory",
    "Install",
    "Migration",
    "Phase",
    "Reconfigure",
    "ShardConfig",
    "ShardRouter",
    "ShardStore",
    "ShardedKV",
    "WrongGroup",
    "follow_hint_or_next",
]
