"""Self-check helpers for exercise test cells.

A learner working alone gets a clear verdict from every test cell: a line
starting with a check mark when the answer passes, and otherwise an
``AssertionError`` that says what was expected, what was found, and a hint.
nbgrader counts a cell that raises as failed, so the same cells grade a class.

>>> check(2 + 2, 4, "two plus two")
✓ two plus two
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check", "check_true", "check_close", "ExerciseFailed"]


class ExerciseFailed(AssertionError):
    """Raised by a self-check; the message says what to fix."""


def _fail(what: str, detail: str, hint: str | None) -> None:
    lines = [f"✗ {what}", f"  {detail}"]
    if hint:
        lines.append(f"  Hint: {hint}")
    raise ExerciseFailed("\n".join(lines))


def check(actual: Any, expected: Any, what: str, hint: str | None = None) -> None:
    """Pass when ``actual == expected``; otherwise explain the difference."""
    if actual == expected:
        print(f"✓ {what}")
        return
    _fail(what, f"expected {expected!r}, got {actual!r}", hint)


def check_true(condition: Any, what: str, hint: str | None = None, found: Any = None) -> None:
    """Pass when ``condition`` is truthy; ``found`` is shown on failure."""
    if condition:
        print(f"✓ {what}")
        return
    _fail(what, "this does not hold yet" + (f" (found {found!r})" if found is not None else ""), hint)


def check_close(
    actual: float, expected: float, what: str, hint: str | None = None, *, tol: float = 1e-6
) -> None:
    """Pass when ``actual`` is within ``tol`` (relative or absolute) of ``expected``."""
    try:
        ok = math.isclose(float(actual), float(expected), rel_tol=tol, abs_tol=tol)
    except (TypeError, ValueError):
        _fail(what, f"expected a number close to {expected!r}, got {actual!r}", hint)
        return
    if ok:
        print(f"✓ {what}")
        return
    _fail(what, f"expected about {expected!r} (±{tol:g}), got {actual!r}", hint)
