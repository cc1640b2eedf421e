"""The saga lab (notebook 15): the notebook's solution passes, each classic bug planted in it is caught,
labkit's own orchestrator passes, crashes at a log write do what they say, the skeleton behaves, delegation
to labkit's reference is refused, and a failure's picture shows the violation.

The solution and the planted bugs come from notebook 15 itself (tests/lab_notebook_solutions.py), never
from labkit's Orchestrator.
"""

from __future__ import annotations

import glob
import os
import tempfile

import pytest

from labkit.labs import Fault, LabFailed
from labkit.labs.delegation import DelegationError
from labkit.labs.saga import SagaOrchestrator, saga_lab
from labkit.labs.saga.properties import ALL_OR_NOTHING, FINISHED, ONCE, ONLY_RAN, RESUME, REVERSE
from labkit.saga.log import LogKind
from labkit.saga.orchestrator import Orchestrator, decide_reply
from labkit.saga.services import Op, Request
from labkit.sim import Kind
from tests.lab_checks import assert_caught
from tests.lab_notebook_solutions import SAGA

SOLUTION = SAGA.solution()

EXPECTED = {
    "not logging before acting": {ALL_OR_NOTHING},
    "compensating in forward order": {REVERSE},
    "compensating steps that never ran": {ONLY_RAN},
    "re-running a completed step after recovery": {RESUME},
    "not idempotent": {ONCE, ALL_OR_NOTHING},
}


def labkit_orchestrator(node_id, log_path, writes=None):
    """labkit's own orchestrator (it cannot be told to die at a log write: it dies at times only)."""
    return Orchestrator(node_id, log_path, synchronous="OFF")


def test_the_notebook_solution_passes_every_scenario_on_the_default_seeds():
    report = saga_lab.run("all", SOLUTION, progress=False, quiet=True)
    assert report.passed, str(report)
    assert [r.part for r in report.results] == ["steps"] * 4 + ["compensation"] * 4 + ["recovery"] * 3
    assert all(r.seeds_run == r.seeds_planned for r in report.results)


@pytest.mark.parametrize("bug", sorted(SAGA.bugs))
def test_each_classic_bug_is_caught_within_the_default_seeds(bug):
    assert_caught(saga_lab, SAGA.planted(bug), EXPECTED[bug], bug)


def test_labkit_own_orchestrator_passes():
    report = saga_lab.run("all", labkit_orchestrator, progress=False, quiet=True)
    assert report.passed, str(report)


# -- crashes at a log write ------------------------------------------------------------
def _orchestrator_sends(trial):
    return [
        (r[0], r[6])
        for r in trial.sim.trace.rows
        if r[1] is Kind.SEND and r[3] == "orchestrator" and isinstance(r[6], Request)
    ]


def test_dying_as_the_first_write_commits_leaves_no_saga_and_sends_nothing():
    trial, outcome = saga_lab.trial(
        "crash at every log write", SOLUTION, 0, [Fault(0.0, "crash at write", (1, "before"))]
    )
    assert outcome.passed and trial.world.crashes[0] == (0.0, "orchestrator")
    assert trial.world.submitted["o1"] is False  # the shop heard it failed
    statuses, _ = trial.world.read_log() if os.path.exists(trial.world.path) else ({}, {})
    assert "o1" not in statuses
    assert all(msg.saga_id != "o1" for _, msg in _orchestrator_sends(trial))


def test_dying_right_after_the_first_write_keeps_the_saga_and_sends_after_the_restart():
    trial, outcome = saga_lab.trial(
        "crash at every log write", SOLUTION, 1, [Fault(0.0, "crash at write", (1, "after"))]
    )
    assert outcome.passed
    o1 = [(t, m) for t, m in _orchestrator_sends(trial) if m.saga_id == "o1"]
    assert o1[0][0] >= 0.5 and o1[0][1].op is Op.DO and o1[0][1].step == 0  # resumed by the restarted one
    recovered = [r for r in trial.sim.trace.notes("recovered") if r.detail["saga"] == "o1"]
    assert recovered and "step=0, attempt=1" in recovered[0].detail["state"]


def test_every_crash_point_is_one_seed_and_the_enumeration_wraps():
    scenario = saga_lab.scenario("crash at every log write")
    points = [scenario.schedule(seed)[0].target for seed in range(scenario.seeds)]
    assert len(set(points)) == scenario.seeds and points[:3] == [(1, "before"), (1, "after"), (2, "before")]
    assert scenario.schedule(scenario.seeds)[0].target == (1, "before")


