"""The replicated log of Raft (extended paper, §5.3 and Figure 2).

Indexes are 1-based as in the paper: ``log[1]`` is the first entry and index
0 is the empty prefix, whose term is 0. The log only ever changes at its end:
a leader appends (:meth:`RaftLog.append`); a follower takes a leader's
AppendEntries with :meth:`RaftLog.maybe_append`, which is steps 2-4 of the
receiver's rules in Figure 2 (the name is etcd's). The methods below it find
where a leader and a follower disagree (the fast backtracking sketched at the
end of §5.3).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import overload

from labkit import validation as valid
from labkit.raft.messages import LogEntry

__all__ = ["RaftLog"]


class RaftLog:
    """A 1-based sequence of :class:`LogEntry` with O(1) append and term lookup."""

    __slots__ = ("_entries", "last_index")

    def __init__(self, entries: Iterable[LogEntry] = ()) -> None:
        self._entries: list[LogEntry] = []
        # Index of the last entry (0 when empty). Invariant: last_index == len(self).
        self.last_index = 0
        self.append(entries)

    # -- reading -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last_term(self) -> int:
        """Term of the last entry (0 when empty)."""
        return self._entries[-1].term if self._entries else 0

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; 0 for index 0 (the empty prefix)."""
        if 0 < index <= len(self._entries):
            return self._entries[index - 1].term
        if index == 0:
            return 0
        raise IndexError(f"index must be between 0 and {len(self._entries)}, got {index}")

    @overload
    def __getitem__(self, index: int) -> LogEntry: ...
    @overload
    def __getitem__(self, index: slice) -> list[LogEntry]: ...
    def __getitem__(self, index: int | slice) -> LogEntry | list[LogEntry]:
        """``log[i]`` is the entry at 1-based index i; slices are 1-based and inclusive-exclusive."""
        if type(index) is int and 0 < index <= len(self._entries):
            return self._entries[index - 1]
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
        if type(start) is not int or start < 1 or limit is not None and (type(limit) is not int or limit < 0):
            valid.integer("start", start, ge=1)  # the common case checked in one step, above
            valid.integer("limit", limit, ge=0, none=True)
        stop = None if limit is None else start - 1 + limit
        return tuple(self._entries[start - 1 : stop])

    def terms(self) -> list[int]:
        """The term of every entry, in order."""
        return [e.term for e in self._entries]

    def matches(self, index: int, term: int) -> bool:
        """Whether this log holds an entry at ``index`` whose term is ``term`` (index 0 always matches)."""
        return index == 0 == term or 0 < index <= len(self._entries) and self._entries[index - 1].term == term

    # -- changing ------------------------------------------------------------
    def append(self, entries: Iterable[LogEntry]) -> None:
        """Add entries at the end. Terms never go down along a log (a leader appends in its own
        term, which is at least every term it holds), so an entry of a lower term is refused."""
        if isinstance(entries, (LogEntry, str, bytes)) or not isinstance(entries, Iterable):
            raise valid.ArgumentTypeError(
                f"entries must be a sequence of LogEntry, got {valid.shown(entries)}"
            )
        entries = list(entries)
        term = self.last_term
        for i, e in enumerate(entries):
            if e.__class__ is not LogEntry or e.term < term:  # the common case checked in one step
                valid.instance(f"entries[{i}]", e, LogEntry)
                valid.require(
                    e.term >= term,
                    f"entries[{i}].term",
                    f">= {term} (terms never go down along a log)",
                    e.term,
                )
            term = e.term
        self._entries.extend(entries)
        self.last_index = len(self._entries)

    def truncate(self, last: int) -> None:
        """Drop every entry after index ``last`` (keep 1..last)."""
        if not 0 <= last <= len(self._entries):
            raise IndexError(
                f"truncate keeps entries 1..last; last must be 0..{len(self._entries)}, got {last}"
            )
        del self._entries[last:]
        self.last_index = last

    def maybe_append(self, prev_log_index: int, entries: tuple[LogEntry, ...]) -> int:
        """Take a leader's ``entries`` that follow ``prev_log_index`` (Figure 2, AppendEntries steps 3-4).

        The caller has checked that the logs match at ``prev_log_index``
        (step 2). "If an existing entry conflicts with a new one (same index
        but different terms), delete the existing entry and all that follow
        it; append any new entries not already in the log." An entry already
        here with the same term is kept, so a late, shorter AppendEntries
        never cuts off newer entries. Returns the first index written, or 0
        when the log already held every entry.
        """
        log = self._entries
        for k, e in enumerate(entries):
            i = prev_log_index + 1 + k
            if i <= len(log):
                if log[i - 1].term == e.term:
                    continue
                del log[i - 1 :]
            log.extend(entries[k:])
            self.last_index = len(log)
            return i
        return 0

    # -- where a leader and a follower disagree (end of §5.3) ----------------
    def conflict_hint(self, index: int) -> tuple[int, int | None]:
        """A follower's answer when its log does not match at ``index``: ``(conflict_index, conflict_term)``.

        Too short: the index after its last entry and no term. Otherwise the
        term it holds at ``index`` and the first index of that term, so the
        leader can skip the whole term in one round trip.
        """
        if index > len(self._entries):
            return len(self._entries) + 1, None
        term = self.term(index)
        return self.first_index_of_term(index), term

    def retry_index(self, conflict_index: int, conflict_term: int | None) -> int:
        """Where a leader tries next after a follower's :meth:`conflict_hint`.

        Just after the leader's own last entry of ``conflict_term`` if it has
        one (the logs may agree up to there), else ``conflict_index``.
        """
        if conflict_term is not None:
            last = self.last_index_of_term(conflict_term)
            if last:
                return last + 1
        return conflict_index

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
