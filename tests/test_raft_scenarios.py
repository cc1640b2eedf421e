"""Scenario tests for labkit.raft, in the spirit of the classic Raft lab suites.

Each test cites what the extended Raft paper promises. The invariant monitor
(strict) runs during every test, so any Figure 3 violation fails it too.
"""

from __future__ import annotations

import pytest

from labkit.raft import (
    AppendEntries,
    AppendEntriesReply,
    Bug,
    InvariantViolation,
    KVCommand,
    LogEntry,
    RaftCluster,
    RequestVote,
    RequestVoteReply,
    Role,
)
from labkit.raft.scenarios import Figure8
from labkit.sim import Kind, Uniform


def elect(c: RaftCluster, timeout: float = 3.0) -> str:
    assert c.run_until(lambda: c.leader() is not None, timeout), "no leader elected"
    return c.leader()


def connected_leader(c: RaftCluster, among) -> str | None:
    leaders = [n for n in among if c.is_up(n) and c.node(n).role is Role.LEADER]
    if not leaders:
        return None
    return max(leaders, key=lambda n: c.node(n).current_term)


def commit(c: RaftCluster, command, timeout: float = 3.0, nodes=None) -> int:
    """Submit to the leader and wait until ``nodes`` (default: all live) applied it."""
    res = c.submit(command)
    assert res is not None, "no leader to submit to"
    index, _ = res
    targets = nodes if nodes is not None else [n for n in c.ids if c.is_up(n)]
    ok = c.run_until(lambda: all(command in c.applied(n) for n in targets), timeout)
    assert ok, f"{command!r} not applied on all of {targets}"
    return index


def sends(c: RaftCluster, msg_type, since: float = 0.0, src=None, dst=None) -> int:
    return sum(
        1
        for r in c.sim.trace.rows
        if r[1] is Kind.SEND
        and r[0] >= since
        and type(r[6]) is msg_type
        and (src is None or r[3] == src)
        and (dst is None or r[4] == dst)
    )


# ---------------------------------------------------------------------------
# Leader election (§5.2)
# ---------------------------------------------------------------------------
def test_initial_election():
    c = RaftCluster(n=5, seed=1)
    leader = elect(c)
    term = c.node(leader).current_term
    # §5.2: the leader's heartbeats keep everyone else a follower of its term.
    c.sim.run_for(2.0)
    assert c.leader() == leader
    assert all(c.node(n).current_term == term for n in c.ids)
    assert sum(c.node(n).role is Role.LEADER for n in c.ids) == 1


def test_reelection_and_old_leader_rejoins_without_disruption():
    c = RaftCluster(n=5, seed=2)
    old = elect(c)
    c.disconnect(old)
    rest = [n for n in c.ids if n != old]
    assert c.run_until(lambda: connected_leader(c, rest) is not None, 3.0)
    new = connected_leader(c, rest)
    new_term = c.node(new).current_term
    # The isolated old leader still believes it leads its (older) term.
    assert c.node(old).role is Role.LEADER and c.node(old).current_term < new_term
    c.connect(old)
    c.sim.run_for(1.0)
    # §5.1: a stale leader steps down on seeing the higher term; the new leader stays.
    assert c.node(old).role is Role.FOLLOWER
    assert c.leader() == new and c.node(new).current_term == new_term


def test_no_leader_without_majority():
    c = RaftCluster(n=5, seed=3)
    leader = elect(c)
    others = [n for n in c.ids if n != leader]
    cut = [leader, *others[:2]]
    for n in cut:
        c.disconnect(n)
    c.sim.run_for(3.0)
    left = others[2:]
    # §5.2: a candidate needs votes from a majority (3 of 5); 2 servers cannot elect.
    assert connected_leader(c, left) is None
    c.connect(cut[1])
    assert c.run_until(lambda: connected_leader(c, [*left, cut[1]]) is not None, 3.0)


