"""Figure 8 of the extended Raft paper, step by step (§5.4.2).

Figure 8 shows why a leader must not decide that an entry of an *earlier*
term is committed just because a majority stores it. :class:`Figure8` builds
the figure's five servers and walks through its stages with forced elections
(``RaftCluster.start_election``) and partitions, so the notebook and the tests
can look at the logs after each stage:

(a) S1 leads term 2 and replicates index 2 to S2 only;
(b) S1 crashes; S5 wins term 3 (votes from S3, S4) and writes index 2 locally;
(c) S5 crashes; S1 restarts, wins term 4 and copies its term-2 entry to S3:
    now a majority (S1, S2, S3) stores it, but it is *not* committed;
(d) S1 crashes; S5 restarts and wins (its last term 3 beats term 2), then
    overwrites index 2 everywhere. Had S1 committed the term-2 entry in (c),
    a committed entry would now be gone: the ``Bug.COMMIT_PRIOR_TERM``
    variant does exactly that, and the invariant monitor reports a State
    Machine Safety violation.

New leaders normally append a no-op (§8), which hides the problem; the
scenario therefore runs with ``noop=False``.
"""

from __future__ import annotations

from collections.abc import Iterable

from labkit.raft.bugs import Bug
from labkit.raft.cluster import RaftCluster
from labkit.raft.node import Role

__all__ = ["Figure8"]


class Figure8:
    """The Figure 8 scenario on a 5-server cluster; call the stages in order."""

    def __init__(self, seed: int = 13, bugs: Iterable[Bug] = ()) -> None:
        self.cluster = RaftCluster(n=5, seed=seed, noop=False, bugs=bugs, strict=False)
        self.stage = ""

    def _win(self, node: str, tries: int = 3) -> None:
        c = self.cluster
        for _ in range(tries):
            c.start_election(node)
            c.sim.run_for(0.03)
            if c.node(node).role is Role.LEADER:
                return
        raise RuntimeError(f"{node} did not win an election in the Figure 8 script")

    def _settle(self, command: str) -> None:
        c = self.cluster
        c.submit(command)
        if not c.run_until(lambda: all(command in c.applied(n) for n in c.ids if c.is_up(n)), 2.0):
            raise RuntimeError(f"{command!r} was not applied everywhere")

    def stage_a(self) -> RaftCluster:
        """S1 leads term 2 with index 1 (term 1) everywhere and index 2 (term 2) on S1, S2."""
        c = self.cluster
        s1, s2 = c.ids[:2]
        c.sim.run_for(0.01)
        self._win(s1)
        self._settle("x@t1")
        self._win(s1)
        c.partition([s1, s2])
        c.submit("y@t2", node=s1)
        c.sim.run_for(0.02)
        self.stage = "a"
        return c

    def stage_b(self) -> RaftCluster:
        """S1 crashes; S5 wins term 3 and appends index 2 (term 3) on itself only."""
        c = self.cluster
        s1, s2, s3, s4, s5 = c.ids
        c.crash(s1)
        c.partition([s1, s2], [s3, s4, s5])
        self._win(s5)
        c.partition([s5])
        c.submit("z@t3", node=s5)
        c.sim.run_for(0.005)
        self.stage = "b"
        return c

    def stage_c(self) -> RaftCluster:
        """S5 crashes; S1 restarts, wins term 4 and copies index 2 (term 2) to S3."""
        c = self.cluster
        s1, s2, s3, s4, s5 = c.ids
        c.crash(s5)
        c.restart(s1)
        c.partition([s1, s2, s3], [s4, s5])
        c.sim.run_for(0.005)
        self._win(s1)
        c.sim.run_for(0.03)  # heartbeats carry the term-2 entry to S3
        self.stage = "c"
        return c

    def stage_d(self) -> RaftCluster:
        """S1 crashes; S5 restarts, wins and overwrites index 2 with its term-3 entry."""
        c = self.cluster
        s1, s2, s3, s4, s5 = c.ids
        c.crash(s1)
        c.restart(s5)
        c.partition([s1], [s2, s3, s4, s5])
        c.sim.run_for(0.005)
        self._win(s5)
        self._settle("w@t5")
        self.stage = "d"
        return c

    def run(self) -> RaftCluster:
        """All four stages."""
        for step in (self.stage_a, self.stage_b, self.stage_c, self.stage_d):
            step()
        return self.cluster
