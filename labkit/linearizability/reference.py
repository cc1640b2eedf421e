"""The reference checker: the search of the papers, short enough to read in one go.

Wing & Gong ("Testing and verifying concurrent objects", JPDC 1993) decide
linearizability by building a sequential order one operation at a time. An
operation may go next only if no operation still waiting to be placed
surely ended before it was called (otherwise real-time order, Herlihy &
Wing 1990 §2, would break), and only if one copy of the object, in the
state reached so far, would give the output the client saw. When nothing
fits, the search backs up and tries another choice.

Lowe ("Testing for linearizability", CCPE 2017) adds one observation that
makes this practical: two ways of reaching the same *set* of placed
operations and the same *state* have the same future, so a (set, state)
pair that led nowhere once is never explored again.

An operation whose outcome is unknown (a timeout, a client that never came
back) may be placed anywhere after its call, or never: it does not stop
others from going first, and the search succeeds once only such operations
are left. Parts of the history that touch different objects (the keys of a
key-value store) are checked one by one: linearizability is local (Herlihy
& Wing, Theorem 1).

This is the definition, searched plainly: exponential on hard histories and
recursive, so meant for histories of a few dozen operations. The checker the
course uses, :func:`labkit.linearizability.check`, runs the same search with
the speed-ups and the time budget real histories need; the tests check that
both always agree.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from labkit.linearizability.history import UNKNOWN, Operation, as_history
from labkit.linearizability.models import Model, checked_model


def is_linearizable(history: Iterable[Operation], model: Model) -> bool:
    """True if ``history`` is linearizable with respect to ``model``; no budget, no explanation."""
    ops = as_history(history)
    checked_model(model)

    def search(left: frozenset[int], state: Hashable, dead_ends: set) -> bool:
        if all(ops[i].output is UNKNOWN for i in left):
            return True  # every operation the clients saw is placed; the others need not happen
        if (left, state) in dead_ends:
            return False  # Lowe: this set of operations left, in this state, led nowhere before
        for i in left:
            if any(ops[j].latest_effect < ops[i].call for j in left):
                continue  # some operation still left surely ended before i began: it goes first
            output, after = model.apply(state, ops[i].input)
            if ops[i].output is not UNKNOWN and output != ops[i].output:
                continue  # one copy would have answered differently here
            if search(left - {i}, after, dead_ends):
                return True
        dead_ends.add((left, state))
        return False

    parts: dict[Hashable, set[int]] = {}  # linearizability is local: each key on its own
    for i, op in enumerate(ops):
        parts.setdefault(model.partition(op.input), set()).add(i)
    return all(search(frozenset(ids), model.init(), set()) for ids in parts.values())
