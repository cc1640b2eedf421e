"""labkit.sim: the deterministic simulator and its network model."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.examples import (
    Client,
    FloodBroadcast,
    Greeter,
    Server,
    broadcast_cluster,
    heartbeat_cluster,
    request_response_cluster,
)
from labkit.sim import Context, Exponential, Fixed, Kind, Node, Simulator, Uniform


@dataclass(frozen=True, slots=True)
class Msg:
    n: int


class Recorder(Node):
    """Records what it receives; can be told to send and to persist."""

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.received: list[tuple[float, str, Any]] = []
        self.timers: list[tuple[float, str]] = []
        self.started_with: dict = {}

    def on_start(self, ctx: Context) -> None:
        self.started_with = dict(ctx.storage)

    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        self.received.append((ctx.now, src, msg))

    def on_timer(self, ctx: Context, name: str) -> None:
        self.timers.append((ctx.now, name))


def two_nodes(**kw: Any) -> Simulator:
    sim = Simulator(seed=1, **kw)
    sim.add_node("a", Recorder)
    sim.add_node("b", Recorder)
    return sim


def send(sim: Simulator, src: str, dst: str, msg: Any) -> None:
    sim.call(src, lambda node, ctx: ctx.send(dst, msg))


# ---------------------------------------------------------------------------
# Basics
# ---------------------------------------------------------------------------
def test_message_arrives_after_the_fixed_latency():
    sim = two_nodes(latency=Fixed(0.05))
    send(sim, "a", "b", Msg(1))
    sim.run_for(1.0)
    assert sim.node("b").received == [(0.05, "a", Msg(1))]
    assert sim.now == 1.0


def test_trace_records_send_and_delivery_with_stable_columns():
    sim = two_nodes()
    send(sim, "a", "b", Msg(1))
    sim.run_for(1.0)
    df = sim.trace.to_frame()
    assert list(df.columns) == [
        "time",
        "kind",
        "node",
        "src",
        "dst",
        "msg_id",
        "message",
        "sent_at",
        "reason",
        "detail",
        "reordered",
    ]
    assert list(df["kind"]) == ["start", "start", "send", "deliver"]


def test_a_simulation_without_a_trace_runs_the_same_and_refuses_to_show_one():
    kept, bare = two_nodes(latency=Exponential(0.02)), two_nodes(latency=Exponential(0.02), trace=False)
    for sim in (kept, bare):
        for i in range(50):
            send(sim, "a", "b", Msg(i))
        assert sim.run_for(1.0) == 50  # fifty deliveries (the starts ran in the first call)
        assert "trace=" in repr(sim)
    assert bare.node("b").received == kept.node("b").received
    assert len(kept.trace) == 102
    for read in (len, list, lambda t: t.to_frame(), lambda t: t.digest(), lambda t: t.count(Kind.SEND)):
        with pytest.raises(ValueError, match="trace=True"):
            read(bare.trace)
    with pytest.raises(TypeError, match="trace must be True or False"):
        Simulator(trace="no")


def test_timers_fire_replace_and_cancel():
    sim = two_nodes()
    sim.call("a", lambda n, ctx: ctx.set_timer("t", 0.5))
    sim.call("a", lambda n, ctx: ctx.set_timer("t", 0.2))  # replaces the first
    sim.call("a", lambda n, ctx: ctx.set_timer("u", 0.3))
    sim.call("a", lambda n, ctx: ctx.cancel_timer("u"))
    sim.run_for(1.0)
    assert sim.node("a").timers == [(0.2, "t")]


def test_scheduled_callbacks_run_at_their_time():
    sim = two_nodes()
    seen = []
    sim.at(0.3, lambda s: seen.append(s.now))
    sim.after(0.1, lambda s: seen.append(s.now))
    sim.run_for(1)
    assert seen == [0.1, 0.3]


def test_greeters_greet_each_other():
    sim = Simulator(seed=0)
    for name in ["alice", "bob", "carol"]:
        sim.add_node(name, Greeter)
    sim.run_for(1)
    assert sorted(sim.node("alice").greeted_by) == ["bob", "carol"]


# ---------------------------------------------------------------------------
# Network faults
# ---------------------------------------------------------------------------
def test_loss_rate_matches_the_probability():
    sim = two_nodes(loss=0.3)
    for i in range(2000):
        send(sim, "a", "b", Msg(i))
    sim.run_for(1)
    lost = sim.trace.count(Kind.DROP)
    assert 500 < lost < 700  # 600 expected; 6 standard deviations is about +-123
    assert len(sim.node("b").received) == 2000 - lost
    assert {e.reason for e in sim.trace.of_kind(Kind.DROP)} == {"loss"}


def test_duplication_delivers_some_messages_twice():
    sim = two_nodes(duplication=0.5)
    for i in range(400):
        send(sim, "a", "b", Msg(i))
    sim.run_for(1)
    dups = sim.trace.count(Kind.DUPLICATE)
    assert 140 < dups < 260
    assert len(sim.node("b").received) == 400 + dups


def test_random_latency_reorders_and_the_frame_shows_it():
    sim = two_nodes(latency=Uniform(0.0, 0.1))
    for i in range(50):
        send(sim, "a", "b", Msg(i))
    sim.run_for(1)
    order = [m.n for _, _, m in sim.node("b").received]
    assert sorted(order) == list(range(50)) and order != list(range(50))
    df = sim.trace.to_frame()
    assert df["reordered"].any()


def test_fixed_latency_never_reorders():
    sim = two_nodes(latency=0.02)
    for i in range(50):
        send(sim, "a", "b", Msg(i))
    sim.run_for(1)
    assert [m.n for _, _, m in sim.node("b").received] == list(range(50))
    assert not sim.trace.to_frame()["reordered"].any()


def test_per_link_latency_override():
    sim = two_nodes(latency=0.01)
    sim.set_latency(0.5, src="a", dst="b")
    send(sim, "a", "b", Msg(1))
    send(sim, "b", "a", Msg(2))
    sim.run_for(1)
    assert sim.node("b").received[0][0] == 0.5
    assert sim.node("a").received[0][0] == 0.01


def test_partition_blocks_both_directions_and_heal_restores():
    sim = Simulator(seed=0)
    for n in "abc":
        sim.add_node(n, Recorder)
    sim.partition(["a"], ["b", "c"])
    send(sim, "a", "b", Msg(1))
    send(sim, "b", "a", Msg(2))
    send(sim, "b", "c", Msg(3))
    sim.run_for(1)
    assert sim.node("b").received == [] and sim.node("a").received == []
    assert [m for _, _, m in sim.node("c").received] == [Msg(3)]
    sim.heal()
    send(sim, "a", "b", Msg(4))
    sim.run_for(1)
    assert [m for _, _, m in sim.node("b").received] == [Msg(4)]


def test_unlisted_nodes_form_one_more_group():
    sim = Simulator(seed=0)
    for n in "abc":
        sim.add_node(n, Recorder)
    sim.isolate("a")
    assert sim.partitions == [["a"], ["b", "c"]]
    assert sim.can_reach("b", "c") and not sim.can_reach("a", "c")


def test_message_in_flight_when_partition_starts_is_dropped():
    sim = two_nodes(latency=0.5)
    send(sim, "a", "b", Msg(1))
    sim.run_for(0.1)
    sim.partition(["a"], ["b"])
    sim.run_for(1)
    assert sim.node("b").received == []
    assert sim.trace.of_kind(Kind.DROP)[0].reason == "partition"


def test_directed_cut_blocks_one_way_only():
    sim = two_nodes()
    sim.cut("a", "b")
    send(sim, "a", "b", Msg(1))
    send(sim, "b", "a", Msg(2))
    sim.run_for(1)
    assert sim.node("b").received == []
    assert len(sim.node("a").received) == 1
    sim.uncut("a", "b")
    send(sim, "a", "b", Msg(3))
    sim.run_for(1)
    assert len(sim.node("b").received) == 1


# ---------------------------------------------------------------------------
# Crashes and restarts
# ---------------------------------------------------------------------------
class Persister(Recorder):
    def on_message(self, ctx: Context, src: str, msg: Any) -> None:
        super().on_message(ctx, src, msg)
        ctx.persist("last", msg)
        ctx.set_timer("tick", 10)


def test_crash_drops_in_flight_messages_and_timers_but_keeps_storage():
    sim = Simulator(seed=0, latency=0.1)
    sim.add_node("a", Recorder)
    sim.add_node("b", Persister)
    send(sim, "a", "b", Msg(1))
    sim.run_for(0.5)  # delivered and persisted; timer pending at 10.1
    send(sim, "a", "b", Msg(2))
    sim.run_for(0.05)
    sim.crash("b")
    assert not sim.is_up("b")
    sim.run_for(0.5)
    drops = sim.trace.of_kind(Kind.DROP)
    assert [d.reason for d in drops] == ["crashed"]
    sim.restart("b")
    sim.run_for(20)
    b = sim.node("b")
    assert b.received == []  # volatile state gone, no stale message after restart
    assert b.started_with == {"last": Msg(1)}  # durable storage survived
    assert b.timers == []  # the old incarnation's timer never fired
    kinds = [e.kind for e in sim.trace if e.node == "b"]
    assert Kind.CRASH in kinds and Kind.RESTART in kinds


def test_message_sent_before_crash_and_due_after_restart_is_dropped():
    sim = Simulator(seed=0, latency=1.0)
    sim.add_node("a", Recorder)
    sim.add_node("b", Recorder)
    send(sim, "a", "b", Msg(1))
    sim.run_for(0.1)
    sim.crash("b")
    sim.restart("b")
    sim.run_for(2)
    assert sim.node("b").received == []


def test_persist_happens_before_send():
    """The Effects ordering rule: when a message leaves, what it promises is saved."""

    class Voter(Node):
        def on_message(self, ctx, src, msg):
            ctx.send(src, "voted")  # asked for first...
            ctx.persist("voted_for", src)  # ...but applied before the send

    sim = Simulator(seed=0)
    sim.add_node("voter", Voter)
    sim.add_node("cand", Recorder)
    storage_at_send = []

    class SpyingTrace(list):  # sees each send the moment it is carried out
        def append(self, row):
            if row[1] is Kind.SEND:
                storage_at_send.append((row[2], dict(sim.storage(row[2]))))
            super().append(row)

    sim._rows = sim.trace.rows = SpyingTrace()
    sim.call("cand", lambda n, ctx: ctx.send("voter", "vote for me"))
    sim.run_for(1)
    assert storage_at_send[-1] == ("voter", {"voted_for": "cand"})
    assert sim.node("cand").received[0][2] == "voted"


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


def churn_run(seed: int) -> str:
    sim = heartbeat_cluster(seed, n=5, latency=Exponential(0.02, 0.001), loss=0.1, duplication=0.05)
    sim.run(1.0)
    sim.crash("n2")
    sim.partition(["n1", "n3"])
    sim.run(2.0)
    sim.heal()
    sim.restart("n2")
    sim.set_loss(0.3)
    sim.run(3.0)
    return sim.trace.digest()


def test_same_seed_same_trace_in_process():
    assert churn_run(7) == churn_run(7)
    assert churn_run(7) != churn_run(8)


def test_same_seed_same_trace_across_processes():
    code = "from tests.test_sim import churn_run; print(churn_run(11))"
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(h)},
            cwd=REPO,  # `tests.test_sim` must import wherever pytest was started
        ).stdout.strip()
        for h in (1, 2)
    }
    assert digests == {churn_run(11)}


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Simulator(seed=0, loss=1.5), "loss must be a probability"),
        (lambda: Simulator(seed=0, duplication=-0.1), "duplication must be a probability"),
        (lambda: Simulator(seed=0, latency=-1), "latency must be a finite number"),
        (lambda: Uniform(0.2, 0.1), "high must be >= low"),
        (lambda: Fixed(-0.1), "delay must be"),
        (lambda: Exponential(0), "mean_extra must be > 0"),
    ],
)
def test_bad_network_settings_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_input_names_the_argument():
    sim = two_nodes()
    with pytest.raises(ValueError, match="node_id 'zz' is not a node"):
        sim.crash("zz")
    with pytest.raises(ValueError, match="in group 0 and group 1"):
        sim.partition(["a"], ["a", "b"])
    with pytest.raises(TypeError, match="write \\['a'\\]"):
        sim.partition("a")
    with pytest.raises(ValueError, match="only moves forward"):
        sim.run_for(1)
        sim.run(0.5)
    with pytest.raises(ValueError, match="duration must be"):
        sim.run_for(-1)
    with pytest.raises(ValueError, match="already in the simulation"):
        sim.add_node("a", Recorder)
    with pytest.raises(ValueError, match="already crashed"):
        sim.crash("a")
        sim.crash("a")
    with pytest.raises(ValueError, match="dst 'nobody' is not a node"):
        send(sim, "b", "nobody", Msg(1))
    with pytest.raises(ValueError, match="delay must be a finite number of seconds >= 0"):
        sim.call("b", lambda n, ctx: ctx.set_timer("x", -1))
    with pytest.raises(TypeError, match="seed must be an int"):
        Simulator(seed="1")  # type: ignore[arg-type]


def test_a_send_to_an_unknown_node_is_refused_in_the_handler_and_the_node_keeps_working():
    """Regression: the stale send used to stay in the node's context, so every
    later call or handler on that node raised the same error for good."""
    sim = two_nodes()
    reached = []

    def bad(node, ctx):
        ctx.send("nobody", Msg(1))
        reached.append(True)

    with pytest.raises(
        ValueError, match=r"dst 'nobody' is not a node of this simulation \(nodes: 'a', 'b'\)"
    ):
        sim.call("a", bad)
    assert reached == []  # refused at ctx.send, where the mistake is
    send(sim, "a", "b", Msg(2))
    sim.call("a", lambda n, ctx: ctx.set_timer("t", 0.1))
    sim.run_for(1)
    assert [m for _, _, m in sim.node("b").received] == [Msg(2)]
    assert sim.node("a").timers == [(0.1, "t")]
    send(sim, "a", "a", Msg(3))  # a node may message itself
    sim.run_for(1)
    assert sim.node("a").received[-1][2] == Msg(3)


def test_persists_and_forgets_apply_in_order_the_last_write_of_a_key_winning():
    sim = two_nodes()

    def writes(node, ctx):
        ctx.persist("kept", 1)
        ctx.forget("kept")
        ctx.persist("kept", 2)  # a forget then a write: the write stays
        ctx.persist("gone", 1)
        ctx.forget("gone")  # a write then a forget: the key goes
        ctx.forget("never")  # forgetting a key never written does nothing

    sim.call("a", writes)
    assert dict(sim.storage("a")) == {"kept": 2}
    sim.call("a", lambda node, ctx: (ctx.persist("again", 3), ctx.forget("kept")))
    assert dict(sim.storage("a")) == {"again": 3}
    sim.call("a", lambda node, ctx: ctx.persist("last", 4))  # a batch without forgets
    assert dict(sim.storage("a")) == {"again": 3, "last": 4}


def test_a_handler_that_raises_leaves_no_stale_effects():
    class Faulty(Recorder):
        def on_message(self, ctx, src, msg):
            ctx.persist("half", msg)
            ctx.send(src, "half done")
            if msg == "boom":
                raise RuntimeError("protocol bug")

    sim = Simulator(seed=0)
    sim.add_node("a", Recorder)
    sim.add_node("f", Faulty)
    send(sim, "a", "f", "boom")
    with pytest.raises(RuntimeError, match="protocol bug"):
        sim.run_for(1)
    sim.call("f", lambda n, ctx: None)  # used to apply the failed handler's effects
    assert "half" not in sim.storage("f")
    assert sim.trace.count(Kind.SEND) == 1
    with pytest.raises(ZeroDivisionError):
        sim.call("f", lambda n, ctx: (ctx.persist("k", 1), 1 / 0))
    send(sim, "f", "a", "ok")
    sim.run_for(1)
    assert "k" not in sim.storage("f") and [m for _, _, m in sim.node("a").received] == ["ok"]


def test_effects_that_fail_to_apply_are_discarded():
    sim = two_nodes()
    ctx = sim._hosts["a"].ctx
    ctx.effects.sends.append(("ghost", Msg(1)))  # bypasses ctx.send's check
    with pytest.raises(ValueError, match="dst 'ghost' is not a node"):
        sim.call("a", lambda n, c: c.persist("x", 1))
    assert not ctx.effects
    send(sim, "a", "b", Msg(2))
    sim.run_for(1)
    assert [m for _, _, m in sim.node("b").received] == [Msg(2)]


@pytest.mark.parametrize(
    "name, delay, error, match",
    [
        ("t", -0.5, ValueError, "delay must be a finite number of seconds >= 0, got -0.5"),
        ("t", math.inf, ValueError, "delay must be a finite number of seconds >= 0, got inf"),
        ("t", math.nan, ValueError, "delay must be a finite number of seconds >= 0, got nan"),
        ("t", "1", TypeError, "delay must be a number of seconds, got '1'"),
        ("t", None, TypeError, "delay must be a number of seconds, got None"),
        ("t", True, TypeError, "delay must be a number of seconds, got True"),
        (3, 1.0, TypeError, "name must be a str naming the timer, got 3"),
    ],
)
def test_set_timer_refuses_bad_names_and_delays(name, delay, error, match):
    sim = two_nodes()
    with pytest.raises(error, match=match):
        sim.call("a", lambda n, ctx: ctx.set_timer(name, delay))
    sim.call("a", lambda n, ctx: ctx.set_timer("ok", 0))  # the node still works
    sim.run_for(1)
    assert sim.node("a").timers == [(0.0, "ok")]


def test_latency_lookup_refuses_unknown_nodes():
    sim = two_nodes(latency=0.01)
    sim.set_latency(0.2, src="a", dst="b")
    assert sim.latency("a", "b") == Fixed(0.2) and sim.latency("b", "a") == Fixed(0.01)
    assert sim.latency() == Fixed(0.01)
    with pytest.raises(ValueError, match="src 'zz' is not a node of this simulation"):
        sim.latency("zz", "b")
    with pytest.raises(ValueError, match="dst 'zz' is not a node of this simulation"):
        sim.latency("a", "zz")
    with pytest.raises(ValueError, match="give both src and dst"):
        sim.latency("a")


def test_step_processes_one_event_at_a_time():
    sim = two_nodes(latency=0.05)
    assert sim.step() and sim.step()  # the two nodes start
    assert sim.trace.count(Kind.START) == 2 and sim.now == 0.0
    send(sim, "a", "b", Msg(1))
    assert sim.node("b").received == []
    assert sim.step() is True  # the delivery, and time jumps to it
    assert sim.now == 0.05 and sim.node("b").received == [(0.05, "a", Msg(1))]
    assert sim.step() is False  # nothing left


def test_max_events_stops_a_run_early():
    sim = heartbeat_cluster(1, n=3)
    assert sim.run(5.0, max_events=10) == 10
    assert sim.now < 5.0  # stopped early: time stays at the last event
    assert sim.run(sim.now, max_events=0) == 0
    left = sim.run(5.0)
    assert left > 0 and sim.now == 5.0
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_events must be an int >= 0"):
            sim.run(6.0, max_events=bad)


def test_exponential_latency_has_its_minimum_and_mean():
    import random

    lat = Exponential(mean_extra=0.02, minimum=0.005)
    rng = random.Random(3)
    draws = [lat.sample(rng) for _ in range(20_000)]
    assert min(draws) >= 0.005 and lat.mean == pytest.approx(0.025)
    assert sum(draws) / len(draws) == pytest.approx(0.025, rel=0.03)  # sd of the mean ~0.7%
    assert max(draws) > 0.005 + 5 * 0.02  # a long tail: some messages are very slow
    sim = two_nodes(latency=lat)
    for i in range(200):
        send(sim, "a", "b", Msg(i))
    sim.run_for(5)
    order = [m.n for _, _, m in sim.node("b").received]
    assert sorted(order) == list(range(200)) and order != list(range(200))  # it reorders
    with pytest.raises(ValueError, match="minimum must be a finite number"):
        Exponential(0.01, minimum=-1)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 7),
    loss=st.floats(0, 1),
    dup=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_every_send_is_accounted_for(n, loss, dup, seed):
    """Conservation: each send is delivered once, dropped, or (if duplicated) twice."""
    sim = broadcast_cluster(n, seed, latency=Uniform(0, 0.05), loss=loss, duplication=dup)
    sim.call("n1", lambda node, ctx: node.originate(ctx, "hi"))
    sim.run_for(5)
    c = {k: sim.trace.count(k) for k in (Kind.SEND, Kind.DELIVER, Kind.DROP, Kind.DUPLICATE)}
    assert c[Kind.DELIVER] + c[Kind.DROP] == c[Kind.SEND] + c[Kind.DUPLICATE]
    times = [e.time for e in sim.trace]
    assert times == sorted(times)  # virtual time never goes backwards


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 8), seed=st.integers(0, 1000))
def test_flooding_reaches_everyone_with_n_minus_1_squared_messages(n, seed):
    sim = broadcast_cluster(n, seed, latency=Uniform(0.001, 0.05))
    sim.call("n1", lambda node, ctx: node.originate(ctx, "hi"))
    sim.run_for(5)
    assert all(sim.node(f"n{i}").seen for i in range(1, n + 1))
    assert sim.trace.count(Kind.SEND) == (n - 1) ** 2


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 8), seed=st.integers(0, 1000), data=st.data())
def test_flooding_under_a_partition_reaches_exactly_the_origin_side(n, seed, data):
    nodes = [f"n{i}" for i in range(1, n + 1)]
    side = data.draw(st.lists(st.sampled_from(nodes), unique=True, min_size=1, max_size=n - 1))
    sim = broadcast_cluster(n, seed)
    sim.partition(side)
    sim.call("n1", lambda node, ctx: node.originate(ctx, "hi"))
    sim.run_for(5)
    heard = {nid for nid in nodes if sim.node(nid).seen}
    expected = set(side) if "n1" in side else set(nodes) - set(side)
    assert heard == expected


def test_retries_without_dedup_apply_requests_twice():
    """At-least-once: lost responses make the client retry, the server applies twice."""
    sim = request_response_cluster(3, requests=30, timeout=0.05, max_attempts=5, loss=0.3)
    sim.run_for(30)
    server = sim.node("server")
    assert isinstance(server, Server) and isinstance(sim.node("c1"), Client)
    assert max(server.applied.values()) >= 2


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_flood_nodes_hear_each_rumour_once(seed):
    sim = broadcast_cluster(5, seed, latency=Uniform(0, 0.1), duplication=0.5)
    sim.call("n2", lambda node, ctx: node.originate(ctx, "x"))
    sim.run_for(3)
    heard = sim.trace.notes("heard")
    assert sorted(e.node for e in heard) == ["n1", "n2", "n3", "n4", "n5"]
    assert all(isinstance(sim.node(n), FloodBroadcast) for n in sim.nodes)


def test_core_imports_load_no_plotting_or_widgets():
    """plotly and ipywidgets are for labkit.viz's figures only, imported lazily."""
    code = (
        "import sys, labkit, labkit.sim, labkit.viz, labkit.examples; "
        "print(sorted(m for m in ('plotly', 'ipywidgets') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout
    assert out.strip() == "[]"


def test_run_pauses_the_collector_and_changes_nothing_by_it():
    import gc

    assert gc.isenabled()
    paused = churn_run(7)  # run() pauses the collector while it lasts...
    assert gc.isenabled()  # ...and turns it back on
    gc.disable()
    try:
        unpaused = churn_run(7)  # already off: run() must leave it off
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert paused == unpaused

    class Boom(Node):
        def on_start(self, ctx):
            raise RuntimeError("boom")

    sim = Simulator(seed=0)
    sim.add_node("b", Boom)
    with pytest.raises(RuntimeError, match="boom"):
        sim.run_for(1)
    assert gc.isenabled()  # also after a handler raised


def test_a_timer_set_again_fires_once_at_its_latest_deadline_later_or_earlier():
    sim = two_nodes()
    sim.call("a", lambda n, ctx: ctx.set_timer("t", 0.5))
    for _ in range(3):  # set again each 0.1 s, for 0.5 s: the pending entry moves later
        sim.run_for(0.1)
        sim.call("a", lambda n, ctx: ctx.set_timer("t", 0.5))
    sim.run_for(1)
    assert sim.node("a").timers == [(pytest.approx(0.8), "t")]
    start = sim.now
    sim.call("a", lambda n, ctx: ctx.set_timer("u", 0.5))
    sim.call("a", lambda n, ctx: ctx.set_timer("u", 0.1))  # earlier: replaces it
    sim.run_for(1)
    assert [t - start for t, name in sim.node("a").timers if name == "u"] == [pytest.approx(0.1)]
    assert sim.trace.count(Kind.TIMER) == 2  # one row per firing, none for the moves


def test_a_timer_cancelled_and_set_again_reuses_its_entry_and_is_not_pending():
    sim = two_nodes()
    for _ in range(50):  # a client's retry timer: set on each request, cancelled on each reply
        sim.call("a", lambda n, ctx: ctx.set_timer("retry", 0.5))
        assert sim.pending_timers("a") == ("retry",)
        sim.call("a", lambda n, ctx: ctx.cancel_timer("retry"))
        assert sim.pending_timers("a") == ()
        sim.run_for(0.01)
    assert len(sim._queue) <= 2  # one entry kept for the timer, not one per set
    sim.call("a", lambda n, ctx: ctx.set_timer("retry", 0.5))
    sim.run_for(1)
    assert [name for _, name in sim.node("a").timers] == ["retry"]  # fired once, after the last set
    sim.call("a", lambda n, ctx: ctx.set_timer("t", 0.2))
    sim.call("a", lambda n, ctx: ctx.cancel_timer("t"))
    sim.run_for(1)
    assert [name for _, name in sim.node("a").timers] == ["retry"]  # a cancelled timer never fires
