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
It also remembers across time, which is stronger than a snapshot check: an
entry ever applied at index i by anyone must match every later apply at i.

Besides Figure 3 the monitor checks two of each server's own invariants
(Figure 2, "Volatile state on all servers") as the run goes:
``last_applied <= commit_index``, and ``commit_index`` never decreases while
a server stays up (it is volatile, so a restart begins again at 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit.raft.log import RaftLog
from labkit.raft.messages import LogEntry
from labkit.raft.node import Role
from labkit.sim import Kind

if TYPE_CHECKING:
    from labkit.raft.node import RaftNode

__all__ = [
    "InvariantViolation",
    "InvariantMonitor",
    "election_safety",
    "log_matching",
    "leader_completeness",
    "state_machine_safety",
]


class InvariantViolation(AssertionError):
    """A Raft safety property (Figure 3) does not hold."""


def election_safety(leaders: Iterable[tuple[str, int]]) -> list[str]:
    """At most one leader per term, given ``(node, term)`` pairs of every leadership seen."""
    by_term: dict[int, set[str]] = {}
    for node, term in leaders:
        by_term.setdefault(term, set()).add(node)
    return [
        f"Election Safety: term {t} had {len(ns)} leaders: {sorted(ns)}"
        for t, ns in sorted(by_term.items())
        if len(ns) > 1
    ]


def _entries(log: RaftLog | Sequence[LogEntry]) -> list[LogEntry]:
    return list(log)


def log_matching(logs: Mapping[str, RaftLog | Sequence[LogEntry]]) -> list[str]:
    """Log Matching over a snapshot of logs (node id -> log, 1-based order)."""
    out = []
    # For each (index, term) remember one node's prefix; compare the others to it.
    seen: dict[tuple[int, int], tuple[str, list[LogEntry]]] = {}
    for node, log in logs.items():
        entries = _entries(log)
        for i, e in enumerate(entries, 1):
            key = (i, e.term)
            if key not in seen:
                seen[key] = (node, entries)
                continue
            other, other_entries = seen[key]
            if other_entries[:i] != entries[:i]:
                out.append(
                    f"Log Matching: {node} and {other} both hold index {i} of term {e.term} "
                    "but their logs differ before it"
                )
                break
    return out


def leader_completeness(
    committed: Mapping[int, int], leader: str, log: RaftLog | Sequence[LogEntry]
) -> list[str]:
    """Every committed entry (index -> term) is in a new leader's log."""
    entries = _entries(log)
    out = []
    for i, t in sorted(committed.items()):
        have = entries[i - 1].term if i <= len(entries) else None
        if have != t:
            out.append(
                f"Leader Completeness: leader {leader} lacks committed entry {i} (term {t}); "
                f"it has {'nothing' if have is None else f'term {have}'} there"
            )
    return out


def state_machine_safety(applied: Mapping[str, Sequence[LogEntry]]) -> list[str]:
    """No two servers apply different entries at one index (node -> entries applied, in order)."""
    first: dict[int, tuple[str, LogEntry]] = {}
    out = []
    for node, entries in applied.items():
        for i, e in enumerate(entries, 1):
            if i not in first:
                first[i] = (node, e)
            elif first[i][1] != e:
                out.append(
                    f"State Machine Safety: at index {i} {first[i][0]} applied {first[i][1]!r} "
                    f"but {node} applied {e!r}"
                )
    return out


class InvariantMonitor:
    """Checks Figure 3's properties after every event of a Raft simulation.

    ``violations`` collects what broke, in words; with ``strict=True`` the
    first violation also raises :class:`InvariantViolation` out of the run.
    """

    def __init__(self, trace_rows: list, nodes: Any, servers: Iterable[str], strict: bool = True) -> None:
        self._rows = trace_rows
        self._pos = 0
        self._get_node = nodes  # callable: node id -> live node or None
        self.servers = frozenset(servers)
        self.strict = strict
        self.violations: list[str] = []
        self.leaders: dict[int, str] = {}  # term -> leader
        self.committed: dict[int, int] = {}  # index -> term, everything ever committed
        self.applied: dict[int, LogEntry] = {}  # index -> entry, everything ever applied
        self._digests: dict[tuple[int, int], int] = {}  # (index, term) -> prefix digest
        self._incarnation: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}
        self._seen_commit: dict[str, int] = {}
        self._seen_applied: dict[str, int] = {}
        self._was_leader: dict[str, int] = {}
        self._commit_index: dict[str, int] = {}  # per server, its commit_index when last observed
        self._applied_ahead: set[str] = set()  # servers already reported for last_applied > commit_index
        self.events_checked = 0

    def _fail(self, what: str) -> None:
        self.violations.append(what)
        if self.strict:
            raise InvariantViolation(what)

    def after_event(self) -> None:
        """Look at the servers the events since the last call touched."""
        rows = self._rows
        end = len(rows)
        if self._pos == end:
            return
        servers, cache = self.servers, self._cache
        touched = None
        for i in range(self._pos, end):
            r = rows[i]
            k, nid = r[1], r[2]
            if k is Kind.DELIVER or k is Kind.TIMER:
                if nid != touched and nid in servers:
                    touched = nid
                    self.observe(nid)
            elif (k is Kind.START or k is Kind.CRASH) and nid in servers:
                # Keep a cache of live node objects so observe() need not ask the simulator.
                cache[nid] = self._get_node(nid) if k is Kind.START else None
                if k is Kind.START:
                    self.observe(nid)
        self._pos = end
        self.events_checked += 1

    def observe(self, node_id: str) -> None:
        """Check one server's current state against everything seen so far."""
        cache = self._cache
        node: RaftNode | None = cache[node_id] if node_id in cache else self._get_node(node_id)
        if node is None:
            return
        if self._incarnation.get(node_id) is not node:
            # A new incarnation re-applies from index 1; its log is re-checked whole.
            cache[node_id] = node
            self._incarnation[node_id] = node
            self._seen_commit[node_id] = 0
            self._seen_applied[node_id] = 0
            self._was_leader[node_id] = -1
            self._commit_index[node_id] = 0
            self._applied_ahead.discard(node_id)
        # The server's own invariants (Figure 2): commit_index only grows within
        # one incarnation, and nothing is applied before it is committed.
        commit = node.commit_index
        if commit < self._commit_index[node_id]:
            self._fail(
                f"Commit index: {node_id}'s commit_index went back from {self._commit_index[node_id]} to {commit}"
            )
        self._commit_index[node_id] = commit
        if node.last_applied > commit and node_id not in self._applied_ahead:
            self._applied_ahead.add(node_id)
            self._fail(f"Apply: {node_id} has last_applied {node.last_applied} > commit_index {commit}")
        log = node.log
        last = log.last_index
        # Log Matching: same (index, term) means same prefix, at any time.
        if log.low_water <= last:
            digests = self._digests
            for i in range(log.low_water, last + 1):
                key = (i, log.term(i))
                d = log.digest(i)
                old = digests.setdefault(key, d)
                if old != d:
                    self._fail(
                        f"Log Matching: {node_id} holds index {i} of term {key[1]} with a prefix "
                        "different from another log's entry at that index and term"
                    )
                    break
        log.low_water = last + 1
        # Commits (recorded for Leader Completeness).
        top = min(node.commit_index, last)
        seen = self._seen_commit[node_id]
        if top > seen:
            committed = self.committed
            for i in range(seen + 1, top + 1):
                t = log.term(i)
                old = committed.setdefault(i, t)
                if old != t:
                    self._fail(
                        f"Commit: {node_id} committed index {i} with term {t}, already committed with term {old}"
                    )
            self._seen_commit[node_id] = top
        # Election Safety and Leader Completeness, once per leadership.
        if node.role is Role.LEADER and self._was_leader[node_id] != node.current_term:
            self._was_leader[node_id] = node.current_term
            term = node.current_term
            other = self.leaders.setdefault(term, node_id)
            if other != node_id:
                self._fail(f"Election Safety: {other} and {node_id} both lead term {term}")
            for i, t in self.committed.items():
                if i > last or log.term(i) != t:
                    self._fail(
                        f"Leader Completeness: {node_id} leads term {term} but lacks committed entry {i} (term {t})"
                    )
                    break
        # State Machine Safety.
        seen = self._seen_applied[node_id]
        if node.last_applied > seen:
            applied = self.applied
            for i in range(seen + 1, min(node.last_applied, last) + 1):
                e = log[i]
                old = applied.setdefault(i, e)
                if old != e:
                    self._fail(
                        f"State Machine Safety: {node_id} applied {e!r} at index {i}, another server applied {old!r}"
                    )
            self._seen_applied[node_id] = node.last_applied

    def check_all(self, nodes: Mapping[str, RaftNode]) -> list[str]:
        """A full snapshot check of the live servers (slower; for the end of a run)."""
        out: list[str] = []
        for n in nodes.values():
            out.extend(n.check_invariants())
        out.extend(log_matching({k: n.log for k, n in nodes.items()}))
        out.extend(election_safety((v, t) for t, v in self.leaders.items()))
        applied = {
            k: [n.log[i] for i in range(1, min(n.last_applied, n.log.last_index) + 1)]
            for k, n in nodes.items()
        }
        out.extend(state_machine_safety(applied))
        return out
