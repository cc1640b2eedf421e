"""Clocks on the simulator: every clock checked against happened-before
computed independently from the trace, and the HLC bounds of Kulkarni et al.
(Theorems 1-3) under random skew and drift."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.clocks import clock_events, clock_violations, configure_clocks, run_chatter
from labkit.sim import Simulator


def ancestry(df):
    """Bitmask of the events that happened before each event, from program
    order and send->receive edges only (no clock involved)."""
    send_of = {}  # a send event's vector stamp identifies it
    last_on_node = {}
    anc = []
    for i, row in enumerate(df.itertuples()):
        mask = 0
        prev = last_on_node.get(row.node)
        if prev is not None:
            mask |= anc[prev] | (1 << prev)
        if row.kind == "receive":
            s = send_of[row.sent_vector]
            mask |= anc[s] | (1 << s)
        if row.kind == "send":
            send_of[row.vector] = i
        anc.append(mask)
        last_on_node[row.node] = i
    return anc


def max_skew(offsets, drifts, horizon):
    """Largest pairwise clock difference over [0, horizon] (linear in t, so at the ends)."""

    def pt(n, t):
        return t + offsets[n] + drifts[n] * 1e-6 * t

    return max(
        abs(pt(a, t) - pt(b, t)) for a, b in itertools.combinations(offsets, 2) for t in (0.0, horizon)
    )


def check_run(df, eps):
    anc = ancestry(df)
    rows = list(df.itertuples())
    for j, f in enumerate(rows):
        # Theorem 2: l is at least the node's clock and within eps of it.
        assert f.physical <= f.hlc_l <= f.physical + eps + 1e-9, (f, eps)
        same_l = 0
        for i in range(j):
            g = rows[i]
            hb = bool(anc[j] >> i & 1)
            # Vector clocks characterise happened-before exactly.
            assert (g.vector < f.vector) == hb, (g, f)
            if hb:
                # Clock condition (Lamport) and Theorem 1 (HLC).
                assert g.lamport < f.lamport and g.hlc < f.hlc, (g, f)
                same_l += g.hlc_l == f.hlc_l
        # Theorem 3: the counter never exceeds the causal past sharing this l.
        assert f.hlc_c <= same_l, (f, same_l)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 4),
    offsets=st.lists(st.floats(-0.3, 0.3), min_size=4, max_size=4),
    drifts=st.lists(st.floats(-300, 300), min_size=4, max_size=4),
    seed=st.integers(0, 10_000),
    latency=st.floats(0.001, 0.1),
)
def test_clocks_agree_with_happened_before_under_skew(n, offsets, drifts, seed, latency):
    nodes = [f"n{i}" for i in range(1, n + 1)]
    off = dict(zip(nodes, offsets, strict=False))
    dr = dict(zip(nodes, drifts, strict=False))
    sim = run_chatter(n, duration=1.0, seed=seed, rate=15.0, offsets=off, drifts=dr, latency=latency)
    df = clock_events(sim.trace)
    assert (df.kind == "receive").any()
    eps = max_skew(off, dr, sim.now)
    check_run(df, eps)
    assert clock_violations(df, eps=eps) == []


@settings(max_examples=25, deadline=None)
@given(
    offsets=st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3),
    max_offset=st.floats(0.0, 0.3),
    seed=st.integers(0, 10_000),
)
def test_max_offset_keeps_hlc_within_the_bound_whatever_the_skew(offsets, max_offset, seed):
    off = dict(zip(["n1", "n2", "n3"], offsets, strict=True))
    sim = run_chatter(3, duration=1.0, seed=seed, rate=15.0, offsets=off, max_offset=max_offset)
    df = clock_events(sim.trace)
    assert clock_violations(df, eps=max_offset) == []
    # Only messages from too far ahead were refused.
    assert all(note.detail["ahead"] > max_offset for note in sim.trace.notes("rejected"))


def test_clock_violations_finds_broken_runs():
    sim = run_chatter(3, duration=1.0, seed=1, rate=15.0, offsets={"n1": 0.2})
    df = clock_events(sim.trace)
    assert clock_violations(df) == []
    assert any("ahead of the clock" in v for v in clock_violations(df, eps=0.05))
    bad = df.copy()
    i = bad.index[bad.kind == "receive"][0]
    bad.loc[i, "lamport"] = 0  # a receive that did not move the Lamport clock past the send
    found = clock_violations(bad)
    assert any("not later than its send" in v for v in found)
    behind = df.copy()
    behind.loc[0, "hlc_l"] = behind.loc[0, "physical"] - 1
    assert any("behind the physical clock" in v for v in clock_violations(behind))
    with pytest.raises(TypeError, match="clock_events"):
        clock_violations(df[["node"]])
    with pytest.raises(ValueError, match="eps"):
        clock_violations(df, eps=-1)


def test_same_seed_same_run():
    a = run_chatter(3, seed=4, offsets={"n1": 0.1}, drifts={"n2": 100})
    b = run_chatter(3, seed=4, offsets={"n1": 0.1}, drifts={"n2": 100})
    assert a.trace.digest() == b.trace.digest()


def test_hlc_bound_is_tight_enough_to_matter():
    # A node 0.5 s behind the others hears their times: its l leads its clock
    # by about the skew, never more.
    sim = run_chatter(3, duration=3.0, seed=2, rate=10.0, offsets={"n3": -0.5})
    df = clock_events(sim.trace)
    lead = df[df.node == "n3"].hlc_minus_physical
    assert 0.4 < lead.max() <= 0.5 + 1e-9
    # The nodes with correct clocks hardly move away from them.
    assert df[df.node != "n3"].hlc_minus_physical.max() < 0.05


def test_clock_stepped_backwards_mid_run_never_moves_logical_clocks_back():
    sim = run_chatter(3, duration=1.0, seed=5, rate=20.0)
    sim.set_clock("n1", offset=-2.0)  # an NTP step backwards
    sim.run_for(1.0)
    df = clock_events(sim.trace)
    for _, g in df.groupby("node"):
        assert g.lamport.is_monotonic_increasing and g.lamport.is_unique
        assert all(a < b for a, b in itertools.pairwise(g.hlc))
        assert (g.hlc_l >= g.physical).all()
    n1 = df[df.node == "n1"]
    assert (n1.physical.diff() < 0).any()  # the physical clock did jump back


def test_clocks_survive_crash_and_restart():
    sim = run_chatter(3, duration=1.0, seed=6, rate=20.0)
    sim.crash("n2")
    sim.run_for(0.5)
    sim.restart("n2")
    sim.run_for(1.0)
    df = clock_events(sim.trace)
    g = df[df.node == "n2"]
    assert g.time.max() > 1.5  # it did act again after the restart
    assert g.lamport.is_monotonic_increasing and g.lamport.is_unique
    assert all(a < b for a, b in itertools.pairwise(g.vector))


def test_set_clock_drift_change_is_continuous():
    sim = Simulator(0)
    sim.add_node("a", lambda n: __import__("labkit.sim", fromlist=["Node"]).Node(n))
    configure_clocks(sim, offsets={"a": 0.25}, drifts={"a": 1000})
    sim.run(2.0)
    before = sim.local_time("a")
    assert before == pytest.approx(2.0 + 0.25 + 0.002)
    sim.set_clock("a", drift_ppm=-500)
    assert sim.local_time("a") == pytest.approx(before)
    sim.run(4.0)
    assert sim.local_time("a") == pytest.approx(before + 2.0 - 0.001)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"n_nodes": 0}, ValueError, "n_nodes"),
        ({"rate": 0}, ValueError, "rate"),
        ({"send_prob": 1.5}, ValueError, "send_prob"),
        ({"offsets": {"zz": 0.1}}, ValueError, "zz"),
        ({"offsets": [0.1]}, TypeError, "offsets"),
        ({"drifts": {"n1": -2e6}}, ValueError, "drift_ppm"),
        ({"max_offset": -0.5}, ValueError, "max_offset"),
    ],
)
def test_run_chatter_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        run_chatter(**kwargs)
