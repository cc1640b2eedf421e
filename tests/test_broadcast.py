"""Broadcast algorithms and the checkers of their guarantees.

Each checker is shown to catch a broken broadcast of its own kind: the next
weaker algorithm of the hierarchy (best-effort < reliable < FIFO < causal <
total order, Kleppmann's lecture notes §4.2) in a scripted run, and a
deliberately broken variant of the algorithm itself (one rule changed).
"""

from __future__ import annotations

import random

import pytest

from labkit.broadcast import (
    PROMISES,
    BestEffortBroadcast,
    BroadcastHistory,
    CausalBroadcast,
    Event,
    EventKind,
    FifoBroadcast,
    Msg,
    Packet,
    Property,
    Protocol,
    ReliableBroadcast,
    Sequenced,
    SequencerBroadcast,
    check_agreement,
    check_all,
    check_causal,
    check_fifo,
    check_integrity,
    check_total_order,
    check_validity,
    history,
    run_broadcast,
)
from labkit.clocks import VectorClock
from labkit.sim import Fixed, Uniform

NODES = ("A", "B", "C")


def workload(seed: int, nodes=("A", "B", "C", "D"), n=12):
    """Random broadcasts within 0.5 s, and some replies (a reply depends on what it answers)."""
    rng = random.Random(seed)
    sends = sorted((round(rng.uniform(0, 0.5), 3), rng.choice(nodes), f"m{i}") for i in range(n))
    replies = {f"m{i}": (rng.choice(nodes), f"re-m{i}") for i in range(0, n, 3)}
    return sends, replies


# ---------------------------------------------------------------------------
# Each protocol keeps its promises on a hostile network
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", list(Protocol), ids=lambda p: p.name)
def test_every_protocol_keeps_its_promises_under_loss_duplication_and_reordering(protocol):
    nodes = ("A", "B", "C", "D", "E")
    for seed in range(10):
        sends, replies = workload(1000 + seed, nodes, n=18)
        r = run_broadcast(
            protocol,
            sends,
            nodes=nodes,
            replies=replies,
            seed=seed,
            loss=0.05 if protocol is Protocol.RAFT else 0.2,
            duplication=0.2,
            retransmit=0.05,
            settle=3.0,
        )
        broken = {p: [str(v) for v in r.violations[p]] for p in PROMISES[protocol] if r.violations[p]}
        assert not broken, f"seed {seed}: {broken}"
        # Every message (replies included) reached every node.
        assert all(len(r.history.delivered(n)) == 24 for n in nodes), seed


@pytest.mark.slow
@pytest.mark.parametrize("protocol", list(Protocol), ids=lambda p: p.name)
def test_promises_over_many_seeds(protocol):
    nodes = ("A", "B", "C", "D", "E")
    for seed in range(60):
        sends, replies = workload(1000 + seed, nodes, n=20)
        # Raft may need a few elections under this much loss before everything is committed.
        settle = 5.0 if protocol is Protocol.RAFT else 2.0
        r = run_broadcast(
            protocol,
            sends,
            nodes=nodes,
            replies=replies,
            seed=seed,
            loss=0.1,
            duplication=0.2,
            retransmit=0.05,
            settle=settle,
        )
        assert not (set(r.broken()) & PROMISES[protocol]), (seed, r.broken())


def test_the_hierarchy_each_protocol_breaks_the_next_guarantee():
    """One scripted run: A asks, B answers on delivery, A and C chat; the network reorders."""
    sends = [(0.0, "A", "q?"), (0.001, "A", "x"), (0.002, "C", "y")]
    seen = {p: run_broadcast(p, sends, replies={"q?": ("B", "a!")}, seed=1).broken() for p in Protocol}
    assert seen[Protocol.BEST_EFFORT] == [Property.FIFO, Property.CAUSAL, Property.TOTAL_ORDER]
    assert seen[Protocol.RELIABLE] == [Property.FIFO, Property.CAUSAL, Property.TOTAL_ORDER]
    assert seen[Protocol.FIFO] == [Property.CAUSAL, Property.TOTAL_ORDER]
    assert seen[Protocol.CAUSAL] == [Property.TOTAL_ORDER]
    assert seen[Protocol.SEQUENCER] == [] and seen[Protocol.RAFT] == []


