"""The broadcast and CRDT figures and widgets of notebook 03, driven without a browser."""

from __future__ import annotations

import pytest

from labkit.broadcast import Property, Protocol, run_broadcast
from labkit.crdt import GCounter, GossipReplica, Increment, run_replicas
from labkit.sim import Uniform
from labkit.viz.broadcast import CHAT, BroadcastWidget, broadcast_diagram, delivery_orders, verdicts
from labkit.viz.crdt import EMPTY_NOTE, Doc, ReplicasWidget, replica_diagram


def _trace(fig, prefix):
    return next(t for t in fig.data if t.name.startswith(prefix))


def chat(protocol, seed=1):
    return run_broadcast(
        protocol, CHAT["broadcasts"], replies=CHAT["replies"], latency=CHAT["latency"], seed=seed
    )


def test_broadcast_diagram_marks_broadcasts_deliveries_hold_backs_and_violations():
    slow = run_broadcast(
        Protocol.BEST_EFFORT,
        [(0.0, "A", "q?")],
        replies={"q?": ("B", "a!")},
        latency=0.01,
        links={("A", "C"): 0.2},
    )
    fig = broadcast_diagram(slow)
    assert list(_trace(fig, "broadcast").text) == ["q?", "a!"]
    bad = _trace(fig, "breaks")
    assert bad.name == "breaks causal, total order" and list(bad.y) == [2]  # on C's lane
    labels = list(zip(_trace(fig, "delivery labels").y, _trace(fig, "delivery labels").text, strict=True))
    assert [t for y, t in labels if y == 2] == [
        '<span style="color:#D55E00">a!</span>',
        "q?",
    ]  # the bad one red
    assert fig.layout.xaxis.range[1] < 0.25  # framed on the deliveries, not the quiet 2 s after

    held = _trace(broadcast_diagram(chat(Protocol.CAUSAL)), "held back")
    assert len(held.x) == 3 and held.x[1] - held.x[0] > 0.01  # a! waited at C for q?
    assert not _trace(broadcast_diagram(chat(Protocol.SEQUENCER)), "breaks").x


def test_broadcast_diagram_highlight_and_in_place_redraw():
    run = chat(Protocol.FIFO)
    only_total = broadcast_diagram(run, highlight=Property.TOTAL_ORDER)
    assert _trace(only_total, "breaks").name == "breaks total order"
    import plotly.graph_objects as go

    fig = go.FigureWidget()
    broadcast_diagram(run, figure=fig)
    n = len(fig.data)
    broadcast_diagram(chat(Protocol.CAUSAL), figure=fig)
    assert len(fig.data) == n  # redrawn, not stacked
    with pytest.raises(TypeError, match="run"):
        broadcast_diagram(run.sim)
    with pytest.raises(TypeError, match="highlight"):
        broadcast_diagram(run, highlight=["FIFO"])


def test_tables():
    run = chat(Protocol.SEQUENCER)
    orders = delivery_orders(run)
    assert list(orders.index) == ["A", "B", "C"] and list(orders.loc["C"]) == run.delivered("C")
    table = verdicts([chat(p) for p in (Protocol.FIFO, Protocol.SEQUENCER)])
    assert (
        table.loc["FIFO", "causal"].startswith("✗")
        and table.loc["total order (sequencer)", "total order"] == "✓"
    )


def test_broadcast_widget_follows_its_controls_and_refuses_bad_seeds():
    w = BroadcastWidget()
    assert w.run.protocol is Protocol.BEST_EFFORT and "Broken: FIFO" in w.summary()
    ui = w.ui
    assert ui is not None and len(w.fig.data) > 13
    w.protocol_picker.value = Protocol.CAUSAL  # as if clicked
    assert w.run.protocol is Protocol.CAUSAL and "Held: FIFO, causal." in w.status.value
    w.seed_slider.value = 4
    assert w.seed == 4 and "network seed 4" in w.fig.layout.title.text
    w.set_protocol(Protocol.SEQUENCER)  # from Python: the control follows
    assert (
        w.protocol_picker.value is Protocol.SEQUENCER and "Held: FIFO, causal, total order." in w.status.value
    )
    with pytest.raises(ValueError, match="seed"):
        w.set_seed(99)
    with pytest.raises(TypeError, match="protocol"):
        w.set_protocol("fifo")


def test_replica_diagram_marks_updates_and_merges_but_not_merges_that_change_no_value():
    run = run_replicas(
        lambda r: GossipReplica(r, GCounter(), interval=0.25),
        [(0.05, "A", Increment()), (0.06, "B", Increment())],  # before the first gossip round
        latency=Uniform(0.01, 0.05),
    )
    fig = replica_diagram(run.sim)
    assert list(_trace(fig, "local update").text) == ["1", "1"]
    merges = _trace(fig, "changed by a merge")
    lanes: dict[int, list[str]] = {}
    for y, text in zip(merges.y, merges.text, strict=True):
        lanes.setdefault(y, []).append(text)
    assert {y: v[-1] for y, v in lanes.items()} == {0: "2", 1: "2", 2: "2"}
    assert all(a != b for v in lanes.values() for a, b in zip(v, v[1:], strict=False))


