"""The replicated log of Raft (extended paper, §5.3 and Figure 2).

Indexes are 1-based as in the paper: ``log[1]`` is the first entry and index
0 is the empty prefix, whose term is 0. The log only ever changes at its end:
a leader appends (:meth:`RaftLog.append`); a follower takes a leader's
AppendEntries with :meth:`RaftLog.matches` (step 2 of the receiver's rules in
Figure 2) and :meth:`RaftLog.maybe_append` (steps 3-4; the name is etcd's). The methods below it find
where a leader and a follower disagree (the fast backtracking sketched at the
end of §5.3).

Log compaction (§7, Figure 12): the entries up to some index may be replaced
by a snapshot of the state machine. The log then starts after the snapshot's
last included entry, whose index and term it keeps (``snapshot_index``,
``snapshot_term``) for the consistency check of the next entry. Indexes never
change: ``log[i]`` is the same entry before and after compaction, and asking
for an entry the snapshot replaced is an ``IndexError``. :meth:`RaftLog.compact`
drops a prefix (the server's own snapshot); :meth:`RaftLog.restore` takes a
leader's snapshot (Figure 13's receiver steps 6-7).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import overload

from labkit import validation as valid
from labkit.raft.messages import LogEntry

__all__ = ["RaftLog"]


class RaftLog:
    """A 1-based sequence of :class:`LogEntry` with O(1) append and term lookup, after an optional snapshot.

    Invariant: ``last_index == snapshot_index + len(self)``; the entries held
    are ``first_index .. last_index``.
    """

    __slots__ = ("_entries", "snapshot_index", "snapshot_term", "last_index")

    def __init__(
        self, entries: Iterable[LogEntry] = (), *, snapshot_index: int = 0, snapshot_term: int = 0
    ) -> None:
        self._entries: list[LogEntry] = []
        # The last index and term a snapshot replaced (Figure 13's lastIncludedIndex/Term); 0 without one.
        self.snapshot_index = valid.integer("snapshot_index", snapshot_index, ge=0)
        self.snapshot_term = valid.integer("snapshot_term", snapshot_term, ge=0)
        # Index of the last entry: the snapshot's when no entry follows it, 0 when empty.
        self.last_index = self.snapshot_index
        self.append(entries)

    # -- reading -----------------------------------------------------------
    def __len__(self) -> int:
        """How many entries the log holds (those after the snapshot)."""
        return len(self._entries)

    @property
    def first_index(self) -> int:
        """Index of the first entry held (1 without a snapshot)."""
        return self.snapshot_index + 1

    @property
    def last_term(self) -> int:
        """Term of the last entry (the snapshot's last term when no entry follows it; 0 when empty)."""
        return self._entries[-1].term if self._entries else self.snapshot_term

    def _compacted(self, index: int) -> IndexError:
        return IndexError(
            f"entry {index} was compacted into the snapshot (the log holds {self.first_index}..{self.last_index})"
        )

    def term(self, index: int) -> int:
        """Term of the entry at ``index``; 0 for index 0 (the empty prefix), ``snapshot_term`` at ``snapshot_index``."""
        base = self.snapshot_index
        if base < index <= self.last_index:
            return self._entries[index - base - 1].term
        if index == base:
            return self.snapshot_term
        if 0 <= index < base:
            raise self._compacted(index)
        raise IndexError(f"index must be between {base} and {self.last_index}, got {index}")

    @overload
    def __getitem__(self, index: int) -> LogEntry: ...
    @overload
    def __getitem__(self, index: slice) -> list[LogEntry]: ...
    def __getitem__(self, index: int | slice) -> LogEntry | list[LogEntry]:
        """``log[i]`` is the entry at 1-based index i; slices are 1-based and inclusive-exclusive."""
        base = self.snapshot_index
        if type(index) is int and base < index <= self.last_index:
            return self._entries[index - base - 1]
        if isinstance(index, slice):
            start = self.first_index if index.start is None else index.start
            stop = self.last_index + 1 if index.stop is None else index.stop
            if start < self.first_index:
                raise IndexError(f"log slices start at index {self.first_index} or later, got {start}")
            return self._entries[start - base - 1 : max(stop - base - 1, 0)]
        if 1 <= index <= base:
            raise self._compacted(index)
        raise IndexError(f"log index must be between {self.first_index} and {self.last_index}, got {index}")

    def __iter__(self) -> Iterator[LogEntry]:
        """The entries held, from ``first_index`` on."""
        return iter(self._entries)

    def entries(self, start: int = 1, limit: int | None = None) -> tuple[LogEntry, ...]:
        """Entries from ``start`` on (at most ``limit`` of them), as a tuple for a message."""
        if type(start) is not int or start < 1 or limit is not None and (type(limit) is not int or limit < 0):
            valid.integer("start", start, ge=1)  # the common case checked in one step, above
            valid.integer("limit", limit, ge=0, none=True)
        first = start - self.snapshot_index - 1
        if first < 0:
            raise self._compacted(start)
        stop = None if limit is None else first + limit
        return tuple(self._entries[first:stop])

    def terms(self) -> list[int]:
        """The term of every entry held, in order."""
        return [e.term for e in self._entries]

    def matches(self, index: int, term: int) -> bool:
        """Whether this log holds an entry at ``index`` whose term is ``term`` (index 0 always matches).

        An entry folded into the snapshot was committed, so it is in every
        later leader's log (Leader Completeness, §5.4): at an index below the
        snapshot's, the logs match whatever ``term`` says.
        """
        base = self.snapshot_index
        if base < index <= self.last_index:
            return self._entries[index - base - 1].term == term
        return index < base or (index == base and term == self.snapshot_term)

    # -- changing ------------------------------------------------------------
    def append(self, entries: Iterable[LogEntry]) -> None:
        """Add entries at the end. Terms never go down along a log (a leader appends in its own
        term, which is at least every term it holds), so an entry of a lower term is refused."""
        if entries.__class__ is not tuple and (
            isinstance(entries, (LogEntry, str, bytes)) or not isinstance(entries, Iterable)
        ):
            raise valid.ArgumentTypeError(
                f"entries must be a sequence of LogEntry, got {valid.shown(entries)}"
            )
        if entries.__class__ is not tuple:
            entries = list(entries)  # read twice below
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
        self.last_index = self.snapshot_index + len(self._entries)

    def truncate(self, last: int) -> None:
        """Drop every entry after index ``last`` (keep up to ``last``)."""
        if not self.snapshot_index <= last <= self.last_index:
            raise IndexError(
                f"truncate keeps entries up to last; last must be {self.snapshot_index}..{self.last_index}, "
                f"got {last}"
            )
        del self._entries[last - self.snapshot_index :]
        self.last_index = last

    def maybe_append(self, prev_log_index: int, entries: tuple[LogEntry, ...]) -> int:
        """Take a leader's ``entries`` that follow ``prev_log_index`` (Figure 2, AppendEntries steps 3-4).

        The caller has checked that the logs match at ``prev_log_index``
        (step 2). "If an existing entry conflicts with a new one (same index
        but different terms), delete the existing entry and all that follow
        it; append any new entries not already in the log." An entry already
        here with the same term is kept, so a late, shorter AppendEntries
        never cuts off newer entries; so is every entry the snapshot replaced
        (it is committed, the leader holds the same). Returns the first index
        written, or 0 when the log already held every entry.
        """
        if prev_log_index == self.last_index:  # the common case: new entries right after ours
            if not entries:
                return 0
            self._entries.extend(entries)
            self.last_index += len(entries)
            return prev_log_index + 1
        log, base = self._entries, self.snapshot_index
        for k, e in enumerate(entries):
            i = prev_log_index + 1 + k
            if i <= base:
                continue
            if i <= base + len(log):
                if log[i - base - 1].term == e.term:
                    continue
                del log[i - base - 1 :]
            log.extend(entries[k:])
            self.last_index = base + len(log)
            return i
        return 0

    # -- log compaction (§7) --------------------------------------------------
    def compact(self, index: int) -> None:
        """Drop the entries up to ``index``: a snapshot now replaces them (§7)."""
        if not self.snapshot_index <= index <= self.last_index:
            raise IndexError(
                f"compact needs an index in {self.snapshot_index}..{self.last_index}, got {index}"
            )
        term = self.term(index)
        del self._entries[: index - self.snapshot_index]
        self.snapshot_index, self.snapshot_term = index, term  # last_index stays

    def restore(self, index: int, term: int) -> bool:
        """Make a snapshot that ends at (``index``, ``term``) the start of the log (Figure 13, receiver steps 6-7).

        "If existing log entry has same index and term as snapshot's last
        included entry, retain log entries following it"; otherwise "discard
        the entire log". Returns True if entries were kept.
        """
        keep = self.snapshot_index < index <= self.last_index and self.term(index) == term
        if keep:
            del self._entries[: index - self.snapshot_index]
        else:
            self._entries.clear()
        self.snapshot_index, self.snapshot_term = index, term
        self.last_index = index + len(self._entries)
        return keep

    # -- where a leader and a follower disagree (end of §5.3) ----------------
    def conflict_hint(self, index: int) -> tuple[int, int | None]:
        """A follower's answer when its log does not match at ``index``: ``(conflict_index, conflict_term)``.

        Too short: the index after its last entry and no term. Otherwise the
        term it holds at ``index`` and the first index of that term, so the
        leader can skip the whole term in one round trip.
        """
        if index > self.last_index:
            return self.last_index + 1, None
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
        """The first index held of the run of entries that share the term of ``index``."""
        term, base, log = self.term(index), self.snapshot_index, self._entries
        i = index
        while i > base + 1 and log[i - base - 2].term == term:
            i -= 1
        return i

    def last_index_of_term(self, term: int) -> int:
        """The last index holding an entry of ``term`` (the snapshot's last one counts), or 0 if there is none."""
        base, log = self.snapshot_index, self._entries
        for i in range(len(log), 0, -1):
            t = log[i - 1].term
            if t == term:
                return base + i
            if t < term:  # terms never decrease along a log
                return 0
        return base if base and self.snapshot_term == term else 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RaftLog):
            return (
                self.snapshot_index == other.snapshot_index
                and self.snapshot_term == other.snapshot_term
                and self._entries == other._entries
            )
        if isinstance(other, (list, tuple)):
            return self._entries == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        first, n = self.first_index, len(self._entries)
        snap = f"snapshot to {self.snapshot_index}:t{self.snapshot_term}, " if self.snapshot_index else ""
        if n > 12:
            head = ", ".join(f"{i}:t{e.term}" for i, e in enumerate(self._entries[:4], first))
            tail = ", ".join(f"{i}:t{e.term}" for i, e in enumerate(self._entries[-4:], self.last_index - 3))
            return f"RaftLog({snap}[{head}, ..., {tail}], {n} entries)"
        return (
            f"RaftLog({snap}["
            + ", ".join(f"{i}:t{e.term} {e.command!r}" for i, e in enumerate(self._entries, first))
            + "])"
        )
