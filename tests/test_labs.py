"""The lab harness (labkit.labs), on a lab that is not Raft: a tally server that must never count backwards.

The tally lab is the smallest lab there is: a client node adds 1 to a server
every 50 ms; the learner's server keeps the total and must survive crashes
(it persists the total). Its one safety property: the total never goes back.
Planting a forgetful server (it does not read its disk back) proves that the
suite catches it, that shrinking finds the two faults that matter among the
noise, and that sweeps, grading and reproduction lines work for any lab.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from labkit.grading import ExerciseFailed, verdict
from labkit.labs import (
    MESSAGE_STORM,
    NODE_ERROR,
    TOO_SLOW,
    Fault,
    Lab,
    LabFailed,
    Property,
    Scenario,
    Trial,
    Violation,
    ddmin,
    grade,
    run_suite,
    shrink_schedule,
    sweep,
)
from labkit.sim import Context, Node, Simulator

NEVER_BACK = Property("Never back", "the total never decreases", "the tally lab", look_at="on_start")
COUNTED = Property("Counted", "every add that arrived is in the total")


@dataclass(frozen=True, slots=True)
class Add:
    amount: int


class Adder(Node):
    """Sends Add(1) to the server every 50 ms."""

    def on_start(self, ctx: Context) -> None:
        ctx.set_timer("tick", 0.05)

    def on_timer(self, ctx: Context, name: str) -> None:
        ctx.send("s", Add(1))
        ctx.set_timer("tick", 0.05)


class Tally(Node):
    """A correct server: adds up, and persists the total before anything else."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.total = 0

    def on_start(self, ctx: Context) -> None:
        self.total = ctx.storage.get("total", 0)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        self.total += msg.amount
        ctx.persist("total", self.total)


class ForgetfulTally(Tally):
    """Never reads its disk back: after a restart it counts from 0 again."""

    def on_start(self, ctx: Context) -> None:
        self.total = 0


class RaisingTally(Tally):
    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        if self.total >= 3:
            raise KeyError("oops")
        super().on_message(ctx, src, msg)


class StormTally(Tally):
    """Answers every message with two messages to itself: the work doubles without end."""

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        ctx.send("s", msg)
        ctx.send("s", msg)


class World:
    def __init__(self, seed: int, node: Any) -> None:
        self.sim = Simulator(seed, latency=0.005)
        self.sim.add_node("s", node)
        self.sim.add_node("c", Adder)
        self.ids = ("s",)


class TallyLab(Lab):
    name, handle, parts = "tally", "tally_lab", ("basics",)
    max_events = 50_000

    def build(self, trial: Trial) -> World:
        return World(trial.seed, trial.node)

    def inject(self, trial: Trial, fault: Fault) -> str:
        sim = trial.world.sim
        if fault.kind == "crash" and sim.is_up("s"):
            sim.crash("s")
        elif fault.kind == "restart" and not sim.is_up("s"):
            sim.restart("s")
        elif fault.kind == "loss":
            sim.set_loss(fault.target)
        return f"{fault.kind} {fault.target or ''}".strip()

    def watch(self, trial: Trial) -> Any:
        best = {"total": 0}

        def check(node_id: str, node: Any) -> None:
            if node_id != "s":
                return
            if node.total < best["total"]:
                raise Violation(NEVER_BACK, f"the total went from {best['total']} to {node.total}", node="s")
            best["total"] = node.total

        return check

    def describe(self, node: Any) -> dict[str, Any] | None:
        return {"total": node.total} if hasattr(node, "total") else None

    def check_submission(self, node: Any) -> list[str]:
        return ["it is the reference Tally itself"] if node is Tally else []


def steady(trial: Trial) -> None:
    trial.run_for(1.0)
    node = trial.world.sim.node("s")
    trial.expect(node.total >= 15, COUNTED, f"only {node.total} adds counted in 1 s")


