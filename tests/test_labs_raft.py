"""The Raft lab: the notebook's solution passes, each classic bug planted in it is caught, the skeleton
behaves, delegation to labkit's reference is refused, and a failure's picture shows the violation.

The solution and the planted bugs come from notebook 09 itself (tests/lab_solutions.py), never from
labkit's RaftNode.
"""

from __future__ import annotations

import linecache
import re

import pytest

from labkit.labs import NODE_ERROR, LabFailed
from labkit.labs.core import Fault, Trial
from labkit.labs.raft import RaftServer, Role, raft_lab
from labkit.labs.raft.delegation import DelegationError, problems, tripwires
from labkit.labs.raft.properties import (
    APPLY_COMMITTED,
    APPLY_ONCE,
    BACK_UP_ON_MISMATCH,
    COMMIT_MONOTONIC,
    COMMITTED_STAYS,
    ELECTION_SAFETY,
    LEADER_COMPLETENESS,
    LEADER_ELECTED,
    LINEARIZABLE,
    LOG_MATCHING,
    MAJORITY_COMMIT,
    MATCH_INDEX_GROWS,
    PROGRESS,
    PROMPT_REPLICATION,
    REFUSE_STALE,
    STABLE_LEADER,
    STATE_MACHINE_SAFETY,
    VOTE_RESTARTS_TIMER,
)
from labkit.raft.bugs import VoteTwice
from labkit.raft.node import RaftNode
from tests import lab_solutions
from tests.lab_checks import assert_caught

SOLUTION = lab_solutions.solution()

# What each planted bug may break first (the suite stops at its first failing scenario).
EXPECTED = {
    "voting twice in a term": {ELECTION_SAFETY},
    "not persisting voted_for before replying": {ELECTION_SAFETY},
    "counting a vote granted in an earlier term": {ELECTION_SAFETY},
    "counting a duplicated vote twice": {LEADER_COMPLETENESS, ELECTION_SAFETY},
    "committing an earlier term's entry by counting replicas": {
        LEADER_COMPLETENESS,
        STATE_MACHINE_SAFETY,
        COMMITTED_STAYS,
    },
    "not truncating a conflicting suffix": {
        LOG_MATCHING,
        STATE_MACHINE_SAFETY,
        COMMITTED_STAYS,
        MAJORITY_COMMIT,
        PROGRESS,
        LINEARIZABLE,
    },
    "cutting the log after prev_log_index whatever it holds": {LEADER_COMPLETENESS, MAJORITY_COMMIT},
    "lowering commit_index on a late AppendEntries": {COMMIT_MONOTONIC},
    "not saving the entries a follower accepts": {LEADER_COMPLETENESS, NODE_ERROR},
    "resetting the election timer on every message": {LEADER_ELECTED},
    "applying before committing": {APPLY_COMMITTED},
    "a candidate that stays candidate under the leader of its term": {LEADER_ELECTED},
    "applying an entry again (starting at last_applied, not after it)": {APPLY_ONCE},
    "applying without advancing last_applied": {APPLY_ONCE},
    "restoring last_applied from disk after a restart": {APPLY_ONCE},
    "a leader that never steps down on a higher term": {LEADER_ELECTED, PROGRESS},
    "a leader that takes a higher term but stays leader": {ELECTION_SAFETY},
    # Figure 2's rules that cost only time: each fails the scenario that states it (the vote timer, rarely,
    # an initial election before that: a voter timed out and deposed the leader it had just elected).
    "granting a vote without restarting the election timer": {VOTE_RESTARTS_TIMER, STABLE_LEADER},
    "restarting the election timer only on a term change": {VOTE_RESTARTS_TIMER},
    "backing up next_index on any failed reply": {BACK_UP_ON_MISMATCH},
    "matchIndex going backwards on a late reply": {MATCH_INDEX_GROWS},
    "new entries sent only at the next heartbeat": {PROMPT_REPLICATION},
    "leaving a stale AppendEntries unanswered": {REFUSE_STALE},
    "backing up on any failed reply, leader or not": {MAJORITY_COMMIT, LEADER_COMPLETENESS, COMMITTED_STAYS},
}

# Each requirement, the scenario that states it, and the learner's bug that breaks it (tests/lab_solutions.py).
REQUIREMENTS = {
    "votes restart the timer": (VOTE_RESTARTS_TIMER, "granting a vote without restarting the election timer"),
    "stale refusals": (BACK_UP_ON_MISMATCH, "backing up next_index on any failed reply"),
    "reordered replies": (MATCH_INDEX_GROWS, "matchIndex going backwards on a late reply"),
    "prompt replication": (PROMPT_REPLICATION, "new entries sent only at the next heartbeat"),
}


