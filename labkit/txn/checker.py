"""An anomaly checker for transaction histories, in the manner of Elle.

Kingsbury & Alvaro ("Elle: Inferring Isolation Anomalies from Experimental
Observations", VLDB 2020) showed that a black-box history is enough to find
isolation anomalies, *if* the workload is chosen so that reads reveal which
writes they saw. This module follows their plan, in two phases:

1. **Graph build** (:mod:`~labkit.txn.infer`): from the reads, infer the
   version order of every key and Adya's dependencies between committed
   transactions (Adya 1999, ch. 3, the Direct Serialization Graph):

   * ``T1 -ww-> T2``: T2 installed the version of a key right after T1's;
   * ``T1 -wr-> T2``: T2 read a version T1 installed;
   * ``T1 -rw-> T2``: T1 read a version, and T2 installed the next one
     (an *anti-dependency*: T1 did not see T2's write).

   Some anomalies need no graph at all: reading an aborted write (G1a), an
   intermediate write (G1b), two transactions reading the same version and
   both writing it (a lost update, Berenson et al. 1995 §4.1, P4).

2. **Cycle search** (this module): a serializable history has an acyclic
   graph (Adya 1999, ch. 3: PL-3 proscribes G1 and G2). Every cycle is named
   by the edges it needs, with Adya's phenomena, most specific name first as
   Elle does:

   * **G0** (write cycle): ww edges only: dirty writes;
   * **G1c** (circular information flow): ww and wr edges, at least one wr;
   * **G-single** (single anti-dependency cycle, Adya ch. 4, PL-2+): exactly
     one rw edge: read skew;
   * **G2-item** (item anti-dependency cycle): two or more rw edges: write skew;
   * **G2**: two or more rw edges, one of them *predicate* (a scan missed a
     key another transaction created): phantoms.

   Strictly, Adya's G1c includes G0 and G2-item includes G-single; like Elle,
   a cycle is reported under the narrowest class that fits it.

The search: strongly connected components of the whole graph first (no
component, no cycle: a serializable history is done in one linear pass). For
each class, components of the subgraph the class may use, then a breadth-first
search through candidate edges gives a *shortest* cycle through each
candidate; the shortest found is the explanation. In a huge component the
number of candidates tried is bounded (``budget``), so a reported cycle is
always real but, there, not necessarily the shortest of all.

>>> from labkit.txn import parse_history, check
>>> r = check(parse_history("T1: r x [], a y 1", "T2: r y [], a x 2", "T3: r x [2], r y [1]"))
>>> sorted(a.value for a in r.anomalies)
['G2-item']
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.txn.history import History, Txn, as_history, format_value

__all__ = ["Anomaly", "Dep", "Edge", "Finding", "CheckResult", "check", "DDIA_NAMES"]


class Anomaly(Enum):
    """What the checker can find, by the names of Adya (1999) and Elle (2020)."""

    G0 = "G0"
    G1A = "G1a"
    G1B = "G1b"
    G1C = "G1c"
    G_SINGLE = "G-single"
    G2_ITEM = "G2-item"
    G2 = "G2"
    LOST_UPDATE = "lost-update"
    INCOMPATIBLE_ORDER = "incompatible-order"
    DUPLICATE = "duplicate-elements"
    INTERNAL = "internal"
    GARBAGE = "garbage-read"

    def __str__(self) -> str:
        return self.value


DDIA_NAMES: dict[Anomaly, str] = {
    Anomaly.G0: "dirty write",
    Anomaly.G1A: "dirty read of an aborted write",
    Anomaly.G1B: "dirty read of an intermediate write",
    Anomaly.G1C: "circular information flow",
    Anomaly.G_SINGLE: "read skew",
    Anomaly.G2_ITEM: "write skew",
    Anomaly.G2: "phantom: write skew through a predicate",
    Anomaly.LOST_UPDATE: "lost update",
    Anomaly.INCOMPATIBLE_ORDER: "two reads disagree on a list's order",
    Anomaly.DUPLICATE: "an element read twice in one list",
    Anomaly.INTERNAL: "a transaction did not see its own write",
    Anomaly.GARBAGE: "a read of a value nobody wrote",
}
"""Each class in the words of DDIA ch. 7 (the name a practitioner would use)."""

CYCLE_CLASSES = (Anomaly.G0, Anomaly.G1C, Anomaly.G_SINGLE, Anomaly.G2_ITEM, Anomaly.G2)


class Dep(Enum):
    """A dependency edge of Adya's Direct Serialization Graph."""

    WW = "ww"
    WR = "wr"
    RW = "rw"


