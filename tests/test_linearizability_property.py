"""The checker agrees with the definition, checked by brute force (hypothesis).

The brute-force checker below is the definition of Herlihy & Wing (1990, §2)
written out directly and independently of :mod:`labkit.linearizability.checker`:
a history is linearizable when, for some subset of the operations with unknown
outcome, some permutation of the operations that surely took effect plus that
subset respects real-time order (``a`` before ``b`` whenever ``a`` surely
ended before ``b`` began) and replays legally on one copy of the object. It
tries every subset and every permutation, so it only works for a handful of
operations; it uses a whole-store model for the key-value case, so it also
tests that checking keys independently (P-compositionality) is sound.

The reference checker (:mod:`labkit.linearizability.reference`, the search of
Wing & Gong with Lowe's memo and nothing else) is held to the brute force on
the same small histories, and is then the oracle for the fast checker on
histories far too long to brute-force.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.linearizability import (
    UNKNOWN,
    KVModel,
    Operation,
    RegisterModel,
    check,
    generate,
    is_linearizable,
    linearization_points,
)

REGISTER_VALUES = [None, 1, 2, 3]


def _register_step(state, input):
    if input[0] == "read":
        return state, state
    if input[0] == "write":
        return None, input[1]
    return (True, input[2]) if state == input[1] else (False, state)


def _kv_step(state, input):
    # The whole store as a sorted tuple of (key, value): no partitioning here.
    store = dict(state)
    kind, key = input[0], input[1]
    if kind == "get":
        return store.get(key, ""), state
    store[key] = input[2] if kind == "put" else store.get(key, "") + input[2]
    return None, tuple(sorted(store.items()))


def brute_force(history, step, init) -> bool:
    sure = [o for o in history if o.output is not UNKNOWN]
    maybe = [o for o in history if o.output is UNKNOWN]
    for k in range(len(maybe) + 1):
        for extra in itertools.combinations(maybe, k):
            for perm in itertools.permutations(sure + list(extra)):
                if _respects_real_time(perm) and _replays(perm, step, init):
                    return True
    return False


def _ends(o) -> float:
    return o.ret if o.output is not UNKNOWN else math.inf


def _respects_real_time(perm) -> bool:
    return all(not _ends(b) < a.call for x, a in enumerate(perm) for b in perm[x + 1 :])


def _replays(perm, step, init) -> bool:
    state = init
    for o in perm:
        out, state = step(state, o.input)
        if o.output is not UNKNOWN and out != o.output:
            return False
    return True


@st.composite
def timed_ops(draw, inputs, n_max):
    """Operations on a coarse time grid (so ties are common) with outputs still to choose."""
    n = draw(st.integers(0, n_max))
    ops = []
    for client in range(n):
        call = draw(st.integers(0, 8))
        fate = draw(st.sampled_from(["done", "done", "done", "timeout", "pending"]))
        ret = math.inf if fate == "pending" else call + draw(st.integers(0, 4))
        ops.append((client, call, ret, draw(inputs), fate))
    return ops


def _with_outputs(draw, raw, step, init, wrong_outputs):
    """Outputs from a real sequential run at random points in the intervals, then maybe corrupted."""
    points = [draw(st.floats(call, min(ret, 20.0))) for _, call, ret, _, _ in raw]
    state = init
    outputs = {}
    for k in sorted(range(len(raw)), key=lambda k: points[k]):
        outputs[k], state = step(state, raw[k][3])
    history = []
    for k, (client, call, ret, input, fate) in enumerate(raw):
        out = outputs[k] if fate == "done" else UNKNOWN
        if fate == "done" and draw(st.booleans()) and draw(st.booleans()):
            out = draw(wrong_outputs(input))
        history.append(Operation(client, float(call), float(ret), input, out))
    return history


register_inputs = st.one_of(
    st.just(("read",)),
    st.tuples(st.just("write"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("cas"), st.sampled_from(REGISTER_VALUES), st.sampled_from([1, 2, 3])),
)


def _register_wrong(input):
    if input[0] == "read":
        return st.sampled_from(REGISTER_VALUES)
    if input[0] == "cas":
        return st.booleans()
    return st.just(None)


@st.composite
def register_histories(draw):
    raw = draw(timed_ops(register_inputs, 7))
    return _with_outputs(draw, raw, _register_step, None, _register_wrong)


kv_inputs = st.one_of(
    st.tuples(st.just("get"), st.sampled_from("xy")),
    st.tuples(st.sampled_from(["put", "append"]), st.sampled_from("xy"), st.sampled_from("ab")),
)


def _kv_wrong(input):
    if input[0] == "get":
        return st.sampled_from(["", "a", "b", "ab", "ba", "aa"])
    return st.just(None)


@st.composite
def kv_histories(draw):
    raw = draw(timed_ops(kv_inputs, 6))
    return _with_outputs(draw, raw, _kv_step, (), _kv_wrong)


SETTINGS = settings(
    max_examples=1000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def _assert_agrees(history, model, step, init):
    result = check(history, model, timeout=None)
    expected = brute_force(history, step, init)
    assert result.ok is expected, (history, result.explanation)
    assert is_linearizable(history, model) is expected, history
    if expected:
        # The witness itself is a valid linearization.
        order = result.linearization
        points = linearization_points(result)
        assert _respects_real_time([history[i] for i in order])
        assert _replays([history[i] for i in order], step, init)
        assert all(history[i].call <= points[i] <= _ends(history[i]) for i in order)
        assert {i for i, o in enumerate(history) if o.output is not UNKNOWN} <= set(order)
    return expected


@SETTINGS
@given(register_histories())
def test_register_checker_agrees_with_brute_force(history):
    _assert_agrees(history, RegisterModel(), _register_step, None)


@SETTINGS
@given(kv_histories())
def test_kv_checker_agrees_with_brute_force(history):
    _assert_agrees(history, KVModel(), _kv_step, ())


def test_generators_produce_both_verdicts():
    """Guard against a generator that only ever makes one kind of history."""
    seen = set()

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(register_histories())
    def collect(history):
        seen.add(brute_force(history, _register_step, None))

    collect()
    assert seen == {True, False}


@st.composite
def generated_histories(draw):
    """Histories of a correct register or key-value store (labkit.linearizability.generate), 10 to 40
    operations with timeouts and operations that never return; often one read is then made to return
    a value written somewhere else in the history (perhaps by a write called only after it returned)."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    kv = draw(st.booleans())
    history = generate.random_history(
        rng,
        model=KVModel() if kv else RegisterModel(),
        inputs=generate.kv_inputs(keys=2) if kv else None,
        clients=draw(st.integers(2, 6)),
        ops=draw(st.integers(10, 40)),
        p_pending=draw(st.sampled_from([0.0, 0.05, 0.15])),
        p_timeout=draw(st.sampled_from([0.0, 0.05, 0.15])),
    )
    reads = [i for i, op in enumerate(history) if op.output is not UNKNOWN and op.input[0] in ("read", "get")]
    written = sorted({op.input[-1] for op in history if op.input[0] in ("write", "put")}, key=repr)
    if reads and written and draw(st.booleans()):
        i = draw(st.sampled_from(reads))
        history[i] = replace(history[i], output=draw(st.sampled_from(written)))
    return history, KVModel() if kv else RegisterModel()


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(generated_histories())
def test_checker_agrees_with_the_reference_on_longer_histories(case):
    history, model = case
    assert check(history, model, timeout=None).ok is is_linearizable(history, model), history


def test_the_reference_sees_both_verdicts_on_generated_histories():
    """Guard: the generated cases above are not all of one kind."""
    seen = set()

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(generated_histories())
    def collect(case):
        seen.add(is_linearizable(*case))

    collect()
    assert seen == {True, False}
