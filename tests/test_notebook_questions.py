"""Predict, then run: every question a notebook asks has its answer right below it, collapsed.

A question is a markdown cell marked ``**Question.**`` or ``**Predict.**`` (one question), or
``**Questions...**`` / ``## Questions ...`` (a numbered list of them). Each needs its own answer in a collapsed block,

    <details><summary>Answer</summary>

    ...

    </details>

after the question, in the same cell or in one of the next few cells (so the learner can run the
cell the question is about first), and before the next question. A numbered list of questions may
instead share one ``<summary>Answers</summary>`` block that answers each by its number ("1. ...
2. ..."). The answers are written for learners, so a block must say something.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]-*.ipynb"))
LOOKAHEAD = 3  # cells after the question in which its answer may sit

ONE = re.compile(r"\*\*(?:Question|Predict)\.?\*\*")
MANY = re.compile(r"\*\*Questions\b[^*]*\*\*|^#+\s*Questions\b", re.MULTILINE)
ITEM = re.compile(r"^\s{0,3}(?:\d+\.|[-*])\s", re.MULTILINE)
HEADING = re.compile(r"^#", re.MULTILINE)
ANSWER = re.compile(r"<details>\s*<summary>\s*Answer(s?)\s*</summary>(.*?)</details>", re.DOTALL)
NUMBERED = re.compile(r"(?:^|\s)(\d+)\.\s")


def questions_in(text: str) -> tuple[int, int] | None:
    """(position of the first question marker, number of questions asked), or None."""
    many = MANY.search(text)
    if many:
        rest = text[many.end() :]
        heading = HEADING.search(rest)  # the list ends at the next heading
        listed = ITEM.findall(rest[: heading.start() if heading else len(rest)])
        return many.start(), max(1, len(listed))
    singles = list(ONE.finditer(text))
    if singles:
        return singles[0].start(), len(singles)
    return None


def answers_in(text: str) -> list[str]:
    """The answers in ``text``: one per "Answer" block, one per number in an "Answers" block."""
    out = []
    for plural, body in ANSWER.findall(text):
        if plural:
            parts = NUMBERED.split(body)[1:]  # number, answer, number, answer, ...
            out += [answer for answer in parts[1::2]] or [body]
        else:
            out.append(body)
    return out


def markdown(path: Path) -> list[tuple[int, str, str]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, c["cell_type"], "".join(c["source"])) for i, c in enumerate(cells)]


def unanswered(path: Path) -> list[str]:
    """Every question of the notebook without enough answers, described for a reader."""
    cells = markdown(path)
    problems = []
    for i, kind, text in cells:
        if kind != "markdown":
            continue
        found = questions_in(text)
        if found is None:
            continue
        start, asked = found
        answers = answers_in(text[start:])
        for _, later_kind, later in cells[i + 1 : i + 1 + LOOKAHEAD]:
            if later_kind == "markdown" and questions_in(later) is not None:
                break  # the next question's answers are its own
            if later_kind == "markdown":
                answers += answers_in(later)
        empty = [a for a in answers if not re.sub(r"<[^>]+>|\s", "", a)]
        if len(answers) < asked or empty:
            first_line = text[start:].splitlines()[0][:70]
            problems.append(
                f"cell {i} ({first_line!r}): {asked} question(s), {len(answers) - len(empty)} answer block(s)"
            )
    return problems


def test_the_notebooks_are_found():
    assert len(NOTEBOOKS) >= 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_question_has_a_collapsed_answer_below_it(path):
    assert unanswered(path) == [], "add <details><summary>Answer</summary> ... </details> below each question"


# -- the rule itself, on small made-up notebooks ----------------------------------------------------
def _nb(tmp_path: Path, *cells: tuple[str, str]) -> Path:
    path = tmp_path / "99-test.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": k, "source": [s]} for k, s in cells]}))
    return path


def test_a_question_without_an_answer_is_caught(tmp_path):
    assert unanswered(_nb(tmp_path, ("markdown", "**Question.** Why?"), ("code", "1 + 1")))
    assert unanswered(_nb(tmp_path, ("markdown", "**Predict.** What will it print?"), ("code", "1 + 1")))


def test_an_answer_in_the_cell_or_after_the_code_it_is_about_counts(tmp_path):
    block = "<details><summary>Answer</summary>\n\nBecause.\n\n</details>"
    assert unanswered(_nb(tmp_path, ("markdown", f"**Question.** Why?\n\n{block}"))) == []
    assert (
        unanswered(_nb(tmp_path, ("markdown", "**Question.** Why?"), ("code", "x"), ("markdown", block)))
        == []
    )


def test_an_answer_above_the_question_or_too_far_below_does_not_count(tmp_path):
    block = "<details><summary>Answer</summary>Because.</details>"
    assert unanswered(_nb(tmp_path, ("markdown", f"{block}\n\n**Question.** Why?")))
    far = [("code", "x")] * LOOKAHEAD
    assert unanswered(_nb(tmp_path, ("markdown", "**Question.** Why?"), *far, ("markdown", block)))


def test_each_listed_question_needs_its_own_answer_and_empty_ones_do_not_count(tmp_path):
    block = "<details><summary>Answer</summary>Because.</details>"
    listed = "**Questions to try with the widget**\n\n1. Why?\n2. How?\n"
    assert unanswered(_nb(tmp_path, ("markdown", listed + block)))
    assert unanswered(
        _nb(tmp_path, ("markdown", listed + block + "<details><summary>Answer</summary> </details>"))
    )
    assert unanswered(_nb(tmp_path, ("markdown", listed + block + block))) == []
    assert unanswered(_nb(tmp_path, ("markdown", "## Questions to think about\n\n1. Why?\n"))) != []
    bullets = (
        "## Questions to think about\n\n- Why?\n"
        + block
        + "\n- How?\n"
        + block
        + "\n## Summary\n\n- a\n- b\n"
    )
    assert unanswered(_nb(tmp_path, ("markdown", bullets))) == []
    assert unanswered(_nb(tmp_path, ("markdown", bullets.replace(block, "", 1))))


def test_a_shared_answers_block_must_answer_each_listed_question_by_number(tmp_path):
    listed = "**Questions to try with the widget**\n\n1. Why?\n2. How?\n"
    both = "<details><summary>Answers</summary>1. Because. 2. Like this.</details>"
    one = "<details><summary>Answers</summary>1. Because.</details>"
    assert unanswered(_nb(tmp_path, ("markdown", listed + both))) == []
    assert unanswered(_nb(tmp_path, ("markdown", listed + one)))


def test_a_later_question_does_not_borrow_an_earlier_ones_answer(tmp_path):
    block = "<details><summary>Answer</summary>Because.</details>"
    path = _nb(
        tmp_path, ("markdown", "**Question.** Why?"), ("markdown", "**Question.** How?"), ("markdown", block)
    )
    assert len(unanswered(path)) == 1
