"""Benchmark labkit.crdt: merging an OR-set and an RGA text of 10,000 elements.

    .venv/bin/python benchmarks/bench_crdt.py [--quick]

Two replicas share 10,000 elements, then diverge while partitioned: each
removes 1,000 of the shared elements and adds 1,000 of its own (in the text:
deletes 1,000 characters and types 1,000, in runs of 20 at random places).
The table gives, for merging the two replicas:

* time: the best of several runs of ``a.merge(b)`` and, for the text, of
  ``a.merge(b).text`` (the merge, then reading the merged text, which orders
  the elements again);
* metadata: what the merged state stores per element it shows (tagged adds and
  tombstones for the set; elements, parents and tombstones for the text),
  counted in entries and in bytes (the pickled state, a stand-in for what
  replicas send each other).

The floor is a plain Python ``set`` (``a | b``) and ``list`` (``"".join``) holding
only the elements the merged replica shows: no tags, no ids, no tombstones,
and no way to merge concurrent changes correctly.
"""

from __future__ import annotations

import argparse
import pickle
import random
import time
from collections.abc import Callable

from labkit.crdt import RGA, ORSet

N = 10_000
CHANGES = 1_000


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """The best of ``repeat`` timed calls, in seconds (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def size(obj: object) -> int:
    return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def diverged_sets(rng: random.Random) -> tuple[ORSet, ORSet]:
    """Two OR-set replicas: 10,000 shared elements, then 1,000 removes and 1,000 adds on each side."""
    shared = ORSet(adds=[(f"item-{i}", ("A", i + 1)) for i in range(N)])
    a, b = shared, shared
    for side, replica in ((0, "A"), (1, "B")):
        state = (a, b)[side]
        for i in rng.sample(range(N), CHANGES):
            state = state.remove(f"item-{i}")
        for i in range(CHANGES):
            state = state.add(f"{replica}-new-{i}", replica)
        a, b = (state, b) if side == 0 else (a, state)
    return a, b


def diverged_texts(rng: random.Random) -> tuple[RGA, RGA]:
    """Two RGA replicas of a 10,000-character text; each deletes 1,000 and types 1,000 characters."""
    doc = RGA()
    while len(doc) < N:  # typed in runs of 100 characters at random places
        doc = doc.insert(rng.randint(0, len(doc)), "".join(rng.choices("abcdefgh ", k=100)), "A")
    sides = []
    for replica in ("A", "B"):
        state = doc
        for _ in range(CHANGES // 20):
            at = rng.randrange(len(state) - 20)
            state = state.delete(at, 20)
            state = state.insert(rng.randint(0, len(state)), "".join(rng.choices("XYZ", k=20)), replica)
        sides.append(state)
    return sides[0], sides[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    repeat = 3 if args.quick else 10
    rng = random.Random(20)

    a, b = diverged_sets(rng)
    merged = a.merge(b)
    assert merged == b.merge(a) and merged.merge(a) == merged
    shown = merged.value
    plain_a, plain_b = set(a.value), set(b.value)
    assert (plain_a | plain_b) >= shown  # the plain union brings back what either side removed
    set_meta = merged.metadata()
    rows = [
        (
            "OR-set (labkit.crdt.ORSet)",
            len(shown),
            best_time(lambda: a.merge(b), repeat),
            (set_meta["tagged adds"] + set_meta["tombstones"]) / len(shown),
            size((merged.adds, merged.tombstones)) / len(shown),
            f"{set_meta['tagged adds']:,} tagged adds, {set_meta['tombstones']:,} tombstones",
        ),
        (
            "floor: set, a | b",
            len(shown),
            best_time(lambda: plain_a | plain_b, repeat),
            1.0,
            size(set(shown)) / len(shown),
            "elements only",
        ),
    ]

    ta, tb = diverged_texts(rng)
    text = ta.merge(tb)
    assert text.text == tb.merge(ta).text
    chars = list(text.text)
    text_meta = text.metadata()
    rows += [
        (
            "RGA text (labkit.crdt.RGA), merge",
            len(text),
            best_time(lambda: ta.merge(tb), repeat),
            (text_meta["elements"] + text_meta["tombstones"]) / len(text),
            size((text.elements, text.removed)) / len(text),
            f"{text_meta['elements']:,} elements, {text_meta['tombstones']:,} tombstones",
        ),
        (
            "RGA text, merge + read the text",
            len(text),
            best_time(lambda: ta.merge(tb).text, repeat),
            None,
            None,
            "the order is rebuilt from the tree",
        ),
        (
            'floor: list, "".join',
            len(chars),
            best_time(lambda: "".join(chars), repeat),
            1.0,
            size(chars) / len(chars),
            "characters only",
        ),
    ]

    print(
        f"Merging two replicas of {N:,} elements that diverged by {CHANGES:,} removes and {CHANGES:,} adds each"
    )
    print(f"(best of {repeat} runs)\n")
    head = (
        f"{'':36} {'shown':>7} {'time ms':>9} {'ns/elem':>8} {'entries/elem':>13} {'bytes/elem':>11}  stored"
    )
    print(head)
    print("-" * len(head))
    for name, shown_n, seconds, entries, nbytes, note in rows:
        e = f"{entries:.2f}" if entries is not None else "-"
        nb = f"{nbytes:.1f}" if nbytes is not None else "-"
        per = seconds * 1e9 / shown_n
        print(f"{name:36} {shown_n:>7,} {seconds * 1e3:>9.2f} {per:>8.0f} {e:>13} {nb:>11}  {note}")


if __name__ == "__main__":
    main()