def test_the_notebook_solution_passes_every_scenario_on_the_default_seeds():
    report = raft_lab.run("all", SOLUTION, progress=False, quiet=True)
    assert report.passed, str(report)
    assert [r.part for r in report.results].count("election") == 5 and len(report.results) == 22
    assert all(r.seeds_run == r.seeds_planned for r in report.results)


@pytest.mark.parametrize("bug", sorted(lab_solutions.BUGS))
def test_each_classic_bug_is_caught_within_the_default_seeds(bug):
    assert_caught(raft_lab, lab_solutions.planted(bug), EXPECTED[bug], bug)


def test_a_leader_that_keeps_leading_in_a_higher_term_is_told_to_step_down():
    # It leads the new term without an election: two leaders in one term, and the hint must say why.
    report = raft_lab.run("election", lab_solutions.planted("a leader that takes a higher term but stays leader"),
                          seeds=3, progress=False, quiet=True)  # fmt: skip
    v = report.failure().shown_violation
    assert v.property is ELECTION_SAFETY
    assert "observe_term (a higher term: step down to follower" in v.property.look_at


def test_a_leader_elected_by_a_vote_counted_twice_is_told_whose_votes_it_has():
    # Duplicated replies counted again elect a leader without a majority; its log may lack a committed entry,
    # and then the up-to-date check the hint names first is not to blame: the message says who voted.
    report = raft_lab.run("unreliable network", lab_solutions.planted("counting a duplicated vote twice"),
                          seeds=range(7, 8), progress=False, quiet=True)  # fmt: skip
    v = report.failure().shown_violation
    assert v.property is LEADER_COMPLETENESS
    assert re.search(r"only n\d(, n\d)? voted for n\d in term \d+, and a majority is 3: did "
                     r"handle_request_vote_reply count a vote twice", v.detail), v.detail  # fmt: skip


def test_a_late_append_entries_that_cuts_committed_entries_is_caught_on_every_seed():
    # Before this scenario, a follower cutting its log at every AppendEntries failed about 1 seed in 50.
    node = lab_solutions.planted("cutting the log after prev_log_index whatever it holds")
    for seed in range(5):
        _, outcome = raft_lab.trial("late AppendEntries", node, seed)
        assert outcome.violation is not None and outcome.violation.property is LEADER_COMPLETENESS, seed
        assert re.match(
            r"n2 leads term \d+ but lacks committed entry [23] \(term 1\)", outcome.violation.detail
        )
    for seed in range(5):
        assert raft_lab.trial("late AppendEntries", SOLUTION, seed)[1].violation is None


def test_a_late_append_entries_that_lowers_the_commit_index_is_caught_on_every_seed():
    # Figure 2's step 5 read literally (no max with the commit index held) failed about 1 seed in 50
    # elsewhere ("went back from 127 to 125"); this scenario times a late heartbeat to catch it every time.
    node = lab_solutions.planted("lowering commit_index on a late AppendEntries")
    for seed in range(10):
        _, outcome = raft_lab.trial("late commit index", node, seed)
        assert outcome.violation is not None and outcome.violation.property is COMMIT_MONOTONIC, seed
        assert outcome.violation.detail == "n2's commit_index went back from 4 to 2", outcome.violation.detail
    for seed in range(10):
        assert raft_lab.trial("late commit index", SOLUTION, seed)[1].violation is None
    failure = raft_lab.run("late commit index", node, seeds=1, progress=False, quiet=True).failure()
    assert len(failure.schedule) <= 4  # each fault needed: both slow links, n1 leads, the overtaking


# -- Figure 2's rules whose breach costs only time ----------------------------------------
def _correct_servers() -> dict[str, type]:
    """The notebook's solution, labkit's own RaftNode and the other correct ways of writing the rules."""
    alternatives = {a: lab_solutions.planted(a) for a in lab_solutions.ALTERNATIVES}
    return {"the solution": SOLUTION, "labkit's RaftNode": RaftNode, **alternatives}


