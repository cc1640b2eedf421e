"""State machines that Raft replicates (extended paper, §2 and §8).

Raft agrees on a log; a deterministic state machine turns the committed log
into state. Every server applies the same commands in the same order and so
reaches the same state (State Machine Safety, §5.4.3).

:class:`StateMachine` is the interface; :class:`KVStore` the default, a
key-value store with ``get``, ``put`` and ``append`` and the client-session
table of §8: each command carries a client id and a sequence number, and a
command whose number the session has already seen is *not* applied again.
A client that retries after a lost reply (or a leader crash) therefore never
appends twice.

Log compaction (§7) asks one more thing of a state machine: to write its
whole state down as an immutable value of plain values and tuples
(:meth:`StateMachine.snapshot`) and to be rebuilt from one
(:meth:`StateMachine.restore`). The session table is part
of the state: a snapshot that forgot it would let a retried command apply twice.
"""

from __future__ import annotations

from typing import Any

from labkit.raft.messages import KVCommand

__all__ = ["StateMachine", "KVStore", "OPS"]

OPS = {"get": 2, "put": 3, "append": 3}  # op name -> tuple length


class StateMachine:
    """Base class: deterministic ``apply(command) -> result``.

    Subclasses may override :meth:`duplicate` to answer a retried request
    from the session table and :meth:`query` to read without the log (only
    the deliberately broken ``Bug.STALE_READS`` variant does that).
    """

    def apply(self, command: Any) -> Any:
        """Apply one committed command and return its result."""
        return None

    def duplicate(self, client: str, seq: int) -> tuple[bool, Any]:
        """``(True, result)`` if request ``seq`` of ``client`` was already applied."""
        return False, None

    def is_read(self, op: Any) -> bool:
        """Whether ``op`` only reads, so a leader may answer it without the log (diss. §6.4)."""
        return False

    def query(self, op: tuple) -> Any:
        """Answer a read from local state, without going through the log."""
        raise ValueError(f"{type(self).__name__} cannot answer {op!r} locally")

    def snapshot(self) -> Any:
        """The whole state as an immutable value, for log compaction (§7): ``None``, ``bool``, ``int``,
        ``float``, ``str`` and tuples of them, because a leader sends it to followers as JSON
        (:func:`labkit.raft.snapshot.encode`)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot take a snapshot: implement snapshot() and restore() to compact its log"
        )

    def restore(self, state: Any) -> None:
        """Replace the whole state with one :meth:`snapshot` returned (§7)."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot restore a snapshot: implement snapshot() and restore()"
        )


def validate_op(op: Any) -> tuple:
    """Check a key-value operation tuple; raise TypeError/ValueError naming what is wrong."""
    if not isinstance(op, tuple) or not op:
        raise TypeError(f"op must be a tuple like ('put', key, value), got {op!r}")
    name = op[0]
    if name not in OPS:
        raise ValueError(f"op name must be one of {sorted(OPS)}, got {name!r}")
    if len(op) != OPS[name]:
        form = "('get', key)" if name == "get" else f"('{name}', key, value)"
        raise ValueError(f"{name} takes the form {form}, got {op!r}")
    if not isinstance(op[1], str):
        raise TypeError(f"key must be a str, got {op[1]!r}")
    if len(op) == 3 and not isinstance(op[2], str):
        raise TypeError(f"value must be a str, got {op[2]!r}")
    return op


class KVStore(StateMachine):
    """A map of str to str with at-most-once client sessions (§8).

    ``get`` of a missing key returns ``""``; ``put`` and ``append`` return
    ``None``. Commands that are not :class:`KVCommand` (e.g. strings submitted
    with ``RaftCluster.submit``) are recorded in the log only.
    """

    __slots__ = ("data", "sessions")

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        # Invariant: sessions[c] = (highest seq applied for client c, its result).
        self.sessions: dict[str, tuple[int, Any]] = {}

    def apply(self, command: Any) -> Any:
        if not isinstance(command, KVCommand):
            return None
        last = self.sessions.get(command.client)
        if last is not None and command.seq <= last[0]:
            # A retry of something already applied: answer, do not re-apply.
            return last[1] if command.seq == last[0] else None
        op = command.op
        name = op[0]
        if name == "get":
            result = self.data.get(op[1], "")
        elif name == "put":
            self.data[op[1]] = op[2]
            result = None
        else:  # append
            self.data[op[1]] = self.data.get(op[1], "") + op[2]
            result = None
        self.sessions[command.client] = (command.seq, result)
        return result

    def duplicate(self, client: str, seq: int) -> tuple[bool, Any]:
        last = self.sessions.get(client)
        if last is not None and last[0] == seq:
            return True, last[1]
        return False, None

    def is_read(self, op: Any) -> bool:
        return type(op) is tuple and bool(op) and op[0] == "get"

    def query(self, op: tuple) -> Any:
        if op[0] != "get":
            raise ValueError(f"only 'get' can be answered locally, got {op!r}")
        return self.data.get(op[1], "")

    def snapshot(self) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, tuple[int, Any]], ...]]:
        """``(data items, session items)``, each sorted by key."""
        return tuple(sorted(self.data.items())), tuple(sorted(self.sessions.items()))

    def restore(self, state: Any) -> None:
        data, sessions = state
        self.data = dict(data)
        self.sessions = {client: tuple(last) for client, last in sessions}  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"KVStore({self.data!r})"
