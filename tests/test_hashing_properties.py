"""Property tests (hypothesis) for labkit.hashing.

Each property is a sentence from the papers:
* a lookup is "the first point clockwise" (Karger et al.): checked against a brute-force reference;
* a join moves keys only *to* the newcomer, a leave only *from* the leaver (monotonicity);
* a preference list holds n distinct physical nodes (Dynamo §4.3);
* growing jump hash's bucket count moves keys only to the new bucket (Lamping and Veach 2014);
* bounded loads never exceed ceil((1+eps) m / n) (Mirrokni et al.).

Small hashes (``ring_size`` 64) make vnode collisions common, so collision handling is exercised.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from labkit.hashing import (
    BoundedLoadHash,
    HashRing,
    RendezvousHash,
    bounded_capacity,
    jump_hash,
    md5_int,
    mmh3_128,
)
from labkit.hashing.ring import vnode_label

# derandomize: the same examples on every run, so a failure here is never a fluke of the day.
FAST = settings(max_examples=60, deadline=None, derandomize=True)

node_name = st.text(alphabet="abcdefghijklmnop0123456789-", min_size=1, max_size=6)
node_sets = st.lists(node_name, min_size=1, max_size=7, unique=True)
keys = st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=40)
vnode_counts = st.integers(min_value=1, max_value=12)


def small_hash(text: str | bytes) -> int:
    """A 6-bit hash: with dozens of vnodes on 64 points, collisions are the rule."""
    return mmh3_128(text) % 64


hash_choices = st.sampled_from([(mmh3_128, 2**128), (small_hash, 64), (md5_int, 2**128)])


def reference_owner(nodes, vnodes, hash_fn, key):
    """Brute force: every claimant of every point, the smallest (node, replica) wins a point,
    and the key goes to the smallest point >= its hash, else to the smallest point overall."""
    claims: dict[int, list[tuple[str, int]]] = {}
    for node in nodes:
        for replica in range(vnodes):
            claims.setdefault(hash_fn(vnode_label(node, replica)), []).append((node, replica))
    h = hash_fn(key)
    after = [p for p in claims if p >= h]
    point = min(after) if after else min(claims)
    return min(claims[point])[0]


def reference_preference(nodes, vnodes, hash_fn, key, n):
    """Brute force: from the key's point clockwise, each point's claimants in (node, replica)
    order (owner first, shadowed ones behind it), keeping the first n distinct nodes."""
    claims: dict[int, list[tuple[str, int]]] = {}
    for node in nodes:
        for replica in range(vnodes):
            claims.setdefault(hash_fn(vnode_label(node, replica)), []).append((node, replica))
    h = hash_fn(key)
    points = sorted(claims)
    order = [p for p in points if p >= h] + [p for p in points if p < h]
    chosen: list[str] = []
    for point in order:
        for node, _ in sorted(claims[point]):
            if node not in chosen:
                chosen.append(node)
    return chosen[:n]


@FAST
@given(node_sets, vnode_counts, keys, hash_choices)
def test_lookup_agrees_with_brute_force(nodes, vnodes, ks, hash_choice):
    hash_fn, size = hash_choice
    ring = HashRing(nodes, vnodes=vnodes, hash=hash_fn, ring_size=size)
    ring.check_invariants()
    for key in ks:
        assert ring.node_for(key) == reference_owner(nodes, vnodes, hash_fn, key)


@FAST
@given(node_sets, vnode_counts, hash_choices, st.randoms(use_true_random=False))
def test_ring_does_not_depend_on_insertion_order(nodes, vnodes, hash_choice, rnd):
    hash_fn, size = hash_choice
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    a = HashRing(nodes, vnodes=vnodes, hash=hash_fn, ring_size=size)
    b = HashRing(vnodes=vnodes, hash=hash_fn, ring_size=size)
    for node in shuffled:
        b.add_node(node)
    assert a.points() == b.points() and a.collisions == b.collisions


@FAST
@given(node_sets, node_name, vnode_counts, keys, hash_choices)
def test_join_moves_keys_only_to_the_new_node(nodes, newcomer, vnodes, ks, hash_choice):
    hash_fn, size = hash_choice
    ring = HashRing([n for n in nodes if n != newcomer], vnodes=vnodes, hash=hash_fn, ring_size=size)
    if not len(ring):
        return
    before = {k: ring.node_for(k) for k in ks}
    ring.add_node(newcomer)
    ring.check_invariants()
    for key in ks:
        after = ring.node_for(key)
        assert after in (before[key], newcomer)


@FAST
@given(node_sets.filter(lambda ns: len(ns) >= 2), vnode_counts, keys, hash_choices, st.data())
def test_leave_moves_only_the_leavers_keys(nodes, vnodes, ks, hash_choice, data):
    hash_fn, size = hash_choice
    ring = HashRing(nodes, vnodes=vnodes, hash=hash_fn, ring_size=size)
    leaver = data.draw(st.sampled_from(nodes))
    before = {k: ring.node_for(k) for k in ks}
    ring.remove_node(leaver)
    ring.check_invariants()
    for key in ks:
        if before[key] != leaver:
            assert ring.node_for(key) == before[key]
        else:
            assert ring.node_for(key) != leaver


@FAST
@given(node_sets, vnode_counts, keys, hash_choices, st.data())
def test_preference_list_has_n_distinct_nodes_in_ring_order(nodes, vnodes, ks, hash_choice, data):
    hash_fn, size = hash_choice
    ring = HashRing(nodes, vnodes=vnodes, hash=hash_fn, ring_size=size)
    n = data.draw(st.integers(min_value=1, max_value=len(nodes)))
    for key in ks:
        pref = ring.preference_list(key, n)
        assert len(pref) == n == len(set(pref)) and set(pref) <= set(nodes)
        assert pref[0] == ring.node_for(key)
        assert pref == reference_preference(nodes, vnodes, hash_fn, key, n)
        assert pref == list(dict.fromkeys(ring.walk(key)))[:n]


@FAST
@given(node_sets.filter(lambda ns: len(ns) >= 2), vnode_counts, keys, hash_choices)
# Every vnode of n18 and n23 is shadowed by n0's (all three land on point 26).
@example(["n0", "n18", "n23"], 1, ["k"], (small_hash, 64)).via("regression")
def test_second_in_the_preference_list_takes_over_when_the_first_leaves(nodes, vnodes, ks, hash_choice):
    """Dynamo §4.3: replicas sit where the key fails over to, collisions or not."""
    hash_fn, size = hash_choice
    ring = HashRing(nodes, vnodes=vnodes, hash=hash_fn, ring_size=size)
    for key in ks:
        first, second = ring.preference_list(key, 2)
        smaller = HashRing([x for x in nodes if x != first], vnodes=vnodes, hash=hash_fn, ring_size=size)
        assert smaller.node_for(key) == second


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.integers(min_value=0, max_value=2**64 - 1), st.integers(min_value=1, max_value=500))
def test_jump_hash_moves_only_to_the_new_bucket(key, n):
    before, after = jump_hash(key, n), jump_hash(key, n + 1)
    assert 0 <= before < n and 0 <= after <= n
    assert after in (before, n)


@FAST
@given(node_sets, node_name, keys)
def test_rendezvous_monotone_on_join_and_leave(nodes, newcomer, ks):
    hrw = RendezvousHash(n for n in nodes if n != newcomer)
    if not len(hrw):
        return
    before = {k: hrw.node_for(k) for k in ks}
    hrw.add_node(newcomer)
    joined = {k: hrw.node_for(k) for k in ks}
    assert all(joined[k] in (before[k], newcomer) for k in ks)
    # node_for is the argmax of the scores (a tie has probability about 2**-128).
    for key in ks:
        assert joined[key] == max(hrw.nodes, key=lambda n: hrw.score(n, key))
    hrw.remove_node(newcomer)
    assert {k: hrw.node_for(k) for k in ks} == before


@FAST
@given(
    node_sets,
    st.sampled_from([0.0, 0.05, 0.25, 1.0]),
    st.integers(min_value=1, max_value=8),
    st.lists(st.text(max_size=6), min_size=1, max_size=80, unique=True),
    hash_choices,
)
@example(["n0", "n18", "n23"], 0.0, 1, [f"k{i}" for i in range(9)], (small_hash, 64)).via("regression")
def test_bounded_load_never_exceeds_capacity(nodes, eps, vnodes, ks, hash_choice):
    hash_fn, _size = hash_choice  # BoundedLoadHash's ring spans 2**128; small hashes fit in it
    bounded = BoundedLoadHash(nodes, epsilon=eps, vnodes=vnodes, hash=hash_fn)
    for m, key in enumerate(ks, start=1):
        bounded.place(key)
        assert max(bounded.loads().values()) <= bounded_capacity(m, len(nodes), eps)
    bounded.check_invariants()


class BoundedMembership(RuleBasedStateMachine):
    """Random key placements interleaved with joins and leaves; the cap must always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.bounded = BoundedLoadHash(["n0", "n1"], epsilon=0.1, vnodes=4)
        self.next_key = 0
        self.next_node = 2

    @rule(count=st.integers(min_value=1, max_value=15))
    def place(self, count):
        for _ in range(count):
            self.bounded.place(f"key-{self.next_key}")
            self.next_key += 1

    @rule()
    def join(self):
        self.bounded.add_node(f"n{self.next_node}")
        self.next_node += 1

    @precondition(lambda self: len(self.bounded) > 1)
    @rule(data=st.data())
    def leave(self, data):
        self.bounded.remove_node(data.draw(st.sampled_from(self.bounded.nodes)))

    @invariant()
    def within_capacity(self):
        self.bounded.check_invariants()
        assert len(self.bounded.assignment()) == self.next_key


