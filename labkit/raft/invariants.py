"""Raft's safety properties as checkable functions (extended paper, Figure 3, §5.4).

Figure 3 lists what Raft guarantees at all times:

* **Election Safety**: at most one leader can be elected in a given term.
* **Log Matching**: if two logs contain an entry with the same index and
  term, the logs are identical in all entries up through that index.
* **Leader Completeness**: if an entry is committed in a given term, it is
  present in the logs of the leaders of all higher terms.
* **State Machine Safety**: if a server has applied a log entry at a given
  index, no other server ever applies a different entry at that index.

The plain functions check one snapshot and return a list of violations in
words (empty when all is well), so tests and notebooks can call them.
:class:`InvariantMonitor` checks all four *continuously*: it runs after every
simulator event, looks only at the server that event touched, and does work
proportional to what changed (new log entries, new commits, new applies).
:mod:`labkit.raft.figure3` states the same checks plainly
(:class:`~labkit.raft.figure3.Figure3Monitor`, read it first); this one is
written for speed, and the tests hold the two to the same verdicts, in the
same words, after the same events. It
keeps its own bookkeeping: a running digest of every log prefix it has seen,
so Log Matching is checked one new entry at a time. It also remembers across
time, which is stronger than a snapshot check: an entry ever applied at index
i by anyone must match every later apply at i.

Besides Figure 3 the monitor checks two of each server's own invariants
(Figure 2, "Volatile state on all servers") as the run goes:
``last_applied <= commit_index``, and ``commit_index`` never decreases while
a server stays up (it is volatile, so a restart begins again at 0, or at its
snapshot's last index).

Log compaction (§7): a log may start after a snapshot. The entries it replaced
were checked while they were still in the log (a server compacts in a step of
its own, after the one that applied them); the monitor then checks that a
snapshot ends at an entry that was committed (so it holds committed entries
only), and it continues each log's digests from that entry's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit import validation as valid
from labkit.raft.log import RaftLog
from labkit.raft.messages import LogEntry
from labkit.raft.node import Role

if TYPE_CHECKING:
    from labkit.raft.node import RaftNode

__all__ = [
    "InvariantViolation",
    "InvariantMonitor",
    "election_safety",
    "log_matching",
    "leader_completeness",
    "state_machine_safety",
    "server_invariants",
    "prefix_digest",
]


_LEADER = Role.LEADER


class InvariantViolation(AssertionError):
    """A Raft safety property (Figure 3) does not hold."""


def election_safety(leaders: Iterable[tuple[str, int]]) -> list[str]:
    """At most one leader per term, given ``(node, term)`` pairs of every leadership seen."""
    valid.collection("leaders", leaders, "(node, term) pairs")
    by_term: dict[int, set[str]] = {}
    for node, term in leaders:
        by_term.setdefault(term, set()).add(node)
    return [
        f"Election Safety: term {t} had {len(ns)} leaders: {sorted(ns)}"
        for t, ns in sorted(by_term.items())
        if len(ns) > 1
    ]


def _entries(log: RaftLog | Sequence[LogEntry], name: str = "log") -> tuple[int, list[LogEntry]]:
    """``(index of the first entry, entries)``: a compacted :class:`RaftLog` starts after its snapshot."""
    valid.instance(name, log, (RaftLog, list, tuple))
    start = log.first_index if isinstance(log, RaftLog) else 1
    for i, e in enumerate(log, start):
        valid.instance(f"{name}[{i}]", e, LogEntry)
    return start, list(log)


def log_matching(logs: Mapping[str, RaftLog | Sequence[LogEntry]]) -> list[str]:
    """Log Matching over a snapshot of logs (node id -> log, 1-based order).

    A compacted log is compared from its first entry on: two logs agree on
    the entries both hold before an index and term they share.
    """
    valid.instance("logs", logs, Mapping)
    out = []
    held = {node: _entries(log) for node, log in logs.items()}
    # For each (index, term) remember one node's log; compare the others to it.
    seen: dict[tuple[int, int], str] = {}
    for node, (start, entries) in held.items():
        for i, e in enumerate(entries, start):
            key = (i, e.term)
            if key not in seen:
                seen[key] = node
                continue
            other = seen[key]
            o_start, o_entries = held[other]
            lo = max(start, o_start)
            if entries[lo - start : i - start + 1] != o_entries[lo - o_start : i - o_start + 1]:
                out.append(
                    f"Log Matching: {node} and {other} both hold index {i} of term {e.term} "
                    "but their logs differ before it"
                )
                break
    return out


def leader_completeness(
    committed: Mapping[int, int], leader: str, log: RaftLog | Sequence[LogEntry]
) -> list[str]:
    """Every committed entry (index -> term) is in a new leader's log (or its snapshot covers it)."""
    valid.instance("committed", committed, Mapping)
    valid.string("leader", leader)
    start, entries = _entries(log)
    base = start - 1
    base_term = log.snapshot_term if isinstance(log, RaftLog) else 0
    out = []
    for i, t in sorted(committed.items()):
        if i < base:
            continue  # replaced by the snapshot, which ends at a committed entry (checked at base)
        if i == base:
            have: int | None = base_term
        else:
            have = entries[i - start].term if i - start < len(entries) else None
        if have != t:
            out.append(
                f"Leader Completeness: leader {leader} lacks committed entry {i} (term {t}); "
                f"it has {'nothing' if have is None else f'term {have}'} there"
            )
    return out