def test_best_effort_loses_agreement_when_the_sender_crashes_and_reliable_does_not():
    # A's copy to C cannot get through, and A crashes before it could retry.
    faults = [(0.0, lambda s: s.cut("A", "C")), (0.12, lambda s: s.crash("A"))]
    be = run_broadcast(Protocol.BEST_EFFORT, [(0.1, "A", "hi")], faults=faults, retransmit=0.05)
    rb = run_broadcast(Protocol.RELIABLE, [(0.1, "A", "hi")], faults=faults, retransmit=0.05)
    assert be.delivered("B") == ["hi"] and be.delivered("C") == []
    assert [v.node for v in be.violations[Property.AGREEMENT]] == ["C"]
    assert rb.delivered("C") == ["hi"] and not rb.broken()  # B passed it on


def test_reply_before_question_under_best_effort_and_held_back_under_causal():
    links = {("A", "C"): 0.2}
    run = {
        p: run_broadcast(p, [(0.0, "A", "q?")], replies={"q?": ("B", "a!")}, latency=0.01, links=links)
        for p in (Protocol.BEST_EFFORT, Protocol.CAUSAL)
    }
    assert run[Protocol.BEST_EFFORT].delivered("C") == ["a!", "q?"]
    assert run[Protocol.BEST_EFFORT].violations[Property.CAUSAL][0].msgs[0].body == "a!"
    assert run[Protocol.CAUSAL].delivered("C") == ["q?", "a!"]


def test_sequencer_is_a_single_point_of_failure():
    faults = [(0.05, lambda s: s.crash("A"))]  # A is the sequencer
    r = run_broadcast(Protocol.SEQUENCER, [(0.1, "B", "m")], faults=faults, retransmit=0.05)
    assert r.delivered("B") == [] and r.violations[Property.VALIDITY]


def test_raft_total_order_survives_a_leader_crash():
    nodes = ("A", "B", "C", "D", "E")
    probe = run_broadcast(Protocol.RAFT, [], nodes=nodes, settle=1.0)
    leader = next(n for n in nodes if probe.sim.node(n).raft.role.value == "leader")
    sends = [(1.0 + 0.01 * i, nodes[i % 5], f"m{i}") for i in range(10)]
    r = run_broadcast(
        Protocol.RAFT, sends, nodes=nodes, faults=[(1.03, lambda s: s.crash(leader))], settle=3.0
    )
    correct = [n for n in nodes if n != leader]
    sent_by_correct = {b for _, n, b in sends if n != leader}
    assert all(sent_by_correct <= set(r.delivered(n)) for n in correct)
    assert not (set(r.broken()) & PROMISES[Protocol.RAFT]), r.broken()


def test_raft_total_order_refuses_log_compaction_up_front():
    # It delivers the commands Raft applies, which a snapshot would drop: refused when built, not at a snapshot.
    from labkit.broadcast import RaftBroadcast
    from labkit.raft import RaftConfig

    with pytest.raises(ValueError, match=r"config.snapshot_threshold must be None .*got 2"):
        RaftBroadcast("A", nodes=("A", "B", "C"), config=RaftConfig(snapshot_threshold=2))


def test_links_retransmit_until_acknowledged():
    r = run_broadcast(Protocol.BEST_EFFORT, [(0.0, "A", "m")], loss=0.6, retransmit=0.02, seed=4)
    assert all(r.delivered(n) == ["m"] for n in NODES)
    packets = [row for row in r.sim.trace.rows if isinstance(row[6], Packet) and row[1].value == "drop"]
    assert packets, "the seed should lose some packets, so retransmission is what got them through"
    bare = run_broadcast(Protocol.BEST_EFFORT, [(0.0, "A", "m")], loss=0.6, seed=4)
    assert not all(bare.delivered(n) == ["m"] for n in NODES)


