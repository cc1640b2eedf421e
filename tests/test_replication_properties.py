"""Property tests for labkit.replication under random crash/partition schedules.

* Strict quorums (DDIA ch. 5, "Quorums for reading and writing"): with
  R + W > N and no sloppy quorum, a read that starts after a write
  completed returns it or a newer version, whatever crashes and partitions
  happen, as long as both requests complete.
* Hinted handoff (Dynamo §4.6): once the network heals and crashed nodes
  restart, every hinted write reaches its home replica and no hint remains.
* Anti-entropy (Dynamo §4.7): the home replicas of every key converge.
* The sibling-set and hint invariants hold on every node throughout.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from labkit.replication import Mode, ReplicatedStore, check_replica, covers

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A fault: (time offset in seconds, action, argument).
faults = st.lists(
    st.tuples(
        st.floats(0.0, 0.4),
        st.sampled_from(["crash", "restart", "partition", "heal"]),
        st.integers(0, 2**16),
    ),
    max_size=5,
)


def schedule(store: ReplicatedStore, plan) -> None:
    """Schedule ``plan`` relative to now: faults may strike in the middle of a request."""
    nodes = store.nodes

    def act(action, arg):
        def run(_sim):
            node = nodes[arg % len(nodes)]
            if action == "crash" and store.sim.is_up(node):
                store.crash(node)
            elif action == "restart" and not store.sim.is_up(node):
                store.restart(node)
            elif action == "partition":
                side = [x for i, x in enumerate(nodes) if arg >> i & 1]
                if 0 < len(side) < len(nodes):
                    store.partition(side)
            elif action == "heal":
                store.heal()

        return run

    for offset, action, arg in plan:
        store.sim.after(offset, act(action, arg))


def recover(store: ReplicatedStore) -> None:
    """Heal and restart everything (call once every scheduled fault has struck)."""
    store.heal()
    for node in store.nodes:
        if not store.sim.is_up(node):
            store.restart(node)


@SETTINGS
@given(st.data())
def test_strict_quorum_read_sees_the_last_completed_write(data):
    k = data.draw(st.integers(3, 5), label="nodes")
    n = data.draw(st.integers(1, k), label="n")
    w = data.draw(st.integers(1, n), label="w")
    r = data.draw(st.integers(n - w + 1, n), label="r")  # R + W > N
    store = ReplicatedStore(k, n, Mode.CONSISTENCY_FIRST, r=r, w=w, seed=data.draw(st.integers(0, 999)))
    store.put("x", "old")
    schedule(store, data.draw(faults, label="faults before and during the write"))
    written = store.put("x", "new", via=data.draw(st.sampled_from(store.nodes)))
    schedule(store, data.draw(faults, label="faults before and during the read"))
    read = store.get("x", via=data.draw(st.sampled_from(store.nodes)))
    if not (written.ok and read.ok):
        event("a request did not complete")
        return
    event("both completed")
    assert covers(read.versions, written.clock), (written, read)
    for node in store.nodes:
        if store.sim.is_up(node):
            check_replica(store.replica(node))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hinted_handoff_delivers_every_hinted_write_after_healing(data):
    k = data.draw(st.integers(3, 6), label="nodes")
    n = data.draw(st.integers(1, min(3, k)), label="n")
    w = data.draw(st.integers(1, n), label="w")
    store = ReplicatedStore(k, n, Mode.AVAILABILITY_FIRST, r=1, w=w, seed=data.draw(st.integers(0, 999)))
    writes = data.draw(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, k - 1), faults), min_size=1, max_size=6
        )
    )
    for i, (key, via, plan) in enumerate(writes):
        schedule(store, plan)
        store.put(key, i, via=store.nodes[via])
    store.run_for(0.5)
    recover(store)
    store.run_for(2.0)
    hints = store.sim.trace.notes("hint")
    event(f"hints stored: {'none' if not hints else 'some'}")
    for note in hints:
        home, key, clock = note.detail["home"], note.detail["key"], note.detail["clock"]
        assert covers(store.stored(home).get(key, ()), clock), note
    assert all(not store.stored_hints(x) for x in store.nodes)
    for node in store.nodes:
        check_replica(store.replica(node))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_anti_entropy_makes_home_replicas_converge(data):
    k = data.draw(st.integers(3, 5), label="nodes")
    mode = data.draw(st.sampled_from(list(Mode)), label="mode")
    store = ReplicatedStore(
        k, 3, mode, r=1, w=1, seed=data.draw(st.integers(0, 999)), anti_entropy_interval=0.1, merkle_depth=3
    )
    for i in range(data.draw(st.integers(1, 8), label="writes")):
        schedule(store, data.draw(faults))
        store.put(f"k{i % 4}", i, via=store.nodes[data.draw(st.integers(0, k - 1))])
    store.run_for(0.5)  # every scheduled fault has struck
    recover(store)
    store.run_for(3.0)
    assert store.divergent_keys() == []
    for node in store.nodes:
        check_replica(store.replica(node))
