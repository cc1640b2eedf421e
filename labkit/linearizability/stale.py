"""The common violations in words, found with no search: stale, non-monotonic and future reads.

Herlihy & Wing (1990, §2) ask that every operation take effect at one point
between its call and its return, in an order that keeps real time: if ``a``
*returned* before ``b`` was *called*, ``a``'s point comes first. Failing
histories often break that rule in one of three simple ways, each visible in
a few operations, so :func:`stale_read` looks for them directly, by that rule
alone, instead of searching orders:

* **stale read**: a read misses a write that returned before the read was
  called. The write's point comes first, so the read must see it (or a later
  write). The signature of a replica serving an old copy (Kleppmann, DDIA
  ch. 9, "Linearizability"; Jepsen's analyses call it a stale read).
* **non-monotonic read**: a read returns an older state than a read that
  returned before it was called: the value goes backwards. For the
  append-only key-value store, the later read does not extend the earlier
  one's value (e.g. a strict prefix of it); for a register (or ``put``), the
  later read returns a value that was already overwritten when the earlier
  read saw its own. Terry et al. (PDIS 1994) name the per-client version of
  this guarantee *monotonic reads*; linearizability asks it across clients too.
* **read from the future**: a read returns a value that no operation could
  have written before the read returned: every write of it was called after
  the read returned, or none wrote it at all (and it is not the initial value).

:func:`stale_read` reports the first class that has an example, in that
order, as a :class:`StaleRead`; :func:`stale_read_window` picks the few
operations to draw around it. Whatever it reports is a real violation (a
property test checks it against :func:`~labkit.linearizability.check`); it
returns None for violations that need a search to explain, e.g. two clients
that see two concurrent writes in opposite orders.

Each rule is sound because it only counts on what every operation that could
come between may do. For :class:`~labkit.linearizability.RegisterModel` and
:class:`~labkit.linearizability.KVModel` the operations that can leave the
object holding a value ``x`` are known: a write/put of ``x``, a ``cas`` to
``x`` that did not answer False, an append of ``v`` when ``x`` ends with
``v``. If all of them must have taken effect before some point (their
latest effect is before it), ``x`` cannot be read after that point unless it
was the state there. With appends and no put that can take effect after a
point, the value only grows from that point on. Timed-out and pending
operations count as writes that may take effect any time after their call.
Other models get None.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.linearizability.history import UNKNOWN, Operation
from labkit.linearizability.models import KVModel, RegisterModel
from labkit.linearizability.result import CheckResult, Verdict

_READS = {"get", "read"}
_SETS = {"put", "write"}  # set the value to input[-1]


class Anomaly(Enum):
    """The kinds of violation :func:`stale_read` recognises (see the module docstring)."""

    STALE_READ = "stale read"
    NON_MONOTONIC_READ = "non-monotonic read"
    FUTURE_READ = "read from the future"


@dataclass(frozen=True, slots=True)
class StaleRead:
    """Read ``read`` (an operation id) cannot be placed, and ``evidence`` shows why.

    By ``kind``: the writes it missed, all returned before it was called
    (:attr:`Anomaly.STALE_READ`); the earlier reads whose value it goes back
    from, all returned before it was called (:attr:`Anomaly.NON_MONOTONIC_READ`);
    the writes of its value, all called after it returned, or none
    (:attr:`Anomaly.FUTURE_READ`). Ordered so that :attr:`nearest`, the last,
    is the evidence closest in time to the read.
    """

    read: int
    evidence: tuple[int, ...]
    kind: Anomaly = Anomaly.STALE_READ

    @property
    def name(self) -> str:
        """What is wrong, in a few words: the kind's name, or "read of a value nobody wrote"."""
        return "read of a value nobody wrote" if self.nearest is None else self.kind.value

    @property
    def nearest(self) -> int | None:
        """The evidence closest in time to the read (None for a value nobody wrote)."""
        return self.evidence[-1] if self.evidence else None

    def describe(self, ops: Sequence[Operation], limit: int = 24) -> str:
        """The violation in one sentence, e.g. ``c1's read at t=2.440 s returned '…' although append '…'
        by c2 completed at t=2.431 s, before it began``."""
        r = ops[self.read]
        if self.nearest is None:
            return (
                f"{_who(r.client)}'s read at t={r.call:.3f} s returned {_brief(r.output, limit)}, "
                "but no operation wrote it and it is not the initial value"
            )
        e, first = ops[self.nearest], ops[self.evidence[0]]
        many = len(self.evidence) > 1
        if self.kind is Anomaly.FUTURE_READ:
            d = _digits(r.ret, e.call)
            return (
                f"{_who(r.client)}'s read at t={r.call:.{d}f} s returned {_brief(r.output, limit)} although "
                f"{e.input[0]} {_brief(e.input[-1], limit)} by {_who(e.client)} was called at t={e.call:.{d}f} s, "
                f"after the read returned at t={r.ret:.{d}f} s"
                + (" (so were all its writes)" if many else "")
            )
        d = _digits(e.ret, r.call)
        if self.kind is Anomaly.NON_MONOTONIC_READ:
            more = f" ({len(self.evidence) - 1} more reads before it rule its value out too)" if many else ""
            return (
                f"{_who(r.client)}'s read at t={r.call:.{d}f} s returned {_brief(r.output, limit)} although "
                f"{_who(e.client)}'s read had returned {_brief(e.output, limit)} at t={e.ret:.{d}f} s, before it "
                f"began{more}: {_why_backwards(ops, self.read, self.nearest)}"
            )
        more = (
            f" (it missed {len(self.evidence)} such writes, the first completed at t={first.ret:.{d}f} s)"
            if many
            else ""
        )
        return (
            f"{_who(r.client)}'s read at t={r.call:.{d}f} s returned {_brief(r.output, limit)} although "
            f"{e.input[0]} {_brief(e.input[-1], limit)} by {_who(e.client)} completed at t={e.ret:.{d}f} s, "
            f"before it began{more}"
        )