@pytest.mark.parametrize("scenario", sorted(REQUIREMENTS))
def test_each_requirement_fails_its_bug_on_every_seed_and_passes_every_correct_server(scenario):
    prop, bug = REQUIREMENTS[scenario]
    node = lab_solutions.planted(bug)
    for seed in range(20):  # (the slow test below: 500 seeds)
        v = raft_lab.trial(scenario, node, seed)[1].violation
        assert v is not None and v.property is prop, (seed, v)
    for name, good in _correct_servers().items():
        for seed in range(20):
            assert raft_lab.trial(scenario, good, seed)[1].violation is None, (name, seed)
    # The shrunk run replays to the same rule broken, and draws with the violation marked where it was seen.
    failure = raft_lab.run(scenario, node, seeds=1, progress=False, quiet=True).failure()
    v = failure.shown_violation
    assert (
        v.property is prop and raft_lab.replay(node, scenario, 0, failure.schedule).violation.property is prop
    )
    star = next(t for t in failure.show().figure().data if t.name == "violation")
    assert list(star.x) == [pytest.approx(v.time)]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(REQUIREMENTS))
def test_each_requirement_passes_every_correct_server_on_five_hundred_seeds(scenario):
    for name, good in _correct_servers().items():
        bad = [s for s in range(500) if raft_lab.trial(scenario, good, s)[1].violation is not None]
        assert not bad, (name, bad[:5])


def test_a_vote_without_a_fresh_timer_is_told_the_rule_and_when_the_old_timer_fires():
    node = lab_solutions.planted("granting a vote without restarting the election timer")
    failure = raft_lab.run("votes restart the timer", node, seeds=1, progress=False, quiet=True).failure()
    v = failure.shown_violation
    assert v.property is VOTE_RESTARTS_TIMER
    said = re.fullmatch(r"(n\d) granted its vote to (n\d) for term (\d+) without restarting its election timer: "
                        r"it still fires at t = ([\d.]+) s, (\d+) ms after the vote, as set before it; a voter that "
                        r"times out before the leader it elected is heard from deposes it", v.detail)  # fmt: skip
    assert said and said[1] == v.node, v.detail
    assert float(said[4]) == pytest.approx(v.time + int(said[5]) / 1000, abs=1e-3)
    assert "call reset_election_timer" in v.property.look_at and "Followers" in v.property.source
    view = failure.show()  # the picture's star is on the vote: the voter sends its "yes" in that step
    event = view.events[view.steps[view.step]]
    assert event.node == v.node and event.kind.value == "deliver" and event.message.candidate_id == said[2]


def test_a_timer_restarted_only_on_a_new_term_misses_a_vote_in_the_term_the_voter_has_on_every_seed():
    # Restarting the timer in observe_term instead of on the grant passed this scenario on 493 of 600 seeds
    # while every vote there came with a new term; now a late request of a rival in the voter's own term
    # is granted on every seed, the visible and the hidden ones.
    node = lab_solutions.planted("restarting the election timer only on a term change")
    for seed in [*range(20), *range(1000, 1020)]:
        v = raft_lab.trial("votes restart the timer", node, seed)[1].violation
        assert v is not None and v.property is VOTE_RESTARTS_TIMER, (seed, v)
        # At the latest the loser's request, sent at 0.6 s, granted 200 ms later in the term the voter took from
        # a heartbeat (a first election with rivals in one term may make such a vote before, as on seed 8).
        assert v.time <= 0.8 + 1e-9, (seed, v.time)
        said = re.search(
            r"for term (\d+) without .* \(it was in term (\d+) already: no new term came with this vote\)",
            v.detail,
        )
        assert said and said[1] == said[2], v.detail
    assert "observe_term or become_follower" in VOTE_RESTARTS_TIMER.look_at


def test_backing_up_on_a_stale_refusal_is_told_why_the_reply_is_no_news():
    node = lab_solutions.planted("backing up next_index on any failed reply")
    failure = raft_lab.run("stale refusals", node, seeds=1, progress=False, quiet=True).failure()
    v = failure.shown_violation
    assert v.property is BACK_UP_ON_MISMATCH and v.node == "n1"
    said = re.fullmatch(r"n1, leader of term 2, moved next_index\['n3'\] from (\d) to (\d) on a failed reply from n3: it "
                        r"refused an AppendEntries of term 1 because that term was old \(step 1\), not because the "
                        r"logs differ; only a failure of the request it sends now \(term 2, prev_log_index (\d)\) says "
                        r"the logs differ there", v.detail)  # fmt: skip
    assert said and int(said[2]) == int(said[1]) - 1 and int(said[3]) == int(said[1]) - 1, v.detail
    assert "'if AppendEntries fails because of log inconsistency'" in v.property.look_at
    # Without the check "only a leader of the reply's term listens", the same mistake is a safety bug.
    assert_caught(raft_lab, lab_solutions.planted("backing up on any failed reply, leader or not"),
                  EXPECTED["backing up on any failed reply, leader or not"], "leader or not")  # fmt: skip


