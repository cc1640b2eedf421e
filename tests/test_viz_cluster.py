"""labkit.viz: the space-time diagram and the cluster widget, driven from Python."""

from __future__ import annotations

import pytest

from labkit.examples import broadcast_cluster, heartbeat_cluster
from labkit.sim import Kind, Uniform
from labkit.viz.cluster import ClusterWidget
from labkit.viz.spacetime import SERIES, spacetime_data, spacetime_diagram


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


def test_a_dropped_message_ends_in_a_cross_on_its_receivers_lane_never_between_lanes():
    # A message lost or cut as it was sent used to end in a short stub 30 % of the way towards its
    # receiver: from n1 to n5 that put the cross between n2 and n3, as if a message to one of them had
    # been lost. Each cross must sit on the lane of the node that never got the message, inside the axis.
    sim = broadcast_cluster(5, seed=2, latency=Uniform(0.005, 0.08), loss=0.4)
    sim.call("n1", lambda node, ctx: node.originate(ctx, "x"))
    sim.run_for(0.05)
    sim.partition(["n1", "n2"])
    sim.run_for(1)
    data = spacetime_data(sim)
    drops = [e for e in sim.trace if e.kind is Kind.DROP]
    at_send = [e for e in drops if e.time == e.sent_at]
    assert len(at_send) >= 3 and any(
        abs(data.lanes.index(e.src) - data.lanes.index(e.dst)) > 1 for e in at_send
    )
    for name in ("lost", "cut by partition", "receiver down"):
        arrows = data.series[name]
        for y1, text in zip(arrows.my, arrows.text, strict=True):
            receiver = text.split("<br>")[1].split(" → ")[1]
            assert y1 == data.lanes.index(receiver), f"{name}: {text} ends at lane {y1}"
    heads = [x for name in ("lost", "cut by partition") for x in data.series[name].mx]
    assert len(heads) == len(drops) and max(heads) <= data.end


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


# ---------------------------------------------------------------------------
# Clocks: a skew and a drift slider per node (issue #6)
# ---------------------------------------------------------------------------
def annotation_texts(fig) -> list[str]:
    return [a.text.replace("<br>", " ") for a in fig.layout.annotations]  # a long label in two lines


def marker_hovers(fig) -> list[str]:
    return [h for t in fig.data if t.mode == "markers" for h in (t.hovertext or ())]


def test_skew_slider_sets_the_clock_and_the_figure_shows_it():
    w = ClusterWidget.demo(seed=1, n=4)
    assert w.ui is not None and set(w.skew_sliders) == set(w.node_ids) == set(w.drift_sliders)
    fig = w.fig
    assert annotation_texts(fig) == []  # perfect clocks: no labels
    before = marker_hovers(fig)
    w.skew_sliders["n1"].value = 30  # three presses of the arrow key in the browser
    assert w.settings.skew_ms == {"n1": 30.0}
    assert w.sim.local_time("n1") - w.sim.now == pytest.approx(0.030)
    assert w.fig is fig and annotation_texts(fig) == ["n1 clock +30.0 ms"]
    after = marker_hovers(fig)
    assert after != before and len(after) == len(before)  # same run, other clock readings
    arrived_at_n1 = next(h for h in after if "→ n1" in h)
    true_t = float(arrived_at_n1.split("arrived ")[1].split("s")[0])
    assert f"n1 clock {true_t + 0.030:.4f}s" in arrived_at_n1
    assert "clocks: n1 +30 ms" in w.status.value
    w.drift_sliders["n2"].value = 500
    assert annotation_texts(fig) == ["n1 clock +30.0 ms", "n2 clock +1.5 ms, drift +500 ppm"]  # 3 s x 500 ppm
    w.replay(1.0)
    assert annotation_texts(fig)[1] == "n2 clock +0.5 ms, drift +500 ppm"  # as of the replayed time
    w.reset_button.click()
    assert w.skew_sliders["n1"].value == 0 and w.drift_sliders["n2"].value == 0
    assert annotation_texts(fig) == [] and w.sim.local_time("n1") == w.sim.now


def test_clock_controls_follow_settings_made_from_python():
    w = ClusterWidget.demo(seed=1, n=3)
    assert w.ui is not None
    w.set_clock("n2", skew_ms=-120, drift_ppm=250)
    assert w.skew_sliders["n2"].value == -120 and w.drift_sliders["n2"].value == 250
    assert w.skew_sliders["n1"].value == 0
    w.set_clock("n2", drift_ppm=0)  # leaving skew_ms out keeps it
    assert w.settings.skew_ms["n2"] == -120 and w.drift_sliders["n2"].value == 0
    assert annotation_texts(w.fig) == ["n2 clock -120.0 ms"]


