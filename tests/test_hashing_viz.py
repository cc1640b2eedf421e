"""The consistent-hashing figures and RingWidget, driven through their plain methods (no browser)."""

from __future__ import annotations

import pytest

from labkit.hashing import HashRing, join_moves, load_per_node, make_keys, node_names, spread_vs_vnodes
from labkit.viz.common import status_html
from labkit.viz.hashing import RingWidget, load_figure, moves_figure, ring_figure, spread_figure


def test_ring_figure_draws_every_vnode_once_in_its_nodes_colour():
    ring = HashRing(node_names(3), vnodes=7)
    keys = make_keys(50)
    fig = ring_figure(ring, keys, moved=keys[:5])
    by_name = {t.name: t for t in fig.data}
    assert sum(len(by_name[n].x) for n in ring.nodes) == 21
    assert len({by_name[n].marker.color for n in ring.nodes}) == 3
    assert len(by_name["moved in the last change"].x) == 5
    assert fig.layout.title.text


def test_other_figures_have_titles_axes_and_series():
    keys = make_keys(500)
    loads = {"ring": load_per_node(HashRing(node_names(4)), keys)}
    assert load_figure(loads).layout.yaxis.title.text == "keys"
    spread = spread_figure(spread_vs_vnodes(node_names(4), [1, 10], keys))
    assert len(spread.data) == 3 and spread.layout.xaxis.type == "log"
    # Only 1-2-5 values are labelled on the log axes (plotly's own ticks print every digit over a short range).
    assert list(spread.layout.xaxis.tickvals) == [1, 2, 5, 10]
    assert set(spread.layout.yaxis.tickvals) <= {m * 10.0**e for m in (1, 2, 5) for e in range(-3, 1)}
    moves = moves_figure(join_moves({"ring": HashRing}, [2, 3], keys))
    assert [t.name for t in moves.data] == ["ring", "ideal 1/(N+1)"]
    with pytest.raises(TypeError, match="ring must be a HashRing"):
        ring_figure("not a ring")


def test_widget_join_moves_keys_only_to_the_newcomer_and_highlights_them():
    w = RingWidget(nodes=4, vnodes=16, keys=400, seed=3)
    before = dict(w.assignment)
    node = w.add_node()
    assert node == "node-4" and w.moved
    assert all(w.assignment[k] == node for k in w.moved)
    assert all(w.assignment[k] == before[k] for k in before if k not in w.moved)
    fig = w.figure()
    moved_trace = next(t for t in fig.data if t.name == "moved in the last change")
    assert len(moved_trace.x) == len(w.moved)
    arrived = next(t for t in fig.data if t.name == "keys that arrived in the last change")
    assert sum(arrived.y) == len(w.moved)
    assert "keys moved" in w.summary()


def test_widget_leave_moves_only_the_leavers_keys():
    w = RingWidget(nodes=5, vnodes=10)
    owned = {k for k, n in w.assignment.items() if n == "node-2"}
    w.remove_node("node-2")
    assert set(w.moved) == owned


def test_widget_controls_drive_the_model_and_refuse_bad_settings():
    w = RingWidget(nodes=3, vnodes=5)
    ui = w.ui
    assert ui is w.ui
    n_traces = len(w.fig.data)
    w.count_slider.value = 6
    assert len(w.nodes) == 6 and len(w.fig.data) == n_traces  # redrawn in place
    w.add_button.click()
    assert len(w.nodes) == 7 and w.count_slider.value == 7
    w.remove_button.click()
    assert w.nodes == tuple(node_names(6))
    w.vnode_slider.value = 50
    assert w.ring.vnode_count("node-0") == 50
    assert w.fig.layout.shapes[0].y0 == len(w.keys) / 6  # the dotted mean line follows the node count
    ring_points = sum(len(t.x) for t in w.fig.data if t.name in w.nodes)
    assert ring_points == len(w.ring.points()) and "vnodes 5 → 50" in w.fig.layout.title.text
    w.set_node_count(1)
    w.remove_button.click()  # the last node cannot leave: a message, not a traceback
    assert "refused" in w.status.value and "at least one node" in w.status.value
    w.set_node_count(12)
    w.add_button.click()
    assert "at most 12" in w.status.value
    w.set_vnodes(20)
    assert w.status.value == status_html(w.summary())
    for control in (w.count_slider, w.vnode_slider, w.add_button, w.remove_button):
        assert control.tooltip and control.description


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        (lambda: RingWidget(nodes=0), ValueError),
        (lambda: RingWidget(nodes=13), ValueError),
        (lambda: RingWidget(vnodes=0), ValueError),
        (lambda: RingWidget(vnodes=2.5), TypeError),
        (lambda: RingWidget().set_vnodes(201), ValueError),
        (lambda: RingWidget().remove_node("node-9"), ValueError),
        (lambda: RingWidget().set_node_count("3"), TypeError),
    ],
)
def test_widget_validation(call, exc):
    with pytest.raises(exc):
        call()


def test_widget_is_deterministic():
    a, b = RingWidget(seed=5), RingWidget(seed=5)
    a.add_node()
    b.add_node()
    assert a.moved == b.moved and a.assignment == b.assignment


def test_ring_widget_controls_show_settings_made_from_python():
    w = RingWidget(nodes=4, vnodes=8, keys=100)
    assert w.ui is not None
    w.add_node()
    w.set_vnodes(20)
    assert w.count_slider.value == 5 and w.vnode_slider.value == 20
    w.remove_node("node-0")
    assert w.count_slider.value == 4


def test_node_count_changes_are_described_with_separators():
    from labkit.viz.hashing import membership_change

    assert membership_change(["node-4"], ["node-1", "node-2"]) == "added node-4; removed node-1, node-2"
    assert membership_change([], []) == "no change"
    w = RingWidget(nodes=4, vnodes=4, keys=50)
    w.set_node_count(6)
    assert w.last_change == "added node-4, node-5"
    w.set_node_count(3)
    assert w.last_change == "removed node-3, node-4, node-5"
    w.set_node_count(3)
    assert w.last_change == "no change"
