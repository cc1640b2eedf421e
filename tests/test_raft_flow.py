"""Flow control of AppendEntries: at most one message with entries in flight per follower.

The rule (see labkit/raft/progress.py) changes only *when* entries travel, never
*which*: these tests check that it holds, that entries appended meanwhile
travel together, and that nothing is held back for long: a lost message is
sent again and a follower far behind still catches up in a few round trips.
"""

from __future__ import annotations

from collections import defaultdict

from labkit.raft import AppendEntries, AppendEntriesReply, RaftCluster, Role
from labkit.sim import Fixed, Kind


def elect(c: RaftCluster) -> str:
    assert c.run_until(lambda: c.leader() is not None, 3.0), "no leader elected"
    return c.leader()


def append_entries_with_entries(c: RaftCluster, src: str, dst: str, since: float = 0.0) -> list:
    return [
        r[6]
        for r in c.sim.trace.rows
        if r[1] is Kind.SEND
        and r[0] >= since
        and r[3] == src
        and r[4] == dst
        and type(r[6]) is AppendEntries
        and r[6].entries
    ]


def test_at_most_one_append_entries_with_entries_in_flight_per_follower():
    c = RaftCluster(n=5, seed=3)
    elect(c)
    for name in ("c1", "c2", "c3"):
        c.client(name).start_workload(rate=200.0, duration=2.0)
    c.sim.run_for(2.5)
    in_flight: dict[tuple[str, str], set[int]] = defaultdict(set)
    most = 0
    for r in c.sim.trace.rows:
        kind, msg = r[1], r[6]
        if type(msg) is not AppendEntries or not msg.entries:
            continue
        link = (r[3], r[4])
        if kind is Kind.SEND:
            in_flight[link].add(r[5])
            most = max(most, len(in_flight[link]))
        elif kind in (Kind.DELIVER, Kind.DROP):
            in_flight[link].discard(r[5])
    assert most == 1, f"{most} AppendEntries with entries in flight on one link"
    done = [h for h in c.history if h.done]
    assert len(done) > 500
    # Batching holds nothing back: every write that returned is on every server.
    assert c.run_until(lambda: len({c.node(n).commit_index for n in c.ids}) == 1, 1.0)
    assert len({tuple(c.applied(n)) for n in c.ids}) == 1


def test_entries_appended_while_one_is_in_flight_travel_together():
    c = RaftCluster(n=3, seed=4)
    leader = elect(c)
    c.sim.run_for(0.2)
    start = c.sim.now
    for i in range(10):  # ten submissions at the same instant
        assert c.submit(f"x{i}", node=leader) is not None
    assert c.run_until(lambda: all(len(c.applied(n)) == 10 for n in c.ids), 0.5)
    for f in c.ids:
        if f == leader:
            continue
        msgs = append_entries_with_entries(c, leader, f, since=start)
        # The first goes at once; the nine appended while it was in flight go together.
        assert [len(m.entries) for m in msgs] == [1, 9], [len(m.entries) for m in msgs]
        # §5.3: each message holds the leader's log from next_index on, in order.
        sent = [e.command for m in msgs for e in m.entries]
        assert sent == [f"x{i}" for i in range(10)]


def test_a_lost_append_entries_is_sent_again_within_a_heartbeat_interval_or_two():
    c = RaftCluster(n=3, seed=5)
    leader = elect(c)
    c.sim.run_for(0.2)
    follower = next(n for n in c.ids if n != leader)
    term = c.node(leader).current_term
    c.sim.cut(leader, follower)  # the next message to the follower is lost
    c.submit("lost-once", node=leader)
    c.sim.run_for(0.001)
    c.sim.uncut(leader, follower)
    # The heartbeat that follows keeps the follower quiet without resending;
    # once a whole interval passes unanswered the entries are sent again.
    assert c.run_until(lambda: "lost-once" in c.applied(follower), 0.15)
    assert c.node(leader).role is Role.LEADER and c.node(leader).current_term == term
    assert c.node(follower).current_term == term  # no election on the way


def test_a_follower_far_behind_catches_up_in_a_few_round_trips():
    c = RaftCluster(n=5, seed=6)
    leader = elect(c)
    c.sim.run_for(0.2)
    follower = next(n for n in c.ids if n != leader)
    c.crash(follower)
    for i in range(300):
        c.submit(f"e{i}", node=leader)
    others = [n for n in c.ids if n != follower]
    assert c.run_until(lambda: all(len(c.applied(n)) == 300 for n in others), 1.0)
    start = c.sim.now
    c.restart(follower)
    assert c.run_until(lambda: len(c.applied(follower)) == 300, 0.3)
    # 300 entries at max_entries=64 per message: five batches, each sent as
    # soon as the previous one is acknowledged (plus a probe or two).
    msgs = append_entries_with_entries(c, leader, follower, since=start)
    assert 5 <= len(msgs) <= 7, [len(m.entries) for m in msgs]
    assert c.sim.now - start < 0.2
    assert c.applied(follower) == c.applied(leader)


