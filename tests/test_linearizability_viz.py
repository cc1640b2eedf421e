"""History pictures and the notebook-08 widgets, driven without a browser."""

from __future__ import annotations

import math

import pytest

from labkit.linearizability import UNKNOWN, KVModel, Operation, RegisterModel, check
from labkit.viz.linearizability import STORES, RealTimeWidget, StoreCheckWidget, history_figure, op_label

pytest.importorskip("plotly")


def _trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def _bar_count(trace):
    return sum(1 for x in trace.x if x is None)


STALE = [
    Operation("A", 0.0, 1.0, ("write", 1), None),
    Operation("B", 2.0, 3.0, ("read",), None),
    Operation("C", 0.5, math.inf, ("write", 2)),
]


def test_failing_history_highlights_the_blocked_and_conflicting_operations():
    fig = history_figure(STALE, RegisterModel())
    assert "NOT linearizable" in fig.layout.title.text
    assert _bar_count(_trace(fig, "could not be placed")) == 1  # the stale read
    assert _bar_count(_trace(fig, "conflicting operation")) == 1  # the write it missed
    assert _bar_count(_trace(fig, "outcome unknown")) == 1  # the write that never returned
    assert fig.layout.xaxis.title.text == "time (s)" and fig.layout.yaxis.title.text == "client"
    assert list(fig.layout.yaxis.ticktext) == ["A", "C", "B"]


def test_linearizable_history_shows_one_point_per_operation_in_its_interval():
    history = [
        Operation("A", 0.0, 2.0, ("write", 1), None),
        Operation("B", 1.0, 3.0, ("read",), 1),
        Operation("C", 0.5, 1.5, ("cas", None, 5), False),
    ]
    result = check(history, RegisterModel())
    fig = history_figure(result)
    assert fig.layout.title.text.endswith("linearizable")
    points = _trace(fig, "linearization point")
    xs = [x for x in points.x if x is not None]
    assert len(xs) == 3
    for x, i in zip(xs, result.partitions[0].order, strict=True):
        assert history[i].call <= x <= history[i].ret


def test_kv_failure_focuses_on_the_failing_key():
    history = [
        Operation(0, 0.0, 1.0, ("put", "x", "1"), None),
        Operation(1, 2.0, 3.0, ("get", "x"), ""),
        Operation(2, 0.0, 1.0, ("put", "y", "1"), None),
        Operation(3, 2.0, 3.0, ("get", "y"), "1"),
    ]
    fig = history_figure(check(history, KVModel()))
    assert "key 'x'" in fig.layout.title.text
    assert (
        sum(
            _bar_count(t) for t in fig.data if t.mode == "lines+markers" and t.name != "partial linearization"
        )
        == 2
    )


def test_labels():
    assert op_label(Operation(0, 0.0, 1.0, ("read",), 3)) == "read → 3"
    assert op_label(Operation(0, 0.0, math.inf, ("write", 2))) == "write 2"
    assert op_label(Operation(0, 0.0, 1.0, ("cas", 1, 2), True)) == "cas 1→2: True"
    assert op_label(Operation(0, 0.0, 1.0, ("get", "k"), UNKNOWN)) == "get k → ?"
    with pytest.raises(TypeError, match="history_or_result"):
        history_figure("not a history")


def test_real_time_widget():
    w = RealTimeWidget()
    assert w.result.ok is True
    w.set(b_start=3.5, b_saw=None)  # starts after the write returned, sees nothing
    assert w.result.ok is False
    w.set(b_saw=1, c_start=4.0, c_saw=None)  # B sees 1, then C (later) sees the old value
    assert w.result.ok is False
    w.set(c_saw=1)
    assert w.result.ok is True
    with pytest.raises(ValueError, match="b_start must be a finite number of seconds from 0 to 5"):
        w.set(b_start=9)
    with pytest.raises(ValueError, match="c_saw must be one of"):
        w.set(c_saw=7)


def test_real_time_widget_ui_refuses_with_a_message():
    pytest.importorskip("ipywidgets")
    w = RealTimeWidget()
    ui = w.ui
    assert ui is not None and w.fig.layout.title.text
    w.controls["b_start"].value = 3.5
    w.controls["b_saw"].value = "old"  # the "None (old)" choice
    assert w.result.ok is False and "NOT linearizable" in w.status.value
    before = w.params["c_start"]
    w.controls["c_start"].max = 10
    w.controls["c_start"].value = 8.0  # outside the allowed range: refused, shown, not raised
    assert "labkit-widget-refused" in w.status.value
    assert w.params["c_start"] == before and w.controls["c_start"].value == before


def test_store_check_widget():
    pytest.importorskip("labkit.replication")
    pytest.importorskip("labkit.raft")
    w = StoreCheckWidget(store="CAP register, consistency-first", seed=1)
    assert w.result.ok is True
    w.set(store="CAP register, availability-first")
    assert w.result.ok is False
    w.set(store="Raft key-value store", seed=2)
    assert w.result.ok is True
    with pytest.raises(ValueError, match="store must be one of"):
        w.set(store="etcd")
    with pytest.raises(ValueError, match="seed must be an int from 0 to 99"):
        w.set(seed=-1)
    pytest.importorskip("ipywidgets")
    ui = w.ui
    assert ui is not None
    w.controls["store"].value = "Raft, reads served by any node"
    w.controls["seed"].value = 0
    assert w.result.ok is False and "NOT linearizable" in w.status.value


def test_store_check_controls_show_settings_made_from_python():
    w = StoreCheckWidget()
    assert w.ui is not None
    other = [s for s in STORES if s != w.params["store"]][0]
    w.set(store=other, seed=4)
    assert w.controls["store"].value == other and w.controls["seed"].value == 4


def test_labels_on_one_line_never_overlap_and_points_hover_with_the_operation():
    # Twelve short writes with long labels on one client: alternating below/above is not enough.
    ops = [
        Operation("A", 0.05 * k, 0.05 * k + 0.04, ("write", f"a-much-longer-value-{k}"), None)
        for k in range(12)
    ]
    ops.append(Operation("B", 0.0, 0.6, ("read",), "a-much-longer-value-7"))
    fig = history_figure(ops, RegisterModel())
    labels = next(t for t in fig.data if t.name == "labels")
    lo, hi = fig.layout.xaxis.range
    char = 6.5 / 900 * (hi - lo)
    by_line: dict[float, list[tuple[float, float]]] = {}
    for x, y, text in zip(labels.x, labels.y, labels.text, strict=True):
        by_line.setdefault(round(y, 3), []).append((x - len(text) * char / 2, x + len(text) * char / 2))
    assert len(by_line) >= 2  # some labels moved above the bar
    for spans in by_line.values():
        spans.sort()
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False)), spans
    points = next(t for t in fig.data if t.name == "linearization point")
    assert any("a-much-longer-value-7" in h and "takes effect at" in h for h in points.hovertext)
