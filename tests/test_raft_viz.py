"""Tests for labkit.viz.raft: timelines, log grids, tables and the widgets' plain methods."""

from __future__ import annotations

import pytest

from labkit.raft import RaftCluster, Role
from labkit.viz.raft import (
    LogExplorer,
    election_widget,
    history_table,
    log_grid,
    message_table,
    role_segments,
    role_timeline,
)


@pytest.fixture(scope="module")
def cluster():
    c = RaftCluster(n=5, seed=1)
    c.sim.run_for(1.0)
    leader = c.leader()
    c.crash(leader)
    c.sim.run_for(1.0)
    c.restart(leader)
    c.submit("x=1")
    c.sim.run_for(0.5)
    return c, leader


def test_role_segments_cover_the_run_and_show_the_crash(cluster):
    c, leader = cluster
    segs = role_segments(c)
    assert set(segs) == set(c.ids)
    for node, parts in segs.items():
        assert parts[0][0] == 0.0 and parts[-1][1] == pytest.approx(c.sim.now)
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False)), node
    states = [s for _, _, s, _ in segs[leader]]
    assert states[:3] == ["follower", "candidate", "leader"] or "leader" in states
    assert "crashed" in states
    crashed = next(p for p in segs[leader] if p[2] == "crashed")
    assert crashed[0] == pytest.approx(1.0) and crashed[1] == pytest.approx(2.0)


def test_role_timeline_figure(cluster):
    c, _ = cluster
    fig = role_timeline(c, until=1.5)
    assert [t.name for t in fig.data] == ["follower", "candidate", "leader", "crashed"]
    assert "t = 1.50" in fig.layout.title.text
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert max(b + x for t in fig.data for b, x in zip(t.base, t.x, strict=True)) <= 1.5 + 1e-9


def test_log_grid_marks_terms_and_commit(cluster):
    c, _ = cluster
    fig = log_grid(c)
    names = [t.name for t in fig.data]
    assert names[-1] == "commit index" and all(n.startswith("term ") for n in names[:-1])
    cells = sum(len(t.x) for t in fig.data[:-1])
    assert cells == sum(c.node(n).log.last_index for n in c.ids)
    c2 = RaftCluster(n=3, seed=2)
    c2.sim.run_for(1.0)
    c2.crash("n1")
    fig2 = log_grid(c2)
    assert any("n1 (crashed)" in y for t in fig2.data[:-1] for y in t.y)  # durable log still drawn
    with pytest.raises(ValueError, match="window"):
        log_grid(c2, window=0)


def test_tables(cluster):
    c, _ = cluster
    t = message_table(c, since=0.0, limit=5)
    assert list(t.columns) == ["time (ms)", "from", "to", "message"] and len(t) == 5
    assert t["message"].str.startswith("RequestVote").any()
    c3 = RaftCluster(n=3, seed=3)
    c3.client("a").put("k", "v")
    c3.sim.run_for(1.0)
    h = history_table(c3)
    assert h.loc[0, "input"] == ("put", "k", "v") and h.loc[0, "ret"] > h.loc[0, "call"]


def test_election_widget_methods_and_refusals():
    w = election_widget(n=5, seed=1, duration=4.0, fault_at=1.5)
    w.set_side("n3", "B")
    assert w.sim.node("n3").role is Role.LEADER
    assert any(w.sim.node(n).role is Role.LEADER for n in ("n1", "n2", "n4", "n5"))
    with pytest.raises(ValueError):
        w.set_fault_at(-1.0)
    ui = w.ui
    assert ui is not None and len(w.fig.data) == 4
    w.fault_slider.value = 2.0  # a control, through its guarded callback
    assert w.settings.fault_at == 2.0


def test_log_explorer_replays_actions_and_refuses_bad_ones():
    e = LogExplorer(n=5, seed=1)
    e.submit("a")
    first = e.cluster.leader()
    e.crash()
    e.run(1.0)
    assert e.cluster.leader() not in (None, first)
    e.restart()
    e.submit("b")
    e.run(0.5)
    assert all(e.cluster.applied(n) == ["a", "b"] for n in e.cluster.ids)
    again = LogExplorer(n=5, seed=1)
    for what, arg in e.actions:
        again.actions.append((what, arg))
    assert again._replay().sim.trace.digest() == e.cluster.sim.trace.digest()
    with pytest.raises(ValueError, match="not crashed"):
        e.restart("n1")
    with pytest.raises(ValueError, match="command"):
        e.submit("  ")
    _ = e.ui
    e.command.value = ""
    e.buttons[0].click()  # Submit with an empty command: refused in the status line
    assert "Not allowed" in e.status.value


def test_election_widget_controls_show_settings_made_from_python():
    w = election_widget(n=3, seed=1, duration=2.0, fault_at=1.0)
    assert w.ui is not None
    w.crash("n1")
    w.set_side("n2", "B")
    assert w.up_boxes["n1"].value is False and w.side_pickers["n2"].value == "B"
    w.reset()
    assert w.up_boxes["n1"].value is True and w.side_pickers["n2"].value == "A"
