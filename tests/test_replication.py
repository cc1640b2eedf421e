"""Unit tests for labkit.replication: versions, config, the store's behaviour."""

from __future__ import annotations

import math

import pytest

from labkit.clocks import VectorClock
from labkit.replication import (
    Dot,
    Mode,
    ReplicatedStore,
    Resolution,
    StoreConfig,
    Versioned,
    check_replica,
    check_siblings,
    context_of,
    covers,
    reconcile,
)
from labkit.replication.client import ClientNode, OpKind, Workload
from labkit.replication.experiments import lost_writes
from labkit.replication.merkle import MerkleTree, bucket_of, canonical, diff, version_digest
from labkit.replication.versions import merge_siblings


def v(value, dot, **context):
    """A version: ``v("b", "n1:2", n1=1)`` is n1's second write, which had seen n1:1."""
    node, counter = dot.split(":")
    return Versioned(value, Dot(node, int(counter)), VectorClock(context))


# -- versions (Dynamo §4.4; dotted version vectors) -------------------------------------
def test_newer_version_replaces_older():
    old, new = v("a", "n1:1"), v("b", "n1:2", n1=1)
    assert reconcile((old,), new) == (new,)
    assert reconcile((new,), old) == (new,)  # an obsolete write is ignored


def test_concurrent_versions_become_siblings_and_a_context_write_reconciles_them():
    a, b = v("a", "n1:1"), v("b", "n2:1")
    siblings = reconcile((a,), b)
    assert set(siblings) == {a, b}
    check_siblings(siblings)
    merged = Versioned("ab", Dot("n3", 1), context_of(siblings))
    assert reconcile(siblings, merged) == (merged,)


def test_two_blind_writes_through_one_coordinator_are_siblings():
    # As single vectors they would be [n1:1] < [n1:2]; as dots, neither write saw the other.
    a, b = v("a", "n1:1"), v("b", "n1:2")
    assert a.clock < b.clock and not b.supersedes(a)
    assert set(reconcile((a,), b)) == set(reconcile((b,), a)) == {a, b}
    assert context_of((a, b)) == VectorClock({"n1": 2})


def test_equal_version_is_kept_once():
    a = v("a", "n1:1")
    assert reconcile((a,), a) == (a,)


def test_versions_validate_their_parts():
    with pytest.raises(TypeError, match="dot must be a Dot"):
        Versioned("a", VectorClock({"n1": 1}))
    with pytest.raises(ValueError, match="counter must be an int >= 1"):
        Dot("n1", 0)
    with pytest.raises(TypeError, match="context must be a VectorClock"):
        Versioned("a", Dot("n1", 1), {"n1": 1})
    with pytest.raises(TypeError, match="Versioned or a Dot"):
        covers((), VectorClock({"n1": 1}))


def test_last_writer_wins_keeps_the_larger_timestamp_even_when_concurrent():
    a = Versioned("a", Dot("n1", 1), timestamp=2.0)
    b = Versioned("b", Dot("n2", 1), timestamp=1.0)
    lww = Resolution.LAST_WRITER_WINS
    assert reconcile((a,), b, lww) == (a,)
    assert reconcile((b,), a, lww) == (a,)
    assert merge_siblings((), [a, b], lww) == merge_siblings((), [b, a], lww) == (a,)


def test_check_siblings_rejects_superseded_sibling():
    with pytest.raises(AssertionError, match="supersedes"):
        check_siblings((v("a", "n1:1"), v("b", "n1:2", n1=1)))
    with pytest.raises(AssertionError, match="share a dot"):
        check_siblings((v("a", "n1:1"), v("b", "n1:1")))
    check_siblings((v("a", "n1:1"), v("b", "n1:2")))


def test_covers():
    s = (v("a", "n1:2", n1=1, n2=1),)
    assert covers(s, Dot("n1", 1)) and covers(s, Dot("n1", 2)) and covers(s, Dot("n2", 1))
    assert not covers(s, Dot("n3", 1)) and not covers(s, Dot("n1", 3))


