"""Project-level checks: notebook hygiene and launch files (navigation: tests/test_course.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def load(nb: Path) -> dict:
    return json.loads(nb.read_text(encoding="utf-8"))


def text_of(nb: Path, kind: str = "markdown") -> str:
    return "\n".join("".join(c["source"]) for c in load(nb)["cells"] if c["cell_type"] == kind)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(nb):
    dirty = [
        i
        for i, c in enumerate(load(nb)["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert dirty == [], f"{nb.name}: clear the outputs of cells {dirty} before committing"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_graded_cells_follow_the_nbgrader_format(nb):
    ids = []
    for c in load(nb)["cells"]:
        meta = c.get("metadata", {}).get("nbgrader")
        if not meta:
            continue
        assert meta["schema_version"] == 3
        ids.append(meta["grade_id"])
        src = "".join(c["source"])
        where = f"{nb.name}, {meta['grade_id']}"
        if meta.get("solution"):
            assert c["cell_type"] == "code" and not meta["grade"] and not meta["locked"], where
            assert "### BEGIN SOLUTION" in src and "### END SOLUTION" in src, where
        if meta.get("grade"):
            assert meta["locked"] and not meta["solution"] and meta["points"] > 0, where
            # Every check is reported, then one verdict fails the cell (labkit.grading).
            assert src.rstrip().splitlines()[-1] == "verdict()", f"{where}: a test cell ends with verdict()"
        # Run All carries on past an unanswered exercise (the instructor version still must not raise:
        # conftest.py makes nbval strict for notebooks/).
        assert "raises-exception" in c["metadata"].get("tags", []), f"{where}: tag it raises-exception"
    assert len(ids) == len(set(ids)), f"{nb.name}: duplicate grade_id"
    if not nb.name.startswith("00"):
        assert (
            sum(1 for c in load(nb)["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade")) >= 3
        )


def test_grade_ids_are_unique_across_the_course():
    seen: dict[str, str] = {}
    for nb in NOTEBOOKS:
        for c in load(nb)["cells"]:
            gid = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid:
                assert gid not in seen, f"grade_id {gid} is in {seen[gid]} and {nb.name}"
                seen[gid] = nb.name


# ---------------------------------------------------------------------------
# Launch files
# ---------------------------------------------------------------------------
def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[ ;]", r.strip(), maxsplit=1)[0].lower() for r in requirements}


def _conda_pip_section(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs = [line.strip()[2:] for line in lines[start + 1 :] if line.strip().startswith("- ")]
    assert "  - python=3.11" in lines, f"{path.name} must pin python=3.11"
    return _names(reqs)


def test_environment_files_install_what_learners_need_and_no_test_tools():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _names(project["dependencies"])
    tools = _names(project["optional-dependencies"]["test"])
    for env in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        assert _conda_pip_section(env) == runtime, env
    assert not runtime & tools and {"nbgrader", "playwright", "ruff"} <= tools


def test_binder_postbuild_installs_labkit_and_writes_the_student_notebooks():
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    commands = [
        line.strip() for line in post.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    assert "python -m pip install --no-deps -e ." in commands
    assert "python -m labkit.course student" in commands  # writes course/, which the Binder link opens


def test_the_binder_badge_is_a_well_formed_launch_link_to_the_student_contents():
    from urllib.parse import parse_qs, urlparse

    from labkit.course import CONTENTS, LEARNER_FOLDER, binder_badge, binder_repository, binder_url

    repository, branch = binder_repository(ROOT)
    readme = (ROOT / "README.md").read_text()
    assert binder_badge(repository, branch) in readme.splitlines()
    url = urlparse(re.search(r"\]\((https://mybinder\.org/v2/gh/[^)]+)\)", readme).group(1))
    assert (url.scheme, url.netloc) == ("https", "mybinder.org")
    owner, name, ref = url.path.removeprefix("/v2/gh/").split("/")
    assert f"{owner}/{name}" == repository and ref == branch
    assert "OWNER" not in repository and "REPO" not in repository
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", owner) and re.fullmatch(r"[A-Za-z0-9._-]+", name)
    assert parse_qs(url.query) == {"urlpath": [f"lab/tree/{LEARNER_FOLDER}/{CONTENTS}"]}
    for bad in ("OWNER", "a/b/c", "a b/c", "-x/y"):
        with pytest.raises(ValueError, match="repository must be"):
            binder_url(bad)


def test_github_remotes_name_their_repository():
    from labkit.course import github_repository

    assert github_repository("https://github.com/ann/course.git") == "ann/course"
    assert github_repository("git@github.com:ann/course.git") == "ann/course"
    assert github_repository("https://github.com/ann/course") == "ann/course"
    assert github_repository("https://gitlab.com/ann/course.git") is None


def test_repo2docker_accepts_the_binder_folder(tmp_path):
    exe = shutil.which("jupyter-repo2docker", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("jupyter-repo2docker is not installed (pip install jupyter-repo2docker)")
    # A copy with only what Binder reads, so the check does not depend on local clutter.
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "binder", repo / "binder")
    for name in ("pyproject.toml", "README.md", "environment.yml"):
        shutil.copy(ROOT / name, repo / name)
    proc = subprocess.run(
        [exe, "--no-build", "--no-run", "--debug", str(repo)], capture_output=True, text=True, timeout=300
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "binder/environment.yml" in out, "repo2docker did not pick up binder/environment.yml"
    assert "./binder/postBuild" in out, "repo2docker would not run binder/postBuild"
    assert "python=3.11" in out


def test_ci_script_runs_make_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