@dataclass(frozen=True, slots=True)
class Edge:
    """``src -dep-> dst`` on ``key``; ``a`` belongs to ``src``, ``b`` to ``dst``.

    * ww: ``a`` is src's version, ``b`` dst's version, the next one;
    * wr: ``a`` is src's version, ``b`` what dst's read returned;
    * rw: ``a`` is what src's read returned, ``b`` dst's version, the next one.
      For a predicate anti-dependency ``a`` is the scanned prefix.

    On a list key a version is named by its element (the list up to it).
    """

    src: str
    dst: str
    dep: Dep
    key: Hashable
    a: Any = None
    b: Any = None
    listy: bool = False
    predicate: bool = False

    @property
    def label(self) -> str:
        """Short label for pictures: ``"rw x"``."""
        return f"{self.dep.value} {self.key}" + (" (predicate)" if self.predicate else "")

    def describe(self) -> str:
        """One sentence saying why the edge is there."""
        s, d, k, a, b = self.src, self.dst, self.key, self.a, self.b
        if self.dep is Dep.WW:
            if self.listy:
                return f"{s} appended {a} to {k}, and {d} appended {b} right after it"
            return f"{s} wrote {k} = {a}, and {d} overwrote it with {b}"
        if self.dep is Dep.WR:
            if self.listy:
                return f"{d} read {k} = {format_value(b)}, which ends with {s}'s append of {a}"
            return f"{d} read {k} = {format_value(b)}, written by {s}"
        if self.predicate:
            return f"{s}'s scan of '{a}' did not see {k}, which {d} created ({k} = {format_value(b)})"
        if self.listy:
            return f"{s} read {k} = {format_value(a)}, and {d} appended {b}, the next element"
        return f"{s} read {k} = {format_value(a)}, and {d} overwrote that version with {b}"

    def __str__(self) -> str:
        return f"{self.src} -{self.dep.value} {self.key}-> {self.dst}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly: its class, the transactions involved, the cycle if any, and why."""

    anomaly: Anomaly
    txns: tuple[str, ...]
    cycle: tuple[Edge, ...] = ()
    text: str = ""

    def explain(self) -> str:
        head = f"{self.anomaly.value} ({DDIA_NAMES[self.anomaly]})"
        if not self.cycle:
            return f"{head}: {self.text}"
        path = " -> ".join([e.src for e in self.cycle] + [self.cycle[0].src])
        lines = [f"{head}: the cycle {path}"]
        lines += [f"  {e.src} -{e.dep.value}-> {e.dst}: {e.describe()}" for e in self.cycle]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.explain()


@dataclass(frozen=True)
class CheckResult:
    """What :func:`check` found.

    ``findings`` holds one :class:`Finding` per anomaly found (per class, one
    per component of the graph, capped); ``edges`` every inferred dependency;
    ``timings`` the seconds spent per phase (``"graph build"``, ``"cycle search"``).
    ``complete`` is False when the cycle search for some class gave up in a huge
    component before finding a cycle (see ``budget`` in :func:`check`).
    """

    history: History
    edges: tuple[Edge, ...]
    findings: tuple[Finding, ...]
    timings: dict[str, float] = field(default_factory=dict)
    complete: bool = True

    @property
    def ok(self) -> bool:
        """True when no anomaly was found (the history could be serializable)."""
        return not self.findings

    @property
    def anomalies(self) -> frozenset[Anomaly]:
        return frozenset(f.anomaly for f in self.findings)

    def first(self, anomaly: Anomaly) -> Finding | None:
        """The first finding of that class, or None."""
        return next((f for f in self.findings if f.anomaly is anomaly), None)

    @property
    def cycle(self) -> tuple[Edge, ...]:
        """The cycle of the first cyclic finding (empty if none): the explanation to draw."""
        for a in CYCLE_CLASSES:
            f = self.first(a)
            if f is not None:
                return f.cycle
        return ()

    def explain(self) -> str:
        if self.ok:
            n = sum(t.committed for t in self.history)
            return f"no anomaly: {n} committed transactions, {len(self.edges)} dependencies, no cycle"
        return "\n".join(f.explain() for f in self.findings)

    def __str__(self) -> str:
        return self.explain()


# ---------------------------------------------------------------------------
# Graph algorithms on integer nodes
# ---------------------------------------------------------------------------
Adj = list[list[int]]


