"""The notebooks' text is held to the bar of the code (issue 13).

Two rules: a citation says which source it means, and a claim corrected once stays corrected. Each
corrected claim is listed with the source that contradicts it, so an edit that brings it back fails here
and says why.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from labkit.course import COURSE

ROOT = Path(__file__).resolve().parent.parent


def markdown(number: str) -> str:
    """The markdown of notebook `number`, one cell per line, whitespace folded (a claim may wrap)."""
    (entry,) = [e for e in COURSE if e.file.startswith(f"{number}-")]
    nb = json.loads((ROOT / "notebooks" / entry.file).read_text(encoding="utf-8"))
    return "\n".join(
        " ".join("".join(c["source"]).split()) for c in nb["cells"] if c["cell_type"] == "markdown"
    )


# Sections that Ongaro's thesis has and the extended Raft paper has not (the paper's §9 stops at §9.3).
# In the Raft notebooks a bare "§4.2.3" reads as the paper's, so such a citation must say "thesis".
RAFT_NOTEBOOKS = ("07", "08", "09", "10", "12", "13", "18")
THESIS_ONLY = re.compile(r"§\s?(?:3\.\d+|4\.\d+|6\.\d+|9\.[4-9]|10\.\d+)(?:\.\d+)*")


def unlabelled_thesis_sections(text: str) -> list[str]:
    """Thesis-only section numbers with no "thesis" (or "dissertation") in the 60 characters before them."""
    return [
        m.group(0)
        for m in THESIS_ONLY.finditer(text)
        if not re.search(r"thesis|dissertation", text[max(0, m.start() - 60) : m.start()], re.I)
    ]


@pytest.mark.parametrize("number", RAFT_NOTEBOOKS)
def test_raft_notebooks_say_when_a_section_is_the_thesis(number):
    found = unlabelled_thesis_sections(markdown(number))
    assert not found, (
        f"notebook {number} cites {found} without saying 'thesis': the paper has no such section"
    )


def test_the_thesis_rule_catches_a_bare_section_and_accepts_a_labelled_one():
    assert unlabelled_thesis_sections("voters ignore them (§4.2.3), and") == ["§4.2.3"]
    assert unlabelled_thesis_sections("a transfer (§3.10) elects one") == ["§3.10"]
    assert (
        unlabelled_thesis_sections("voters ignore them (thesis §4.2.3), and the paper's §9.3 and §5.4.2")
        == []
    )


# Each corrected claim as it once read: (notebook, pattern, why it is wrong and which source says so).
CASES = [
    ("01", "Lamport drew the first", "Lamport 1978 reasons with a space-time diagram (Fig. 1)"),
    ("02", "64 bits, causally ordered", "64 bits is Kulkarni et al.'s encoding, not every database's"),
    ("03", "needs no guarantees at all|over any network", "Shapiro et al. 2011 assume eventual delivery"),
    ("04", "a writer first reads the highest version", "ABD 1995 has one writer (Lynch, Shvartsman 1997)"),
    (
        "07",
        r"its uncommitted entry is overwritten\.",
        "uncited: a leader overwrites conflicting entries, Raft §5.3",
    ),
    ("10", "it is always safe: any two majorities", "overlap is not enough: Ongaro's 2015 fix"),
    ("10", "In the thesis a server says yes when", "thesis §9.6 PreVote also asks: no leader heard lately"),
    ("11", "ABD's writers", "ABD 1995 has a single writer (Lynch and Shvartsman 1997)"),
    ("14", "and SQLite never waits", "SQLite waits if a busy timeout is set; the runner sets 0"),
    ("15", r"Salem \(§5\) describe the choice", "Sagas §4 opens with that choice; §5 is forward recovery"),
    ("16", r"the log \*is\* the data\. Instead", "uncited: event sourcing is Fowler 2005 and DDIA ch. 11"),
    ("16", r"if they hold, record an event;", "uncited: commands and events, DDIA ch. 11"),
    ("16", r"after version \*v\*; loading", "uncited: snapshots of state derived from events, DDIA ch. 11"),
    (
        "16",
        r"an old event is read\. Here",
        "uncited: upcasting, Greg Young, Versioning in an Event Sourced System",
    ),
]

# The Sagas paper (Garcia-Molina and Salem, SIGMOD 1987): 1 introduction (the guarantee), 2 user facilities,
# 3 saving code reliably, 4 backward recovery (log before acting; after a crash, compensate), 5 forward recovery
# (save-points), 6 other errors (a compensation that keeps failing), 7 sagas on an existing DBMS, 8 parallel
# sagas, 9 designing sagas. Citations in labkit once named the wrong section: (file, pattern, why).
SOURCE_CASES = [
    ("labkit/saga/log.py", r"section 5\)\. After a crash", "logging before acting is Sagas §4, not §5"),
    ("labkit/saga/orchestrator.py", r"sections 5-6", "the log and backward recovery are Sagas §4"),
    ("labkit/labs/saga/skeleton.py", r"saga log\*\* \(§5\)", "logging before acting is Sagas §4, not §5"),
    ("labkit/labs/saga/scenarios.py", r"backwards \(§5\)", "backward recovery after a crash is Sagas §4"),
    ("labkit/labs/saga/properties.py", r'"Garcia-Molina & Salem §5"', "resuming from the log is §4 and §5"),
]


@pytest.mark.parametrize("number, claim, why", CASES, ids=[f"{n}:{c[:24]}" for n, c, _ in CASES])
def test_a_corrected_claim_stays_corrected(number, claim, why):
    found = re.search(claim, markdown(number))
    assert not found, f"notebook {number} says {found.group(0)!r} again: {why}"


@pytest.mark.parametrize("path, claim, why", SOURCE_CASES, ids=[p for p, _, _ in SOURCE_CASES])
def test_a_corrected_citation_in_labkit_stays_corrected(path, claim, why):
    text = " ".join((ROOT / path).read_text(encoding="utf-8").split())
    found = re.search(claim, text)
    assert not found, f"{path} says {found.group(0)!r} again: {why}"