def test_clocks_are_applied_before_the_run_and_do_not_change_the_heartbeats():
    plain, skewed = ClusterWidget.demo(seed=2), ClusterWidget.demo(seed=2)
    skewed.set_clock("n3", skew_ms=400, drift_ppm=-1000)
    assert skewed.sim.local_time("n3") == pytest.approx(skewed.sim.now + 0.4 - 0.001 * skewed.sim.now)
    # Heartbeats use timers, not clocks: the same messages, at the same true times.
    deliveries = lambda w: [(e.time, e.src, e.dst) for e in w.sim.trace.of_kind(Kind.DELIVER)]  # noqa: E731
    assert deliveries(plain) == deliveries(skewed)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"skew_ms": 501}, ValueError, "skew_ms must be a finite number from -500 to 500, got 501"),
        ({"skew_ms": float("nan")}, ValueError, "skew_ms must be a finite number from -500 to 500"),
        ({"drift_ppm": -2000}, ValueError, "drift_ppm must be a finite number from -1000 to 1000, got -2000"),
        ({"skew_ms": "5"}, TypeError, "skew_ms must be a finite number from -500 to 500, got '5'"),
    ],
)
def test_widget_refuses_impossible_clocks(kwargs, error, match):
    import ipywidgets as W

    from labkit.viz.common import guarded

    w = ClusterWidget.demo(seed=1, n=3)
    with pytest.raises(error, match=match):
        w.set_clock("n1", **kwargs)
    status = W.HTML()
    guarded(status)(lambda: w.set_clock("n1", **kwargs))()  # what a control's callback does
    assert "labkit-widget-refused" in status.value and "must be" in status.value
    assert w.settings.skew_ms == {} and w.settings.drift_ppm == {}
    with pytest.raises(ValueError, match="node_id must be one of"):
        w.set_clock("n9", skew_ms=1)


def test_all_nodes_on_side_b_says_there_is_no_partition():
    w = ClusterWidget.demo(seed=1, n=3)
    assert w.ui is not None
    for nid in ("n1", "n2"):
        w.side_pickers[nid].value = "B"
    assert "labkit-widget-info" in w.status.value and "partition from t=1s: B = n1, n2" in w.status.value
    w.side_pickers["n3"].value = "B"
    assert w.sim.partitions == [["n1", "n2", "n3"]]  # nobody is cut off...
    assert "labkit-widget-refused" in w.status.value  # ...and the status says so
    assert "No partition: every node is on side B" in w.status.value
    w.side_pickers["n2"].value = "A"
    assert "labkit-widget-refused" not in w.status.value and len(w.sim.partitions) == 2


def test_clock_controls_only_where_the_figure_shows_clocks():
    from labkit.viz.raft import election_widget

    raft = election_widget(n=3)  # draws a role timeline, which has no clocks
    assert raft.ui is not None and raft.clocks is False and raft.skew_sliders == {}
    forced = ClusterWidget(lambda s: heartbeat_cluster(s, n=2), draw=lambda sim, t, f: f, clocks=True)
    assert forced.ui is not None and set(forced.skew_sliders) == {"n1", "n2"}
    with pytest.raises(TypeError, match="clocks must be True, False or None"):
        ClusterWidget(lambda s: heartbeat_cluster(s, n=2), clocks="yes")


def test_diagram_shows_local_clock_readings_only_when_asked():
    sim = heartbeat_cluster(1, n=2)
    sim.set_clock("n2", offset=-0.25, drift_ppm=100)
    sim.at(0.6, lambda s: s.crash("n1"))  # n2 then notes a suspicion: an event on its lane
    sim.run(2.0)
    plain, clocked = spacetime_diagram(sim), spacetime_diagram(sim, clocks=True)
    assert not any("clock" in h for h in marker_hovers(plain)) and annotation_texts(plain) == []
    assert annotation_texts(clocked) == ["n2 clock -249.8 ms, drift +100 ppm"]
    hover = next(h for h in marker_hovers(clocked) if h.startswith("Ping") and "n1 → n2" in h)
    t = float(hover.split("arrived ")[1].split("s")[0])
    assert f"n2 clock {t - 0.25 + 1e-4 * t:.4f}s" in hover
    events = next(t for t in clocked.data if t.name.startswith("events"))
    assert events.hovertext and all("clock" in h for h in events.hovertext)
    assert any(h.startswith("n2: suspect") and "n2 clock" in h for h in events.hovertext)
    with pytest.raises(TypeError, match="clocks must be True or False"):
        spacetime_diagram(sim, clocks="yes")
