"""The grading round trip for the quorum lab (notebook 05) and the saga lab (notebook 15).

tests/test_grading.py already grades every notebook, these two included, as the instructor (full marks)
and as an untouched student (zero, and Run All reaches the end). Here the two labs' sections go through
nbgrader's autograde as two more students. Each lab section is cut out as a notebook of its own (its
cells from the ``## Lab`` heading to the summary, unchanged), which keeps this test short:

* **planted**: the instructor's solution with one classic bug planted in each lab: hints never handed
  off (05), compensations in forward order (15). The parts before the broken rule still score, the
  part it belongs to scores zero: partial marks;
* **delegating**: each lab handed to labkit's reference (a node class that subclasses ``ReplicaNode``,
  an orchestrator that subclasses ``Orchestrator``). It passes the visible self-checks, yet scores zero,
  and the graded output says why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import grading_tools as gt
from tests.lab_notebook_solutions import QUORUM, SAGA, NotebookLab

pytestmark = pytest.mark.grading

PLANTED = {QUORUM: "hints never handed off", SAGA: "compensating in forward order"}
DELEGATING = {
    QUORUM: '''from labkit.replication import ReplicaNode


class MyStore(ReplicaNode):
    """Borrowed: labkit's own storage node does everything."""

    @classmethod
    def rule(cls, fn):
        return fn  # the rules below are never used
''',
    SAGA: '''from labkit.saga.orchestrator import Orchestrator


class MySagas(Orchestrator):
    """Borrowed: labkit's own orchestrator does everything."""

    def __init__(self, node_id, log_path, writes=None):
        super().__init__(node_id, log_path, synchronous="OFF")

    @classmethod
    def rule(cls, fn):
        return fn  # the rules below are never used
''',
}


def _name(lab: NotebookLab) -> str:
    return f"{lab.notebook.stem}-lab.ipynb"


def _delegating(lab: NotebookLab) -> dict:
    nb = lab.lab_only()
    cell = next(c for c in nb["cells"] if "".join(c["source"]).startswith(lab.class_cell))
    cell["source"] = DELEGATING[lab]
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    sources = tmp_path_factory.mktemp("lab-sources")
    paths = []
    for lab in (QUORUM, SAGA):
        path = sources / _name(lab)
        path.write_text(json.dumps(lab.lab_only()), encoding="utf-8")
        paths.append(path)
    root = gt.make_course(tmp_path_factory.mktemp("lab-course"), paths)
    gt.generate(root)
    for student, make in (
        ("planted", lambda lab: lab.lab_only(lab.plant(lab.source(), PLANTED[lab]))),
        ("delegating", _delegating),
    ):
        folder = tmp_path_factory.mktemp(student)
        for lab in (QUORUM, SAGA):
            (folder / _name(lab)).write_text(json.dumps(make(lab)), encoding="utf-8")
        gt.submit(root, student, sorted(folder.glob("*.ipynb")))
        gt.autograde(root, student)
    return root


def _points(root: Path, student: str, lab: NotebookLab) -> dict[str, tuple[float, float]]:
    got = gt.scores(root, student)[_name(lab).removesuffix(".ipynb")]
    return {k: v for k, v in got.items() if k in lab.parts}


def _outputs(root: Path, student: str, lab: NotebookLab, grade_id: str) -> str:
    nb = json.loads((root / "autograded" / student / gt.ASSIGNMENT / _name(lab)).read_text())
    cell = next(
        c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id
    )
    return "\n".join("".join(o.get("text", "")) + o.get("evalue", "") for o in cell.get("outputs", []))


def test_the_lab_sections_are_graded_in_three_parts():
    for lab, points in ((QUORUM, {"nb05-quorums": 4, "nb05-repair": 2, "nb05-sloppy": 4}),
                        (SAGA, {"nb15-steps": 4, "nb15-compensation": 3, "nb15-recovery": 3})):  # fmt: skip
        cells = [c.get("metadata", {}).get("nbgrader", {}) for c in lab.lab_only()["cells"]]
        assert {c["grade_id"]: c["points"] for c in cells if c.get("grade")} == points


def test_a_planted_bug_in_the_quorum_lab_gets_partial_marks(graded):
    points = _points(graded, "planted", QUORUM)
    print(f"quorum lab, hints never handed off: {points}")
    assert points == {"nb05-quorums": (4.0, 4.0), "nb05-repair": (2.0, 2.0), "nb05-sloppy": (0.0, 4.0)}
    said = _outputs(graded, "planted", QUORUM, "nb05-sloppy")
    assert "Hinted handoff" in said and "still keeps" in said


def test_a_planted_bug_in_the_saga_lab_gets_partial_marks(graded):
    points = _points(graded, "planted", SAGA)
    print(f"saga lab, compensating in forward order: {points}")
    assert points["nb15-steps"] == (4.0, 4.0) and points["nb15-compensation"] == (0.0, 3.0)
    assert 0 < sum(score for score, _ in points.values()) < 10
    assert "Reverse order" in _outputs(graded, "planted", SAGA, "nb15-compensation")


@pytest.mark.parametrize("lab", [QUORUM, SAGA], ids=["quorum", "saga"])
def test_delegating_to_the_reference_scores_zero_and_says_why(graded, lab):
    points = _points(graded, "delegating", lab)
    assert {k: v[0] for k, v in points.items()} == dict.fromkeys(lab.parts, 0.0)
    said = _outputs(graded, "delegating", lab, lab.parts[0])
    visible_failures = [
        line for line in said.splitlines() if line.startswith("✗ ") and "scores zero" not in line
    ]
    assert ": passed on 3 seeds" in said and visible_failures == []  # the visible self-check cannot tell
    reference = "ReplicaNode" if lab is QUORUM else "Orchestrator"
    assert "scores zero" in said and "subclasses labkit." in said and reference in said