def test_a_stale_append_entries_left_unanswered_is_caught_on_every_seed_where_it_arrives():
    node = lab_solutions.planted("leaving a stale AppendEntries unanswered")
    for seed in range(20):
        v = raft_lab.trial("stale refusals", node, seed)[1].violation
        assert v is not None and v.property is REFUSE_STALE, (seed, v)
    failure = raft_lab.run("stale refusals", node, seeds=1, progress=False, quiet=True).failure()
    v = failure.shown_violation
    said = re.fullmatch(r"(n\d), in term (\d+), got an AppendEntries of term (\d+) from (n\d) and sent (n\d) no reply, so "
                        r"(n\d) does not hear of term (\d+) from it; step 1 replies false with the receiver's term",
                        v.detail)  # fmt: skip
    assert (
        said
        and said[1] == v.node
        and said[4] == said[5] == said[6]
        and int(said[3]) < int(said[2]) == int(said[7])
    )
    assert "'Reply false if term < currentTerm (§5.1)'" in v.property.look_at
    view = failure.show()  # the star is on the late AppendEntries' arrival
    event = view.events[view.steps[view.step]]
    assert (event.node, event.src, event.message.term) == (said[1], said[4], int(said[3]))


def test_a_candidate_that_never_follows_the_leader_of_its_term_is_named():
    """Passed every scenario: the leader's heartbeats restarted its timer, so it never campaigned again."""
    node = lab_solutions.planted("a candidate that stays candidate under the leader of its term")
    failure = raft_lab.run("initial election", node, progress=False, quiet=True).failure()
    v = failure.shown_violation
    said = re.search(
        r"; (n\d) is still a candidate in the term (n\d) leads, although \2's AppendEntries reach it$",
        v.detail,
    )
    assert v.property is LEADER_ELECTED and said, v.detail
    assert f"{said[1]} candidate" in v.detail and f"{said[2]} leader" in v.detail
    assert "a candidate that hears from the leader of its own term becomes its follower" in v.property.look_at


@pytest.mark.parametrize(
    ("bug", "scenario", "said"),
    [
        ("applying an entry again (starting at last_applied, not after it)", "basic agreement",
         r"(n\d) applied entry 1 \('x1'\) a second time: it had applied entry 1 already, so the next one to apply "
         r"was entry 2"),
        ("applying without advancing last_applied", "basic agreement",
         r"(n\d) has applied 1 entry since it started, yet its last_applied is 0: last_applied is the index of the "
         r"last entry applied"),
        ("restoring last_applied from disk after a restart", "crash and restart",
         r"(n\d) has applied 0 entries since it started, yet its last_applied is (\d+): last_applied is the index of "
         r"the last entry applied"),
    ],
)  # fmt: skip
def test_an_entry_applied_twice_or_last_applied_out_of_step_is_caught_where_it_happens(bug, scenario, said):
    """Was reported as Progress (a command given to the leader is applied), at the scenario's checkpoint, or
    not at all (restoring last_applied): now at the event that applies, under Figure 2's rule."""
    failure = raft_lab.run(
        scenario, lab_solutions.planted(bug), seeds=1, progress=False, quiet=True
    ).failure()
    v = failure.shown_violation
    found = re.fullmatch(said, v.detail)
    assert v.property is APPLY_ONCE and found and found[1] == v.node, v.detail
    assert "'increment lastApplied, apply log[lastApplied]'" in v.property.look_at
    view = failure.show()
    assert view.events[view.steps[view.step]].node == v.node
    for name, good in _correct_servers().items():
        assert raft_lab.trial(scenario, good, 0)[1].violation is None, name


def test_a_late_reply_lowering_match_index_is_caught_where_it_arrives():
    node = lab_solutions.planted("matchIndex going backwards on a late reply")
    failure = raft_lab.run("reordered replies", node, seeds=1, progress=False, quiet=True).failure()
    v = failure.shown_violation
    assert v.property is MATCH_INDEX_GROWS
    said = re.fullmatch(r"n1, leader of term 1, lowered match_index\['n2'\] from (\d) to (\d) on a late reply from n2: it "
                        r"answers an AppendEntries with prev_log_index (\d) and knows entries up to (\d) only; n2 still "
                        r"holds entry (\d)", v.detail)  # fmt: skip
    assert said and int(said[2]) < int(said[1]) == int(said[5]) and said[2] == said[4], v.detail
    view = failure.show()
    event = view.events[view.steps[view.step]]
    assert (event.node, event.src, event.message.match_index) == ("n1", "n2", int(said[2]))
    assert event.time - event.sent_at == pytest.approx(0.15)  # the reply that took the slow link