def _why_backwards(ops: Sequence[Operation], read: int, earlier: int) -> str:
    """Why ``read`` cannot follow ``earlier``, in words (the rule of :func:`_goes_back` that applies)."""
    x1, x2, t = ops[earlier].output, ops[read].output, ops[earlier].call
    p = _Part(ops, [i for i, op in enumerate(ops) if _key(op) == _key(ops[read])], None)  # initial unused
    if isinstance(x1, str) and isinstance(x2, str) and not x2.startswith(x1) and p.only_appends_after(t):
        return (
            "the value went backwards"
            if x1.startswith(x2)
            else "the later value does not extend the earlier one"
        )
    if not p.setters(read):
        return "the value went back to the initial one"
    last = ops[max(p.setters(read), key=lambda i: ops[i].latest_effect)]
    return f"the value went back to one overwritten by then (its last write returned at t={last.ret:.3f} s)"


def _who(client: object) -> str:
    """A client's name as a sentence uses it: ``c1``, or ``client 3`` for a number."""
    return client if isinstance(client, str) else f"client {client}"


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


# -- what the operations of one part can do -----------------------------------------


class _Part:
    """The operations of one object (a register, or one key), with the few facts the three rules ask for."""

    def __init__(self, ops: tuple[Operation, ...], ids: Sequence[int], initial: Any) -> None:
        self.ops, self.initial = ops, initial
        # Operations that may change the value, with their outcome known or not
        # (a cas that answered False changed nothing).
        self.mutators = [
            i
            for i in ids
            if ops[i].input[0] in (*_SETS, "append")
            or (ops[i].input[0] == "cas" and ops[i].output is not False)
        ]
        # The latest time a put/write/cas may take effect: after it, appends only grow the value.
        self.last_put = max(
            (ops[i].latest_effect for i in self.mutators if ops[i].input[0] != "append"), default=-math.inf
        )
        self.reads = sorted(
            (i for i in ids if ops[i].input[0] in _READS and ops[i].output is not UNKNOWN),
            key=lambda i: (ops[i].call, i),
        )
        self._setters: dict[int, list[int]] = {}
        self._last_set: dict[int, float] = {}

    def setters(self, read: int) -> list[int]:
        """The operations that can leave the object holding what ``read`` returned."""
        if read not in self._setters:
            x, ops = self.ops[read].output, self.ops
            self._setters[read] = [i for i in self.mutators if _can_leave(ops[i], x)]
            self._last_set[read] = max((ops[i].latest_effect for i in self._setters[read]), default=-math.inf)
        return self._setters[read]

    def unwritten(self, read: int) -> bool:
        """Whether no operation can leave the object holding what ``read`` returned (and it is not the initial value)."""
        return not self.setters(read) and not _same(self.ops[read].output, self.initial)

    def nothing_sets_after(self, read: int, t: float) -> bool:
        """Whether every operation that can set ``read``'s value must take effect before time ``t``."""
        self.setters(read)
        return self._last_set[read] < t

    def only_appends_after(self, t: float) -> bool:
        """Whether every operation that may take effect at ``t`` or later is an append (the value only grows)."""
        return self.last_put < t


