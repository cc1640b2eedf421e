"""Figure 3 of the extended Raft paper, checked after every event and written to be read.

Raft guarantees five properties at all times (Figure 3, §5.2-§5.4):

* **Election Safety**: at most one leader can be elected in a given term.
* **Leader Append-Only**: a leader never overwrites or deletes entries in its
  log; it only appends new entries. (It has no check of its own here: a
  leader that replaces an entry of its term breaks Log Matching against the
  entry first seen there, and one that loses a committed entry breaks State
  Machine Safety once another entry is applied at its index.)
* **Log Matching**: if two logs contain an entry with the same index and
  term, the logs are identical in all entries up through that index.
* **Leader Completeness**: if an entry is committed in a given term, it is
  present in the logs of the leaders of all higher terms.
* **State Machine Safety**: if a server has applied a log entry at a given
  index, no other server ever applies a different entry at that index.

:class:`Figure3Monitor` looks at one server after each event that touched it
and remembers across time what it must: every leader of every term, every
entry ever committed and applied at each index, and the first log prefix seen
ending at each (index, term). It is the plain statement of what
:class:`~labkit.raft.invariants.InvariantMonitor` checks: the two report the
same violations, in the same words, after the same event (the tests run both on
random fault schedules and on planted bugs). The fast one does the same work
incrementally, which is why clusters run it; read this one first.

Besides Figure 3 both check a server's own state (Figure 2): ``commit_index``
never goes back while the server stays up, ``last_applied <= commit_index``,
and a snapshot (§7) ends at an entry that was committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from labkit.raft.invariants import InvariantViolation
from labkit.raft.node import Role

__all__ = ["Figure3Monitor"]


class _Server:
    """What the monitor last saw of one incarnation of a server (a restart is a new one)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.snapshot_index = 0
        self.prefix: tuple[Any, ...] = ()  # the log up to snapshot_index, as far as it is known
        self.entries: list[Any] = []  # the log after snapshot_index
        self.commit_index = 0
        self.committed = 0  # its commits are recorded up to here
        self.applied = 0  # its applies are checked up to here
        self.led = -1  # the last term it was seen leading
        self.ahead = False  # last_applied > commit_index was reported


