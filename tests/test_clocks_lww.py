"""The last-writer-wins register under each stamping."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.clocks import LWWReplica, Stamping, run_lww

# B writes 0.1 s after A, having seen A's write (latency 0.02 s): causally later.
SEQUENTIAL = [(0.1, "A", "x=1"), (0.2, "B", "x=2")]
# B writes 5 ms after A, before A's write reaches it: concurrent.
CONCURRENT = [(0.1, "A", "x=1"), (0.105, "B", "x=2")]


def test_skewed_physical_clock_silently_loses_a_later_write():
    r = run_lww(Stamping.PHYSICAL, SEQUENTIAL, offsets={"A": 0.3})
    assert r.converged
    assert r.final == {n: ("x=1",) for n in "ABC"}
    assert [w.value for w in r.lost] == ["x=2"]
    assert r.latest_in_real_time.value == "x=2"
    first, second = r.writes
    assert first.happened_before(second)  # B had seen x=1 when it wrote x=2
    assert second.stamps.physical < first.stamps.physical  # ...but its clock said earlier


def test_correct_clocks_keep_the_later_write():
    r = run_lww(Stamping.PHYSICAL, SEQUENTIAL)
    assert r.final["C"] == ("x=2",) and not r.lost


@pytest.mark.parametrize("stamping", [Stamping.LAMPORT, Stamping.HLC, Stamping.VECTOR])
def test_causal_clocks_keep_the_causally_later_write_despite_skew(stamping):
    r = run_lww(stamping, SEQUENTIAL, offsets={"A": 0.3}, drifts={"B": -200})
    assert r.final == {n: ("x=2",) for n in "ABC"} and not r.lost


@pytest.mark.parametrize("stamping", [Stamping.PHYSICAL, Stamping.LAMPORT, Stamping.HLC])
def test_lww_drops_one_of_two_concurrent_writes(stamping):
    r = run_lww(stamping, CONCURRENT, offsets={"A": 0.3})
    assert r.converged and len(r.survivors) == 1 and len(r.lost) == 1
    assert r.writes[0].stamps.vector.concurrent_with(r.writes[1].stamps.vector)


def test_vector_keeps_concurrent_writes_as_siblings_then_a_later_write_replaces_them():
    r = run_lww(Stamping.VECTOR, CONCURRENT)
    assert r.converged and not r.lost
    assert all(sorted(v) == ["x=1", "x=2"] for v in r.final.values())
    r2 = run_lww(Stamping.VECTOR, [*CONCURRENT, (0.5, "C", "x=3")])
    assert r2.final == {n: ("x=3",) for n in "ABC"} and not r2.lost


writes = st.lists(
    st.tuples(st.floats(0.0, 0.3), st.sampled_from("ABC"), st.integers(0, 99)), min_size=1, max_size=6
)


@settings(max_examples=40, deadline=None)
@given(
    stamping=st.sampled_from(Stamping),
    ws=writes,
    off=st.floats(-0.3, 0.3),
    seed=st.integers(0, 1000),
)
def test_replicas_converge_and_only_concurrent_writes_are_dropped(stamping, ws, off, seed):
    r = run_lww(stamping, ws, offsets={"A": off}, latency=0.02, seed=seed)
    assert r.converged
    assert len(r.writes) == len(ws)
    maximal = [w for w in r.writes if not any(w.happened_before(o) for o in r.writes)]
    if stamping is Stamping.VECTOR:
        # Exactly the writes nothing happened after survive; nothing is lost.
        assert {w.stamps.vector for w in r.survivors} == {w.stamps.vector for w in maximal}
        assert not r.lost
    else:
        assert len(r.survivors) == 1
        if stamping is not Stamping.PHYSICAL:
            # A causal clock never lets a write beat one that saw it.
            assert r.survivors[0] in maximal
            assert all(any(w.stamps.vector.concurrent_with(m.stamps.vector) for m in maximal) for w in r.lost)


def test_bad_input():
    with pytest.raises(TypeError, match="stamping"):
        run_lww("physical", SEQUENTIAL)
    with pytest.raises(TypeError, match="stamping"):
        LWWReplica("A", "lww")
    with pytest.raises(ValueError, match="writes"):
        run_lww(Stamping.HLC, [])
    with pytest.raises(ValueError, match="node 'Z'"):
        run_lww(Stamping.HLC, [(0.1, "Z", 1)])
    with pytest.raises(TypeError, match=r"writes\[0\]"):
        run_lww(Stamping.HLC, [(0.1, "A")])
    with pytest.raises(ValueError, match="time"):
        run_lww(Stamping.HLC, [(-1.0, "A", 1)])
    with pytest.raises(ValueError, match="nodes"):
        run_lww(Stamping.HLC, SEQUENTIAL, nodes=("A", "A"))


def test_duplicates_are_ignored_and_the_register_survives_a_crash():
    from labkit.sim import Simulator

    sim = Simulator(3, latency=0.01, duplication=1.0)
    for n in "AB":
        sim.add_node(n, lambda nid: LWWReplica(nid, Stamping.VECTOR))
    sim.run(0.1)
    sim.call("A", lambda node, ctx: node.write(ctx, "v1"))
    sim.run(0.5)
    assert sim.node("B").values == ("v1",)
    assert not sim.trace.notes("discard")  # the duplicate copy was not a conflict
    sim.crash("B")
    sim.restart("B")
    sim.run(0.6)
    assert sim.node("B").values == ("v1",)