def test_same_seed_same_trace():
    sends, replies = workload(3)
    a = run_broadcast(Protocol.CAUSAL, sends, nodes=("A", "B", "C", "D"), replies=replies, seed=5, loss=0.1)
    b = run_broadcast(Protocol.CAUSAL, sends, nodes=("A", "B", "C", "D"), replies=replies, seed=5, loss=0.1)
    assert a.sim.trace.digest() == b.sim.trace.digest()


# ---------------------------------------------------------------------------
# Deliberately broken broadcasts: one rule changed, caught by its checker
# ---------------------------------------------------------------------------
class DeliversDuplicates(BestEffortBroadcast):
    def on_receive(self, ctx, src, frame):
        self.deliver(ctx, frame)  # forgot: "the first time it arrives"


class InventsMessages(BestEffortBroadcast):
    def on_receive(self, ctx, src, frame):
        super().on_receive(ctx, src, frame)
        if frame.seq == 1:
            self.deliver(ctx, Msg(frame.origin, 99, "forged"))


class ForgetsItsOwn(BestEffortBroadcast):
    def on_broadcast(self, ctx, msg):
        self.send_to_peers(ctx, msg)  # forgot to deliver it here


class DoesNotRelay(ReliableBroadcast):
    def on_receive(self, ctx, src, frame):
        if frame.id not in self.received:
            self.received.add(frame.id)
            self.on_reliable_delivery(ctx, frame)  # forgot: pass it on first


class FifoOffByOne(FifoBroadcast):
    def ready(self, msg):
        return msg.seq >= self.delivered_from[msg.origin] + 1  # ">=" lets later ones jump the queue


class CausalWithoutOthers(CausalBroadcast):
    def dependencies(self):
        return VectorClock({self.node_id: self.delivered_from[self.node_id]})  # only its own past


class SequencerWithoutHoldBack(SequencerBroadcast):
    def on_sequenced(self, ctx, numbered):
        if not self.has_delivered(numbered.msg):
            self.deliver(ctx, numbered.msg)  # in arrival order, not number order


def _run(factory, **kw):
    sends, replies = workload(kw.pop("workload", 0))
    return run_broadcast(factory, sends, nodes=("A", "B", "C", "D"), **kw)


def test_integrity_checker_catches_duplicates_and_forgeries():
    assert check_integrity(_run(lambda n: BestEffortBroadcast(n), duplication=0.3).history) == []
    dup = check_integrity(_run(lambda n: DeliversDuplicates(n), duplication=0.3).history)
    assert dup and all("twice" in v.text for v in dup)
    forged = check_integrity(_run(lambda n: InventsMessages(n)).history)
    assert forged and all("never broadcast" in v.text for v in forged)


def test_validity_checker_catches_a_node_that_skips_its_own_messages():
    assert check_validity(_run(lambda n: BestEffortBroadcast(n)).history) == []
    v = check_validity(_run(lambda n: ForgetsItsOwn(n)).history)
    assert len(v) == 12 and "never delivered its own" in v[0].text


def test_agreement_checker_catches_reliable_broadcast_without_relaying():
    faults = [(0.0, lambda s: s.cut("A", "C")), (0.12, lambda s: s.crash("A"))]
    for factory, ok in ((lambda n: ReliableBroadcast(n), True), (lambda n: DoesNotRelay(n), False)):
        r = run_broadcast(factory, [(0.1, "A", "hi")], faults=faults)
        assert (check_agreement(r.history) == []) is ok


def test_fifo_checker_catches_an_off_by_one_hold_back():
    for seed in range(3):
        assert check_fifo(_run(lambda n: FifoBroadcast(n), seed=seed, workload=seed).history) == []
    caught = [check_fifo(_run(lambda n: FifoOffByOne(n), seed=s, workload=s).history) for s in range(3)]
    assert any(caught), "reordering should make some later message jump ahead"
    assert "before message" in next(v for c in caught for v in c).text