TestBoundedMembership = BoundedMembership.TestCase
TestBoundedMembership.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, derandomize=True
)


class RingMembership(RuleBasedStateMachine):
    """Random joins, leaves and weight changes; every lookup must match the brute-force ring."""

    def __init__(self) -> None:
        super().__init__()
        self.ring = HashRing(vnodes=3, hash=small_hash, ring_size=64)
        self.members: dict[str, int] = {}

    @rule(node=node_name, weight=st.integers(min_value=1, max_value=3))
    def join(self, node, weight):
        if node in self.members:
            return
        self.ring.add_node(node, weight)
        self.members[node] = weight

    @precondition(lambda self: self.members)
    @rule(data=st.data())
    def leave(self, data):
        node = data.draw(st.sampled_from(sorted(self.members)))
        self.ring.remove_node(node)
        del self.members[node]

    @invariant()
    def matches_reference(self):
        self.ring.check_invariants()
        if not self.members:
            return
        claims: dict[int, list[tuple[str, int]]] = {}
        for node, weight in self.members.items():
            for replica in range(3 * weight):
                claims.setdefault(small_hash(vnode_label(node, replica)), []).append((node, replica))
        assert [p for p, _ in self.ring.points()] == sorted(claims)
        assert [o for _, o in self.ring.points()] == [min(claims[p])[0] for p in sorted(claims)]


TestRingMembership = RingMembership.TestCase
TestRingMembership.settings = settings(
    max_examples=30, stateful_step_count=20, deadline=None, derandomize=True
)