def test_many_elections_with_random_minorities_cut_off():
    c = RaftCluster(n=7, seed=4)
    rng = c.sim.rng.__class__(99)
    elect(c)
    for _ in range(10):
        cut = rng.sample(c.ids, 3)
        for n in cut:
            c.disconnect(n)
        rest = [n for n in c.ids if n not in cut]
        # A majority (4 of 7) stays connected: it must have or elect a leader.
        assert c.run_until(lambda rest=rest: connected_leader(c, rest) is not None, 3.0)
        c.heal()
    assert c.run_until(lambda: c.leader() is not None, 3.0)


def test_split_vote_resolves_by_randomized_timeouts():
    c = RaftCluster(n=4, seed=5)
    c.sim.run_for(0.01)
    # Two candidates at once for the same term: neither can get 3 of 4 votes...
    c.start_election("n1")
    c.start_election("n2")
    c.sim.run_for(0.02)
    assert c.leader() is None
    # ...and randomized timeouts (§5.2) make a later round succeed.
    elect(c)


def test_rpc_counts_for_an_election_and_idle_heartbeats():
    c = RaftCluster(n=5, seed=6)
    elect(c)
    votes = sends(c, RequestVote)
    assert votes <= 3 * 4, f"{votes} RequestVotes for one election"
    start = c.sim.now
    c.sim.run_for(2.0)
    heartbeats = sends(c, AppendEntries, since=start)
    # One AppendEntries per follower per heartbeat interval (50 ms), no more.
    assert 2.0 / 0.05 * 4 * 0.9 <= heartbeats <= (2.0 / 0.05 + 2) * 4
    assert sends(c, RequestVote, since=start) == 0


# ---------------------------------------------------------------------------
# Log replication (§5.3) and the commit rule (§5.4.2)
# ---------------------------------------------------------------------------
def test_basic_agreement():
    c = RaftCluster(n=5, seed=7)
    elect(c)
    for cmd in ["a", "b", "c"]:
        commit(c, cmd)
    # §5.3: committed entries are applied by every server, in log order.
    for n in c.ids:
        assert c.applied(n) == ["a", "b", "c"]


def test_agreement_despite_a_failed_follower():
    c = RaftCluster(n=5, seed=8)
    leader = elect(c)
    follower = next(n for n in c.ids if n != leader)
    c.disconnect(follower)
    up = [n for n in c.ids if n != follower]
    commit(c, "x", nodes=up)
    commit(c, "y", nodes=up)
    assert c.applied(follower) == []
    # §5.3: the leader retries AppendEntries until the follower stores every entry.
    c.connect(follower)
    assert c.run_until(lambda: c.applied(follower) == ["x", "y"], 2.0)


def test_no_agreement_without_a_majority():
    c = RaftCluster(n=5, seed=9)
    leader = elect(c)
    commit(c, "before")
    followers = [n for n in c.ids if n != leader]
    for n in followers[:3]:
        c.disconnect(n)
    index, _ = c.submit("lonely")
    c.sim.run_for(1.0)
    # §5.3: an entry is committed only once a majority stores it.
    assert c.node(leader).commit_index < index
    assert "lonely" not in c.applied(leader)
    c.heal()
    c.sim.run_for(1.0)  # let the higher terms of the cut-off servers settle
    elect(c)
    commit(c, "after")
    # The uncommitted entry may survive or be overwritten (it was never
    # promised), but every server ends with the same applied commands.
    assert all(c.applied(n) == c.applied(c.ids[0]) for n in c.ids)
    assert c.applied(c.ids[0])[0] == "before" and c.applied(c.ids[0])[-1] == "after"


def test_concurrent_submissions_are_applied_in_one_order():
    c = RaftCluster(n=5, seed=10)
    elect(c)
    cmds = [f"cmd{i}" for i in range(40)]
    for cmd in cmds:
        assert c.submit(cmd) is not None
    # §5.3: one leader orders everything; every server applies the same sequence.
    assert c.run_until(lambda: all(len(c.applied(n)) == 40 for n in c.ids), 3.0)
    assert all(c.applied(n) == cmds for n in c.ids)


