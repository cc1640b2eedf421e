"""Histories for tests, benchmarks and exercises: random workloads, and one generator per anomaly.

* :func:`list_append_programs` / :func:`register_programs`: random transactions
  in the style of Elle's workloads (a few reads and appends/writes over a few
  keys, every element or value unique);
* :func:`random_run`: such programs run on the store at a level, with
  ``clients`` clients interleaved at random;
* :func:`serial_history`: the same, one transaction after another (never an anomaly);
* :data:`GENERATORS`: for each anomaly class, a function that builds a small
  history containing it (a cycle of ``n`` transactions over fresh keys, or the
  pattern itself), hidden among ``noise`` serial transactions on other keys.

Randomness comes only from the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from labkit import validation as valid
from labkit.txn.checker import Anomaly
from labkit.txn.history import History, Status, Txn, append, read, scan, write
from labkit.txn.run import Append, Commit, Read, Run, Step, Write, random_schedule, run, serial_order
from labkit.txn.store import Isolation, Rules

__all__ = [
    "list_append_programs",
    "register_programs",
    "random_run",
    "serial_history",
    "GENERATORS",
    "with_noise",
]


def list_append_programs(
    rng: random.Random,
    txns: int,
    keys: int = 5,
    max_ops: int = 4,
    p_read: float = 0.5,
    prefix: str | None = "k",
) -> dict[str, tuple[Step, ...]]:
    """``txns`` programs T1..Tn of 1..``max_ops`` reads and appends over ``keys`` keys.

    Keys are ``prefix`` + a number (``"k0"``), or plain ints with ``prefix=None``
    (rows of a database table). Appended elements are 1, 2, 3, ... per key, so
    each is unique.
    """
    valid.instance("rng", rng, random.Random)
    valid.integer("txns", txns, ge=1, le=1_000_000)
    valid.integer("keys", keys, ge=1)
    valid.integer("max_ops", max_ops, ge=1)
    valid.probability("p_read", p_read)
    if prefix is not None:
        valid.string("prefix", prefix, empty=True)
    counters = [0] * keys
    out = {}
    for i in range(1, txns + 1):
        steps: list[Step] = []
        for _ in range(rng.randint(1, max_ops)):
            k = rng.randrange(keys)
            key = k if prefix is None else f"{prefix}{k}"
            if rng.random() < p_read:
                steps.append(Read(key))
            else:
                counters[k] += 1
                steps.append(Append(key, counters[k]))
        out[f"T{i}"] = (*steps, Commit())
    return out


def register_programs(
    rng: random.Random, txns: int, keys: int = 5, max_ops: int = 4, p_read: float = 0.5, prefix: str = "r"
) -> dict[str, tuple[Step, ...]]:
    """As :func:`list_append_programs`, with register writes of unique values 1, 2, 3, ... per key."""
    programs = list_append_programs(rng, txns, keys, max_ops, p_read, prefix)
    return {
        name: tuple(Write(s.key, s.element) if isinstance(s, Append) else s for s in steps)
        for name, steps in programs.items()
    }


def random_run(
    rng: random.Random,
    isolation: Isolation | Rules,
    txns: int = 30,
    keys: int = 4,
    clients: int = 3,
    registers: bool = False,
    max_ops: int = 4,
    check_invariants: bool = False,
) -> Run:
    """Random programs run at ``isolation`` in a random interleaving of ``clients`` clients."""
    make = register_programs if registers else list_append_programs
    programs = make(rng, txns, keys, max_ops)
    who, order = random_schedule(rng, programs, clients)
    return run(programs, order, isolation, clients=who, check_invariants=check_invariants)


def serial_history(rng: random.Random, txns: int = 20, keys: int = 4, registers: bool = False) -> History:
    """A history of random transactions run one after another: serializable by construction."""
    make = register_programs if registers else list_append_programs
    programs = make(rng, txns, keys)
    return run(programs, serial_order(programs), Isolation.READ_COMMITTED).history


# ---------------------------------------------------------------------------
# One generator per anomaly. Each returns a history; names are C1..Cn (the
# pattern) and the keys are c0, c1, ... (lists) or v0, v1, ... (registers).
# ---------------------------------------------------------------------------
def _g0(rng: random.Random, n: int) -> list[Txn]:
    # Ci appends to c(i-1) second and to ci first: Ci -ww-> C(i+1) on ci, around the ring.
    txns = []
    for i in range(n):
        ops = [append(f"c{i}", f"a{i}"), append(f"c{(i - 1) % n}", f"b{(i - 1) % n}")]
        rng.shuffle(ops)
        txns.append(Txn(f"C{i + 1}", tuple(ops)))
    reads = tuple(read(f"c{i}", (f"a{i}", f"b{i}")) for i in range(n))
    return [*txns, Txn("Cend", reads)]


def _g1a(rng: random.Random, n: int) -> list[Txn]:
    return [Txn("C1", (append("c0", "x"),), Status.ABORTED), Txn("C2", (read("c0", ("x",)),))]


def _g1b(rng: random.Random, n: int) -> list[Txn]:
    return [Txn("C1", (append("c0", "x"), append("c0", "y"))), Txn("C2", (read("c0", ("x",)),))]


def _g1c(rng: random.Random, n: int) -> list[Txn]:
    # Ci appends to ci; C(i+1) reads it: Ci -wr-> C(i+1), around the ring.
    txns = []
    for i in range(n):
        prev = (i - 1) % n
        ops = [append(f"c{i}", f"a{i}"), read(f"c{prev}", (f"a{prev}",))]
        rng.shuffle(ops)
        txns.append(Txn(f"C{i + 1}", tuple(ops)))
    return txns


def _g_single(rng: random.Random, n: int) -> list[Txn]:
    # C1 reads c0 empty; C2 appends to c0 (C1 -rw-> C2); then wr edges back: C2 -> C3 -> ... -> Cn -> C1.
    txns = [Txn("C1", (read("c0", ()), read(f"c{n - 1}", (f"a{n - 1}",))))]
    for i in range(1, n):
        ops = [append(f"c{i}", f"a{i}")]
        if i == 1:
            ops.insert(0, append("c0", "a0"))
        else:
            ops.insert(0, read(f"c{i - 1}", (f"a{i - 1}",)))
        txns.append(Txn(f"C{i + 1}", tuple(ops)))
    return [*txns, Txn("Cend", (read("c0", ("a0",)),))]


def _g2_item(rng: random.Random, n: int) -> list[Txn]:
    # Ci reads ci empty and appends to c(i+1): C(i+1) -rw-> Ci... all rw, around the ring.
    txns = []
    for i in range(n):
        ops = [read(f"c{i}", ()), append(f"c{(i + 1) % n}", f"a{(i + 1) % n}")]
        txns.append(Txn(f"C{i + 1}", tuple(ops)))
    reads = tuple(read(f"c{i}", (f"a{i}",)) for i in range(n))
    return [*txns, Txn("Cend", reads)]


def _g2_predicate(rng: random.Random, n: int) -> list[Txn]:
    # Ci scans "pi:" and finds nothing; C(i-1) creates a key "pi:new": Ci -rw(predicate)-> C(i-1).
    txns = []
    for i in range(n):
        target = (i + 1) % n
        ops = [scan(f"p{i}:", {}), write(f"p{target}:from{i}", f"w{i}")]
        txns.append(Txn(f"C{i + 1}", tuple(ops)))
    return txns


def _lost_update(rng: random.Random, n: int) -> list[Txn]:
    txns = [Txn("C0", (write("v0", 0),))]
    for i in range(1, n + 1):
        txns.append(Txn(f"C{i}", (read("v0", 0), write("v0", i))))
    return txns


GENERATORS: dict[Anomaly, Callable[[random.Random, int], list[Txn]]] = {
    Anomaly.G0: _g0,
    Anomaly.G1A: _g1a,
    Anomaly.G1B: _g1b,
    Anomaly.G1C: _g1c,
    Anomaly.G_SINGLE: _g_single,
    Anomaly.G2_ITEM: _g2_item,
    Anomaly.G2: _g2_predicate,
    Anomaly.LOST_UPDATE: _lost_update,
}
"""anomaly -> ``f(rng, n)``: a history showing it; cyclic ones have a cycle of ``n >= 2`` transactions."""


def with_noise(rng: random.Random, anomaly: Anomaly, n: int = 2, noise: int = 10) -> History:
    """The generator's history for ``anomaly``, shuffled in among ``noise`` serial transactions.

    The noise runs serially on other keys, so it adds no anomaly of its own.
    """
    valid.instance("rng", rng, random.Random)
    valid.integer("n", n, ge=2, le=1000)
    valid.integer("noise", noise, ge=0, le=100_000)
    valid.one_of("anomaly", anomaly, GENERATORS)
    pattern = GENERATORS[anomaly](rng, n)
    background = list(serial_history(rng, noise, keys=3)) if noise else []
    background = [Txn(f"N{t.name}", t.ops, t.status) for t in background]
    out: list[Txn] = []
    # keep each part's own order; interleave the two lists at random
    i = j = 0
    while i < len(pattern) or j < len(background):
        if j >= len(background) or (i < len(pattern) and rng.random() < 0.5):
            out.append(pattern[i])
            i += 1
        else:
            out.append(background[j])
            j += 1
    return tuple(out)
