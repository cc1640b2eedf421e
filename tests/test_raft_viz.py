"""Tests for labkit.viz.raft: timelines, log grids, tables and the widgets' plain methods."""

from __future__ import annotations

import pytest

from labkit.examples import heartbeat_cluster
from labkit.raft import RaftCluster, Role
from labkit.viz.cluster import ClusterWidget
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


def labels(fig) -> set[str]:
    return set(fig.layout.yaxis.categoryarray)


def test_log_explorer_acts_on_the_chosen_server():
    e = LogExplorer(n=5, seed=1)
    _ = e.ui
    leader = e.cluster.leader()
    follower = next(n for n in e.cluster.ids if n != leader)
    e.server_picker.value = follower  # the drop-down only picks the target
    assert e.chosen == follower and e.actions == []
    assert [b.description for b in (e.crash_button, e.restart_button, e.isolate_button)] == [
        f"Crash {follower}",
        f"Restart {follower}",
        f"Isolate {follower}",
    ]
    e.crash_button.click()
    assert not e.cluster.is_up(follower) and e.cluster.leader() == leader
    assert f"{follower} (crashed)" in labels(e.fig)
    e.crash_button.click()  # crashing it again is refused in the status line, not raised
    assert "Not allowed" in e.status.value and "already crashed" in e.status.value
    e.restart_button.click()
    assert e.cluster.is_up(follower) and follower in labels(e.fig)
    e.restart_button.click()
    assert "Not allowed" in e.status.value and "not crashed" in e.status.value
    e.isolate_button.click()
    assert e.cluster.disconnected == [follower] and f"{follower} (cut off)" in labels(e.fig)
    e.isolate_button.click()
    assert "already cut off" in e.status.value
    assert e.actions == [("crash", follower), ("restart", follower), ("isolate", follower)]
    # The leader shortcuts are still there.
    shortcut = {b.description: b for b in e.buttons}
    shortcut["Crash leader"].click()
    assert not e.cluster.is_up(leader)
    shortcut["Restart crashed"].click()
    assert e.cluster.is_up(leader)


def test_log_explorer_partitions_servers_into_two_sides_and_heals():
    e = LogExplorer(n=5, seed=1)
    _ = e.ui
    old = e.cluster.leader()
    e.side_pickers[old].value = "B"  # the old leader alone on side B
    partner = next(n for n in e.cluster.ids if n != old)
    e.side_pickers[partner].value = "B"
    assert e.side_b == {old, partner}
    assert e.cluster.partitions == [sorted(set(e.cluster.ids) - {old, partner}), sorted([old, partner])]
    assert not e.cluster.can_reach(old, next(n for n in e.cluster.ids if n not in e.side_b))
    assert f"{partner} (side B)" in labels(e.fig) and "partition A:" in e.status.value
    e.submit("lost")  # to the old leader, which cannot commit on side B
    e.run(1.5)
    new = e.cluster.leader()
    assert new not in (None, old, partner) and f"{new} (leader, side A)" in labels(e.fig)
    e.submit("kept")
    e.buttons[[b.description for b in e.buttons].index("Heal")].click()
    assert e.side_b == frozenset() and all(t.value == "A" for t in e.side_pickers.values())
    assert len(e.cluster.partitions) == 1
    e.run(0.5)
    c = e.cluster
    assert all(c.applied(n) == ["kept"] for n in c.ids) and c.violations == []
    # Replaying the recorded actions gives the same run.
    again = LogExplorer(n=5, seed=1)
    again.actions = list(e.actions)
    assert again._replay().sim.trace.digest() == c.sim.trace.digest()


def test_log_explorer_controls_follow_settings_made_from_python():
    e = LogExplorer(n=3, seed=2)
    _ = e.ui
    e.choose("n2")
    assert e.server_picker.value == "n2" and e.restart_button.description == "Restart n2"
    e.partition(["n1", "n3"])
    assert [e.side_pickers[n].value for n in e.cluster.ids] == ["B", "A", "B"]
    e.set_side("n3", "A")
    assert [e.side_pickers[n].value for n in e.cluster.ids] == ["B", "A", "A"]
    e.heal()
    assert [e.side_pickers[n].value for n in e.cluster.ids] == ["A", "A", "A"]
    e.partition(["n2"])
    e.reset()
    assert e.side_b == frozenset() and e.side_pickers["n2"].value == "A"
    # All on one side is no partition.
    e.partition(e.cluster.ids)
    assert len(e.cluster.partitions) == 1