# -- configuration and bad input ---------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"nodes": 3, "n": 4}, ValueError, "at most the number of nodes"),
        ({"nodes": 3, "n": 0}, ValueError, "n \\(replicas per key\\) must be an int from 1 to"),
        ({"nodes": 3, "n": 3, "r": 0}, ValueError, "r must be an int from 1 to 3 \\(N=3\\)"),
        ({"nodes": 3, "n": 3, "w": 4}, ValueError, "w must be an int from 1 to 3 \\(N=3\\)"),
        ({"nodes": 3, "n": 2, "r": 3}, ValueError, "r must be an int from 1 to 2 \\(N=2\\)"),
        ({"nodes": 3, "n": 3, "r": 1.5}, TypeError, "r must be an int"),
        ({"nodes": 0}, ValueError, "nodes must be an int from 1 to 100"),
        ({"nodes": 3, "mode": "AP"}, TypeError, "mode must be a Mode"),
        ({"nodes": 3, "resolution": "lww"}, TypeError, "resolution must be a Resolution"),
        ({"nodes": 3, "request_timeout": -1}, ValueError, "request_timeout"),
        ({"nodes": 3, "hint_after": 1.0}, ValueError, "hint_after"),
        ({"nodes": 3, "client_timeout": 0.1}, ValueError, "client_timeout"),
        ({"nodes": 3, "anti_entropy_interval": 0}, ValueError, "anti_entropy_interval"),
        ({"nodes": 3, "merkle_depth": 40}, ValueError, "merkle_depth"),
    ],
)
def test_bad_store_settings_are_refused(kwargs, error, words):
    with pytest.raises(error, match=words):
        ReplicatedStore(**kwargs)


def test_store_config_rejects_duplicate_and_empty_nodes():
    with pytest.raises(ValueError, match="distinct"):
        StoreConfig(("a", "a"), 1)
    with pytest.raises(TypeError, match="node-id strings"):
        StoreConfig("abc", 1)


def test_bad_requests_are_refused():
    store = ReplicatedStore(3, 3)
    with pytest.raises(ValueError, match="w must be an int from 1 to 3 \\(N=3\\)"):
        store.put("x", 1, w=4)
    with pytest.raises(ValueError, match="r must be an int from 1 to 3 \\(N=3\\)"):
        store.get("x", r=0)
    with pytest.raises(ValueError, match="not a storage node"):
        store.get("x", via="n9")
    with pytest.raises(TypeError, match="key must be a str"):
        store.get(5)
    with pytest.raises(ValueError, match="in group 0 and group 1"):
        store.partition(["n1"], ["n1", "n2"])
    with pytest.raises(TypeError, match="string"):
        store.partition("n1")
    with pytest.raises(ValueError, match="read_fraction"):
        Workload(read_fraction=2)


def test_a_malformed_quorum_from_the_network_is_refused_not_raised():
    store = ReplicatedStore(3, 3)
    client = store.client()
    store.sim.call("client", lambda node, ctx: node.submit(ctx, OpKind.READ, "x", quorum=7))
    store.run_for(0.5)
    assert client.ops[-1].ok is False


# -- behaviour ---------------------------------------------------------------------
def test_put_then_get_returns_the_value_and_replicas_agree():
    store = ReplicatedStore(5, 3, r=2, w=2, seed=3)
    assert store.put("cart", "milk").ok
    got = store.get("cart")
    assert got.ok and got.values == ("milk",)
    store.run_for(0.5)
    assert store.divergent_keys() == []
    assert all(store.stored(n).get("cart") for n in store.config.home("cart"))


def test_consistency_first_refuses_the_minority_side_availability_first_answers():
    for mode, minority_ok in ((Mode.CONSISTENCY_FIRST, False), (Mode.AVAILABILITY_FIRST, True)):
        store = ReplicatedStore(5, 3, mode, r=2, w=2, seed=1)
        home = store.config.home("x")
        stand_in = store.config.preference_list("x")[3]  # the first node after the home replicas
        minority = [home[0], stand_in]  # one home replica and one node that can stand in
        store.partition(minority)
        w = store.put("x", "v", via=home[0])
        r = store.get("x", via=home[0])
        assert w.ok is minority_ok and r.ok is minority_ok, mode
        assert store.put("x", "v2", via=home[1]).ok  # the majority side always works


