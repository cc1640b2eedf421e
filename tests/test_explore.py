"""labkit.explore: every broken variant's shortest counterexample is found and replays in the
simulator; the correct versions pass within their bounds; fingerprints agree across processes;
the fast search visits exactly the states the naive deep-copying one does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from labkit.explore import Act, Action, Bounds, Walk, bfs, dfs, protocols, random_walk
from labkit.explore import invariants as inv
from labkit.explore import replay as replay_run
from labkit.explore.checks import CHECKS, check
from labkit.explore.naive import naive_bfs

ROOT = Path(__file__).resolve().parent.parent
QUICK = [c for c in CHECKS if not c.slow]
SLOW = [c for c in CHECKS if c.slow]


def _steps(result) -> int:
    return len(result.violation) - result.violation.prefix


# ---------------------------------------------------------------------------
# The catalogue: broken variants give their shortest counterexample, correct ones pass
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("c", [c for c in QUICK if c.broken], ids=lambda c: c.name)
def test_broken_variant_gives_its_shortest_counterexample_which_replays(c):
    result = c.run(progress=False)
    assert result.violation is not None, result.summary()
    assert _steps(result) == c.steps, str(result.violation)
    # Shortest: no run with one step fewer breaks an invariant, and that smaller space is exhausted.
    m = c.model()
    start = () if c.start is None else c.start(m)
    shorter = bfs(
        m,
        c.invariants,
        replace(c.bounds, depth=c.steps - 1),
        start=start,
        progress=False,
    )
    assert shorter.ok and shorter.exhausted, shorter.summary()
    # The run replays in the simulator to the same violation at its last step, and the
    # simulator's nodes are in the states the model checker computed at every step.
    rep = result.replay()
    assert rep.mismatches == []
    assert rep.first_violation is not None
    step, name, message = rep.first_violation
    assert (step, name) == (len(result.violation), result.violation.invariant)
    assert message == result.violation.message


@pytest.mark.parametrize("c", [c for c in QUICK if not c.broken], ids=lambda c: c.name)
def test_correct_version_has_no_violation_within_its_bounds(c):
    result = c.run(progress=False)
    assert result.ok and result.exhausted, result.summary()
    assert result.distinct > 1


@pytest.mark.slow
@pytest.mark.parametrize("c", SLOW, ids=lambda c: c.name)
def test_correct_version_within_larger_bounds(c):
    result = c.run(progress=False)
    assert result.ok and result.exhausted, result.summary()


def test_each_broken_variant_breaks_the_invariant_its_correct_twin_keeps():
    broken = {c.name: c for c in CHECKS if c.broken}
    expected = {
        "Raft election, voting twice": "Election Safety",
        "Raft, the Figure 8 commit rule": "Leader Completeness",
        "quorum register, R = W = 1": "no lost acknowledged write",
        "two-phase commit, decision not logged": "at most one decision",
        "two-phase commit, coordinator crashes": "never blocked",
        "LWW register, physical clocks": "no causal overwrite",
    }
    assert set(broken) == set(expected)
    for name, invariant in expected.items():
        assert broken[name].run(progress=False).violation.invariant == invariant


def test_figure8_counterexample_tells_the_story_of_figure8():
    result = check("Raft, the Figure 8 commit rule").run(progress=False)
    v = result.violation
    assert "leader n2 lacks committed entry 1 (term 1)" in v.message
    states = result.states()
    # n1 led term 3 and committed index 1 (an entry of term 1), then n2 led term 4 without it.
    assert ("committed", 1, 1, 3) in states[-1].memory
    assert states[-1].node("n2").role.value == "leader" and states[-1].node("n2").current_term == 4
    assert states[v.prefix].node("n3").log.last_index == 0  # the start: n3 holds nothing


# ---------------------------------------------------------------------------
# Searches agree with one another and with the naive search
# ---------------------------------------------------------------------------
def test_fast_and_naive_search_visit_the_same_states():
    m = protocols.raft(3)
    b = Bounds(limits={"term": 1}, duplicates=None)
    fast = bfs(m, inv.RAFT_INVARIANTS, b, symmetry=False, progress=False)
    naive = naive_bfs(m, inv.RAFT_INVARIANTS, b)
    assert fast.exhausted and naive.exhausted
    assert (fast.distinct, fast.depth) == (naive.distinct, naive.depth)
    assert fast.explored == naive.explored
    reduced = bfs(m, inv.RAFT_INVARIANTS, b, progress=False)
    assert reduced.distinct < fast.distinct  # symmetry reduction merges renamed states


@pytest.mark.parametrize("name", ["Raft election, voting twice", "two-phase commit, decision not logged"])
def test_naive_search_finds_a_counterexample_as_short(name):
    c = check(name)
    naive = naive_bfs(c.model(), c.invariants, c.bounds)
    assert naive.violation is not None and len(naive.violation[2]) == c.steps
    assert naive.violation[0] == c.run(progress=False).violation.invariant


def test_dfs_and_random_walks_find_the_bug_too():
    c = check("Raft election, voting twice")
    deep = dfs(c.model(), c.invariants, c.bounds, depth=10, progress=False)
    assert deep.violation is not None and len(deep.violation) >= c.steps
    assert deep.replay().first_violation[1] == "Election Safety"
    walks = random_walk(c.model(), c.invariants, c.bounds, walks=200, depth=12, seed=3, progress=False)
    assert walks.violation is not None and not walks.exhausted
    again = random_walk(c.model(), c.invariants, c.bounds, walks=200, depth=12, seed=3, progress=False)
    assert again.violation.actions == walks.violation.actions


def test_a_learners_lab_server_is_checked_too():
    sys.path.insert(0, str(ROOT))
    from tests import lab_solutions

    broken = lab_solutions.planted("voting twice in a term")
    m = protocols.raft(3, node_factory=lambda nid, peers, config: broken(nid, peers))
    result = bfs(m, inv.RAFT_INVARIANTS, Bounds(limits={"term": 1}, duplicates=None), progress=False)
    assert result.violation is not None and len(result.violation) == 6
    assert result.replay().first_violation[1] == "Election Safety"
    good = lab_solutions.solution()
    m = protocols.raft(3, node_factory=lambda nid, peers, config: good(nid, peers))
    ok = bfs(m, inv.RAFT_INVARIANTS, Bounds(limits={"term": 1}, duplicates=None), progress=False)
    assert ok.ok and ok.exhausted


# ---------------------------------------------------------------------------
# Determinism across processes
# ---------------------------------------------------------------------------
FINGERPRINTS = """
import json
from labkit.explore.checks import check
out = {}
for name in ("Raft election, voting twice", "quorum register, R = W = 1", "LWW register, physical clocks"):
    r = check(name).run(progress=False)
    out[name] = [r.explored, r.distinct, [str(a) for a in r.violation.actions],
                 [s.fingerprint for s in r.states()]]
