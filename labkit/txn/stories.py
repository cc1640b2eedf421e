"""The anomalies of DDIA ch. 7, each as a story of two transactions.

Every :class:`Story` has two programs, the initial data, the interleaving
that shows the anomaly, a plain-words test of whether it happened
(``happened``), and the class the checker should name (``expected``).
Run it at any level: ``STORIES["lost update"].run(Isolation.SNAPSHOT)``.

Values written to a key are unique, and the dirty-write story keeps each
key's writes as a list, so that the checker can tell from the history alone
what happened (Elle's recoverability, see :mod:`labkit.txn.infer`).

====================  ===========================  ==========================================
story                 DDIA ch. 7                   checker class (Adya 1999; Elle 2020)
====================  ===========================  ==========================================
dirty write           Read Committed, Figure 7-5   G0
dirty read            Read Committed, Figure 7-4   G1a
read skew             Snapshot Isolation and       G-single (Berenson et al. 1995 §4.2: A5A)
                      Repeatable Read, Figure 7-6
lost update           Preventing Lost Updates,     lost-update (Berenson et al. 1995 §4.1: P4)
                      Figure 7-1
write skew            Write Skew and Phantoms,     G2-item (Berenson et al. 1995 §4.2: A5B)
                      Figure 7-8
phantom               Write Skew and Phantoms,     G2 (a predicate anti-dependency)
                      the meeting-room example
====================  ===========================  ==========================================
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.txn.checker import Anomaly
from labkit.txn.run import Abort, Append, Commit, Read, Run, Scan, Step, Write, interleavings, run
from labkit.txn.store import Isolation, Rules

__all__ = ["Story", "STORIES", "EXPECTED"]


@dataclass(frozen=True)
class Story:
    """Two transactions, an interleaving that goes wrong, and how to tell it went wrong."""

    name: str
    title: str
    text: str
    ddia: str
    programs: Mapping[str, tuple[Step, ...]]
    initial: Mapping[Hashable, Any]
    order: tuple[str, ...]
    expected: Anomaly
    invariant: str
    violation: str
    happened: Callable[[Run], bool]

    def run(self, isolation: Isolation | Rules, order: Sequence[str] | None = None) -> Run:
        """Play the story at ``isolation``, in its own interleaving unless ``order`` is given."""
        return run(self.programs, self.order if order is None else order, isolation, self.initial)

    def interleavings(self) -> list[tuple[str, ...]]:
        """Every interleaving of the two programs (the story's own is among them)."""
        return interleavings(self.programs)


def _last(run: Run, key: str) -> Any:
    value = run.final.get(key, ())
    return value[-1] if value else None


def _dirty_write(r: Run) -> bool:
    return _last(r, "listing") != _last(r, "invoice")


def _dirty_read(r: Run) -> bool:
    return r.seen["T2"].get("x") == 200 and not r.committed("T1")


def _read_skew(r: Run) -> bool:
    seen = r.seen["T1"]
    return "x" in seen and "y" in seen and seen["x"] + seen["y"] != 1000


def _lost_update(r: Run) -> bool:
    deposits = {"T1": 10, "T2": 20}
    return r.final["x"] != 100 + sum(d for name, d in deposits.items() if r.committed(name))


def _write_skew(r: Run) -> bool:
    return r.final["alice"] != "on" and r.final["bob"] != "on"


def _phantom(r: Run) -> bool:
    return sum(1 for k in r.final if str(k).startswith("noon:")) > 1


def _both_on(seen: Mapping[Hashable, Any]) -> bool:
    return seen["alice"] == "on" and seen["bob"] == "on"


def _room_free(seen: Mapping[Hashable, Any]) -> bool:
    return not seen["noon:"]


STORIES: dict[str, Story] = {
    s.name: s
    for s in (
        Story(
            name="dirty write",
            title="Alice and Bob buy the same car",
            text=(
                "Buying a car writes two records: the listing (who bought it) and the invoice (who pays). "
                "Each record keeps the names written to it in order; the last name counts. Alice and Bob "
                "buy at the same moment, and their writes interleave."
            ),
            ddia="DDIA ch. 7, 'No dirty writes', Figure 7-5",
            programs={
                "T1": (Append("listing", "alice"), Append("invoice", "alice"), Commit()),
                "T2": (Append("listing", "bob"), Append("invoice", "bob"), Commit()),
            },
            initial={},
            order=("T1", "T2", "T2", "T1", "T1", "T2"),
            expected=Anomaly.G0,
            invariant="the listing and the invoice name the same buyer",
            violation="the listing names one buyer and the invoice the other",
            happened=_dirty_write,
        ),
        Story(
            name="dirty read",
            title="A withdrawal that is rolled back",
            text=(
                "The account holds 100. T1 sets it to 200, then changes its mind and aborts. Meanwhile T2 "
                "reads the balance and commits what it saw."
            ),
            ddia="DDIA ch. 7, 'No dirty reads', Figure 7-4",
            programs={
                "T1": (Write("x", 200), Abort()),
                "T2": (Read("x"), Commit()),
            },
            initial={"x": 100},
            order=("T1", "T2", "T2", "T1"),
            expected=Anomaly.G1A,
            invariant="nobody sees the 200 that never committed",
            violation="T2 saw the 200 that never committed",
            happened=_dirty_read,
        ),
        Story(
            name="read skew",
            title="Alice checks her two accounts during a transfer",
            text=(
                "Alice has 500 in account x and 500 in account y. A transfer (T2) moves 100 from y to x. "
                "Alice (T1) reads x before the transfer and y after it."
            ),
            ddia="DDIA ch. 7, 'Snapshot Isolation and Repeatable Read', Figure 7-6",
            programs={
                "T1": (Read("x"), Read("y"), Commit()),
                "T2": (
                    Read("y"),
                    Write("y", lambda seen: seen["y"] - 100, show="y - 100"),
                    Read("x"),
                    Write("x", lambda seen: seen["x"] + 100, show="x + 100"),
                    Commit(),
                ),
            },
            initial={"x": 500, "y": 500},
            order=("T1", "T2", "T2", "T2", "T2", "T2", "T1", "T1"),
            expected=Anomaly.G_SINGLE,
            invariant="Alice sees 1000 in all",
            violation="Alice saw 900 in all: 100 seem to have vanished",
            happened=_read_skew,
        ),
        Story(
            name="lost update",
            title="Two deposits at once",
            text=(
                "The account holds 100. T1 deposits 10 and T2 deposits 20, each by reading the balance and "
                "writing back the balance plus its deposit (a read-modify-write cycle)."
            ),
            ddia="DDIA ch. 7, 'Preventing Lost Updates', Figure 7-1",
            programs={
                "T1": (Read("x"), Write("x", lambda seen: seen["x"] + 10, show="x + 10"), Commit()),
                "T2": (Read("x"), Write("x", lambda seen: seen["x"] + 20, show="x + 20"), Commit()),
            },
            initial={"x": 100},
            order=("T1", "T2", "T1", "T2", "T1", "T2"),
            expected=Anomaly.LOST_UPDATE,
            invariant="the balance is 100 plus every committed deposit",
            violation="a committed deposit is missing from the balance",
            happened=_lost_update,
        ),
        Story(
            name="write skew",
            title="Two doctors go off call",
            text=(
                "Alice and Bob are both on call; at least one must stay. Each feels unwell, checks that two "
                "doctors are on call, and if so takes themself off call."
            ),
            ddia="DDIA ch. 7, 'Write Skew and Phantoms', Figure 7-8",
            programs={
                "T1": (Read("alice"), Read("bob"), Write("alice", "off", when=_both_on), Commit()),
                "T2": (Read("alice"), Read("bob"), Write("bob", "off", when=_both_on), Commit()),
            },
            initial={"alice": "on", "bob": "on"},
            order=("T1", "T1", "T2", "T2", "T1", "T2", "T1", "T2"),
            expected=Anomaly.G2_ITEM,
            invariant="at least one doctor stays on call",
            violation="both doctors went off call",
            happened=_write_skew,
        ),
        Story(
            name="phantom",
            title="Two people book the same room",
            text=(
                "Alice and Bob each want the meeting room at noon. Each looks for bookings at noon "
                "(every key starting with 'noon:'), finds none, and adds a booking of their own: a new "
                "key, which the other's search could not have locked, because it did not exist yet."
            ),
            ddia="DDIA ch. 7, 'Write Skew and Phantoms', 'Phantoms causing write skew'",
            programs={
                "T1": (Scan("noon:"), Write("noon:alice", "alice", when=_room_free), Commit()),
                "T2": (Scan("noon:"), Write("noon:bob", "bob", when=_room_free), Commit()),
            },
            initial={},
            order=("T1", "T2", "T1", "T2", "T1", "T2"),
            expected=Anomaly.G2,
            invariant="at most one booking at noon",
            violation="the room is booked twice at noon",
            happened=_phantom,
        ),
    )
}
"""The six stories, by name, in the order DDIA ch. 7 tells them."""

EXPECTED: dict[str, dict[Isolation, bool]] = {
    name: {level: i < weakest_safe for i, level in enumerate(Isolation)}
    for name, weakest_safe in (
        ("dirty write", 1),
        ("dirty read", 2),
        ("read skew", 3),
        ("lost update", 3),
        ("write skew", 4),
        ("phantom", 4),
    )
}
"""Does the story's own interleaving go wrong at each level? What DDIA ch. 7 and Berenson et al.
(1995, Table 4) say: read committed stops dirty writes and reads, snapshot isolation also read skew
and lost updates, only serializability stops write skew and phantoms. (No isolation allows all.)"""
