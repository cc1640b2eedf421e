"""Visible checks never import what answers the exercise (DESIGN.md, "Exercises and grading").

A learner reads the visible part of a test cell; if it imported the labkit class that answers the
exercise, the exercise would be answered by calling it. Comparisons against labkit stay hidden.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# grade id of a test cell -> what answers its exercise in labkit
ANSWERED_BY = {
    "nb02-vector-compare-test": ("VectorClock", "Ordering"),
    "nb02-hlc-receive-test": ("HLC",),
    "nb03-causally-ready-test": ("CausalBroadcast", "VectorClock"),
    "nb03-gcounter-merge-test": ("GCounter",),
    "nb03-orset-test": ("ORSet",),
    "nb06-capacity-test": ("bounded_capacity", "BoundedLoadHash"),
    "nb08-sessions-check": ("KVStore", "state_machine"),
    "nb12-invariant-catches": ("election_safety", "RAFT_INVARIANTS"),
    "nb12-invariant-passes": ("election_safety", "RAFT_INVARIANTS"),
    "nb12-invariant-terms": ("election_safety", "RAFT_INVARIANTS"),
}


def _cells() -> dict[str, tuple[str, str]]:
    found = {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if grade_id in ANSWERED_BY:
                found[grade_id] = (path.name, "".join(cell["source"]))
    return found


@pytest.mark.parametrize("grade_id", sorted(ANSWERED_BY))
def test_visible_checks_do_not_import_the_answer(grade_id):
    name, source = _cells()[grade_id]
    visible = source.split("### BEGIN HIDDEN TESTS")[0]
    for answer in ANSWERED_BY[grade_id]:
        assert answer not in visible, f"{name} {grade_id}: the visible checks mention {answer}"


@pytest.mark.parametrize("grade_id", sorted(ANSWERED_BY))
def test_the_exercise_says_to_write_it_rather_than_call_labkit(grade_id):
    name, _ = _cells()[grade_id]
    cells = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))["cells"]
    ids = [c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in cells]
    i = ids.index(grade_id)
    # The exercise's own text: the markdown cells just before it, above its answer and any earlier test cells.
    while i > 0 and cells[i - 1]["cell_type"] == "code" and cells[i - 1].get("metadata", {}).get("nbgrader"):
        i -= 1
    text = "".join("".join(c["source"]) for c in cells[max(0, i - 3) : i] if c["cell_type"] == "markdown")
    assert "the point is to write" in text, f"{name}: the exercise before {grade_id} should say so"