def test_a_leader_that_waits_for_its_heartbeat_is_told_when_it_sent_the_entry():
    node = lab_solutions.planted("new entries sent only at the next heartbeat")
    failure = raft_lab.run("prompt replication", node, seeds=1, progress=False, quiet=True).failure()
    v = failure.shown_violation
    said = re.fullmatch(r"'p\d+', given to leader (n\d) at t = ([\d.]+) s, was not committed 25 ms later \(a round "
                        r"trip takes 10 ms here\); (n\d) first sent it at t = ([\d.]+) s, (\d+) ms after it came",
                        v.detail)  # fmt: skip
    assert v.property is PROMPT_REPLICATION and said, v.detail
    assert said[1] == said[3] == v.node and int(said[5]) > 15  # it waited for its heartbeat
    assert failure.schedule == ()  # no fault needed
    assert "send the entry to every follower at once" in v.property.look_at
    # The prompt leader commits each command within one round trip here.
    trial, outcome = raft_lab.trial("prompt replication", SOLUTION, 0)
    assert outcome.violation is None


def test_the_summary_and_the_picture_say_a_fault_in_the_same_words():
    failure = raft_lab.run("late commit index", lab_solutions.planted("lowering commit_index on a late "
                           "AppendEntries"), seeds=1, progress=False, quiet=True).failure()  # fmt: skip
    summary = failure.summary()
    assert "0.005 s  n1 → n2 takes 80 ms" in summary and "0.010 s  n1 times out now and campaigns" in summary
    assert "('n1', 'n2'" not in summary.split("reproduce:")[0]  # no raw tuples before the reproduce line
    view = failure.show()
    labels = {a.text for a in view.figure().layout.annotations}
    assert {"n1 → n2 takes 80 ms", "n2 → n1 takes 150 ms", "n1 → n2 takes 2 ms"} <= labels
    assert "0.525 s: n1 → n2 takes 2 ms" in view.header()
    line = summary.split("reproduce: ")[1]  # still Python: it replays the same failure
    again = eval(line, {"raft_lab": raft_lab, "MyRaft": failure.node, "Fault": Fault})  # noqa: S307
    assert again.violation.detail == failure.violation.detail


def test_restore_reading_an_entry_never_saved_is_told_which_save_was_forgotten():
    # The length was saved by a later rule, the entry never: a bare KeyError sent the learner to restore.
    node = lab_solutions.planted("not saving the entries a follower accepts")
    report = raft_lab.run("churn", node, seeds=3, progress=False, quiet=True, shrink=False)
    detail = report.failure().violation.detail
    assert re.search(r"NeverSaved: storage has no \('log', \d+\) although log_length is \d+: entry \d+ was "
                     r"never saved \(every rule that changes the log, accept_entries and append_new_entry, must "
                     r"call save_log", detail), detail  # fmt: skip


def test_figure8_scenario_replays_the_papers_figure():
    trial = Trial(raft_lab, raft_lab.scenario("Figure 8"), SOLUTION, 0)
    trial._start()
    world = trial.world

    def terms(s: str) -> list[int] | None:
        node = world.live(s)
        return None if node is None else node.log.terms()

    trial.run_until(0.27)  # (a) S1 leads term 2; index 2 (term 2) on S1 and S2 only
    assert [terms(s) for s in world.ids] == [[1, 2], [1, 2], [1], [1], [1]]
    trial.run_until(0.335)  # (b) S1 down; S5 leads term 3 with index 2 (term 3) on itself
    assert terms("n1") is None and terms("n5") == [1, 3] and world.live("n5").role is Role.LEADER
    trial.run_until(0.49)  # (c) S1 leads term 4 and has copied its term-2 entry to S3: not committed
    assert [terms(s) for s in ("n1", "n2", "n3")] == [[1, 2]] * 3 and world.live("n1").current_term == 4
    assert world.live("n1").commit_index < 2
    trial.run_until(0.7)  # (d) S5 wins and overwrites index 2 everywhere it can reach
    assert [terms(s) for s in ("n2", "n3", "n4", "n5")] == [[1, 3, 5]] * 4