def test_log_explorer_refuses_impossible_choices():
    e = LogExplorer(n=3, seed=2)
    with pytest.raises(ValueError, match="node must be one of n1, n2, n3"):
        e.choose("n9")
    with pytest.raises(ValueError, match="side must be 'A' or 'B'"):
        e.set_side("n1", "C")
    with pytest.raises(ValueError, match="already on side A"):
        e.set_side("n1", "A")
    with pytest.raises(TypeError, match="list of server ids"):
        e.partition("n1")
    with pytest.raises(ValueError, match="node must be one of"):
        e.partition(["n1", "x"])
    assert e.actions == []
    e.crash("n1")
    e.crash("n2")
    with pytest.raises(ValueError, match="already crashed"):
        e.crash("n1")
    e.crash("n3")
    with pytest.raises(ValueError, match="no leader"):
        e.submit("x")
    with pytest.raises(ValueError, match="there is no leader"):
        e.crash()
    assert e.actions == [("crash", "n1"), ("crash", "n2"), ("crash", "n3")]
    e.restart()  # every crashed server, as one step
    assert e.actions[3:] == [("restart", "n1"), ("restart", "n2"), ("restart", "n3")]


# ---------------------------------------------------------------------------
# Raft in practice: the snapshot boundary, and membership from the explorer
# ---------------------------------------------------------------------------
def test_log_grid_shows_the_snapshot_boundary_of_every_server_also_a_crashed_one():
    c = RaftCluster(n=3, seed=1, snapshot_threshold=6)
    c.run_until(lambda: c.leader() is not None)
    for i in range(15):
        c.submit(f"x{i}")
        c.sim.run_for(0.01)
    c.sim.run_for(0.2)
    down = next(n for n in c.ids if n != c.leader())
    c.crash(down)
    fig = log_grid(c, window=30)
    traces = {t.name: t for t in fig.data}
    assert {"in a snapshot", "snapshot boundary", "commit index"} <= set(traces)
    for nid in c.ids:
        base = (
            c.node(nid).log.snapshot_index
            if c.is_up(nid)
            else c.sim.storage(nid)["snapshot"].last_included_index
        )
        label = next(y for y in set(traces["in a snapshot"].y) if y.startswith(nid))
        grey = [
            x for x, y in zip(traces["in a snapshot"].x, traces["in a snapshot"].y, strict=True) if y == label
        ]
        assert grey == list(range(1, base + 1)) and base >= 6
        bar = [
            x
            for x, y in zip(traces["snapshot boundary"].x, traces["snapshot boundary"].y, strict=True)
            if y == label
        ]
        assert bar[0] == base + 0.5
        coloured = [
            x
            for t in fig.data
            if t.name.startswith("term ")
            for x, y in zip(t.x, t.y, strict=True)
            if y == label
        ]
        assert min(coloured, default=base + 1) == base + 1  # entries start right after the boundary
    assert any("crashed" in y for y in traces["in a snapshot"].y)


def test_log_explorer_adds_removes_and_hands_over_and_labels_learners():
    e = LogExplorer(n=3, seed=2, snapshot_threshold=10)
    for i in range(12):
        e.submit(f"x={i}")
    e.partition(["n1", "n2", "n3"])  # side B holds everyone: no partition
    for follower in [n for n in e.cluster.ids if n != e.cluster.leader()]:
        e.isolate(follower)  # no majority: the configuration with the learner cannot commit, nor promote it
    new = e.add_server()
    conf = e.cluster.configuration()
    assert new == "n4" and conf.learners == ("n4",) and "n4" not in conf.voters
    labels = {y for t in e.figure().data for y in t.y if y}
    assert any(y.startswith("n4") and "learner" in y for y in labels)
    e.heal()
    e.run(0.5)
    assert e.cluster.members() == ("n1", "n2", "n3", "n4")
    leader = e.cluster.leader()
    target = next(n for n in e.cluster.members() if n != leader)
    e.transfer(target)
    e.run(0.2)
    assert e.cluster.leader() == target
    _ = e.ui
    assert set(e.side_pickers) == set(e.cluster.ids) == {"n1", "n2", "n3", "n4"}
    e.choose(leader)
    e.remove_button.click()
    e.run(0.5)
    assert leader not in e.cluster.members() and leader in e.cluster.removed
    assert "voters" in e.summary() and f"{leader}:removed" in e.summary()
    # Retired, not crashed: its row and the status line say removed, and nothing says it crashed.
    assert f"{leader} (removed)" in {y for t in e.figure().data for y in t.y if y}
    with pytest.raises(ValueError, match="was removed from the cluster"):
        e.remove_server(leader)
    with pytest.raises(ValueError, match="was removed from the cluster"):
        e.set_side(leader, "B")
    with pytest.raises(ValueError, match="already leads"):
        e.transfer(e.cluster.leader())
    # The controls offer the removed server no more: not in the drop-down, no partition toggle.
    present = [n for n in e.cluster.ids if n != leader]
    assert list(e.server_picker.options) == present and list(e.side_pickers) == present
    assert [box.children[0].value for box in e.sides_box.children] == present
    assert e.chosen in present
    e.choose(e.cluster.leader())
    e.transfer_button.click()  # refused in the status line, not a traceback
    assert "Not allowed" in e.status.value
    assert e.cluster.violations == []


