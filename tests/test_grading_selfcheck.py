"""The self-check a learner alone sees: a tick on success, and on failure a
message that says what was expected, what was found, and a hint."""

from __future__ import annotations

import pytest

from labkit.grading import ExerciseFailed, check, check_close, check_true


def test_passing_checks_print_a_tick(capsys):
    check(4, 4, "two plus two")
    check_true(True, "a leader exists")
    check_close(0.1 + 0.2, 0.3, "floating sum")
    assert capsys.readouterr().out.splitlines() == ["✓ two plus two", "✓ a leader exists", "✓ floating sum"]


def test_a_wrong_value_says_expected_got_and_hint():
    with pytest.raises(ExerciseFailed) as err:
        check(3, 4, "two plus two", hint="count again")
    msg = str(err.value)
    assert msg.splitlines() == ["✗ two plus two", "  expected 4, got 3", "  Hint: count again"]
    # nbgrader counts a cell that raises AssertionError as failed.
    assert isinstance(err.value, AssertionError)


def test_check_true_shows_what_was_found():
    with pytest.raises(ExerciseFailed, match=r"does not hold yet \(found \[1, 2\]\)[\s\S]*Hint: one leader"):
        check_true(False, "at most one leader", hint="one leader per term", found=[1, 2])


def test_check_close_reports_tolerance_and_non_numbers():
    with pytest.raises(ExerciseFailed, match=r"expected about 0\.5 \(±0\.01\), got 0\.6"):
        check_close(0.6, 0.5, "moved fraction", tol=0.01)
    with pytest.raises(ExerciseFailed, match=r"expected a number close to 0\.5, got 'half'"):
        check_close("half", 0.5, "moved fraction")


def test_no_hint_means_no_hint_line():
    with pytest.raises(ExerciseFailed) as err:
        check(1, 2, "x")
    assert "Hint" not in str(err.value)