# ---------------------------------------------------------------------------
# Stale failure replies (§5.3): only an answer to the current probe moves next_index
# ---------------------------------------------------------------------------
def test_a_rejection_of_a_stale_term_does_not_resend_entries_in_flight():
    c = RaftCluster(n=3, seed=7, latency=Fixed(0.002))
    leader = elect(c)
    c.sim.run_for(0.2)
    follower = next(n for n in c.ids if n != leader)
    term = c.node(leader).current_term
    start = c.sim.now
    c.submit("x", node=leader)  # entries now on their way to the follower
    next_before = c.node(leader).next_index[follower]
    # An AppendEntries of an earlier term from the same server (delayed in the
    # network since it led that term) reaches the follower, which rejects it
    # with its current term, the leader's term now.
    c.sim.call(
        follower, lambda n, ctx: n.on_message(ctx, leader, AppendEntries(term - 1, leader, 0, 0, (), 0))
    )
    assert c.run_until(lambda: "x" in c.applied(follower), 0.2)
    # The rejection answers no request of this term: no rewind, no second copy.
    msgs = append_entries_with_entries(c, leader, follower, since=start)
    assert len(msgs) == 1, [m.entries for m in msgs]
    assert c.node(leader).next_index[follower] >= next_before


def test_a_duplicated_failure_reply_is_acted_on_once():
    c = RaftCluster(n=5, seed=8, latency=Fixed(0.002))
    leader = elect(c)
    c.sim.run_for(0.2)
    behind, successor = [n for n in c.ids if n != leader][:2]
    c.disconnect(behind)
    for i in range(5):
        c.submit(f"e{i}", node=leader)
    c.sim.run_for(0.2)
    c.start_election(successor)  # a new leader whose next_index for `behind` is past its log
    assert c.run_until(lambda: c.leader() == successor, 1.0)
    c.sim.run_for(0.1)
    c.connect(behind)
    rows = c.sim.trace.rows

    def failure_delivered() -> AppendEntriesReply | None:
        for r in reversed(rows):
            link, msg = (r[3], r[4]), r[6]
            if r[1] is Kind.DELIVER and link == (behind, successor) and type(msg) is AppendEntriesReply:
                return None if msg.success else msg
        return None

    while failure_delivered() is None:  # event by event, to catch the moment
        c.sim.step()
    reply = failure_delivered()
    sent = len(rows)
    # The network delivers the same failure again while the resend is on its way.
    c.sim.call(successor, lambda n, ctx: n.on_message(ctx, behind, reply))
    resent = [r for r in rows[sent:] if r[1] is Kind.SEND and type(r[6]) is AppendEntries]
    assert resent == [], "a duplicate of an answered failure made the leader send again"
    assert c.run_until(lambda: len(c.applied(behind)) == 5, 1.0)
    assert c.applied(behind) == c.applied(successor)


# ---------------------------------------------------------------------------
# A window of messages in flight (max_inflight > 1): probe, then replicate
# ---------------------------------------------------------------------------
def most_in_flight(c: RaftCluster) -> int:
    """The most AppendEntries with entries on their way at once on one link, from the trace."""
    in_flight: dict[tuple[str, str], set[int]] = defaultdict(set)
    most = 0
    for r in c.sim.trace.rows:
        kind, msg = r[1], r[6]
        if type(msg) is not AppendEntries or not msg.entries:
            continue
        link = (r[3], r[4])
        if kind is Kind.SEND:
            in_flight[link].add(r[5])
            most = max(most, len(in_flight[link]))
        elif kind in (Kind.DELIVER, Kind.DROP):
            in_flight[link].discard(r[5])
    return most


