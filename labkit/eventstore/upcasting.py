"""Event schema evolution: upcasters and the codec between domain events and stored JSON.

Stored events are never rewritten (they are the history), yet the code that
reads them changes: a field is added, renamed, split. Each stored event
carries the ``schema_version`` of the shape it was written in; on every read
an *upcaster* chain turns version ``n`` into ``n + 1`` until the event has
the shape the current class expects (Young, *Versioning in an Event Sourced
System*, ch. 3 "Basic type-based versioning" and "Upcasting"; DDIA ch. 4 on
forward and backward compatibility). Old events stay as they were written;
only the reader knows about the changes.

Domain events are frozen dataclasses (``slots=True``) whose fields are JSON
values. A class declares its current shape with a class variable
``schema_version: ClassVar[int] = n`` (default 1) and may set
``event_type: ClassVar[str]`` (default: the class name).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from labkit import validation as valid
from labkit.eventstore.errors import UpcastError
from labkit.eventstore.recorder import NewEvent, RecordedEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def event_type_of(cls: type) -> str:
    """The name events of ``cls`` are stored under."""
    return getattr(cls, "event_type", cls.__name__)


def schema_version_of(cls: type) -> int:
    """The schema version the code currently writes (and upcasts to) for ``cls``."""
    return getattr(cls, "schema_version", 1)


class Upcasters:
    """A table ``(event type, schema version n) -> function turning data n into data n + 1``.

    >>> up = Upcasters()
    >>> up.add("Deposited", 1, lambda data: {**data, "currency": "EUR"})
    >>> up.upcast("Deposited", 1, {"amount": 5})
    ({'amount': 5, 'currency': 'EUR'}, 2)
    """

    def __init__(self) -> None:
        self._table: dict[tuple[str, int], Upcaster] = {}

    def add(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """Register ``upcaster`` for ``event_type`` data of ``from_version``."""
        valid.string("event_type", event_type)
        valid.integer("from_version", from_version, ge=1)
        valid.function("upcaster", upcaster, "callable (dict -> dict)")
        key = (event_type, from_version)
        if key in self._table:
            raise ValueError(f"an upcaster for {event_type!r} version {from_version} is already registered")
        self._table[key] = upcaster

    def upcast(
        self, event_type: str, schema_version: int, data: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        """Apply the chain from ``schema_version`` as far as it goes; returns (data, new version)."""
        table = self._table
        while (event_type, schema_version) in table:
            data = table[event_type, schema_version](data)
            if not isinstance(data, dict):
                raise UpcastError(
                    f"upcaster for {event_type!r} v{schema_version} returned {type(data).__name__}, not a dict"
                )
            schema_version += 1
        return data, schema_version


class EventCodec:
    """Turns domain events (frozen dataclasses) into :class:`NewEvent` and stored records back.

    Decoding first runs the upcasters, then checks that the data now has the
    class's current ``schema_version`` and its fields; anything else raises
    :class:`~labkit.eventstore.errors.UpcastError` naming the event.
    """

    def __init__(self, event_classes: Iterable[type], upcasters: Upcasters | None = None) -> None:
        valid.instance("upcasters", upcasters, Upcasters, none=True)
        self.upcasters = upcasters if upcasters is not None else Upcasters()
        self._by_type: dict[str, type] = {}
        self._fields: dict[type, tuple[str, ...]] = {}
        self._target: dict[str, tuple[type, int]] = {}  # type name -> (class, current schema version)
        for cls in event_classes:
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise TypeError(f"event classes must be dataclasses, got {cls!r}")
            name = event_type_of(cls)
            if self._by_type.get(name, cls) is not cls:
                raise ValueError(f"two event classes are stored under the same type name {name!r}")
            self._by_type[name] = cls
            self._fields[cls] = tuple(f.name for f in dataclasses.fields(cls))
            self._target[name] = (cls, schema_version_of(cls))

    def knows(self, event_type: str) -> bool:
        return event_type in self._by_type

    def encode(self, event: Any, metadata: dict[str, Any] | None = None) -> NewEvent:
        cls = type(event)
        names = self._fields.get(cls)
        if names is None:
            raise TypeError(
                f"{cls.__name__} is not one of this codec's event classes: {sorted(self._by_type)}"
            )
        data = {name: getattr(event, name) for name in names}
        return NewEvent(event_type_of(cls), data, schema_version_of(cls), metadata or {})

    def decode(self, record: RecordedEvent) -> Any:
        """The domain event for a stored record (upcast to the class's current schema)."""
        return self.decode_parts(record.type, record.data, record.schema_version, record.position)

    def decode_parts(self, event_type: str, data: dict[str, Any], schema_version: int, position: int) -> Any:
        """:meth:`decode` from the pieces (``position`` only names the event in errors)."""
        target = self._target.get(event_type)
        if target is None:
            raise UpcastError(f"event type {event_type!r} at position {position} is unknown to this codec")
        cls, want = target
        version = schema_version
        if version != want:  # events already in the current shape (the common case) skip the table
            data, version = self.upcasters.upcast(event_type, version, data)
        if version != want:
            raise UpcastError(
                f"{event_type} at position {position} is stored as schema v{schema_version}; "
                f"upcasters reach v{version} but {cls.__name__} needs v{want} (register the missing upcaster)"
            )
        try:
            return cls(**data)
        except TypeError as exc:
            raise UpcastError(
                f"{event_type} v{version} at position {position} has fields {sorted(data)}, "
                f"but {cls.__name__} has {list(self._fields[cls])}: {exc}"
            ) from None
