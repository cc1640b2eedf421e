"""Tests for labkit.shardkv: the shard state machine, routing, moving keys, and random faults."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.hashing import HashRing
from labkit.raft import KVCommand
from labkit.raft.messages import InstallSnapshot
from labkit.raft.snapshot import decode
from labkit.shardkv import (
    Install,
    Phase,
    Reconfigure,
    ShardConfig,
    ShardedKV,
    ShardStore,
    WrongGroup,
    follow_hint_or_next,
)
from labkit.sim import Kind

KEYS = tuple(f"k{i:02d}" for i in range(24))


# ---------------------------------------------------------------- the state machine
def test_config_owner_is_the_hash_ring():
    cfg = ShardConfig(0, ("g1", "g2", "g3"), vnodes=32)
    ring = HashRing(["g1", "g2", "g3"], vnodes=32)
    assert all(cfg.owner(k) == ring.node_for(k) for k in KEYS)
    nxt = cfg.with_group("g4")
    assert nxt.epoch == 1 and nxt.groups == ("g1", "g2", "g3", "g4")
    assert cfg == ShardConfig(0, ("g1", "g2", "g3"), vnodes=32)
    hash(Reconfigure(nxt))  # log commands must be hashable


@pytest.mark.parametrize(
    ("args", "err"),
    [((-1, ("g1",)), ValueError), ((0, ()), ValueError), ((0, ("g1", "g1")), ValueError)],
)
def test_config_validation(args, err):
    with pytest.raises(err):
        ShardConfig(*args)


def test_store_refuses_keys_it_does_not_own_and_remembers_the_refusal():
    cfg = ShardConfig(0, ("g1", "g2"))
    mine = next(k for k in KEYS if cfg.owner(k) == "g1")
    other = next(k for k in KEYS if cfg.owner(k) == "g2")
    s = ShardStore("g1", cfg)
    assert s.apply(KVCommand("c", 1, ("put", mine, "v"))) is None
    refused = s.apply(KVCommand("c", 2, ("put", other, "v")))
    assert isinstance(refused, WrongGroup) and other not in s.data
    # A retry of the refused request gets the same refusal, never a late apply.
    assert s.apply(KVCommand("c", 2, ("put", other, "v"))) == refused
    assert s.duplicate("c", 2) == (True, refused)
    assert s.check_invariants() == []


def test_reconfigure_cuts_out_exactly_the_keys_the_new_ring_moves_and_install_takes_them():
    old = ShardConfig(0, ("g1", "g2", "g3"))
    new = old.with_group("g4")
    stores = {g: ShardStore(g, old) for g in old.groups}
    for i, k in enumerate(KEYS):
        stores[old.owner(k)].apply(KVCommand("c", i + 1, ("put", k, f"v{k}")))
    joiner = ShardStore("g4", new, frozenset(old.groups))
    assert isinstance(joiner.apply(KVCommand("d", 1, ("get", KEYS[0]))), WrongGroup)  # not ready yet
    for g, s in stores.items():
        s.apply(Reconfigure(new))
        assert s.apply(Reconfigure(new)) == 0  # a duplicate is harmless
        items = s.outgoing[(1, "g4")]
        assert {k for k, _ in items} == {k for k in KEYS if old.owner(k) == g and new.owner(k) == "g4"}
        assert joiner.apply(Install(1, g, items)) == len(items)
        assert joiner.apply(Install(1, g, items)) == 0
        assert s.check_invariants() == []
    moved = {k for k in KEYS if new.owner(k) == "g4"}
    assert moved and set(joiner.data) == moved and not joiner.awaiting
    assert all(joiner.data[k] == f"v{k}" for k in moved)
    # Consistent hashing: every key that moved went to the newcomer.
    assert all(old.owner(k) == new.owner(k) for k in KEYS if k not in moved)


# A store's life as commands: (kind, client, key index, value); "retry" sends the client's last request again.
STORE_STEPS = st.lists(
    st.tuples(
        st.sampled_from(["put", "append", "get", "retry", "reconfigure", "install"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 9),
        st.sampled_from(["x", "y;"]),
    ),
    max_size=40,
)


def _drive(store: ShardStore, steps, seqs: dict[str, KVCommand]) -> list:
    """Apply ``steps`` to ``store``; the answers, in order."""
    answers = []
    for kind, client, key, value in steps:
        if kind == "reconfigure":
            cmd = Reconfigure(store.config.with_group(f"g{len(store.config.groups) + 1}"))
        elif kind == "install":
            cmd = Install(store.config.epoch, sorted(store.awaiting or {"g9"})[0], ((KEYS[key], value),))
        elif kind == "retry" and client in seqs:
            cmd = seqs[client]  # the same request again: answered from the session, not applied
        else:
            op = ("get", KEYS[key]) if kind in ("get", "retry") else (kind, KEYS[key], value)
            cmd = seqs[client] = KVCommand(client, seqs[client].seq + 1 if client in seqs else 1, op)
        answers.append(store.apply(cmd))
    return answers


@settings(max_examples=150, deadline=None)
@given(before=STORE_STEPS, after=STORE_STEPS, joining=st.booleans())
def test_a_store_snapshot_travels_as_json_and_restores_exactly(before, after, joining):
    # Log compaction sends a snapshot as JSON bytes (labkit.raft.snapshot): config, sessions (which
    # remember WrongGroup refusals), keys set aside for a move and installs must all survive the trip.
    from labkit.raft.messages import Configuration, Snapshot
    from labkit.raft.snapshot import decode, encode

    cfg = ShardConfig(0, ("g1", "g2"))
    group, config, awaiting = (
        ("g3", cfg.with_group("g3"), frozenset(cfg.groups)) if joining else ("g1", cfg, frozenset())
    )
    store, seqs = ShardStore(group, config, awaiting), {}
    _drive(store, before, seqs)
    state = store.snapshot()
    data = encode(Snapshot(len(before), 1, state, Configuration(("n1",))))
    copy = ShardStore(group, config, awaiting)
    copy.restore(decode(data, len(before), 1).state)
    assert copy.snapshot() == state
    for field in ("data", "sessions", "config", "awaiting", "outgoing", "installed"):
        assert getattr(copy, field) == getattr(store, field), field
    assert all(
        type(a) is type(b) for a, b in zip(copy.sessions.values(), store.sessions.values(), strict=True)
    )
    # The copy goes on as the original does: same answers (a retried refusal too), same state.
    assert _drive(copy, after, dict(seqs)) == _drive(store, after, dict(seqs))
    assert copy.snapshot() == store.snapshot()


# ---------------------------------------------------------------- the store on the simulator
def test_each_group_elects_a_leader_and_keys_reach_their_group():
    kv = ShardedKV(groups=3, seed=2)
    kv.run_for(1.0)
    assert all(kv.leaders().values())
    c = kv.client("c1")
    for k in KEYS[:8]:
        c.put(k, "x" + k)
    assert kv.run_until_idle()
    assert all(h.done and h.served_by == kv.owner(h.input[1]) for h in c.ops)
    assert kv.placement() == {k: kv.owner(k) for k in KEYS[:8]}
    got = [c.get(k) for k in KEYS[:8]]
    kv.run_until_idle()
    assert [h.output for h in got] == ["x" + k for k in KEYS[:8]]


def test_a_leader_crash_in_one_group_does_not_stop_the_others():
    kv = ShardedKV(groups=3, seed=3)
    kv.run_for(1.0)
    victim = kv.leader("g1")
    kv.crash(victim)
    t0 = kv.sim.now
    for i in range(4):
        kv.client(f"c{i}").start_workload(rate=40, duration=1.0)
    kv.run_for(1.5)
    kv.run_until_idle()
    early = {h.served_by for h in kv.history if h.done and h.ret < t0 + 0.1}
    assert early & {"g2", "g3"}  # others answered while g1 was still electing
    assert kv.leader("g1") not in (None, victim)
    assert kv.check().ok is True


def test_add_group_moves_keys_only_to_the_newcomer_and_loses_nothing():
    kv = ShardedKV(groups=3, seed=4)
    kv.run_for(1.0)
    c = kv.client("c")
    for k in KEYS:
        c.append(k, k + ";")
    kv.run_until_idle()
    before = kv.placement()
    m = kv.add_group()
    assert m.phase is Phase.DONE and kv.directory.config.epoch == 1
    after = kv.placement()
    assert set(after) == set(KEYS)
    moved = {k for k in KEYS if before[k] != after[k]}
    assert moved == set(m.moved) and moved
    assert all(after[k] == "g4" for k in moved)
    assert all(m.moved[k] == before[k] for k in moved)
    got = [c.get(k) for k in KEYS]
    kv.run_until_idle()
    assert [h.output for h in got] == [k + ";" for k in KEYS]
    assert kv.check_invariants() == []


def test_validation():
    kv = ShardedKV(groups=2, seed=0)
    with pytest.raises(ValueError, match="groups"):
        ShardedKV(groups=0)
    with pytest.raises(TypeError):
        ShardedKV(replicas=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="node"):
        kv.crash("n1")
    with pytest.raises(ValueError, match="group"):
        kv.leader("g9")
    with pytest.raises(ValueError, match="minority"):
        kv.partition_group("g1", ["g1n1", "g1n2", "g1n3"])
    with pytest.raises(TypeError):
        kv.partition_group("g1", "g1n1")
    with pytest.raises(ValueError, match="already exists"):
        kv.add_group("g1")
    with pytest.raises(ValueError, match="snapshot_threshold"):
        ShardedKV(groups=2, snapshot_threshold=0)
    with pytest.raises(ValueError, match="rate"):
        kv.client("c").start_workload(rate=0)
    with pytest.raises(ValueError, match="kinds"):
        kv.client("c").start_workload(kinds=("delete",))
    with pytest.raises(ValueError, match="server"):
        kv.client("g1n1")
    with pytest.raises(ValueError, match="op name"):
        kv.client("c")._invoke(("delete", "k"))
    with pytest.raises(TypeError, match="str"):
        kv.client("c").put("k", 3)  # type: ignore[arg-type]


# ---------------------------------------------------------------- random fault schedules
ACTIONS = st.sampled_from(["crash-leader", "crash-any", "restart", "partition", "heal", "join"])


def run_schedule(
    seed: int,
    actions: list[tuple[str, int]],
    kinds=("get", "put", "append"),
    snapshot_threshold: int | None = None,
) -> ShardedKV:
    kv = ShardedKV(groups=2, seed=seed, keys=KEYS[:10], snapshot_threshold=snapshot_threshold)
    kv.run_for(0.6)
    for i in range(3):
        kv.client(f"c{i}").start_workload(rate=40, duration=2.0, kinds=kinds)
    for what, pick in actions:
        kv.run_for(0.25)
        group = kv.groups[pick % len(kv.groups)]
        down = [n for n in kv.servers() if not kv.is_up(n)]
        if what == "crash-leader" and (lead := kv.leader(group)):
            kv.crash(lead)
        elif what == "crash-any" and kv.is_up(node := kv.servers(group)[pick % kv.replicas]):
            kv.crash(node)
        elif what == "restart" and down:
            kv.restart(down[pick % len(down)])
        elif what == "partition":
            kv.partition_group(group, [kv.servers(group)[pick % kv.replicas]])
        elif what == "heal":
            kv.heal()
        elif what == "join" and len(kv.groups) < 4 and all(m.phase is Phase.DONE for m in kv.migrations):
            kv.add_group(wait=False)
    kv.heal()
    for n in kv.servers():
        if not kv.is_up(n):
            kv.restart(n)
    assert kv.run_until_idle(timeout=20.0)
    kv.run_for(0.5)  # let every server catch up
    return kv


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    actions=st.lists(st.tuples(ACTIONS, st.integers(0, 10)), min_size=1, max_size=6),
)
def test_random_faults_keep_every_history_linearizable(seed, actions):
    kv = run_schedule(seed, actions)
    done = [h for h in kv.history if h.done]
    assert len(done) > 20
    res = kv.check()
    assert res.ok is True, res
    assert kv.check_invariants() == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    actions=st.lists(st.tuples(ACTIONS, st.integers(0, 10)), min_size=1, max_size=6),
)
def test_random_faults_lose_no_acknowledged_append(seed, actions):
    kv = run_schedule(seed, actions + [("join", 0)], kinds=("append", "get"))
    acked = [h for h in kv.history if h.done]
    assert acked and kv.migrations and kv.migrations[0].phase is Phase.DONE
    assert kv.lost_writes() == []
    assert kv.check().ok is True


# ---------------------------------------------------------------- with log compaction on (Raft §7)
def _compacted(kv: ShardedKV) -> int:
    """How many snapshots the servers took."""
    return len(kv.sim.trace.notes("snapshot"))


def _installed_epochs(kv: ShardedKV, node: str) -> list[int]:
    """The config epoch in each whole snapshot a leader sent ``node`` (InstallSnapshot, read from its JSON)."""
    sent = [e.message for e in kv.sim.trace.of_kind(Kind.DELIVER) if e.node == node]
    return [
        decode(m.data, m.last_included_index, m.last_included_term).state[1][0]
        for m in sent
        if isinstance(m, InstallSnapshot) and m.offset == 0 and m.done
    ]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    actions=st.lists(st.tuples(ACTIONS, st.integers(0, 10)), min_size=1, max_size=6),
)
def test_random_faults_with_log_compaction_stay_linearizable_and_lose_nothing(seed, actions):
    # Every group snapshots its ShardStore every 6 applied entries, so crashed and cut-off servers catch
    # up by InstallSnapshot (the store crossing as JSON) and restarted ones rebuild from their snapshot.
    kv = run_schedule(seed, actions + [("join", 0)], kinds=("append", "get"), snapshot_threshold=6)
    assert _compacted(kv) > 0 and kv.migrations[0].phase is Phase.DONE
    assert kv.lost_writes() == []
    res = kv.check()
    assert res.ok is True, res
    assert kv.check_invariants() == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_shard_move_under_compaction_reaches_a_lagging_follower_by_snapshot_and_survives_a_restart(seed):
    kv = ShardedKV(groups=2, seed=seed, keys=KEYS[:10], snapshot_threshold=4)
    kv.run_for(0.6)
    group = kv.owner(KEYS[0])
    lagging = next(n for n in kv.servers(group) if n != kv.leader(group))
    kv.crash(lagging)
    for i in range(3):
        kv.client(f"c{i}").start_workload(rate=40, duration=2.0, kinds=("append", "get"))
    kv.run_for(0.5)
    m = kv.add_group()  # the move runs while the groups keep snapshotting
    assert m.phase is Phase.DONE
    during = [e for e in kv.sim.trace.notes("snapshot") if m.started <= e.time <= m.finished]
    assert any(e.node in kv.servers(group) for e in during)
    kv.restart(lagging)  # its next entries are gone from the leader's log: it gets the leader's snapshot
    kv.run_for(1.5)  # the workload ends
    assert kv.run_until_idle(timeout=20.0)
    kv.run_for(0.5)
    assert 1 in _installed_epochs(kv, lagging)  # a snapshot taken after the move, sent as JSON
    stores = [kv.sim.node(n).state_machine for n in kv.servers(group)]
    assert all(s.snapshot() == stores[0].snapshot() for s in stores) and stores[0].config.epoch == 1
    # Restarted again, it rebuilds its store from its own snapshot, before it hears from anyone:
    # the move is in it (the keys set aside and the new config), past the Reconfigure entry.
    kv.crash(lagging)
    kv.restart(lagging)
    kv.sim.run(kv.sim.now)  # it boots (and hears nothing yet)
    node = kv.sim.node(lagging)
    snap = kv.sim.storage(lagging)["snapshot"]
    assert node.last_applied == snap.last_included_index
    assert node.state_machine.snapshot() == snap.state and node.state_machine.config.epoch == 1
    assert node.state_machine.outgoing == stores[0].outgoing
    kv.run_for(0.5)
    assert kv.lost_writes() == [] and kv.check().ok is True and kv.check_invariants() == []


def test_lost_writes_sees_a_write_that_vanished():
    # The counter can fail: drop one acknowledged append from a store behind the system's back.
    kv = ShardedKV(groups=2, seed=5, keys=KEYS[:4])
    kv.run_for(0.6)
    c = kv.client("c")
    c.append(KEYS[0], "a;")
    kv.run_until_idle()
    g = kv.owner(KEYS[0])
    for n in kv.servers(g):
        kv.sim.node(n).state_machine.data[KEYS[0]] = ""
    assert kv.lost_writes() == [f"{('append', KEYS[0], 'a;')} appears 0 times in {KEYS[0]!r}"]


def test_same_seed_same_run():
    a = run_schedule(7, [("crash-leader", 0), ("join", 0), ("restart", 0)])
    b = run_schedule(7, [("crash-leader", 0), ("join", 0), ("restart", 0)])
    assert [(h.input, h.call, h.ret, h.output) for h in a.history] == [
        (h.input, h.call, h.ret, h.output) for h in b.history
    ]


class CopyWithoutPause(ShardedKV):
    """A broken move for contrast: copy the keys from the old leader's store without the
    Reconfigure entry, so the old group keeps accepting writes to keys already copied."""

    def _tick(self, m):
        epoch = m.config.epoch
        for src in m.sources:
            if src not in m.snapshots and (old := self.store(src)) is not None:
                items = tuple((k, v) for k, v in sorted(old.data.items()) if m.config.owner(k) == m.group)
                m.snapshots[src] = items
            if src in m.snapshots and src not in m.installed:
                if self._applied_store(m.group, lambda s, src=src: (epoch, src) in s.installed):
                    m.installed.add(src)
                else:
                    self._submit_once(m, m.group, f"install {src}", Install(epoch, src, m.snapshots[src]))
        if len(m.installed) == len(m.sources):
            self.directory.config = m.config
            m.phase = Phase.DONE
            return
        self.sim.after(0.02, lambda sim: self._tick(m))


def test_a_move_without_the_pause_loses_acknowledged_writes():
    # The checks above can fail: the same workload over a move that skips Reconfigure loses writes.
    broken = 0
    for seed in range(6):
        kv = CopyWithoutPause(groups=2, seed=seed, keys=KEYS[:6])
        kv.run_for(0.6)
        for i in range(4):
            kv.client(f"c{i}").start_workload(rate=60, duration=1.5, kinds=("append", "get"))
        kv.run_for(0.5)
        kv.add_group()
        kv.run_until_idle()
        kv.run_for(0.3)
        lost = kv.lost_writes()
        broken += bool(lost) and kv.check().ok is False
    assert broken >= 3


# ---------------------------------------------------------------- finding the leader like a client
def test_follow_hint_or_next_follows_a_usable_hint_and_otherwise_walks_the_group():
    servers = ("g1n1", "g1n2", "g1n3")
    assert follow_hint_or_next(servers, "g1n1", "g1n3") == "g1n3"
    assert follow_hint_or_next(servers, "g1n1", None) == "g1n2"  # no hint, or silence
    assert follow_hint_or_next(servers, "g1n3", None) == "g1n1"  # wraps around
    assert follow_hint_or_next(servers, "g1n2", "g1n2") == "g1n3"  # a server naming itself while refusing
    assert follow_hint_or_next(servers, "g1n2", "g9n1") == "g1n3"  # not of this group


def _through_faults(rule=None, seed: int = 5) -> ShardedKV:
    """Clients with ``rule`` through a leader crash in g1 and a cut-off leader in g2."""
    kv = ShardedKV(groups=2, seed=seed, keys=KEYS[:8])
    kv.run_for(1.0)
    for g in kv.groups:
        kv.client(f"c{g}", next_server=rule).start_workload(rate=20, duration=2.5, keys=kv.keys_of(g))
    kv.run_for(0.5)
    kv.crash(kv.leader("g1"))
    kv.partition_group("g2", [kv.leader("g2")])
    kv.run_for(1.5)
    kv.heal()
    kv.run_until_idle(timeout=10)
    return kv


def test_clients_find_new_leaders_with_the_rule_they_are_given():
    asked = []

    def spy(servers, asked_server, hint):
        asked.append((asked_server, hint))
        return follow_hint_or_next(servers, asked_server, hint)

    kv = _through_faults(spy)
    assert asked and any(h is None for _, h in asked) and any(h is not None for _, h in asked)
    assert all(op.done for op in kv.history) and kv.check().ok is True


def test_a_client_that_never_leaves_the_server_it_asked_stalls_when_that_server_dies():
    def stuck_on(rule):
        kv = ShardedKV(groups=1, seed=3, keys=KEYS[:4])
        kv.run_for(1.0)
        kv.client("c", next_server=rule).start_workload(rate=20, duration=2.0, keys=kv.keys)
        kv.run_for(0.3)
        kv.crash(kv.servers("g1")[0])  # the server every client asks first
        kv.run_for(3.0)
        return [op for op in kv.history if not op.done]

    assert stuck_on(lambda servers, asked, hint: asked)
    assert stuck_on(follow_hint_or_next) == []


def test_next_server_must_name_a_server_of_the_group():
    kv = ShardedKV(groups=1, seed=1)
    kv.run_for(1.0)
    bad = kv.client("c", next_server=lambda servers, asked, hint: "nobody")
    kv.crash(kv.leader("g1"))  # whichever server the client asks first, it must then choose another
    bad.get(KEYS[0])
    with pytest.raises(ValueError, match="next_server must return one of the group's servers"):
        kv.run_for(2.0)
    with pytest.raises(TypeError, match="next_server must be a function"):
        ShardedKV(groups=1).client("d", next_server="round robin")
    other = ShardedKV(groups=1)
    other.client("e")
    with pytest.raises(ValueError, match="already exists"):
        other.client("e", next_server=follow_hint_or_next)
