"""The clock figures and the skew widget, driven without a browser."""

import pytest

from labkit.clocks import Stamping, run_chatter, run_lww
from labkit.viz.clocks import ClockSkewWidget, clock_diagram, clock_error_figure, stamp_text

WRITES = [(0.1, "A", "x=1"), (0.2, "B", "x=2")]


def _names(fig):
    return [t.name for t in fig.data]


def test_clock_diagram_labels_events_with_the_chosen_clock():
    r = run_lww(Stamping.LAMPORT, WRITES, offsets={"A": 0.3})
    fig = clock_diagram(r.sim, Stamping.LAMPORT)
    sends = next(t for t in fig.data if t.name.startswith("send"))
    assert list(sends.text) == ["write x=1 @ 1", "write x=2 @ 3"]
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    vec = clock_diagram(r.sim, Stamping.VECTOR)
    recv = next(t for t in vec.data if t.name.startswith("receive ("))
    assert "[A:1 B:1]" in recv.text


def test_discarded_writes_are_marked():
    r = run_lww(Stamping.PHYSICAL, WRITES, offsets={"A": 0.3})
    fig = clock_diagram(r.sim, Stamping.PHYSICAL)
    dropped = next(t for t in fig.data if t.name.startswith("write discarded"))
    assert len(dropped.x) == 3  # B drops its own write, then A and C drop it on arrival
    # Each label sits on the cross, which is wider than an event's dot, so the cross does not cover it.
    assert list(dropped.text) == ["write x=2 @ 0.200", "0.520", "0.220"]  # A is 0.3 s ahead
    assert list(dropped.textposition) == ["top center", "bottom center", "bottom center"]
    at_cross = set(zip(dropped.x, dropped.y, strict=True))
    for t in fig.data:
        if t.name.startswith(("send / write (", "receive (")):
            assert all(not text for x, y, text in zip(t.x, t.y, t.text, strict=True) if (x, y) in at_cross)
    w = ClockSkewWidget(WRITES)  # the widget's redraw moves them too
    assert w.ui is not None
    w.set_offset("A", 300)
    redrawn = next(t for t in w.fig.data if t.name.startswith("write discarded"))
    assert list(redrawn.textposition) == ["top center", "bottom center", "bottom center"]


def test_clock_error_figure_has_a_series_per_node_and_clock():
    sim = run_chatter(3, duration=1.0, offsets={"n1": 0.1})
    fig = clock_error_figure(sim)
    assert len(fig.data) == 6 and "n1 HLC l" in _names(fig)


def test_bad_arguments():
    r = run_lww(Stamping.HLC, WRITES)
    with pytest.raises(TypeError, match="clock"):
        clock_diagram(r.sim, "lamport")
    with pytest.raises(TypeError, match="sim"):
        clock_diagram(r, Stamping.HLC)
    with pytest.raises(TypeError, match="clock"):
        stamp_text(r.writes[0].stamps, "hlc")


def test_the_status_line_dates_a_lost_write_as_the_diagram_does():
    # The widget's writes come 60 s after the last sync; the diagram's axis is true time, and so is the status.
    w = ClockSkewWidget(WRITES)
    w.set_drift("A", 2000)
    (lost,) = w.result.lost
    assert f"written at true time {lost.true_time:.3f} s" in w.summary() and round(lost.true_time, 3) == 60.2
    xs = [x for trace in w.figure().data for x in (trace.x or ()) if x is not None]
    assert min(xs) <= lost.true_time <= max(xs)


def test_widget_reruns_on_every_setting():
    w = ClockSkewWidget(WRITES)
    assert not w.result.lost
    w.set_offset("A", 300)
    assert [x.value for x in w.result.lost] == ["x=2"] and "LOST" in w.summary()
    w.set_stamping(Stamping.HLC)
    assert not w.result.lost and w.result.final["C"] == ("x=2",)
    w.set_stamping(Stamping.PHYSICAL)
    w.set_offset("A", 0)
    w.set_drift("A", 5000)  # 5000 ppm for 60 s = 300 ms ahead by the time of the writes
    assert [x.value for x in w.result.lost] == ["x=2"]
    assert w.clock_settings_text() == "A +5000 ppm"
    w.set_offset("B", -20)
    assert w.clock_settings_text() == "A +5000 ppm, B -20 ms" and "B -20 ms" in w.figure().layout.title.text
    w.reset()
    assert not w.result.lost and w.clock_settings_text() == "all clocks exact"


def test_widget_refuses_impossible_settings_in_its_status_line():
    w = ClockSkewWidget(WRITES)
    ui = w.ui
    assert ui is not None and len(w.fig.data) > 0
    w.offset_sliders["A"].value = 300  # as if dragged
    assert "LOST" in w.status.value
    with pytest.raises(ValueError, match="offset"):
        w.set_offset("A", 10_000)
    with pytest.raises(ValueError, match="node"):
        w.set_drift("Z", 1)
    # through a guarded callback the refusal shows in the widget, no traceback
    from labkit.viz.common import guarded

    guarded(w.status)(w.set_offset)("A", 10_000)
    assert "Not allowed" in w.status.value
    w.stamping_picker.value = Stamping.VECTOR
    assert w.settings.stamping is Stamping.VECTOR and "No write was lost" in w.status.value


def test_skew_widget_controls_show_settings_made_from_python():
    w = ClockSkewWidget(writes=[(0.1, "A", "x=1"), (0.2, "B", "x=2")])
    assert w.ui is not None
    w.set_offset("A", 300)
    w.set_drift("B", 200)
    w.set_stamping(Stamping.HLC)
    assert w.offset_sliders["A"].value == 300 and w.offset_sliders["B"].value == 0
    assert w.drift_sliders["B"].value == 200
    assert w.stamping_picker.value is Stamping.HLC
    w.reset()
    assert w.offset_sliders["A"].value == 0 and w.drift_sliders["B"].value == 0