def test_causal_checker_catches_dependencies_that_leave_out_other_nodes():
    for seed in range(3):
        assert check_causal(_run(lambda n: CausalBroadcast(n), seed=seed, workload=seed).history) == []
    caught = [
        check_causal(_run(lambda n: CausalWithoutOthers(n), seed=s, workload=s).history) for s in range(3)
    ]
    assert any(caught)
    # ...while FIFO still holds: this broken node is exactly FIFO broadcast.
    assert all(
        check_fifo(_run(lambda n: CausalWithoutOthers(n), seed=s, workload=s).history) == [] for s in range(3)
    )


def test_total_order_checker_catches_a_sequencer_without_hold_back():
    def ok(n):
        return SequencerBroadcast(n, sequencer="A")

    def broken(n):
        return SequencerWithoutHoldBack(n, sequencer="A")

    for seed in range(3):
        assert check_total_order(_run(ok, seed=seed, workload=seed).history) == []
    caught = [check_total_order(_run(broken, seed=s, workload=s).history) for s in range(3)]
    assert any(caught) and "but" in next(v for c in caught for v in c).text


# ---------------------------------------------------------------------------
# The checkers on hand-written histories
# ---------------------------------------------------------------------------
def m(origin, seq, body=None):
    return Msg(origin, seq, body or f"{origin}{seq}")


def H(*events, correct=None):
    evs = [Event(float(i), EventKind(kind), node, msg) for i, (kind, node, msg) in enumerate(events)]
    return BroadcastHistory(evs, sorted({e.node for e in evs}), correct)


def test_causal_checker_follows_chains_of_deliveries():
    a1, b1, c1 = m("A", 1), m("B", 1), m("C", 1)
    # A -> a1; B delivers a1, broadcasts b1; C delivers a1, b1, broadcasts c1; D delivers c1 before a1.
    chain = [
        ("broadcast", "A", a1),
        ("deliver", "B", a1),
        ("broadcast", "B", b1),
        ("deliver", "C", a1),
        ("deliver", "C", b1),
        ("broadcast", "C", c1),
        ("deliver", "D", c1),
        ("deliver", "D", a1),
    ]
    v = check_causal(H(*chain))
    assert len(v) == 1 and v[0].node == "D" and v[0].msgs == (c1,) and "message 1 of A" in v[0].text
    # Concurrent messages may go in any order.
    assert (
        check_causal(
            H(("broadcast", "A", a1), ("broadcast", "B", b1), ("deliver", "C", b1), ("deliver", "C", a1))
        )
        == []
    )


def test_fifo_checker_on_gaps_and_order():
    a1, a2 = m("A", 1), m("A", 2)
    assert check_fifo(H(("deliver", "B", a1), ("deliver", "B", a2))) == []
    v = check_fifo(H(("deliver", "B", a2), ("deliver", "B", a1)))
    assert len(v) == 1 and v[0].msgs == (a2,)


def test_total_order_checker_compares_common_messages_only():
    a1, b1, c1 = m("A", 1), m("B", 1), m("C", 1)
    same = H(
        ("deliver", "X", a1),
        ("deliver", "X", b1),
        ("deliver", "Y", a1),
        ("deliver", "Y", c1),
        ("deliver", "Y", b1),
    )
    assert check_total_order(same) == []
    swapped = H(("deliver", "X", a1), ("deliver", "X", b1), ("deliver", "Y", b1), ("deliver", "Y", a1))
    (v,) = check_total_order(swapped)
    assert v.msgs == (b1, a1) and v.node == "Y"


def test_agreement_and_validity_count_only_correct_nodes():
    a1 = m("A", 1)
    h = H(("broadcast", "A", a1), ("deliver", "B", a1), correct={"B", "C"})
    assert check_validity(h) == []  # A crashed: nothing promised about it
    (v,) = check_agreement(h)
    assert v.node == "C"
    h.correct = frozenset({"B"})
    assert check_agreement(h) == []