def noisy_crashes(rng: random.Random) -> list[Fault]:
    """Loss changes (noise) around one crash and restart (what matters), at random times."""
    out = [Fault(round(rng.uniform(0.1, 1.8), 3), "loss", rng.choice([0.0, 0.1])) for _ in range(8)]
    crash = round(rng.uniform(0.4, 0.8), 3)
    return [*out, Fault(crash, "crash"), Fault(crash + 0.1, "restart")]


def crashes(trial: Trial) -> None:
    trial.run_for(2.0)


TallyLab.scenarios = (
    Scenario("steady", "basics", steady, seeds=3),
    Scenario("crashes", "basics", crashes, noisy_crashes, seeds=5),
)
LAB = TallyLab()


# -- faults, properties, scenarios ------------------------------------------------
def test_a_fault_refuses_a_negative_time_and_an_empty_kind():
    with pytest.raises(ValueError, match="at must be"):
        Fault(-1.0, "crash")
    with pytest.raises(ValueError, match="kind must be"):
        Fault(1.0, "")
    assert repr(Fault(1.5, "crash", "n1")) == "Fault(1.5, 'crash', 'n1')"


def test_select_by_part_scenario_or_all_and_refuses_unknown_names():
    assert [s.name for s in LAB.select("basics")] == ["steady", "crashes"]
    assert [s.name for s in LAB.select("crashes")] == ["crashes"]
    assert len(LAB.select("all")) == 2
    with pytest.raises(ValueError, match="part or scenario must be one of all, basics, steady, crashes"):
        LAB.select("nope")


# -- a suite -------------------------------------------------------------------------
def test_a_correct_server_passes_and_the_table_has_a_row_per_scenario(capsys):
    report = run_suite(LAB, "basics", Tally, progress=False)
    assert report.passed and report.failures == []
    table = report.table()
    assert list(table["scenario"]) == ["steady", "crashes"]
    assert list(table["seeds run"]) == [3, 5] and table["passed"].all()
    printed = capsys.readouterr().out
    assert "tally lab · basics · Tally" in printed and "2 of 2 scenarios passed" in printed


def test_a_forgetful_server_fails_and_the_schedule_shrinks_to_the_crash_and_restart():
    report = run_suite(LAB, "basics", ForgetfulTally, progress=False, quiet=True)
    assert [r.passed for r in report.results] == [True, False]
    failure = report.failure("crashes")
    assert failure.violation.property is NEVER_BACK and failure.violation.node == "s"
    assert len(failure.faults) == 10
    assert [f.kind for f in failure.shrunk.faults] == ["crash", "restart"]
    assert failure.shrunk.outcome.violation.property is NEVER_BACK
    # The reproduction line names the lab, the class, the scenario, the seed and the shrunk schedule.
    assert failure.reproduce.startswith(
        f"tally_lab.replay(ForgetfulTally, 'crashes', seed={failure.seed}, faults=["
    )
    assert "crash" in str(report) and "shrunk from 10 to 2" in failure.summary()


def test_shrinking_is_one_minimal_and_the_same_run_every_time():
    report = run_suite(LAB, "crashes", ForgetfulTally, progress=False, quiet=True)
    failure = report.failures[0]
    shrunk = list(failure.shrunk.faults)
    for i in range(len(shrunk)):  # leaving out any one more fault makes it pass
        _, outcome = LAB.trial("crashes", ForgetfulTally, failure.seed, shrunk[:i] + shrunk[i + 1 :])
        assert outcome.passed
    a = LAB.replay(ForgetfulTally, "crashes", failure.seed, shrunk)
    b = LAB.replay(ForgetfulTally, "crashes", failure.seed, shrunk)
    assert (a.violation.detail, a.violation.time, a.violation.event) == (
        b.violation.detail,
        b.violation.time,
        b.violation.event,
    )