def test_partitioned_old_leader_rejoins_and_drops_uncommitted_entries():
    c = RaftCluster(n=5, seed=11)
    old = elect(c)
    commit(c, "shared")
    c.disconnect(old)
    for cmd in ("lost1", "lost2", "lost3"):
        assert c.submit(cmd, node=old) is not None  # accepted but never committed
    rest = [n for n in c.ids if n != old]
    assert c.run_until(lambda: connected_leader(c, rest) is not None, 3.0)
    for cmd in ("kept1", "kept2"):
        commit(c, cmd, nodes=rest)
    c.connect(old)
    assert c.run_until(lambda: c.applied(old) == ["shared", "kept1", "kept2"], 3.0)
    # §5.3: the leader forces followers' logs to duplicate its own.
    c.sim.run_for(0.2)
    logs = [list(c.node(n).log) for n in c.ids]
    assert all(log == logs[0] for log in logs)
    assert not any(e.command in ("lost1", "lost2", "lost3") for e in c.node(old).log)


def test_far_behind_follower_with_50_conflicting_entries_catches_up_quickly():
    c = RaftCluster(n=5, seed=12)
    old = elect(c)
    commit(c, "base")
    partner = next(n for n in c.ids if n != old)
    c.partition([old, partner])
    for i in range(60):  # 60 entries of the old term that will never commit
        c.submit(f"stale{i}", node=old)
    c.sim.run_for(0.5)
    rest = [n for n in c.ids if n not in (old, partner)]
    assert c.run_until(lambda: connected_leader(c, rest) is not None, 3.0)
    new = connected_leader(c, rest)
    for i in range(60):
        c.submit(f"fresh{i}", node=new)
    assert c.run_until(lambda: all(len(c.applied(n)) == 61 for n in rest), 3.0)
    c.crash(old)  # only the partner has to catch up now
    # One more election: a new leader sets next_index to the end of its own log
    # for everyone (Figure 2), so it really has to find where the partner diverges.
    c.start_election(new)
    assert c.run_until(lambda: connected_leader(c, rest) == new, 1.0)
    peers = [n for n in rest if n != new]
    assert c.run_until(
        lambda: all(c.node(new).match_index[n] == c.node(new).log.last_index for n in peers), 1.0
    )
    assert c.node(new).next_index[partner] > c.node(partner).log.last_index  # past the partner's log

    def catch_up(follower: str) -> tuple[int, int]:
        """(AppendEntries sent, failures answered) until ``follower`` applied all 61 commands."""
        start = c.sim.now
        assert c.run_until(lambda: len(c.applied(follower)) == 61, 2.0)
        failures = sum(
            1
            for r in c.sim.trace.rows
            if r[1] is Kind.SEND
            and r[0] >= start
            and r[3] == follower
            and type(r[6]) is AppendEntriesReply
            and not r[6].success
        )
        return sends(c, AppendEntries, since=start, src=new, dst=follower), failures

    c.heal()
    aes, failures = catch_up(partner)
    # Fast backtracking: one term per round trip, not one entry per round trip.
    assert failures <= 3 and aes <= 8, f"{aes} AppendEntries, {failures} refused, to bring a follower 60 back"
    assert c.applied(partner) == c.applied(new)
    # The old leader comes back from its disk with the same 60 stale entries:
    # it too must be repaired in a few round trips (§5.3), not 60.
    disk = c.sim.storage(old)
    assert disk[("log", disk["log_length"])].command == "stale59"
    c.restart(old)
    aes, failures = catch_up(old)
    assert failures <= 3 and aes <= 8, f"{aes} AppendEntries, {failures} refused, to repair the old leader"
    assert c.applied(old) == c.applied(new)
    assert not any(str(e.command).startswith("stale") for e in c.node(old).log)
    assert [list(c.node(n).log) for n in c.ids].count(list(c.node(new).log)) == 5