@pytest.mark.parametrize("mode", list(Mode))
def test_a_side_with_fewer_than_w_nodes_cannot_write_sloppy_or_not(mode):
    """Dynamo §4.6 and DDIA ch. 5: a sloppy quorum still needs W acknowledgements.

    W = 3 on a side of two nodes fails in both modes (the availability-first
    coordinator once answered at the deadline with whatever it had)."""
    store = ReplicatedStore(5, 3, mode, r=1, w=3, seed=1)
    side = store.config.preference_list("x")[2:4]  # one home replica and one stand-in
    store.partition(side)
    op = store.put("x", "v", via=side[0])
    # Both nodes of the side answer in a sloppy quorum; a strict one asks only the home replica.
    assert op.ok is False and op.answered == (2 if mode is Mode.AVAILABILITY_FIRST else 1)
    assert store.put("x", "v", via=side[0], w=2).ok is (mode is Mode.AVAILABILITY_FIRST)


def _writes_answered(nodes: int, n: int, w: int, side: tuple[str, ...], mode: Mode) -> bool:
    store = ReplicatedStore(nodes, n, mode, r=1, w=w, seed=3)
    store.partition(side)
    return store.put("x", "v", via=side[0]).ok is True


def test_who_can_write_during_a_partition_strict_home_replicas_sloppy_any_w_nodes():
    """Every small cluster and every split: strict quorums write iff W home
    replicas are on the side; sloppy quorums iff W nodes are (all of them are
    on every key's preference list here)."""
    for nodes in range(2, 6):
        for n in range(1, min(nodes, 3) + 1):
            names = tuple(f"n{i}" for i in range(1, nodes + 1))
            for size in range(1, nodes):
                for side in (names[:size], names[nodes - size :]):
                    home = StoreConfig(names, n).home("x")
                    on_side = sum(h in side for h in home)
                    for w in range(1, n + 1):
                        assert _writes_answered(nodes, n, w, side, Mode.CONSISTENCY_FIRST) is (on_side >= w)
                        sloppy = _writes_answered(nodes, n, w, side, Mode.AVAILABILITY_FIRST)
                        assert sloppy is (size >= w), (nodes, n, w, side)


def test_sloppy_quorum_stand_ins_come_from_further_down_the_preference_list():
    store = ReplicatedStore(6, 3, Mode.AVAILABILITY_FIRST, r=1, w=3, seed=2)
    pref = store.config.preference_list("k")
    store.partition([pref[1], pref[2]])  # two home replicas cut off
    op = store.put("k", "v", via=pref[0])
    assert op.ok and op.answered == 3 and not op.quorum_met
    holders = {node for node in store.nodes if store.stored_hints(node)}
    assert holders == {pref[3], pref[4]}, holders  # the next two nodes, in order, one per silent home
    assert {home for node in holders for home, _ in store.stored_hints(node)} == {pref[1], pref[2]}


def test_strict_quorum_fails_with_too_few_live_home_replicas():
    store = ReplicatedStore(3, 3, r=2, w=2)
    store.crash("n2")
    store.crash("n3")
    op = store.put("x", 1, via="n1")
    assert op.ok is False and not op.quorum_met
    assert op.ret - op.call == pytest.approx(store.config.request_timeout, abs=0.05)


def test_sloppy_quorum_stores_hints_and_hands_them_off_after_healing():
    store = ReplicatedStore(5, 3, Mode.AVAILABILITY_FIRST, r=2, w=2, seed=2)
    home = store.config.home("k")
    others = [x for x in store.nodes if x not in home]
    store.partition([home[0], *others])  # home[1], home[2] cut off
    op = store.put("k", "hinted", via=home[0])
    assert op.ok and not op.quorum_met  # W = 2 answers, but only one from a home replica
    hints = {n: store.stored_hints(n) for n in store.nodes}
    assert any(hints[n] for n in others), "a stand-in should hold a hint"
    assert not store.stored(home[1]).get("k")
    store.heal()
    store.run_for(1.0)
    assert all(not store.stored_hints(n) for n in store.nodes)
    for h in home:
        assert covers(store.stored(h)["k"], op.version), h