def test_a_leader_without_a_committed_entry_is_told_who_committed_it_and_when():
    bug = lab_solutions.planted("committing an earlier term's entry by counting replicas")
    failure = raft_lab.run("Figure 8", bug, seeds=1, progress=False, quiet=True).failures[0]
    v = failure.shown_violation
    said = re.search(
        r"lacks committed entry (\d+) \(term (\d+)\); (n\d) committed it first, at t = ([\d.]+) s$", v.detail
    )
    assert v.property is LEADER_COMPLETENESS and said, v.detail
    index, term, server, when = int(said[1]), int(said[2]), said[3], float(said[4])
    view = failure.show()  # the first step where a server's commit index reaches the entry is that commit
    step = next(
        i for i in range(len(view.steps)) if any(s and s["commit"] >= index for s in view.states(i).values())
    )
    committed = {n for n, s in view.states(step).items() if s and s["commit"] >= index}
    assert committed == {server} and view.time_of(step) == pytest.approx(when, abs=5e-4) and when < v.time
    leader = view.states(step)[
        server
    ]  # Figure 8: a leader of a later term counted an earlier term's replicas
    assert leader["role"] == "leader" and leader["term"] > term
    # The first view already shows that commit, marked on its server, not only after stepping back to it.
    start, end = view.window()
    assert (
        start < when < v.time <= end
        and len(v.earlier) == 1
        and v.earlier[0][::2] == (server, f"{server} commits entry {index}")
    )
    # ... and every fault of the shrunk schedule that set the story up (each is needed), not only the last.
    assert failure.shrunk is not None and start < min(f.at for f in failure.schedule)
    fig = view.figure()
    mark = next(t for t in fig.data if t.name == "where it started")
    assert list(mark.x) == [v.earlier[0][1]] and list(mark.y) == [view.nodes.index(server)]
    assert any(a.text == f"{server} commits entry {index}" for a in fig.layout.annotations)


def test_a_vote_counted_in_a_later_term_is_caught_and_each_fault_of_its_schedule_is_needed():
    bug = lab_solutions.planted("counting a vote granted in an earlier term")
    failure = raft_lab.run("late vote replies", bug, seeds=1, progress=False, quiet=True).failures[0]
    assert failure.shown_violation.property is ELECTION_SAFETY and failure.shown_violation.node == "n1"
    assert failure.schedule == failure.faults and len(failure.faults) == 5  # nothing to shrink away
    for i in range(5):  # 1-minimal: leave any one fault out and the bug goes unseen
        fewer = failure.faults[:i] + failure.faults[i + 1 :]
        assert raft_lab.replay(bug, "late vote replies", 0, fewer).violation.property.name == "(none)", i
    view = failure.show()  # the step where it broke: n1, candidate of term 2, hears a "yes" of term 1
    event = view.events[view.steps[view.step]]
    assert (
        event.node == "n1"
        and event.src == "n3"
        and (event.message.term, event.message.vote_granted) == (1, True)
    )
    assert view.states()["n1"]["term"] == 2 and view.states()["n2"]["role"] == "leader"


def test_a_result_no_sequential_execution_explains_is_reported_where_the_client_got_it():
    from labkit.raft.bugs import StaleReads  # any server answers reads from its own copy

    report = raft_lab.run("random faults", StaleReads, seeds=1, progress=False, quiet=True)
    failure = report.failures[0]
    v = failure.shown_violation
    assert v.property is LINEARIZABLE and v.detail.startswith("no sequential execution explains these")
    assert v.node.startswith("c") and v.event is not None
    row = failure.replay().sim.trace.rows[v.event]
    assert row[1].value == "deliver" and row[4] == v.node and row[0] == v.time


def test_a_history_the_checker_cannot_decide_is_noted_not_failed(monkeypatch):
    from labkit.labs.raft import scenarios

    monkeypatch.setattr(scenarios, "CHECKER_STEPS", 5)  # too few for any history of concurrent clients
    report = raft_lab.run("concurrent submits", SOLUTION, seeds=2, progress=False, quiet=True)
    assert report.passed  # nobody knows whether it is linearizable: not a violation
    said = "clients' results not judged (the linearizability checker gave up after 5 steps): "
    assert len(report.notes) == 1 and report.notes[0].startswith(said), report.notes
    assert re.fullmatch(
        r"concurrent submits seed 0 \(\d+ operations\), concurrent submits seed 1 \(\d+ operations\)",
        report.notes[0].removeprefix(said),
    )


