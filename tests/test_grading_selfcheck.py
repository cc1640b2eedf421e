"""The self-check a learner alone sees: a tick per passing check, every failing
check with what it expected, what it got and a hint, then one short verdict."""

from __future__ import annotations

import nbformat
import pytest

from labkit import grading
from labkit.grading import ExerciseFailed, check, check_close, check_failed, check_true, verdict


@pytest.fixture(autouse=True)
def _fresh_tally():
    grading._tally.clear()
    yield
    grading._tally.clear()


def test_passing_checks_print_a_tick_and_the_verdict_is_silent(capsys):
    check(4, 4, "two plus two")
    check_true(True, "a leader exists")
    check_close(0.1 + 0.2, 0.3, "floating sum")
    verdict()
    assert capsys.readouterr().out.splitlines() == ["✓ two plus two", "✓ a leader exists", "✓ floating sum"]


def test_every_failing_check_is_shown_not_only_the_first(capsys):
    check(3, 4, "two plus two", hint="count again")
    check(5, 5, "five")
    check_true(False, "at most one leader", hint="one leader per term", found=[1, 2])
    check_close(0.6, 0.5, "moved fraction", tol=0.01)
    assert capsys.readouterr().out.splitlines() == [
        "✗ two plus two",
        "  expected 4, got 3",
        "  Hint: count again",
        "✓ five",
        "✗ at most one leader",
        "  this does not hold yet (found [1, 2])",
        "  Hint: one leader per term",
        "✗ moved fraction",
        "  expected about 0.5 (±0.01), got 0.6",
    ]
    with pytest.raises(ExerciseFailed) as err:
        verdict()
    assert err.value.summary() == "3 of 4 checks failed"
    assert len(err.value.failures) == 3 and "expected 4, got 3" in str(err.value)
    # nbgrader scores a cell that raises as failed; AssertionError keeps plain pytest use natural.
    assert isinstance(err.value, AssertionError)


def test_a_failed_check_in_the_callers_words(capsys):
    check_failed(
        "initial election: two leaders in term 1", "must hold: one leader per term", hint="replay it"
    )
    assert capsys.readouterr().out.splitlines() == [
        "✗ initial election: two leaders in term 1",
        "  must hold: one leader per term",
        "  Hint: replay it",
    ]
    with pytest.raises(ExerciseFailed, match="1 of 1 checks failed"):
        verdict()


def test_the_verdict_starts_a_new_tally():
    check(1, 2, "x")
    with pytest.raises(ExerciseFailed):
        verdict()
    check(2, 2, "y")
    verdict()  # the earlier failure does not leak into the next cell


def test_check_close_refuses_non_numbers_and_no_hint_means_no_hint_line(capsys):
    check_close("half", 0.5, "moved fraction")
    check(1, 2, "x")
    out = capsys.readouterr().out
    assert "expected a number close to 0.5, got 'half'" in out
    assert "Hint" not in out
    with pytest.raises(ExerciseFailed, match="2 of 2 checks failed"):
        verdict()


# ---------------------------------------------------------------------------
# In a real kernel, as JupyterLab, nbval and nbgrader run a test cell
# ---------------------------------------------------------------------------
def _run(cells: list[str]) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    for cell in nb.cells:
        cell.metadata["tags"] = ["raises-exception"]
    NotebookClient(nb, timeout=60, kernel_name="python3", allow_errors=True).execute()
    return nb


def test_in_a_kernel_a_failing_cell_lists_every_failure_and_ends_with_one_short_error():
    nb = _run(
        [
            "from labkit.grading import check, check_true, verdict\n"
            "check(1 + 1, 3, 'first', hint='add again')\n"
            "check(2, 2, 'second')\n"
            "check_true(False, 'third')\n"
            "verdict()",
            "check(1, 1, 'next cell')\nverdict()",
        ]
    )
    first, second = nb.cells
    stdout = "".join(o.get("text", "") for o in first.outputs if o.output_type == "stream")
    assert "✗ first\n  expected 3, got 2\n  Hint: add again" in stdout
    assert "✓ second" in stdout and "✗ third" in stdout
    errors = [o for o in first.outputs if o.output_type == "error"]
    assert len(errors) == 1, first.outputs
    assert errors[0].ename == "ExerciseFailed"
    assert errors[0].traceback == ["ExerciseFailed: 2 of 3 checks failed (each marked ✗ above)"]
    assert not any(o.output_type == "stream" and o.name == "stderr" for o in first.outputs)
    # The next cell ran (Run All went on) and starts from a clean tally.
    assert [o.output_type for o in second.outputs] == ["stream"] and second.outputs[0].text == "✓ next cell\n"


def test_in_a_kernel_an_answer_not_written_yet_is_one_line_naming_it_however_deep_it_was_called():
    nb = _run(
        [
            "import labkit.grading\n"
            "class Server:\n"
            "    def on_message(self, msg):\n"
            "        # YOUR CODE HERE\n"
            "        raise NotImplementedError()",
            "def deliver(server, msgs):\n    for m in msgs:\n        server.on_message(m)\n"
            "deliver(Server(), [1, 2])",
            "print('still running')",
        ]
    )
    errors = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert len(errors) == 1 and errors[0].ename == "NotImplementedError"
    (line,) = errors[0].traceback
    assert line.startswith(
        "NotImplementedError: not written yet in Server.on_message (line 5 of the cell that defines it)"
    )
    assert nb.cells[2].outputs[0].text == "still running\n"


def test_an_answer_that_raises_fails_its_check_with_the_hint_and_no_traceback(capsys):
    from labkit.grading import outcome

    def ring_lookup(points, owners, h):  # the classic slip: no wrap-around past the last point
        from bisect import bisect_left

        return owners[bisect_left(points, h)]

    check(outcome(ring_lookup, [10, 50], ["a", "b"], 30), "b", "inside the ring")
    check(outcome(ring_lookup, [10, 50], ["a", "b"], 95), "a", "past the end", hint="wrap around")
    assert capsys.readouterr().out.splitlines() == [
        "✓ inside the ring",
        "✗ past the end",
        "  expected 'a', got an error: IndexError: list index out of range",
        "  Hint: wrap around",
    ]
    with pytest.raises(ExerciseFailed, match="1 of 2 checks failed"):
        verdict()


def test_an_answer_not_written_yet_still_raises_through_outcome():
    from labkit.grading import outcome

    def stub(n):
        raise NotImplementedError()

    with pytest.raises(NotImplementedError):
        outcome(stub, 3)
