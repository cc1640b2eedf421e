"""Unit tests for labkit.hashing: known answers, the linear-scan comparison, validation, DataFrame helpers."""

from __future__ import annotations

import math

import pytest

from labkit.hashing import (
    BoundedLoadHash,
    HashRing,
    JumpHash,
    LinearScanRing,
    ModuloHash,
    RendezvousHash,
    assign,
    balance_table,
    bounded_capacity,
    jump_hash,
    load_cv,
    load_per_node,
    make_keys,
    md5_int,
    mmh3_128,
    move_matrix,
    moved_keys,
    node_names,
    spread_vs_vnodes,
)

NODES = node_names(5)
KEYS = make_keys(2000, seed=7)


# --------------------------------------------------------------------------- hash functions


def test_hashes_are_unsigned_128_bit_and_agree_for_str_and_bytes():
    for key in KEYS[:500]:
        for fn in (mmh3_128, md5_int):
            h = fn(key)
            assert 0 <= h < 2**128
            assert h == fn(key.encode())


def test_md5_int_is_the_md5_digest():
    # RFC 1321 test suite: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72.
    assert md5_int("abc") == 0x900150983CD24FB0D6963F7D28E17F72


@pytest.mark.parametrize("fn", [mmh3_128, md5_int])
def test_hashes_refuse_non_text_keys(fn):
    with pytest.raises(TypeError, match="key must be str or bytes"):
        fn(42)


# --------------------------------------------------------------- the linear-scan ring


def test_linear_scan_ring_is_the_same_ring_as_hashring_with_md5():
    # Same labels, same hash: only the lookup algorithm differs (linear scan vs bisect).
    linear = LinearScanRing(NODES, replicas=40)
    ring = HashRing(NODES, vnodes=40, hash=md5_int)
    assert linear.sorted_keys == [p for p, _ in ring.points()]
    assert all(linear.get_node(k) == ring.node_for(k) for k in KEYS)


def test_linear_scan_ring_keeps_its_first_attempt_behaviour():
    assert LinearScanRing().get_node("x") is None  # empty ring: None, not an error
    ring = LinearScanRing(["a"], replicas=3)
    assert len(ring.sorted_keys) == 3 and set(ring.ring.values()) == {"a"}
    assert not hasattr(ring, "remove_node")


def test_linear_scan_ring_overwrites_a_colliding_vnode_silently():
    # Force every vnode onto one of 4 points: the linear-scan ring keeps duplicates in sorted_keys
    # and lets the last writer win in ring; HashRing keeps all claimants.
    class Tiny(LinearScanRing):
        def hash(self, key):
            return md5_int(key) % 4

    tiny = Tiny(["a", "b"], replicas=8)
    assert len(tiny.sorted_keys) == 16 and len(tiny.ring) <= 4
    ring = HashRing(["a", "b"], vnodes=8, hash=lambda k: md5_int(k) % 4, ring_size=4)
    assert ring.collisions == 16 - len(ring.points())
    ring.check_invariants()


def test_linear_scan_ring_validates_replicas():
    with pytest.raises(ValueError, match="replicas"):
        LinearScanRing(replicas=0)


# --------------------------------------------------------------------------- HashRing


def test_wrap_around_goes_to_the_first_point():
    # ring_size 100, hand-placed points: a:0 -> 10, b:0 -> 50, keys hash to their int value.
    table = {"a:0": 10, "b:0": 50, "k5": 5, "k10": 10, "k11": 11, "k50": 50, "k51": 51, "k99": 99}
    ring = HashRing(["a", "b"], vnodes=1, hash=table.__getitem__, ring_size=100)
    got = {k: ring.node_for(k) for k in ("k5", "k10", "k11", "k50", "k51", "k99")}
    assert got == {"k5": "a", "k10": "a", "k11": "b", "k50": "b", "k51": "a", "k99": "a"}
    assert ring.arc_shares() == {"a": 0.6, "b": 0.4}


def test_weights_map_to_vnode_counts_and_load():
    ring = HashRing({"small": 1, "big": 3}, vnodes=100)
    assert ring.vnode_count("small") == 100 and ring.vnode_count("big") == 300
    assert ring.weight("big") == 3
    loads = load_per_node(ring, make_keys(20_000, seed=3)).set_index("node")["keys"]
    assert 2.0 < loads["big"] / loads["small"] < 4.5


def test_fractional_weight_rounds_and_too_small_is_refused():
    ring = HashRing(vnodes=10)
    ring.add_node("half", weight=0.5)
    assert ring.vnode_count("half") == 5
    with pytest.raises(ValueError, match="virtual nodes"):
        ring.add_node("tiny", weight=0.01)
    assert "tiny" not in ring


def test_remove_then_add_restores_the_ring():
    ring = HashRing(NODES, vnodes=30)
    before = ring.points()
    ring.remove_node("node-2")
    assert "node-2" not in ring and all(o != "node-2" for _, o in ring.points())
    ring.add_node("node-2")
    assert ring.points() == before


