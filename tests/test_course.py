"""The course map (labkit.course.COURSE) and the files generated from it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from labkit import course
from labkit.course import COURSE, by_number, nav_line, problems, sync

ROOT = Path(__file__).resolve().parent.parent


def test_the_repository_is_in_step_with_the_course_map():
    found = problems(ROOT)
    assert found == [], "\n".join(found)


def test_every_notebook_ends_with_the_generated_navigation_line():
    # Checked directly as well, so the rule is visible without reading problems().
    for entry in COURSE:
        nb = json.loads((ROOT / "notebooks" / entry.file).read_text(encoding="utf-8"))
        assert "".join(nb["cells"][-1]["source"]).splitlines()[-1] == nav_line(entry), entry.file


# Words about the text the course grew from, which learners never see (DESIGN.md: name naive code for what it is).
SEED_WORDS = re.compile(r"course's seed|the seed text|SeedRing|the version we started from|seeds/", re.I)


def test_no_notebook_speaks_of_the_seed_text():
    for entry in COURSE:
        nb = json.loads((ROOT / "notebooks" / entry.file).read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            found = SEED_WORDS.search("".join(cell["source"]))
            assert not found, f"{entry.file}: {found.group(0)!r}: call it a first attempt, not the seed"


# A markdown link in a notebook: [text](target).
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_point_to_notebooks_beside_them():
    # The learner's JupyterLab serves only course/ (make lab): a link that leaves it, such as ../docs/..., is
    # a 404 there. Relative links may name only another notebook of the course.
    names = {entry.file for entry in COURSE}
    for entry in COURSE:
        nb = json.loads((ROOT / "notebooks" / entry.file).read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            for target in LINK.findall("".join(cell["source"])):
                if re.match(r"(https?:|mailto:|#)", target):
                    continue
                assert target.split("#")[0] in names, (
                    f"{entry.file} links to {target}, outside the course folder"
                )


def test_every_notebook_ends_by_naming_labkit_files_to_read_next_and_they_exist():
    # DESIGN.md: each notebook ends with what to read next in labkit/ (the welcome notebook excepted).
    for entry in COURSE:
        if entry.file == course.CONTENTS:
            continue
        nb = json.loads((ROOT / "notebooks" / entry.file).read_text(encoding="utf-8"))
        last = "".join(nb["cells"][-1]["source"])
        found = re.search(r"read next in `?(labkit[\w/]*)`?", last, re.IGNORECASE)
        assert found, (
            f"{entry.file}: the last cell must say what to read next in labkit/ ('Read next in `labkit/...`')"
        )
        named = re.findall(r"`([\w/]+\.py)`", last[found.start() :])
        assert named, f"{entry.file}: the read-next paragraph names no file"
        folder = ROOT / found.group(1)
        missing = [n for n in named if not (ROOT / n).is_file() and not (folder / n).is_file()]
        assert not missing, f"{entry.file}: the read-next paragraph names files that do not exist: {missing}"


def test_nav_lines_link_the_contents_and_the_next_notebook_in_map_order():
    assert nav_line(COURSE[0]) == f"[Next: {COURSE[1].nn} · {COURSE[1].title} →]({COURSE[1].file})"
    for here, following in zip(COURSE[1:], COURSE[2:], strict=False):
        line = nav_line(here)
        assert line.startswith("[← Contents](00-welcome.ipynb) · ")
        assert f"]({following.file})" in line and f"{following.nn} · {following.title}" in line
    assert nav_line(COURSE[-1]) == "[← Contents](00-welcome.ipynb) · This is the end of the course."


def test_contents_and_readme_list_every_notebook_with_its_minutes():
    contents = "\n".join(course.contents_table())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for entry in COURSE[1:]:
        assert f"[{entry.title}]({entry.file})" in contents
    for entry in COURSE:
        assert re.search(
            rf"^\| {entry.nn} \| {re.escape(entry.title)} \|.*\| {entry.minutes} min \|$", readme, re.M
        )


def test_by_number():
    assert by_number(7).file == "07-leader-election.ipynb"
    with pytest.raises(KeyError, match="no notebook 99"):
        by_number(99)


# ---------------------------------------------------------------------------
# The checker catches what goes out of step, and sync repairs it
# ---------------------------------------------------------------------------
@pytest.fixture
def repo(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks", ignore=shutil.ignore_patterns(".ipynb_*"))
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def _edit_cell(path: Path, index: int, old: str, new: str) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    text = "".join(nb["cells"][index]["source"])
    assert old in text
    nb["cells"][index]["source"] = text.replace(old, new).splitlines(keepends=True)
    path.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def test_stale_navigation_contents_and_readme_are_found_then_synced(repo: Path):
    second = repo / "notebooks" / COURSE[2].file
    _edit_cell(second, -1, f"]({COURSE[3].file})", "](99-gone.ipynb)")
    _edit_cell(repo / "notebooks" / "00-welcome.ipynb", 1, f"]({COURSE[4].file})", "](elsewhere.ipynb)")
    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace(f"| {COURSE[5].title} |", "| Renamed |"))
    found = problems(repo)
    assert any("README.md" in p for p in found), found
    sync(repo)
    text = readme.read_text()
    readme.write_text(re.sub(r"/v2/gh/[^/]+/[^/]+/", "/v2/gh/OWNER/REPO/", text))
    assert any("Binder badge" in p for p in problems(repo))
    readme.write_text(text)
    _edit_cell(second, -1, f"]({COURSE[3].file})", "](99-gone.ipynb)")
    _edit_cell(repo / "notebooks" / "00-welcome.ipynb", 1, f"]({COURSE[4].file})", "](elsewhere.ipynb)")
    readme.write_text(readme.read_text().replace(f"| {COURSE[5].title} |", "| Renamed |"))
    found = problems(repo)
    assert any(COURSE[2].file in p and "navigation" in p for p in found), found
    assert any("00-welcome" in p for p in found), found
    assert any("README.md" in p for p in found), found
    changed = sync(repo)
    assert set(changed) == {f"notebooks/{COURSE[2].file}", "notebooks/00-welcome.ipynb", "README.md"}
    assert problems(repo) == []
    assert sync(repo) == []  # idempotent


def test_a_notebook_missing_from_the_map_or_the_disk_is_reported(repo: Path):
    shutil.copy(repo / "notebooks" / COURSE[1].file, repo / "notebooks" / "99-extra.ipynb")
    (repo / "notebooks" / COURSE[-1].file).unlink()
    found = problems(repo)
    assert any("99-extra.ipynb is not in labkit/course" in p for p in found), found
    assert any(f"COURSE lists {COURSE[-1].file}" in p for p in found), found
    with pytest.raises(FileNotFoundError, match=COURSE[-1].file):
        sync(repo)


def test_title_minutes_and_grade_ids_must_match_the_map(repo: Path):
    path = repo / "notebooks" / "07-leader-election.ipynb"
    _edit_cell(path, 0, "# 07 · Leader election", "# 06 · Leader election")
    _edit_cell(path, 0, "40 minutes", "20 minutes")
    text = path.read_text().replace('"nb07-fencing"', '"nb06-fencing"')
    path.write_text(text)
    found = problems(repo)
    assert any("must start with '# 07 · Leader election'" in p for p in found), found
    assert any("takes 40 minutes" in p for p in found), found
    assert any("'nb06-fencing' must start with 'nb07-'" in p for p in found), found


def test_a_notebook_without_a_navigation_line_gets_one(repo: Path):
    path = repo / "notebooks" / COURSE[1].file
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": ["print('last')"], "outputs": []})
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert any("navigation" in p for p in problems(repo))
    sync(repo)
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["cells"][-1]["cell_type"] == "markdown"
    assert "".join(nb["cells"][-1]["source"]).endswith(nav_line(COURSE[1]))
    assert problems(repo) == []


def test_the_readmes_reading_map_names_files_and_definitions_that_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Reading labkit beside the papers", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"`(labkit/[\w/]+\.py)`(?: \(([^)]*)\))?", table)
    assert len(named) >= 20, named
    for path, inside in named:
        assert (ROOT / path).is_file(), f"README names {path}, which does not exist"
        source = (ROOT / path).read_text(encoding="utf-8")
        for name in re.findall(r"`(\w+)`", inside):
            assert re.search(rf"^\s*(class|def) {name}\b", source, re.M), f"README: {path} defines no {name}"
