"""Aggregates rebuilt by replaying their events, and the repository that stores them.

An *aggregate* (Evans, *Domain-Driven Design*, ch. 6; DDIA ch. 11 "Event
sourcing") is one consistency boundary, here one event stream. Its state is
never stored: it is the fold of its events, ``state = apply(...apply(apply(
initial, e1), e2)..., en)``. A command method checks the business rules
against the current state and, if they hold, *triggers* new events; the
same ``apply`` handlers serve both for new events and for replay, so live
state and rebuilt state cannot drift apart.

Handlers are found through a table built from ``@applies(EventClass)``
decorators, not through ``if isinstance`` chains. :class:`Repository` loads
(snapshot + tail replay, or full replay), saves with optimistic concurrency
(expected version = the version the aggregate was loaded at), and offers
:meth:`Repository.update`, the standard retry loop: on a conflict, reload,
decide again, try again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from labkit import validation as valid
from labkit.eventstore.errors import ConcurrencyError
from labkit.eventstore.recorder import EventStore, RecordedEvent
from labkit.eventstore.snapshots import Snapshot, SnapshotStore
from labkit.eventstore.upcasting import EventCodec, Upcasters

_HANDLES = "__labkit_applies__"


def applies(event_cls: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a method as the handler of ``event_cls`` (for aggregates and projections)."""
    if not (isinstance(event_cls, type) and dataclasses.is_dataclass(event_cls)):
        raise TypeError(f"applies() takes an event dataclass, got {event_cls!r}")

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        setattr(fn, _HANDLES, event_cls)
        return fn

    return deco


def collect_handlers(cls: type) -> dict[type, Callable[..., None]]:
    """The ``{event class: handler}`` table of ``cls`` (subclasses override parents)."""
    table: dict[type, Callable[..., None]] = {}
    for klass in reversed(cls.__mro__):
        for attr in vars(klass).values():
            event_cls = getattr(attr, _HANDLES, None)
            if event_cls is not None:
                table[event_cls] = attr
    return table


