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

import itertools
import json
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from labkit import validation as valid
from labkit.eventstore.errors import CorruptEventError, SerializationError, StoreClosedError
from labkit.validation import shown


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


MAX_DEPTH = 100
"""How deeply stored data may nest (lists and dicts inside each other)."""

_JSON_SCALARS = (str, int, float, bool, type(None))


def json_problem(value: Any, *, top_mapping: bool = True) -> tuple[str, str] | None:
    """``(path, what is wrong)`` for the first part of ``value`` JSON would not give back exactly.

    The rule: stored data is built from exactly ``dict`` (with ``str`` keys), ``list``, ``str``,
    ``int``, finite ``float``, ``bool`` and ``None``, nested at most :data:`MAX_DEPTH` deep. That is
    what a JSON text carries and gives back unchanged. Anything else would come back as something
    else: ``json`` writes the key ``1`` as ``"1"`` (so ``{1: 'x', '1': 'z'}`` would lose ``'x'``),
    ``True`` as ``"true"``, a tuple as a list, an ``IntEnum`` as a plain int. A lone surrogate
    (``'\\ud800'``) cannot be written as UTF-8, which is what SQLite stores. ``path`` is ``""`` for
    the value itself, else like ``['a'][1]``. With ``top_mapping`` the value itself may be any
    :class:`~collections.abc.Mapping` (it is stored as a JSON object).
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        x, path, depth = stack.pop()
        t = type(x)
        if t in _JSON_SCALARS:
            if t is float and not math.isfinite(x):
                return path, f"{x!r} (JSON has no NaN or infinity)"
            if t is str and not x.isascii() and not _utf8_ok(x):
                return path, "a str with a lone surrogate, which UTF-8 (and so the store) cannot hold"
            if t is int and _too_long(x):
                return path, f"an int of more than {sys.get_int_max_str_digits()} digits"
            continue
        if depth >= MAX_DEPTH:
            return path, f"nested more than {MAX_DEPTH} levels deep"
        if t is dict or (depth == 0 and top_mapping and isinstance(x, Mapping)):
            for k, item in x.items():
                if type(k) is not str:
                    return path, (
                        f"a key {k!r} ({type(k).__name__}): keys must be str "
                        "(JSON would store the key as text and give back a different key)"
                    )
                if not k.isascii() and not _utf8_ok(k):
                    return path, f"a key {k!r} with a lone surrogate, which UTF-8 cannot hold"
                stack.append((item, f"{path}[{k!r}]", depth + 1))
        elif t is list:
            stack.extend((item, f"{path}[{i}]", depth + 1) for i, item in enumerate(x))
        else:
            kind = "a tuple (it would come back as a list)" if t is tuple else f"a {t.__name__}"
            return (
                path,
                f"{kind}, which JSON cannot hold exactly (allowed: dict, list, str, int, float, bool, None)",
            )
    return None


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _too_long(x: int) -> bool:
    """More digits than Python will write or read (``sys.set_int_max_str_digits``)."""
    limit = sys.get_int_max_str_digits()
    if not limit or x.bit_length() <= 3 * limit:  # 3 bits per digit is too few: surely short enough
        return False
    try:
        str(x)
    except ValueError:
        return True
    return False


def encode_json(value: Any, what: str) -> str:
    """JSON text that gives ``value`` back exactly, or a :class:`SerializationError` naming the bad part."""
    problem = json_problem(value)
    if problem is not None:
        path, why = problem
        raise SerializationError(f"{what}{path} cannot be stored: {why}")
    if isinstance(value, Mapping) and type(value) is not dict:
        value = dict(value)
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


_scan_once = json.JSONDecoder().scan_once  # parse one JSON value at an offset: (value, end)


def decode_objects(
    texts: Sequence[str], positions: Sequence[int], what: str = "data"
) -> list[dict[str, Any]]:
    """The JSON object stored in each text; :class:`CorruptEventError` names a text that is not one.

    Every text is parsed on its own, so one damaged row can never be glued to its neighbour
    (``'{"x":[1'`` and ``'2]}'`` are two corrupt rows, not one ``{"x": [1, 2]}``); the first text
    that is not exactly one JSON object is reported with its event's position.
    """
    try:
        scanned = list(map(_scan_once, texts, itertools.repeat(0)))  # [(value, end)], at C speed
        values = list(map(itemgetter(0), scanned))
        # Each scan stops at the end of the first value, so the ends add up to the texts' total
        # length exactly when every text is one value with nothing after it.
        if sum(map(itemgetter(1), scanned)) == sum(map(len, texts)) and set(map(type, values)) <= {dict}:
            return values
    except (StopIteration, TypeError, ValueError, RecursionError):
        pass
    return [_decode_object(t, p, what) for t, p in zip(texts, positions, strict=True)]


def _decode_object(text: Any, position: int, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)  # also accepts whitespace around the object
    except (TypeError, ValueError, RecursionError) as exc:
        problem = f"is not JSON ({exc})"
    else:
        if type(value) is dict:
            return value
        problem = f"is a JSON {type(value).__name__}, not an object"
    raise CorruptEventError(
        f"the stored {what} of the event at position {position} {problem}: {shown(text)}. "
        "The row was changed outside the event store; restore the file from a backup"
    )


def stored_rows(events: Sequence[EncodedEvent], stream_id: str, head: int, version: int) -> list[tuple]:
    """The rows ``(position, stream_id, version, type, data, schema_version, metadata)`` that store
    ``events`` after global position ``head`` in a stream now at ``version``."""
    return [
        (head + i, stream_id, version + i, e.type, e.data_json, e.schema_version, e.metadata_json)
        for i, e in enumerate(events, start=1)
    ]


def decode_rows(rows: Sequence[tuple]) -> list[RecordedEvent]:
    """Records from stored rows ``(position, stream_id, version, type, data, schema_version, metadata)``."""
    if not rows:
        return []
    positions = [r[0] for r in rows]
    datas = decode_objects([r[4] for r in rows], positions)
    metas = [{} if r[6] == "{}" else _decode_object(r[6], r[0], "metadata") for r in rows]
    return [
        RecordedEvent(r[0], r[1], r[2], r[3], d, r[5], m) for r, d, m in zip(rows, datas, metas, strict=True)
    ]


def _encode_mapping(value: Any, what: str) -> str:
    """:func:`encode_json` of a value that must be a mapping (stored as a JSON object)."""
    if not isinstance(value, Mapping):
        raise SerializationError(f"{what} must be a mapping (a JSON object), got {type(value).__name__}")
    return encode_json(value, what)


def encode_events(events: Iterable[NewEvent]) -> list[EncodedEvent]:
    """Validate a batch and turn it into JSON; raises before anything is written."""
    if isinstance(events, NewEvent):
        raise TypeError("events must be a sequence of NewEvent, got a single NewEvent (wrap it in a list)")
    if isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
        raise TypeError(f"events must be a sequence of NewEvent, got {type(events).__name__}")
    encoded = []
    for i, event in enumerate(events):
        valid.instance(f"events[{i}]", event, NewEvent)
        valid.string(f"events[{i}].type", event.type)
        valid.integer(f"events[{i}].schema_version", event.schema_version, ge=1)
        what = f"events[{i}] (type {event.type!r})"
        data = _encode_mapping(event.data, f"{what} data")
        metadata = _encode_mapping(event.metadata, f"{what} metadata")
        encoded.append(EncodedEvent(event.type, data, event.schema_version, metadata))
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
    * What ``read`` returns is what was appended, value for value and type for type;
      data JSON would not give back exactly is refused by ``append`` with a
      :class:`~labkit.eventstore.errors.SerializationError` naming the path to it
      (see :func:`json_problem`), and nothing is written.
    * A stored row that is not one JSON object (changed behind the store's back)
      is reported as :class:`~labkit.eventstore.errors.CorruptEventError` with its
      position, never read as something else.
    * After :meth:`close`, every call raises :class:`~labkit.eventstore.errors.StoreClosedError`.
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
        self._require_open()
        valid.string("stream_id", stream_id)
        valid.integer("expected_version", expected_version, ge=0)
        if stream_metadata is not None and expected_version != 0:
            raise ValueError("stream_metadata is only allowed when creating a stream (expected_version=0)")
        meta_json = None if stream_metadata is None else _encode_mapping(stream_metadata, "stream_metadata")
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
        self._check_range(stream_id, from_version, to_version)
        return self._read(stream_id, from_version, to_version)

    def read_payloads(
        self, stream_id: str, from_version: int = 0, to_version: int | None = None
    ) -> list[tuple[str, dict[str, Any], int, int]]:
        """``(type, data, schema_version, position)`` of the events :meth:`read` would return.

        The replay fast path used by :class:`~labkit.eventstore.aggregate.Repository`:
        what an aggregate needs and nothing more, without building a record
        object per event. Same arguments, same errors as :meth:`read`.
        """
        self._check_range(stream_id, from_version, to_version)
        return self._read_payloads(stream_id, from_version, to_version)

    def _check_range(self, stream_id: str, from_version: int, to_version: int | None) -> None:
        self._require_open()
        valid.string("stream_id", stream_id)
        valid.integer("from_version", from_version, ge=0)
        valid.integer("to_version", to_version, ge=from_version, none=True)

    def read_all(self, from_position: int = 0, limit: int | None = None) -> list[RecordedEvent]:
        """Events of all streams with ``position > from_position``, in position order.

        ``from_position`` is a reader's checkpoint (the last position it
        processed); ``limit`` caps the batch size.
        """
        self._require_open()
        valid.integer("from_position", from_position, ge=0)
        valid.integer("limit", limit, ge=1, none=True)
        return self._read_all(from_position, limit)

    def stream_info(self, stream_id: str) -> StreamInfo:
        """Version, positions and metadata of a stream; raises StreamNotFoundError if absent."""
        self._require_open()
        valid.string("stream_id", stream_id)
        return self._stream_info(stream_id)

    def stream_version(self, stream_id: str) -> int:
        """The stream's current version; 0 for a stream that does not exist yet."""
        self._require_open()
        valid.string("stream_id", stream_id)
        return self._stream_version(stream_id)

    def set_stream_metadata(self, stream_id: str, metadata: Mapping[str, Any]) -> None:
        """Replace the metadata of an existing stream (e.g. its aggregate type, an owner)."""
        self._require_open()
        valid.string("stream_id", stream_id)
        self._set_stream_metadata(stream_id, _encode_mapping(metadata, "metadata"))

    def stream_ids(self) -> list[str]:
        """Ids of all streams, in the order they were created."""
        self._require_open()
        return self._stream_ids()

    def head_position(self) -> int:
        """Position of the last event in the store (0 when empty)."""
        self._require_open()
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

    _closed = False

    def close(self) -> None:
        """Release the backend's resources; afterwards every call raises :class:`StoreClosedError`."""
        self._closed = True

    def _require_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"{self!r} is closed; open the store again to use it")

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- backend hooks
    @abstractmethod
    def _append(
        self, stream_id: str, events: list[EncodedEvent], expected_version: int, meta_json: str | None
    ) -> list[RecordedEvent]:
        """Atomically check the version and write ``events`` (validated) and a new stream's ``meta_json``."""

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