def test_the_lab_decides_the_history_its_checker_once_gave_up_on():
    # Seed 305 of "concurrent submits" was undecided after the lab's 2 million steps (11.1 million
    # needed); tests/test_linearizability.py keeps its history.
    _, outcome = raft_lab.trial("concurrent submits", SOLUTION, 305)
    assert outcome.violation is None and outcome.notes == (), outcome


# -- the skeleton --------------------------------------------------------------------
def test_an_empty_server_runs_to_the_end_and_says_what_is_not_written():
    class Empty(RaftServer):
        pass

    report = raft_lab.run("election", Empty, progress=False, quiet=True)
    assert [r.passed for r in report.results] == [False] * 5
    assert report.failures[0].shown_violation.property is LEADER_ELECTED
    assert any("start_election (part election)" in n for n in report.notes)


def test_rules_are_added_by_name_to_a_subclass_only():
    class Mine(RaftServer):
        pass

    with pytest.raises(ValueError, match="'start_elections' is not one of the rules of the lab"):

        @Mine.rule
        def start_elections(self, ctx):
            pass

    with pytest.raises(TypeError, match="add rules to your own subclass"):

        @RaftServer.rule
        def start_election(self, ctx):
            pass


def test_an_error_in_a_rule_is_reported_with_the_rule_and_line():
    class Broken(SOLUTION):  # type: ignore[misc, valid-type]
        pass

    def become_leader(self, ctx):
        self.next_index = {}  # forgets to set next_index up
        self.set_role(ctx, Role.LEADER)
        self.send_heartbeats(ctx)

    Broken.rule(become_leader)
    report = raft_lab.run("initial election", Broken, progress=False, quiet=True)
    v = report.failures[0].violation
    assert v.property is NODE_ERROR and v.detail.startswith("KeyError: \"next_index has no entry for 'n")
    assert (
        "in send_append_entries (line" in v.detail
        and "of labkit/labs/raft/skeleton.py), called from" in v.detail
    )


# -- delegation ------------------------------------------------------------------------
def test_an_error_in_a_rule_quotes_the_line_of_the_cell_since_jupyterlab_numbers_none():
    # As IPython runs a cell: a file name of ipykernel's, its source in linecache (so tracebacks show it).
    cell = "def become_leader(self, ctx):\n    x = 1\n    self.next_index[None] += x  # no such peer\n"
    name = "/tmp/ipykernel_0/4242.py"
    linecache.cache[name] = (len(cell), None, cell.splitlines(True), name)
    try:
        ns: dict = {}
        exec(compile(cell, name, "exec"), ns)  # noqa: S102 - a learner's cell

        class Broken(SOLUTION):  # type: ignore[misc, valid-type]
            pass

        Broken.rule(ns["become_leader"])
        report = raft_lab.run("initial election", Broken, progress=False, quiet=True, shrink=False)
    finally:
        del linecache.cache[name]
    v = report.failures[0].violation
    assert v.property is NODE_ERROR and v.detail.startswith("KeyError: None"), v.detail
    assert v.detail.endswith(
        "in become_leader (line 3 of a notebook cell: self.next_index[None] += x  # no such peer)"
    ), v.detail


def test_a_subclass_of_the_reference_is_refused():
    class Lazy(RaftNode):
        pass

    reasons = problems(Lazy)
    assert reasons and "subclasses labkit.raft.node.RaftNode" in reasons[0]
    with pytest.raises(LabFailed, match="scores zero"):
        raft_lab.grade("election", Lazy)


def test_calling_the_references_rules_is_refused_under_any_name():
    from labkit.raft.node import RaftNode as Reference

    class Caller(SOLUTION):  # type: ignore[misc, valid-type]
        pass

    def handle_request_vote(self, ctx, src, m):
        Reference.handle_request_vote(self, ctx, src, m)

    def accept_entries(self, ctx, src, m):
        self.log.maybe_append(m.prev_log_index, m.entries)

    Caller.rule(handle_request_vote)
    Caller.rule(accept_entries)
    reasons = problems(Caller)
    assert any("handle_request_vote uses Reference" in r for r in reasons)
    assert any("accept_entries uses maybe_append" in r for r in reasons)
    assert problems(SOLUTION) == []


def test_tripwires_stop_the_reference_while_grading_and_restore_it():
    node = RaftNode("n1", ["n1", "n2"])
    with tripwires(), pytest.raises(DelegationError, match="may_vote_for belongs to labkit's reference Raft"):
        node.may_vote_for("n2")
    assert node.may_vote_for("n2") is True


