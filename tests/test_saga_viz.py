"""The saga figures and widget, driven without a browser."""

from __future__ import annotations

import pytest

from labkit.saga.naive import run_naive_saga
from labkit.saga.orchestrator import CrashPoint
from labkit.saga.scenario import run_order_saga
from labkit.saga.twopc import CoordinatorCrash, run_two_phase_commit
from labkit.viz.saga import NO_CRASH, SagaWidget, final_state_html, saga_timeline, two_pc_figure


def test_timeline_has_a_title_axes_and_the_crash():
    fig = saga_timeline(run_naive_saga(crash_before="create_label"))
    assert "partial" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "virtual time (s)"
    names = {t.name: t for t in fig.data}
    assert len(names["request sent"].x) == 2  # reserve and charge, never create_label
    assert len(names["compensation sent"].x) == 0


def test_timeline_shows_down_time_and_compensations():
    run = run_order_saga(faults={"payment": run_order_saga.__globals__["FAULT_KINDS"]["crash after apply"]})
    fig = saga_timeline(run)
    assert len(fig.layout.shapes) == 1  # payment was down for a while
    assert len({t.name: t for t in fig.data}["compensation sent"].x) >= 1


def test_a_held_step_is_not_drawn_as_an_answer():
    # A very slow service holds the charge without answering (the orchestrator times out), then meets the
    # refund's tombstone: its markers must not say it answered.
    run = run_order_saga(faults={"payment": run_order_saga.__globals__["FAULT_KINDS"]["very slow"]})
    unchanged = [t for t in saga_timeline(run).data if t.marker.symbol == "square-open"]
    assert len(unchanged) == 1 and len(unchanged[0].x) >= 3
    assert "answered" not in unchanged[0].name and "held" in unchanged[0].name


def test_final_state_and_two_pc_figure():
    assert "Final state: all" in final_state_html(run_order_saga())
    assert "charged 2 times" in final_state_html(run_naive_saga(retries=1))
    fig = two_pc_figure(run_two_phase_commit(crash=CoordinatorCrash.AFTER_PREPARE, down_for=2.0))
    assert "2.0" in fig.layout.title.text
    with pytest.raises(TypeError, match="run"):
        saga_timeline("not a run")


def test_widget_methods_match_the_controls():
    w = SagaWidget()
    ui = w.ui
    assert ui is w.ui
    w.fail("charge", "reject")
    assert w.result.outcome == "none" and w.result.ok
    writes = w.baseline_writes
    assert len(w.crash_picker.options) == 1 + 2 * writes
    w.crash_picker.value = w.crash_options()[3][1]  # as if picked in the browser
    assert w.crash_point is not None and w.crash_point.after_write == 2 and w.result.ok
    w.flavour_picker.value = "first-attempt OrderSaga"
    w.step_picker.value = "none"
    w.retry_slider.value = 1
    assert not w.result.ok and "charged 2 times" in w.status.value
    w.crash_picker.value = "charge"
    assert w.result.outcome == "partial"


def test_widget_refuses_bad_settings_in_its_status_line():
    w = SagaWidget()
    assert w.ui is not None
    with pytest.raises(ValueError, match="from 1 to"):
        w.crash(99)
    with pytest.raises(ValueError, match="step"):
        w.fail("dance")
    w.flavour_picker.value = "first-attempt OrderSaga"
    w.crash_picker.options = [*w.crash_picker.options, ("bogus", "teleport")]  # a value no method accepts
    w.crash_picker.value = "teleport"
    assert "Not allowed" in w.status.value and "crash_before" not in w.status.value


def test_widget_controls_show_settings_made_from_python_and_no_crash_is_a_real_choice():
    w = SagaWidget()
    assert w.ui is not None
    # ipywidgets reads a Dropdown value of None as "nothing selected": no option may be None.
    assert all(value is not None for _label, value in w.crash_picker.options)
    assert w.crash_picker.index == 0 and w.crash_picker.label == "no crash"
    w.fail("charge", "reject")
    w.crash(2, before_send=False)
    assert w.step_picker.value == "charge" and w.kind_picker.value == "reject"
    assert w.crash_picker.value == (2, False)
    w.crash(None)
    assert w.crash_point is None and w.crash_picker.label == "no crash"
    w.crash(2)
    w.crash_picker.value = NO_CRASH  # as if picked in the browser
    assert w.crash_point is None
    w.set_flavour("first-attempt OrderSaga")
    w.set_retries(2)
    w.crash("refund")
    assert w.flavour_picker.value == "first-attempt OrderSaga" and w.retry_slider.value == 2
    assert w.crash_picker.value == "refund"


def test_figures_name_their_axes_and_explain_the_grey_band():
    run = run_order_saga(crashes=[CrashPoint(2, True)], seed=0)
    fig = saga_timeline(run)
    assert fig.layout.yaxis.title.text == "process" and fig.layout.xaxis.title.text
    assert "process down" in {t.name for t in fig.data} and len(fig.layout.shapes) >= 1
    # Outside the plot, in a column on the right: the eight entries cover neither the title nor the data.
    assert fig.layout.legend.x > 1 and fig.layout.legend.orientation == "v"
    pc = two_pc_figure(run_two_phase_commit(crash=CoordinatorCrash.AFTER_PREPARE, down_for=2.0))
    assert pc.layout.yaxis.title.text == "participant"
    notes = [a for a in pc.layout.annotations if "crashes" in a.text]
    assert notes and all(a.yref == "paper" and a.y >= 1.0 for a in notes)  # above the bars, not on them


def test_a_crash_before_the_reply_is_drawn_as_the_crash_not_as_a_step_that_changed_nothing():
    # 15, "crash after apply": the service's "crash before reply" note sat in the open squares,
    # "service changed nothing (held, refused, duplicate)", on the spot of its own change and crash.
    w = SagaWidget(seed=0)
    w.fail("ship", "crash after apply")
    traces = {t.name: t for t in saga_timeline(w.result).data}
    crash, unchanged = traces["crash"], traces["service changed nothing (held, refused, duplicate)"]
    changed = traces["service changed its data"]
    (spot,) = zip(crash.x, crash.y, strict=True)
    assert spot in zip(changed.x, changed.y, strict=True)  # the label it made is there, and then it died
    assert spot not in zip(unchanged.x, unchanged.y, strict=True)
    assert list(crash.text) == ["crash before the create_label reply"]
