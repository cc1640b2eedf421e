"""Two-phase commit on the same services: atomic, but blocking while the
coordinator is down after the votes (DDIA ch. 9, "Coordinator failure")."""

from __future__ import annotations

import pytest

from labkit.saga.orchestrator import CrashPoint
from labkit.saga.scenario import run_order_saga
from labkit.saga.services import ServiceFaults
from labkit.saga.twopc import CoordinatorCrash, run_two_phase_commit


def test_commit_without_faults_is_atomic_and_brief():
    run = run_two_phase_commit(crash=CoordinatorCrash.NONE)
    assert run.decision == "commit" and run.outcome == "all" and run.ok
    assert run.blocking_window < 0.1
    assert all(outcome == "ok" for _, outcome in run.probes)


def test_a_no_vote_aborts_everything():
    run = run_two_phase_commit(faults={"shipping": ServiceFaults(reject=True)})
    assert run.decision == "abort" and run.outcome == "none" and run.ok


@pytest.mark.parametrize(
    ("crash", "decision"),
    [(CoordinatorCrash.AFTER_PREPARE, "abort"), (CoordinatorCrash.AFTER_DECISION, "commit")],
)
@pytest.mark.parametrize("down_for", [1.0, 3.0])
def test_coordinator_crash_after_prepare_blocks_participants(crash, decision, down_for):
    run = run_two_phase_commit(crash=crash, down_for=down_for)
    assert run.decision == decision and run.ok
    assert down_for <= run.blocking_window < down_for + 0.1
    locked = [t for t, outcome in run.probes if "in-doubt" in outcome]
    served = [t for t, outcome in run.probes if outcome == "ok"]
    assert locked and max(locked) <= down_for + 0.05 <= min(served)


def test_a_saga_does_not_lock_the_customer_while_its_orchestrator_is_down():
    run = run_order_saga(crashes=[CrashPoint(3)], down_for=3.0, probe_every=0.25, probe_for=3.0)
    assert run.ok and run.outcome == "all"
    assert run.probes and all(outcome == "ok" for _, outcome in run.probes)


def test_validation():
    with pytest.raises(TypeError, match="crash"):
        run_two_phase_commit(crash="after prepare")
