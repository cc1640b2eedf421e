"""The seed's OrderSaga, run as written: what goes wrong, and that it is the seed's code."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from labkit.saga.naive import NAIVE_CALLS, OrderSaga, run_naive_saga
from labkit.saga.scenario import FAULT_KINDS
from labkit.saga.services import ServiceFaults

SEEDS = Path("/work/shared/seeds")


def _normalise(code: str) -> list[str]:
    lines = [re.sub(r"\s+#\s*noqa.*$", "", line).rstrip() for line in code.splitlines()]
    return [line.strip() for line in lines if line.strip()]


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed text is not on this machine")
def test_execute_is_the_seeds_code_verbatim():
    seed = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in SEEDS.glob("*.txt"))
    start = seed.index("    def execute(self, order_data):")
    end = seed.index("```", start)
    ours = inspect.getsource(OrderSaga.execute)
    assert _normalise(ours) == _normalise(seed[start:end])


def test_happy_path_does_everything_then_raises_name_error():
    run = run_naive_saga()
    assert run.attempts == (("raised", "NameError: name 'order_id' is not defined"),)
    assert run.outcome == "all"  # the order went through, the caller was told it failed


def test_a_retry_after_the_error_charges_twice():
    run = run_naive_saga(retries=1)
    assert run.effects.charges == 2 and run.effects.charged == 60
    assert any("charged 2 times" in v for v in run.violations)


@pytest.mark.parametrize(
    ("call", "outcome"), [("reserve", "none"), ("charge", "partial"), ("create_label", "partial")]
)
def test_a_crash_between_steps_is_never_cleaned_up(call, outcome):
    run = run_naive_saga(crash_before=call)
    assert run.attempts[0][0] == "crashed"
    assert run.outcome == outcome


def test_a_timeout_escapes_without_compensation():
    run = run_naive_saga(faults={"payment": FAULT_KINDS["slow"]})
    assert run.attempts[0][1].startswith("TimeoutError")
    assert run.outcome == "partial" and run.effects.charged == 30  # the slow charge landed


def test_a_failing_compensation_is_not_retried():
    run = run_naive_saga(
        faults={"shipping": ServiceFaults(reject=True), "payment": ServiceFaults(flaky_undo=1)}
    )
    assert run.attempts[0][1].startswith("PaymentError")
    assert run.outcome == "partial"


def test_rejections_are_handled_correctly_by_the_seed():
    for service, reason in [
        ("inventory", "insufficient_inventory"),
        ("payment", "payment_failed"),
        ("shipping", "shipping_failed"),
    ]:
        run = run_naive_saga(faults={service: ServiceFaults(reject=True)})
        assert reason in run.attempts[0][1] and run.outcome == "none" and run.ok


def test_validation():
    with pytest.raises(ValueError, match="crash_before"):
        run_naive_saga(crash_before="teleport")
    with pytest.raises(ValueError, match="retries"):
        run_naive_saga(retries=-1)
    assert set(NAIVE_CALLS) == {"reserve", "charge", "create_label", "refund", "release"}
