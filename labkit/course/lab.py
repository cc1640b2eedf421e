"""Open the course in JupyterLab, as a learner or as an instructor.

``make lab`` (``python -m labkit.course lab``) brings the learner's folder
``course/`` up to date (see :mod:`labkit.course.student`) and opens it in a
JupyterLab that shows nothing of nbgrader: a learner needs no Validate button,
no Create Assignment panel and no Formgrader. ``make lab-instructor``
(``--instructor``) opens ``notebooks/``, the solved version, with nbgrader's
menus for a teacher.

nbgrader is hidden through a Jupyter config folder of our own, put first on
``JUPYTER_CONFIG_PATH`` for the learner's server only: it disables nbgrader's
lab extension (``labconfig/page_config.json``) and its server extensions
(``jupyter_server_config.json``). Nothing in the user's own Jupyter settings changes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from labkit.course import CONTENTS
from labkit.course.student import update_course

__all__ = [
    "learner_config",
    "learner_env",
    "lab_command",
    "NBGRADER_LAB_EXTENSION",
    "NBGRADER_SERVER_EXTENSIONS",
]

NBGRADER_LAB_EXTENSION = "@jupyter/nbgrader"
NBGRADER_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.validate_assignment",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
)


def learner_config(folder: Path) -> Path:
    """Write (or rewrite) the Jupyter config folder that hides nbgrader; returns it."""
    folder = Path(folder)
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    page = {"disabledExtensions": {NBGRADER_LAB_EXTENSION: True}}
    (folder / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=1) + "\n")
    server = {"ServerApp": {"jpserver_extensions": dict.fromkeys(NBGRADER_SERVER_EXTENSIONS, False)}}
    (folder / "jupyter_server_config.json").write_text(json.dumps(server, indent=1) + "\n")
    return folder


def learner_env(config: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with the learner's config folder first on JUPYTER_CONFIG_PATH."""
    env = dict(os.environ if env is None else env)
    rest = env.get("JUPYTER_CONFIG_PATH")
    env["JUPYTER_CONFIG_PATH"] = str(config) + (os.pathsep + rest if rest else "")
    return env


def _jupyter() -> str:
    beside = Path(sys.executable).parent / "jupyter"
    return str(beside) if beside.exists() else (shutil.which("jupyter") or "jupyter")


def lab_command(root: Path, *, instructor: bool = False) -> tuple[list[str], dict[str, str], Path]:
    """(argv, environment, working folder) that open the course in JupyterLab.

    For a learner this first writes the missing student notebooks into
    ``root/course`` and prints what :func:`~labkit.course.student.update_course` found.
    """
    root = Path(root).resolve()
    extra = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    if instructor:
        argv = [_jupyter(), "lab", *extra, f"notebooks/{CONTENTS}"]
        return argv, dict(os.environ), root
    folder = root / "course"
    print(update_course(root, folder).message())
    config = learner_config(root / "build" / "jupyter-learner")
    argv = [_jupyter(), "lab", *extra, f"--ServerApp.root_dir={folder}", CONTENTS]
    return argv, learner_env(config), folder


def open_lab(root: Path, *, instructor: bool = False) -> None:
    """Replace this process by JupyterLab (what ``make lab`` ends with)."""
    argv, env, cwd = lab_command(root, instructor=instructor)
    os.chdir(cwd)
    os.execvpe(argv[0], argv, env)