def test_figure8_old_term_entry_is_not_committed_by_counting_replicas():
    """Figure 8: a majority storing an entry from an earlier term does not commit it."""
    f8 = Figure8()
    c = f8.cluster
    s1, s2, s3, s4, s5 = c.ids
    f8.stage_a()
    assert c.node(s2).log.terms() == [1, 2] and c.node(s3).log.terms() == [1]
    f8.stage_b()
    assert c.node(s5).log.terms() == [1, 3] and c.node(s5).current_term == 3
    f8.stage_c()
    # (c) s1 leads term 4 and has spread its term-2 entry to s2 and s3: a majority...
    assert c.leader() == s1 and c.node(s1).current_term == 4
    assert [c.node(n).log.term(2) for n in (s1, s2, s3)] == [2, 2, 2]
    # ...but §5.4.2 forbids committing it by counting replicas.
    assert c.node(s1).commit_index < 2
    # (d) s1 crashes; s5 (last term 3) can win and overwrite index 2 everywhere.
    f8.stage_d()
    assert c.node(s2).log.term(2) == 3
    assert c.violations == []


def test_figure8_with_the_commit_bug_breaks_state_machine_safety():
    f8 = Figure8(bugs=[Bug.COMMIT_PRIOR_TERM])
    c = f8.cluster
    f8.stage_a()
    f8.stage_b()
    f8.stage_c()
    assert c.node("n1").commit_index == 2  # the bug: committed by counting term-2 replicas
    assert "y@t2" in c.applied("n1")
    f8.stage_d()
    assert any("State Machine Safety" in v for v in c.violations), c.violations


# ---------------------------------------------------------------------------
# Persistence and crashes (Figure 2, "Persistent state")
# ---------------------------------------------------------------------------
def test_vote_is_durable_before_the_reply_leaves():
    c = RaftCluster(n=3, seed=14, election_timeout=(5.0, 6.0), heartbeat_interval=1.0)
    c.sim.run_for(0.01)
    sent = c.sim.call("n1", lambda n, ctx: n.on_message(ctx, "n2", RequestVote(1, "n2", 0, 0)))
    del sent
    assert c.sim.storage("n1")["voted_for"] == "n2"  # persisted by the same handler
    c.crash("n1")
    c.restart("n1")
    c.sim.run_for(0.001)
    assert c.node("n1").voted_for == "n2" and c.node("n1").current_term == 1
    # A second candidate in the same term must be refused after the restart.
    c.sim.call("n1", lambda n, ctx: n.on_message(ctx, "n3", RequestVote(1, "n3", 0, 0)))
    replies = [r[6] for r in c.sim.trace.rows if r[1] is Kind.SEND and r[3] == "n1" and r[4] == "n3"]
    assert replies[-1] == RequestVoteReply(1, False)


def test_an_entry_survives_a_crash_of_the_follower_right_after_it_acknowledged_it():
    # Figure 2: the log is persistent, and a follower stores entries before it
    # answers (persist before send). Here the acknowledgement is what makes the
    # entry committed, so forgetting it in a crash would lose a committed entry.
    c = RaftCluster(n=3, seed=13)
    leader = elect(c)
    c.sim.run_for(0.2)
    acker, other = [n for n in c.ids if n != leader]
    c.disconnect(other)  # the leader and `acker` are the only majority
    index, term = c.submit("precious", node=leader)
    rows = c.sim.trace.rows
    seen = len(rows)

    def acknowledged() -> bool:
        return any(
            r[1] is Kind.SEND
            and r[3] == acker
            and type(r[6]) is AppendEntriesReply
            and r[6].match_index >= index
            for r in rows[seen:]
        )

    while not acknowledged():  # event by event: crash the instant the reply leaves
        seen = len(rows)
        c.sim.step()
    c.crash(acker)
    assert c.sim.storage(acker)[("log", index)] == LogEntry(term, "precious")
    assert c.run_until(lambda: c.node(leader).commit_index >= index, 0.5)  # the reply still arrives
    # Now the leader dies too; only the restarted acker holds the entry.
    c.crash(leader)
    c.restart(acker)
    c.connect(other)
    rest = [acker, other]
    assert c.run_until(lambda: connected_leader(c, rest) is not None, 3.0)
    # §5.4.1: `other` lacks the entry, so only `acker` can win; the entry commits everywhere.
    assert connected_leader(c, rest) == acker
    assert c.run_until(lambda: all("precious" in c.applied(n) for n in rest), 2.0)
    c.restart(leader)
    assert c.run_until(lambda: c.applied(leader) == ["precious"], 2.0)