def state_machine_safety(applied: Mapping[str, Sequence[LogEntry] | Mapping[int, LogEntry]]) -> list[str]:
    """No two servers apply different entries at one index.

    ``applied`` maps each node to the entries it applied: a list in index
    order from index 1, or a mapping index -> entry (for a compacted log).
    """
    valid.instance("applied", applied, Mapping)
    first: dict[int, tuple[str, LogEntry]] = {}
    out = []
    for node, entries in applied.items():
        pairs = entries.items() if isinstance(entries, Mapping) else enumerate(entries, 1)
        for i, e in pairs:
            if i not in first:
                first[i] = (node, e)
            elif first[i][1] != e:
                out.append(
                    f"State Machine Safety: at index {i} {first[i][0]} applied {first[i][1]!r} "
                    f"but {node} applied {e!r}"
                )
    return out


def server_invariants(node: RaftNode) -> list[str]:
    """One server's own invariants (Figure 2's state); a description of each one broken."""
    out = []
    nid, log = node.node_id, node.log
    if not node.last_applied <= node.commit_index:
        out.append(f"{nid}: last_applied {node.last_applied} > commit_index {node.commit_index}")
    if node.role is Role.LEADER:
        if node.voted_for != nid:
            out.append(f"{nid}: leads term {node.current_term} without having voted for itself")
        for p, pr in node.progress.items():
            if not pr.match_index < pr.next_index <= log.last_index + 1:
                out.append(f"{nid}: next_index[{p}]={pr.next_index} vs match_index {pr.match_index}")
    terms = [e.term for e in log]
    if any(a > b for a, b in zip(terms, terms[1:], strict=False)):
        out.append(f"{nid}: log terms decrease somewhere: {terms}")
    if terms and terms[-1] > node.current_term:
        out.append(f"{nid}: log holds term {terms[-1]} > current_term {node.current_term}")
    return out


def prefix_digest(previous: int, entry: LogEntry) -> int:
    """The digest of a log prefix, from the digest of the prefix before ``entry``.

    Two logs with equal digests at index i hold the same entries 1..i (up to
    a hash collision), which lets the monitor check Log Matching incrementally.
    """
    return hash((previous, entry.term, entry.command))


class _Known:
    """The first entry the monitor saw at one (index, term), in any log."""

    __slots__ = ("digest", "entry", "before")

    def __init__(self, digest: int, entry: LogEntry, before: int) -> None:
        self.digest = digest  # prefix_digest of the log that held it, up to it
        self.entry = entry
        self.before = before  # that log's digest up to the entry before it