def _can_leave(op: Operation, x: Any) -> bool:
    """Whether ``op`` (a mutator) can be the last operation before the object holds ``x``."""
    kind = op.input[0]
    if kind == "append":
        return isinstance(x, str) and isinstance(op.input[-1], str) and x.endswith(op.input[-1])
    return _same(op.input[-1], x)


def _took_effect(op: Operation) -> bool:
    """Whether a mutator surely changed the value to what it names (a cas only if it answered True)."""
    return op.output is True if op.input[0] == "cas" else op.output is not UNKNOWN


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # an odd value that refuses comparison: assume it may be equal
        return True


# -- the three rules -------------------------------------------------------------------


def _misses(p: _Part, r: int, w: int) -> bool:
    """Whether read ``r`` cannot have seen write ``w``, which returned before ``r`` was called."""
    ops = p.ops
    x, wrote = ops[r].output, ops[w].input[-1]
    if ops[w].input[0] == "append":
        if isinstance(x, str) and isinstance(wrote, str) and wrote in x:
            return False  # it may have seen it
        # The value after w contains ``wrote``, so it is not x: only a put after w can take
        # ``wrote`` out again, or an operation after w that sets x.
        return p.only_appends_after(ops[w].call) or p.nothing_sets_after(r, ops[w].call)
    # After w the value is ``wrote``: x differs, and nothing can set x after w.
    return not _same(x, wrote) and p.nothing_sets_after(r, ops[w].call)


def _stale(p: _Part) -> list[StaleRead]:
    ops = p.ops
    writes = sorted((i for i in p.mutators if _took_effect(ops[i])), key=lambda i: (ops[i].ret, i))
    found = []
    for r in p.reads:
        if p.unwritten(r):
            continue  # a read from nowhere: the third rule says so more plainly
        missed = [w for w in writes if ops[w].ret < ops[r].call and _misses(p, r, w)]
        if missed:
            found.append(StaleRead(r, tuple(missed), Anomaly.STALE_READ))
    return found


def _goes_back(p: _Part, earlier: int, r: int) -> bool:
    """Whether read ``r`` cannot follow read ``earlier``, which returned before ``r`` was called."""
    ops = p.ops
    x1, x2 = ops[earlier].output, ops[r].output
    if _same(x1, x2):
        return False
    if (
        isinstance(x1, str)
        and isinstance(x2, str)
        and not x2.startswith(x1)
        and p.only_appends_after(ops[earlier].call)
    ):
        return True  # from x1 on the value only grows
    return p.nothing_sets_after(r, ops[earlier].call)  # x2 was gone when the earlier read saw x1