class Figure3Monitor:
    """Figure 3's properties after every event; the readable twin of InvariantMonitor (same interface)."""

    def __init__(self, nodes: Callable[[str], Any], servers: Iterable[str], strict: bool = True) -> None:
        self.get_node = nodes  # node id -> the live node, or None while it is down
        self.servers = frozenset(servers)
        self.strict = strict
        self.violations: list[str] = []
        self.leaders: dict[int, str] = {}  # term -> its leader
        self.committed: dict[int, int] = {}  # index -> term, every commit ever seen
        self.applied: dict[int, Any] = {}  # index -> entry, every apply ever seen
        self.first_prefix: dict[tuple[int, int], tuple[Any, ...]] = {}  # (index, term) -> log 1..index
        self.last: dict[str, _Server] = {}

    def fail(self, what: str) -> None:
        self.violations.append(what)
        if self.strict:
            raise InvariantViolation(what)

    def observe(self, node_id: str, node: Any = None) -> None:
        """Check server ``node_id`` (``node``, or its live node) after an event."""
        seen = self.last.get(node_id)
        if seen is None or seen.node is not node:
            if node_id not in self.servers:
                return  # a client, or a server not (yet) in the configuration
            if node is None:
                node = self.get_node(node_id)
            if node is None:
                return  # down
            if seen is None or seen.node is not node:
                seen = self.last[node_id] = _Server(node)  # a new incarnation: seen from scratch
        self.log_matching(node_id, node.log, seen)
        self.commits_and_applies(node_id, node, seen)
        if node.role is Role.LEADER and seen.led != node.current_term:
            seen.led = node.current_term
            self.new_leader(node_id, node.current_term, seen)

    def log_matching(self, node_id: str, log: Any, seen: _Server) -> None:
        """Log Matching: each new entry's log up to it equals the first log seen with that index and term."""
        held = list(log)
        if log.snapshot_index != seen.snapshot_index:
            self.snapshot(node_id, log, seen)
        elif len(held) == len(seen.entries) and (not held or held[-1] is seen.entries[-1]):
            return  # unchanged: a log only changes at its end
        # Only the entries after the last one still in place are new.
        k = min(len(held), len(seen.entries))
        while k and held[k - 1] is not seen.entries[k - 1]:
            k -= 1
        seen.entries = held
        broken = None
        for i in range(seen.snapshot_index + k + 1, log.last_index + 1):
            term = held[i - seen.snapshot_index - 1].term
            prefix = seen.prefix + tuple(held[: i - seen.snapshot_index])
            first = self.first_prefix.setdefault((i, term), prefix)
            if first != prefix and broken is None:
                broken = (i, term)
        if broken:
            self.fail(
                f"Log Matching: {node_id} holds index {broken[0]} of term {broken[1]} with a prefix "
                "different from another log's entry at that index and term"
            )

    def snapshot(self, node_id: str, log: Any, seen: _Server) -> None:
        """A snapshot (§7) must end at a committed entry; the log before it is known from then on."""
        index, term = log.snapshot_index, log.snapshot_term
        was = self.committed.get(index)
        if was != term:
            self.fail(
                f"Snapshot: {node_id}'s snapshot ends at index {index} (term {term}), which was "
                + ("never committed" if was is None else f"committed with term {was}")
            )
        replaced = index - seen.snapshot_index  # entries of the log as last seen that it replaced
        if 0 < replaced <= len(seen.entries) and seen.entries[replaced - 1].term == term:
            seen.prefix += tuple(seen.entries[:replaced])
            seen.entries = seen.entries[replaced:]
        else:
            seen.entries = []
            if (index, term) not in self.first_prefix:
                self.fail(
                    f"Snapshot: {node_id}'s snapshot ends at index {index} (term {term}), an entry no log held"
                )
            seen.prefix = self.first_prefix.get((index, term), (("snapshot", index, term),))
        seen.snapshot_index = index

    def commits_and_applies(self, node_id: str, node: Any, seen: _Server) -> None:
        """One term committed at each index, ever; one entry applied at each index, ever (State Machine Safety)."""
        commit, applied = node.commit_index, node.last_applied
        if commit == seen.commit_index and applied <= seen.applied:
            return
        if commit < seen.commit_index:
            self.fail(
                f"Commit index: {node_id}'s commit_index went back from {seen.commit_index} to {commit}"
            )
        seen.commit_index = commit
        if applied > commit and not seen.ahead:
            seen.ahead = True
            self.fail(f"Apply: {node_id} has last_applied {applied} > commit_index {commit}")
        base, entries = seen.snapshot_index, seen.entries
        for i in range(max(seen.committed, base) + 1, min(commit, base + len(entries)) + 1):
            term = entries[i - base - 1].term
            old = self.committed.setdefault(i, term)
            if old != term:
                self.fail(
                    f"Commit: {node_id} committed index {i} with term {term}, already committed with term {old}"
                )
        seen.committed = max(seen.committed, min(commit, base + len(entries)))
        for i in range(max(seen.applied, base) + 1, min(applied, base + len(entries)) + 1):
            entry = entries[i - base - 1]
            old = self.applied.setdefault(i, entry)
            if old != entry:
                self.fail(
                    f"State Machine Safety: {node_id} applied {entry!r} at index {i}, another server applied {old!r}"
                )
        seen.applied = max(seen.applied, applied)

    def new_leader(self, node_id: str, term: int, seen: _Server) -> None:
        """Election Safety and Leader Completeness, once per leadership."""
        other = self.leaders.setdefault(term, node_id)
        if other != node_id:
            self.fail(f"Election Safety: {other} and {node_id} both lead term {term}")
        base, entries = seen.snapshot_index, seen.entries
        for i, t in self.committed.items():  # a snapshot ends at a committed entry: those before it are in
            if i > base and (i > base + len(entries) or entries[i - base - 1].term != t):
                self.fail(
                    f"Leader Completeness: {node_id} leads term {term} but lacks committed entry {i} (term {t})"
                )
                break
