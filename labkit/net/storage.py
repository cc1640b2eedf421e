"""Durable storage for one node: an append-only file of writes in the node's own folder.

A node's storage is a map of keys to values (the simulator's ``ctx.storage``).
On disk it is a write-ahead file ``wal.jsonl``: one JSON line
``[key, value]`` per ``ctx.persist``, encoded with the node's wire registry
(so log entries and commands round-trip exactly). :meth:`DiskStorage.write`
appends a batch and :meth:`DiskStorage.sync` calls ``fsync``; the driver
syncs once per batch of handler calls before it sends what depends on them
(group commit: many writes, one sync).

Recovery (:meth:`DiskStorage.open`) replays the file in order; a torn last
line (the process died mid-write) is the only damage a crash can do to an
append-only file, and it is dropped: it was never synced, so nobody was told
about it. Keys are JSON values too: ``("log", 7)`` is stored as
``["log", 7]`` and read back as the tuple.

A ``ctx.forget(key)`` (the persist of :data:`~labkit.sim.FORGOTTEN`) is a
one-element line ``[key]``: replay deletes the key.

The file is rewritten compactly (latest value per key, forgotten keys left
out, then ``fsync`` and an atomic rename) when the node starts, so it does not
grow without bound across restarts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

from labkit.net.codec import Registry, WireError, _tuples
from labkit.sim import FORGOTTEN

__all__ = ["DiskStorage", "WAL_NAME"]

WAL_NAME = "wal.jsonl"


class DiskStorage(Mapping):
    """A node's durable key-value storage in ``folder`` (read-only Mapping view for ``ctx.storage``)."""

    def __init__(self, folder: str | os.PathLike, registry: Registry, *, memory: bool = False) -> None:
        self.folder = Path(folder)
        self.memory = memory  # keep nothing on disk (a broken server, for tests)
        self.registry = registry
        self._data: dict[Hashable, Any] = {}
        self._fd: int | None = None
        self._dirty = False
        self.syncs = 0  # how many fsyncs (for tests and benchmarks)
        self.dropped_tail = False  # whether recovery dropped a torn last line

    # -- opening ---------------------------------------------------------------
    def open(self) -> DiskStorage:
        """Replay the write-ahead file, compact it, and open it for appending."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.memory:
            return self
        path = self.folder / WAL_NAME
        if path.exists():
            raw = path.read_bytes()
            lines = raw.split(b"\n")
            # The last element is b"" for a file ending in a newline; anything
            # else after the last newline is a torn write.
            if lines and lines[-1]:
                self.dropped_tail = True
            for line in lines[:-1]:
                key, value = self._decode_line(line)
                if value is FORGOTTEN:
                    self._data.pop(key, None)
                else:
                    self._data[key] = value
        tmp = self.folder / (WAL_NAME + ".tmp")
        with open(tmp, "wb") as f:
            for key, value in self._data.items():
                f.write(self._encode_line(key, value))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.folder)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return self

    def close(self) -> None:
        """Close the file (without syncing: a crash does not sync either)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # -- writing ---------------------------------------------------------------
    def write(self, persists: list[tuple[Hashable, Any]]) -> None:
        """Append a batch of ``(key, value)`` writes (not yet synced: call :meth:`sync`)."""
        if not persists:
            return
        data = self._data
        if self.memory:
            for key, value in persists:
                if value is FORGOTTEN:
                    data.pop(key, None)
                else:
                    data[key] = value
            return
        if self._fd is None:
            raise RuntimeError("storage is not open")
        chunks = []
        for key, value in persists:
            if value is FORGOTTEN:
                data.pop(key, None)
            else:
                data[key] = value
            chunks.append(self._encode_line(key, value))
        os.write(self._fd, b"".join(chunks))
        self._dirty = True

    def sync(self) -> bool:
        """``fsync`` what was written since the last sync; False if there was nothing."""
        if not self._dirty or self._fd is None:
            return False
        os.fsync(self._fd)
        self._dirty = False
        self.syncs += 1
        return True

    # -- encoding ----------------------------------------------------------------
    def _encode_line(self, key: Hashable, value: Any) -> bytes:
        record = [key] if value is FORGOTTEN else [key, value]
        return (
            json.dumps(record, default=self.registry._default, separators=(",", ":"), ensure_ascii=False)
            + "\n"
        ).encode()

    def _decode_line(self, line: bytes) -> tuple[Hashable, Any]:
        try:
            pair = _tuples(json.loads(line, object_hook=self.registry._hook))
        except (WireError, ValueError) as e:
            raise ValueError(f"{self.folder / WAL_NAME}: unreadable record {line[:80]!r}: {e}") from None
        if isinstance(pair, tuple) and len(pair) == 1:
            return pair[0], FORGOTTEN
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ValueError(
                f"{self.folder / WAL_NAME}: a record must be [key, value] or [key], got {line[:80]!r}"
            )
        return pair[0], pair[1]

    # -- Mapping -----------------------------------------------------------------
    def __getitem__(self, key: Hashable) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Hashable, default: Any = None) -> Any:
        return self._data.get(key, default)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
