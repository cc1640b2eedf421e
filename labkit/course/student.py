"""The student version of the notebooks, and a learner's own copy of them.

The notebooks in ``notebooks/`` are the instructor version: every exercise is
solved. A learner works in ``course/`` (git-ignored) on the *student* version,
which this module writes the way ``nbgrader generate_assignment`` does, without
needing nbgrader:

* the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
  ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` (a solution cell
  without those markers is replaced whole; a markdown one by "YOUR ANSWER HERE");
* the lines between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` go;
* outputs and execution counts go.

``tests/test_grading.py`` checks that the result matches nbgrader's cell for cell.

A learner's edits are never overwritten. :func:`update_course` only writes the
notebooks that are missing; each notebook it writes records a digest of what
it was given (``metadata.labkit.student_version``), so after a ``git pull`` it
can tell which notebooks have a newer version, and whether the learner has
changed their copy. :func:`refresh` replaces one notebook, keeping the old copy
in ``course/backup/``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from labkit.course import COURSE, Notebook, by_number

__all__ = ["student_version", "sources_digest", "CourseStatus", "update_course", "refresh", "find_entry"]

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
TEXT_STUB = "YOUR ANSWER HERE"


def _text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _set_text(cell: dict, text: str) -> None:
    lines = text.split("\n")
    cell["source"] = [line for line in [*(x + "\n" for x in lines[:-1]), lines[-1]] if line]


def _between(text: str, begin: str, end: str, stub: list[str] | None, where: str) -> tuple[str, bool]:
    """Drop the lines from ``begin`` to ``end`` (replaced by ``stub``, indented like ``begin``)."""
    out: list[str] = []
    inside = found = False
    for line in text.split("\n"):
        if begin in line:
            if inside:
                raise ValueError(f"{where}: nested {begin!r}")
            inside = found = True
            indent = line[: len(line) - len(line.lstrip())]
            out += [indent + s for s in stub or []]
        elif end in line:
            if not inside:
                raise ValueError(f"{where}: {end!r} without {begin!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {begin!r} without {end!r}")
    return "\n".join(out), found


def student_version(nb: dict, name: str = "notebook") -> dict:
    """The student version of an instructor notebook (a new dict; ``nb`` is not changed)."""
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb["cells"]):
        where = f"{name}, cell {i}"
        meta = cell.get("metadata", {}).get("nbgrader", {})
        stub = CODE_STUB if cell["cell_type"] == "code" else [TEXT_STUB]
        text, replaced = _between(_text(cell), BEGIN_SOLUTION, END_SOLUTION, stub, where)
        if meta.get("solution") and not replaced:
            text = "\n".join(CODE_STUB) if cell["cell_type"] == "code" else TEXT_STUB
        text, _ = _between(text, BEGIN_HIDDEN, END_HIDDEN, None, where)
        _set_text(cell, text)
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb.setdefault("metadata", {})["labkit"] = {"student_version": sources_digest(nb)}
    return nb


def sources_digest(nb: dict) -> str:
    """A digest of what the cells say (their kinds and sources; not outputs or metadata)."""
    content = [[c["cell_type"], _text(c)] for c in nb["cells"]]
    return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()[:16]


def _write(path: Path, nb: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _student_of(root: Path, entry: Notebook) -> dict:
    source = root / "notebooks" / entry.file
    return student_version(json.loads(source.read_text(encoding="utf-8")), entry.file)


@dataclass
class CourseStatus:
    """What :func:`update_course` found and did, one list of file names per case."""

    added: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    newer_untouched: list[str] = field(default_factory=list)  # a newer version; the learner changed nothing
    newer_edited: list[str] = field(default_factory=list)  # a newer version; the learner has edits

    def message(self, folder: str = "course") -> str:
        lines = []
        if self.added:
            lines.append(f"Wrote {len(self.added)} student notebook(s) to {folder}/: {', '.join(self.added)}")
        for name in self.newer_untouched:
            lines.append(
                f"A newer version of {name} is available. You have not changed your copy, so "
                f"`make refresh NB={name[:2]}` loses nothing (it keeps the old one in {folder}/backup/)."
            )
        for name in self.newer_edited:
            lines.append(
                f"A newer version of {name} is available. Your copy has your work in it: "
                f"`make refresh NB={name[:2]}` moves it to {folder}/backup/ and gives you the new one; "
                f"copy your answers over from the backup."
            )
        if not lines:
            lines.append(f"Your notebooks in {folder}/ are up to date.")
        return "\n".join(lines)


def update_course(root: Path, folder: Path) -> CourseStatus:
    """Write the student notebooks missing from ``folder``; report those with a newer version.

    Never changes a notebook that is already there.
    """
    root, folder = Path(root), Path(folder)
    status = CourseStatus()
    for entry in COURSE:
        fresh = _student_of(root, entry)
        target = folder / entry.file
        if not target.exists():
            _write(target, fresh)
            status.added.append(entry.file)
            continue
        mine = json.loads(target.read_text(encoding="utf-8"))
        given = mine.get("metadata", {}).get("labkit", {}).get("student_version")
        if given == fresh["metadata"]["labkit"]["student_version"]:
            status.current.append(entry.file)
        elif given == sources_digest(mine):
            status.newer_untouched.append(entry.file)
        else:
            status.newer_edited.append(entry.file)
    return status


def find_entry(which: str) -> Notebook:
    """The notebook named by ``which``: its number (``"7"``, ``"07"``) or its file name."""
    which = str(which).strip()
    if re.fullmatch(r"\d{1,2}", which):
        try:
            return by_number(int(which))
        except KeyError:
            pass
    else:
        for entry in COURSE:
            if which in (entry.file, entry.stem):
                return entry
    known = ", ".join(e.nn for e in COURSE)
    raise ValueError(f"NB must be a notebook number ({known}) or file name, got {which!r}")


def refresh(root: Path, folder: Path, which: str) -> Path | None:
    """Replace the learner's copy of one notebook by the current student version.

    The old copy is moved to ``folder/backup/`` first; returns its new path
    (``None`` when there was no old copy).
    """
    entry = find_entry(which)
    folder = Path(folder)
    target = folder / entry.file
    backup = None
    if target.exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = folder / "backup" / f"{entry.stem}.{stamp}.ipynb"
        n = 1
        while backup.exists():
            n += 1
            backup = folder / "backup" / f"{entry.stem}.{stamp}-{n}.ipynb"
        backup.parent.mkdir(parents=True, exist_ok=True)
        target.replace(backup)
    _write(target, _student_of(Path(root), entry))
    return backup
