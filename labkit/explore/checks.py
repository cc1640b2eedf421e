"""The ready-made checks: each protocol's correct version within its bounds, and each broken variant.

A :class:`Check` names a model, the invariants it must keep, the bounds of
the search and (for Figure 8) the run the search starts from. The tests,
notebook 12 and ``benchmarks/bench_explore.py`` run these same checks, so
the bounds stated here are the ones the course's claims rest on:

========================  =============================  ===============================
protocol                  correct version                broken variant
========================  =============================  ===============================
Raft election             no violation (terms ≤ 1, 2)    voting twice in a term
Raft log replication      no violation (Figure 8 start)  the Figure 8 commit rule
quorum register           R = W = 2 of N = 3             R = W = 1 loses a write
atomic commit             2PC logs its decision          2PC decides in memory only
blocking                  the saga never blocks          2PC blocks when its coordinator
                                                         crashes
LWW register              hybrid logical clocks          physical clocks lose a write
========================  =============================  ===============================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.clocks.lww import Stamping
from labkit.explore import invariants as inv
from labkit.explore import protocols
from labkit.explore.model import Action, Bounds, Model
from labkit.explore.search import Invariant, Result, bfs
from labkit.raft.bugs import Bug

__all__ = ["Check", "CHECKS", "check"]


@dataclass(frozen=True, slots=True)
class Check:
    """One search: ``model()`` builds the model, ``start(model)`` the run to start from.

    ``broken``: True for a deliberately broken variant, whose search must
    find a counterexample of ``steps`` actions (counted after the start).
    """

    name: str
    model: Callable[[], Model]
    invariants: Mapping[str, Invariant]
    bounds: Bounds
    broken: bool
    steps: int | None = None
    start: Callable[[Model], Sequence[Action]] | None = None
    slow: bool = False  # more than a few seconds: the tests run it only under -m slow
    notes: str = field(default="", compare=False)

    def run(self, **kwargs: Any) -> Result:
        """Breadth-first search of this check (``kwargs`` go to :func:`labkit.explore.bfs`)."""
        m = self.model()
        start = () if self.start is None else self.start(m)
        return bfs(m, self.invariants, self.bounds, start=start, **kwargs)


RAFT = inv.RAFT_INVARIANTS
ELECTION = Bounds(limits={"term": 1}, duplicates=None)
FIGURE8 = Bounds(limits={"term": 4}, fires={"heartbeat": 0})


def _figure8(bugs: tuple[Bug, ...]) -> Callable[[], Model]:
    return lambda: protocols.raft(3, bugs=bugs, commands=["A", "B"])


# fmt: off
CHECKS: tuple[Check, ...] = (
    Check("Raft election", lambda: protocols.raft(3), RAFT, ELECTION, False),
    Check("Raft election, voting twice", lambda: protocols.raft(3, bugs=[Bug.VOTE_TWICE]), RAFT, ELECTION,
          True, 6),
    Check("Raft log replication, one command", lambda: protocols.raft(3, commands=["A"]), RAFT, ELECTION,
          False),
    Check("Raft election, terms ≤ 2", lambda: protocols.raft(3), RAFT,
          Bounds(limits={"term": 2}, duplicates=None), False, slow=True),
    Check("Raft log replication from Figure 8 (b)", _figure8(()), RAFT, FIGURE8, False,
          start=protocols.figure8_start, slow=True),
    Check("Raft, the Figure 8 commit rule", _figure8((Bug.COMMIT_PRIOR_TERM,)), RAFT, FIGURE8, True, 11,
          start=protocols.figure8_start),
    Check("quorum register, R = W = 2", lambda: protocols.quorum_register(3, 2, 2),
          {"no lost acknowledged write": inv.no_lost_acknowledged_write}, Bounds(), False),
    Check("quorum register, R = W = 1", lambda: protocols.quorum_register(3, 1, 1),
          {"no lost acknowledged write": inv.no_lost_acknowledged_write}, Bounds(), True, 10),
    Check("two-phase commit", lambda: protocols.two_phase_commit(),
          {"at most one decision": inv.at_most_one_decision},
          Bounds(crashes=1, restarts=1, fires={"resend/order-1": 0, "votes/order-1": 0}), False),
    Check("two-phase commit, decision not logged",
          lambda: protocols.two_phase_commit(coordinator=protocols.VolatileDecision),
          {"at most one decision": inv.at_most_one_decision},
          Bounds(crashes=1, restarts=1, fires={"resend/order-1": 0, "votes/order-1": 0}), True, 9),
    Check("saga, coordinator crashes", protocols.saga,
          {"never blocked": inv.never_blocked, "at most one decision": inv.at_most_one_decision},
          Bounds(crashes=1, restarts=1, fires={"order-1": 1}), False),
    Check("two-phase commit, coordinator crashes", lambda: protocols.two_phase_commit(),
          {"never blocked": inv.never_blocked}, Bounds(crashes=1, fires={"resend/order-1": 0}), True, 3),
    Check("LWW register, hybrid logical clocks", lambda: protocols.lww_register(Stamping.HLC),
          {"no causal overwrite": inv.no_causal_overwrite}, Bounds(), False),
    Check("LWW register, physical clocks", lambda: protocols.lww_register(Stamping.PHYSICAL),
          {"no causal overwrite": inv.no_causal_overwrite}, Bounds(), True, 3),
)
# fmt: on


def check(name: str) -> Check:
    """The check called ``name``; ``KeyError`` listing the names if there is none."""
    for c in CHECKS:
        if c.name == name:
            return c
    raise KeyError(f"no check called {name!r}; the checks are {[c.name for c in CHECKS]}")