def _non_monotonic(p: _Part) -> list[StaleRead]:
    ops = p.ops
    by_return = sorted((i for i in p.reads if not p.unwritten(i)), key=lambda i: (ops[i].ret, i))
    returns = [ops[i].ret for i in by_return]
    found = []
    for r in p.reads:
        if p.unwritten(r):
            continue
        before = by_return[: bisect_left(returns, ops[r].call)]  # returned before r was called
        back = [e for e in before if _goes_back(p, e, r)]
        if back:
            found.append(StaleRead(r, tuple(back), Anomaly.NON_MONOTONIC_READ))
    return found


def _future(p: _Part) -> list[StaleRead]:
    ops = p.ops
    found = []
    for r in p.reads:
        if _same(ops[r].output, p.initial):
            continue
        setters = p.setters(r)
        if all(ops[i].call > ops[r].ret for i in setters):  # none could take effect before r returned
            latest_first = sorted(setters, key=lambda i: (-ops[i].call, -i))
            found.append(StaleRead(r, tuple(latest_first), Anomaly.FUTURE_READ))
    return found


def stale_read(result: CheckResult) -> StaleRead | None:
    """A stale, non-monotonic or future read in the failing part of ``result``; None if it has none.

    The classes are tried in that order (see the module docstring). Within a
    class, the read with the most evidence (the clearest; ties go to the
    earliest call). None for a linearizable ``result``, and for models other
    than :class:`~labkit.linearizability.RegisterModel` and
    :class:`~labkit.linearizability.KVModel`. For an undecided ``result`` (the
    search ran out of budget) the rules look at the part the search could not
    finish: what they find proves that part not linearizable.
    """
    valid.instance("result", result, CheckResult)
    if result.verdict is Verdict.LINEARIZABLE:
        return None
    part = result.failure
    assert part is not None
    return _find(result.history, part.ops, result.model)


def _find(ops: tuple[Operation, ...], ids: Sequence[int], model: Any) -> StaleRead | None:
    """The three rules, in order, on the operations ``ids`` of one part (one key) of ``ops``."""
    if not isinstance(model, (RegisterModel, KVModel)):
        return None
    objects: dict[tuple, list[int]] = {}  # one part is one key, unless a subclass partitions otherwise
    for i in ids:
        objects.setdefault(_key(ops[i]), []).append(i)
    parts = [_Part(ops, same, model.init()) for same in objects.values()]
    for rule in (_stale, _non_monotonic, _future):
        found = [s for p in parts for s in rule(p)]
        if found:
            return max(found, key=lambda s: (len(s.evidence), -ops[s.read].call, -s.read))
    return None


def stale_read_window(result: CheckResult, stale: StaleRead, *, around: int = 2) -> tuple[int, ...]:
    """The operation ids to draw around ``stale``: the read, its nearest evidence, ``around``
    operations before and after each of them on their own clients, and every operation of those
    clients in between; ordered by call."""
    valid.instance("result", result, CheckResult)
    valid.instance("stale", stale, StaleRead)
    valid.integer("around", around, ge=0, note="operations per side")
    ops = result.history
    part = result.failure
    if part is None or stale.read not in part.ops or not set(stale.evidence) <= set(part.ops):
        raise ValueError("stale must be a stale read of result's failing part (from stale_read(result))")
    anchors = [stale.read] if stale.nearest is None else [stale.read, stale.nearest]
    lo = min(ops[i].call for i in anchors)
    hi = max(ops[i].call if ops[i].pending else ops[i].ret for i in anchors)
    keep = set(anchors)
    for anchor in anchors:
        lane = sorted(
            (i for i in part.ops if ops[i].client == ops[anchor].client), key=lambda i: (ops[i].call, i)
        )
        at = lane.index(anchor)
        keep.update(lane[max(0, at - around) : at + around + 1])
        keep.update(i for i in lane if lo <= ops[i].call and ops[i].ret <= hi)
    return tuple(sorted(keep, key=lambda i: (ops[i].call, i)))
