"""The learner's path: the student version, the learner's own copy in course/,
refreshing one notebook, the learner's JupyterLab, and setting up on a machine
with an old Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.course import CONTENTS, COURSE
from labkit.course.lab import NBGRADER_LAB_EXTENSION, NBGRADER_SERVER_EXTENSIONS, lab_command
from labkit.course.student import find_entry, refresh, sources_digest, student_version, update_course

ROOT = Path(__file__).resolve().parent.parent


def _nb(*cells: dict) -> dict:
    return {"cells": list(cells), "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _code(source: str, **nbgrader) -> dict:
    meta = {"nbgrader": nbgrader} if nbgrader else {}
    return {
        "cell_type": "code",
        "metadata": meta,
        "source": source,
        "outputs": [{"x": 1}],
        "execution_count": 3,
    }


def _src(cell: dict) -> str:
    return "".join(cell["source"])


# ---------------------------------------------------------------------------
# The student version
# ---------------------------------------------------------------------------
def test_solutions_become_stubs_hidden_tests_go_and_outputs_are_cleared():
    answer = _code(
        "def f(x):\n    '''Doc.'''\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION",
        solution=True,
        grade=False,
    )
    test = _code(
        "check(f(1), 2, 'one')\n### BEGIN HIDDEN TESTS\ncheck(f(2), 3, 'two')\n### END HIDDEN TESTS\nverdict()"
    )
    whole = _code("x = 42", solution=True, grade=False)
    prose = {"cell_type": "markdown", "metadata": {"nbgrader": {"solution": True}}, "source": "Because."}
    original = _nb(answer, test, whole, prose)
    before = json.dumps(original, sort_keys=True)
    out = student_version(original)
    assert json.dumps(original, sort_keys=True) == before, "the instructor notebook must not change"
    cells = out["cells"]
    assert (
        _src(cells[0]) == "def f(x):\n    '''Doc.'''\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    )
    assert _src(cells[1]) == "check(f(1), 2, 'one')\nverdict()"
    assert _src(cells[2]) == "# YOUR CODE HERE\nraise NotImplementedError()"
    assert _src(cells[3]) == "YOUR ANSWER HERE"
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in cells if c["cell_type"] == "code")
    assert out["metadata"]["labkit"]["student_version"] == sources_digest(out)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
        ("### BEGIN SOLUTION\nx = 1", "without '### END SOLUTION'"),
        ("x = 1\n### END HIDDEN TESTS", "without '### BEGIN HIDDEN TESTS'"),
    ],
)
def test_broken_markers_are_refused_with_the_cell_named(source, message):
    with pytest.raises(ValueError, match=message) as err:
        student_version(_nb(_code("x = 0"), _code(source, grade=True)), "07-x.ipynb")
    assert "07-x.ipynb, cell 1" in str(err.value)


# ---------------------------------------------------------------------------
# The learner's copy: written when missing, never overwritten, newer versions reported
# ---------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's notebooks, which a test may 'git pull' into by editing."""
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_*"))
    return tmp_path


def _edit_source(path: Path, old: str, new: str) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        text = _src(cell)
        if old in text:
            cell["source"] = text.replace(old, new, 1)
            break
    else:
        raise AssertionError(f"{old!r} not in {path.name}")
    path.write_text(json.dumps(nb), encoding="utf-8")


def test_first_run_writes_every_notebook_then_nothing_changes(repo: Path):
    course = repo / "course"
    first = update_course(repo, course)
    assert first.added == [e.file for e in COURSE]
    assert first.message().startswith(f"Wrote {len(COURSE)} student notebook(s) to course/")
    stamps = {p.name: p.stat().st_mtime_ns for p in course.glob("*.ipynb")}
    second = update_course(repo, course)
    assert second.added == [] and second.current == [e.file for e in COURSE]
    assert "up to date" in second.message()
    assert {p.name: p.stat().st_mtime_ns for p in course.glob("*.ipynb")} == stamps
    text = (course / CONTENTS).read_text()
    assert "BEGIN SOLUTION" not in text and "raise NotImplementedError()" in text


