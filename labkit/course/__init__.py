"""The course map: every notebook, in reading order, in one place.

``COURSE`` below is the single source of truth for the order of the course.
Everything that lists the notebooks is generated from it:

* the contents table in ``notebooks/00-welcome.ipynb``,
* the table of notebooks in ``README.md``,
* the navigation line that ends every notebook
  (``[← Contents](00-welcome.ipynb) · [Next: 05 · Replication and quorums →](...)``),

and ``tests/test_course.py`` fails when a notebook, a table or a link is out of
step with it.

How to add a notebook (or renumber one)
---------------------------------------
1. Write ``notebooks/NN-short-title.ipynb``. Its first cell starts with
   ``# NN · Title`` and says how long it takes (``*Time: about 40 minutes.*``);
   its grade ids start with ``nbNN-``; its last cell ends with a navigation
   line (any text there is replaced in step 3).
2. Add one ``Notebook(...)`` line to ``COURSE`` below, in reading order.
3. Run ``make course-map`` (``python -m labkit.course sync``): it rewrites the
   contents table, the README table and every notebook's navigation line.
   Commit what it changed.
4. Add the notebook's widget steps to ``tests/browser/interactions.py``.

Renumbering is ``git mv`` plus an edit of the number here, then step 3.

Learners get the *student* version of the notebooks (see
:mod:`labkit.course.student`); ``python -m labkit.course --help`` lists the
commands.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from labkit import validation as valid

__all__ = [
    "COURSE",
    "Notebook",
    "by_number",
    "nav_line",
    "contents_table",
    "readme_table",
    "binder_repository",
    "binder_url",
    "binder_badge",
    "sync",
    "problems",
]

CONTENTS = "00-welcome.ipynb"
LEARNER_FOLDER = "course"  # where make lab and Binder put the learner's student notebooks


@dataclass(frozen=True, slots=True)
class Notebook:
    """One notebook of the course: where it is, what it is called, how long it takes."""

    number: int
    file: str
    title: str
    minutes: int
    ideas: str

    @property
    def nn(self) -> str:
        """The two-digit prefix, e.g. ``"07"``."""
        return f"{self.number:02d}"

    @property
    def stem(self) -> str:
        return self.file.removesuffix(".ipynb")


# fmt: off
COURSE: tuple[Notebook, ...] = (
    Notebook(0, "00-welcome.ipynb", "Welcome", 10,
             "how the course works: widgets, exercises, self-checks"),
    Notebook(1, "01-the-network-is-unreliable.ipynb", "The network is unreliable", 30,
             "latency, loss, duplication, reordering, partitions, crashes; space-time diagrams"),
    Notebook(2, "02-time-clocks-and-order.ipynb", "Time, clocks and order", 35,
             "clock skew and drift, last-writer-wins losing data, Lamport, vector and hybrid logical clocks"),
    Notebook(3, "03-broadcast-and-crdts.ipynb", "Broadcast and CRDTs", 50,
             "reliable, FIFO, causal and total order broadcast; counters, registers, an add-wins set and a "
             "shared text that converge without coordination (CRDTs)"),
    Notebook(4, "04-cap-theorem.ipynb", "The CAP theorem", 45,
             "a replicated register in consistency-first and availability-first modes under a partition; "
             "PACELC"),
    Notebook(5, "05-replication-and-quorums.ipynb", "Replication and quorums", 105,
             "N/R/W quorums, sloppy quorums and hinted handoff, read repair, siblings, anti-entropy; "
             "a lab: write Dynamo's coordinator, tested in the simulator"),
    Notebook(6, "06-consistent-hashing.ipynb", "Consistent hashing", 45,
             "the ring, virtual nodes, keys moved on join and leave, jump, rendezvous and bounded-load hashing"),
    Notebook(7, "07-leader-election.ipynb", "Leader election", 40,
             "Raft terms and votes, randomized timeouts, split votes, split-brain, fencing tokens"),
    Notebook(8, "08-log-replication.ipynb", "Log replication", 45,
             "AppendEntries, the commit rule, Figure 8, crash and restart, a replicated key-value store"),
    Notebook(9, "09-lab-build-raft.ipynb", "Lab: build Raft", 120,
             "write Raft yourself (election, log replication, persistence), tested like a lab in the "
             "simulator; a failure shrunk to a few faults and shown as a picture to step through"),
    Notebook(10, "10-raft-in-practice.ipynb", "Raft in practice", 50,
             "snapshots, PreVote and CheckQuorum, reads by ReadIndex and leases, adding and removing servers"),
    Notebook(11, "11-linearizability.ipynb", "Linearizability", 45,
             "histories, a checker, testing our own stores under faults"),
    Notebook(12, "12-model-checking.ipynb", "Model checking", 50,
             "every interleaving searched: states and actions, shortest counterexamples, bounds and symmetry, "
             "Figure 8 found automatically, an explorer to step through runs"),
    Notebook(13, "13-leaving-the-simulator.ipynb", "Leaving the simulator", 40,
             "our Raft as real processes over TCP, a nemesis without root, a real etcd cluster, "
             "the checker as judge"),
    Notebook(14, "14-transactions-and-isolation.ipynb", "Transactions and isolation", 60,
             "dirty writes and reads, read skew, lost updates, write skew, phantoms; isolation levels as rules; "
             "an anomaly checker; SQLite and PostgreSQL tested"),
    Notebook(15, "15-sagas.ipynb", "Sagas", 90,
             "distributed transactions without two-phase commit, compensations, crash recovery; "
             "a lab: write the orchestrator that recovers from its log, tested in the simulator"),
    Notebook(16, "16-event-sourcing.ipynb", "Event sourcing", 45,
             "an event store with optimistic concurrency, projections, snapshots, replay"),
    Notebook(17, "17-cascading-failures.ipynb", "Cascading failures", 50,
             "timeouts, retries with backoff and jitter, circuit breakers, load shedding"),
    Notebook(18, "18-capstone.ipynb", "Capstone", 40,
             "a sharded, replicated key-value store: consistent hashing over Raft groups"),
)
# fmt: on


def by_number(number: int) -> Notebook:
    """The notebook with this number; ``KeyError`` if the course has none."""
    valid.integer("number", number, ge=0)
    for nb in COURSE:
        if nb.number == number:
            return nb
    raise KeyError(f"the course has no notebook {number:02d}")


def _next(nb: Notebook) -> Notebook | None:
    i = COURSE.index(nb)
    return COURSE[i + 1] if i + 1 < len(COURSE) else None


def nav_line(nb: Notebook) -> str:
    """The line that ends ``nb``: back to the contents, on to the next notebook."""
    following = _next(nb)
    parts = [] if nb.file == CONTENTS else [f"[← Contents]({CONTENTS})"]
    if following is None:
        parts.append("This is the end of the course.")
    else:
        parts.append(f"[Next: {following.nn} · {following.title} →]({following.file})")
    return " · ".join(parts)


_HEADER = ["| # | Notebook | Ideas | Time |", "|---|----------|-------|------|"]


def contents_table() -> list[str]:
    """The contents table of ``00-welcome.ipynb`` (every notebook after it), as lines."""
    return _HEADER + [
        f"| {nb.nn} | [{nb.title}]({nb.file}) | {nb.ideas} | {nb.minutes} min |"
        for nb in COURSE
        if nb.file != CONTENTS
    ]


def readme_table() -> list[str]:
    """The table of notebooks in ``README.md``, as lines."""
    return _HEADER + [f"| {nb.nn} | {nb.title} | {nb.ideas} | {nb.minutes} min |" for nb in COURSE]


# ---------------------------------------------------------------------------
# The Binder link: which GitHub repository it builds is one setting,
# [tool.labkit] binder-repository = "owner/name" in pyproject.toml.
# ---------------------------------------------------------------------------
_GITHUB_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_GIT_REF = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")


def binder_repository(root: Path) -> tuple[str, str]:
    """(``owner/name``, branch) of the GitHub repository Binder builds, from pyproject.toml."""
    import tomllib

    root = Path(valid.instance("root", root, (str, os.PathLike)))
    valid.require(
        (root / "pyproject.toml").is_file(),
        "root",
        "the repository's folder (with pyproject.toml)",
        str(root),
    )
    settings = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["labkit"]
    return settings["binder-repository"], settings.get("binder-branch", "main")


def binder_url(repository: str, branch: str = "main") -> str:
    """The Binder launch link that opens the learner's contents notebook."""
    ok = isinstance(repository, str) and _GITHUB_NAME.match(repository)
    valid.require(bool(ok), "repository", "a GitHub 'owner/name'", repository)
    ok = isinstance(branch, str) and _GIT_REF.match(branch) and ".." not in branch
    valid.require(bool(ok), "branch", "a git branch or tag name", branch)
    return f"https://mybinder.org/v2/gh/{repository}/{branch}?urlpath=lab/tree/{LEARNER_FOLDER}/{CONTENTS}"