def _sccs(nodes: Iterable[int], succ: Callable[[int], Iterable[int]]) -> list[list[int]]:
    """Tarjan's strongly connected components, iteratively; reverse topological order."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(succ(root)))]
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(succ(w))))
                    advanced = True
                    break
                if w in on_stack and index[w] < low[v]:
                    low[v] = index[w]
            if advanced:
                continue
            work.pop()
            if work and low[v] < low[work[-1][0]]:
                low[work[-1][0]] = low[v]
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
    return out


class _Graph:
    """Committed transactions as integers 0..n-1, one adjacency set per edge kind.

    ``rw`` holds item anti-dependencies, ``rwp`` predicate ones that have no
    item anti-dependency beside them. ``rep`` keeps, per (src, dst, kind), the
    first edge inferred: the one an explanation shows.
    """

    KINDS = ("ww", "wr", "rw", "rwp")

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.index = {n: i for i, n in enumerate(names)}
        n = len(names)
        self.adj: dict[str, list[set[int]]] = {k: [set() for _ in range(n)] for k in self.KINDS}
        self.rep: dict[tuple[int, int, str], Edge] = {}

    def add(self, e: Edge) -> None:
        i, j = self.index[e.src], self.index[e.dst]
        kind = "rwp" if e.predicate else e.dep.value
        if kind == "rwp" and j in self.adj["rw"][i]:
            return
        if kind == "rw" and j in self.adj["rwp"][i]:
            self.adj["rwp"][i].discard(j)
        self.adj[kind][i].add(j)
        self.rep.setdefault((i, j, kind), e)

    def succ(self, kinds: tuple[str, ...], allowed: set[int] | None = None) -> Callable[[int], list[int]]:
        lists = [self.adj[k] for k in kinds]

        def f(i: int) -> list[int]:
            out = sorted(set().union(*(a[i] for a in lists)))
            return out if allowed is None else [j for j in out if j in allowed]

        return f

    def edge(self, i: int, j: int, kinds: tuple[str, ...]) -> tuple[Edge, str]:
        for k in kinds:
            if j in self.adj[k][i]:
                return self.rep[(i, j, k)], k
        raise KeyError((i, j, kinds))


def _bfs(
    g: _Graph, start: int, goal: int, kinds: tuple[str, ...], allowed: set[int], need_rw: bool
) -> tuple[list[tuple[int, int, str]] | None, int]:
    """Shortest path start -> goal over edges of ``kinds`` inside ``allowed``.

    With ``need_rw`` the path must use at least one rw edge (item or predicate):
    the search runs over (node, used-an-rw-edge) pairs. Returns the path as
    (src, dst, kind) hops, or None, and the number of nodes visited.
    """
    adj = [(k, g.adj[k]) for k in kinds]
    start_state = (start, False)
    parent: dict[tuple[int, bool], tuple[tuple[int, bool], str] | None] = {start_state: None}
    queue = deque([start_state])
    visited = 0
    target = (goal, True) if need_rw else (goal, False)
    while queue:
        state = queue.popleft()
        visited += 1
        node, flag = state
        for kind, a in adj:
            nflag = flag or (need_rw and kind in ("rw", "rwp"))
            for j in sorted(a[node]):
                if j not in allowed:
                    continue
                nxt = (j, nflag)
                if nxt in parent:
                    continue
                parent[nxt] = (state, kind)
                if nxt == target:
                    hops = []
                    cur = nxt
                    while parent[cur] is not None:
                        prev, k = parent[cur]  # type: ignore[misc]
                        hops.append((prev[0], cur[0], k))
                        cur = prev
                    return hops[::-1], visited
                queue.append(nxt)
    return None, visited


def _cycle_edges(
    g: _Graph, first: tuple[int, int, str], path: list[tuple[int, int, str]]
) -> tuple[Edge, ...]:
    return tuple(g.rep[(i, j, k)] for i, j, k in [first, *path])


def _classify(cycle: tuple[Edge, ...]) -> Anomaly:
    rw = [e for e in cycle if e.dep is Dep.RW]
    if not rw:
        return Anomaly.G1C if any(e.dep is Dep.WR for e in cycle) else Anomaly.G0
    if len(rw) == 1:
        return Anomaly.G_SINGLE
    return Anomaly.G2 if any(e.predicate for e in rw) else Anomaly.G2_ITEM


@dataclass
class _Search:
    """Cycle search with a budget of BFS work per class and component."""

    GIVE_UP = 5  # with no cycle found yet, stop after GIVE_UP * budget steps

    g: _Graph
    budget: int
    max_findings: int
    findings: list[Finding] = field(default_factory=list)
    gave_up: bool = False

    def shortest(
        self,
        candidates: Iterable[tuple[int, int, str]],
        kinds: tuple[str, ...],
        allowed: set[int],
        need_rw: bool,
    ) -> tuple[Edge, ...] | None:
        """The shortest cycle ``i -> j`` + path ``j ~> i`` over the candidates (within budget)."""
        best: tuple[Edge, ...] | None = None
        work = 0
        for i, j, kind in candidates:
            if work >= self.budget and (best is not None or work >= self.GIVE_UP * self.budget):
                if best is None:
                    self.gave_up = True
                break
            path, visited = _bfs(self.g, j, i, kinds, allowed, need_rw)
            work += visited
            if path is None or len({h[0] for h in path} | {i}) <= len(path):
                continue  # no path, or a closed walk through a node twice: not a cycle
            cyc = _cycle_edges(self.g, (i, j, kind), path)
            if best is None or len(cyc) < len(best):
                best = cyc
                if len(best) == 2:
                    break
        return best

    def report(self, cycle: tuple[Edge, ...] | None) -> None:
        if cycle is None:
            return
        anomaly = _classify(cycle)
        if sum(f.anomaly is anomaly for f in self.findings) >= self.max_findings:
            return
        self.findings.append(Finding(anomaly, tuple(e.src for e in cycle), cycle))

    def run(self) -> None:
        g = self.g
        n = len(g.names)
        full = _sccs(range(n), g.succ(_Graph.KINDS))
        for comp in sorted((c for c in full if len(c) > 1), key=min):
            self.component(set(comp))

    def _edges_within(self, kind: str, allowed: set[int]) -> list[tuple[int, int, str]]:
        a = self.g.adj[kind]
        return [(i, j, kind) for i in sorted(allowed) for j in sorted(a[i]) if j in allowed]

    def component(self, comp: set[int]) -> None:
        g = self.g
        # G0: cycles of ww edges only.
        for sub in _sccs(sorted(comp), g.succ(("ww",), comp)):
            if len(sub) > 1:
                s = set(sub)
                self.report(self.shortest(self._edges_within("ww", s), ("ww",), s, False))
        # G1c: cycles of ww and wr edges through at least one wr edge.
        dep_sccs = _sccs(sorted(comp), g.succ(("ww", "wr"), comp))
        for sub in dep_sccs:
            if len(sub) > 1:
                s = set(sub)
                self.report(self.shortest(self._edges_within("wr", s), ("ww", "wr"), s, False))
        # G-single: one rw edge i -> j, and a path j ~> i of ww/wr edges. Which
        # rw edges close such a cycle is read off reachability between the
        # ww/wr components (bitsets, in reverse topological order).
        comp_of = {v: c for c, sub in enumerate(dep_sccs) for v in sub}
        reach = [0] * len(dep_sccs)
        for c, sub in enumerate(dep_sccs):  # Tarjan emits successors first
            bits = 1 << c
            for v in sub:
                for j in g.adj["ww"][v] | g.adj["wr"][v]:
                    if j in comp and comp_of[j] != c:
                        bits |= reach[comp_of[j]]
            reach[c] = bits
        single = [
            e
            for kind in ("rw", "rwp")
            for e in self._edges_within(kind, comp)
            if reach[comp_of[e[1]]] >> comp_of[e[0]] & 1
        ]
        self.report(self.shortest(single, ("ww", "wr"), comp, False))
        # G2-item: an item rw edge and a path back with at least one more item rw edge.
        self.report(self.shortest(self._edges_within("rw", comp), ("ww", "wr", "rw"), comp, True))
        # G2: as G2-item, through a predicate anti-dependency.
        self.report(self.shortest(self._edges_within("rwp", comp), _Graph.KINDS, comp, True))


def check(history: Iterable[Txn], *, budget: int = 200_000, max_findings: int = 10) -> CheckResult:
    """Infer dependencies, find anomalies and cycles in ``history`` (see the module docstring).

    ``budget`` bounds the breadth-first search work per anomaly class and graph
    component once one cycle has been found (more work, shorter explanations);
    ``max_findings`` caps the findings kept per class.
    """
    from labkit.txn.infer import infer

    h = as_history(history)
    valid.integer("budget", budget, ge=1, note="breadth-first search steps")
    valid.integer("max_findings", max_findings, ge=1)
    t0 = time.perf_counter()
    inferred = infer(h)
    committed = [t.name for t in h if t.name in inferred.committed]
    g = _Graph(committed)
    for e in inferred.edges:
        g.add(e)
    t1 = time.perf_counter()
    search = _Search(g, budget, max_findings)
    search.run()
    t2 = time.perf_counter()
    findings = tuple(inferred.findings) + tuple(search.findings)
    timings = {"graph build": t1 - t0, "cycle search": t2 - t1}
    return CheckResult(h, tuple(inferred.edges), findings, timings, complete=not search.gave_up)