def test_trials_leave_no_log_file_behind(tmp_path, monkeypatch):
    # A temporary folder of this test's own: other tests running at the same time make theirs elsewhere.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    saga_lab.run("recovery", SAGA.planted("not logging before acting"), progress=False, quiet=True, seeds=2)
    assert glob.glob(os.path.join(tmp_path, "labkit-saga-lab-*")) == []


# -- the skeleton --------------------------------------------------------------------
def test_an_orchestrator_without_rules_fails_for_want_of_progress():
    class Idle(SagaOrchestrator):
        pass

    report = saga_lab.run("all", Idle, progress=False, quiet=True, shrink=False)
    assert not any(r.passed for r in report.results)
    assert {f.shown_violation.property for f in report.failures} == {FINISHED}
    assert any("send_step (part steps)" in n for n in report.notes)
    # The happy path has no fault: the verdict must not speak of "the last fault" (it did).
    happy = next(f for f in report.failures if f.scenario == "happy path").shown_violation.detail
    assert "last fault" not in happy and "by t = 18 s, with no fault left to strike since t = 3 s" in happy


def test_rules_are_added_by_name_to_a_subclass_only():
    class Mine(SagaOrchestrator):
        pass

    with pytest.raises(ValueError, match="'recover' is not one of the rules of the lab"):

        @Mine.rule
        def recover(self, ctx, saga):
            pass

    with pytest.raises(TypeError, match="add rules to your own subclass"):

        @SagaOrchestrator.rule
        def resume(self, ctx, saga):
            pass


def test_the_skeleton_checks_what_it_is_given(tmp_path):
    with pytest.raises(TypeError, match="log_path must be"):
        SagaOrchestrator("orchestrator", 3)
    node = SagaOrchestrator("orchestrator", tmp_path / "log.db")
    with pytest.raises(RuntimeError, match="has not started yet"):
        node.write(None, None)


# -- delegation ------------------------------------------------------------------------
def test_a_subclass_of_the_reference_is_refused():
    class Lazy(Orchestrator):
        pass

    reasons = saga_lab.check_submission(Lazy)
    assert reasons and "subclasses labkit.saga.orchestrator.Orchestrator" in reasons[0]
    with pytest.raises(LabFailed, match="scores zero"):
        saga_lab.grade("steps", Lazy)


def test_calling_the_references_rules_is_refused_under_any_name():
    decide = decide_reply

    class Caller(SOLUTION):  # type: ignore[misc, valid-type]
        pass

    def handle_step_reply(self, ctx, saga, reply):
        decide(saga, reply, ctx.now, self.policy)

    Caller.rule(handle_step_reply)
    reasons = saga_lab.check_submission(Caller)
    assert any("handle_step_reply uses decide" in r for r in reasons), reasons
    assert saga_lab.check_submission(SOLUTION) == []


def test_tripwires_stop_the_reference_while_grading_and_restore_it():
    with saga_lab.tripwires(), pytest.raises(DelegationError, match="labkit's saga orchestrator"):
        decide_reply(None, None, 0.0, None)
    with pytest.raises(AttributeError):  # the real function again: it reads the state it is given
        decide_reply(None, None, 0.0, None)


def test_grading_the_solution_passes_on_hidden_seeds(capsys):
    saga_lab.grade("recovery", SOLUTION, seeds=range(1000, 1003))
    assert "✓ graded run of recovery: 3 scenarios passed" in capsys.readouterr().out


# -- the picture ---------------------------------------------------------------------------
def test_the_failure_picture_marks_the_compensation_out_of_order():
    report = saga_lab.run(
        "refused steps", SAGA.planted("compensating in forward order"), progress=False, quiet=True
    )
    view = report.failures[0].show()
    v = view.violation
    assert v.property is REVERSE and v.node == "inventory"
    assert view.nodes == ["orchestrator", "inventory", "payment", "shipping"]
    states = view.states()
    assert states["inventory"]["o4/0"] == "compensated" and states["payment"]["o4/1"] == "applied"
    assert states["orchestrator"]["o4"].startswith("compensating step 0")
    star = next(t for t in view.figure().data if t.name == "violation")
    assert 0.5 < star.y[0] < 1 and list(star.x) == [pytest.approx(v.time)]  # just above lane 1
    logged = [r.detail["kind"] for r in view.trial.sim.trace.notes("saga log") if r.detail["saga"] == "o4"]
    assert logged.index(LogKind.STEP_FAILED.value) < logged.index(LogKind.COMP_SENT.value)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [s.name for s in saga_lab.scenarios])
def test_the_solution_passes_two_hundred_seeds_of_every_scenario(scenario):
    df = saga_lab.sweep(scenario, SOLUTION, 200, workers=1, progress=False)
    assert df.empty, df.head().to_string()