def test_availability_first_makes_siblings_that_a_context_write_reconciles():
    store = ReplicatedStore(4, 3, Mode.AVAILABILITY_FIRST, r=2, w=2, seed=5)
    store.put("cart", ("milk",))
    store.partition(["n1", "n2"], ["n3", "n4"])
    # Two writers, one per side, neither seeing the other (blind writes).
    a = store.put("cart", ("milk", "eggs"), via="n1", context=VectorClock())
    b = store.put("cart", ("milk", "bread"), via="n3", context=VectorClock())
    assert a.ok and b.ok
    store.heal()
    store.run_for(1.0)
    read = store.get("cart", r=3)
    assert len(read.versions) >= 2, read
    merged = tuple(sorted(set().union(*read.values)))
    store.put("cart", merged)  # context: the clock of that read
    final = store.get("cart", r=3)
    assert final.values == (merged,)


def test_read_repair_fixes_a_stale_replica():
    store = ReplicatedStore(3, 3, r=3, w=2, seed=4)
    store.partition(["n3"])
    store.put("x", "new", via="n1")
    store.heal()
    assert not store.stored("n3").get("x")
    got = store.get("x", via="n1")
    store.run_for(0.2)
    assert got.values == ("new",)
    assert store.stored("n3")["x"][0].value == "new"


def test_anti_entropy_repairs_keys_that_were_never_read_and_only_when_switched_on():
    results = {}
    for interval in (None, 0.1):
        store = ReplicatedStore(3, 3, r=2, w=2, seed=6, anti_entropy_interval=interval)
        store.partition(["n3"])
        for i in range(20):
            store.put(f"k{i}", i, via="n1")
        store.heal()
        assert len(store.divergent_keys()) == 20
        store.run_for(2.0)
        results[interval] = len(store.divergent_keys())
        for n in store.nodes:
            check_replica(store.replica(n))
    assert results == {None: 20, 0.1: 0}


def test_crash_keeps_durable_data_and_the_counter():
    store = ReplicatedStore(3, 3, r=2, w=2, seed=7)
    first = store.put("x", 1, via="n1")
    store.crash("n1")
    store.restart("n1")
    store.run_for(0.1)
    second = store.put("x", 2, via="n1")
    assert second.dot == Dot("n1", first.dot.counter + 1)  # the counter continues after the restart
    assert second.version.supersedes(first.version)  # the client had seen its own first write
    assert store.stored("n1")["x"][0].value in (1, 2)


def test_same_seed_same_trace():
    def run():
        store = ReplicatedStore(5, 3, Mode.AVAILABILITY_FIRST, seed=11)
        store.add_client("A", "n1", Workload(stop=1.0))
        store.sim.at(0.3, lambda _: store.partition(["n1", "n2"]))
        store.run_for(2.0)
        return store.sim.trace.digest()

    assert run() == run()


def test_client_records_unanswered_operation_with_infinite_return():
    store = ReplicatedStore(3, 3)
    store.crash("n1")
    op = store.put("x", 1, via="n1")
    assert op.ok is None and math.isinf(op.ret)
    assert store.client().process == "client/1"


def test_client_rejects_bad_arguments():
    with pytest.raises(ValueError, match="timeout"):
        ClientNode("c", "n1", timeout=0)
    with pytest.raises(TypeError, match="workload"):
        ClientNode("c", "n1", workload="reads")


# -- Merkle trees (Dynamo §4.7) --------------------------------------------------------
def _items(n, changed=()):
    return [(f"k{i}", (v(i + (100 if i in changed else 0), f"n1:{i + 1}"),)) for i in range(n)]


def test_equal_trees_need_one_hash():
    a, b = MerkleTree(_items(100), 5), MerkleTree(_items(100), 5)
    assert a.root == b.root
    assert diff(a, b) == ([], 1)


@pytest.mark.parametrize("changed", [(3,), (3, 50), (1, 2, 3, 4, 70, 99)])
def test_diff_finds_exactly_the_buckets_of_the_changed_keys(changed):
    depth = 5
    a, b = MerkleTree(_items(100), depth), MerkleTree(_items(100, changed), depth)
    buckets, sent = diff(a, b)
    assert sorted(buckets) == sorted({bucket_of(f"k{i}", depth) for i in changed})
    # One root, then two children per differing node at each level below it.
    assert sent <= 1 + 2 * depth * len(changed)
    assert sent < 100


