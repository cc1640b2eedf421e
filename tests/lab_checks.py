"""What every lab's planted-bug test asserts, written once: the suite fails, within its default seeds, on a
property the bug breaks, and the shrunk schedule replays to the same violation."""

from __future__ import annotations

from typing import Any


def assert_caught(lab: Any, node: Any, expected: set[Any], bug: str) -> None:
    report = lab.run("all", node, progress=False, quiet=True, stop=True)
    assert not report.passed
    row = report.results[-1]
    failure = row.failure
    assert failure is not None and row.seeds_run <= row.seeds_planned
    v = failure.shown_violation
    assert v.property in expected, f"{bug}: {failure.summary()}"
    if failure.shrunk is not None:
        assert len(failure.shrunk.faults) <= len(failure.faults)
        again = lab.replay(node, row.scenario, failure.seed, failure.shrunk.faults)
        assert again.violation.property.name == failure.violation.property.name
    print(
        f"{bug}: caught by {row.scenario!r} after {row.seeds_run} seed(s): {v.property.name}; "
        f"schedule {len(failure.faults)} -> {len(failure.schedule)} faults"
    )
