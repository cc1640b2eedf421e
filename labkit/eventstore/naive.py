"""A first attempt at an ``EventStore``, kept as written, to study its race.

The sketch reads the stream's version, compares it with the expected one,
and then writes, in three separate steps. Two writers that both read
version 3 both pass the check and both write "version 4": the second write
replaces the first (here, as in any key-value store keyed by stream and
version) or sits beside it as a duplicate (in a table without a uniqueness
constraint). Either way a caller was told "appended" and its event is gone
or ambiguous. DDIA ch. 7 calls this a lost update.

:meth:`NaiveEventStore.append_events` is that first attempt unchanged; the
storage methods it calls are filled in with a dictionary, and
``after_read_version`` lets a demonstration run another writer exactly
between the read and the write, deterministically, instead of hoping a
thread switch lands there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class NaiveConcurrencyError(Exception):
    """The first attempt's error: a message, no versions."""


ConcurrencyError = NaiveConcurrencyError  # the name the first attempt's code uses


class NaiveEventStore:
    """The first attempt plus a dict-backed ``get_stream_version``/``store_event``/``query_events``."""

    def __init__(self, after_read_version: Callable[[str], None] | None = None) -> None:
        self._streams: dict[str, dict[int, Any]] = {}
        self.after_read_version = after_read_version

    # ---- the first attempt, as written ----------------------------------
    def append_events(self, stream_id, events, expected_version):
        # Append events atomically with optimistic concurrency control
        current_version = self.get_stream_version(stream_id)

        if current_version != expected_version:
            raise ConcurrencyError("Stream version mismatch")

        for event in events:
            self.store_event(stream_id, current_version + 1, event)
            current_version += 1

    def get_events(self, stream_id, from_version=0):
        # Retrieve events for rebuilding aggregate state
        return self.query_events(stream_id, from_version)

    # ---- what the sketch leaves out --------------------------------------
    def get_stream_version(self, stream_id: str) -> int:
        version = max(self._streams.get(stream_id, {0: None}))
        if self.after_read_version is not None:
            hook, self.after_read_version = self.after_read_version, None  # run once
            hook(stream_id)  # another writer runs here, between the read and the write
        return version

    def store_event(self, stream_id: str, version: int, event: Any) -> None:
        self._streams.setdefault(stream_id, {})[version] = event  # put: overwrites silently

    def query_events(self, stream_id: str, from_version: int) -> list[tuple[int, Any]]:
        stream = self._streams.get(stream_id, {})
        return [(v, stream[v]) for v in sorted(stream) if v > from_version]