def test_shrink_schedule_directly_and_its_budget():
    faults = noisy_crashes(random.Random(3))
    shrunk = shrink_schedule(LAB, "crashes", ForgetfulTally, 3, faults, NEVER_BACK.name)
    assert len(shrunk.faults) == 2 and shrunk.minimal
    tight = shrink_schedule(LAB, "crashes", ForgetfulTally, 3, faults, NEVER_BACK.name, max_runs=2)
    assert not tight.minimal and len(tight.faults) <= len(faults)


def test_ddmin_finds_the_two_items_that_matter():
    items = list(range(20))
    assert ddmin(items, lambda xs: 3 in xs and 17 in xs) == [3, 17]
    assert ddmin(items, lambda xs: True) == []
    assert ddmin([5], lambda xs: 5 in xs) == [5]
    calls = []
    ddmin(items, lambda xs: calls.append(1) or (3 in xs and 17 in xs), max_tests=3)
    assert len(calls) <= 3


def test_an_exception_in_a_node_is_a_failure_with_where_it_happened():
    report = run_suite(LAB, "steady", RaisingTally, progress=False, quiet=True)
    v = report.failures[0].violation
    assert v.property is NODE_ERROR and v.node == "s"
    assert v.detail.startswith("KeyError: 'oops' in on_message (line")


def test_a_message_storm_is_stopped_and_reported():
    report = run_suite(LAB, "steady", StormTally, progress=False, quiet=True)
    v = report.failures[0].violation
    assert v.property is MESSAGE_STORM and "more than 50,000 simulator events" in v.detail


def test_a_slow_server_is_stopped_by_the_trials_wall_clock_deadline():
    import time

    class SlowTally(Tally):
        def on_message(self, ctx: Context, src: str, msg: Any) -> None:
            time.sleep(0.05)
            super().on_message(ctx, src, msg)

    started = time.monotonic()
    _, outcome = LAB.trial("steady", SlowTally, 0, deadline=started + 0.2)
    assert outcome.violation.property is TOO_SLOW and time.monotonic() - started < 1.0


def test_a_time_budget_leaves_scenarios_unrun_and_failed():
    report = run_suite(LAB, "basics", Tally, progress=False, quiet=True, budget=1e-9)
    assert not report.passed
    assert all(r.skipped.startswith("time budget") for r in report.results)


def test_stop_ends_the_suite_at_the_first_failing_scenario():
    report = run_suite(LAB, ["crashes", "steady"], ForgetfulTally, progress=False, quiet=True, stop=True)
    assert [r.scenario for r in report.results] == ["crashes"]


def test_seeds_refused_when_not_a_count_or_ints():
    with pytest.raises(ValueError, match="seeds must be"):
        run_suite(LAB, "steady", Tally, seeds="three", progress=False, quiet=True)
    with pytest.raises(ValueError, match=r"seeds\[1\] must be an int"):
        run_suite(LAB, "steady", Tally, seeds=[1, 2.5], progress=False, quiet=True)


def test_report_check_makes_one_check_per_scenario_and_the_verdict_fails(capsys):
    assert run_suite(LAB, "basics", Tally, progress=False, quiet=True).check()
    verdict()
    assert "✓ steady: passed on 3 seeds" in capsys.readouterr().out
    assert not run_suite(LAB, "basics", ForgetfulTally, progress=False, quiet=True).check()
    with pytest.raises(ExerciseFailed, match="1 of 2 checks failed"):
        verdict()
    printed = capsys.readouterr().out
    assert "✗ crashes: Never back" in printed
    # Where to look first, then how to step through it.
    assert "Hint: look at on_start. Then run tally_lab.replay(ForgetfulTally" in printed
    assert f"\n  must hold: {NEVER_BACK.says} ({NEVER_BACK.source})\n" in printed  # the property, in words