def test_check_all_and_history_from_a_trace():
    r = run_broadcast(Protocol.FIFO, [(0.0, "A", "x")], latency=Fixed(0.01))
    assert set(check_all(r.history)) == set(Property)
    again = history(r.sim.trace)
    assert [(e.kind, e.node, e.msg) for e in again.events] == [
        (e.kind, e.node, e.msg) for e in r.history.events
    ]


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"nodes": ("A",)}, ValueError, "at least two"),
        ({"nodes": "AB"}, ValueError, "at least two"),
        ({"replies": {"x": ("Z", "y")}}, ValueError, "replies"),
        ({"settle": -1}, ValueError, "settle"),
        ({"retransmit": 0}, ValueError, "retransmit"),
        ({"faults": [(0.1, "crash A")]}, TypeError, "faults[0]"),
    ],
)
def test_run_broadcast_refuses_bad_input(kwargs, exc, words):
    with pytest.raises(exc, match=words.replace("[", r"\[").replace("]", r"\]")):
        run_broadcast(Protocol.RELIABLE, [(0.0, "A", "m")], **kwargs)


def test_bad_broadcast_entries_and_protocols():
    with pytest.raises(ValueError, match="names node 'Z'"):
        run_broadcast(Protocol.FIFO, [(0.0, "Z", "m")])
    with pytest.raises(TypeError, match=r"broadcasts\[0\]"):
        run_broadcast(Protocol.FIFO, [("A", "m")])
    with pytest.raises(TypeError, match="protocol"):
        run_broadcast("fifo", [])
    with pytest.raises(TypeError, match="on_deliver"):
        ReliableBroadcast("A", on_deliver=3)
    with pytest.raises(TypeError, match="sequencer"):
        SequencerBroadcast("A", sequencer=None)


def test_sequenced_messages_and_duplicates_are_delivered_once():
    r = run_broadcast(Protocol.SEQUENCER, [(0.0, "B", "m"), (0.0, "C", "n")], duplication=0.5, seed=2)
    assert not r.broken()
    sequenced = [row[6] for row in r.sim.trace.rows if isinstance(row[6], Sequenced)]
    assert sorted(s.number for s in sequenced)[-1] == 2


def test_replies_made_while_delivering_a_backlog_keep_the_senders_order():
    """C holds p2 back until p1 arrives, then delivers both at once and replies to each.

    Its reply to p1 must be delivered (at C, and so in its dependencies) before it
    goes on to p2; otherwise its second reply would claim to depend on none of its own
    messages and could overtake the first one elsewhere.
    """

    def chat(node, ctx, msg):
        if node.node_id == "B" and msg.body == "p1":
            node.broadcast(ctx, "p2")
        if node.node_id == "C" and msg.body in ("p1", "p2"):
            node.broadcast(ctx, "re-" + msg.body)

    backlog = 0
    for seed in range(20):
        r = run_broadcast(
            lambda n: CausalBroadcast(n, on_deliver=chat),
            [(0.0, "A", "p1")],
            seed=seed,
            latency=0.01,
            links={("A", "C"): 0.3, ("B", "C"): Uniform(0.001, 0.05)},
        )
        c = r.sim.node("C")
        assert c.bodies == ["p1", "re-p1", "p2", "re-p2"], (seed, c.bodies)
        assert next(m for m in c.delivered if m.body == "re-p2").deps["C"] == 1
        assert not (set(r.broken()) & PROMISES[Protocol.CAUSAL]), r.broken()
        # Did p2 really overtake p1's relayed copy on the way to C?
        rows = [row for row in r.sim.trace.rows if row[1].value == "deliver" and row[4] == "C"]
        bodies = [row[6].body for row in rows if isinstance(row[6], Msg)]
        backlog += bodies.index("p2") < bodies.index("p1")
    assert backlog > 0, "no seed made p2 arrive before p1 at C"
