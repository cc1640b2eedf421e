"""Pictures of notebook 14 and its story widget, driven without a browser."""

from __future__ import annotations

import pytest

from labkit.txn import STORIES, Isolation, check, parse_history
from labkit.viz.txn import (
    StoryWidget,
    findings_figure,
    graph_figure,
    levels_figure,
    story_figure,
    timeline_figure,
)

pytest.importorskip("plotly")


def _trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_timeline_has_one_mark_per_event_and_a_dashed_wait():
    r = STORIES["lost update"].run(Isolation.READ_COMMITTED)
    fig = timeline_figure(r)
    marks = sum(len(t.x) for t in fig.data if t.name not in ("lanes", "waiting"))
    assert marks == len(r.events)
    waiting = _trace(fig, "waiting")
    assert [x for x in waiting.x if x is not None] == [3, 5]  # T2 waits at step 3 and writes at step 5
    assert list(fig.layout.yaxis.ticktext) == ["T1", "T2"]
    abort = timeline_figure(STORIES["write skew"].run(Isolation.SERIALIZABLE_SSI))
    assert _trace(abort, "abort").text == ("abort: serialization failure",)


def test_story_figure_says_whether_it_went_wrong():
    assert (
        "went wrong: both doctors went off call"
        in story_figure("write skew", Isolation.SNAPSHOT).layout.title.text
    )
    assert "fine:" in story_figure("write skew", Isolation.SERIALIZABLE_2PL).layout.title.text
    with pytest.raises(ValueError, match="name must be one of"):
        story_figure("lost updates", Isolation.SNAPSHOT)


def test_graph_draws_the_cycle_in_red_with_labelled_edges():
    result = check(parse_history("T1: r x [], a y 1", "T2: r y [], a x 2", "T3: r x [2], r y [1]"))
    fig = graph_figure(result)
    assert fig.layout.title.text == "G2-item: T1 → T2 → T1"
    labels = [a.text for a in fig.layout.annotations if a.text]
    assert "rw x" in labels and "rw y" in labels
    nodes = fig.data[0]
    assert list(nodes.text) == ["T1", "T2", "T3"]
    assert nodes.marker.color[:2] == ("#D55E00", "#D55E00") and nodes.marker.color[2] != "#D55E00"
    ok = graph_figure(check(parse_history("T1: a x 1", "T2: r x [1]")))
    assert ok.layout.title.text == "no cycle: no anomaly"
    with pytest.raises(TypeError, match="CheckResult"):
        graph_figure([])


def test_graph_of_a_large_history_keeps_the_cycle_and_its_neighbours():
    lines = [f"S{i}: a z {i}" for i in range(30)]
    h = parse_history(*lines, "T1: r x [], a y 1", "T2: r y [], a x 2", "T3: r x [2], r y [1]")
    fig = graph_figure(check(h), max_nodes=6)
    assert {"T1", "T2"} <= set(fig.data[0].text) and len(fig.data[0].text) <= 6


def test_levels_and_findings_figures():
    runs = {name: {lv: s.run(lv) for lv in Isolation} for name, s in STORIES.items()}
    fig = levels_figure(runs)
    z = fig.data[0].z
    assert [sum(row) for row in z] == [1, 2, 3, 3, 4, 4]  # the staircase
    assert "safe: T2 waited" in fig.data[0].text[0][1]
    f = findings_figure({"a": {"G2-item": 3, "G0": 1}, "b": {}}, {"a": 4, "b": 4})
    assert list(f.data[0].x) == ["G0", "G2-item"] and f.data[0].text[0][0] == "1/4"


def test_widget_walks_interleavings_and_levels():
    w = StoryWidget(story="write skew", level=Isolation.SNAPSHOT)
    assert w.bad == 68 and len(w.orders) == 70 and STORIES["write skew"].happened(w.run)
    w.set(interleaving=0)  # T1 entirely, then T2: serial
    assert not STORIES["write skew"].happened(w.run) and "Fine" in w.verdict()
    w.set(story="dirty read")  # a new story starts at its own interleaving
    assert w.orders[w.params["interleaving"]] == STORIES["dirty read"].order
    w.set(level="read committed")  # an Isolation's value is accepted too
    assert w.params["level"] is Isolation.READ_COMMITTED and w.bad == 0


def test_widget_refuses_bad_settings_and_keeps_the_old_ones():
    w = StoryWidget()
    before = dict(w.params)
    with pytest.raises(ValueError, match="story must be one of"):
        w.set(story="nope")
    with pytest.raises(ValueError, match="interleaving must be an int from 0 to 19"):
        w.set(interleaving=20)
    with pytest.raises(ValueError, match="level must be an Isolation or one of 'no isolation'"):
        w.set(level="snapshot")
    with pytest.raises(ValueError, match="unknown settings"):
        w.set(seed=1)
    assert w.params == before


def test_widget_controls_drive_it_and_show_refusals():
    pytest.importorskip("ipywidgets")
    w = StoryWidget(story="lost update", level=Isolation.READ_COMMITTED)
    ui = w.ui
    assert ui is not None and w.timeline.data and w.graph.data
    w.controls["level"].value = Isolation.SNAPSHOT
    assert w.params["level"] is Isolation.SNAPSHOT and "Fine" in w.status.value
    w.controls["story"].value = "phantom"
    assert w.controls["interleaving"].max == len(STORIES["phantom"].interleavings()) - 1
    assert "order: T1 T2 T1 T2 T1 T2" in w.order_label.value


def test_redrawing_a_graph_into_the_same_figure_leaves_no_old_edge_behind():
    # The story widget redraws into one figure: a graph with fewer edges must not keep the old ones.
    big = check(parse_history("T1: r x [], a y 1", "T2: r y [], a x 2", "T3: r x [2], r y [1]"))
    small = check(parse_history("T1: a x 1", "T2: r x [1]"))
    fig = graph_figure(big)
    graph_figure(small, figure=fig)
    assert [a.to_plotly_json() for a in fig.layout.annotations] == [
        a.to_plotly_json() for a in graph_figure(small).layout.annotations
    ]
