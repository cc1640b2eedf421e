"""Errors raised by the event store and the layers built on it.

Every error says what was wrong and, where it helps, what is allowed. The
one a caller is expected to *handle* is :class:`ConcurrencyError`: it means
"someone else wrote to this stream since you read it"; the usual reaction is
to reload the aggregate, re-decide and try again (DDIA ch. 7, "Preventing
lost updates": compare-and-set).
"""

from __future__ import annotations


class EventStoreError(Exception):
    """Base class of every event-store error."""


class ConcurrencyError(EventStoreError):
    """An append found the stream at another version than the writer expected.

    ``expected`` is the version the writer based its decision on, ``actual``
    the version the stream really had inside the failed transaction. Nothing
    of the batch was written.
    """

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, but the append expected version {expected}; "
            "nothing was written (reload the stream and decide again)"
        )

    def __reduce__(self):  # keep the fields when the error crosses a process boundary
        return (type(self), (self.stream_id, self.expected, self.actual))


class StreamNotFoundError(EventStoreError, LookupError):
    """A read asked for a stream that has no events."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id!r} does not exist (no event was ever appended to it)")

    def __reduce__(self):
        return (type(self), (self.stream_id,))


class SerializationError(EventStoreError, TypeError, ValueError):
    """An event's data or metadata cannot be stored so that it comes back exactly.

    The message names the path to the bad value (``events[0] (type 'T') data['a']``) and why.
    """


class CorruptEventError(EventStoreError, ValueError):
    """A stored event's text is not the one JSON object the store wrote (changed outside the store)."""


class StoreClosedError(EventStoreError, RuntimeError):
    """The store was used after :meth:`~labkit.eventstore.EventStore.close`."""


class StoreOpenError(EventStoreError, OSError):
    """The store's file cannot be opened (a missing folder, no permission, not a database)."""


class UpcastError(EventStoreError, ValueError):
    """A stored event cannot be brought to the schema version the code expects."""