def test_report_check_of_one_scenario_checks_that_one_only(capsys):
    report = run_suite(LAB, "basics", ForgetfulTally, progress=False, quiet=True)
    assert report.check("steady")
    verdict()  # the failing scenario is not this cell's business
    assert not report.check("crashes")
    with pytest.raises(ExerciseFailed, match="1 of 1 checks failed"):
        verdict()
    printed = capsys.readouterr().out
    assert printed.count("✓") == 1 and printed.count("✗") == 1 and "✗ crashes: Never back" in printed
    with pytest.raises(ValueError, match="scenario must be one of steady, crashes"):
        report.check("unknown")


def test_no_lab_names_a_scenario_like_one_of_its_parts():
    # A name that is both would select the whole part: a test cell for that one scenario would grade them all.
    from labkit.labs.quorum import quorum_lab
    from labkit.labs.raft import raft_lab
    from labkit.labs.saga import saga_lab

    for lab in (raft_lab, quorum_lab, saga_lab, LAB):
        assert not {s.name for s in lab.scenarios} & set(lab.parts), lab.name
        for s in lab.scenarios:
            assert lab.select(s.name) == [s]


# -- grading -----------------------------------------------------------------------
def test_grade_passes_a_correct_server_on_other_seeds(capsys):
    mine = type("Mine", (Tally,), {})
    report = grade(LAB, "basics", mine, seeds=range(50, 52))
    assert report.passed and "graded run of basics: 2 scenarios passed" in capsys.readouterr().out
    grade(LAB, "steady", mine, seeds=range(50, 52))
    assert "graded run of steady: 1 scenario passed" in capsys.readouterr().out


def test_grade_refuses_the_reference_with_a_reason():
    with pytest.raises(LabFailed, match="(?s)scores zero.*it is the reference Tally itself"):
        grade(LAB, "basics", Tally)


def test_grade_fails_with_the_scenario_and_the_reproduction_line():
    with pytest.raises(LabFailed, match=r"(?s)crashes: Never back.*tally_lab.replay\(ForgetfulTally"):
        grade(LAB, "basics", ForgetfulTally)


# -- sweeps ------------------------------------------------------------------------
def test_a_sweep_finds_the_same_failing_seeds_in_one_process_and_in_two():
    one = sweep(LAB, "crashes", ForgetfulTally, 40, workers=1, progress=False)
    two = sweep(LAB, "crashes", ForgetfulTally, 40, workers=2, progress=False)
    assert len(one) == 40 and set(one["property"]) == {NEVER_BACK.name}
    assert one.equals(two)
    assert one.attrs["seeds"] == 40 and two.attrs["workers"] == 2
    clean = sweep(LAB, "crashes", Tally, 20, workers=2, progress=False)
    assert clean.empty and list(clean.columns)[:3] == ["scenario", "seed", "property"]


def test_a_sweep_reaches_workers_with_a_class_defined_in_a_function():
    class Local(ForgetfulTally):  # like a class in a notebook: not importable by name
        pass

    df = sweep(LAB, "crashes", Local, 10, workers=2, progress=False)
    assert len(df) == 10


def test_a_sweep_refuses_bad_settings():
    with pytest.raises(ValueError, match="workers must be"):
        sweep(LAB, "crashes", Tally, 10, workers=0)
    with pytest.raises(TypeError, match="client must be a dask.distributed Client"):
        sweep(LAB, "crashes", Tally, 10, client=object())
    with pytest.raises(ValueError, match="scenario must be one of steady, crashes"):
        sweep(LAB, "nope", Tally, 10)


def test_notes_of_several_scenarios_name_each_item_once():
    # One scenario called read_repair and hand_off before they were written, another hand_off only: the
    # report said "read_repair (part repair), hand_off (part sloppy), hand_off (part sloppy)".
    from labkit.labs.suite import merge_notes

    head = "not written yet (NotImplementedError), so they did nothing"
    notes = [
        f"{head}: read_repair (part repair), hand_off (part sloppy)",
        f"{head}: hand_off (part sloppy)",
        "other",
    ]
    assert merge_notes(notes) == [f"{head}: read_repair (part repair), hand_off (part sloppy)", "other"]
