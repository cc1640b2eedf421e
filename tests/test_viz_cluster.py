"""labkit.viz: the space-time diagram and the cluster widget, driven from Python."""

from __future__ import annotations

import pytest

from labkit.examples import broadcast_cluster, heartbeat_cluster
from labkit.sim import Uniform
from labkit.viz.cluster import ClusterWidget
from labkit.viz.spacetime import SERIES, spacetime_diagram


def series_counts(fig) -> dict[str, int]:
    """Markers per message series, read back from the figure."""
    out = {}
    for trace in fig.data:
        if trace.mode == "markers" and trace.legendgroup:
            out[trace.legendgroup] = len(trace.x)
    return out


def test_diagram_shows_every_fate_of_a_message():
    sim = broadcast_cluster(5, seed=2, latency=Uniform(0.005, 0.08), loss=0.4, duplication=0.3)
    sim.call("n1", lambda node, ctx: node.originate(ctx, "x"))
    sim.run_for(0.05)
    sim.partition(["n1", "n2"])
    sim.run_for(1)
    fig = spacetime_diagram(sim)
    counts = series_counts(fig)
    assert set(counts) == {name for name, *_ in SERIES}
    frame = sim.trace.to_frame()
    assert counts["lost"] == ((frame["kind"] == "drop") & (frame["reason"] == "loss")).sum() > 0
    assert (
        counts["cut by partition"] == ((frame["kind"] == "drop") & (frame["reason"] == "partition")).sum() > 0
    )
    assert counts["duplicate"] > 0
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert list(fig.layout.yaxis.ticktext) == ["n1", "n2", "n3", "n4", "n5"]


def test_diagram_replay_shows_only_the_past():
    sim = heartbeat_cluster(1, n=3)
    sim.run(2.0)
    early, late = spacetime_diagram(sim, until=0.5), spacetime_diagram(sim)
    assert sum(series_counts(early).values()) < sum(series_counts(late).values())
    assert early.layout.xaxis.range == late.layout.xaxis.range  # replay does not rescale


def test_diagram_refuses_bad_arguments():
    sim = heartbeat_cluster(1, n=3)
    with pytest.raises(TypeError, match="source must be a Simulator or a Trace"):
        spacetime_diagram("trace")
    with pytest.raises(ValueError, match="end must be after start"):
        spacetime_diagram(sim, start=1.0, end=0.5)


def test_widget_controls_change_the_run_and_redraw_in_place():
    w = ClusterWidget.demo(seed=1, n=4)
    ui = w.ui
    fig = w.fig
    before = series_counts(fig)
    w.up_boxes["n2"].value = False  # what a click on the checkbox does
    assert w.settings.down == {"n2"} and not w.sim.is_up("n2")
    assert w.fig is fig and series_counts(fig) != before
    assert len(fig.layout.shapes) == 1  # n2's crash shading
    w.side_pickers["n1"].value = "B"
    assert w.sim.partitions == [["n2", "n3", "n4"], ["n1"]]
    w.up_boxes["n2"].value = True
    assert len(fig.layout.shapes) == 1  # only the partition band is left, no stale shading
    w.run_button.click()
    assert w.sim.now == pytest.approx(4.0)
    w.reset_button.click()
    assert w.settings.down == set() and w.side_pickers["n1"].value == "A" and w.sim.now == 3.0
    assert ui is w.ui


def test_widget_refuses_impossible_settings():
    w = ClusterWidget.demo(seed=1, n=3)
    with pytest.raises(ValueError, match="node_id must be one of"):
        w.crash("n9")
    with pytest.raises(ValueError, match="loss must be between 0 and 1"):
        w.set_loss(1.5)
    with pytest.raises(ValueError, match="latency must satisfy"):
        w.set_latency(50, 10)
    with pytest.raises(ValueError, match="fault time must be between"):
        w.set_fault_at(99)


def test_guarded_callbacks_show_refusals_and_surface_bugs():
    import ipywidgets as W

    from labkit.viz.common import guarded

    status = W.HTML()
    guarded(status)(lambda: ClusterWidget.demo(seed=1).set_loss(2))()
    assert "labkit-widget-refused" in status.value and "loss must be between 0 and 1" in status.value

    def broken():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        guarded(status)(broken)()
    assert "labkit-widget-error" in status.value


def test_widget_is_deterministic():
    a, b = ClusterWidget.demo(seed=3), ClusterWidget.demo(seed=3)
    for w in (a, b):
        w.set_loss(0.3)
        w.crash("n3")
    assert a.sim.trace.digest() == b.sim.trace.digest()


def test_controls_show_settings_made_from_python():
    w = ClusterWidget(lambda s: heartbeat_cluster(s, n=4), seed=1)
    assert w.ui is not None
    w.crash("n2")
    w.set_side("n3", "B")
    w.set_loss(0.2)
    w.set_latency(10, 50)
    w.set_fault_at(0.5)
    assert w.up_boxes["n2"].value is False and w.up_boxes["n1"].value is True
    assert w.side_pickers["n3"].value == "B" and w.side_pickers["n1"].value == "A"
    assert w.loss_slider.value == 0.2 and w.latency_slider.value == (10.0, 50.0)
    assert w.fault_slider.value == 0.5
    w.recover("n2")
    assert w.up_boxes["n2"].value is True and w.settings.down == set()
