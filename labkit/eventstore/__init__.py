"""An event store with optimistic concurrency, and event sourcing on top of it.

Notebook 16 teaches with it. One module per concept:

* :mod:`~labkit.eventstore.errors`: ``ConcurrencyError`` (expected and actual
  versions), ``StreamNotFoundError``, ``SerializationError`` (data that would not
  come back exactly), ``CorruptEventError``, ``StoreClosedError``, ``StoreOpenError``,
  ``UpcastError``;
* :mod:`~labkit.eventstore.recorder`: the :class:`EventStore` interface and the
  event records (``NewEvent``, ``RecordedEvent``, ``StreamInfo``);
* :mod:`~labkit.eventstore.memory` and :mod:`~labkit.eventstore.sqlite`: the
  two backends (the second with WAL and a :class:`Durability` setting);
* :mod:`~labkit.eventstore.aggregate`: aggregates rebuilt by replay and the
  :class:`Repository` (load, save, time travel, retry loop);
* :mod:`~labkit.eventstore.snapshots`, :mod:`~labkit.eventstore.projections`,
  :mod:`~labkit.eventstore.upcasting`: snapshots every N events, read models
  with checkpoints, schema evolution;
* :mod:`~labkit.eventstore.bank`: the worked example (an account);
* :mod:`~labkit.eventstore.naive`: a first attempt, for contrast;
* :mod:`~labkit.eventstore.stress`: many writer processes and their audit.

Sources: DDIA ch. 7 (lost updates, compare-and-set) and ch. 11 (event
sourcing, deriving state from a log); G. Young, *Versioning in an Event
Sourced System* (upcasting).
"""

from labkit.eventstore.aggregate import Aggregate, LoadStats, Repository, applies
from labkit.eventstore.errors import (
    ConcurrencyError,
    CorruptEventError,
    EventStoreError,
    SerializationError,
    StoreClosedError,
    StoreOpenError,
    StreamNotFoundError,
    UpcastError,
)
from labkit.eventstore.memory import InMemoryEventStore
from labkit.eventstore.projections import (
    CheckpointStore,
    InMemoryCheckpointStore,
    Projection,
    SQLiteCheckpointStore,
)
from labkit.eventstore.recorder import EventStore, NewEvent, RecordedEvent, StreamInfo
from labkit.eventstore.snapshots import InMemorySnapshotStore, Snapshot, SnapshotStore, SQLiteSnapshotStore
from labkit.eventstore.sqlite import Durability, SQLiteEventStore
from labkit.eventstore.upcasting import EventCodec, Upcasters

__all__ = [
    "Aggregate",
    "CheckpointStore",
    "ConcurrencyError",
    "CorruptEventError",
    "Durability",
    "EventCodec",
    "EventStore",
    "EventStoreError",
    "InMemoryCheckpointStore",
    "InMemoryEventStore",
    "InMemorySnapshotStore",
    "LoadStats",
    "NewEvent",
    "Projection",
    "RecordedEvent",
    "Repository",
    "SQLiteCheckpointStore",
    "SQLiteEventStore",
    "SQLiteSnapshotStore",
    "SerializationError",
    "Snapshot",
    "SnapshotStore",
    "StoreClosedError",
    "StoreOpenError",
    "StreamInfo",
    "StreamNotFoundError",
    "UpcastError",
    "Upcasters",
    "applies",
]
