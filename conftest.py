"""pytest settings for the notebooks run through nbval.

The notebooks in ``notebooks/`` are the instructor version, with every
exercise solved. Under nbval each of their cells must run without an error,
even the exercise cells whose ``raises-exception`` tag lets a learner's
*Run All* carry on past an unanswered exercise; and no cell may write to
stderr: a warning in a notebook is a bug, fixed where it comes from.
"""

from __future__ import annotations

from pathlib import Path

import pytest

INSTRUCTOR_NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


def _is_instructor_cell(item: pytest.Item) -> bool:
    return type(item).__name__ == "IPyNbCell" and Path(str(item.path)).parent == INSTRUCTOR_NOTEBOOKS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_instructor_cell(item):
            item.options["check_exception"] = False  # the tag is for learners, not for the solutions


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield
    if _is_instructor_cell(item):
        stderr = [
            out.get("text", "")
            for out in (getattr(item, "test_outputs", None) or [])
            if out.get("output_type") == "stream" and out.get("name") == "stderr"
        ]
        if stderr:
            pytest.fail(f"{item.name} wrote to stderr:\n" + "".join(stderr)[-2000:], pytrace=False)
    return result