print(json.dumps(out))
"""


def test_results_and_fingerprints_are_the_same_in_every_process():
    runs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", FINGERPRINTS],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]
    prints = runs[0]["Raft election, voting twice"][3]
    assert len(set(prints)) == len(prints)  # each state along the run has its own fingerprint


def test_symmetric_states_share_a_fingerprint():
    m = protocols.raft(3)
    walk = Walk(m, inv.RAFT_INVARIANTS)
    walk.do(Action(Act.TIMEOUT, "n1", timer="election"))
    one = walk.state.fingerprint
    walk.undo()
    walk.do(Action(Act.TIMEOUT, "n3", timer="election"))
    assert walk.state.fingerprint == one


# ---------------------------------------------------------------------------
# The explorer's walk
# ---------------------------------------------------------------------------
def test_walk_steps_through_a_counterexample_undoes_and_jumps():
    result = check("Raft election, voting twice").run(progress=False)
    walk = Walk.from_result(result)
    assert walk.violations() == []
    first = walk.next()
    assert first == result.violation.actions[0] and walk.path == [first]
    assert walk.undo() and not walk.undo()
    walk.do(first)
    assert walk.on_counterexample
    walk.jump()
    assert [name for name, _ in walk.violations()] == ["Election Safety"]
    assert walk.on_counterexample
    labels = [a.button for a in walk.enabled()]
    assert any(label.startswith("deliver RequestVote") for label in labels)


def test_walk_refuses_an_action_the_state_does_not_enable():
    walk = Walk(protocols.raft(3))
    with pytest.raises(ValueError):
        walk.do(Action(Act.DELIVER, "n2", "n1", "no such message"))


def test_replay_refuses_a_list_that_is_not_a_run():
    m = protocols.raft(3)
    with pytest.raises(ValueError):
        replay_run(m, [Action(Act.DELIVER, "n2", "n1", "no such message")])


# ---------------------------------------------------------------------------
# Bounds and bad input
# ---------------------------------------------------------------------------
def test_bounds_limit_the_search():
    m = protocols.raft(3)
    small = bfs(m, inv.RAFT_INVARIANTS, Bounds(limits={"term": 1}, duplicates=None), progress=False)
    capped = bfs(
        m, inv.RAFT_INVARIANTS, Bounds(limits={"term": 2}, duplicates=None), max_states=500, progress=False
    )
    assert small.exhausted and not capped.exhausted and 500 <= capped.distinct <= 501
    assert bfs(m, inv.RAFT_INVARIANTS, Bounds(depth=0), progress=False).distinct == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: Bounds(crashes=-1),
        lambda: Bounds(limits={"term": "two"}),
        lambda: bfs(protocols.raft(3), inv.RAFT_INVARIANTS, Bounds(limits={"height": 2})),
        lambda: bfs(protocols.raft(3), "not an invariant"),
        lambda: protocols.raft(0),
        lambda: protocols.quorum_register(3, r=4),
        lambda: check("no such check"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(make):
    with pytest.raises((ValueError, TypeError, KeyError)):
        make()


def test_a_node_holding_a_lambda_over_itself_is_refused():
    # A copy of such a node would still call into the original through the lambda's closure.
    from labkit.explore.freeze import freeze
    from labkit.sim import Node

    class Closing(Node):
        def __init__(self, node_id: str) -> None:
            super().__init__(node_id)
            self.handler = lambda: self.node_id

    with pytest.raises(TypeError, match="closes over"):
        freeze(Closing("n1"))


def test_a_walk_takes_over_a_paused_simulator_run():
    from labkit.raft import RaftCluster

    cluster = RaftCluster(3, seed=1)
    assert cluster.run_until(lambda: cluster.leader() is not None)
    sim = cluster.sim
    flying = sim.in_flight()
    walk = Walk.from_simulator(sim, protocols.raft(3), inv.RAFT_INVARIANTS)
    assert sorted(map(repr, walk.messages())) == sorted(map(repr, flying)) and flying
    rows = {r["node"]: r for r in walk.nodes()}
    assert rows[cluster.leader()]["role"] == "leader"
    deliver = next(a for a in walk.enabled() if a.kind is Act.DELIVER)
    walk.do(deliver)
    assert len(walk.messages()) < len(flying) + 3 and walk.violations() == []
    assert sim.in_flight() == flying  # the run itself is not changed


def test_an_invariant_that_returns_false_says_in_which_state_and_that_it_returned_false():
    from labkit.raft.node import Role

    one_term = Bounds(limits={"term": 1}, duplicates=None)
    at_start = bfs(protocols.raft(3), {"never": lambda state: False}, one_term, progress=False)
    assert at_start.summary().endswith(
        "explored 1 state (1 distinct), depth 0, "
        f"{at_start.seconds:.2f} s: never violated in the start state, before any step: never returned False for "
        "this state (n1: role follower, term 0; n2: role follower, term 0; n3: role follower, term 0; "
        "0 messages in flight); return a list of what is wrong to be told why."
    )

    def no_candidate(state) -> bool:
        return all(s.role is not Role.CANDIDATE for s in state.live().values())

    later = bfs(protocols.raft(3), {"no candidate": no_candidate}, one_term, progress=False)
    assert str(later.violation).startswith(
        "no candidate violated after 1 step: no candidate returned False for this state (n1: role candidate, "
        "term 1; n2: role follower, term 0; n3: role follower, term 0; 2 messages in flight)"
    )
    assert "explored 2 states (2 distinct)" in later.summary()
