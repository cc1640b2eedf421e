"""The teacher's round trip with nbgrader, headless.

nbgrader builds the student version of every notebook, and so does
labkit.course.student (what ``make lab`` and Binder give a learner, without
nbgrader): the two must agree cell for cell. Then the instructor notebooks are
autograded as one student and labkit's untouched student versions as another.
The instructor must score full marks, the untouched student version zero on
every graded cell, and in both every code cell must have run (Run All reaches
the end) and no cell outside the exercises may show an error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit.course.student import student_version
from tests import grading_tools as gt

pytestmark = pytest.mark.grading

NOTEBOOKS = gt.notebook_paths()


def graded_cells(nb_path: Path) -> dict[str, float]:
    nb = json.loads(nb_path.read_text())
    out = {}
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            out[meta["grade_id"]] = float(meta["points"])
    return out


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = gt.make_course(tmp_path_factory.mktemp("course"))
    release = gt.generate(root)
    assert [p.name for p in sorted(release.glob("*.ipynb"))] == [p.name for p in NOTEBOOKS]
    ours = tmp_path_factory.mktemp("labkit-student")
    for nb in NOTEBOOKS:
        (ours / nb.name).write_text(json.dumps(student_version(json.loads(nb.read_text()), nb.name)))
    student_nbs = sorted(ours.glob("*.ipynb"))
    gt.submit(root, "instructor", NOTEBOOKS)
    gt.submit(root, "untouched", student_nbs)
    gt.autograde(root, "instructor")
    gt.autograde(root, "untouched")
    return root


def test_exported_grades_give_full_marks_and_zero(course):
    # What a teacher takes away: the CSV written by `nbgrader export`.
    total = sum(sum(graded_cells(nb).values()) for nb in NOTEBOOKS)
    assert total > 0
    rows = {row["student_id"]: row for row in gt.export(course)}
    assert set(rows) == {"instructor", "untouched"}
    for student, expected in (("instructor", total), ("untouched", 0.0)):
        row = rows[student]
        assert row["assignment"] == gt.ASSIGNMENT
        assert float(row["max_score"]) == total
        assert float(row["score"]) == expected, (
            f"{student}: exported score {row['score']}, expected {expected}"
        )


def _errors_outside_tests(autograded: Path) -> list[str]:
    """Cells that did not run, and errors or stderr anywhere but in a graded test cell."""
    nb = json.loads(autograded.read_text())
    bad = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if cell.get("execution_count") is None:
            bad.append(f"cell {i} did not run")
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                bad.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                bad.append(f"cell {i} wrote to stderr: {out.get('text', '')[:300]}")
    return bad


def _cells(nb_path: Path) -> list[tuple[str, str, list[str]]]:
    nb = json.loads(nb_path.read_text())
    return [
        (c["cell_type"], "".join(c["source"]), c.get("metadata", {}).get("tags", [])) for c in nb["cells"]
    ]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_labkit_student_version_is_nbgraders_cell_for_cell(course, nb):
    theirs = _cells(course / "release" / gt.ASSIGNMENT / nb.name)
    ours = _cells(course / "submitted" / "untouched" / gt.ASSIGNMENT / nb.name)
    assert ours == theirs


def test_student_version_strips_solutions_and_hidden_tests(course):
    for nb in sorted((course / "submitted" / "untouched" / gt.ASSIGNMENT).glob("*.ipynb")):
        text = nb.read_text()
        assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text, nb.name
        if graded_cells(nb):
            assert "raise NotImplementedError()" in text, nb.name


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_instructor_version_scores_full_marks(course, nb):
    expected = graded_cells(nb)
    got = gt.scores(course, "instructor")[nb.stem]
    assert set(expected) <= set(got), f"grades missing for {sorted(set(expected) - set(got))}"
    assert {k: v[1] for k, v in got.items() if k in expected} == expected
    assert {k: v[0] for k, v in got.items() if k in expected} == expected
    assert _errors_outside_tests(course / "autograded" / "instructor" / gt.ASSIGNMENT / nb.name) == []


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_untouched_student_version_scores_zero_and_still_runs(course, nb):
    expected = graded_cells(nb)
    got = gt.scores(course, "untouched")[nb.stem]
    assert set(expected) <= set(got), f"grades missing for {sorted(set(expected) - set(got))}"
    assert {k: v[0] for k, v in got.items() if k in expected} == dict.fromkeys(expected, 0.0)
    assert _errors_outside_tests(course / "autograded" / "untouched" / gt.ASSIGNMENT / nb.name) == []