def binder_badge(repository: str, branch: str = "main") -> str:
    """The README's Binder badge line."""
    return f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder_url(repository, branch)})"


def github_repository(remote_url: str) -> str | None:
    """``owner/name`` from a GitHub remote URL (https or ssh), or None for other hosts."""
    m = re.match(
        r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)([^/]+/[^/]+?)(?:\.git)?/?$",
        remote_url,
    )
    return m.group(1) if m else None


# ---------------------------------------------------------------------------
# Reading and rewriting the files generated from COURSE
# ---------------------------------------------------------------------------
_TABLE_HEADER = re.compile(r"^\| # \| Notebook \|")


def _replace_table(lines: list[str], table: list[str], where: str) -> list[str]:
    """Replace the table that starts with a ``| # | Notebook |`` header."""
    start = next((i for i, line in enumerate(lines) if _TABLE_HEADER.match(line)), None)
    if start is None:
        raise ValueError(f"{where} has no table whose header starts with '| # | Notebook |'")
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return lines[:start] + table + lines[end:]


def _cell_lines(cell: dict) -> list[str]:
    source = cell["source"]
    return ("".join(source) if isinstance(source, list) else source).split("\n")


def _set_cell_lines(cell: dict, lines: list[str]) -> None:
    source = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    cell["source"] = [line for line in source if line]