def test_merkle_depth_validation():
    with pytest.raises(ValueError, match="depth"):
        MerkleTree([], -1)
    with pytest.raises(ValueError, match="same depth"):
        diff(MerkleTree([], 2), MerkleTree([], 3))


def test_hints_survive_a_crash_of_the_stand_in():
    store = ReplicatedStore(5, 3, Mode.AVAILABILITY_FIRST, r=2, w=3, seed=8)
    home = store.config.home("k")
    store.partition([home[1], home[2]])
    op = store.put("k", "kept", via=home[0])
    holders = [n for n in store.nodes if store.stored_hints(n)]
    assert op.ok and holders
    for n in holders:
        store.crash(n)
    store.heal()
    store.run_for(1.0)
    assert not any(
        covers(store.stored(h).get("k", ()), op.version) for h in home[1:]
    )  # nobody handed off yet
    for n in holders:
        store.restart(n)
    store.run_for(1.0)
    assert all(covers(store.stored(h)["k"], op.version) for h in home)
    assert not any(store.stored_hints(n) for n in store.nodes)


# -- dotted version vectors in the store ------------------------------------------------
@pytest.mark.parametrize("mode", list(Mode))
def test_two_blind_puts_through_the_same_node_leave_two_siblings(mode):
    store = ReplicatedStore(3, 3, mode, r=2, w=2, seed=0)
    a = store.put("cart", "eggs", via="n1", context=VectorClock())
    b = store.put("cart", "bread", via="n1", context=VectorClock())
    assert a.ok and b.ok and a.dot.node == b.dot.node == "n1"
    store.run_for(0.5)
    for node in store.nodes:
        assert {x.value for x in store.stored(node)["cart"]} == {"eggs", "bread"}, node
    read = store.get("cart")
    assert read.values == ("bread", "eggs")
    assert lost_writes(store.ops(), {"cart": store.all_versions("cart")}) == []
    store.put("cart", "bread+eggs")  # the context of that read supersedes both
    assert store.get("cart", r=3).values == ("bread+eggs",)


def test_lost_writes_catches_coordinator_stamped_vector_clocks(monkeypatch):
    # The scheme the Dynamo paper describes: the coordinator merges its own counter
    # into the client's context. Two blind writes through n1 become [n1:1] and [n1:2],
    # so the second looks as if it had seen the first, and the first is dropped.
    import labkit.replication.coordinator as coordinator

    def stamped_with_counter(value, dot, context, timestamp):
        return Versioned(value, dot, context.merge(VectorClock({dot.node: dot.counter - 1})), timestamp)

    monkeypatch.setattr(coordinator, "Versioned", stamped_with_counter)
    store = ReplicatedStore(3, 3, r=2, w=2, seed=0)
    first = store.put("cart", "eggs", via="n1", context=VectorClock())
    store.put("cart", "bread", via="n1", context=VectorClock())
    store.run_for(0.5)
    final = store.all_versions("cart")
    assert [x.value for x in final] == ["bread"] and covers(
        final, first.version
    )  # the clocks claim it was seen
    assert lost_writes(store.ops(), {"cart": final}) == [first]  # the clients' history says it was not


@pytest.mark.parametrize("send_earlier", [True, False])
def test_a_replica_that_missed_a_write_learns_it_with_the_coordinators_next_one(send_earlier, monkeypatch):
    if not send_earlier:  # plain dotted version vectors: each write carries only its own version
        from labkit.replication.coordinator import Coordinator

        monkeypatch.setattr(Coordinator, "_remember", lambda self, ctx, key, version: ())
    store = ReplicatedStore(3, 3, r=1, w=2, seed=3)
    store.partition(["n3"])
    first = store.put("x", "a", via="n1", context=VectorClock())  # n3 misses n1:1
    store.heal()
    second = store.put("x", "b", via="n1", context=VectorClock())  # concurrent with the first
    store.run_for(0.2)
    held = {x.dot for x in store.stored("n3")["x"]}
    store.add_client("reader", "n3")
    read = store.get("x", via="n3", r=1, client="reader")
    store.put("x", "ab", via="n3", client="reader")  # its context is [n1:2]
    store.run_for(0.5)
    lost = lost_writes(store.ops(), {"x": store.all_versions("x")})
    if send_earlier:
        # n3 got n1:1 together with n1:2, so a reader of n3 alone sees both, and
        # its context [n1:2] supersedes only what it was shown.
        assert held == {first.dot, second.dot}
        assert read.values == ("a", "b") and lost == []
    else:
        # n3 held n1:2 alone; [n1:2] claims n1:1 too, and the write the reader never saw is gone.
        assert held == {second.dot} and read.values == ("b",) and lost == [first]


