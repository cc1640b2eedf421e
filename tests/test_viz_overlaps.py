"""Nothing in a figure hides or cuts another thing: labels off the data, markers inside the plot, counts
that count what is shown. One test per overlap a learner's review found; each failed before its fix."""

from __future__ import annotations

import re
from itertools import combinations

import pytest

from labkit.explore import Bounds, bfs, invariants, protocols
from labkit.labs.raft import RaftServer, Role, raft_lab
from labkit.raft import RaftCluster
from labkit.raft.bugs import Bug, VoteTwice
from labkit.shardkv import ShardedKV
from labkit.sim import Kind
from labkit.viz import ClusterWidget
from labkit.viz.explore import Explorer, counterexample_diagram
from labkit.viz.saga import SagaWidget
from labkit.viz.shardkv import throughput_figure
from labkit.viz.spacetime import spacetime_diagram

COUNTED = re.compile(r"(.+) \((\d+)\)")


def test_clock_labels_sit_in_the_right_margin_beside_their_lanes_not_over_the_arrows():
    # 01's widget: the label sat inside the plot at its right edge, over the arrowheads reaching n1 there.
    w = ClusterWidget.demo(seed=1, n=4)
    assert w.ui is not None  # the figure is drawn with the controls
    w.set_clock("n1", skew_ms=200)
    w.set_clock("n3", drift_ppm=500)
    fig = w.fig
    notes = list(fig.layout.annotations)
    assert [a.text for a in notes] == ["n1 clock +200.0 ms", "n3 clock +1.5 ms,<br>drift +500 ppm"]
    lanes = list(fig.layout.yaxis.ticktext)
    for a in notes:
        # Left edge right of the plot area (x = 1 of the paper is its right edge): it covers no data.
        assert a.xref == "paper" and a.x >= 1 and a.xanchor == "left" and a.xshift > 0
        assert a.yref == "y" and a.y == lanes.index(a.text.split()[0])  # level with its lane
        longest = max(len(line) for line in a.text.split("<br>"))
        assert fig.layout.margin.r >= a.xshift + 5.5 * longest  # and the margin holds it
    # 01: one line "n3 clock +1.5 ms, drift +500 ppm" made a margin of 30 % of an 800-pixel figure.
    assert fig.layout.margin.r <= 0.2 * 800
    legend, m = fig.layout.legend, fig.layout.margin
    assert legend.orientation == "h" and legend.y <= 0  # the legend left that margin, for below the plot
    # and starts under the x axis title (about 50 px under the plot), not at the figure's bottom edge,
    # which left a gap in between
    plot = fig.layout.height - m.t - m.b
    assert legend.yref == "paper" and legend.yanchor == "top" and 50 <= -legend.y * plot <= 65


def test_fault_labels_of_the_throughput_figure_sit_above_the_plot_and_apart():
    # 18: "crash g1n2" hung down from the top of the first panel, across g1's throughput line.
    kv = ShardedKV(groups=3, seed=1)
    kv.run_for(1.0)
    kv.client("c").start_workload(rate=20, duration=2.0, keys=kv.keys_of("g1"))
    kv.run_for(0.5)
    victim = kv.leader("g1")
    kv.crash(victim)
    kv.run_for(0.1)
    kv.restart(victim)  # 0.1 s later: its label would print over the crash's
    kv.run_for(1.0)
    fig = throughput_figure(kv)
    notes = list(fig.layout.annotations)
    assert [a.text for a in notes] == [f"crash {victim}", f"restart {victim}"]
    for a in notes:
        # The label's bottom edge is at or above the top of the plot area, so it crosses no line.
        assert a.yref == "paper" and a.y >= 1 and a.yanchor == "bottom" and (a.yshift or 0) >= 0
        assert a.textangle in (None, 0)
    assert notes[0].yshift != notes[1].yshift  # two close moments: two rows
    assert fig.layout.margin.t >= 60 + max(a.yshift for a in notes)  # under the title, not over it


