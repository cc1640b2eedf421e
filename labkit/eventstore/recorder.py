"""The event-store interface: what every backend records and returns.

An event store keeps, per *stream* (one aggregate's history), an ordered,
append-only list of events, and across all streams one global order for
readers that follow everything (projections). The design follows DDIA
ch. 11 ("Event sourcing", "Deriving current state from the event log") and
ch. 7 ("Preventing lost updates"): a writer says which version of the
stream it based its decision on, and the append succeeds only if the stream
is still at that version. Everything in a batch commits together or not at
all.

Numbering (both 1-based, both without gaps):

* ``version``: the event's place in its stream. A stream at version ``v``
  holds events ``1..v``; a new stream is at version 0.
* ``position``: the event's place in the global order over all streams.
  ``read_all(from_position=p)`` returns the events after ``p`` in that
  order, so a reader that remembers the last position it processed (its
  checkpoint) never misses and never repeats an event.

Events are stored as JSON text, never pickle: a stored event is data that
outlives the code that wrote it and may be read by other programs; unpickling
would run whatever code the bytes name.

Backends subclass :class:`EventStore` and implement the ``_``-prefixed
methods; the public methods validate their input once, here, so every
backend refuses the same bad input with the same message.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.eventstore.errors import SerializationError

__all__ = [
    "EncodedEvent",
    "EventStore",
    "NewEvent",
    "RecordedEvent",
    "StreamInfo",
    "decode_json",
    "encode_json",
]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event about to be appended: a type name, a JSON object and its schema version.

    ``data`` must be a mapping with string keys whose values JSON can hold
    (str, int, float, bool, None, lists and mappings of those). ``schema_version``
    says which shape of ``data`` this is, so upcasters can bring old events to
    the current shape on read (see :mod:`labkit.eventstore.upcasting`).
    """

    type: str
    data: Mapping[str, Any]
    schema_version: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as the store returns it: the new event plus where it was stored."""

    position: int
    stream_id: str
    version: int
    type: str
    data: dict[str, Any]
    schema_version: int
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the store knows about one stream."""

    stream_id: str
    version: int  # number of events in the stream (= version of the last one)
    first_position: int  # global position of event 1
    last_position: int  # global position of the last event
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """A validated :class:`NewEvent` with its JSON already produced (backend input)."""

    type: str
    data_json: str
    schema_version: int
    metadata_json: str


def encode_json(value: Any, what: str) -> str:
    """JSON text for ``value`` or a :class:`SerializationError` naming ``what``."""
    try:
        # allow_nan=False: NaN and Infinity are not JSON and other readers would choke on them.
        return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"{what} cannot be stored as JSON: {exc}") from None


_raw_decode = json.JSONDecoder().raw_decode


def decode_json(text: str) -> Any:
    """``json.loads`` for the compact text :func:`encode_json` writes, without its whitespace scans.

    Replay decodes every event, so this is a hot path; text with surrounding
    whitespace or trailing garbage takes the strict ``json.loads`` path.
    """
    try:
        value, end = _raw_decode(text)
    except ValueError:
        return json.loads(text)  # raises the usual error, or accepts leading whitespace
    if end != len(text):
        return json.loads(text)
    return value


def decode_many(texts: list[str]) -> list[Any]:
    """Parse many JSON texts with one ``json.loads`` of the array joined from them (see :func:`decode_rows`)."""
    try:
        values = json.loads("[" + ",".join(texts) + "]")
    except ValueError:
        values = None
    if values is None or len(values) != len(texts):
        values = [decode_json(t) for t in texts]  # a corrupt text: parse one by one so the error names it
    return values


def decode_rows(rows: Sequence[tuple]) -> list[RecordedEvent]:
    """Records from stored rows ``(position, stream_id, version, type, data, schema_version, metadata)``.

    All the ``data`` texts are parsed by one ``json.loads`` of a JSON array
    joined from them: one call into the C parser instead of one Python-level
    call per event, which roughly halves replay time. Each text is a complete
    JSON object written by :func:`encode_json`; if the joined parse does not
    give exactly one value per row (a corrupt row), every row is parsed on its
    own, so the error names the bad text.
    """
    if not rows:
        return []
    datas = decode_many([r[4] for r in rows])
    return [
        RecordedEvent(r[0], r[1], r[2], r[3], d, r[5], {} if r[6] == "{}" else decode_json(r[6]))
        for r, d in zip(rows, datas, strict=True)
    ]


