"""The first attempt at an order saga (labkit.saga.naive.OrderSaga), run as written.

Notebook 15 prints ``OrderSaga.execute`` and then shows what goes wrong with
it. The structural tests below read that very source (as the learner does) and
check that each flaw the notebook names is really in it, so nobody can quietly
"fix" the code the notebook criticises; the behavioural tests run it in the
simulator and watch each flaw do its damage.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import pytest

from labkit.saga.naive import NAIVE_CALLS, OrderSaga, run_naive_saga
from labkit.saga.scenario import FAULT_KINDS
from labkit.saga.services import ServiceFaults

SERVICES = {"inventory_service", "payment_service", "shipping_service"}


def _execute() -> ast.FunctionDef:
    tree = ast.parse(textwrap.dedent(inspect.getsource(OrderSaga.execute)))
    (func,) = tree.body
    assert isinstance(func, ast.FunctionDef) and func.name == "execute"
    return func


def _service_calls(func: ast.FunctionDef) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(func)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr in SERVICES
    ]


def test_the_code_returns_an_order_id_it_never_defines():
    func = _execute()
    loaded = {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    stored = {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    assert "order_id" in loaded and "order_id" not in stored


def test_the_code_catches_the_three_refusals_and_nothing_else():
    (body,) = _execute().body
    assert isinstance(body, ast.Try)
    caught = [h.type.id for h in body.handlers if isinstance(h.type, ast.Name)]
    assert caught == ["InventoryError", "PaymentError", "ShippingError"]  # no TimeoutError, no bare except
    assert all(h.type is not None for h in body.handlers) and not body.finalbody


def test_no_call_carries_an_idempotency_key_and_nothing_is_written_down():
    func = _execute()
    calls = _service_calls(func)
    made = [c.func.attr for c in calls]
    assert sorted(made) == sorted(["reserve", "charge", "create_label", "release", "refund", "release"])
    assert set(made) == set(NAIVE_CALLS)
    assert all(len(c.args) == 1 and not c.keywords for c in calls), "one argument each: no key, no request id"
    every_call = [n for n in ast.walk(func) if isinstance(n, ast.Call)]
    assert len(every_call) == len(calls), "the only calls are to the services: no log, no retry helper"


def test_compensations_are_tried_once():
    func = _execute()
    assert not [n for n in ast.walk(func) if isinstance(n, (ast.For, ast.While, ast.AsyncFor))]


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


def test_rejections_alone_are_handled_correctly():
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