def test_election_summary_counts_in_good_english():
    from labkit.viz.raft import election_summary

    c = RaftCluster(n=5, seed=1)
    c.sim.run_for(1.0)
    assert election_summary(c.sim).endswith(", 1 term with a leader")


def test_redrawing_a_role_timeline_with_fewer_network_changes_drops_the_old_lines():
    # A widget redraws into the same figure: after a reset, no "network change" line may linger.
    from labkit.viz.raft import role_timeline

    cut = RaftCluster(n=3, seed=1)
    cut.sim.run_for(0.5)
    cut.partition(["n1"])
    cut.sim.run_for(0.5)
    fig = role_timeline(cut)
    assert len(fig.layout.shapes) == 1 and [a.text for a in fig.layout.annotations] == ["network change"]
    calm = RaftCluster(n=3, seed=1)
    calm.sim.run_for(1.0)
    role_timeline(calm, figure=fig)
    assert len(fig.layout.shapes) == 0 and len(fig.layout.annotations) == 0


def test_log_grid_writes_key_value_commands_short_enough_for_a_cell():
    from labkit.viz.raft import log_grid

    c = RaftCluster(n=3, seed=1)
    c.client("w").put("k3", "23")
    c.client("a").append("greeting", ", world")
    c.sim.run_for(1.0)
    texts = [t for tr in log_grid(c).data for t in (tr.text or ())]
    assert "k3=23" in texts and "greetin…" in texts and all(len(t) <= 8 for t in texts)


def test_election_widget_adds_and_removes_servers_and_the_picture_shows_it():
    """The cluster widget's Add server and Remove (diss. §4.2.1, §4.2.2), clicked as in the browser."""
    w = election_widget(n=5, seed=1, duration=4.0, fault_at=1.5)
    _ = w.ui
    fig = w.fig
    assert list(w.remove_picker.options) == ["n1", "n2", "n3", "n4", "n5"]
    assert w.remove_picker.value == "n1"  # a server is chosen: Remove never acts on nothing
    w.add_button.click()
    c = w.cluster
    assert w.node_ids[-1] == "n6" and "n6" in c.members()  # a voter in a committed configuration
    states = [(t0, s) for t0, _, s, _ in role_segments(c)["n6"]]
    assert states[0] == (pytest.approx(1.5), "learner") and states[-1][1] == "follower"
    voter_at = next(t0 for t0, s in states if s != "learner")
    assert 1.5 < voter_at < 2.0  # it caught up, then counted
    assert w.fig is fig and "learner" in [t.name for t in fig.data]
    assert "n6 (added)" in fig.layout.yaxis.ticktext
    assert any("then a voter" in a.text for a in fig.layout.annotations)
    assert "n6" in w.up_boxes and "n6" in w.side_pickers and "added at t=1.5s: n6" in w.status.value
    w.remove_picker.value = "n2"
    w.remove_button.click()
    c = w.cluster
    assert c.removed == {"n2"} and "n2" not in c.configuration().members and "n2" not in c.members()
    assert "n2 (removed)" in fig.layout.yaxis.ticktext and "n1" in fig.layout.yaxis.ticktext
    removed = next(t for t in fig.data if t.name == "removed")
    assert list(removed.y) == ["n2"] and removed.base[0] > 1.5
    # Its controls are gone: no crash box, no partition toggle, not offered for removal again.
    assert "n2" not in w.up_boxes and "n2" not in w.side_pickers
    assert list(w.remove_picker.options) == ["n1", "n3", "n4", "n5"]
    assert w.remove_picker.value in w.remove_picker.options
    assert any("n2: removed" in getattr(r, "value", "") for r in w.rows_box.children)
    with pytest.raises(ValueError, match="n2 was removed"):
        w.set_side("n2", "B")
    with pytest.raises(ValueError, match="there from the start"):
        w.remove_server("n6")
    w.side_pickers["n6"].value = "B"  # an added server can be partitioned like the others
    assert ["n6"] in w.cluster.partitions
    assert c.violations == [] and w.cluster.violations == []
    w.reset_button.click()
    assert w.node_ids == ("n1", "n2", "n3", "n4", "n5") and set(w.up_boxes) == set(w.node_ids)
    assert [t.name for t in fig.data] == ["follower", "candidate", "leader", "crashed"]
    assert list(fig.layout.yaxis.ticktext) == ["n5", "n4", "n3", "n2", "n1"]


