"""The MVCC store: each isolation level's rules, the stories, random workloads judged by the checker.

What each level must allow and forbid is what DDIA ch. 7 and Berenson et al.
(1995, Table 4) say; Adya (1999) gives the classes: read uncommitted forbids
G0, read committed all of G1, snapshot isolation also G-single and lost
updates (Fekete et al. 2005: its cycles all have two consecutive rw edges),
serializable everything. Each test that says a level forbids a class is
paired with one that shows the class does occur one level down, and with a
planted bug (a level with one rule removed) that the checker must catch: a
test that cannot fail proves nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from labkit.txn import EXPECTED, RULES, STORIES, Anomaly, Isolation, Status, Store, check
from labkit.txn.generate import random_run
from labkit.txn.run import Abort, Append, Commit, Read, Scan, Write, count_interleavings, interleavings, run
from labkit.txn.store import Aborted, Blocked, Done, View

RUNS = 40  # random workloads per level (30 transactions, 3 clients, 4 keys): about 2 s in all


def found(level, registers=False, runs=RUNS):
    c: Counter = Counter()
    for seed in range(runs):
        c.update(
            random_run(random.Random(seed), level, txns=30, keys=4, registers=registers).result.anomalies
        )
    return c


ALLOWED = {
    Isolation.READ_UNCOMMITTED: set(Anomaly) - {Anomaly.G0},
    Isolation.READ_COMMITTED: {Anomaly.G_SINGLE, Anomaly.G2_ITEM, Anomaly.LOST_UPDATE},
    Isolation.SNAPSHOT: {Anomaly.G2_ITEM},
    Isolation.SERIALIZABLE_2PL: set(),
    Isolation.SERIALIZABLE_SSI: set(),
}


# ---------------------------------------------------------------------------
# The stories
# ---------------------------------------------------------------------------
def test_each_story_goes_wrong_exactly_at_the_levels_ddia_says():
    for name, story in STORIES.items():
        got = {level: story.happened(story.run(level)) for level in Isolation}
        assert got == EXPECTED[name], name


def test_the_checker_agrees_with_every_story_in_every_interleaving_at_every_level():
    runs = 0
    for story in STORIES.values():
        for level in Isolation:
            for order in story.interleavings():
                r = story.run(level, order)
                assert story.happened(r) == (story.expected in r.result.anomalies), (story.name, level, order)
                runs += 1
    assert runs == sum(count_interleavings(s.programs) for s in STORIES.values()) * len(Isolation)


@pytest.mark.parametrize("level", list(ALLOWED))
def test_no_interleaving_of_a_story_shows_a_class_its_level_forbids(level):
    for story in STORIES.values():
        for order in story.interleavings():
            extra = story.run(level, order).result.anomalies - ALLOWED[level] - {Anomaly.G2}
            assert not extra, (story.name, order, extra)


# ---------------------------------------------------------------------------
# Random workloads: each level forbids its classes, and the level below shows them
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("registers", [False, True], ids=["lists", "registers"])
def test_random_workloads_show_only_what_each_level_allows(registers):
    seen = {level: found(level, registers) for level in Isolation}
    for level, allowed in ALLOWED.items():
        assert set(seen[level]) <= allowed, (level, seen[level])
    # ...and the weaker levels really do show what the stronger ones forbid (so the test can fail).
    assert seen[Isolation.NO_ISOLATION][Anomaly.G0 if not registers else Anomaly.G1B] > 0
    assert seen[Isolation.READ_UNCOMMITTED][Anomaly.G1B] > 0
    assert seen[Isolation.READ_COMMITTED][Anomaly.G_SINGLE] > 0
    assert seen[Isolation.READ_COMMITTED][Anomaly.LOST_UPDATE] > 0
    assert seen[Isolation.SNAPSHOT][Anomaly.G2_ITEM] > 0


@pytest.mark.parametrize(
    "broken, level, anomaly",
    [
        ("snapshot isolation without first-committer-wins", Isolation.SNAPSHOT, Anomaly.LOST_UPDATE),
        ("2PL without read locks", Isolation.SERIALIZABLE_2PL, Anomaly.G_SINGLE),
        ("SSI without its pivot rule", Isolation.SERIALIZABLE_SSI, Anomaly.G2_ITEM),
        ("read uncommitted without write locks", Isolation.READ_UNCOMMITTED, Anomaly.G0),
        ("read committed reading uncommitted versions", Isolation.READ_COMMITTED, Anomaly.G1B),
    ],
)
def test_the_checker_catches_a_level_with_one_rule_removed(broken, level, anomaly):
    changes = {
        Isolation.SNAPSHOT: {"first_committer_wins": False},
        Isolation.SERIALIZABLE_2PL: {"read_locks": False},
        Isolation.SERIALIZABLE_SSI: {"ssi": False},
        Isolation.READ_UNCOMMITTED: {"write_locks": False},
        Isolation.READ_COMMITTED: {"view": View.NEWEST},
    }[level]
    rules = replace(RULES[level], name=broken, **changes)
    seen: Counter = Counter()
    for seed in range(RUNS):
        seen.update(random_run(random.Random(seed), rules, txns=30, keys=4, registers=True).result.anomalies)
        seen.update(random_run(random.Random(seed), rules, txns=30, keys=4).result.anomalies)
    assert seen[anomaly] > 0, (broken, seen)


@pytest.mark.parametrize("level", list(Isolation))
def test_the_store_invariants_hold_after_every_step(level):
    for seed in range(15):
        random_run(random.Random(seed), level, txns=25, keys=3, check_invariants=True)
        random_run(random.Random(seed), level, txns=25, keys=3, registers=True, check_invariants=True)


def test_a_broken_abort_breaks_an_invariant(monkeypatch):
    # Plant a bug: abort forgets to remove the transaction's versions.
    def sloppy_abort(self, t, reason):
        t.status, t.abort_reason = Status.ABORTED, reason
        self.locks.release(t.name)
        return Aborted(reason)

    monkeypatch.setattr(Store, "_abort", sloppy_abort)
    with pytest.raises(AssertionError, match="keeps versions of aborted"):
        run({"T1": [Write("x", 1), Abort()]}, None, Isolation.READ_COMMITTED, check_invariants=True)


def test_runs_are_deterministic():
    a = random_run(random.Random(7), Isolation.SERIALIZABLE_SSI, txns=40)
    b = random_run(random.Random(7), Isolation.SERIALIZABLE_SSI, txns=40)
    assert a.history == b.history and a.events == b.events


# ---------------------------------------------------------------------------
# The rules, one by one
# ---------------------------------------------------------------------------
def test_read_committed_reads_the_latest_committed_version_and_own_writes():
    s = Store(Isolation.READ_COMMITTED, {"x": 1})
    s.begin("A")
    s.begin("B")
    assert s.write("A", "x", 2) == Done()
    assert s.read("B", "x") == Done(1)  # not A's uncommitted 2
    assert s.read("A", "x") == Done(2)  # its own write
    s.commit("A")
    assert s.read("B", "x") == Done(2)  # a non-repeatable read: allowed here


def test_snapshot_reads_stay_on_the_snapshot_of_the_first_step():
    s = Store(Isolation.SNAPSHOT, {"x": 1})
    s.begin("A")
    s.begin("B")
    assert s.read("B", "x") == Done(1)
    s.write("A", "x", 2)
    s.commit("A")
    assert s.read("B", "x") == Done(1)
    s.begin("C")
    assert s.read("C", "x") == Done(2)


def test_write_locks_make_a_second_writer_wait_until_the_first_ends():
    s = Store(Isolation.READ_UNCOMMITTED)
    s.begin("A")
    s.begin("B")
    s.write("A", "x", 1)
    assert s.write("B", "x", 2) == Blocked(("A",), "wants an exclusive lock on x")
    assert s.read("B", "x") == Done(1)  # read uncommitted: a dirty read
    s.abort("A")
    assert s.write("B", "x", 2) == Done()


def test_2pl_predicate_lock_blocks_a_matching_insert():
    s = Store(Isolation.SERIALIZABLE_2PL)
    s.begin("A")
    s.begin("B")
    assert s.scan("A", "room:") == Done({})
    assert isinstance(s.write("B", "room:1", "b"), Blocked)
    assert s.write("B", "hall:1", "b") == Done()  # a key outside the predicate is fine


def test_deadlocks_abort_the_transaction_that_closes_the_cycle():
    programs = {
        "T1": [Write("x", 1), Write("y", 1), Commit()],
        "T2": [Write("y", 2), Write("x", 2), Commit()],
    }
    r = run(programs, ["T1", "T2", "T1", "T2", "T1", "T2"], Isolation.READ_COMMITTED)
    assert r.status["T1"] is Status.COMMITTED and r.status["T2"] is Status.ABORTED
    assert r.reasons["T2"].startswith("deadlock: T2 waits for T1")
    assert r.final == {"x": 1, "y": 1}


def test_ssi_aborts_only_one_of_the_doctors_and_a_committed_pivot_aborts_the_other():
    story = STORIES["write skew"]
    r = story.run(Isolation.SERIALIZABLE_SSI)
    assert sum(r.committed(n) for n in ("T1", "T2")) == 1
    late = story.run(Isolation.SERIALIZABLE_SSI, ["T1", "T1", "T2", "T2", "T1", "T1", "T2", "T2"])
    assert late.committed("T1") and not late.committed("T2")


def test_an_abort_removes_the_versions_and_a_commit_check_can_refuse():
    def refuse_x(store, txn):
        return "no x today" if "x" in txn.written else None

    rules = replace(RULES[Isolation.READ_COMMITTED], commit_check=refuse_x)
    r = run({"T1": [Write("x", 5), Commit()], "T2": [Write("y", 6), Commit()]}, None, rules)
    assert r.reasons == {"T1": "no x today"} and r.final == {"y": 6}


def test_interleavings_are_all_the_merges():
    progs = {"A": [Read("x"), Commit()], "B": [Read("x"), Read("y"), Commit()]}
    orders = interleavings(progs)
    assert len(orders) == len(set(orders)) == count_interleavings(progs) == 10
    assert all(o.count("A") == 2 and o.count("B") == 3 for o in orders)


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------
def test_bad_programs_and_orders_are_refused():
    ok = {"T1": [Read("x"), Commit()]}
    with pytest.raises(ValueError, match="ends with exactly one Commit"):
        run({"T1": [Read("x")]})
    with pytest.raises(ValueError, match="exactly 2 turns"):
        run(ok, ["T1"])
    with pytest.raises(ValueError, match="not a program"):
        run(ok, ["T1", "T9"])
    with pytest.raises(TypeError, match="not one str"):
        run(ok, "T1T1")
    with pytest.raises(TypeError, match="steps must be"):
        run({"T1": ["read x", Commit()]})
    with pytest.raises(ValueError, match="other than 'T0'"):
        run({"T0": [Commit()]})
    with pytest.raises(ValueError, match="None means"):
        Store(Isolation.SNAPSHOT).write("T1", "x", None)
    with pytest.raises(TypeError, match="Isolation or a Rules"):
        Store("serializable")
    with pytest.raises(ValueError, match="enumerating interleavings"):
        interleavings({"A": [Read("x")] * 9 + [Commit()], "B": [Read("x")] * 9 + [Commit()]})
    s = Store(Isolation.SNAPSHOT)
    with pytest.raises(ValueError, match="begin it first"):
        s.read("nobody", "x")
    s.begin("A")
    s.commit("A")
    with pytest.raises(ValueError, match="already committed"):
        s.read("A", "x")


def test_scan_and_append_record_what_the_checker_needs():
    r = run(
        {"T1": [Append("l", 1), Scan("r"), Commit()]},
        None,
        Isolation.SNAPSHOT,
        initial={"r1": "a", "l": (0,)},
    )
    t1 = next(t for t in r.history if t.name == "T1")
    assert [str(o) for o in t1.ops] == ["a l 1", "s r {r1=a}"]
    assert r.final["l"] == (0, 1)
    assert check(r.history).ok
