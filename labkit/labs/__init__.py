"""Labs: the learner's code runs inside the simulator, is tested like a lab, and fails as a picture.

A **lab** is four things, and nothing in this package knows which protocol
it is about:

1. a **node factory**: the learner's class, plugged into a world the lab
   builds (:meth:`Lab.build`): for Raft, a ``RaftCluster`` of the learner's
   servers;
2. **scenarios** (:class:`Scenario`), grouped into **parts**: a short script
   that runs the world and checks what must happen by when;
3. **properties** (:class:`Property`): what a correct system guarantees,
   checked after every event (:meth:`Lab.watch`, for safety) or by the
   scripts (liveness, and the clients' view at the end);
4. a **fault-schedule generator** per scenario: ``faults(rng)`` returns the
   :class:`Fault` steps of one seed (crash this, cut that, at that time),
   carried out by :meth:`Lab.inject`.

The harness does the rest, the same for every lab:

* :func:`run_suite` (``lab.run(part, MyNode)``): every scenario of a part over
  many seeds, a progress bar and a table (pass/fail, seeds run, virtual
  time); each failure's schedule is shrunk to a minimal one
  (:mod:`~labkit.labs.shrink`, delta debugging) and kept as a
  :class:`Failure`: scenario, seed, the violated property, the shrunk
  schedule, a one-line reproduction, and :meth:`Failure.show`, a space-time
  diagram of the run to step through with the violation marked
  (:mod:`labkit.viz.labs`);
* :func:`sweep` (``lab.sweep(scenario, MyNode, 10_000)``): one scenario over
  thousands of seeds in worker processes or on a Dask cluster
  (``client=distributed.Client(...)``); the failing seeds as a DataFrame;
* :func:`grade` (``lab.grade(part, MyNode)``): for nbgrader's hidden tests:
  other seeds, a time budget, and no delegation to the reference.

The labs of the course: :mod:`labkit.labs.raft` (notebook 09), the quorum
store's coordinator :mod:`labkit.labs.quorum` (notebook 05) and a durable saga
orchestrator :mod:`labkit.labs.saga` (notebook 15). Two modules serve any lab:
:mod:`~labkit.labs.rules` (a skeleton node whose rules raise
``NotImplementedError`` until written, and still runs) and
:mod:`~labkit.labs.delegation` (refusing a submission that hands its rules to
labkit's reference).

Writing a lab
-------------
Subclass :class:`Lab`; the Raft lab (:mod:`labkit.labs.raft`) is the worked
example. The smallest one::

    class CounterLab(Lab):
        name, handle, parts = "counter", "counter_lab", ("basics",)

        def build(self, trial):              # a world with a .sim
            return CounterWorld(trial.seed, trial.node, **trial.scenario.options)

        def inject(self, trial, fault):      # the lab's fault vocabulary
            if fault.kind == "crash":
                trial.world.sim.crash(fault.target)
            return f"crash {fault.target}"

        def watch(self, trial):              # safety, after every event
            def check(node_id, node):
                if node.value < 0:
                    raise Violation(NON_NEGATIVE, f"{node_id} holds {node.value}", node=node_id)
            return check

        def describe(self, node):            # what the picture shows on hover
            return {"value": node.value}

    def one_crash(rng):
        return [Fault(rng.uniform(0.5, 1.5), "crash", "a")]

    def counts_up(trial):                    # the script: run, then check
        trial.run_for(2.0)
        trial.expect(trial.world.total() > 0, PROGRESS, "nothing was counted in 2 s")

    CounterLab.scenarios = (Scenario("counts up", "basics", counts_up, one_crash, seeds=20),)

Then ``CounterLab().run("basics", LearnerCounter)`` prints the table, and a
failure's ``show()`` draws it. A lab whose learners subclass a skeleton
(:mod:`~labkit.labs.rules`) names it and labkit's own solution as ``skeleton``
and ``reference``; refusing delegation, grading's tripwires and the note of
rules not written yet then come with them, and ``world_class = CounterWorld``
stands for a ``build`` that only hands the learner's class on. ``tests/test_labs.py`` holds a complete lab of
this size (a tally server that must never count backwards) with its tests. Keep to three rules: scripts check properties,
never the schedule (so a shrunk schedule is still a fair test); the faults'
times are absolute (so leaving one out moves no other); everything random
comes from the seed (``trial.rng``, ``rng``, the nodes' ``ctx.random``). A
schedule that enumerates cases instead of drawing them (every crash point in
turn) reads the seed as ``rng.trial_seed``; a world that takes something
outside the simulator (a file, a folder) gives it back in :meth:`Lab.clean_up`.
"""

from labkit.labs.core import (
    MESSAGE_STORM,
    NODE_ERROR,
    TOO_SLOW,
    Fault,
    Lab,
    Outcome,
    Property,
    Scenario,
    Trial,
    Violation,
)
from labkit.labs.grading import HIDDEN_SEEDS, grade
from labkit.labs.shrink import Shrunk, ddmin, shrink_schedule
from labkit.labs.suite import Failure, LabFailed, Report, ScenarioResult, run_suite
from labkit.labs.sweep import sweep

__all__ = [
    "HIDDEN_SEEDS",
    "MESSAGE_STORM",
    "NODE_ERROR",
    "TOO_SLOW",
    "Failure",
    "Fault",
    "Lab",
    "LabFailed",
    "Outcome",
    "Property",
    "Report",
    "Scenario",
    "ScenarioResult",
    "Shrunk",
    "Trial",
    "Violation",
    "ddmin",
    "grade",
    "run_suite",
    "shrink_schedule",
    "sweep",
]
