"""The quorum lab (notebook 05): the notebook's solution passes, each classic bug planted in it is caught,
labkit's own store passes and its last-writer-wins variant does not, the skeleton behaves, delegation to
labkit's reference is refused, and a failure's picture shows the violation.

The solution and the planted bugs come from notebook 05 itself (tests/lab_notebook_solutions.py), never
from labkit's ReplicaNode.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from labkit.grading import ExerciseFailed, verdict
from labkit.labs import NODE_ERROR, LabFailed
from labkit.labs.delegation import DelegationError
from labkit.labs.quorum import QuorumServer, quorum_lab
from labkit.labs.quorum.properties import (
    AVAILABLE,
    AVAILABLE_SLOPPY,
    HANDOFF,
    NO_LOST_WRITE,
    READ_REPAIR,
    STAND_INS_SLOPPY,
    WRITE_QUORUM,
)
from labkit.replication import ReplicaNode, Resolution, StoreConfig
from labkit.replication.coordinator import Coordinator
from tests.lab_checks import assert_caught
from tests.lab_notebook_solutions import QUORUM

SOLUTION = QUORUM.solution()

# What each planted bug may break first (the suite stops at its first failing scenario).
EXPECTED = {
    "answering before W acknowledgements": {WRITE_QUORUM, NO_LOST_WRITE},
    "forgetting read repair": {READ_REPAIR},
    "last writer wins instead of siblings": {NO_LOST_WRITE},
    "stand-ins not counted": {AVAILABLE_SLOPPY},
    "stand-ins counted as home replicas": {STAND_INS_SLOPPY, HANDOFF},
    "hints never handed off": {HANDOFF},
}


def last_writer_wins(node_id, config):
    return ReplicaNode(node_id, replace(config, resolution=Resolution.LAST_WRITER_WINS))


def test_the_notebook_solution_passes_every_scenario_on_the_default_seeds():
    report = quorum_lab.run("all", SOLUTION, progress=False, quiet=True)
    assert report.passed, str(report)
    assert [r.part for r in report.results].count("quorums") == 7 and len(report.results) == 14
    assert all(r.seeds_run == r.seeds_planned for r in report.results)


@pytest.mark.parametrize("bug", sorted(QUORUM.bugs))
def test_each_classic_bug_is_caught_within_the_default_seeds(bug):
    assert_caught(quorum_lab, QUORUM.planted(bug), EXPECTED[bug], bug)


def test_labkit_own_store_passes_and_last_writer_wins_loses_a_write():
    assert quorum_lab.run("all", lambda n, c: ReplicaNode(n, c), progress=False, quiet=True).passed
    report = quorum_lab.run("quorums", last_writer_wins, progress=False, quiet=True, stop=True)
    v = report.failures[0].shown_violation
    assert report.failures[0].scenario == "concurrent writers"
    assert v.property is WRITE_QUORUM and "yet no node stored it" in v.detail


# -- the skeleton --------------------------------------------------------------------
def test_an_empty_node_runs_to_the_end_and_says_what_is_not_written():
    class Empty(QuorumServer):
        pass

    report = quorum_lab.run("quorums", Empty, progress=False, quiet=True, shrink=False)
    assert not any(r.passed for r in report.results)
    v = report.failures[0].shown_violation
    assert v.property is AVAILABLE and "no answer" in v.detail
    # shown when the client gave up (its timeout), not at 'inf' (where a never-answered op's ret stays)
    assert "inf" not in v.describe() and math.isfinite(v.time) and v.event is not None
    assert any("coordinate_put (part quorums)" in n for n in report.notes)


def test_rules_are_added_by_name_to_a_subclass_only():
    class Mine(QuorumServer):
        pass

    with pytest.raises(ValueError, match="'coordinate' is not one of the rules of the lab"):

        @Mine.rule
        def coordinate(self, ctx, client, m):
            pass

    with pytest.raises(TypeError, match="add rules to your own subclass"):

        @QuorumServer.rule
        def newest(self, versions):
            pass


def test_an_error_in_a_rule_is_reported_with_the_rule_and_line():
    class Broken(SOLUTION):  # type: ignore[misc, valid-type]
        pass

    namespace = {}
    exec(  # noqa: S102 - a learner's rule, defined as a notebook cell would
        compile(
            "def handle_read_reply(self, ctx, src, m):\n"
            "    p = self.pending.get(m.req)\n"
            "    if p is None or not p.is_read:\n"
            "        return\n"
            "    p.merged = p.merged + len(m.versions)\n",
            "<cell>",
            "exec",
        ),
        namespace,
    )
    Broken.rule(namespace["handle_read_reply"])
    report = quorum_lab.run("write then read", Broken, progress=False, quiet=True)
    v = report.failures[0].violation
    assert v.property is NODE_ERROR and v.detail.startswith("TypeError: can only concatenate tuple"), v.detail
    assert v.detail.endswith("in handle_read_reply (line 5 of a notebook cell)"), v.detail


@pytest.mark.parametrize(
    ("returned", "shown"),
    [("list(kept)", "returned list [Versioned("), ("kept[0]", "returned Versioned Versioned(")],
)
def test_newest_returning_something_else_than_a_tuple_of_versions_is_named_at_once(returned, shown):
    # A learner's newest returning a list used to fail later, in their handle_read_reply, with
    # "TypeError: can only concatenate list (not "tuple") to list": nothing said newest was the culprit.
    class Listy(SOLUTION):  # type: ignore[misc, valid-type]
        pass

    namespace = {}
    exec(  # noqa: S102 - a learner's rule, defined as a notebook cell would
        "def newest(self, versions):\n"
        "    kept = []\n"
        "    for v in versions:\n"
        "        if all(k.dot != v.dot for k in kept) and not any(w.supersedes(v) for w in versions):\n"
        "            kept.append(v)\n"
        f"    return {returned}\n",
        namespace,
    )
    Listy.rule(namespace["newest"])
    report = quorum_lab.run("write then read", Listy, progress=False, quiet=True, shrink=False)
    v = report.failures[0].violation
    assert v.property is NODE_ERROR, v.detail
    assert v.detail.startswith(f"ArgumentTypeError: your rule newest {shown}"), v.detail
    assert "it must return a tuple of Versioned" in v.detail, v.detail
    assert "called from handle_read_reply" in v.detail, v.detail  # the learner's line that used it


def test_quorum_reached_must_say_true_or_false():
    class Forgetful(SOLUTION):  # type: ignore[misc, valid-type]
        pass

    def quorum_reached(self, p):
        len(p.answered & set(p.home)) >= p.need  # noqa: B015 - the forgotten return

    Forgetful.rule(quorum_reached)
    report = quorum_lab.run("write then read", Forgetful, progress=False, quiet=True, shrink=False)
    v = report.failures[0].violation
    assert v.property is NODE_ERROR
    assert "your rule quorum_reached returned NoneType None; it must return True or False" in v.detail


def test_a_part_points_only_at_the_rules_it_asks_for(capsys):
    # Part 1's Availability hint named ask_stand_ins, a rule of part 3 a learner of part 1 has not met.
    class Empty(QuorumServer):
        pass

    report = quorum_lab.run("quorums", Empty, progress=False, quiet=True, shrink=False)
    report.check()
    shown = capsys.readouterr().out
    assert "Availability" in shown and "look at coordinate_put and coordinate_get" in shown
    assert "ask_stand_ins" not in shown and "stand-in" not in shown
    sloppy = quorum_lab.run(
        "stand-ins take the writes", QUORUM.planted("stand-ins not counted"), progress=False, quiet=True
    )
    sloppy.check()
    assert "ask_stand_ins" in capsys.readouterr().out
    # The verdict clears the checks: left in the tally, they failed the next test that asks for one.
    with pytest.raises(ExerciseFailed):
        verdict()


def test_the_skeleton_refuses_a_second_answer_and_a_foreign_node():
    with pytest.raises(ValueError, match="is not one of the store's nodes"):
        QuorumServer("n9", StoreConfig(("n1", "n2", "n3")))
    with pytest.raises(TypeError, match="config must be a StoreConfig"):
        QuorumServer("n1", {"n": 3})


# -- delegation ------------------------------------------------------------------------
def test_a_subclass_of_the_reference_is_refused():
    class Lazy(ReplicaNode):
        pass

    reasons = quorum_lab.check_submission(Lazy)
    assert reasons and "subclasses labkit.replication.replica.ReplicaNode" in reasons[0]
    with pytest.raises(LabFailed, match="scores zero"):
        quorum_lab.grade("quorums", Lazy)


def test_calling_the_references_rules_is_refused_under_any_name():
    from labkit.replication import versions as v

    keep = v.merge_siblings

    class Caller(SOLUTION):  # type: ignore[misc, valid-type]
        pass

    def newest(self, versions):
        return keep((), versions)

    def quorum_reached(self, p):
        return Coordinator._count(self, p) >= p.need

    Caller.rule(newest)
    Caller.rule(quorum_reached)
    reasons = quorum_lab.check_submission(Caller)
    assert any("newest uses keep" in r for r in reasons), reasons
    assert any("quorum_reached uses Coordinator" in r for r in reasons), reasons
    assert quorum_lab.check_submission(SOLUTION) == []


def test_tripwires_stop_the_reference_while_grading_and_restore_it():
    config = StoreConfig(("n1", "n2", "n3"))
    node = ReplicaNode("n1", config)
    with quorum_lab.tripwires(), pytest.raises(DelegationError, match="labkit's quorum store"):
        node.local_versions("x")
    assert node.local_versions("x") == ()


def test_grading_the_solution_passes_on_hidden_seeds(capsys):
    quorum_lab.grade("sloppy", SOLUTION, seeds=range(1000, 1003))
    assert "✓ graded run of sloppy: 4 scenarios passed" in capsys.readouterr().out


# -- the picture ---------------------------------------------------------------------------
def test_the_failure_picture_marks_the_violation_on_the_client_that_saw_it():
    report = quorum_lab.run(
        "stand-ins take the writes", QUORUM.planted("stand-ins not counted"), progress=False, quiet=True
    )
    failure = report.failures[0]
    view = failure.show()
    v = view.violation
    assert (
        v.property is AVAILABLE_SLOPPY
        and v.node == "c1"
        and v.time == pytest.approx(failure.shown_violation.time)
    )
    assert view.nodes == ["n1", "n2", "n3", "n4", "n5", "c1", "c2", "checker"]
    states = view.states()
    assert states["c1"]["last operation"].endswith("failed")
    assert set(states["n1"]) >= {"hints", "coordinating"}
    fig = view.figure()
    star = next(t for t in fig.data if t.name == "violation")
    c1 = view.nodes.index("c1")
    assert list(star.x) == [pytest.approx(v.time)] and c1 - 0.5 < star.y[0] < c1  # just above c1's lane
    assert "partition" in view.header() and "quorum_lab.replay(" in view.header()


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [s.name for s in quorum_lab.scenarios])
def test_the_solution_passes_two_hundred_seeds_of_every_scenario(scenario):
    df = quorum_lab.sweep(scenario, SOLUTION, 200, workers=1, progress=False)
    assert df.empty, df.head().to_string()
