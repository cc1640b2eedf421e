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
        if meta.get("solution"):
            assert c["cell_type"] == "code" and not meta["grade"] and not meta["locked"]
            assert "### BEGIN SOLUTION" in src and "### END SOLUTION" in src
        if meta.get("grade"):
            assert meta["locked"] and not meta["solution"] and meta["points"] > 0
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


def test_environment_files_name_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"]) | _names(project["optional-dependencies"]["test"])
    assert _conda_pip_section(ROOT / "environment.yml") == wanted
    assert _conda_pip_section(ROOT / "binder" / "environment.yml") == wanted


def test_binder_postbuild_installs_labkit():
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert "pip install" in post.read_text() and "-e ." in post.read_text()


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
