"""CRDTs: the merge laws (hypothesis), their semantics, and convergence in the simulator.

Merge laws (Shapiro et al. 2011, §2.2): for states reached by any mix of local
updates and merges at three replicas, merge is commutative, associative and
idempotent, and every update only moves a state up (merging the old state into
the new one changes nothing). Convergence: replicas on a network that
partitions, loses, duplicates and reorders end in the same state once it heals.
A merge that breaks a law is caught by the same checks.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.broadcast import BestEffortBroadcast
from labkit.clocks import VectorClock
from labkit.crdt import (
    RGA,
    ROOT,
    Add,
    Assign,
    Decrement,
    Delete,
    Edit,
    GCounter,
    GossipReplica,
    Increment,
    Insert,
    LWWRegister,
    MVRegister,
    OpReplica,
    ORSet,
    PNCounter,
    Remove,
    merge_law_violations,
    random_faults,
    run_replicas,
)

REPLICAS = ("A", "B", "C")
LAWS = settings(
    max_examples=120, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

# -- random states: local updates at three replicas, interleaved with merges ------------------
MERGE = "merge"


def _updates(kind: str):
    """A strategy of local updates ``fn(state, replica) -> state`` for one CRDT kind."""
    small = st.integers(1, 3)
    items = st.sampled_from(["milk", "eggs", "tea"])
    if kind == "gcounter":
        return small.map(lambda n: lambda s, r: s.increment(r, n))
    if kind == "pncounter":
        return st.tuples(st.booleans(), small).map(
            lambda t: (lambda s, r: s.increment(r, t[1])) if t[0] else (lambda s, r: s.decrement(r, t[1]))
        )
    if kind == "lww":
        # Clocks that tie, and run backwards, on purpose: merge must still be a join.
        return st.tuples(items, st.integers(0, 4)).map(lambda t: lambda s, r: s.assign(t[0], float(t[1]), r))
    if kind == "mv":
        return items.map(lambda v: lambda s, r: s.assign(v, r))
    if kind == "orset":
        return st.tuples(st.booleans(), items).map(
            lambda t: (lambda s, r: s.add(t[1], r)) if t[0] else (lambda s, r: s.remove(t[1]))
        )
    if kind == "rga":

        def edit(t):
            insert, where, text = t

            def fn(s, r):
                n = len(s)
                if insert or n == 0:
                    return s.insert(where % (n + 1), text, r)
                at = where % n
                return s.delete(at, min(1 + where % 2, n - at))

            return fn

        return st.tuples(st.booleans(), st.integers(0, 9), st.sampled_from(["a", "bc", "xyz"])).map(edit)
    raise ValueError(kind)


EMPTY = {
    "gcounter": GCounter,
    "pncounter": PNCounter,
    "lww": LWWRegister,
    "mv": MVRegister,
    "orset": ORSet,
    "rga": RGA,
}


@st.composite
def three_states(draw, kind):
    states = {r: EMPTY[kind]() for r in REPLICAS}
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(REPLICAS),
                st.one_of(_updates(kind), st.sampled_from(REPLICAS).map(lambda o: (MERGE, o))),
            ),
            max_size=14,
        )
    )
    for replica, step in steps:
        if isinstance(step, tuple):
            states[replica] = states[replica].merge(states[step[1]])
        else:
            states[replica] = step(states[replica], replica)
    return states["A"], states["B"], states["C"], draw(_updates(kind))


@pytest.mark.parametrize("kind", sorted(EMPTY))
def test_merge_laws(kind):
    @LAWS
    @given(three_states(kind))
    def laws(abcu):
        a, b, c, update = abcu
        assert merge_law_violations(a, b, c) == []
        # The value is a function of the state: both merge orders read the same.
        assert a.merge(b).value == b.merge(a).value
        # Updates only move up: the old state is already in the new one.
        after = update(a, "A")
        assert after.merge(a) == after and a.merge(after) == after

    laws()


def test_merge_law_checker_catches_a_merge_that_adds():
    def adding(x, y):  # "merge by adding the entries": counts what both have seen twice
        keys = set(x.counts) | set(y.counts)
        return GCounter({k: x.counts.get(k, 0) + y.counts.get(k, 0) for k in keys})

    a, b, c = GCounter({"A": 1}), GCounter({"B": 2}), GCounter({"A": 1, "C": 1})
    broken = merge_law_violations(a, b, c, adding)
    assert len(broken) == 1 and broken[0].startswith("not idempotent")
    assert merge_law_violations(a, b, c) == []


def test_merge_law_checker_catches_a_merge_that_prefers_one_side():
    def keep_mine(x, y):
        return x

    broken = merge_law_violations(GCounter({"A": 1}), GCounter({"B": 1}), GCounter(), keep_mine)
    assert any(b.startswith("not commutative") for b in broken)


def test_rga_order_is_a_function_of_the_state():
    @LAWS
    @given(three_states("rga"))
    def same_order(abcu):
        a, b, c, _ = abcu
        merged = a.merge(b).merge(c)
        fresh = RGA(merged.elements, merged.removed)  # nothing cached: the order is rebuilt
        assert fresh.value == merged.value == c.merge(b).merge(a).value

    same_order()


# -- what each type means ---------------------------------------------------------------
def test_counters():
    a = GCounter().increment("A").increment("A", 2)
    b = GCounter().increment("B")
    assert a.merge(b).value == 4 and a.merge(b).counts == {"A": 3, "B": 1}
    p = PNCounter().increment("A", 5).decrement("B", 2)
    assert p.value == 3 and p.merge(PNCounter().decrement("A")).value == 2
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        GCounter().increment("A", 0)
    with pytest.raises(TypeError, match="other must be a GCounter"):
        GCounter().merge(PNCounter())
    with pytest.raises(ValueError, match=r"counts\['A'\]"):
        GCounter({"A": -1})


def test_lww_register_keeps_the_larger_timestamp_even_over_a_later_write():
    x = LWWRegister().assign("x=1", 0.250, "A")  # A's clock is 150 ms ahead
    y = x.assign("x=2", 0.200, "B")  # B writes later, after seeing x=1
    assert y.value == "x=1"  # B's own write is dropped at once (notebook 02)
    assert LWWRegister().assign("x=2", 0.2, "B").merge(x).value == "x=1"
    tie = LWWRegister().assign("p", 1.0, "A").merge(LWWRegister().assign("q", 1.0, "B"))
    assert tie.value == "q"  # equal timestamps: the larger replica id wins, everywhere


def test_mv_register_keeps_concurrent_writes_and_a_later_write_replaces_them():
    a = MVRegister().assign("x=1", "A")
    b = MVRegister().assign("x=2", "B")
    both = a.merge(b)
    assert both.value == ("x=1", "x=2")
    resolved = both.assign("x=1+2", "C")
    assert resolved.value == ("x=1+2",) and resolved.merge(a).value == ("x=1+2",)
    ((_, clock),) = resolved.versions
    assert clock == VectorClock({"A": 1, "B": 1, "C": 1})


def test_orset_add_wins_over_a_concurrent_remove():
    base = ORSet().add("milk", "A")
    removed = base.remove("milk")  # B removes the milk it has seen
    readded = base.add("milk", "C")  # C adds milk concurrently
    assert "milk" not in removed and "milk" in removed.merge(readded) and "milk" in readded.merge(removed)
    # A remove that has seen the add removes it for good.
    assert "milk" not in readded.merge(removed).remove("milk").merge(readded)
    assert ORSet().remove("tea") == ORSet()  # nothing observed, nothing removed
    assert removed.metadata() == {"tagged adds": 1, "tombstones": 1}


def test_rga_concurrent_inserts_at_one_place_keep_each_word_whole():
    doc = RGA().insert(0, "ab", "A")
    x = doc.insert(1, "XYZ", "A")
    y = doc.insert(1, "pq", "B")
    assert x.merge(y).text == y.merge(x).text == "apqXYZb"  # B's id (3, "B") > A's (3, "A")
    assert x.merge(y).parent((3, "A")) == (1, "A") and doc.parent((1, "A")) == ROOT


def test_rga_delete_keeps_a_tombstone_and_concurrent_insert_after_it_survives():
    doc = RGA().insert(0, "cat", "A")
    deleted = doc.delete(1)  # remove "a"
    appended = doc.insert(2, "r", "B")  # "car" + "t": inserted after the "a"
    merged = deleted.merge(appended)
    assert merged.text == "crt" and merged.metadata() == {"elements": 4, "tombstones": 1}


def test_rga_edit_changes_only_what_changed():
    doc = RGA().insert(0, "hello world", "A")
    a = doc.edit("hello brave world", "A")
    b = doc.edit("Hello world!", "B")
    assert a.merge(b).text == "Hello brave world!"
    assert doc.edit("", "A").text == "" and RGA().edit("abc", "A").text == "abc"
    with pytest.raises(ValueError, match="index"):
        doc.insert(99, "x", "A")
    with pytest.raises(ValueError, match="count"):
        doc.delete(10, 5)
    with pytest.raises(TypeError, match="items"):
        doc.insert(0, 5, "A")


# -- convergence in the simulator ------------------------------------------------------
def _schedule(rng, updates, n=24, end=2.0):
    return [(round(rng.uniform(0, end), 3), rng.choice(REPLICAS), rng.choice(updates)) for _ in range(n)]


CASES = {
    "gcounter": (GCounter, [Increment(), Increment(2)]),
    "pncounter": (PNCounter, [Increment(), Decrement()]),
    "lww": (LWWRegister, [Assign("x"), Assign("y"), Assign("z")]),
    "mv": (MVRegister, [Assign("x"), Assign("y")]),
    "orset": (ORSet, [Add("milk"), Add("tea"), Remove("milk"), Remove("tea")]),
    "rga": (RGA, [Insert(0, "ab"), Edit("hello"), Delete(0), Edit("help!"), Insert(0, "x")]),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_gossip_replicas_converge_under_partitions_loss_duplication_and_reordering(kind):
    empty, updates = CASES[kind]
    for seed in range(4):
        rng = random.Random(seed)
        schedule = _schedule(rng, updates)
        # Some updates may not apply (delete from an empty text): skip them, as a user would.
        schedule = [(t, r, _lenient(u)) for t, r, u in schedule]
        run = run_replicas(
            lambda n: GossipReplica(n, empty()),
            schedule,
            seed=seed,
            loss=0.2,
            duplication=0.2,
            faults=random_faults(REPLICAS, rng, end=2.0),
            clock_offsets={"A": 0.2, "C": -0.1},
        )
        assert run.converged, (kind, seed, run.values)
        if kind == "gcounter":
            assert run.values["A"] == sum(u.n for _, _, u in schedule if u.ok)


class _lenient:  # noqa: N801 - reads as a verb in the schedule
    """An update that leaves the state alone when it does not apply (and remembers whether it did)."""

    def __init__(self, update):
        self.update, self.ok, self.n = update, True, getattr(update, "n", 0)

    def __call__(self, state, replica, clock):
        try:
            return self.update(state, replica, clock)
        except ValueError:
            self.ok = False
            return state

    def __str__(self):
        return str(self.update)


def test_op_based_counter_is_a_plain_int_over_reliable_causal_broadcast():
    rng = random.Random(7)
    schedule = [
        (round(rng.uniform(0, 2), 3), rng.choice(REPLICAS), rng.choice([1, 2, -1])) for _ in range(30)
    ]
    run = run_replicas(
        lambda n: OpReplica(n, 0, lambda s, op, r: s + op),
        schedule,
        seed=7,
        loss=0.2,
        duplication=0.3,
        faults=random_faults(REPLICAS, rng, end=2.0),
        settle=2.0,
    )
    assert run.converged and run.values["A"] == sum(op for _, _, op in schedule)


class _NaiveOpCounter(BestEffortBroadcast):
    """Broadcast increments and apply every copy that arrives (no exactly-once)."""

    def __init__(self, node_id):
        super().__init__(node_id)
        self.state = 0

    def update(self, ctx, op):
        self.broadcast(ctx, op)

    def deliver(self, ctx, msg):
        super().deliver(ctx, msg)
        self.state += msg.body

    def on_receive(self, ctx, src, frame):
        self.deliver(ctx, frame)  # every copy, duplicates included


def test_the_convergence_check_catches_an_op_based_counter_that_counts_duplicates():
    schedule = [(0.1 * i, REPLICAS[i % 3], 1) for i in range(10)]
    run = run_replicas(_NaiveOpCounter, schedule, seed=1, duplication=0.5)
    assert not run.converged or run.values["A"] != 10


def test_the_convergence_check_catches_gossip_with_a_merge_that_keeps_its_own_state():
    run = run_replicas(
        lambda n: GossipReplica(n, GCounter(), merge=lambda mine, theirs: mine),
        [(0.1, "A", Increment()), (0.2, "B", Increment())],
    )
    assert not run.converged and run.values == {"A": 1, "B": 1, "C": 0}


def test_lww_under_skew_loses_the_later_write_and_mv_keeps_it():
    writes = [(0.1, "A", Assign("x=1")), (0.3, "B", Assign("x=2"))]
    lww = run_replicas(lambda n: GossipReplica(n, LWWRegister()), writes, clock_offsets={"A": 0.5})
    mv = run_replicas(lambda n: GossipReplica(n, MVRegister()), writes, clock_offsets={"A": 0.5})
    assert lww.converged and set(lww.values.values()) == {"x=1"}
    assert mv.converged and set(mv.values.values()) == {("x=2",)}  # B had seen x=1: it replaces it


def test_gossip_replica_recovers_its_state_after_a_crash():
    def crash_restart(sim):
        sim.crash("B")
        sim.restart("B")

    run = run_replicas(
        lambda n: GossipReplica(n, GCounter()),
        [(0.0, "B", Increment(3)), (0.05, "B", Increment())],
        faults=[(0.06, crash_restart)],
        latency=0.01,
    )
    assert run.converged and run.values["A"] == 4


def test_run_replicas_refuses_bad_input():
    with pytest.raises(ValueError, match="names replica 'Z'"):
        run_replicas(lambda n: GossipReplica(n, GCounter()), [(0.0, "Z", Increment())])
    with pytest.raises(TypeError, match="updates"):
        run_replicas(lambda n: GossipReplica(n, GCounter()), [("A", Increment())])
    with pytest.raises(ValueError, match="interval"):
        GossipReplica("A", GCounter(), interval=0)
    with pytest.raises(TypeError, match="merge"):
        GossipReplica("A", GCounter(), merge=3)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CASES))
def test_gossip_convergence_over_many_seeds(kind):
    empty, updates = CASES[kind]
    for seed in range(40):
        rng = random.Random(100 + seed)
        schedule = [(t, r, _lenient(u)) for t, r, u in _schedule(rng, updates, n=40, end=3.0)]
        run = run_replicas(
            lambda n: GossipReplica(n, empty()),
            schedule,
            seed=seed,
            loss=0.3,
            duplication=0.3,
            faults=random_faults(REPLICAS, rng, end=3.0, partitions=6),
            clock_offsets={"B": 0.3},
        )
        assert run.converged, (kind, seed)
