"""Projections: read models kept up to date by following the global event order.

A projection (DDIA ch. 11 "Deriving current state from the event log";
ch. 12 "Composing data storage technologies") folds *all* streams'
events, in ``read_all`` order, into a shape that suits a query: balances
per account, the ten largest withdrawals, whatever a screen needs. It
remembers the last position it has processed, its *checkpoint*, and catches
up by asking for the events after it. Because positions have no gaps and
readers only ever see a prefix of them, "after my checkpoint" is exactly
"what I have not seen yet": nothing is skipped and nothing is applied twice.

Read models are disposable. Fix a bug in a handler, or invent a new
projection next year, and :meth:`Projection.rebuild` replays the whole log
from position 0.

To survive restarts a projection saves its state *together with* its
checkpoint, in one write (:class:`CheckpointStore`); saving them separately
would let a crash between the two apply some events twice or never.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from labkit import validation as valid
from labkit.eventstore.aggregate import collect_handlers
from labkit.eventstore.recorder import EventStore, RecordedEvent, encode_json
from labkit.eventstore.sqlite import SQLiteTable
from labkit.eventstore.upcasting import EventCodec, Upcasters


class CheckpointStore(ABC):
    """Saves ``(position, state)`` of a named projection atomically."""

    def save(self, name: str, position: int, state: dict[str, Any]) -> None:
        valid.string("name", name)
        valid.integer("position", position, ge=0)
        self._save(name, position, encode_json(state, f"state of projection {name!r}"))

    def load(self, name: str) -> tuple[int, dict[str, Any]] | None:
        return self._load(valid.string("name", name))

    @abstractmethod
    def _save(self, name: str, position: int, state_json: str) -> None: ...

    @abstractmethod
    def _load(self, name: str) -> tuple[int, dict[str, Any]] | None: ...


class SQLiteCheckpointStore(SQLiteTable, CheckpointStore):
    """One row per projection: its checkpoint and its state, written in one statement."""

    schema = "projections (name TEXT PRIMARY KEY, position INTEGER NOT NULL, state TEXT NOT NULL)"

    def _save(self, name: str, position: int, state_json: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO projections VALUES (?, ?, ?)", (name, position, state_json)
            )

    def _load(self, name: str) -> tuple[int, dict[str, Any]] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT position, state FROM projections WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))


class InMemoryCheckpointStore(SQLiteCheckpointStore):
    """The same table in an SQLite database held in memory: nothing survives the process."""

    def __init__(self) -> None:
        super().__init__(":memory:")


class Projection(ABC):
    """Base class of read models.

    Subclasses set ``name``, build their empty read model in :meth:`reset`
    and write ``@applies(Event)`` handlers taking ``(self, event, record)``
    (``record`` is the :class:`RecordedEvent`, for its ``stream_id`` and
    ``position``). Events of other types are skipped (but still move the
    checkpoint). :meth:`get_state`/:meth:`set_state` default to the public
    attributes, like aggregate snapshots.
    """

    name: ClassVar[str] = "projection"
    _handlers: ClassVar[dict[type, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = collect_handlers(cls)

    def __init__(self, upcasters: Upcasters | None = None) -> None:
        self._codec = EventCodec(self._handlers, upcasters)
        self.position = 0  # Invariant: every event with position <= self.position has been applied, once
        self.reset()

    @abstractmethod
    def reset(self) -> None:
        """Set the read model to empty (position 0)."""

    def handle(self, record: RecordedEvent) -> None:
        """Apply one record; it must be the one right after the checkpoint."""
        if record.position != self.position + 1:
            raise ValueError(
                f"{self.name}: expected position {self.position + 1}, got {record.position} (a gap or a repeat)"
            )
        if self._codec.knows(record.type):
            event = self._codec.decode(record)
            self._handlers[type(event)](self, event, record)
        self.position = record.position

    def catch_up(
        self, store: EventStore, *, batch_size: int = 1000, checkpoints: CheckpointStore | None = None
    ) -> int:
        """Apply every event after the checkpoint; returns how many records were read."""
        valid.instance("store", store, EventStore)
        valid.integer("batch_size", batch_size, ge=1)
        valid.instance("checkpoints", checkpoints, CheckpointStore, none=True)
        seen = 0
        while True:
            batch = store.read_all(self.position, limit=batch_size)
            for record in batch:
                self.handle(record)
            seen += len(batch)
            if checkpoints is not None and batch:
                checkpoints.save(self.name, self.position, self.get_state())
            if len(batch) < batch_size:
                return seen

    def rebuild(
        self, store: EventStore, *, batch_size: int = 1000, checkpoints: CheckpointStore | None = None
    ) -> int:
        """Throw the read model away and replay the whole log."""
        self.reset()
        self.position = 0
        return self.catch_up(store, batch_size=batch_size, checkpoints=checkpoints)

    def resume(self, checkpoints: CheckpointStore) -> bool:
        """Load the saved state and checkpoint; False (and left empty) if none was saved."""
        valid.instance("checkpoints", checkpoints, CheckpointStore)
        saved = checkpoints.load(self.name)
        if saved is None:
            return False
        self.reset()
        self.position = saved[0]
        self.set_state(saved[1])
        return True

    def get_state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "position"}

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