def test_crash_and_restart_of_all_servers_keeps_committed_entries():
    c = RaftCluster(n=5, seed=15)
    elect(c)
    for cmd in ("a", "b", "c"):
        commit(c, cmd)
    terms = {n: c.node(n).current_term for n in c.ids}
    for n in c.ids:
        c.crash(n)
    c.sim.run_for(0.5)
    for n in c.ids:
        c.restart(n)
    c.sim.run_for(0.001)
    assert all(c.node(n).current_term == terms[n] for n in c.ids)  # durable
    assert all(c.node(n).commit_index == 0 for n in c.ids)  # volatile
    elect(c)
    commit(c, "d")
    # Figure 2: the log is persistent, so committed entries survive a full-cluster crash.
    assert all(c.applied(n) == ["a", "b", "c", "d"] for n in c.ids)


def test_crash_and_restart_of_the_leader():
    c = RaftCluster(n=5, seed=16)
    leader = elect(c)
    commit(c, "a")
    c.crash(leader)
    rest = [n for n in c.ids if n != leader]
    assert c.run_until(lambda: connected_leader(c, rest) is not None, 3.0)
    commit(c, "b")
    c.restart(leader)
    # §5.5: a restarted server is just a follower that catches up.
    assert c.run_until(lambda: c.applied(leader) == ["a", "b"], 3.0)


def test_crash_and_restart_of_followers():
    c = RaftCluster(n=5, seed=17)
    leader = elect(c)
    followers = [n for n in c.ids if n != leader]
    for f in followers[:2]:
        c.crash(f)
    commit(c, "a")
    for f in followers[:2]:
        c.restart(f)
    c.crash(followers[2])
    commit(c, "b")
    assert c.leader() == leader
    c.restart(followers[2])
    # §5.5: follower crashes only delay replication; the leader retries indefinitely.
    assert c.run_until(lambda: all(c.applied(n) == ["a", "b"] for n in c.ids), 3.0)


# ---------------------------------------------------------------------------
# Unreliable networks, churn, clients
# ---------------------------------------------------------------------------
def test_unreliable_network_loss_duplication_reordering():
    c = RaftCluster(n=5, seed=18, latency=Uniform(0.001, 0.03), loss=0.1, duplication=0.1)
    clients = [c.client(f"c{i}") for i in range(3)]
    for cl in clients:
        cl.start_workload(rate=30, duration=4.0, keys=("k",))
    c.sim.run_for(8.0)
    # §5.5: Raft RPCs are idempotent, so lost, duplicated and reordered messages are harmless.
    assert c.sim.trace.count(Kind.DUPLICATE) > 0 and c.sim.trace.count(Kind.DROP) > 0
    assert any(r[1] is Kind.DELIVER for r in c.sim.trace.rows)
    assert all(h.done for h in c.history)
    assert len(c.history) > 30
    check_kv(c)