def _check_mapping(value: Any, what: str) -> None:
    if not isinstance(value, Mapping):
        raise SerializationError(f"{what} must be a mapping (a JSON object), got {type(value).__name__}")
    for key in value:
        # json.dumps would silently turn 1 into "1": refuse instead of changing the data.
        if not isinstance(key, str):
            raise SerializationError(f"{what} keys must be str, got key {key!r} ({type(key).__name__})")


def encode_events(events: Iterable[NewEvent]) -> list[EncodedEvent]:
    """Validate a batch and turn it into JSON; raises before anything is written."""
    if isinstance(events, NewEvent):
        raise TypeError("events must be a sequence of NewEvent, got a single NewEvent (wrap it in a list)")
    if isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
        raise TypeError(f"events must be a sequence of NewEvent, got {type(events).__name__}")
    encoded = []
    for i, event in enumerate(events):
        if not isinstance(event, NewEvent):
            raise TypeError(f"events[{i}] must be a NewEvent, got {type(event).__name__}")
        if not isinstance(event.type, str) or not event.type:
            raise ValueError(f"events[{i}].type must be a non-empty str, got {event.type!r}")
        valid.integer(f"events[{i}].schema_version", event.schema_version, ge=1)
        what = f"events[{i}] (type {event.type!r})"
        _check_mapping(event.data, f"{what} data")
        _check_mapping(event.metadata, f"{what} metadata")
        encoded.append(
            EncodedEvent(
                event.type,
                encode_json(event.data, f"{what} data"),
                event.schema_version,
                encode_json(event.metadata, f"{what} metadata"),
            )
        )
    if not encoded:
        raise ValueError("events must contain at least one NewEvent, got an empty batch")
    return encoded