class Aggregate:
    """Base class: subclasses set their initial state in ``__init__(self, aggregate_id)``,
    write ``@applies(Event)`` handlers that only change state, and command
    methods that validate and then call :meth:`trigger`.

    Snapshots store the public attributes (those not starting with ``_``,
    except ``id`` and ``version``); they must be JSON values. Bump
    ``snapshot_schema`` when their meaning changes.
    """

    snapshot_schema: ClassVar[int] = 1
    _handlers: ClassVar[dict[type, Callable[..., None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = collect_handlers(cls)

    def __init__(self, aggregate_id: str) -> None:
        valid.string("stream_id", aggregate_id)
        self.id = aggregate_id
        self.version = 0  # Invariant: version == number of events applied (stored + pending)
        self._pending: list[Any] = []

    @classmethod
    def event_classes(cls) -> list[type]:
        return list(cls._handlers)

    def apply(self, event: Any) -> None:
        """Change the state by one event (used for replay and for new events alike)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"{type(self).__name__} has no handler for {type(event).__name__}")
        handler(self, event)
        self.version += 1

    def trigger(self, event: Any) -> None:
        """Apply a new event and remember it for the next save."""
        self.apply(event)
        self._pending.append(event)

    @property
    def pending_events(self) -> list[Any]:
        return list(self._pending)

    def snapshot_state(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k not in ("id", "version")}

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> Aggregate:
        agg = cls(snapshot.stream_id)
        for key, value in snapshot.state.items():
            setattr(agg, key, value)
        agg.version = snapshot.version
        return agg

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.snapshot_state().items())
        return f"{type(self).__name__}(id={self.id!r}, version={self.version}, {fields})"


A = TypeVar("A", bound=Aggregate)


@dataclasses.dataclass(frozen=True, slots=True)
class LoadStats:
    """How the last :meth:`Repository.load` rebuilt its aggregate."""

    aggregate_id: str
    version: int
    snapshot_version: int  # 0 when no snapshot was used
    events_replayed: int


class Repository(Generic[A]):
    """Load and save aggregates of one class in an :class:`EventStore`.

    ``snapshots`` and ``snapshot_every`` go together: after a save that
    crosses a multiple of ``snapshot_every`` a snapshot is written, and loads
    start from the newest usable snapshot.
    """

    def __init__(
        self,
        store: EventStore,
        aggregate_cls: type[A],
        *,
        upcasters: Upcasters | None = None,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int | None = None,
    ) -> None:
        valid.instance("store", store, EventStore)
        if not (isinstance(aggregate_cls, type) and issubclass(aggregate_cls, Aggregate)):
            raise valid.ArgumentTypeError(
                f"aggregate_cls must be an Aggregate subclass, got {aggregate_cls!r}"
            )
        if (snapshots is None) != (snapshot_every is None):
            raise ValueError("give both snapshots and snapshot_every, or neither")
        valid.instance("snapshots", snapshots, SnapshotStore, none=True)
        valid.integer("snapshot_every", snapshot_every, ge=1, none=True)
        self.store = store
        self.aggregate_cls = aggregate_cls
        self.codec = EventCodec(aggregate_cls.event_classes(), upcasters)
        self.snapshots = snapshots
        self.snapshot_every = snapshot_every
        self.last_load: LoadStats | None = None

    def load(self, aggregate_id: str, at_version: int | None = None) -> A:
        """The aggregate as of its latest version, or as of ``at_version`` (time travel).

        Raises StreamNotFoundError if it has no events, ValueError if
        ``at_version`` is beyond its last version.
        """
        valid.string("stream_id", aggregate_id)
        valid.integer("at_version", at_version, ge=0, none=True)
        cls = self.aggregate_cls
        snap = self.snapshots.latest(aggregate_id, at_version) if self.snapshots is not None else None
        ours = (cls.__name__, cls.snapshot_schema)  # a snapshot of another class or schema is ignored
        usable = snap is not None and (snap.aggregate_type, snap.snapshot_schema) == ours
        agg = cls.from_snapshot(snap) if usable else cls(aggregate_id)
        snap_version = snap.version if usable else 0
        payloads = self.store.read_payloads(aggregate_id, from_version=agg.version, to_version=at_version)
        decode, apply = self.codec.decode_parts, agg.apply
        for event_type, data, schema_version, position in payloads:
            apply(decode(event_type, data, schema_version, position))
        if at_version is not None and agg.version < at_version:
            raise ValueError(
                f"at_version must be <= {agg.version} (the last version of {aggregate_id!r}), got {at_version}"
            )
        self.last_load = LoadStats(aggregate_id, agg.version, snap_version, len(payloads))
        return agg

    def save(self, aggregate: A) -> list[RecordedEvent]:
        """Append the aggregate's pending events; raises ConcurrencyError if the stream moved on."""
        valid.instance("aggregate", aggregate, self.aggregate_cls)
        pending = aggregate._pending
        if not pending:
            return []
        expected = aggregate.version - len(pending)
        new_stream_meta = {"aggregate_type": self.aggregate_cls.__name__} if expected == 0 else None
        recorded = self.store.append(
            aggregate.id, [self.codec.encode(e) for e in pending], expected, stream_metadata=new_stream_meta
        )
        aggregate._pending = []
        every, cls = self.snapshot_every, self.aggregate_cls
        if (
            self.snapshots is not None
            and every is not None
            and aggregate.version // every > expected // every
        ):
            state = aggregate.snapshot_state()
            self.snapshots.save(
                Snapshot(aggregate.id, aggregate.version, cls.__name__, cls.snapshot_schema, state)
            )
        return recorded

    def update(self, aggregate_id: str, decide: Callable[[A], None], *, retries: int = 20) -> tuple[A, int]:
        """Load, let ``decide`` trigger events, save; on a conflict reload and decide again.

        Returns the saved aggregate and the number of conflicts it went
        through. ``decide`` must be a pure function of the aggregate (it may
        run several times). After ``retries`` conflicts the last one is raised.
        """
        valid.integer("retries", retries, ge=0)
        conflicts = 0
        while True:
            agg = self.load(aggregate_id)
            decide(agg)
            try:
                self.save(agg)
                return agg, conflicts
            except ConcurrencyError:
                conflicts += 1
                if conflicts > retries:
                    raise

    def history(self, aggregate_id: str) -> list[Any]:
        """The aggregate's events as domain objects (upcast to the current schema)."""
        return [self.codec.decode(r) for r in self.store.read(aggregate_id)]
