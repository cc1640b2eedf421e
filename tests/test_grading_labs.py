"""The grading round trip for the Raft lab (notebook 09), beyond full marks and zero.

tests/test_grading.py already grades every notebook, this one included, as the
instructor (full marks) and as an untouched student (zero). Here two more
submissions of notebook 09 go through nbgrader's autograde:

* the instructor's solution with one classic bug planted (a leader commits an
  earlier term's entry by counting replicas, Figure 8): every election scenario
  still scores its point, the Figure 8 scenario scores zero: partial marks;
* a submission that hands every rule to labkit's reference ``RaftNode``: it
  passes the visible self-checks, yet scores zero, and the graded output says
  why.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from labkit.labs.raft.scenarios import SCENARIOS
from tests import grading_tools as gt
from tests import lab_solutions

pytestmark = pytest.mark.grading

NB = lab_solutions.NOTEBOOK
SCENARIO_CELLS = {f"nb09-{re.sub('[^a-z0-9]+', '-', s.name.lower())}-test": s.part for s in SCENARIOS}
BUG = "committing an earlier term's entry by counting replicas"
DELEGATING_CLASS = '''from labkit.raft import RaftNode

class MyRaft(RaftNode):
    """Borrowed: labkit's own Raft does everything."""

    @classmethod
    def rule(cls, fn):
        return fn  # the rules below are never used
'''


def _delegating(nb: dict) -> dict:
    nb = json.loads(json.dumps(nb))
    cell = next(c for c in nb["cells"] if "".join(c["source"]).startswith(lab_solutions.CLASS_CELL))
    cell["source"] = DELEGATING_CLASS
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = gt.make_course(tmp_path_factory.mktemp("lab-course"), [NB])
    gt.generate(root)
    source = json.loads(NB.read_text(encoding="utf-8"))
    for student, nb in (("planted", lab_solutions.plant(source, BUG)), ("delegating", _delegating(source))):
        folder = tmp_path_factory.mktemp(student)
        (folder / NB.name).write_text(json.dumps(nb), encoding="utf-8")
        gt.submit(root, student, [folder / NB.name])
        gt.autograde(root, student)
    return root


def _points(root: Path, student: str) -> dict[str, tuple[float, float]]:
    """Score and maximum of every scenario's test cell (one point each)."""
    return {k: v for k, v in gt.scores(root, student)[NB.stem].items() if k in SCENARIO_CELLS}


def _outputs(root: Path, student: str, grade_id: str) -> str:
    nb = json.loads((root / "autograded" / student / gt.ASSIGNMENT / NB.name).read_text())
    cell = next(
        c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id
    )
    return "\n".join("".join(o.get("text", "")) + o.get("evalue", "") for o in cell.get("outputs", []))


def test_a_planted_bug_gets_partial_marks(graded):
    points = _points(graded, "planted")
    assert set(points) == set(SCENARIO_CELLS)  # a graded cell per scenario
    assert all(points[k] == (1.0, 1.0) for k, part in SCENARIO_CELLS.items() if part == "election")
    assert points["nb09-figure-8-test"] == (0.0, 1.0)
    total = sum(score for score, _ in points.values())
    assert 0 < total < sum(top for _, top in points.values()) == len(SCENARIOS)
    assert "Figure 8" in _outputs(graded, "planted", "nb09-figure-8-test")


def test_delegating_to_the_reference_scores_zero_and_says_why(graded):
    points = _points(graded, "delegating")
    assert {k: v[0] for k, v in points.items()} == dict.fromkeys(points, 0.0)
    said = _outputs(graded, "delegating", "nb09-initial-election-test")
    assert "✓ initial election: passed" in said  # the visible self-check cannot tell
    assert "scores zero" in said and "subclasses labkit.raft.node.RaftNode" in said