def test_grading_the_solution_passes_on_hidden_seeds(capsys):
    raft_lab.grade("election", SOLUTION, seeds=range(1000, 1002))
    assert "✓ graded run of election: 5 scenarios passed" in capsys.readouterr().out


# -- the picture ---------------------------------------------------------------------------
def test_the_failure_picture_marks_the_violation_and_steps_through_the_run():
    from labkit.viz.labs import FailureView

    report = raft_lab.run("initial election", VoteTwice, progress=False, quiet=True)
    failure = report.failures[0]
    view = failure.show()
    assert isinstance(view, FailureView)
    v = view.violation
    assert v.property is ELECTION_SAFETY and v.time == pytest.approx(failure.violation.time)
    states = view.states()
    leaders = [n for n, s in states.items() if s and s["role"] == "leader"]
    assert len(leaders) == 2 and {states[n]["term"] for n in leaders} == {1}
    fig = view.figure()
    star = next(t for t in fig.data if t.name == "violation")
    assert list(star.x) == [pytest.approx(v.time)]
    start, end = view.window()
    assert start < v.time < end
    assert "reproduce" in view.header() and "Election Safety" in view.header()
    assert "fault schedule: none, it fails without any fault" in view.header()  # initial election: no faults
    assert "where to look: handle_request_vote (one vote per term" in view.header()
    before = view.figure(0)
    assert not any(t.name == "violation" for t in before.data)
    # Stepping back before the first view moves the view back with it (same width).
    assert view.time_of(0) < start
    assert before.layout.xaxis.range[0] <= view.time_of(0) < before.layout.xaxis.range[1]
    assert before.layout.xaxis.range[1] - before.layout.xaxis.range[0] == pytest.approx(end - start)
    assert list(view.figure().layout.xaxis.range) == [start, end]
    assert "step 1 of" in view.state_table(0)
    ui = view.ui
    assert ui is not None and view.slider.value == view.step + 1
    view.go(10**9)
    assert view.slider.value == len(view.steps) and view.shown == len(view.steps) - 1
    view.slider.value = 3  # as if dragged
    assert view.shown == 2 and "step 3 of" in view.table.value
    assert view.plot.outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"]


# -- sweeps on a Dask cluster ---------------------------------------------------------------
def test_a_sweep_on_a_dask_local_cluster_finds_what_local_workers_find():
    from distributed import Client, LocalCluster

    local = raft_lab.sweep("initial election", VoteTwice, 60, workers=2, progress=False)
    notebook_class = lab_solutions.planted("voting twice in a term")  # defined in no importable module
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        on_dask = raft_lab.sweep("initial election", VoteTwice, 60, client=client, progress=False)
        planted = raft_lab.sweep("initial election", notebook_class, 30, client=client, progress=False)
    assert len(local) > 0 and on_dask.equals(local)
    assert on_dask.attrs["workers"] == 2
    assert len(planted) > 0 and set(planted["property"]) == {"Election Safety"}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [s.name for s in raft_lab.scenarios])
def test_the_solution_passes_two_hundred_seeds_of_every_scenario(scenario):
    df = raft_lab.sweep(scenario, SOLUTION, 200, workers=1, progress=False)
    assert df.empty, df.head().to_string()


def test_every_lost_committed_entry_message_names_its_first_commit():
    from labkit.labs.raft.lab import _where_committed

    first = {3: ("n2", 0.5)}
    for detail in (
        "n5 leads term 7 but lacks committed entry 3 (term 2)",
        "n1 committed index 3 with term 4, already committed with term 2",
        "n1 applied LogEntry(term=4, command='b') at index 3, another server applied LogEntry(term=2, command='a')",
    ):
        said, earlier = _where_committed(detail, first)
        assert said == f"{detail}; n2 committed it first, at t = 0.500 s" and earlier == (
            ("n2", 0.5, "n2 commits entry 3"),
        )
    assert _where_committed("n1 and n2 both lead term 2", first) == ("n1 and n2 both lead term 2", ())
    assert _where_committed("n5 leads term 7 but lacks committed entry 4 (term 2)", first)[1] == ()


def test_the_table_prints_the_longest_scenario_name_whole(capsys):
    report = raft_lab.run("no agreement without a majority", SOLUTION, seeds=1, progress=False)
    rows = [line for line in capsys.readouterr().out.splitlines() if "✓ pass" in line]
    assert len(rows) == 1 and rows[0].startswith("no agreement without a majority  ✓ pass")
    assert str(report).splitlines()[2].startswith("no agreement without a majority  ✓ pass")