def test_with_a_window_the_leader_streams_up_to_max_inflight_messages():
    c = RaftCluster(n=5, seed=3, max_inflight=4, max_entries=2)
    leader = elect(c)
    for name in ("c1", "c2", "c3"):
        c.client(name).start_workload(rate=200.0, duration=2.0)
    c.sim.run_for(2.5)
    assert most_in_flight(c) == 4
    assert len([h for h in c.history if h.done]) > 500
    assert c.run_until(lambda: len({c.node(n).commit_index for n in c.ids}) == 1, 1.0)
    assert len({tuple(c.applied(n)) for n in c.ids}) == 1
    assert c.check_invariants() == []
    # §5.3 still: each message holds the leader's log from prev_log_index + 1 on, in order.
    log = c.node(leader).log
    for f in c.ids:
        if f != leader:
            for m in append_entries_with_entries(c, leader, f):
                assert list(m.entries) == log[m.prev_log_index + 1 : m.prev_log_index + 1 + len(m.entries)]


def commit_time(max_inflight: int) -> float:
    """Seconds for a leader to commit 200 commands handed to it at once, 2 per message, 5 ms each way."""
    c = RaftCluster(n=3, seed=9, latency=Fixed(0.005), max_entries=2, max_inflight=max_inflight)
    leader = elect(c)
    c.sim.run_for(0.2)
    start = c.sim.now
    for i in range(200):
        c.submit(f"v{i}", node=leader)
    last = c.node(leader).log.last_index
    assert c.run_until(lambda: c.node(leader).commit_index == last, 5.0)
    assert c.run_until(lambda: all(len(c.applied(n)) == 200 for n in c.ids), 1.0)
    assert len({tuple(c.applied(n)) for n in c.ids}) == 1
    return c.sim.now - start


def test_a_window_stops_the_round_trip_from_capping_throughput():
    one, eight = commit_time(1), commit_time(8)
    # One message in flight: 100 messages, one round trip (10 ms) each.
    assert 0.9 < one < 1.2, one
    # Eight in flight: about eight messages per round trip.
    assert eight < one / 5, (one, eight)


def test_a_message_lost_in_replicate_state_is_sent_again_without_an_election():
    c = RaftCluster(n=3, seed=5, max_inflight=4)
    leader = elect(c)
    c.submit("first", node=leader)
    c.sim.run_for(0.2)
    follower = next(n for n in c.ids if n != leader)
    assert c.node(leader).progress[follower].state.value == "replicate"
    term = c.node(leader).current_term
    c.sim.cut(leader, follower)  # the next message is lost; the ones after it fail the §5.3 check
    c.submit("lost-once", node=leader)
    c.sim.run_for(0.001)
    c.sim.uncut(leader, follower)
    c.submit("after", node=leader)
    assert c.run_until(lambda: c.applied(follower)[-2:] == ["lost-once", "after"], 0.2)
    assert c.applied(follower) == c.applied(leader)
    assert c.node(follower).current_term == term and c.node(leader).role is Role.LEADER


def test_progress_probes_then_replicates_and_falls_back():
    from labkit.raft.progress import FlowState, Progress

    p = Progress(6, window=3)
    assert p.state is FlowState.PROBE
    p.sent(5, 2, now=0.0)  # a probe with entries 6..7
    assert p.busy and p.next_index == 6  # probing: next_index waits for the answer
    assert p.update(7) and p.ready_for_more(7, last_index=7) is False
    assert p.state is FlowState.REPLICATE and p.next_index == 8 and not p.busy
    for first in (8, 10, 12):  # three messages of two entries each, nothing answered yet
        p.sent(first - 1, 2, now=1.0)
    assert p.next_index == 14 and p.busy  # the window is full
    assert p.update(9) and p.ready_for_more(9, last_index=20) is True  # one answered: a place frees
    stale = AppendEntriesReply(4, False, 4, 6)  # a failure of a probe long answered
    assert not p.answers_probe(stale, term=4)
    news = AppendEntriesReply(4, False, 4, 11, conflict_index=10)  # 10..11 never arrived
    assert p.answers_probe(news, term=4)
    p.decrement_next_index(10, last_index=20)
    assert p.state is FlowState.PROBE and p.next_index == 10 and not p.busy
    # In replicate state again, a message unanswered for a heartbeat interval is presumed lost.
    p.sent(9, 4, now=2.0)
    p.update(13)
    p.ready_for_more(13, last_index=20)
    p.sent(13, 2, now=3.0)
    assert p.awaiting_answer(3.01, interval=0.05)
    assert not p.awaiting_answer(3.1, interval=0.05)
    assert p.state is FlowState.PROBE and p.next_index == p.match_index + 1 == 14
    # The default window of one never leaves probe state (the simulator's behaviour).
    q = Progress(1)
    q.sent(0, 1, now=0.0)
    q.update(1)
    q.ready_for_more(1, last_index=1)
    assert q.state is FlowState.PROBE
