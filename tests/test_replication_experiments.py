"""The measurements behind notebooks 04 and 05 (labkit.replication.experiments)."""

from __future__ import annotations

import math

import pytest

from labkit.clocks import VectorClock
from labkit.history import HistoryEntry
from labkit.replication import Mode, ReplicatedStore, Resolution
from labkit.replication.client import ClientOp, OpKind
from labkit.replication.experiments import (
    cap_register_history,
    compare_modes,
    lost_writes,
    quorum_latency,
    run_partition_scenario,
    stale_flags,
)
from labkit.replication.versions import Dot, Versioned


def during(result, side):
    s = result.summary()
    return s[(s.side == side) & (s.phase == "during")].iloc[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partition_consistency_first_refuses_the_minority_availability_first_answers_both(seed):
    cp = run_partition_scenario(Mode.CONSISTENCY_FIRST, seed=seed)  # N=3, R=W=2, 2/3 split
    ap = run_partition_scenario(Mode.AVAILABILITY_FIRST, seed=seed)
    assert during(cp, "A").availability == 0.0
    assert during(cp, "B").availability == 1.0
    assert during(ap, "A").availability == 1.0 and during(ap, "B").availability == 1.0
    assert cp.frame()["stale"].sum() == 0
    # Both sides wrote during the partition: vector clocks keep both as siblings,
    # last-writer-wins silently drops one side's writes.
    assert ap.conflicts >= 1 and ap.lost() == []
    lww = run_partition_scenario(Mode.AVAILABILITY_FIRST, seed=seed, resolution=Resolution.LAST_WRITER_WINS)
    assert lww.conflicts == 0 and len(lww.lost()) >= 1


def test_availability_first_reads_go_stale_during_a_partition():
    stale = sum(
        run_partition_scenario(Mode.AVAILABILITY_FIRST, seed=s).frame()["stale"].sum() for s in range(3)
    )
    assert stale > 0


def test_history_is_well_formed_and_marks_unknown_outcomes():
    hist = cap_register_history(Mode.CONSISTENCY_FIRST, seed=0)
    assert hist and all(isinstance(op, HistoryEntry) for op in hist)
    assert any(math.isinf(op.ret) and op.input[0] == "write" for op in hist)  # refused writes
    by_client: dict[str, list[HistoryEntry]] = {}
    for op in hist:
        assert op.call <= op.ret
        by_client.setdefault(op.client, []).append(op)
    for ops in by_client.values():  # one operation at a time per client
        for a, b in zip(ops, ops[1:], strict=False):
            assert a.ret <= b.call


def _op(kind, value, call, ret, ok=True, version=None, versions=(), client="c", context=None):
    if kind is OpKind.WRITE and ok:
        versions = (version,)
    return ClientOp(client, "n1", kind, "x", value, call, ret, ok, versions, True, 1, context)


def test_stale_flags_on_a_hand_written_history():
    v1, v2 = Versioned("a", Dot("n1", 1)), Versioned("b", Dot("n1", 2), VectorClock({"n1": 1}))
    w1 = _op(OpKind.WRITE, "a", 0.0, 1.0, version=v1)
    w2 = _op(OpKind.WRITE, "b", 2.0, 3.0, version=v2)
    fresh = _op(OpKind.READ, None, 4.0, 5.0, versions=(v2,))
    stale = _op(OpKind.READ, None, 4.0, 5.0, versions=(v1,))
    overlapping = _op(OpKind.READ, None, 2.5, 3.5, versions=(v1,))  # w2 not done yet
    empty = _op(OpKind.READ, None, 1.5, 1.8)
    assert stale_flags([w1, w2, fresh, stale, overlapping, empty]) == [False, False, False, True, False, True]


def test_lost_writes_on_a_hand_written_history():
    a, b = Versioned("a", Dot("n1", 1)), Versioned("b", Dot("n2", 1))
    wa = _op(OpKind.WRITE, "a", 0.0, 1.0, version=a, client="A")
    wb = _op(OpKind.WRITE, "b", 0.0, 1.0, version=b, client="B")
    assert lost_writes([wa, wb], {"x": (a, b)}) == []
    assert lost_writes([wa, wb], {"x": (b,)}) == [wa]


def test_lost_writes_judges_by_what_clients_saw_not_by_the_stores_clocks():
    # B's write claims (context [n1:1]) to have seen A's write, but B was never shown it.
    a = Versioned("a", Dot("n1", 1))
    b = Versioned("b", Dot("n1", 2), VectorClock({"n1": 1}))
    wa = _op(OpKind.WRITE, "a", 0.0, 1.0, version=a, client="A")
    wb = _op(OpKind.WRITE, "b", 2.0, 3.0, version=b, client="B")
    assert lost_writes([wa, wb], {"x": (b,)}) == [wa]
    # Had B read A's write first, superseding it would have been fine.
    read = _op(OpKind.READ, None, 1.5, 1.8, versions=(a,), client="B")
    assert lost_writes([wa, read, wb], {"x": (b,)}) == []
    # A client that passes a context of its own is taken at its word.
    wb_explicit = _op(OpKind.WRITE, "b", 2.0, 3.0, version=b, client="B", context=VectorClock({"n1": 1}))
    assert lost_writes([wa, wb_explicit], {"x": (b,)}) == []


def test_compare_modes_has_a_row_per_mode_quorum_and_side():
    df = compare_modes(rw=((1, 1), (2, 2)), seed=1)
    assert len(df) == 2 * 2 * 2
    strict = df[(df["mode"] == Mode.CONSISTENCY_FIRST.value) & (df["r"] == 2)]
    assert sorted(strict["availability"]) == [0.0, 1.0]


def test_pacelc_waiting_for_more_replicas_costs_latency():
    df = quorum_latency(rw=((1, 1), (3, 3)), ops=100)
    mean = df.set_index(["r", "w", "kind"])["mean_ms"]
    assert mean[(3, 3, "read")] > mean[(1, 1, "read")] * 1.2
    assert mean[(3, 3, "write")] > mean[(1, 1, "write")] * 1.2


def test_scenario_rejects_bad_settings():
    with pytest.raises(TypeError, match="mode must be a Mode"):
        run_partition_scenario("CP")
    with pytest.raises(ValueError, match="side_a"):
        run_partition_scenario(Mode.CONSISTENCY_FIRST, side_a=5)
    with pytest.raises(ValueError, match="partition_at <= heal_at"):
        run_partition_scenario(Mode.CONSISTENCY_FIRST, partition_at=2, heal_at=1)
    with pytest.raises(ValueError, match="r must be an int from 1 to"):
        run_partition_scenario(Mode.CONSISTENCY_FIRST, r=4)


def test_merkle_cost_grows_with_the_difference_not_the_data():
    from labkit.replication.experiments import merkle_cost

    df = merkle_cost(total_keys=500, differing=(0, 1, 10), depth=5, seed=0).set_index("differing")
    assert df.loc[0, "hashes"] == 1 and df.loc[0, "keys_sent"] == 0
    assert df.loc[1, "hashes"] == 1 + 2 * 5 and df.loc[1, "buckets"] == 1
    assert df.loc[1, "hashes"] < df.loc[10, "hashes"] < 500
    with pytest.raises(ValueError, match="differing"):
        merkle_cost(total_keys=10, differing=(11,))


def test_anti_entropy_run_converges_only_when_switched_on():
    from labkit.replication.experiments import anti_entropy_run

    on = anti_entropy_run(keys=20, interval=0.2, duration=2.0, seed=3)
    off = anti_entropy_run(keys=20, interval=None, duration=2.0, seed=3)
    assert on["divergent_keys"].iloc[0] == 20 and on["divergent_keys"].iloc[-1] == 0
    assert on["hashes"].iloc[-1] > 0 and on["keys_sent"].iloc[-1] >= 20
    assert (off["divergent_keys"] == 20).all() and off["messages"].iloc[-1] == 0
    with pytest.raises(ValueError, match="step"):
        anti_entropy_run(keys=2, step=0)
    with pytest.raises(ValueError, match="keys"):
        anti_entropy_run(keys=0)


def test_a_strict_quorum_read_racing_its_read_repair_is_not_linearizable():
    # DDIA ch. 9, Figure 9-6: R + W > N, and still B sees the new value and C, later, the old one.
    from labkit.linearizability import RegisterModel, check
    from labkit.linearizability.adapters import from_replication
    from labkit.replication.experiments import quorum_read_race, to_history

    broken = []
    for seed in range(300):
        ops = quorum_read_race(seed)
        if check(from_replication(to_history(ops)), RegisterModel()).ok is False:
            broken.append(seed)
            seen = {op.client: op for op in ops}
            assert seen["B"].values == ("new",) and seen["C"].values == ("old",)
            assert seen["B"].ret < seen["C"].call and seen["A"].ok is not False
    assert 0 < len(broken) < 30


def test_write_back_reads_close_the_race():
    """Attiya, Bar-Noy and Dolev (1995): a read that writes its value back to a quorum
    before answering leaves no later read an older value. The same 300 races, none broken."""
    from labkit.linearizability import RegisterModel, check
    from labkit.linearizability.adapters import from_replication
    from labkit.replication.experiments import quorum_read_race, to_history

    for seed in range(300):
        ops = quorum_read_race(seed, write_back_reads=True)
        assert check(from_replication(to_history(ops)), RegisterModel()).ok is True, seed
        assert all(op.ok for op in ops if op.kind is OpKind.READ), seed


def test_write_back_reads_need_a_strict_quorum():
    with pytest.raises(ValueError, match="write_back_reads must be False in a sloppy quorum"):
        ReplicatedStore(5, 3, Mode.AVAILABILITY_FIRST, write_back_reads=True)
    with pytest.raises(TypeError, match="write_back_reads must be True or False"):
        ReplicatedStore(5, 3, write_back_reads="yes")