def test_a_read_that_ends_at_its_deadline_still_repairs():
    store = ReplicatedStore(3, 3, r=2, w=2, seed=4)
    store.partition(["n3"])
    store.put("x", "new", via="n1")
    store.heal()
    store.partition(["n2"])  # a read with R = 3 can now reach only n1 and the stale n3
    assert not store.stored("n3").get("x")
    read = store.get("x", via="n1", r=3)
    assert read.ok is False  # R = 3 never came together: the read ended at its deadline
    store.run_for(0.1)
    assert [x.value for x in store.stored("n3")["x"]] == ["new"]
    (repair,) = store.sim.trace.notes("repaired")
    assert repair.node == "n3" and repair.time >= read.call + store.config.request_timeout


def test_anti_entropy_can_be_switched_on_and_off_during_a_run():
    from labkit.replication.experiments import merkle_traffic

    store = ReplicatedStore(3, 3, r=2, w=2, seed=6)
    assert store.anti_entropy_interval is None

    def diverge(keys):
        store.partition(["n3"])
        for k in keys:
            store.put(k, k, via="n1")
        store.heal()

    diverge([f"a{i}" for i in range(10)])
    store.run_for(1.0)
    assert len(store.divergent_keys()) == 10
    store.crash("n2")
    store.set_anti_entropy(0.1)
    store.restart("n2")  # a node that was down picks the setting up when it comes back
    assert store.anti_entropy_interval == 0.1
    assert all(store.replica(n).anti_entropy_interval == 0.1 for n in store.nodes)
    store.run_for(2.0)
    assert store.divergent_keys() == []
    store.set_anti_entropy(None)
    off = store.sim.now
    diverge([f"b{i}" for i in range(5)])
    store.crash("n1")
    store.restart("n1")  # the setting is durable: off stays off
    store.run_for(2.0)
    assert len(store.divergent_keys()) == 5
    assert merkle_traffic(store.sim.trace, since=off)["messages"] == 0
    with pytest.raises(ValueError, match="interval"):
        store.set_anti_entropy(0)
    with pytest.raises(TypeError, match="interval"):
        store.set_anti_entropy("often")


# -- canonical encoding for the Merkle digest ------------------------------------------
def test_canonical_encoding_ignores_construction_order_but_not_type():
    a, b = {"milk": 1, "eggs": 2}, {"eggs": 2, "milk": 1}
    assert a == b and repr(a) != repr(b) and canonical(a) == canonical(b)
    assert canonical({3, 1, 2}) == canonical(frozenset([2, 3, 1]))
    distinct = [1, 1.0, True, "1", b"1", (1,), [1], ("ab", "c"), ("a", "bc"), None, {1: None}, {1}]
    assert len({canonical(x) for x in distinct}) == len(distinct)
    va = Versioned(a, Dot("n1", 1))
    vb = Versioned(b, Dot("n1", 1))
    assert version_digest("cart", (va,)) == version_digest("cart", (vb,))
    assert MerkleTree([("cart", (va,))], 2).root == MerkleTree([("cart", (vb,))], 2).root


def test_canonical_encoding_is_the_same_in_every_python_process():
    import os
    import subprocess
    import sys

    code = (
        "from labkit.replication.merkle import canonical; "
        "s = frozenset(f'item{i}' for i in range(30)); print(repr(s)); print(canonical(s).hex())"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
        for seed in ("1", "2")
    ]
    assert outs[0][0] != outs[1][0]  # repr follows the process's string hashing
    assert outs[0][1] == outs[1][1]