def test_a_marker_on_the_same_spot_as_a_bigger_one_is_drawn_on_top_of_it():
    # 15: a shipping service that changed its data and crashed at once: the crash's X, drawn last,
    # hid the square of the change beneath it.
    w = SagaWidget(seed=0)
    w.fail("ship", "crash after apply")
    assert w.ui is not None  # the figure is drawn with the controls
    points = []  # (draw order, x, lane, size, open), every marker
    for order, trace in enumerate(w.fig.data):
        open_ = "open" in trace.marker.symbol
        points += [(order, x, y, trace.marker.size, open_) for x, y in zip(trace.x, trace.y, strict=True)]
    same_spot = [(a, b) for a, b in combinations(points, 2) if a[1:3] == b[1:3] and a[0] != b[0]]
    assert any(a[3] != b[3] for a, b in same_spot)  # the crash and the square share a spot
    for a, b in same_spot:
        below, above = sorted((a, b))
        assert above[4] or above[3] < below[3] or (above[3] == below[3] and below[4]), (below, above)
    names = [t.name for t in sorted(w.fig.data, key=lambda t: t.legendrank)]
    assert names[:2] == ["request sent", "compensation sent"]  # the legend reads in the order of a saga
    assert names[-3:] == ["crash", "restart", "process down"]


class _LeaderAtBoot(RaftServer):
    """Boots as a leader: two servers lead term 0 at t = 0."""

    def restore(self, storage):
        self.current_term = storage.get("current_term", 0)
        self.role = Role.LEADER


def _inside(fig, trace, lanes_margin: float = 0.0) -> None:
    """Every marker of ``trace`` inside the plot, a little away from its edges (no marker cut)."""
    x0, x1 = fig.layout.xaxis.range
    y_bottom, y_top = fig.layout.yaxis.range  # lane 0 on top: the range runs downwards
    for x, y in zip(trace.x, trace.y, strict=True):
        assert x0 + 0.01 * (x1 - x0) <= x <= x1 - 0.01 * (x1 - x0), (trace.name, x, (x0, x1))
        assert y_top + lanes_margin <= y <= y_bottom - lanes_margin, (trace.name, y, (y_top, y_bottom))


def test_the_failure_picture_shows_a_violation_at_t_0_whole():
    # A server that boots broken fails at t = 0: the picture's view began at 0, cutting the star in half.
    report = raft_lab.run("initial election", _LeaderAtBoot, progress=False, quiet=True)
    view = report.failures[0].show()
    assert view.violation.time == 0
    fig = view.figure()
    for trace in fig.data:
        if trace.mode == "markers" and trace.x:
            _inside(fig, trace)
    x0, x1 = fig.layout.xaxis.range
    assert x1 - x0 >= 0.01  # at least the shortest view, not 2 ms


def test_the_failure_picture_gives_a_violation_of_no_one_node_a_row_of_its_own():
    # A server with no rules fails "Leader election" (no node): its star hugged the top edge, cut.
    report = raft_lab.run("initial election", RaftServer, progress=False, quiet=True)
    view = report.failures[0].show()
    assert view.violation.node is None
    fig = view.figure()
    star = next(t for t in fig.data if t.name == "violation")
    _inside(fig, star, lanes_margin=0.4)
    assert fig.layout.yaxis.ticktext[0] == "all nodes" and fig.layout.yaxis.tickvals[0] == star.y[0]


def test_the_failure_picture_does_not_count_boots_as_events():
    # 09: "events (12)" counted each server's "follower of term 0" note at boot (spacetime's default
    # keeps boot notes: a flooding node's "I start the rumour" at boot is news).
    c = RaftCluster(n=3, seed=1)
    c.sim.run_for(0.6)
    c.crash(c.leader())
    c.sim.run_for(0.4)
    rows = list(c.sim.trace)
    assert len([e for e in rows if e.kind is Kind.STATE and e.time == 0]) == 3  # one boot note per server
    shown = len([e for e in rows if e.kind in (Kind.STATE, Kind.CRASH, Kind.RESTART)])
    events = {}
    for boots in (True, False):
        fig = spacetime_diagram(c.sim, boot_notes=boots)
        events[boots] = next(t for t in fig.data if t.name.startswith("events"))
    assert events[True].name == f"events ({shown})" and 0 in events[True].x
    assert events[False].name == f"events ({shown - 3})" == f"events ({len(events[False].x)})"
    assert 0 not in events[False].x
    # The lab's picture leaves them out: a server that boots as a leader fails at t = 0, in view.
    report = raft_lab.run("initial election", _LeaderAtBoot, progress=False, quiet=True)
    picture = report.failures[0].show().figure()
    assert not next(t for t in picture.data if t.name.startswith("events")).x
    assert next(t for t in picture.data if t.name == "server state (hover)").x  # the states at boot show


