"""The record of everything a simulation did.

Every send, delivery, drop, duplicate, timer firing, crash, restart, fault
change and protocol-reported state change is appended as one row. Rows are
plain tuples in the hot path; :meth:`Trace.to_frame` turns them into a pandas
DataFrame with stable column names for plots and analysis.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, NamedTuple

from labkit import validation as valid

__all__ = ["Kind", "DropReason", "TraceEvent", "Trace", "COLUMNS"]


class Kind(StrEnum):
    """What a trace row records."""

    START = "start"  # a node booted (first time or after a restart)
    SEND = "send"  # a node handed a message to the network
    DELIVER = "deliver"  # the network delivered a message
    DROP = "drop"  # the network lost a message (see DropReason)
    DUPLICATE = "duplicate"  # the network made an extra copy of a message
    TIMER = "timer"  # a timer fired at a node
    CRASH = "crash"  # a node crashed (volatile state lost)
    RESTART = "restart"  # a crashed node came back
    FAULT = "fault"  # the network changed: partition, heal, loss, latency...
    STATE = "state"  # a protocol reported a state change (ctx.note)


class DropReason(StrEnum):
    """Why the network did not deliver a message."""

    LOSS = "loss"  # random loss (loss probability)
    PARTITION = "partition"  # the link was cut when sent or when due
    CRASHED = "crashed"  # the receiver was down, or crashed while it was in flight


class TraceEvent(NamedTuple):
    """One row of the trace. Unused fields are ``None``."""

    time: float
    kind: Kind
    node: str | None  # where it happened (the receiver for deliveries/drops)
    src: str | None
    dst: str | None
    msg_id: int | None  # a duplicate shares the msg_id of its original
    message: Any
    sent_at: float | None  # send time, on deliveries and drops
    reason: str | None  # DropReason value on drops; the note name on STATE
    detail: dict[str, Any] | None


COLUMNS = list(TraceEvent._fields)
# Where each field sits in a row, for reading plain tuple rows by field name.
_KIND, _REASON = COLUMNS.index("kind"), COLUMNS.index("reason")


class Trace:
    """An append-only list of :class:`TraceEvent` rows.

    ``Trace(keep=False)`` records nothing: long runs that are read only
    through their own metrics (a minute of traffic at 1,000 requests/s is
    about a million rows, some 100 MB) skip both the memory and the time it
    costs the garbage collector to scan them. Reading such a trace raises.
    """

    __slots__ = ("rows", "keep")

    def __init__(self, keep: bool = True) -> None:
        if not isinstance(keep, bool):
            raise TypeError(f"keep must be True or False, got {keep!r}")
        self.keep = keep
        # A trace that keeps nothing drops every row as it is appended.
        self.rows: list[tuple] = [] if keep else deque(maxlen=0)  # type: ignore[assignment]

    def _check_kept(self) -> None:
        if not self.keep:
            raise ValueError(
                "this simulation keeps no trace (it was created with trace=False); "
                "create it with trace=True to record one"
            )

    def __len__(self) -> int:
        self._check_kept()
        return len(self.rows)

    def __iter__(self) -> Iterator[TraceEvent]:
        self._check_kept()
        return (TraceEvent._make(r) for r in self.rows)

    def __getitem__(self, i: int) -> TraceEvent:
        self._check_kept()
        return TraceEvent._make(self.rows[i])

    def of_kind(self, *kinds: Kind) -> list[TraceEvent]:
        """The rows whose kind is one of ``kinds``, in order."""
        self._check_kept()
        wanted = set(kinds)
        return [TraceEvent._make(r) for r in self.rows if r[_KIND] in wanted]

    def count(self, kind: Kind) -> int:
        """How many rows of this kind."""
        self._check_kept()
        return sum(1 for r in self.rows if r[_KIND] is kind)

    def notes(self, what: str | None = None) -> list[TraceEvent]:
        """State-change rows, optionally only those named ``what``."""
        self._check_kept()
        if what is not None:
            valid.string("what", what)
        return [
            TraceEvent._make(r)
            for r in self.rows
            if r[_KIND] is Kind.STATE and (what is None or r[_REASON] == what)
        ]

    def lines(self) -> Iterator[str]:
        """One canonical text line per row (used for digests and diffs)."""
        self._check_kept()
        for r in self.rows:  # the kind by its value, every other field as it is
            yield repr((*r[:_KIND], r[_KIND].value, *r[_KIND + 1 :]))

    def digest(self) -> str:
        """SHA-256 of the canonical lines: equal runs give equal digests."""
        h = hashlib.sha256()
        for line in self.lines():
            h.update(line.encode())
            h.update(b"\n")
        return h.hexdigest()

    def to_frame(self):  # -> pandas.DataFrame
        """The trace as a DataFrame.

        Columns: ``time, kind, node, src, dst, msg_id, message, sent_at,
        reason, detail`` (``kind`` as its string value) plus ``reordered``:
        True on a delivery that overtook a message sent earlier on the same
        link, which is how reordering shows up.
        """
        import pandas as pd

        self._check_kept()
        df = pd.DataFrame.from_records(self.rows, columns=COLUMNS)
        df["kind"] = df["kind"].map(lambda k: k.value).astype("string")
        df["reordered"] = False
        deliveries = df["kind"] == Kind.DELIVER.value
        if deliveries.any():
            d = df.loc[deliveries, ["src", "dst", "msg_id"]]
            seen_max = d.groupby(["src", "dst"])["msg_id"].cummax()
            previous_max = seen_max.groupby([d["src"], d["dst"]]).shift(1)
            df.loc[deliveries, "reordered"] = (d["msg_id"] < previous_max).to_numpy()
        return df
