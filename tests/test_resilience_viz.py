"""Figures and the widget of notebook 17, driven without a browser."""

from __future__ import annotations

import pytest

from labkit.resilience import Backoff, Fault, Jitter, make_policies, slow_dependency, thundering_herd
from labkit.viz.resilience import (
    ResilienceWidget,
    arrivals_figure,
    backoff_figure,
    compare_figure,
    timeline_figure,
)


def test_timeline_has_four_labelled_panels() -> None:
    m = slow_dependency(make_policies(breaker=True, timeouts=True), until=8.0)
    fig = timeline_figure(m, title="t", fault=(5.0, 15.0))
    assert fig.layout.title.text == "t"
    assert len(fig.data) == 3 + 4 + 4 + 3
    labels = [fig.layout[f"yaxis{i if i > 1 else ''}"].title.text for i in range(1, 5)]
    assert labels == ["goodput (req/s)", "p99 latency (s)", "mean queue depth", "breaker state"]
    assert fig.layout.xaxis4.title.text == "virtual time (s)"
    assert [fig.layout[f"yaxis{i if i > 1 else ''}"].rangemode for i in range(1, 4)] == ["nonnegative"] * 3
    breaker_b_c = next(t for t in fig.data if t.name == "breaker B→C")
    assert max(breaker_b_c.y) == 2  # it opened
    assert "open" in breaker_b_c.hovertemplate  # the level's number is explained on hover
    assert "req/s" in fig.data[0].hovertemplate and all(t.hovertemplate for t in fig.data)
    with pytest.raises(TypeError, match="ChainModel"):
        timeline_figure("not a model")  # type: ignore[arg-type]


def test_other_figures() -> None:
    runs = {j.value: thundering_herd(j) for j in (Jitter.NONE, Jitter.FULL)}
    fig = arrivals_figure(runs, title="herd")
    assert [t.name for t in fig.data] == ["none", "full"]
    assert fig.layout.yaxis.title.text == "arrivals at C (req/s)"
    fig = compare_figure(runs, metric="goodput", kind="checkout", title="g")
    assert len(fig.data) == 2 and fig.layout.xaxis.title.text == "virtual time (s)"
    with pytest.raises(ValueError, match="metric must be one of"):
        compare_figure(runs, metric="happiness", title="x")
    fig = backoff_figure(
        {"none": Backoff(0.1, 5, Jitter.NONE), "full": Backoff(0.1, 5, Jitter.FULL)}, callers=10
    )
    assert len(fig.data) == 2 and len(fig.data[0].x) == 10 * 5
    assert len(set(fig.data[0].x)) == 5  # without jitter: 5 instants shared by every caller
    # The y value is only a spread within a row: the hover names the row, caller and retry instead.
    assert "%{y" not in fig.data[1].hovertemplate and fig.data[1].hovertemplate.startswith("full:")
    assert fig.data[1].text[0] == "caller 1, retry 1" and len(fig.data[1].text) == 10 * 5


def test_widget_methods_change_the_run() -> None:
    w = ResilienceWidget(seed=0)
    ui = w.ui
    off = w.summary()
    assert off["browse_during"] < 0.5  # the cascade
    w.set_policy("breaker", True)
    w.set_policy("deadlines", True)
    on = w.summary()
    assert on["browse_during"] > 0.9
    assert "breaker" in w.fig.layout.title.text
    assert "browse" in w.status.value
    w.set_fault("down")
    assert w.settings.fault is Fault.DOWN
    assert (
        not w.model.sim.is_up("C") if w.model.now < w.fault_window[1] else w.model.faults["C"] is Fault.NONE
    )
    assert w.summary() != on and w.model.transitions().target.eq("open").any()
    w.set_policy("retries", True)
    w.set_jitter("decorrelated")
    assert w.model.policies["A"].retry.backoff.jitter.value == "decorrelated"
    w.set_rate(80)
    assert w.model.offered(0, 3) == pytest.approx(80, rel=0.15)
    assert "80 req/s" in w.fig.layout.title.text
    assert ui is w.ui


def test_widget_refuses_bad_settings_in_the_status_line() -> None:
    w = ResilienceWidget(seed=0)
    assert w.ui is not None
    with pytest.raises(ValueError, match="rate"):
        w.set_rate(5000)
    with pytest.raises(ValueError, match="policy must be one of"):
        w.set_policy("prayer", True)
    # Through a control, the refusal lands in the status line instead.
    w._controls["rate"].max = 10_000
    w._controls["rate"].value = 5000
    assert "labkit-widget-refused" in w.status.value and "rate" in w.status.value
    with pytest.raises(ValueError, match="fault_window"):
        ResilienceWidget(fault_window=(5.0, 2.0))


def test_widget_controls_show_settings_made_from_python():
    w = ResilienceWidget(seed=0, duration=6.0, fault_window=(1.0, 4.0))
    assert w.ui is not None
    w.set_policy("breaker", True)
    w.set_rate(80)
    w.set_fault("down")
    w.set_jitter("equal")
    c = w._controls
    assert c["breaker"].value is True and c["timeouts"].value is False
    assert c["rate"].value == 80 and c["fault"].value == "down" and c["jitter"].value == "equal"
    assert w.settings.breaker and w.settings.rate == 80.0  # syncing did not re-apply anything else


def test_widget_sends_the_browser_only_json_numbers():
    # A FigureWidget ships its data as JSON, which has no NaN: a p99 of an idle bucket must be a gap
    # (None), or the kernel warns "Out of range float values are not JSON compliant" under the cell.
    import json

    w = ResilienceWidget(seed=0)
    assert w.ui is not None
    for fault in ("slow", "down"):
        w.set_fault(fault)
        for trace in w.fig.data:
            json.dumps([list(trace.x or []), list(trace.y or [])], allow_nan=False)


def test_widget_status_says_why_goodput_after_the_fault_can_pass_100_percent():
    w = ResilienceWidget(seed=0)
    w.set_rate(150)  # slow C at three times the load: a backlog that drains after the fault
    assert w.summary()["goodput_after"] > 1.0 and "(the backlog draining)" in w.status_text()
    w.set_rate(50)
    assert "draining" not in w.status_text()


def test_controls_that_only_shape_retries_are_greyed_out_without_retries():
    w = ResilienceWidget(seed=0)
    assert w.ui is not None  # the controls exist once the widget is built
    assert (
        w._controls["backoff"].disabled and w._controls["budget"].disabled and w._controls["jitter"].disabled
    )
    w.set_policy("retries", True)
    assert not w._controls["backoff"].disabled and not w._controls["budget"].disabled
    assert not w._controls["jitter"].disabled  # backoff is on by default


def test_the_widget_title_names_the_retry_policy_in_words() -> None:
    # It read "retries (none jitter)" with backoff and no jitter.
    w = ResilienceWidget(seed=0)
    w.set_policy("retries", True)
    w.set_policy("backoff", True)
    w.set_jitter("none")
    assert "retries (backoff, no jitter)" in w.figure().layout.title.text
    w.set_jitter("full")
    assert "retries (backoff, full jitter)" in w.figure().layout.title.text
    w.set_policy("backoff", False)
    assert "retries (no backoff)" in w.figure().layout.title.text
