"""Log compaction's bookkeeping (extended Raft paper, §7, Figures 12 and 13).

The rules (when to snapshot, what a follower does with a leader's snapshot)
are in :class:`~labkit.raft.node.RaftNode`; this module holds what they need
around them: how the durable storage looks, when a log is long enough to
compact, how a snapshot becomes bytes, and the two ends of a transfer in chunks.

Bytes: :func:`encode` writes a snapshot's contents (the state machine's state
and the configuration) as JSON, keys sorted and without spaces, so equal
snapshots give equal bytes on every server and in every run; :func:`decode`
reads them back. JSON, never pickle: a follower rebuilds plain values from the
bytes a leader sent and runs no code they name. The state must therefore be
made of ``None``, ``bool``, ``int``, finite ``float``, ``str`` and tuples of
them (what :meth:`StateMachine.snapshot` promises: an immutable value), and
anything else is refused with a clear error when the snapshot is encoded.

Chunks (Figure 13): the leader cuts the bytes into chunks of at most
``snapshot_chunk_size`` and sends them in order, one at a time; its
:class:`Transfer` (one per follower, kept in the follower's
:class:`~labkit.raft.progress.Progress`) knows where the next chunk starts. The
follower gathers them in a :class:`PartialSnapshot`, its "snapshot file", and
takes a chunk only where the file ends, so a lost, duplicated or late chunk can
never leave a gap or a repeat in the bytes it installs.

Storage: ``"snapshot"`` holds the latest :class:`~labkit.raft.messages.Snapshot`;
``("log", i)`` holds entry i for i in ``snapshot.last_included_index + 1 ..
log_length``. Writing a snapshot and forgetting the entries it replaces are
one batch of persists, in that order, so a crash between the two (possible
with a real disk, :mod:`labkit.net.storage`) leaves old entries behind that
recovery ignores, never a gap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from labkit.raft.log import RaftLog
from labkit.raft.messages import Configuration, InstallSnapshot, InstallSnapshotReply, Snapshot
from labkit.sim import Context

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "SNAPSHOT_KEY",
    "PartialSnapshot",
    "starts_new_file",
    "Transfer",
    "decode",
    "due",
    "encode",
    "forget_entries",
    "load_log",
    "persist_snapshot",
]

SNAPSHOT_KEY = "snapshot"
# Bytes per InstallSnapshot chunk unless RaftConfig says otherwise: more than any snapshot of the
# course's runs holds, so by default a snapshot travels in one chunk (see RaftConfig).
DEFAULT_CHUNK_SIZE = 64 * 1024
# The largest chunk: one InstallSnapshot must fit a frame of labkit.net (4 MiB, where bytes
# travel as base64, a third longer) with room to spare.
MAX_CHUNK_SIZE = 1 << 20


def due(threshold: int | None, last_applied: int, log: RaftLog) -> bool:
    """Whether the log holds at least ``threshold`` entries already applied (None: never compact).

    The dissertation (ch. 5) suggests compacting when the log has grown large
    compared with the snapshot; a count of entries is the simple form of that policy.
    """
    return threshold is not None and last_applied - log.snapshot_index >= threshold


def persist_snapshot(ctx: Context, snapshot: Snapshot, first: int, last: int) -> None:
    """Write ``snapshot``, then forget the stored entries ``first..last`` it made useless."""
    ctx.persist(SNAPSHOT_KEY, snapshot)
    forget_entries(ctx, first, last)


def forget_entries(ctx: Context, first: int, last: int) -> None:
    """Delete the stored log entries ``first..last``."""
    for i in range(first, last + 1):
        ctx.forget(("log", i))


def load_log(storage: Mapping[Any, Any]) -> tuple[Snapshot | None, RaftLog]:
    """The snapshot (None if there is none) and the log after it, as stored."""
    snapshot: Snapshot | None = storage.get(SNAPSHOT_KEY)
    if snapshot is None:
        base, term = 0, 0
    else:
        base, term = snapshot.last_included_index, snapshot.last_included_term
    length = storage.get("log_length", 0)
    entries = (storage[("log", i)] for i in range(base + 1, length + 1))
    return snapshot, RaftLog(entries, snapshot_index=base, snapshot_term=term)


# ----------------------------------------------------------------------
# A snapshot as bytes
# ----------------------------------------------------------------------
def encode(snapshot: Snapshot) -> bytes:
    """The snapshot's contents as JSON bytes: ``{"configuration": {...}, "state": ...}``, keys sorted.

    The index and term of its last included entry travel beside the bytes, as
    Figure 13's ``lastIncludedIndex`` and ``lastIncludedTerm``.
    """
    conf = snapshot.configuration
    contents = {
        "configuration": {"voters": list(conf.voters), "learners": list(conf.learners)},
        "state": _plain(snapshot.state),
    }
    return json.dumps(
        contents, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def decode(data: bytes, last_included_index: int, last_included_term: int) -> Snapshot:
    """The :class:`Snapshot` whose contents :func:`encode` wrote as ``data``."""
    try:
        contents = json.loads(bytes(data).decode())
        conf = contents["configuration"]
        configuration = Configuration(_tuples(conf["voters"]), _tuples(conf["learners"]))
        state = _tuples(contents["state"])
    except (UnicodeDecodeError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"data is not a snapshot written by encode(): {e!s}"[:200]) from None
    return Snapshot(last_included_index, last_included_term, state, configuration)


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it, checked: tuples become lists, the rest must be JSON's own."""
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"a snapshot's state must hold finite numbers only (JSON has no {value!r})")
        return value
    if type(value) is tuple:
        return [_plain(v) for v in value]
    raise TypeError(
        "a snapshot's state must be made of None, bool, int, float, str and tuples of them "
        f"(it travels as JSON), got {type(value).__qualname__}: {value!r}"[:240]
    )