def test_churn_with_concurrent_clients():
    c = RaftCluster(n=5, seed=19)
    rng = c.sim.rng.__class__(7)
    for i in range(3):
        c.client(f"c{i}").start_workload(rate=40, duration=6.0, keys=("a", "b"))
    for _ in range(12):
        c.sim.run_for(0.5)
        action = rng.choice(["crash", "restart", "partition", "heal"])
        down = [n for n in c.ids if not c.is_up(n)]
        if action == "crash" and len(down) < 2:
            c.crash(rng.choice([n for n in c.ids if c.is_up(n)]))
        elif action == "restart" and down:
            c.restart(rng.choice(down))
        elif action == "partition":
            c.partition(rng.sample(c.ids, 2))
        else:
            c.heal()
    c.heal()
    for n in c.ids:
        if not c.is_up(n):
            c.restart(n)
    c.sim.run_for(4.0)
    assert all(h.done for h in c.history)
    check_kv(c)


def check_kv(c: RaftCluster) -> None:
    """Every returned write is in the final state, exactly once, and the log agrees."""
    leader = elect(c)
    c.sim.run_for(0.5)
    applied = c.applied(leader)
    ids = {(cmd.client, cmd.seq) for cmd in applied if isinstance(cmd, KVCommand)}
    data = c.node(leader).state_machine.data
    for n in c.ids:
        assert c.node(n).state_machine.data == data
    seqs: dict[str, int] = {}
    for h in c.history:
        seqs[h.client] = seqs.get(h.client, 0) + 1
        if h.done:
            assert (h.client, seqs[h.client]) in ids, f"{h} returned but is not in the log"
            if h.input[0] == "append":
                assert data[h.input[1]].count(h.input[2]) == 1 or any(
                    g.input[0] == "put" and g.input[1] == h.input[1] and g.call > h.call for g in c.history
                )
    assert c.check_invariants() == []


def test_client_retries_are_applied_at_most_once():
    c = RaftCluster(n=3, seed=20, duplication=0.5, latency=Uniform(0.001, 0.02), client_timeout=0.02)
    cl = c.client("alice")
    elect(c)
    ops = [cl.append("k", f"{i};") for i in range(20)]
    assert c.run_until(lambda: all(op.done for op in ops), 5.0)
    assert sum(op.attempts for op in ops) > 20  # some requests were retried
    # §8: client sequence numbers make every command apply at most once.
    c.sim.run_for(0.3)
    assert c.node(c.leader()).state_machine.data["k"] == "".join(f"{i};" for i in range(20))


def test_client_history_records_call_return_input_output():
    c = RaftCluster(n=3, seed=21)
    cl = c.client("bob")
    put = cl.put("x", "1")
    get = cl.get("x")
    missing = cl.get("nothing")
    c.sim.run_for(2.0)
    assert c.history == [put, get, missing]
    assert put.input == ("put", "x", "1") and put.output is None
    assert get.output == "1" and missing.output == ""
    assert put.call < put.ret <= get.call < get.ret
    assert put.client == "bob"


def test_determinism():
    def run():
        c = RaftCluster(n=5, seed=22, loss=0.05)
        c.client("a").start_workload(rate=50, duration=1.0)
        c.sim.run_for(2.0)
        return c.sim.trace.digest()

    assert run() == run()


def test_vote_twice_bug_is_caught_by_election_safety():
    caught = 0
    for seed in range(30):
        c = RaftCluster(n=3, seed=seed, bugs=[Bug.VOTE_TWICE], strict=False)
        c.sim.run_for(0.01)
        c.start_election("n1")
        c.start_election("n2")
        c.sim.run_for(0.05)
        caught += any("Election Safety" in v for v in c.violations)
    assert caught > 0


def test_strict_monitor_raises():
    c = RaftCluster(n=3, seed=1, bugs=[Bug.VOTE_TWICE])
    c.sim.run_for(0.01)
    c.start_election("n1")
    c.start_election("n2")
    with pytest.raises(InvariantViolation, match="Election Safety"):
        c.sim.run_for(0.05)