def test_preference_list_skips_repeated_physical_nodes():
    ring = HashRing(NODES, vnodes=50)
    for key in KEYS[:200]:
        pref = ring.preference_list(key, 3)
        assert len(set(pref)) == 3 and pref[0] == ring.node_for(key)
    assert sorted(ring.preference_list("k", 5)) == sorted(NODES)


def test_keys_moved_on_join_are_about_one_over_n_plus_one_and_all_go_to_the_newcomer():
    ring = HashRing(node_names(10), vnodes=150)
    keys = make_keys(20_000, seed=11)
    before = assign(ring, keys)
    ring.add_node("node-10")
    moved = moved_keys(before, assign(ring, keys))
    assert set(moved["to_node"]) == {"node-10"}
    assert abs(len(moved) / len(keys) - 1 / 11) < 0.03


def test_modulo_hashing_moves_most_keys():
    scheme = ModuloHash(node_names(9))
    before = assign(scheme, KEYS)
    scheme.add_node("node-9")
    frac = len(moved_keys(before, assign(scheme, KEYS))) / len(KEYS)
    assert abs(frac - 0.9) < 0.03


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: HashRing(vnodes=0), ValueError, "vnodes must be an int from 1 to 100000"),
        (lambda: HashRing(vnodes=1.5), TypeError, "vnodes must be an int"),
        (lambda: HashRing(["a", "a"]), ValueError, "already on the ring"),
        (lambda: HashRing("abc"), TypeError, "not a string"),
        (lambda: HashRing([""]), ValueError, "non-empty"),
        (lambda: HashRing([3]), TypeError, "node must be a non-empty str"),
        (lambda: HashRing({"a": 0}), ValueError, "weight must be a finite number > 0"),
        (lambda: HashRing({"a": -1}), ValueError, "weight must be a finite number > 0"),
        (lambda: HashRing({"a": "x"}), TypeError, "weight must be a finite number"),
        (lambda: HashRing(hash=5), TypeError, "hash must be callable"),
        (lambda: HashRing(["a"], hash=lambda k: -1), ValueError, "hash must return an int"),
        (lambda: HashRing().node_for("k"), ValueError, "ring is empty"),
        (lambda: HashRing(["a"]).node_for(3), TypeError, "key must be str or bytes"),
        (lambda: HashRing(["a"]).remove_node("b"), ValueError, "not on the ring"),
        (lambda: HashRing(["a", "b"]).preference_list("k", 3), ValueError, "number of nodes"),
        (lambda: HashRing(["a", "b"]).preference_list("k", 0), ValueError, "n must be an int >= 1"),
        (lambda: HashRing(["a"]).walk(5), TypeError, "key must be str or bytes"),
    ],
)
def test_hashring_validation(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- jump, rendezvous, bounded


def test_jump_hash_known_answers():
    # Values published with the paper's C++ reference and reproduced by other implementations.
    assert jump_hash(256, 1024) == 520
    assert jump_hash(10863919174838991, 11) == 6
    assert jump_hash(2016238256797177309, 11) == 3
    assert all(jump_hash(k, 1) == 0 for k in range(100))


def test_jump_hash_balance():
    counts = [0] * 10
    for key in KEYS:
        counts[jump_hash(key, 10)] += 1
    assert min(counts) > 150 and max(counts) < 250


@pytest.mark.parametrize(
    ("args", "exc"),
    [
        ((1, 0), ValueError),
        ((1, 2.0), TypeError),
        ((-1, 3), ValueError),
        ((2**64, 3), ValueError),
        ((1.5, 3), TypeError),
    ],
)
def test_jump_hash_validation(args, exc):
    with pytest.raises(exc):
        jump_hash(*args)


def test_jump_hash_can_only_remove_the_last_node():
    jump = JumpHash(["a", "b", "c"])
    with pytest.raises(ValueError, match="only remove the last"):
        jump.remove_node("a")
    jump.remove_node("c")
    assert jump.nodes == ("a", "b")


def test_rendezvous_preference_list_is_ranked_by_score():
    hrw = RendezvousHash(NODES)
    for key in KEYS[:100]:
        pref = hrw.preference_list(key, 5)
        scores = [hrw.score(n, key) for n in pref]
        assert scores == sorted(scores, reverse=True) and pref[0] == hrw.node_for(key)
    with pytest.raises(ValueError, match="n must be an int from 1 to"):
        hrw.preference_list("k", 6)
    with pytest.raises(ValueError, match="no nodes"):
        RendezvousHash().node_for("k")


def test_bounded_capacity_formula():
    assert bounded_capacity(100, 10, 0.25) == 13  # ceil(12.5)
    assert bounded_capacity(10, 1, 0.1) == 11  # not 12 from float noise
    assert bounded_capacity(0, 3, 0.5) == 0
    with pytest.raises(ValueError, match="epsilon"):
        bounded_capacity(10, 2, -0.1)
    with pytest.raises(ValueError, match="n \\(nodes\\)"):
        bounded_capacity(10, 0, 0.1)


def test_bounded_loads_cap_the_busiest_node():
    keys = make_keys(5000, seed=2)
    plain = load_per_node(HashRing(NODES, vnodes=5), keys)["keys"].max()
    bounded = BoundedLoadHash(NODES, epsilon=0.1, vnodes=5)
    bounded.place_all(keys)
    assert max(bounded.loads().values()) <= math.ceil(1.1 * 5000 / 5) < plain
    bounded.check_invariants()


def test_bounded_with_huge_epsilon_is_the_plain_ring():
    bounded = BoundedLoadHash(NODES, epsilon=100, vnodes=20)
    ring = HashRing(NODES, vnodes=20)
    assert bounded.place_all(KEYS) == assign(ring, KEYS)


def test_bounded_refuses_duplicates_and_unplaced_keys():
    bounded = BoundedLoadHash(["a"])
    bounded.place("k")
    with pytest.raises(ValueError, match="already placed"):
        bounded.place("k")
    with pytest.raises(ValueError, match="has not been placed"):
        bounded.node_for("other")


# --------------------------------------------------------------------------- shadowed nodes


def six_bit(text: str | bytes) -> int:
    """On 64 points n0, n18 and n23 (one vnode each) all land on point 26."""
    return mmh3_128(text) % 64


def test_a_node_whose_every_vnode_is_shadowed_still_counts_in_preference_lists():
    """Regression: preference_list('k', 2) used to return ['n0'] alone."""
    ring = HashRing(["n0", "n18", "n23"], vnodes=1, hash=six_bit, ring_size=64)
    assert ring.points() == [(26, "n0")] and ring.collisions == 2  # n18 and n23 own no point
    assert ring.preference_list("k", 2) == ["n0", "n18"]
    assert ring.preference_list("k", 3) == ["n0", "n18", "n23"]  # in the order they would take over
    assert list(ring.walk("k")) == ["n0", "n18", "n23"]
    assert ring.arc_shares() == {"n0": 1.0, "n18": 0.0, "n23": 0.0}  # but they own no keys
    ring.remove_node("n0")
    assert ring.node_for("k") == "n18"  # the second entry was the failover, as promised
    with pytest.raises(ValueError, match="number of nodes"):
        ring.preference_list("k", 3)


def test_bounded_loads_forward_to_nodes_that_own_no_point():
    """Regression: epsilon=0 used to fail with AssertionError 'no node has room'."""
    bounded = BoundedLoadHash(["n0", "n18", "n23"], epsilon=0, vnodes=1, hash=six_bit)
    bounded.place_all(make_keys(30, seed=1))
    assert bounded.loads() == {"n0": 10, "n18": 10, "n23": 10}
    bounded.check_invariants()


# --------------------------------------------------------------------------- DataFrame helpers


def test_load_per_node_lists_idle_nodes_and_sums_to_the_keys():
    frame = load_per_node(
        HashRing(["a", "b", "c"], vnodes=1, hash=lambda k: 0 if ":" in k else 1), ["x", "y"]
    )
    assert frame["keys"].sum() == 2 and len(frame) == 3
    assert frame["share"].sum() == pytest.approx(1.0)


def test_load_cv_is_zero_for_perfect_balance_and_positive_otherwise():
    assert load_cv(ModuloHash(["a"]), KEYS) == 0.0
    assert load_cv(HashRing(NODES, vnodes=1), KEYS) > 0.1


def test_move_matrix_counts_moves():
    moved = moved_keys({"k1": "a", "k2": "a", "k3": "b"}, {"k1": "c", "k2": "a", "k3": "c"})
    assert list(moved["key"]) == ["k1", "k3"]
    assert move_matrix(moved).loc["a", "c"] == 1 and move_matrix(moved).loc["b", "c"] == 1
    with pytest.raises(ValueError, match="same keys"):
        moved_keys({"k1": "a"}, {"k2": "a"})


def test_spread_falls_with_vnodes():
    frame = spread_vs_vnodes(node_names(8), [1, 16, 256], make_keys(4000, seed=1))
    assert list(frame["vnodes"]) == [1, 16, 256]
    assert frame["cv_arcs"].is_monotonic_decreasing
    assert frame.loc[2, "cv_arcs"] < 2 * frame.loc[2, "rule_of_thumb"]


def test_make_keys_is_reproducible_and_distinct():
    assert make_keys(100, seed=5) == make_keys(100, seed=5) != make_keys(100, seed=6)
    assert len(set(make_keys(10_000))) == 10_000
    with pytest.raises(ValueError):
        make_keys(-1)


def test_core_imports_no_plotting():
    import subprocess
    import sys

    code = "import sys, labkit.hashing; print(any(m in sys.modules for m in ('plotly', 'ipywidgets')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_balance_table_ranks_schemes():
    table = balance_table({"one point": HashRing(NODES, vnodes=1), "rendezvous": RendezvousHash(NODES)}, KEYS)
    t = table.set_index("scheme")
    assert t.loc["rendezvous", "load_cv"] < t.loc["one point", "load_cv"]
    assert t.loc["one point", "max_over_mean"] > 1 > t.loc["one point", "min_over_mean"]
