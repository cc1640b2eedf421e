"""Tests for labkit.viz.shardkv: figures say what the store did; the lab's controls work and refuse bad input."""

from __future__ import annotations

import itertools

import pytest

from labkit.shardkv import ShardedKV
from labkit.viz.shardkv import (
    ShardLab,
    placement_figure,
    ring_figure,
    route_figure,
    throughput,
    throughput_figure,
)


@pytest.fixture(scope="module")
def kv():
    kv = ShardedKV(groups=3, seed=1)
    kv.run_for(1.0)
    for g in kv.groups:
        kv.client(f"c{g}").start_workload(rate=20, duration=2.0, keys=kv.keys_of(g))
    kv.run_for(0.5)
    kv.crash(kv.leader("g1"))
    kv.run_for(0.5)
    kv.add_group()
    kv.run_for(0.5)
    return kv


def test_route_figure_links_every_key_to_its_group_and_leader(kv):
    fig = route_figure(kv, keys=kv.keys[:6])
    sankey = fig.data[0]
    labels = list(sankey.node.label)
    assert labels[:6] == list(kv.keys[:6])
    for s, t in zip(sankey.link.source[:6], sankey.link.target[:6], strict=True):
        assert labels[t] == kv.owner(labels[s])
    assert all(kv.leader(g) in labels for g in kv.groups)
    assert "leader" in fig.layout.title.text


def test_ring_figure_places_keys_by_owner(kv):
    fig = ring_figure(kv)
    keys_traces = {tr.name: set(tr.text) for tr in fig.data if tr.name.startswith("keys of")}
    for g in kv.groups:
        assert keys_traces[f"keys of {g}"] == set(kv.keys_of(g))
    assert fig.layout.xaxis.title.text and fig.layout.title.text
    # Every key is labelled once, and two labels at the same height are never closer than 4 % of the width.
    labels = sorted((a.yshift, a.x, a.text) for a in fig.layout.annotations if a.y == "keys")
    assert sorted(t for _s, _x, t in labels) == sorted(kv.keys)
    for (s1, x1, _t1), (s2, x2, _t2) in itertools.pairwise(labels):
        assert s1 != s2 or x2 - x1 >= 0.04


def test_throughput_counts_the_history(kv):
    series = throughput(kv, bucket=0.1)
    total = sum(sum(ys) * 0.1 for _, ys in series.values())
    assert round(total) == sum(1 for h in kv.history if h.done)
    fig = throughput_figure(kv)
    assert {tr.name for tr in fig.data} == set(kv.groups)
    assert any("crash" in a.text for a in fig.layout.annotations)
    with pytest.raises(ValueError, match="bucket"):
        throughput(kv, bucket=0)


def test_throughput_starts_at_the_first_operation(kv):
    """Before the workload nobody asked: 18's figure drew 0 ops/s there under the title 'a drop to 0 = that
    group is unavailable', for the first second of every run."""
    first = min(h.call for h in kv.history)
    for xs, _ys in throughput(kv, bucket=0.1).values():
        assert xs[0] <= first < xs[0] + 0.1


def test_placement_figure_matches_placement(kv):
    fig = placement_figure(kv)
    place = kv.placement()
    assert list(fig.data[0].y) == [sum(1 for v in place.values() if v == g) for g in kv.groups]
    assert sum(fig.data[0].y) == len(place) > 12


def test_lab_buttons_and_refusals():
    lab = ShardLab(seed=3)
    ui = lab.ui
    assert ui is lab.ui
    g1 = lab.kv.leader("g1")
    lab.crash_leader("g1")
    assert not lab.kv.is_up(g1)
    lab.run()
    lab.add_group()
    assert lab.kv.groups[-1] == "g4" and len(lab.kv.migrations) == 1
    assert "g4" in lab._node.options[-1]
    # The figure shows four groups now.
    assert list(lab.fig.data[-1].x) == ["g1", "g2", "g3", "g4"]
    assert [tr.visible for tr in lab.fig.data[:4]] == [True] * 4
    # Refused settings show up in the status line, not as a traceback.
    lab._node.value = "g2n1"
    restart = next(b for b in ui.children[0].children if getattr(b, "description", "") == "Restart")
    restart.click()
    assert "refused" in lab.status.value and "crash it first" in lab.status.value
    assert lab.actions[-1] == ("join", "")
    with pytest.raises(ValueError):
        lab.restart("g2n1")
    # Same actions, same run.
    again = ShardLab(seed=3)
    again.actions = list(lab.actions)
    replayed = again._replay()
    assert [(h.input, h.ret) for h in replayed.history] == [(h.input, h.ret) for h in lab.kv.history]
    for what, arg in lab.actions:
        again._do(what, arg)
    assert [(h.input, h.ret) for h in again.kv.history] == [(h.input, h.ret) for h in lab.kv.history]
    lab.reset()
    assert lab.actions == [] and len(lab.kv.groups) == 3
    with pytest.raises(TypeError):
        ShardLab(seed="x")  # type: ignore[arg-type]


def test_lab_status_says_when_a_group_has_no_majority():
    # With two of g1's three servers down the group is stalled (its throughput drops to 0), yet the
    # status line used to read "g1: leader g1n3 (11 keys)", as if g1 were serving.
    lab = ShardLab(seed=12)
    lab.crash_leader("g1")
    assert "g1: leader g1n" in lab.summary() and "no majority" not in lab.summary()
    lab.crash(next(s for s in lab.kv.servers("g1") if lab.kv.is_up(s) and s != lab.kv.leader("g1")))
    lab.run()
    line = lab.summary()
    assert "g1: no majority, 1 of 3 servers up; g1n3 still thinks it leads (" in line, line
    assert "g2: leader g2n" in line and " 1 keys" not in line
    assert throughput(lab.kv)["g1"][1][-1] == 0


def test_lab_labels_its_dotted_lines_and_draws_the_last_bucket():
    # The lab's dotted lines (crash, restart, join) had no labels, though the text tells the learner what they
    # mark; and the last 0.1 s of the run showed only as a vertical stroke at the plot's right edge.
    lab = ShardLab(seed=12)
    _ = lab.ui
    lead = lab.kv.leader("g1")
    lab.crash(lead)
    lab.add_group()
    lab.restart(lead)
    lab.run()
    texts = [a.text for a in lab.fig.layout.annotations]
    assert sorted(texts) == sorted([f"crash {lead}", "join g4", "g4 joined", f"restart {lead}"])
    assert all(a.xref == "x" and a.x <= lab.kv.sim.now for a in lab.fig.layout.annotations)
    assert lab.fig.layout.margin.t >= 60 + max(a.yshift for a in lab.fig.layout.annotations)
    for trace in lab.fig.data[:4]:
        assert trace.x[-1] == lab.kv.sim.now and trace.y[-1] == trace.y[-2]
    assert throughput_figure(lab.kv).data[0].x[-1] == lab.kv.sim.now