def test_election_widget_removes_the_leader_with_or_without_handing_over():
    w = election_widget(n=3, seed=1, duration=3.0, fault_at=1.0)
    leader = next(n for n in w.node_ids if w.sim.node(n).role is Role.LEADER)
    w.remove_server(leader)
    assert leader in w.cluster.removed and not list(w.sim.trace.notes("transfer"))
    w.set_hand_over(True)
    assert leader in w.cluster.removed and [e.node for e in w.sim.trace.notes("transfer")] == [leader]
    with pytest.raises(ValueError, match="not the last"):
        for n in w.shown_ids:
            w.remove_server(n)
    plain = ClusterWidget(lambda s: heartbeat_cluster(s, n=3), seed=1)
    with pytest.raises(ValueError, match="nodes are fixed"):
        plain.add_server()
    assert plain.ui is not None and not hasattr(plain, "add_button")


def test_membership_summaries_list_servers_in_the_clusters_order():
    """Voters are promoted in the order they catch up; the status line lists them n1, n2, ... all the same."""
    from labkit.viz.raft import _in_order

    c = RaftCluster(n=3, seed=1)
    c.add_server()
    c.add_server()
    assert _in_order(c, ("n1", "n2", "n3", "n5", "n4")) == "n1, n2, n3, n4, n5"
    assert _in_order(c, ["n5"]) == "n5"


def test_log_explorer_draws_a_restarted_server_with_the_log_it_read_from_disk():
    # Restart queues the boot at the same instant; the picture must not show the empty log of a server
    # object that has not booted yet, which would tell a learner that a restart loses the log.
    e = LogExplorer(n=5, seed=1)
    e.submit("x=1")
    e.crash("n2")
    e.run(0.5)
    e.restart("n2")
    assert [str(entry.command) for entry in e.cluster.node("n2").log] == ["no-op", "x=1"]


def test_log_explorer_restart_crashed_leaves_a_removed_server_shut_down():
    # A removed server is shut down for good (diss. §4.2.2), not crashed: "Restart crashed" used to
    # boot it again, and with its old configuration it stood for election and disrupted the cluster.
    e = LogExplorer(n=5, seed=1)
    follower = next(n for n in e.cluster.ids if n != e.cluster.leader())
    e.remove_server(follower)
    e.run(0.5)
    assert follower in e.cluster.removed
    leader = e.cluster.leader()
    e.crash(leader)
    e.restart()  # every crashed server: the leader, and not the removed follower
    assert e.actions[-1] == ("restart", leader) and ("restart", follower) not in e.actions
    e.run(2.0)
    assert not e.cluster.is_up(follower) and f"{follower}:removed" in e.summary()
    assert e.cluster.leader() is not None and e.cluster.violations == []


def test_log_explorer_says_whether_running_on_brings_a_leader():
    e = LogExplorer(n=5, seed=1)
    e.crash()  # the leader: an election follows
    with pytest.raises(ValueError, match=r"election is under way\); run the cluster"):
        e.submit("x=1")
    e.run(1.0)
    e.crash(next(n for n in e.cluster.live_nodes() if n != e.cluster.leader()))
    e.crash()  # with the first leader, three of five down: no candidate can win, however long it runs
    e.run(2.0)
    for refused in (lambda: e.submit("x=1"), e.add_server):
        with pytest.raises(
            ValueError, match="none can be elected: .* votes of 3 of the 5 voters, but at most 2"
        ):
            refused()
    _ = e.ui
    e.buttons[0].click()  # Submit: the reason is in the status line
    assert "none can be elected" in e.status.value
    with pytest.raises(ValueError, match="type a command"):
        e.submit(" ")


def test_election_widget_replay_keeps_the_time_axis_and_says_the_status_is_of_the_whole_run():
    # Replaying to 2 s used to stretch the role timeline over 0-2 s, and the status line still said
    # "t = 4.00 s: leader now ..." beside a figure that stopped at 2 s.
    w = election_widget(n=5, seed=1, duration=4.0, fault_at=1.5)
    _ = w.ui
    w.crash(w.cluster.leader())
    whole = tuple(w.fig.layout.xaxis.range)
    w.replay(2.0)
    assert tuple(w.fig.layout.xaxis.range) == whole == (0, 4.0)
    assert "up to t = 2.00 s" in w.fig.layout.title.text
    assert "replayed up to t = 2.00 s; at the end of the run, t = 4.00 s: leader now" in w.status.value
    w.replay(None)
    assert "replayed" not in w.status.value
    c = RaftCluster(n=3, seed=1)
    c.sim.run_for(2.0)
    assert role_timeline(c, until=0.5).layout.xaxis.range == role_timeline(c).layout.xaxis.range
