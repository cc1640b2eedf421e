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