@pytest.mark.parametrize("scenario", ["initial election", "re-election"])
def test_the_failure_pictures_legend_counts_what_is_in_view(scenario):
    # re-election's view opens at the last fault, 3 s into the run: "delivered (409)" for 33 arrows in view.
    report = raft_lab.run(scenario, VoteTwice, progress=False, quiet=True)
    fig = report.failures[0].show().figure()
    x0, x1 = fig.layout.xaxis.range
    counted = 0
    for trace in fig.data:
        found = COUNTED.fullmatch(trace.name)
        if found and trace.mode == "markers":  # the heads of a series (they hold its count), or the events
            in_view = sum(1 for x in trace.x if x0 <= x <= x1)
            assert int(found[2]) == in_view, (trace.name, in_view)
            counted += 1
    assert counted == 7 and fig.layout.legend.title.text == "in view:"


def test_the_explorer_at_step_0_shows_the_boot_diamonds_whole_and_says_where_the_run_stands():
    # 12: the boot notes at step 0 sat on the plot's left edge (half diamonds), and the 0-step
    # picture showed nothing else.
    explorer = Explorer(
        protocols.raft(3, bugs=[Bug.VOTE_TWICE]), invariants.RAFT_INVARIANTS, Bounds(limits={"term": 1})
    )
    fig = explorer.figure()
    events = next(t for t in fig.data if t.name.startswith("events"))
    assert list(events.x) == [0, 0, 0]  # each server's note as it boots
    for trace in fig.data:
        if trace.mode == "markers" and trace.x:
            _inside(fig, trace)
    (note,) = fig.layout.annotations
    assert note.text.startswith("step 0: the start") and "press an enabled action" in note.text
    assert note.xref == "x" and note.xanchor == "left" and note.x > 0  # right of step 0's diamonds
    explorer.do(0)
    assert not explorer.figure().layout.annotations  # one step on, the run speaks for itself


@pytest.mark.parametrize("scenario", ["initial election", "re-election"])
def test_the_failure_pictures_star_leaves_the_event_it_marks_in_sight(scenario):
    # 09: the violation's star (18 px) sat on its node's lane at its moment, over the diamond of
    # the very event it marks: the learner could neither see nor hover which event it was.
    report = raft_lab.run(scenario, VoteTwice, progress=False, quiet=True)
    view = report.failures[0].show()
    v = view.violation
    fig = view.figure()
    star = next(t for t in fig.data if t.name == "violation")
    events = next(t for t in fig.data if t.name.startswith("events"))
    lane = view.nodes.index(v.node)
    assert (v.time, lane) in zip(events.x, events.y, strict=True)  # the event it marks is drawn
    _inside(fig, star)
    assert star.x == (v.time,) and star.y[0] < lane  # on the red line, above its lane
    y_bottom, y_top = fig.layout.yaxis.range
    m = fig.layout.margin
    px_per_lane = (fig.layout.height - m.t - m.b) / (y_bottom - y_top)
    apart = (star.marker.size + 8) / 2 + 3  # the star's half size, a diamond's (8 px), 3 px between
    for trace in fig.data:
        if trace.mode == "markers" and trace is not star and trace.x:
            for x, y in zip(trace.x, trace.y, strict=True):
                if x == v.time:
                    assert abs(star.y[0] - y) * px_per_lane >= apart, (trace.name, y)


def test_the_counterexamples_star_leaves_the_last_steps_markers_in_sight():
    # 12: the star (18 px) sat on the last step's lane, over its event diamond and its step circle.
    found = bfs(
        protocols.raft(3, bugs=[Bug.VOTE_TWICE]), invariants.RAFT_INVARIANTS, Bounds(limits={"term": 1})
    )
    fig = counterexample_diagram(found)
    star = next(t for t in fig.data if t.name.startswith("✗"))
    _inside(fig, star)
    y_bottom, y_top = fig.layout.yaxis.range
    m = fig.layout.margin
    px_per_lane = (fig.layout.height - m.t - m.b) / (y_bottom - y_top)
    near = 0
    for trace in fig.data:
        if trace.mode == "markers" and trace is not star and trace.x:
            for x, y in zip(trace.x, trace.y, strict=True):
                if x == star.x[0]:
                    near += 1
                    assert abs(star.y[0] - y) * px_per_lane >= (18 + 11) / 2 + 3, (trace.name, y)
    assert near >= 2  # the last step's circle and its event's diamond are there to see