class EventStore(ABC):
    """An append-only store of event streams with optimistic concurrency.

    Contract (checked for every backend by ``tests/test_eventstore_contract.py``):

    * ``append`` writes the whole batch or nothing, and only if the stream is
      at ``expected_version``; otherwise it raises
      :class:`~labkit.eventstore.errors.ConcurrencyError` carrying the expected
      and the actual version.
    * Versions in a stream and positions over all streams are 1, 2, 3, ...
      with no gap and no repeat, and a reader never sees position ``p + 1``
      before position ``p`` exists.
    * What ``read`` returns equals what was appended (JSON round trip).
    """

    # ------------------------------------------------------------------ public API
    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: int,
        *,
        stream_metadata: Mapping[str, Any] | None = None,
    ) -> list[RecordedEvent]:
        """Append ``events`` to ``stream_id`` if the stream is at ``expected_version``.

        ``expected_version=0`` means "the stream must not exist yet"; only then
        may ``stream_metadata`` be given, and it is stored in the same
        transaction. Returns the recorded events (with their versions and
        global positions).
        """
        valid.string("stream_id", stream_id)
        valid.integer("expected_version", expected_version, ge=0)
        meta_json = None
        if stream_metadata is not None:
            if expected_version != 0:
                raise ValueError(
                    "stream_metadata is only allowed when creating a stream (expected_version=0)"
                )
            _check_mapping(stream_metadata, "stream_metadata")
            meta_json = encode_json(stream_metadata, "stream_metadata")
        encoded = encode_events(events)
        return self._append(stream_id, encoded, expected_version, meta_json)

    def read(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> list[RecordedEvent]:
        """The events of ``stream_id`` with ``from_version < version <= to_version``.

        ``from_version`` is the version you already have (0: from the start), so
        ``state at v`` + ``read(s, from_version=v)`` gives the rest. ``to_version``
        (default: the end) lets you rebuild the state as of an older version.
        Raises :class:`~labkit.eventstore.errors.StreamNotFoundError` for a stream
        that does not exist.
        """
        valid.string("stream_id", stream_id)
        valid.integer("from_version", from_version, ge=0)
        if to_version is not None:
            valid.integer("to_version", to_version, ge=from_version)
        return self._read(stream_id, from_version, to_version)

    def read_payloads(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> list[tuple[str, dict[str, Any], int, int]]:
        """``(type, data, schema_version, position)`` of the events :meth:`read` would return.

        The replay fast path used by :class:`~labkit.eventstore.aggregate.Repository`:
        what an aggregate needs and nothing more, without building a record
        object per event. Same arguments, same errors as :meth:`read`.
        """
        valid.string("stream_id", stream_id)
        valid.integer("from_version", from_version, ge=0)
        if to_version is not None:
            valid.integer("to_version", to_version, ge=from_version)
        return self._read_payloads(stream_id, from_version, to_version)

    def read_all(self, from_position: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        """Events of all streams with ``position > from_position``, in position order.

        ``from_position`` is a reader's checkpoint (the last position it
        processed); ``limit`` caps the batch size.
        """
        valid.integer("from_position", from_position, ge=0)
        if limit is not None:
            valid.integer("limit", limit, ge=1)
        return self._read_all(from_position, limit)

    def stream_info(self, stream_id: str) -> StreamInfo:
        """Version, positions and metadata of a stream; raises StreamNotFoundError if absent."""
        valid.string("stream_id", stream_id)
        return self._stream_info(stream_id)

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 for a stream that does not exist yet."""
        valid.string("stream_id", stream_id)
        return self._stream_version(stream_id)

    def set_stream_metadata(self, stream_id: str, metadata: Mapping[str, Any]) -> None:
        """Replace the metadata of an existing stream (e.g. its aggregate type, an owner)."""
        valid.string("stream_id", stream_id)
        _check_mapping(metadata, "metadata")
        self._set_stream_metadata(stream_id, encode_json(metadata, "metadata"))

    def stream_ids(self) -> list[str]:
        """Ids of all streams, in the order they were created."""
        return self._stream_ids()

    def head_position(self) -> int:
        """Position of the last event in the store (0 when empty)."""
        return self._head_position()

    def check_invariants(self) -> None:
        """Raise AssertionError if positions or versions have a gap or a repeat.

        This generic version reads the whole store; backends may override it
        with something cheaper (the SQLite one asks the database).
        """
        last: dict[str, int] = {}
        for i, r in enumerate(self.read_all(), start=1):
            assert r.position == i, f"position gap or repeat: expected {i}, found {r.position}"
            assert r.version == last.get(r.stream_id, 0) + 1, (
                f"stream {r.stream_id!r}: version gap at {r.version}"
            )
            last[r.stream_id] = r.version

    def close(self) -> None:
        """Release the backend's resources; the store must not be used afterwards."""
        return None

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- backend hooks
    @abstractmethod
    def _append(
        self,
        stream_id: str,
        events: list[EncodedEvent],
        expected_version: int,
        stream_metadata_json: str | None,
    ) -> list[RecordedEvent]:
        """Atomically check the version and write all of ``events`` (already validated)."""

    @abstractmethod
    def _read(self, stream_id: str, from_version: int, to_version: int | None) -> list[RecordedEvent]: ...

    def _read_payloads(
        self, stream_id: str, from_version: int, to_version: int | None
    ) -> list[tuple[str, dict[str, Any], int, int]]:
        """Default: derived from :meth:`_read`; backends may answer it more cheaply."""
        return [
            (r.type, r.data, r.schema_version, r.position)
            for r in self._read(stream_id, from_version, to_version)
        ]

    @abstractmethod
    def _read_all(self, from_position: int, limit: int | None) -> list[RecordedEvent]: ...

    @abstractmethod
    def _stream_info(self, stream_id: str) -> StreamInfo: ...

    @abstractmethod
    def _stream_version(self, stream_id: str) -> int: ...

    @abstractmethod
    def _set_stream_metadata(self, stream_id: str, metadata_json: str) -> None: ...

    @abstractmethod
    def _stream_ids(self) -> list[str]: ...

    @abstractmethod
    def _head_position(self) -> int: ...