class _Seen:
    """What the monitor last saw of one incarnation of one server."""

    __slots__ = (
        "node",
        "base",
        "entries",
        "digests",
        "canonical",
        "commit_index",
        "committed",
        "applied",
        "led",
        "ahead",
    )

    def __init__(self, node: Any) -> None:
        self.node = node
        self.base = 0  # the log's snapshot index, as last seen
        self.entries: list[LogEntry] = []  # its log after base, as last seen
        self.digests: list[int] = [0]  # digests[k]: prefix_digest of entries 1..base+k
        self.canonical = 0  # entries[:canonical] are canonical (see InvariantMonitor)
        self.commit_index = 0
        self.committed = 0  # commits recorded up to here
        self.applied = 0  # applies checked up to here
        self.led = -1  # the term it was last seen leading
        self.ahead = False  # already reported for last_applied > commit_index


class InvariantMonitor:
    """Checks Figure 3's properties after every event of a Raft simulation.

    Install :meth:`observe` as the simulator's observer; it looks only at the
    server the event touched and does work proportional to what changed.
    ``violations`` collects what broke, in words; with ``strict=True`` the
    first violation also raises :class:`InvariantViolation` out of the run.

    Most of what it sees, it has seen before: a follower takes the very entry
    objects its leader appended (the simulator passes messages by reference),
    then commits and applies them after the leader did. So the first entry
    seen at each index is called *canonical*, and the monitor keeps, for each
    server, how many of its entries from the first on are the canonical ones
    (``_Seen.canonical``), and how far every index holds its canonical entry in
    ``committed`` (with its term) and in ``applied`` (``_committed_to``,
    ``_applied_to``). A server committing or applying canonical entries below
    those marks agrees with the record by identity, with nothing to look up;
    everything else is checked one index at a time.

    The events that make up most of a run are settled in :meth:`observe`
    itself: a follower appending canonical entries, a leader appending at an
    index no log held before (its entries become the canonical ones), a
    follower committing and applying below the marks; and, in
    :meth:`_frontier`, the leader committing and applying past them.
    """

    def __init__(self, nodes: Callable[[str], Any], servers: Iterable[str], strict: bool = True) -> None:
        self._get_node = valid.function("nodes", nodes, "a function node id -> the live node (None if down)")
        self.servers = frozenset(servers)
        self.strict = valid.boolean("strict", strict)
        self.violations: list[str] = []
        self.leaders: dict[int, str] = {}  # term -> leader
        self.committed: dict[int, int] = {}  # index -> term, everything ever committed
        self.applied: dict[int, LogEntry] = {}  # index -> entry, everything ever applied
        # The first entry seen at each index (by index: the canonical ones), and the first
        # seen at an index with any other term (by (index, term)).
        self._first: list[_Known | None] = [None]
        self._other_terms: dict[tuple[int, int], _Known] = {}
        # Every index up to these holds its canonical entry in `committed` (its term) and in `applied`.
        self._committed_to = 0
        self._applied_to = 0
        self._seen: dict[str, _Seen] = {}
        self.events_checked = 0

    def _fail(self, what: str) -> None:
        self.violations.append(what)
        if self.strict:
            raise InvariantViolation(what)

    def observe(self, node_id: str, node: Any = None) -> None:
        """Check one server's current state against everything seen so far."""
        seen = self._seen.get(node_id)
        if seen is None or seen.node is not node:
            if node_id not in self.servers:
                return  # a client
            seen = self._incarnation(node_id, node)
            if seen is None:
                return
            node = seen.node
        self.events_checked += 1
        # This runs after every event, so the common cases are settled here, in line, and
        # everything else in the methods below. The log's own list of entries is read in
        # place: a RaftLog method call would cost more than the check.
        log = node.log
        held, entries = log._entries, seen.entries
        n, k = len(held), len(entries)
        if n != k or n and held[-1] is not entries[-1] or log.snapshot_index != seen.base:
            if (
                n > k == seen.canonical
                and log.snapshot_index == seen.base
                and (not k or held[k - 1] is entries[k - 1])
            ):
                # Entries appended to a log of canonical entries: a follower taking its leader's
                # (canonical after the same prefix: the digest they had then), or a leader
                # appending at an index no log held before (the first seen there: canonical).
                first, digests = self._first, seen.digests
                i = seen.base + n
                if n == k + 1 and i < len(first):  # one entry, the usual step, without the loop
                    e, known = held[k], first[i]
                    if known is not None and known.entry is e and known.before == digests[-1]:
                        digests.append(known.digest)
                        entries.append(e)
                        seen.canonical = n
                    else:
                        self._log_matching(node_id, log, seen)
                else:
                    d, i, top = digests[-1], seen.base + k, len(first)
                    for e in held[k:]:
                        i += 1
                        if i < top:
                            known = first[i]
                            if known is None or known.entry is not e or known.before != d:
                                break
                            d = known.digest
                        elif i == top:
                            before, d = d, hash((d, e.term, e.command))  # prefix_digest(d, e)
                            first.append(_Known(d, e, before))
                            top += 1
                        else:
                            break
                        digests.append(d)
                        entries.append(e)
                    seen.canonical = len(entries)
                    if len(entries) != n:
                        self._log_matching(node_id, log, seen)  # the rest, one index at a time
            else:
                self._log_matching(node_id, log, seen)
        commit, applied = node.commit_index, node.last_applied
        if commit != seen.commit_index or applied > seen.applied:
            if (
                seen.commit_index <= commit <= self._committed_to
                and applied <= self._applied_to
                and applied <= commit <= seen.base + seen.canonical
            ):
                # Both moved forward over canonical entries recorded already (committed and
                # applied as this server holds them): settled by identity.
                seen.commit_index = seen.committed = commit
                if applied > seen.applied:
                    seen.applied = applied
            elif not self._frontier(seen, commit, applied):
                self._commits_and_applies(node_id, node, seen)
        if node.role is _LEADER and seen.led != node.current_term:
            self._new_leader(node_id, node, seen)

    def _incarnation(self, node_id: str, node: Any) -> _Seen | None:
        """What was seen of ``node_id``'s live node (``node``, or looked up if None); None for a node
        that is no server or is down. A new incarnation re-applies from index 1; its log is re-checked whole."""
        if node_id not in self.servers:
            return None
        if node is None:
            node = self._get_node(node_id)
            if node is None:
                return None
        seen = self._seen.get(node_id)
        if seen is None or seen.node is not node:
            seen = self._seen[node_id] = _Seen(node)
        return seen

    def _log_matching(self, node_id: str, log: RaftLog, seen: _Seen) -> None:
        """Log Matching: same (index, term) means same prefix, at any time."""
        base = log.snapshot_index
        if base != seen.base:
            self._snapshot_seen(node_id, log, seen, base)
        entries, digests, now = seen.entries, seen.digests, log._entries
        # A log changes only at its end: walk back to the last entry still in place.
        k = len(entries)
        if len(now) < k:
            k = len(now)
        while k and now[k - 1] is not entries[k - 1]:
            k -= 1
        if k < len(entries):
            del entries[k:]
            del digests[k + 1 :]
            if seen.canonical > k:
                seen.canonical = k
        new = now[k:]
        entries.extend(new)
        # The first entry seen at an index, after the same prefix, has the digest it had then,
        # without hashing it again; anything else is looked at in _next_digest.
        first = self._first
        d = digests[-1]
        canonical = seen.canonical
        broken = None
        i = base + k
        for e in new:
            i += 1
            known = first[i] if i < len(first) else None
            if known is not None and known.entry is e and known.before == d:
                d = known.digest
                if canonical == k:
                    canonical += 1
            else:
                d, same = self._next_digest(i, e, d)
                if not same and broken is None:
                    broken = (i, e.term)
            digests.append(d)
            k += 1
        seen.canonical = canonical
        if broken is not None:
            self._fail(
                f"Log Matching: {node_id} holds index {broken[0]} of term {broken[1]} with a prefix "
                "different from another log's entry at that index and term"
            )

    def _known(self, index: int, term: int) -> _Known | None:
        """The first entry seen at ``index`` with ``term``, if any."""
        first = self._first
        known = first[index] if index < len(first) else None
        if known is None or known.entry.term == term:
            return known
        return self._other_terms.get((index, term))

    def _next_digest(self, index: int, entry: LogEntry, before: int) -> tuple[int, bool]:
        """The digest of a log's prefix up to ``entry`` at ``index`` (``before``: up to the entry
        before it), and whether it is that of the first log seen holding ``index`` with its term."""
        known = self._known(index, entry.term)
        if known is not None and known.entry is entry and known.before == before:
            return known.digest, True
        digest = prefix_digest(before, entry)
        if known is not None:
            return digest, known.digest == digest
        first = self._first
        if index >= len(first):
            first.extend([None] * (index + 1 - len(first)))
        if first[index] is None:
            first[index] = _Known(digest, entry, before)
        else:
            self._other_terms[(index, entry.term)] = _Known(digest, entry, before)
        return digest, True

    def _snapshot_seen(self, node_id: str, log: RaftLog, seen: _Seen, base: int) -> None:
        """The log now starts after a snapshot ending at ``base`` (its own compaction, an installed
        snapshot, or a restart): it must end at a committed entry; digests continue from that entry's."""
        term = log.snapshot_term
        entries, digests = seen.entries, seen.digests
        if self.committed.get(base) != term:
            was = self.committed.get(base)
            self._fail(
                f"Snapshot: {node_id}'s snapshot ends at index {base} (term {term}), which was "
                + ("never committed" if was is None else f"committed with term {was}")
            )
        k = base - seen.base  # how many of the entries seen the snapshot replaced
        if 0 < k <= len(entries) and entries[k - 1].term == term:
            del entries[:k]
            del digests[:k]
            seen.canonical = max(seen.canonical - k, 0)
        else:
            entries.clear()
            seen.canonical = 0
            known = self._known(base, term)
            if known is None:
                self._fail(
                    f"Snapshot: {node_id}'s snapshot ends at index {base} (term {term}), an entry no log held"
                )
            digests[:] = [hash(("snapshot", base, term)) if known is None else known.digest]
        seen.base = base

    def _frontier(self, seen: _Seen, commit: int, applied: int) -> bool:
        """The common case at the server ahead of the record (the leader): it commits and applies
        canonical entries at indexes nobody committed or applied before; they are recorded as they
        are. False for anything else, which _commits_and_applies then settles (what this recorded
        is what it would record first, and recording the same twice changes nothing)."""
        base = seen.base
        if not seen.commit_index <= commit <= base + seen.canonical or applied > commit:
            return False
        committed, record, first = self.committed, self.applied, self._first
        for i in range(max(seen.committed, self._committed_to, base) + 1, commit + 1):
            term = first[i].entry.term  # type: ignore[union-attr]
            if committed.setdefault(i, term) != term:
                return False
        for i in range(max(seen.applied, self._applied_to, base) + 1, applied + 1):
            entry = first[i].entry  # type: ignore[union-attr]
            if record.setdefault(i, entry) is not entry:
                return False
        seen.commit_index = commit
        if commit > seen.committed:
            seen.committed = commit
        if applied > seen.applied:
            seen.applied = applied
        self._advance_committed_to()
        self._advance_applied_to()
        return True

    def _commits_and_applies(self, node_id: str, node: RaftNode, seen: _Seen) -> None:
        # The server's own invariants (Figure 2): commit_index only grows within
        # one incarnation, and nothing is applied before it is committed.
        commit, last_applied = node.commit_index, node.last_applied
        if commit < seen.commit_index:
            self._fail(
                f"Commit index: {node_id}'s commit_index went back from {seen.commit_index} to {commit}"
            )
        seen.commit_index = commit
        if last_applied > commit and not seen.ahead:
            seen.ahead = True
            self._fail(f"Apply: {node_id} has last_applied {last_applied} > commit_index {commit}")
        base = seen.base
        held = base + len(seen.entries)
        # Commits, recorded for Leader Completeness: one term per index, ever. (Those a
        # snapshot replaced were recorded while they were in the log.) Canonical entries
        # below the mark are recorded just so already.
        top = commit if commit < held else held
        if top > seen.committed:
            start = (seen.committed if seen.committed > base else base) + 1
            if top >= start and (top > self._committed_to or top > base + seen.canonical):
                self._record_commits(node_id, seen, start, top)
            seen.committed = top
        # State Machine Safety: one entry per index applied, ever. (Nothing to record where a
        # snapshot covers what it applied.)
        top = last_applied if last_applied < held else held
        start = (seen.applied if seen.applied > base else base) + 1
        if top >= start and (top > self._applied_to or top > base + seen.canonical):
            self._record_applies(node_id, seen, start, top)
        if last_applied > seen.applied:
            seen.applied = last_applied

    def _record_commits(self, node_id: str, seen: _Seen, first: int, last: int) -> None:
        committed, base = self.committed, seen.base
        for i, e in enumerate(seen.entries[first - base - 1 : last - base], first):
            t = e.term
            old = committed.setdefault(i, t)
            if old != t:
                self._fail(
                    f"Commit: {node_id} committed index {i} with term {t}, already committed with term {old}"
                )
        self._extend_canonical(seen, last)
        self._advance_committed_to()

    def _advance_committed_to(self) -> None:
        """Move the mark over the canonical entries now recorded. Where the canonical entry is
        not the one committed (its leader lost it), the committed one becomes canonical."""
        committed = self.committed
        i, known = self._committed_to + 1, self._first
        while i < len(known) and known[i] is not None and i in committed:
            if known[i].entry.term != committed[i] and not self._make_canonical(i, committed[i]):
                break
            i += 1
        self._committed_to = i - 1

    def _extend_canonical(self, seen: _Seen, last: int) -> None:
        """Count again how many of a server's entries, up to index ``last``, are the canonical ones
        (after the canonical entry at some index changed, see _make_canonical)."""
        entries, first, base = seen.entries, self._first, seen.base
        k = seen.canonical
        while k < last - base and base + k + 1 < len(first):
            known = first[base + k + 1]
            if known is None or known.entry is not entries[k]:
                break
            k += 1
        seen.canonical = k

    def _make_canonical(self, index: int, term: int) -> bool:
        """Make the first entry seen at ``index`` with ``term`` the canonical one there (False if none
        was seen). No server holds the canonical entries past ``index`` any more, as far as it is known."""
        known = self._other_terms.pop((index, term), None)
        if known is None:
            return False
        first = self._first
        self._other_terms[(index, first[index].entry.term)] = first[index]  # type: ignore[union-attr]
        first[index] = known
        for seen in self._seen.values():
            if seen.canonical > index - seen.base - 1 >= 0:
                seen.canonical = index - seen.base - 1
        if self._applied_to >= index:
            self._applied_to = index - 1
        return True

    def _record_applies(self, node_id: str, seen: _Seen, first: int, last: int) -> None:
        applied, base = self.applied, seen.base
        for i, e in enumerate(seen.entries[first - base - 1 : last - base], first):
            old = applied.setdefault(i, e)
            if old is not e and old != e:
                self._fail(
                    f"State Machine Safety: {node_id} applied {e!r} at index {i}, another server applied {old!r}"
                )
        self._advance_applied_to()

    def _advance_applied_to(self) -> None:
        applied = self.applied
        i, known = self._applied_to + 1, self._first
        while i < len(known) and known[i] is not None and applied.get(i) is known[i].entry:
            i += 1
        self._applied_to = i - 1

    def _new_leader(self, node_id: str, node: RaftNode, seen: _Seen) -> None:
        # Election Safety and Leader Completeness, once per leadership.
        term = seen.led = node.current_term
        other = self.leaders.setdefault(term, node_id)
        if other != node_id:
            self._fail(f"Election Safety: {other} and {node_id} both lead term {term}")
        entries, base = seen.entries, seen.base
        for i, t in self.committed.items():
            if i <= base:
                continue  # the snapshot ends at a committed entry (checked when it appeared)
            if i > base + len(entries) or entries[i - base - 1].term != t:
                self._fail(
                    f"Leader Completeness: {node_id} leads term {term} but lacks committed entry {i} (term {t})"
                )
                break

    def check_all(self, nodes: Mapping[str, RaftNode]) -> list[str]:
        """A full snapshot check of the live servers (slower; for the end of a run)."""
        out: list[str] = []
        for n in nodes.values():
            out.extend(server_invariants(n))
        out.extend(log_matching({k: n.log for k, n in nodes.items()}))
        out.extend(election_safety((v, t) for t, v in self.leaders.items()))
        applied = {
            k: {i: n.log[i] for i in range(n.log.first_index, min(n.last_applied, n.log.last_index) + 1)}
            for k, n in nodes.items()
        }
        out.extend(state_machine_safety(applied))
        return out