def _looks_like_nav(line: str) -> bool:
    return f"]({CONTENTS})" in line or line.startswith("[Next:") or "end of the course" in line


def _write_notebook(path: Path, nb: dict) -> None:
    # The layout Jupyter itself writes (one-space indent, non-ASCII kept), so diffs stay small.
    path.write_text(json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _synced_notebook(path: Path, entry: Notebook) -> dict:
    nb = json.loads(path.read_text(encoding="utf-8"))
    last = nb["cells"][-1]
    lines = _cell_lines(last)
    if last["cell_type"] == "markdown" and lines and _looks_like_nav(lines[-1]):
        lines[-1] = nav_line(entry)
        _set_cell_lines(last, lines)
    else:
        nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": ["---\n", nav_line(entry)]})
    if entry.file == CONTENTS:
        cell = next(
            (c for c in nb["cells"] if any(_TABLE_HEADER.match(x) for x in _cell_lines(c))),
            None,
        )
        if cell is None:
            raise ValueError(f"{CONTENTS} has no cell with a '| # | Notebook |' table")
        _set_cell_lines(cell, _replace_table(_cell_lines(cell), contents_table(), CONTENTS))
    return nb


def sync(root: Path) -> list[str]:
    """Rewrite the contents table, the README table and every navigation line.

    ``root`` is the repository (the folder with ``notebooks/`` and
    ``README.md``). Returns the paths it changed, relative to ``root``.
    """
    root = Path(root)
    changed = []
    for entry in COURSE:
        path = root / "notebooks" / entry.file
        if not path.exists():
            raise FileNotFoundError(f"COURSE lists {entry.file}, but {path} does not exist")
        before = path.read_text(encoding="utf-8")
        nb = _synced_notebook(path, entry)
        if json.loads(before) != nb:
            _write_notebook(path, nb)
            changed.append(f"notebooks/{entry.file}")
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = _synced_readme(root, text)
    if new != text:
        readme.write_text(new, encoding="utf-8")
        changed.append("README.md")
    return changed


_BADGE = re.compile(r"^\[!\[Binder\]\(.*$", re.M)


def _synced_readme(root: Path, text: str) -> str:
    text = "\n".join(_replace_table(text.split("\n"), readme_table(), "README.md"))
    if not _BADGE.search(text):
        raise ValueError("README.md has no line starting with '[![Binder](' for the Binder badge")
    return _BADGE.sub(lambda _m: binder_badge(*binder_repository(root)), text, count=1)


def problems(root: Path) -> list[str]:
    """Everything that is out of step with ``COURSE``, one sentence each (empty when in step)."""
    root = Path(valid.instance("root", root, (str, os.PathLike)))
    valid.require(
        (root / "README.md").is_file(), "root", "the repository's folder (with README.md)", str(root)
    )
    out = []
    numbers = [nb.number for nb in COURSE]
    if numbers != sorted(set(numbers)):
        out.append(f"COURSE must list the notebooks in increasing order of number, got {numbers}")
    on_disk = sorted(p.name for p in (root / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    listed = sorted(nb.file for nb in COURSE)
    for name in sorted(set(on_disk) - set(listed)):
        out.append(f"notebooks/{name} is not in labkit/course COURSE: add it there")
    for name in sorted(set(listed) - set(on_disk)):
        out.append(f"COURSE lists {name}, which is not in notebooks/")
    for entry in COURSE:
        if not entry.file.startswith(f"{entry.nn}-"):
            out.append(f"{entry.file}: its number in COURSE is {entry.nn}")
        path = root / "notebooks" / entry.file
        if not path.exists():
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        first = "".join(nb["cells"][0]["source"])
        if entry.file != CONTENTS and not first.startswith(f"# {entry.nn} · {entry.title}"):
            out.append(f"{entry.file}: the first cell must start with '# {entry.nn} · {entry.title}'")
        if not re.search(rf"\b{entry.minutes} minutes", first):
            out.append(
                f"{entry.file}: the first cell must say it takes {entry.minutes} minutes, as COURSE does"
            )
        for cell in nb["cells"]:
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if gid and not gid.startswith(f"nb{entry.nn}-"):
                out.append(f"{entry.file}: grade_id {gid!r} must start with 'nb{entry.nn}-'")
        if _synced_notebook(path, entry) != nb:
            out.append(f"{entry.file}: navigation or contents out of date: run `make course-map`")
    readme = (root / "README.md").read_text(encoding="utf-8")
    if _synced_readme(root, readme) != readme:
        out.append(
            "README.md: the table of notebooks or the Binder badge is out of date: run `make course-map`"
        )
    return out
