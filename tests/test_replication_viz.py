"""The replication figures and widgets, driven without a browser."""

from __future__ import annotations

import pytest

from labkit.replication import Mode
from labkit.replication.experiments import compare_modes, quorum_latency, run_partition_scenario
from labkit.viz.replication import (
    CapWidget,
    QuorumWidget,
    availability_figure,
    cap_timeline,
    consistency_figure,
    latency_figure,
)


def test_cap_timeline_counts_every_operation():
    res = run_partition_scenario(Mode.AVAILABILITY_FIRST, seed=1)
    fig = cap_timeline(res)
    markers = sum(len(t.x) for t in fig.data if t.mode == "markers")
    assert markers == len(res.ops)
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_tables_become_figures_with_titles():
    df = compare_modes(rw=((1, 1), (2, 2)), seed=0)
    for fig in (
        availability_figure(df),
        consistency_figure(df),
        latency_figure(quorum_latency(rw=((1, 1),), ops=10)),
    ):
        assert fig.layout.title.text and len(fig.data) >= 2


def test_cap_widget_counters_follow_the_settings_and_refuse_bad_ones():
    w = CapWidget(seed=0)
    ui = w.ui
    assert ui is not None
    assert w.counters()["availability_A"] == 0.0  # CP, 2/3 split, key on n4, n5, n1
    w.controls["mode"].value = Mode.AVAILABILITY_FIRST
    assert w.counters()["availability_A"] == 1.0
    assert "availability-first" in w.fig.layout.title.text
    w.controls["r"].value = 5  # R > N: refused, shown, control put back
    assert "Not allowed" in w.status.value and w.controls["r"].value == w.params["r"] == 2
    with pytest.raises(ValueError, match="unknown settings"):
        w.set(q=1)


def test_quorum_widget_shows_refusal_and_stale_read():
    q = QuorumWidget(seed=0)
    q.ui  # noqa: B018 - build the controls
    q.set(side_b={"n5", "n1"})  # two of x's three home replicas cut off
    assert q.outcome()["write_ok"] is False
    q.set(side_b={"n5"}, read_from="B", mode=Mode.AVAILABILITY_FIRST, down={"n4"}, r=1)
    o = q.outcome()
    assert o["write_ok"] and o["hints"] >= 1 and o["read_fresh"] is False
    assert "stale" in q.status.value
    with pytest.raises(ValueError, match="live node"):
        q.set(side_b=set(q.node_ids))


def test_divergence_and_merkle_figures():
    from labkit.replication.experiments import anti_entropy_run, merkle_cost
    from labkit.viz.replication import divergence_figure, merkle_figure

    fig = divergence_figure(
        {
            "on": anti_entropy_run(keys=5, duration=0.5),
            "off": anti_entropy_run(keys=5, interval=None, duration=0.5),
        }
    )
    assert len(fig.data) == 2 and fig.layout.title.text
    assert len(merkle_figure(merkle_cost(total_keys=50, differing=(0, 1))).data) == 3
    with pytest.raises(TypeError):
        divergence_figure({})


def test_widget_controls_follow_programmatic_settings():
    q = QuorumWidget(seed=0)
    q.ui  # noqa: B018 - build the controls
    q.set(down={"n2"}, side_b={"n3"}, w=3)
    assert q.controls["w"].value == 3
    crash, cut = q._boxes[1].children
    assert crash.value is True and cut.value is False
    assert q._boxes[2].children[1].value is True
    w = CapWidget(seed=0)
    w.ui  # noqa: B018
    w.set(nodes=3)  # side A shrinks to keep a node on side B
    assert w.params["side_a"] == 2 and w.controls["side_a"].value == 2 and w.controls["nodes"].value == 3


def test_cap_and_quorum_controls_show_settings_made_from_python():
    w = CapWidget(seed=0)
    assert w.ui is not None
    w.set(n=2, r=1, w=1, mode=Mode.AVAILABILITY_FIRST)
    c = w.controls
    assert (c["n"].value, c["r"].value, c["w"].value) == (2, 1, 1)
    assert c["mode"].value is Mode.AVAILABILITY_FIRST
    q = QuorumWidget(seed=0)
    assert q.ui is not None
    q.set(n=2, r=1, down={"n2"}, side_b={"n5"}, read_from="B")
    assert q.controls["n"].value == 2 and q.controls["r"].value == 1 and q.controls["read_from"].value == "B"
    assert [(b.children[0].value, b.children[1].value) for b in q._boxes] == [
        (False, False), (True, False), (False, False), (False, False), (False, True)
    ]  # fmt: skip
