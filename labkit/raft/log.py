"""The replicated log of Raft (extended paper, §5.3 and Figure 2).

Indexes are 1-based as in the paper: ``log[1]`` is the first entry and index
0 is the empty prefix, whose term is 0. The log only ever changes at its end:
:meth:`RaftLog.append` adds entries and :meth:`RaftLog.truncate` drops a
conflicting suffix (a follower does this when an AppendEntries disagrees with
it, §5.3).

Besides the entries the log keeps a running *prefix digest*: ``digest(i)``
summarises entries 1..i. Two logs with equal digests at ``i`` hold the same
prefix up to ``i`` (up to a hash collision), which lets the invariant monitor
check Log Matching incrementally instead of comparing whole logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import overload

from labkit.raft.messages import LogEntry

__all__ = ["RaftLog"]


class RaftLog:
    """A 1-based sequence of :class:`LogEntry` with O(1) append and term lookup."""

    __slots__ = ("_entries", "_digests", "low_water")

    def __init__(self, entries: tuple[LogEntry, ...] | list[LogEntry] = ()) -> None:
        self._entries: list[LogEntry] = []
        self._digests: list[int] = [0]  # _digests[i] summarises entries 1..i
        # Lowest index changed since the monitor last looked (see invariants.py).
        self.low_water = 1
        self.append(list(entries))

    # -- reading -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_index(self) -> int:
        """Index of the last entry (0 when empty)."""
        return len(self._entries)

    @property
    def last_term(self) -> int:
        """Term of the last entry (0 when empty)."""
        return self._entries[-1].term if self._entries else 0

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; 0 for index 0 (the empty prefix)."""
        if index == 0:
            return 0
        if not 1 <= index <= len(self._entries):
            raise IndexError(f"index must be between 0 and {len(self._entries)}, got {index}")
        return self._entries[index - 1].term

    @overload
    def __getitem__(self, index: int) -> LogEntry: ...
    @overload
    def __getitem__(self, index: slice) -> list[LogEntry]: ...
    def __getitem__(self, index: int | slice) -> LogEntry | list[LogEntry]:
        """``log[i]`` is the entry at 1-based index i; slices are 1-based and inclusive-exclusive."""
        if isinstance(index, slice):
            start = 1 if index.start is None else index.start
            stop = len(self._entries) + 1 if index.stop is None else index.stop
            if start < 1:
                raise IndexError(f"log slices start at index 1, got {start}")
            return self._entries[start - 1 : stop - 1]
        if not 1 <= index <= len(self._entries):
            raise IndexError(f"log index must be between 1 and {len(self._entries)}, got {index}")
        return self._entries[index - 1]

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(self._entries)

    def entries(self, start: int = 1, limit: int | None = None) -> tuple[LogEntry, ...]:
        """Entries from ``start`` on (at most ``limit`` of them), as a tuple for a message."""
        stop = None if limit is None else start - 1 + limit
        return tuple(self._entries[start - 1 : stop])

    def terms(self) -> list[int]:
        """The term of every entry, in order."""
        return [e.term for e in self._entries]

    def digest(self, index: int) -> int:
        """A digest of entries 1..index (equal digests: equal prefixes)."""
        return self._digests[index]

    def first_index_of_term(self, index: int) -> int:
        """The first index of the run of entries that share the term of ``index``."""
        term = self.term(index)
        i = index
        while i > 1 and self._entries[i - 2].term == term:
            i -= 1
        return i

    def last_index_of_term(self, term: int) -> int:
        """The last index holding an entry of ``term``, or 0 if there is none."""
        for i in range(len(self._entries), 0, -1):
            t = self._entries[i - 1].term
            if t == term:
                return i
            if t < term:  # terms never decrease along a log
                return 0
        return 0

    # -- changing ------------------------------------------------------------
    def append(self, entries: list[LogEntry] | tuple[LogEntry, ...]) -> None:
        """Add entries at the end."""
        digests = self._digests
        for e in entries:
            self._entries.append(e)
            digests.append(hash((digests[-1], e.term, e.command)))

    def truncate(self, last: int) -> None:
        """Drop every entry after index ``last`` (keep 1..last)."""
        if not 0 <= last <= len(self._entries):
            raise IndexError(
                f"truncate keeps entries 1..last; last must be 0..{len(self._entries)}, got {last}"
            )
        del self._entries[last:]
        del self._digests[last + 1 :]
        self.low_water = min(self.low_water, last + 1)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RaftLog):
            return self._entries == other._entries
        if isinstance(other, (list, tuple)):
            return self._entries == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        if len(self._entries) > 12:
            head = ", ".join(f"{i}:t{e.term}" for i, e in enumerate(self._entries[:4], 1))
            n = len(self._entries)
            tail = ", ".join(f"{i}:t{e.term}" for i, e in enumerate(self._entries[-4:], n - 3))
            return f"RaftLog([{head}, ..., {tail}], {n} entries)"
        return (
            "RaftLog(["
            + ", ".join(f"{i}:t{e.term} {e.command!r}" for i, e in enumerate(self._entries, 1))
            + "])"
        )