def test_replicas_widget_text_story():
    w = ReplicasWidget(Doc.TEXT)
    assert w.converged() and w.values() == {"A": "hello world", "B": "hello world", "C": "hello world"}
    assert w.summary().startswith("Network: connected. ")
    w.partition()  # said at once, in words and in the title, before any edit shows it
    assert w.converged() and w.summary().startswith(
        "Network: A is cut off from B and C, so an edit reaches only"
    )
    assert w.figure().layout.title.text.endswith("(A cut off from B and C)")
    w.edit("A", "hello brave world")
    w.edit("B", "Hello world!")
    assert not w.converged() and w.summary().endswith("The replicas differ: heal to merge them.")
    assert w.values()["C"] == "Hello world!"  # B's side gossips among itself
    w.heal()
    assert w.converged() and set(w.values().values()) == {"Hello brave world!"}
    assert "All replicas agree." in w.summary() and w.discarded() == ()
    assert w.summary().startswith("Network: connected. ") and "cut off" not in w.figure().layout.title.text


def test_replicas_widget_lww_names_the_write_it_threw_away_and_mv_keeps_both():
    lww = ReplicasWidget(Doc.LWW)
    lww.partition()
    lww.edit("A", "10:30")
    lww.edit("B", "11:00")
    lww.heal()
    assert lww.values() == {"A": "11:00", "B": "11:00", "C": "11:00"} and lww.discarded() == ("10:30",)
    merged = _trace(lww.figure(), "changed by a merge")
    assert 1 not in list(merged.y)  # B's merges changed its state (the witness), never what it reads
    assert "threw away '10:30'" in lww.summary()
    # A write made after seeing both replaces both, in the multi-value register too: nothing to report.
    lww.edit("C", "12:00")
    lww.run(1.0)
    assert lww.discarded() == () and set(lww.values().values()) == {"12:00"}

    mv = ReplicasWidget(Doc.MV)
    mv.partition()
    mv.edit("A", "10:30")
    mv.edit("B", "11:00")
    mv.heal()
    assert set(mv.values().values()) == {("10:30", "11:00")} and mv.shown("C") == "10:30 | 11:00"


def test_replicas_widget_lww_with_a_skewed_clock_loses_the_later_write():
    w = ReplicasWidget(Doc.LWW, clock_offsets={"A": 5.0})
    w.edit("A", "10:30")
    w.run(1.0)
    w.edit("B", "11:00")  # B has seen 10:30 and overwrites it, but its clock is 5 s behind A's
    w.run(1.0)
    assert set(w.values().values()) == {"10:30"} and w.discarded() == ("11:00",)


def test_replicas_widget_set_add_wins_when_a_side_removes_and_readds():
    w = ReplicasWidget(Doc.SET)
    w.partition()
    w.edit("A", "eggs")  # A removes milk
    w.edit("B", "eggs")  # B removes milk too...
    w.edit("B", "eggs, milk")  # ...and adds it back: a fresh tag A never saw
    w.heal()
    assert set(map(tuple, w.values().values())) == {("eggs", "milk")}


def test_replicas_widget_controls_and_refusals():
    w = ReplicasWidget(Doc.TEXT)
    ui = w.ui
    assert ui is not None and w.editors["A"].value == "hello world"
    w.editors["B"].value = "hello there"
    next(b for b in ui.children[2].children if b.description == "Save at B").click()
    assert w.values()["B"] == "hello there" and w.editors["C"].value == "hello there"
    w.doc_picker.value = Doc.SET  # as if clicked: starts again with a set
    assert w.doc is Doc.SET and w.editors["A"].value == "eggs, milk"
    with pytest.raises(ValueError, match="replica"):
        w.edit("Z", "x")
    with pytest.raises(TypeError, match="content"):
        w.edit("A", 3)
    with pytest.raises(ValueError, match="clock_offsets"):
        ReplicasWidget(clock_offsets={"Q": 0.1})
    from labkit.viz.common import guarded

    guarded(w.status)(w.edit)("Z", "x")
    assert "Not allowed" in w.status.value


def _notes(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def test_an_empty_replica_diagram_says_nothing_has_happened_and_a_drawn_one_does_not():
    w = ReplicasWidget(Doc.TEXT)  # as the learner first sees it, and after Reset
    w.ui  # noqa: B018 - builds the widget's figure, which every step then redraws in place
    assert _notes(w.fig) == [w.EMPTY] and _notes(w.figure()) == [w.EMPTY]
    w.partition()
    assert _notes(w.fig) == [w.EMPTY]
    w.edit("A", "hello brave world")
    assert _notes(w.fig) == [] and _notes(w.figure()) == []
    w.reset()
    assert _notes(w.fig) == [w.EMPTY]
    run = run_replicas(lambda r: GossipReplica(r, GCounter(), interval=0.25), [(0.05, "A", Increment())])
    assert EMPTY_NOTE not in _notes(replica_diagram(run.sim))
    with pytest.raises(TypeError, match="empty_note"):
        replica_diagram(run.sim, empty_note=3)
