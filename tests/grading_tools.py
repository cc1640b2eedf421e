"""Build student versions of the notebooks and grade them with nbgrader.

Used by ``make student`` and by the grading round-trip test. Every notebook
in ``notebooks/`` becomes part of one nbgrader assignment, ``course``, in a
throw-away course directory; nbgrader does the real work (generate_assignment,
autograde), so what is tested is exactly what a teacher would run.

    python -m tests.grading_tools student build/student
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ASSIGNMENT = "course"


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def _nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    # nbgrader runs alembic as a subprocess: put this interpreter's bin first.
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    cmd = [sys.executable, "-m", "nbgrader", *args, f"--CourseDirectory.root={course}"]
    proc = subprocess.run(cmd, cwd=course, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_course(course: Path, notebooks: list[Path] | None = None) -> Path:
    """Lay out an nbgrader course directory with the instructor notebooks."""
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True, exist_ok=True)
    for nb in notebooks if notebooks is not None else notebook_paths():
        shutil.copy(nb, source / nb.name)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'distributed-systems-hands-on'\n"
        f"c.CourseDirectory.db_url = 'sqlite:///{course / 'gradebook.db'}'\n"
        "c.ExecutePreprocessor.timeout = 300\n"
        "c.Execute.timeout = 300\n"
    )
    return course


def generate(course: Path) -> Path:
    """Run ``nbgrader generate_assignment``; returns the release folder."""
    _nbgrader(course, "generate_assignment", ASSIGNMENT, "--force")
    return course / "release" / ASSIGNMENT


def submit(course: Path, student: str, notebooks: list[Path]) -> None:
    """Place a student's notebooks where ``nbgrader autograde`` looks."""
    folder = course / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    for nb in notebooks:
        shutil.copy(nb, folder / nb.name)
    _nbgrader(course, "db", "student", "add", student)


def autograde(course: Path, student: str) -> None:
    _nbgrader(course, "autograde", ASSIGNMENT, f"--student={student}", "--force")


def scores(course: Path, student: str) -> dict[str, dict[str, tuple[float, float]]]:
    """{notebook: {grade_id: (score, max_score)}} from the gradebook."""
    from nbgrader.api import Gradebook

    result: dict[str, dict[str, tuple[float, float]]] = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        submission = gb.find_submission(ASSIGNMENT, student)
        for nb in submission.notebooks:
            result[nb.name] = {g.name: (g.score, g.max_score) for g in nb.grades}
    return result


def export(course: Path) -> list[dict[str, str]]:
    """Run ``nbgrader export`` (its CSV plugin) and return the rows, one per student."""
    import csv

    target = course / "grades.csv"
    _nbgrader(course, "export", f"--to={target}")
    with target.open(newline="") as f:
        return list(csv.DictReader(f))


def build_student(out: Path) -> list[Path]:
    """Write the student version of every notebook into ``out``."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        release = generate(make_course(Path(tmp)))
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for nb in sorted(release.glob("*.ipynb")):
            shutil.copy(nb, out / nb.name)
            written.append(out / nb.name)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "student":
        sys.exit("usage: python -m tests.grading_tools student OUTPUT_DIR")
    paths = build_student(Path(sys.argv[2]))
    print(f"wrote {len(paths)} student notebooks to {sys.argv[2]}")
