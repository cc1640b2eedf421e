"""Self-checks for the exercise test cells.

A test cell makes its checks with :func:`check`, :func:`check_true` and
:func:`check_close`, and ends with :func:`verdict`::

    check(majority(3), 2, "a majority of 3 nodes is 2")
    check(majority(4), 3, "a majority of 4 nodes is 3", hint="half of 4 is 2")
    verdict()

Every check prints one line as it runs: ``✓ what`` when it passes, and when
it fails ``✗ what`` followed by what it expected, what it got and the hint.
A failing check does not stop the cell, so a learner sees *every* failing
check at once. :func:`verdict` then raises :class:`ExerciseFailed` when any
check of the cell failed: that error is what makes nbgrader score the cell
zero, and in Jupyter it shows as one short line instead of a traceback
through this module. So does the ``NotImplementedError`` of an answer not
written yet, wherever the learner's code was called from.

Test cells carry the ``raises-exception`` tag, so *Run All* carries on past a
failing one (JupyterLab, nbval and nbgrader all honour the tag or run on
regardless).

>>> check(2 + 2, 4, "two plus two")
✓ two plus two
>>> verdict()
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "check",
    "check_true",
    "check_close",
    "check_failed",
    "outcome",
    "verdict",
    "ExerciseFailed",
    "Raised",
]


class ExerciseFailed(AssertionError):
    """Raised by :func:`verdict` when checks failed; ``failures`` holds one text per failed check."""

    def __init__(self, failures: list[str], total: int) -> None:
        self.failures = list(failures)
        self.total = total
        super().__init__("\n".join([self.summary(), *self.failures]))

    def summary(self) -> str:
        return f"{len(self.failures)} of {self.total} checks failed"


@dataclass(slots=True)
class _Tally:
    """The checks made since the cell began (or since the last verdict)."""

    total: int = 0
    failures: list[str] = field(default_factory=list)

    def clear(self, *_args: object) -> None:
        self.total = 0
        self.failures.clear()


_tally = _Tally()


def _passed(what: str) -> None:
    _tally.total += 1
    print(f"✓ {what}")


def _failed(what: str, detail: str, hint: str | None) -> None:
    _tally.total += 1
    lines = [f"✗ {what}", f"  {detail}"]
    if hint:
        lines.append(f"  Hint: {hint}")
    text = "\n".join(lines)
    _tally.failures.append(text)
    print(text)


def check(actual: Any, expected: Any, what: str, hint: str | None = None) -> None:
    """Pass when ``actual == expected``; otherwise say what was expected and what was got."""
    if actual == expected:
        _passed(what)
    else:
        _failed(what, f"expected {expected!r}, got {actual!r}", hint)


def check_true(condition: Any, what: str, hint: str | None = None, found: Any = None) -> None:
    """Pass when ``condition`` is truthy; ``found`` is shown on failure."""
    if condition:
        _passed(what)
    else:
        _failed(what, "this does not hold yet" + (f" (found {found!r})" if found is not None else ""), hint)


def check_failed(what: str, detail: str, hint: str | None = None) -> None:
    """A check that failed, with the caller's own words for what went wrong (``detail``)."""
    _failed(what, detail, hint)


@dataclass(frozen=True, slots=True)
class Raised:
    """What :func:`outcome` returns when the learner's function raised: it compares unequal to any answer."""

    error: BaseException

    def __repr__(self) -> str:
        return f"an error: {type(self.error).__name__}: {self.error}"


def outcome(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or, if it raises, a :class:`Raised` that a check shows as the error.

    A test cell wraps the call where a classic slip raises (an index one past the end), so the learner
    gets the failed check and its hint, not a traceback. ``NotImplementedError`` (an answer not written
    yet) still propagates, as one short line. Where the learner's code runs inside a longer call (a
    simulation), test for :class:`Raised` and fail one check with :func:`check_failed` instead of going on.

    >>> check(outcome(lambda xs: xs[3], [1, 2]), 2, "the last element")
    ✗ the last element
      expected 2, got an error: IndexError: list index out of range
    >>> _tally.clear()
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - shown to the learner as the check's outcome
        return Raised(error)


def check_close(
    actual: float, expected: float, what: str, hint: str | None = None, *, tol: float = 1e-6
) -> None:
    """Pass when ``actual`` is within ``tol`` (relative or absolute) of ``expected``."""
    try:
        ok = math.isclose(float(actual), float(expected), rel_tol=tol, abs_tol=tol)
    except (TypeError, ValueError):
        _failed(what, f"expected a number close to {expected!r}, got {actual!r}", hint)
        return
    if ok:
        _passed(what)
    else:
        _failed(what, f"expected about {expected!r} (±{tol:g}), got {actual!r}", hint)


def verdict() -> None:
    """End a test cell: raise :class:`ExerciseFailed` if any of its checks failed.

    The tally starts again afterwards (and at the start of every notebook
    cell), so one cell's failures never leak into the next.
    """
    failures, total = list(_tally.failures), _tally.total
    _tally.clear()
    if failures:
        raise ExerciseFailed(failures, total)


# ---------------------------------------------------------------------------
# Inside IPython (Jupyter, nbval, nbgrader): a fresh tally per cell, and two
# errors of an unfinished exercise shown as one line each instead of a
# traceback: a failed verdict (the failing checks are printed above it), and
# the NotImplementedError of an answer not written yet, however deep in the
# simulator the learner's code was called from.
# ---------------------------------------------------------------------------
def _brief(etype: type, value: BaseException, tb: Any) -> str:
    if isinstance(value, ExerciseFailed):
        return f"{etype.__name__}: {value.summary()} (each marked ✗ above)"
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = ""
    if tb is not None:
        code = tb.tb_frame.f_code
        in_cell = "ipykernel_" in code.co_filename or code.co_filename.startswith("<")
        place = "the cell that defines it" if in_cell else code.co_filename
        where = f" in {getattr(code, 'co_qualname', code.co_name)} (line {tb.tb_lineno} of {place})"
    detail = f": {value}" if str(value) else ""
    return (
        f"{etype.__name__}{detail}: not written yet{where}. Complete the exercise, then run this cell again."
    )


def _show_briefly(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    shell._showtraceback(etype, value, [_brief(etype, value, tb)])  # a Jupyter error output: the cell failed


def _install_in_ipython() -> None:
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: verdict() raises as usual
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "_labkit_grading", False):
        return
    shell.events.register("pre_run_cell", _tally.clear)
    if hasattr(shell, "_showtraceback"):
        shell.set_custom_exc((ExerciseFailed, NotImplementedError), _show_briefly)
    shell._labkit_grading = True


_install_in_ipython()
