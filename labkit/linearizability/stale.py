"""The most common violation in words: a read that missed a write completed before it began.

Herlihy & Wing (1990, §2) ask that every operation take effect at one point
between its call and its return. So if a write *returned* before a read was
*called*, the write's point lies before the read's, and the read must see it
(or something written after it). A read that does not is *stale*: the
signature of a replica serving an old copy (Kleppmann, DDIA ch. 9,
"Linearizability"). :func:`stale_read` finds one in a failing history by
that rule alone, with no search; :func:`stale_read_window` picks the few
operations to draw around it.

"Does not see" is read off the operations: a read misses ``("append", k, v)``
when ``v`` is not part of its output; it misses a ``put``/``write`` of a new
value when it returned an old value whose every write had returned before
the new write was called (a value nobody wrote counts as the initial one).
Values are assumed distinct, as the workloads of labkit write them.
"""

from __future__ import annotations

from dataclasses import dataclass

from labkit import validation as valid
from labkit.linearizability.history import UNKNOWN, Operation
from labkit.linearizability.result import CheckResult, Verdict

__all__ = ["StaleRead", "stale_read", "stale_read_window"]

_READS = {"get", "read"}
_WRITES = {"put", "append", "write"}


@dataclass(frozen=True, slots=True)
class StaleRead:
    """Read ``read`` (an operation id) did not see the writes ``missed``, all of
    which returned before the read was called (ordered by return; ``latest``
    is the last of them, the closest evidence in time)."""

    read: int
    missed: tuple[int, ...]

    @property
    def latest(self) -> int:
        return self.missed[-1]

    def describe(self, ops: tuple[Operation, ...] | list[Operation], limit: int = 24) -> str:
        """``read at t=2.440 s returned '…' although append '…' completed at t=2.431 s, before it began``."""
        r, w, first = ops[self.read], ops[self.latest], ops[self.missed[0]]
        d = _digits(w.ret, r.call)
        more = (
            f" (it missed {len(self.missed)} such writes, the first completed at t={first.ret:.{d}f} s)"
            if len(self.missed) > 1
            else ""
        )
        return (
            f"{r.client}'s read at t={r.call:.{d}f} s returned {_brief(r.output, limit)} although "
            f"{w.input[0]} {_brief(w.input[-1], limit)} by {w.client} completed at t={w.ret:.{d}f} s, "
            f"before it began{more}"
        )


def _digits(a: float, b: float) -> int:
    """Decimals (3 to 6) enough to print ``a`` and ``b`` differently."""
    return next((d for d in range(3, 7) if f"{a:.{d}f}" != f"{b:.{d}f}"), 6)


def _brief(value: object, limit: int) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit // 2 - 1]}…{text[-(limit // 2) :]}"


def _key(op: Operation) -> tuple:
    """The object an operation acts on: its key for a key-value store, () for a register."""
    kind, *args = op.input
    return tuple(args[:1]) if kind in ("get", "put", "append") else ()


def _misses(r: Operation, w: Operation, last_written: dict) -> bool:
    """Whether read ``r`` cannot have seen write ``w`` (which returned before ``r`` was called).

    ``last_written`` maps a put/written value to when its last write returned.
    """
    if w.input[0] == "append":
        return not isinstance(r.output, str) or str(w.input[-1]) not in r.output
    if r.output == w.input[-1]:
        return False
    # The old value is stale only if every write of it (even one whose outcome
    # is unknown, which never returns) returned before ``w`` was called.
    try:
        return last_written.get(r.output, -float("inf")) < w.call
    except TypeError:  # an unhashable output: no write can have produced it
        return True


def stale_read(result: CheckResult) -> StaleRead | None:
    """A stale read in the failing part of ``result``, or None if it has none.

    Of all stale reads of the failing part, the one that missed the most
    writes (the clearest evidence; ties go to the earliest call).
    """
    valid.instance("result", result, CheckResult)
    if result.verdict is not Verdict.NOT_LINEARIZABLE:
        raise ValueError(f"result must be not linearizable to hold a stale read, got {result.verdict.value}")
    part = result.failure
    assert part is not None
    ops = result.history
    last_written: dict = {}
    for i in part.ops:
        if ops[i].input[0] in ("put", "write"):
            v = ops[i].input[-1]
            last_written[v] = max(last_written.get(v, -float("inf")), ops[i].latest_effect)
    writes = sorted(
        (i for i in part.ops if ops[i].input[0] in _WRITES and ops[i].output is not UNKNOWN),
        key=lambda i: ops[i].ret,
    )
    reads = sorted(
        (i for i in part.ops if ops[i].input[0] in _READS and ops[i].output is not UNKNOWN),
        key=lambda i: (ops[i].call, i),
    )
    best: StaleRead | None = None
    for r in reads:
        missed = [
            w
            for w in writes
            if ops[w].ret < ops[r].call
            and _key(ops[w]) == _key(ops[r])
            and _misses(ops[r], ops[w], last_written)
        ]
        if missed and (best is None or len(missed) > len(best.missed)):
            best = StaleRead(r, tuple(missed))
    return best


def stale_read_window(result: CheckResult, stale: StaleRead, *, around: int = 2) -> tuple[int, ...]:
    """The operation ids to draw around ``stale``: the read, the last write it
    missed, ``around`` operations before and after each of them on their own
    clients, and every operation of those clients in between; ordered by call."""
    valid.instance("result", result, CheckResult)
    valid.instance("stale", stale, StaleRead)
    valid.integer("around", around, ge=0, note="operations per side")
    ops = result.history
    part = result.failure
    if (
        part is None
        or stale.read not in part.ops
        or not set(stale.missed) <= set(part.ops)
        or not stale.missed
    ):
        raise ValueError("stale must be a stale read of result's failing part (from stale_read(result))")
    r, w = ops[stale.read], ops[stale.latest]
    lo, hi = min(w.call, r.call), max(w.ret, r.ret)
    keep = {stale.read, stale.latest}
    for anchor in (stale.read, stale.latest):
        lane = sorted(
            (i for i in part.ops if ops[i].client == ops[anchor].client), key=lambda i: (ops[i].call, i)
        )
        at = lane.index(anchor)
        keep.update(lane[max(0, at - around) : at + around + 1])
        keep.update(i for i in lane if lo <= ops[i].call and ops[i].ret <= hi)
    return tuple(sorted(keep, key=lambda i: (ops[i].call, i)))
