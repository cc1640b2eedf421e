"""Phase 1 of the checker: from observed reads to versions, dependencies and direct anomalies.

Elle's central idea (Kingsbury & Alvaro, VLDB 2020, §3-§4): choose a workload
whose reads *recover* what happened.

**List-append keys** (Elle §4.1). Every element appended to a key is unique, so
every element in a read names the transaction that appended it, and a read of
``[1 2 3]`` says that the versions of the key went 1, then 2, then 3. All
reads of a key must be prefixes of one order (else: *incompatible-order*);
the longest read is the version order we know. From it:

* ``ww``: consecutive elements appended by different committed transactions;
* ``wr``: a read ending in element ``e`` depends on the transaction that appended ``e``;
* ``rw``: a read of the first ``n`` elements is followed by whoever appended
  element ``n + 1``.

**Register keys** (Elle §4.2). Every value written to a key is unique, so a
read names its writer (``wr``). The order of versions is only known in part:
a transaction that read ``v`` and then wrote ``w`` puts ``v`` before ``w``; so
does one that wrote ``v`` and then ``w``; ``None`` (never written) comes
before everything. Those known steps ``v -> w`` give ``ww`` (writer of ``v`` to
writer of ``w``) and ``rw`` (every reader of ``v`` to the writer of ``w``).
A known step need not be adjacent in the real order; then the edge stands for
a path of real edges, so a cycle found is still a real cycle.

**Scans** read every register key with a prefix. A key the scan did not
return was read as ``None``: if some transaction created it, the scan
*anti-depends* on that transaction through its predicate (Adya 1999, ch. 3:
predicate anti-dependencies, the edges of phantoms).

Anomalies found here, without a graph: G1a (a committed transaction read a
write of an aborted one), G1b (it read a version its writer overwrote itself
before committing), lost update (two committed transactions read the same
version of a key and both wrote the key afterwards: Berenson et al. 1995
§4.1, P4), and the consistency errors incompatible-order, duplicate-elements,
internal (a transaction did not see its own write), garbage-read.

Which transactions count as committed: those whose status is committed, and
those with an unknown outcome whose writes some committed transaction read
(it must have committed). Only their reads are used, and only they are nodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from labkit.txn.checker import Anomaly, Dep, Edge, Finding
from labkit.txn.history import Fun, History, Op, Status, Txn, format_value

__all__ = ["Inference", "infer", "key_kinds"]


@dataclass
class Inference:
    """What phase 1 found: committed transaction names, dependency edges, direct anomalies,
    and the version order of each list key (the longest read)."""

    committed: set[str]
    edges: list[Edge] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    orders: dict[Hashable, tuple] = field(default_factory=dict)


def key_kinds(history: History) -> dict[Hashable, str]:
    """``"list"`` or ``"register"`` for every key; a key used both ways is refused.

    A read of ``None`` (never written) fits either kind: on a list key it is the empty list.
    """
    kinds: dict[Hashable, str] = {}

    def note(key: Hashable, kind: str, op: Op, txn: Txn) -> None:
        old = kinds.setdefault(key, kind)
        if old != kind:
            raise ValueError(
                f"key {key!r} is used both as a list and as a register (in {txn.name}: {op}); "
                "use appends and list reads, or writes and value reads, on one key"
            )

    for t in history:
        for op in t.ops:
            if op.f is Fun.APPEND:
                note(op.key, "list", op, t)
            elif op.f is Fun.WRITE:
                note(op.key, "register", op, t)
            elif op.f is Fun.READ:
                if op.value is not None:  # None (never written) fits both kinds
                    note(op.key, "list" if isinstance(op.value, tuple) else "register", op, t)
            else:
                for k, _ in op.value:
                    note(k, "register", op, t)
    for t in history:  # keys only ever read as None
        for op in t.ops:
            if op.f is Fun.READ:
                kinds.setdefault(op.key, "register")
    return kinds


def _writers(history: History, kinds: dict[Hashable, str]) -> dict[tuple[Hashable, Any], tuple[Txn, bool]]:
    """(key, element or value) -> (the transaction that wrote it, whether it was an intermediate write)."""
    out: dict[tuple[Hashable, Any], tuple[Txn, bool]] = {}
    for t in history:
        last: dict[Hashable, Any] = {}
        for op in t.ops:
            if not op.is_write:
                continue
            kv = (op.key, op.value)
            if kv in out:
                other = out[kv][0].name
                what = "appended to" if kinds[op.key] == "list" else "written to"
                raise ValueError(
                    f"{format_value(op.value)} is {what} {op.key!r} twice ({other} and {t.name}); every "
                    "element or value written to a key must be unique, so a read names its writer"
                )
            out[kv] = (t, False)
            last[op.key] = kv
        for op in t.ops:
            if op.is_write and last[op.key] != (op.key, op.value):
                out[(op.key, op.value)] = (t, True)
    return out


def _committed(history: History, writers: dict) -> set[str]:
    ok = {t.name for t in history if t.status is Status.COMMITTED}
    unknown = {t.name for t in history if t.status is Status.UNKNOWN}
    if not unknown:
        return ok
    seen: set[str] = set()
    for t in history:
        if t.name not in ok:
            continue
        for op in t.ops:
            if op.f is Fun.READ:
                items = (
                    [(op.key, e) for e in op.value] if isinstance(op.value, tuple) else [(op.key, op.value)]
                )
            elif op.f is Fun.SCAN:
                items = list(op.value)
            else:
                continue
            for kv in items:
                w = writers.get(kv)
                if w is not None and w[0].name in unknown:
                    seen.add(w[0].name)
    return ok | seen


def _both(names: list[str]) -> str:
    if len(names) == 2:
        return f"both {names[0]} and {names[1]}"
    return "all of " + ", ".join(names[:-1]) + f" and {names[-1]}"


class _Inferrer:
    def __init__(self, history: History) -> None:
        self.history = history
        self.kinds = key_kinds(history)
        self.writers = _writers(history, self.kinds)
        self.committed = _committed(history, self.writers)
        self.out = Inference(self.committed)
        self._reported: set[tuple] = set()
        # per list key: the elements appended by transactions that did not abort
        self.clean: dict[Hashable, set] = defaultdict(set)
        for (key, e), (t, _) in self.writers.items():
            if self.kinds[key] == "list" and t.status is not Status.ABORTED:
                self.clean[key].add(e)

    # -- helpers -----------------------------------------------------------
    def find(self, anomaly: Anomaly, txns: tuple[str, ...], text: str, dedup: tuple | None = None) -> None:
        key = (anomaly, *(dedup if dedup is not None else txns))
        if key in self._reported:
            return
        self._reported.add(key)
        self.out.findings.append(Finding(anomaly, txns, (), text))

    def lost_updates(self, lost: Mapping[tuple[Hashable, Any], list[str]], wrote: str) -> None:
        """A lost update (Berenson et al. 1995, P4): two transactions read one version of a key and
        both then wrote the key; ``lost`` maps (key, version) to who read it and then wrote."""
        for (key, version), txns in lost.items():
            if len(txns) > 1:
                text = f"{_both(txns)} read {key} = {format_value(version)} and then {wrote}"
                self.find(Anomaly.LOST_UPDATE, tuple(txns), text, dedup=(key, version))

    def edge(self, e: Edge) -> None:
        if e.src != e.dst:
            self.out.edges.append(e)

    def writer(self, key: Hashable, v: Any) -> tuple[Txn, bool] | None:
        return self.writers.get((key, v))

    def check_dirty(
        self, t: Txn, key: Hashable, v: Any, seen: Any, last: bool = True
    ) -> tuple[Txn, bool] | None:
        """G1a / G1b / garbage for a read by ``t`` that saw ``v`` (an element or value) of ``key``.

        ``last``: ``v`` is the version read (a register's value, a list's last
        element), not an element further back in the list: only then can the read
        be of an intermediate version (G1b).
        """
        w = self.writer(key, v)
        if w is None:
            shown = format_value(seen)
            self.find(
                Anomaly.GARBAGE,
                (t.name,),
                f"{t.name} read {key} = {shown}, but nobody wrote {format_value(v)}",
            )
            return None
        wt, intermediate = w
        if wt.name == t.name:
            return w
        if wt.status is Status.ABORTED:
            self.find(
                Anomaly.G1A,
                (wt.name, t.name),
                f"{t.name} read {key} = {format_value(seen)}, but {wt.name}, which wrote {format_value(v)}, aborted",
            )
        elif intermediate and last:
            self.find(
                Anomaly.G1B,
                (wt.name, t.name),
                f"{t.name} read {key} = {format_value(seen)}, a version {wt.name} overwrote itself before committing",
            )
        return w

    # -- list keys ---------------------------------------------------------
    def lists(self) -> None:
        reads: dict[Hashable, list[tuple[Txn, tuple]]] = defaultdict(list)
        lost: dict[tuple[Hashable, tuple], list[str]] = defaultdict(list)
        for t in self.history:
            if t.name not in self.committed:
                continue
            own: dict[Hashable, list] = defaultdict(list)
            read_before_write: dict[Hashable, tuple] = {}
            for op in t.ops:
                if self.kinds.get(op.key) != "list" or op.f is Fun.SCAN:
                    continue
                if op.f is Fun.APPEND:
                    if own[op.key] == [] and op.key in read_before_write:
                        lost[(op.key, read_before_write[op.key])].append(t.name)
                    own[op.key].append(op.value)
                    continue
                seen = () if op.value is None else op.value  # never written: the empty list
                if len(set(seen)) < len(seen):
                    self.find(Anomaly.DUPLICATE, (t.name,), f"{t.name} read {op.key} = {format_value(seen)}")
                mine = tuple(own[op.key])
                if mine:
                    if seen[len(seen) - len(mine) :] != mine:
                        self.find(
                            Anomaly.INTERNAL,
                            (t.name,),
                            f"{t.name} appended {format_value(mine)} to {op.key}, then read {format_value(seen)}",
                        )
                        firsts = [i for i, e in enumerate(seen) if e in set(mine)]
                        ext = seen[: firsts[0]] if firsts else seen
                    else:
                        ext = seen[: len(seen) - len(mine)]
                else:
                    ext = seen
                    read_before_write[op.key] = ext
                if ext:
                    elements = set(ext)
                    # Set operations find the rare odd element fast; each is then looked at.
                    for e in (elements - self.clean[op.key]) - {ext[-1]}:
                        self.check_dirty(t, op.key, e, seen, last=False)
                    self.check_dirty(t, op.key, ext[-1], seen, last=True)
                reads[op.key].append((t, ext))
        self.lost_updates(lost, "appended to it")
        for key in sorted((k for k, kind in self.kinds.items() if kind == "list"), key=repr):
            self.list_key(key, reads.get(key, []))

    def list_key(self, key: Hashable, reads: list[tuple[Txn, tuple]]) -> None:
        longest: tuple = max((r for _, r in reads), key=len, default=())
        self.out.orders[key] = longest
        compatible = []
        for t, r in reads:
            if longest[: len(r)] == r:
                compatible.append((t, r))
            else:
                self.find(
                    Anomaly.INCOMPATIBLE_ORDER,
                    (t.name,),
                    f"{t.name} read {key} = {format_value(r)}, which is no prefix of {format_value(longest)}",
                    dedup=(key, r),
                )
        # The committed writers along the order (aborted and garbage elements are skipped).
        chain: list[tuple[Any, str, int]] = []
        for pos, e in enumerate(longest):
            w = self.writer(key, e)
            if w is not None and w[0].name in self.committed:
                chain.append((e, w[0].name, pos))
        for (e1, w1, _), (e2, w2, _) in zip(chain, chain[1:], strict=False):
            if w1 != w2:
                self.edge(Edge(w1, w2, Dep.WW, key, e1, e2, listy=True))
        next_at = {}  # position in longest -> the next committed element at or after it
        j = len(chain)
        for pos in range(len(longest), -1, -1):
            while j > 0 and chain[j - 1][2] >= pos:
                j -= 1
            next_at[pos] = chain[j] if j < len(chain) else None
        for t, r in compatible:
            if r:
                w = self.writer(key, r[-1])
                if w is not None and w[0].name in self.committed:
                    self.edge(Edge(w[0].name, t.name, Dep.WR, key, r[-1], r, listy=True))
            nxt = next_at[len(r)]
            if nxt is not None:
                self.edge(Edge(t.name, nxt[1], Dep.RW, key, r, nxt[0], listy=True))

    # -- register keys -----------------------------------------------------
    def registers(self) -> None:
        succ: dict[Hashable, dict[Any, list[Any]]] = defaultdict(lambda: defaultdict(list))
        has_pred: set[tuple[Hashable, Any]] = set()
        reads: list[tuple[Txn, Hashable, Any, str | None]] = []  # (txn, key, value, scanned prefix)
        lost: dict[tuple[Hashable, Any], list[str]] = defaultdict(list)
        created: dict[Hashable, bool] = {}
        for t in self.history:
            if t.name not in self.committed:
                continue
            prev: dict[Hashable, Any] = {}
            wrote: dict[Hashable, Any] = {}
            for op in t.ops:
                if op.f is Fun.SCAN:
                    found = dict(op.value)
                    for k, v in op.value:
                        self.register_read(t, k, v, wrote, prev, reads, None)
                    for k in self._keys_with_prefix(op.key):
                        if k not in found:
                            self.register_read(t, k, None, wrote, prev, reads, op.key)
                    continue
                if self.kinds.get(op.key) != "register":
                    continue
                if op.f is Fun.READ:
                    self.register_read(t, op.key, op.value, wrote, prev, reads, None)
                    continue
                if op.key in prev:
                    if op.key not in wrote:
                        lost[(op.key, prev[op.key])].append(t.name)
                    succ[op.key][prev[op.key]].append(op.value)
                    has_pred.add((op.key, op.value))
                prev[op.key] = wrote[op.key] = op.value
        for (key, v), w in self.writers.items():
            if self.kinds[key] == "register" and w[0].name in self.committed and (key, v) not in has_pred:
                succ[key][None].append(v)
                created[key] = True
        self.lost_updates(lost, "wrote it")
        for key, steps in succ.items():
            for v, nexts in steps.items():
                if v is None:
                    continue
                w = self.writer(key, v)
                if w is None or w[0].name not in self.committed:
                    continue
                for nv in nexts:
                    self.edge(Edge(w[0].name, self.writers[(key, nv)][0].name, Dep.WW, key, v, nv))
        for t, key, v, prefix in reads:
            if v is not None:
                w = self.writer(key, v)
                if w is not None and w[0].name in self.committed:
                    self.edge(Edge(w[0].name, t.name, Dep.WR, key, v, v))
            for nv in succ.get(key, {}).get(v, ()):
                dst = self.writers[(key, nv)][0].name
                if prefix is None:
                    self.edge(Edge(t.name, dst, Dep.RW, key, v, nv))
                else:
                    self.edge(Edge(t.name, dst, Dep.RW, key, prefix, nv, predicate=True))

    def _keys_with_prefix(self, prefix: str) -> list[Hashable]:
        if not hasattr(self, "_register_keys"):
            self._register_keys = sorted(
                {k for (k, _), w in self.writers.items() if self.kinds[k] == "register"}, key=repr
            )
        return [k for k in self._register_keys if isinstance(k, str) and k.startswith(prefix)]

    def register_read(
        self,
        t: Txn,
        key: Hashable,
        v: Any,
        wrote: dict[Hashable, Any],
        prev: dict[Hashable, Any],
        reads: list[tuple[Txn, Hashable, Any, str | None]],
        prefix: str | None,
    ) -> None:
        if key in wrote:
            if v != wrote[key]:
                self.find(
                    Anomaly.INTERNAL,
                    (t.name,),
                    f"{t.name} wrote {key} = {format_value(wrote[key])}, then read {format_value(v)}",
                )
            return
        if v is not None:
            self.check_dirty(t, key, v, v)
        prev[key] = v
        reads.append((t, key, v, prefix))


def infer(history: History) -> Inference:
    """Versions, dependency edges and direct anomalies of ``history`` (see the module docstring)."""
    inf = _Inferrer(history)
    inf.lists()
    inf.registers()
    return inf.out