def _tuples(value: Any) -> Any:
    """JSON's lists as tuples, all the way down (a snapshot's state is immutable)."""
    if type(value) is list:
        return tuple(_tuples(v) for v in value)
    if type(value) is dict:
        raise ValueError("a snapshot's state holds no JSON objects")
    return value


# ----------------------------------------------------------------------
# The two ends of a transfer in chunks (Figure 13)
# ----------------------------------------------------------------------
class Transfer:
    """A leader's transfer of one snapshot to one follower, one chunk at a time (Figure 13).

    ``offset`` is where the chunk on its way (or the next one to send) starts.
    The leader moves it only on an answer to that very chunk (the reply echoes
    its ``offset``), to where the follower says its file ends: forward when the
    chunk was written, back to 0 when the follower lost what it had gathered (it
    crashed, or it started another snapshot). Any other answer is late or
    duplicated and changes nothing; a chunk that gets no answer is sent again
    by the heartbeat that finds it overdue. Volatile, like all of a leader's
    progress: a new leader starts its own transfer from offset 0.
    """

    __slots__ = ("last_included_index", "last_included_term", "data", "chunk_size", "offset")

    def __init__(self, snapshot: Snapshot, data: bytes, chunk_size: int) -> None:
        self.last_included_index = snapshot.last_included_index
        self.last_included_term = snapshot.last_included_term
        self.data = data
        self.chunk_size = chunk_size
        self.offset = 0

    def chunk(self) -> tuple[int, bytes, bool]:
        """``(offset, data, done)`` of the chunk to send now: Figure 13's ``offset``, ``data[]`` and ``done``."""
        end = self.offset + self.chunk_size
        return self.offset, self.data[self.offset : end], end >= len(self.data)

    def superseded_by(self, snapshot: Snapshot) -> bool:
        """Whether to send ``snapshot``, the leader's newest, instead: the follower has none of this
        one yet. (A transfer under way goes on to its end, so that it ends even while the leader
        takes snapshots faster than a whole one can travel.)"""
        return self.offset == 0 and snapshot.last_included_index > self.last_included_index

    def answered(self, reply: InstallSnapshotReply) -> bool:
        """Take a reply that answers the chunk on its way; True if another chunk should go now."""
        if reply.last_included_index != self.last_included_index or reply.offset != self.offset:
            return False  # an answer to another snapshot, or to a chunk already answered
        if reply.stored == self.offset:
            return False
        self.offset = min(reply.stored, len(self.data))
        return True

    def __repr__(self) -> str:
        return (
            f"Transfer(last included {self.last_included_index}/t{self.last_included_term}, "
            f"{self.offset} of {len(self.data)} bytes sent)"
        )


def starts_new_file(file: PartialSnapshot | None, m: InstallSnapshot) -> bool:
    """Figure 13, receiver step 2: whether ``m`` is a first chunk (offset 0) that starts a new file.

    A first chunk of the very snapshot ``file`` is gathering does not: it is a
    repeat (duplicated, or sent again after its answer was lost), and starting
    over on it would throw away the chunks that came after it.
    """
    return m.offset == 0 and (file is None or not file.gathers(m))


class PartialSnapshot:
    """The snapshot a follower is gathering: Figure 13's "snapshot file" before ``done``.

    It belongs to one snapshot (``last_included_index`` and
    ``last_included_term``) sent by the leader of one ``term``, and holds the
    bytes received so far, from offset 0 without a gap. A chunk is written
    only if it is of that snapshot and term and starts exactly where the file
    ends (:meth:`write`): a duplicate (it starts earlier) or a chunk after a
    lost one (it starts later) is not written, and the reply's ``stored`` tells
    the leader where to go on.

    Volatile: a crash loses it, and the follower starts afresh when the leader's
    next chunk finds no file. That is safe because nothing durable depends on
    it. The follower persists nothing while it gathers, a reply to a chunk that
    is not the last promises no more than "I have these bytes now", and the
    leader moves the follower's ``matchIndex`` only on the reply to the last
    chunk, sent after the whole snapshot was saved (receiver step 5). A real
    server that keeps the partial file on disk deletes it on restart for the
    same reason.
    """

    __slots__ = ("term", "last_included_index", "last_included_term", "data")

    def __init__(self, m: InstallSnapshot) -> None:
        self.term = m.term
        self.last_included_index = m.last_included_index
        self.last_included_term = m.last_included_term
        self.data = bytearray()

    def gathers(self, m: InstallSnapshot) -> bool:
        """Whether ``m`` is a chunk of the snapshot this file gathers (same leader's term, same last entry)."""
        return (
            m.term == self.term
            and m.last_included_index == self.last_included_index
            and m.last_included_term == self.last_included_term
        )

    def write(self, m: InstallSnapshot) -> bool:
        """Write the chunk's data at its offset if that is where this file ends; True if written."""
        if not self.gathers(m) or m.offset != len(self.data):
            return False
        self.data += m.data
        return True

    def stored(self, m: InstallSnapshot) -> int:
        """How many bytes of ``m``'s snapshot this file holds (0 if it gathers another one)."""
        return len(self.data) if self.gathers(m) else 0

    def snapshot(self) -> Snapshot:
        """The whole snapshot, read back from the bytes gathered."""
        return decode(self.data, self.last_included_index, self.last_included_term)

    def __repr__(self) -> str:
        return (
            f"PartialSnapshot(last included {self.last_included_index}/t{self.last_included_term}, "
            f"term {self.term}, {len(self.data)} bytes)"
        )
