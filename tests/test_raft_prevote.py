"""PreVote and CheckQuorum (Ongaro's dissertation §9.6, §6.2 and §4.2.3), tested like a lab.

Two disruptions of plain Raft, measured with the features off (they happen)
and on (they do not):

* a follower cut off keeps timing out and raising its term; when it comes
  back, its term deposes a healthy leader (PreVote keeps its term where it was);
* a leader cut off in a minority keeps leading and accepting commands it can
  never commit (CheckQuorum makes it step down within about an election timeout).
"""

from __future__ import annotations

import random

import pytest

from labkit.raft import PreVote, RaftCluster, RequestVote, Role
from labkit.raft.scenarios import leader_in_minority, rejoining_follower
from labkit.raft.schedules import FAULT_KINDS, check_history, random_schedule, run_schedule
from labkit.sim import Kind

SEEDS = (3, 7, 11)


def elect(c: RaftCluster) -> str:
    assert c.run_until(lambda: c.leader() is not None, 3.0), "no leader elected"
    return c.leader()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_rejoining_follower_deposes_the_leader_without_pre_vote(seed):
    r = rejoining_follower(pre_vote=False, seed=seed, away=2.0)
    # Away for 2 s with election timeouts of 150-300 ms: many elections, each a new term.
    assert r.term_on_return >= r.leader_term + 5, r
    assert r.deposed, "its higher term should have made the leader step down"
    assert r.gap > 0.15, f"an election should have left clients unanswered for a while, gap {r.gap:.3f} s"


@pytest.mark.parametrize("seed", SEEDS)
def test_pre_vote_keeps_the_term_and_the_leader(seed):
    r = rejoining_follower(pre_vote=True, seed=seed, away=2.0)
    assert r.term_on_return == r.leader_term, "a server that cannot win must not raise its term"
    assert not r.deposed
    assert r.gap < 0.1, f"clients should hardly notice the return, gap {r.gap:.3f} s"
    c = r.cluster
    cut = r.returned_at - 2.0
    asked = [
        row for row in c.sim.trace.rows if row[1] is Kind.SEND and type(row[6]) is PreVote and row[0] > cut
    ]
    assert asked and all(row[3] == r.server for row in asked)  # it did ask, in vain
    assert c.check_invariants() == []


@pytest.mark.parametrize("seed", SEEDS)
def test_a_leader_in_a_minority_keeps_leading_without_check_quorum(seed):
    r = leader_in_minority(check_quorum=False, seed=seed, duration=3.0)
    assert r.led_for >= 2.9, f"it should have led all 3 s, led {r.led_for:.2f} s"
    assert r.accepted >= 50 and r.committed == 0 and r.healed_at is None


@pytest.mark.parametrize("seed", SEEDS)
def test_after_the_heal_the_cut_off_leader_steps_down_and_its_entries_are_overwritten(seed):
    r = leader_in_minority(check_quorum=False, seed=seed, duration=3.0, after=1.0)
    c, old = r.cluster, r.cluster.node(r.leader)
    assert r.healed_at >= r.partitioned_at + 3.0 and c.sim.now == pytest.approx(r.healed_at + 1.0)
    assert old.role is Role.FOLLOWER and c.leader() not in (None, r.leader)
    assert r.accepted >= 50 and not any(str(e.command).startswith("cut-off") for e in old.log)
    assert c.check_invariants() == []


@pytest.mark.parametrize("seed", SEEDS)
def test_check_quorum_makes_a_cut_off_leader_step_down(seed):
    r = leader_in_minority(check_quorum=True, seed=seed, duration=3.0)
    low = r.cluster.config.election_timeout[0]
    hb = r.cluster.config.heartbeat_interval
    # Its last confirmed round began at most a heartbeat (plus a round trip) before the cut;
    # it steps down at the first check an election timeout later.
    assert r.led_for <= low + 2 * hb, f"it led {r.led_for:.2f} s after the cut"
    assert r.accepted <= 5 and r.committed == 0
    c = r.cluster
    assert c.node(r.leader).role is not Role.LEADER
    assert c.leader() not in (None, r.leader)  # the majority side elected another
    assert c.check_invariants() == []


def test_a_server_that_hears_from_its_leader_ignores_a_vote_request():
    # Diss. §4.2.3, with check_quorum: neither the term nor the vote changes.
    c = RaftCluster(n=3, seed=1, check_quorum=True)
    leader = elect(c)
    c.sim.run_for(0.1)
    follower = next(n for n in c.ids if n != leader)
    node = c.node(follower)
    term = node.current_term
    disruptor = next(n for n in c.ids if n not in (leader, follower))
    req = RequestVote(term + 5, disruptor, 10**6, term + 4)
    c.sim.call(follower, lambda n, ctx: n.on_message(ctx, disruptor, req))
    assert node.current_term == term and node.voted_for != disruptor
    # The same request flagged as a leadership transfer (diss. §3.10) is heard.
    flagged = RequestVote(term + 5, disruptor, 10**6, term + 4, leadership_transfer=True)
    c.sim.call(follower, lambda n, ctx: n.on_message(ctx, disruptor, flagged))
    assert node.current_term == term + 5 and node.voted_for == disruptor


def test_pre_vote_refuses_while_a_leader_is_heard_and_a_stale_log():
    c = RaftCluster(n=3, seed=2, pre_vote=True)
    leader = elect(c)
    c.sim.run_for(0.1)
    follower = next(n for n in c.ids if n != leader)
    node = c.node(follower)
    other = next(n for n in c.ids if n not in (leader, follower))
    granted = []
    for last_index in (0, 10**6):
        req = PreVote(node.current_term + 1, other, last_index, node.current_term)
        c.sim.call(follower, lambda n, ctx, req=req: n.handle_pre_vote(ctx, other, req))
        reply = c.sim.trace.rows[-1][6]
        granted.append(reply.vote_granted)
    assert granted == [False, False]  # it hears from its leader
    c.crash(leader)
    c.sim.run_for(0.16)  # the minimum election timeout passes without a heartbeat
    for last_index, want in ((0, False), (10**6, True)):  # a stale log is still refused
        req = PreVote(node.current_term + 1, other, last_index, node.log.last_term)
        c.sim.call(follower, lambda n, ctx, req=req: n.handle_pre_vote(ctx, other, req))
        assert c.sim.trace.rows[-1][6].vote_granted is want
    assert node.current_term == c.node(other).current_term  # a pre-vote changes no term


def test_with_pre_vote_a_crashed_leader_is_still_replaced_quickly():
    for seed in range(5):
        c = RaftCluster(n=5, seed=seed, pre_vote=True, check_quorum=True)
        leader = elect(c)
        c.sim.run_for(0.2)
        c.crash(leader)
        assert c.run_until(lambda c=c: c.leader() is not None, 1.0), f"seed {seed}: no new leader within 1 s"


@pytest.mark.parametrize("chunk", range(2))
def test_random_fault_schedules_with_pre_vote_and_check_quorum(chunk):
    for seed in range(5000 + 20 * chunk, 5020 + 20 * chunk):
        faults = random_schedule(random.Random(seed), kinds=FAULT_KINDS)
        c = run_schedule(seed, faults, ops=("get", "append"), pre_vote=True, check_quorum=True)
        check_history(c)
        assert c.check_invariants() == []
