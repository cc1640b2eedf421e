"""Property tests for labkit.replication under random crash/partition schedules.

* Strict quorums (DDIA ch. 5, "Quorums for reading and writing"): with
  R + W > N and no sloppy quorum, a read that starts after a write
  completed returns it or a newer version, whatever crashes and partitions
  happen, as long as both requests complete.
* Hinted handoff (Dynamo §4.6): once the network heals and crashed nodes
  restart, every hinted write reaches its home replica and no hint remains.
  Home replicas are cut off during the writes, so hints are really made.
* Anti-entropy (Dynamo §4.7): the home replicas of every key converge.
* Dotted version vectors: no acknowledged write is lost. Once the store has
  settled, every acknowledged write is still a sibling or in the causal past
  of one, judged by what the clients were shown (``lost_writes``), with any
  number of clients, several of them sharing one coordinator.
* The sibling-set and hint invariants hold on every node throughout.

The examples are derandomized (``derandomize=True``), so every run of the
suite, here or in CI, tries the same ones.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from labkit.replication import Mode, ReplicatedStore, Workload, check_replica, covers
from labkit.replication.experiments import lost_writes


def examples(n: int) -> settings:
    return settings(
        max_examples=n, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
    )


def fault_plans(actions=("crash", "restart", "partition", "heal"), within=0.4):
    """Lists of faults: (time offset in seconds, action, argument)."""
    return st.lists(
        st.tuples(st.floats(0.0, within), st.sampled_from(actions), st.integers(0, 2**16)), max_size=5
    )


faults = fault_plans()


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


@examples(300)
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
    assert covers(read.versions, written.version), (written, read)
    for node in store.nodes:
        if store.sim.is_up(node):
            check_replica(store.replica(node))


@examples(150)
@given(st.data())
def test_hinted_handoff_delivers_every_hinted_write_after_healing(data):
    k = data.draw(st.integers(3, 6), label="nodes")
    n = data.draw(st.integers(1, min(3, k - 1)), label="n")  # at least one node can stand in
    w = data.draw(st.integers(1, n), label="w")
    store = ReplicatedStore(k, n, Mode.AVAILABILITY_FIRST, r=1, w=w, seed=data.draw(st.integers(0, 999)))
    # Cut off enough home replicas of "a" that fewer than W of them are reachable:
    # every write of "a" then needs stand-ins, so hints are made. The partition
    # holds until the writes are done; only crashes and restarts strike meanwhile.
    cut = store.config.home("a")[: n - w + 1]
    store.partition(cut)
    near = [x for x in store.nodes if x not in cut]
    writes = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["a", "b", "c"]), st.sampled_from(near), fault_plans(("crash", "restart"))
            ),
            min_size=1,
            max_size=6,
        )
    )
    writes[0] = ("a", *writes[0][1:])
    for i, (key, via, plan) in enumerate(writes):
        schedule(store, plan)
        store.put(key, i, via=via)
    store.run_for(0.5)
    recover(store)
    store.run_for(2.0)
    hints = store.sim.trace.notes("hint")
    event(f"hints stored: {'none' if not hints else 'some'}")
    for note in hints:
        home, key, dot = note.detail["home"], note.detail["key"], note.detail["dot"]
        assert covers(store.stored(home).get(key, ()), dot), note
    assert all(not store.stored_hints(x) for x in store.nodes)
    for node in store.nodes:
        check_replica(store.replica(node))


@examples(60)
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


@examples(300)
@given(st.data())
def test_no_acknowledged_write_is_lost(data):
    k = data.draw(st.integers(3, 5), label="nodes")
    n = data.draw(st.integers(1, k), label="n")
    mode = data.draw(st.sampled_from(list(Mode)), label="mode")
    r, w = data.draw(st.integers(1, n), label="r"), data.draw(st.integers(1, n), label="w")
    store = ReplicatedStore(k, n, mode, r=r, w=w, seed=data.draw(st.integers(0, 999)))
    # Concurrent clients in closed loops, each writing with the context of its last
    # answer; coordinators are drawn with repetition, so clients often share one.
    coordinators = data.draw(st.lists(st.sampled_from(store.nodes), min_size=2, max_size=4), label="via")
    for i, via in enumerate(coordinators):
        wl = Workload(read_fraction=data.draw(st.floats(0.0, 0.8)), think=0.02, stop=1.0, r=r, w=w)
        store.add_client(f"c{i}", via, wl)
    schedule(store, data.draw(fault_plans(within=0.9), label="faults"))
    store.run_for(1.0 + store.client_timeout)
    recover(store)
    store.set_anti_entropy(0.1)
    store.run_for(3.0)
    shared = len(coordinators) > len(set(coordinators))
    event(f"clients share a coordinator: {shared}")
    final = store.all_versions("x")
    event(f"siblings left: {min(len(final), 3)}{'+' if len(final) > 3 else ''}")
    ops = store.ops()
    event(f"writes acknowledged: {'some' if any(op.ok and op.dot for op in ops) else 'none'}")
    assert lost_writes(ops, {"x": final}) == []
    for node in store.nodes:
        check_replica(store.replica(node))


@examples(60)
@given(st.data())
def test_strict_quorums_with_write_back_reads_are_linearizable(data):
    """DDIA ch. 9, "Linearizability and quorums"; Attiya, Bar-Noy and Dolev (1995):
    R + W > N, last-writer-wins on synchronised clocks, and reads that write back
    what they return before answering give linearizable histories, whatever the
    clients' timing, crashes and partitions."""
    from labkit.linearizability import RegisterModel, check
    from labkit.linearizability.adapters import from_replication
    from labkit.replication import Resolution
    from labkit.replication.experiments import to_history

    k = data.draw(st.integers(3, 5), label="nodes")
    n = data.draw(st.integers(1, k), label="n")
    w = data.draw(st.integers(1, n), label="w")
    r = data.draw(st.integers(n - w + 1, n), label="r")  # R + W > N
    store = ReplicatedStore(k, n, Mode.CONSISTENCY_FIRST, r=r, w=w, resolution=Resolution.LAST_WRITER_WINS,
                            seed=data.draw(st.integers(0, 999)), write_back_reads=True)  # fmt: skip
    coordinators = data.draw(st.lists(st.sampled_from(store.nodes), min_size=2, max_size=4), label="via")
    for i, via in enumerate(coordinators):
        wl = Workload(read_fraction=data.draw(st.floats(0.3, 0.8)), think=0.01, stop=1.0, r=r, w=w)
        store.add_client(f"c{i}", via, wl)
    schedule(store, data.draw(fault_plans(within=0.9), label="faults"))
    store.run_for(1.0 + store.client_timeout)
    ops = store.ops()
    reads = sum(op.ok is True and op.kind.value == "read" for op in ops)
    event(f"reads answered: {min(reads // 10 * 10, 50)}+")
    result = check(from_replication(to_history(ops)), RegisterModel())
    assert result.ok is True, result.explanation