def test_a_learners_edits_survive_and_a_newer_version_is_announced(repo: Path):
    course = repo / "course"
    update_course(repo, course)
    welcome, leader = course / CONTENTS, course / "07-leader-election.ipynb"
    _edit_source(welcome, "raise NotImplementedError()", "return n // 2 + 1  # my answer")
    mine = welcome.read_text()
    update_course(repo, course)
    assert welcome.read_text() == mine, "make lab must never overwrite a learner's notebook"

    # A git pull brings new versions of both notebooks; the learner changed only 00.
    _edit_source(
        repo / "notebooks" / CONTENTS, "# Distributed Systems, Hands-On", "# Distributed Systems, Hands On"
    )
    _edit_source(repo / "notebooks" / leader.name, "# 07 · Leader election", "# 07 · Leader election!")
    status = update_course(repo, course)
    assert status.newer_edited == [CONTENTS] and status.newer_untouched == [leader.name]
    assert welcome.read_text() == mine
    text = status.message()
    assert "make refresh NB=00" in text and "make refresh NB=07" in text and "backup" in text

    backup = refresh(repo, course, "00")
    assert backup is not None and backup.parent == course / "backup" and backup.read_text() == mine
    assert "Hands On" in welcome.read_text() and "my answer" not in welcome.read_text()
    assert update_course(repo, course).newer_edited == []
    second = refresh(repo, course, "00-welcome.ipynb")  # twice in one second: a second backup, not a clash
    assert second is not None and second != backup and backup.exists()


def test_refresh_names_the_notebooks_it_knows():
    assert find_entry("7").file == find_entry("07").file == find_entry("07-leader-election").file
    for bad in ("100", "99", "leader", ""):
        with pytest.raises(ValueError, match="NB must be a notebook number"):
            find_entry(bad)


# ---------------------------------------------------------------------------
# The learner's JupyterLab and the teacher's
# ---------------------------------------------------------------------------
def test_the_learners_lab_opens_course_without_nbgrader(repo: Path, capsys):
    argv, env, cwd = lab_command(repo)
    assert cwd == repo / "course" and (cwd / CONTENTS).exists()
    assert f"--ServerApp.root_dir={cwd}" in argv and argv[-1] == CONTENTS
    assert "Wrote" in capsys.readouterr().out
    config = Path(env["JUPYTER_CONFIG_PATH"].split(os.pathsep)[0])
    page = json.loads((config / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"] == {NBGRADER_LAB_EXTENSION: True}
    server = json.loads((config / "jupyter_server_config.json").read_text())
    assert server["ServerApp"]["jpserver_extensions"] == dict.fromkeys(NBGRADER_SERVER_EXTENSIONS, False)
    installed = Path(sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "nbgrader.json"
    if installed.exists():  # every server extension nbgrader enables is one we disable
        enabled = json.loads(installed.read_text())["ServerApp"]["jpserver_extensions"]
        assert set(enabled) <= set(NBGRADER_SERVER_EXTENSIONS)


def test_the_instructors_lab_opens_notebooks(repo: Path):
    argv, env, cwd = lab_command(repo, instructor=True)
    assert cwd == repo and argv[-1] == f"notebooks/{CONTENTS}"
    assert "JUPYTER_CONFIG_PATH" not in env or "jupyter-learner" not in env["JUPYTER_CONFIG_PATH"]
    assert not (repo / "course").exists()


# ---------------------------------------------------------------------------
# make lab on a machine whose python3 is too old
# ---------------------------------------------------------------------------
def test_make_lab_with_python_3_10_says_what_to_do_and_installs_nothing(tmp_path: Path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 3.10\n")  # answers the version question like Ubuntu 22.04's python3
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "lab", f"PYTHON={fake}", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "needs Python 3.11 or newer" in proc.stdout and "is 3.10" in proc.stdout
    assert "apt install python3.11" in proc.stdout and "conda env create -f environment.yml" in proc.stdout
    assert not venv.exists(), "nothing may be installed with the wrong Python"


# ---------------------------------------------------------------------------
# Run All under nbval, as under JupyterLab and nbgrader: the untouched student
# version runs to the end because its exercise cells are tagged raises-exception.
# ---------------------------------------------------------------------------
def _nbval(folder: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax", CONTENTS]
    return subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=300)


def test_an_untouched_student_notebook_passes_nbval_and_would_not_without_its_tags(tmp_path: Path):
    student = student_version(json.loads((ROOT / "notebooks" / CONTENTS).read_text()), CONTENTS)
    tagged, untagged = tmp_path / "tagged", tmp_path / "untagged"
    for folder in (tagged, untagged):
        folder.mkdir()
    (tagged / CONTENTS).write_text(json.dumps(student))
    for cell in student["cells"]:
        cell.get("metadata", {}).pop("tags", None)
    (untagged / CONTENTS).write_text(json.dumps(student))
    ok = _nbval(tagged)
    assert ok.returncode == 0, ok.stdout[-2000:]
    bad = _nbval(untagged)
    assert bad.returncode != 0 and "NotImplementedError" in bad.stdout
