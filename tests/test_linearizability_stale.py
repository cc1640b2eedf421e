"""stale_read and stale_read_window find the evidence of a stale, non-monotonic or future read
among many operations; whatever they report is a real violation (checked against check())."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from labkit.linearizability import (
    UNKNOWN,
    Anomaly,
    KVModel,
    Operation,
    RegisterModel,
    StaleRead,
    check,
    generate,
    stale_read,
    stale_read_window,
)
from labkit.linearizability.stale import _find

WRITERS, READERS = ("w1", "w2", "w3"), ("r1", "r2", "r3")
STALE_AT, BEHIND = 200, 5  # the read at slot 200 misses the last 5 appends


def appends_with_one_stale_read(n: int = 300) -> tuple[list[Operation], int]:
    """Six clients take turns on key "k" (writers append, readers read the true value), each
    operation slightly overlapping the next; the read at slot STALE_AT sees BEHIND appends too few.
    Returns the history and the stale read's id."""
    ops, log, stale = [], [], -1
    for t in range(n):
        client = (WRITERS + READERS)[t % 6]
        call, ret = 0.01 * t, 0.01 * t + 0.012  # overlaps the next operation's call
        if client.startswith("w"):
            v = f"{client}.{t};"
            ops.append(Operation(client, call, ret, ("append", "k", v), None))
            log.append((ret, v))
        else:
            done = [v for r, v in log if r < call]
            if t >= STALE_AT and stale < 0:
                stale, done = len(ops), done[:-BEHIND]
            ops.append(Operation(client, call, ret, ("get", "k"), "".join(done)))
    return ops, stale


def test_the_stale_read_is_found_among_hundreds_of_operations():
    ops, stale = appends_with_one_stale_read()
    result = check(ops, KVModel())
    assert result.ok is False
    found = stale_read(result)
    assert isinstance(found, StaleRead) and found.read == stale
    assert found.kind is Anomaly.STALE_READ and len(found.evidence) == BEHIND
    r = ops[stale]
    for w in found.evidence:  # every missed write returned before the read began and is not in its answer
        assert ops[w].ret < r.call and ops[w].input[2] not in r.output
    assert found.nearest == max(found.evidence, key=lambda i: ops[i].ret)
    text = found.describe(ops)
    assert (
        f"t={r.call:.3f} s" in text
        and f"t={ops[found.nearest].ret:.3f} s" in text
        and "before it began" in text
    )


def test_the_window_holds_the_evidence_and_few_others():
    ops, stale = appends_with_one_stale_read()
    result = check(ops, KVModel())
    found = stale_read(result)
    window = stale_read_window(result, found, around=2)
    assert stale in window and found.nearest in window
    assert len(window) <= 12 < len(ops) / 20  # a handful out of 300
    assert {ops[i].client for i in window} == {ops[stale].client, ops[found.nearest].client}
    assert list(window) == sorted(window, key=lambda i: ops[i].call)
    assert set(stale_read_window(result, found, around=0)) == {stale, found.nearest}


def test_a_register_read_of_an_overwritten_value_is_stale_but_not_one_that_may_be_rewritten():
    h = [
        Operation("a", 0.0, 1.0, ("write", 1), None),
        Operation("a", 2.0, 3.0, ("write", 2), None),
        Operation("b", 4.0, 5.0, ("read",), 1),
    ]
    found = stale_read(check(h, RegisterModel()))
    assert found == StaleRead(2, (1,))
    # Value 1 may be written again (an unknown outcome, called before the read): not evidence of staleness.
    rewrite = Operation("c", 2.5, 3.5, ("write", 1), UNKNOWN)
    assert check([*h, rewrite], RegisterModel()).ok is True
    # The same, in a history that fails for another reason (a read of a value written only later):
    # that is what is reported, not the read of 1.
    future = [Operation("d", 0.0, 0.5, ("read",), 7), Operation("e", 6.0, 7.0, ("write", 7), None)]
    result = check([*h, rewrite, *future], RegisterModel())
    assert result.ok is False and stale_read(result) == StaleRead(4, (5,), Anomaly.FUTURE_READ)


# One small handmade history per class, and what must be found in it.
W, R = "write", "read"
CASES = {
    "stale append": (
        KVModel(),
        [
            Operation("w", 0, 1, ("append", "k", "a;"), None),
            Operation("r", 2, 3, ("get", "k"), ""),  # a; returned before the read began
        ],
        StaleRead(1, (0,), Anomaly.STALE_READ),
    ),
    "stale register, overwritten by a cas": (
        RegisterModel(initial=0),
        [
            Operation("w", 0, 1, ("cas", 0, 5), True),
            Operation("r", 2, 3, ("read",), 0),
        ],
        StaleRead(1, (0,), Anomaly.STALE_READ),
    ),
    "append read goes back to a strict prefix": (
        KVModel(),
        [
            Operation("w", 0, 1, ("append", "k", "a;"), None),
            Operation("w", 2, 10, ("append", "k", "b;"), None),  # still running: nobody missed it yet
            Operation("r1", 3, 4, ("get", "k"), "a;b;"),
            Operation("r2", 5, 6, ("get", "k"), "a;"),  # began after r1 had seen b;
        ],
        StaleRead(3, (2,), Anomaly.NON_MONOTONIC_READ),
    ),
    "register read goes back to an overwritten value": (
        RegisterModel(),
        [
            Operation("w1", 0, 1, (W, 1), None),
            Operation("w2", 0, 10, (W, 2), None),
            Operation("r1", 2, 3, (R,), 2),  # 2 overwrote 1 by now, and 1 is never written again
            Operation("r2", 4, 5, (R,), 1),
        ],
        StaleRead(3, (2,), Anomaly.NON_MONOTONIC_READ),
    ),
    "register read goes back to the initial value": (
        RegisterModel(),
        [
            Operation("w", 0, 10, (W, 1), None),  # still running: nobody missed it yet
            Operation("r1", 1, 2, (R,), 1),
            Operation("r2", 3, 4, (R,), None),  # nothing can write None again
        ],
        StaleRead(2, (1,), Anomaly.NON_MONOTONIC_READ),
    ),
    "register read of a value written only later": (
        RegisterModel(),
        [Operation("a", 0, 1, (R,), 7), Operation("b", 2, 3, (W, 7), None)],
        StaleRead(0, (1,), Anomaly.FUTURE_READ),
    ),
    "append read of a value appended only later": (
        KVModel(),
        [Operation("a", 0, 1, ("get", "k"), "x;"), Operation("b", 2, 3, ("append", "k", "x;"), UNKNOWN)],
        StaleRead(0, (1,), Anomaly.FUTURE_READ),
    ),
    "a value nobody wrote": (
        RegisterModel(),
        [Operation("a", 0, 1, (W, 1), None), Operation("b", 2, 3, (R,), 9)],
        StaleRead(1, (), Anomaly.FUTURE_READ),
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_each_class_is_found_on_a_small_history(name):
    model, h, expected = CASES[name]
    result = check(h, model)
    assert result.ok is False
    assert stale_read(result) == expected
    text = expected.describe(h)
    assert text.startswith(f"{h[expected.read].client}'s read at t=")
    if expected.kind is Anomaly.NON_MONOTONIC_READ:
        ending = {"append": "went backwards", "initial": "went back to the initial one"}
        assert text.endswith(
            next((v for k, v in ending.items() if k in name), "write returned at t=1.000 s)")
        )
    if expected.nearest is not None:
        assert f"by {h[expected.nearest].client}" in text or f"{h[expected.nearest].client}'s read" in text


def test_a_linearizable_history_has_none():
    h = [
        Operation("w", 0, 1, ("append", "k", "a;"), None),
        Operation("r1", 0.5, 3, ("get", "k"), ""),  # concurrent with the append: may miss it
        Operation("r2", 2, 3, ("get", "k"), "a;"),
        Operation("w", 4, 10, ("put", "k", ""), None),  # a put may take a; out again
    ]
    later = [
        Operation("r3", 5, 6, ("get", "k"), ""),  # so this is not stale ...
        Operation("r4", 7, 8, ("get", "k"), "a;"),  # ... nor this going back (the put comes after it)
    ]
    for extra in later:
        result = check([*h, extra], KVModel())
        assert result.ok is True and stale_read(result) is None
    # Both together are not: once r3 saw the put's "", nothing could append a; again before r4.
    assert stale_read(check([*h, *later], KVModel())) == StaleRead(5, (4,), Anomaly.NON_MONOTONIC_READ)


OPPOSITE_ORDERS = (
    RegisterModel(),
    [
        Operation("w1", 0, 10, (W, 1), None),
        Operation("w2", 0, 10, (W, 2), None),
        Operation("a", 1, 2, (R,), 1),
        Operation("b", 1, 2, (R,), 2),
        Operation("a", 3, 4, (R,), 2),
        Operation("b", 3, 4, (R,), 1),
    ],
    None,
)


@pytest.mark.parametrize(
    "model, h",
    [
        (KVModel(), [
            Operation("w", 0, 1, ("append", "k", "a;"), None),
            Operation("w2", 0.2, 1.2, ("append", "k", "c;"), None),
            Operation("p", 2, 3, ("put", "k", "b;"), None),
            Operation("r", 4, 5, ("get", "k"), "b;"),  # fine: the put took a; and c; out
            Operation("f", -2, -1, ("get", "k"), "x;"),  # the real violation
            Operation("x", 8, 9, ("append", "k", "x;"), None),
        ]),
        (RegisterModel(), [
            Operation("a", 0, 1, (W, 1), None),
            Operation("b", 2, 3, (W, 3), None),
            Operation("c", 4, 5, ("cas", 3, 2), True),
            Operation("r", 6, 7, (R,), 2),  # fine: the cas wrote 2
            Operation("f", -2, -1, (R,), 9),  # the real violation
            Operation("g", 12, 13, (W, 9), None),
        ]),
    ],
    ids=["a put erases appends", "a cas writes the value"],
)  # fmt: skip
def test_a_correct_read_is_not_blamed_when_a_put_or_cas_explains_it(model, h):
    """The first version of the stale rule knew only write/put values: it reported read #3 of both."""
    assert stale_read(check(h, model)) == StaleRead(4, (5,), Anomaly.FUTURE_READ)


def test_concurrent_writes_seen_in_opposite_orders_need_a_search_and_have_none():
    """Each pair of operations is fine on its own; only the search sees that no one order fits both clients."""
    model, h, _ = OPPOSITE_ORDERS
    result = check(h, model)
    assert result.ok is False and stale_read(result) is None


def test_an_undecided_check_can_still_be_explained():
    ops, stale = appends_with_one_stale_read()
    result = check(ops, KVModel(), max_steps=1)
    assert result.ok is None
    assert stale_read(result).read == stale  # the rule proves what the search could not finish


def test_other_models_get_none():
    class Counter(RegisterModel):  # reads and writes, plus an operation the rules know nothing of
        def apply(self, state, input):
            return (None, state + 1) if input[0] == "incr" else super().apply(state, input)

    h = [Operation("a", 0, 1, ("incr",), None), Operation("b", 2, 3, (R,), 0)]
    result = check(h, Counter(initial=0))
    assert result.ok is False and stale_read(result) is None


def test_bad_arguments_are_refused():
    ok = check([Operation("a", 0.0, 1.0, ("write", 1), None)], RegisterModel())
    assert stale_read(ok) is None
    with pytest.raises(TypeError, match="result"):
        stale_read([])
    ops, _ = appends_with_one_stale_read()
    result = check(ops, KVModel())
    found = stale_read(result)
    with pytest.raises(ValueError, match="around"):
        stale_read_window(result, found, around=-1)
    with pytest.raises(ValueError, match="stale"):
        stale_read_window(result, StaleRead(found.read, (10_000,)))


def test_the_figure_draws_only_the_evidence_and_says_what_is_wrong():
    pytest.importorskip("plotly")
    from labkit.viz.linearizability import history_figure, stale_read_figure

    ops, stale = appends_with_one_stale_read()
    result = check(ops, KVModel())
    fig = stale_read_figure(result)
    bars = {t.name: sum(x is None for x in t.x) for t in fig.data if t.mode == "lines+markers" and t.x}
    assert bars["stale read"] == 1 and bars["write it missed"] >= 1
    assert sum(bars.values()) <= 12  # not the 300 operations history_figure draws
    assert len(history_figure(result).data[0].x) // 3 > 100
    assert list(fig.layout.yaxis.ticktext) == [ops[stale].client, ops[stale_read(result).nearest].client]
    title = fig.layout.title.text
    assert (
        title.startswith("<b>Stale read</b>: ")
        and "although" in title
        and f"t={ops[stale].call:.3f} s" in title
    )
    read_bar = next(t for t in fig.data if t.name == "stale read").x
    lo, hi = fig.layout.xaxis.range
    assert read_bar[1] - read_bar[0] >= 0.01 * (hi - lo) - 1e-12  # wide enough to see
    with pytest.raises(ValueError, match="no stale, non-monotonic or future read.*history_figure"):
        _, h, _ = OPPOSITE_ORDERS
        stale_read_figure(check(h, RegisterModel()))


@pytest.mark.parametrize(
    "name, bad, why, marks",
    [
        ("append read goes back to a strict prefix", "non-monotonic read", "earlier read",
         ["earlier read returned", "read called"]),
        ("register read of a value written only later", "read from the future", "write of its value",
         ["read returned", "write called"]),
        ("a value nobody wrote", "read of a value nobody wrote", None, []),
    ],
)  # fmt: skip
def test_the_figure_names_each_class_and_marks_its_two_moments(name, bad, why, marks):
    pytest.importorskip("plotly")
    from labkit.viz.linearizability import stale_read_figure

    model, h, expected = CASES[name]
    fig = stale_read_figure(check(h, model))
    drawn = {t.name for t in fig.data if t.mode == "lines+markers" and t.x}
    assert bad in drawn and (why in drawn if why else len(drawn) == 1)
    assert fig.layout.title.text.startswith(f"<b>{bad.capitalize()}</b>: ")
    assert [a.text for a in fig.layout.annotations] == marks


def test_close_times_are_printed_apart_and_the_read_that_missed_most_is_chosen():
    h = [
        Operation("a", 0.0, 1.0, ("append", "k", "x;"), None),
        Operation("a", 2.0, 3.0001, ("append", "k", "y;"), None),
        Operation("b", 1.5, 1.6, ("get", "k"), ""),  # missed x only
        Operation("c", 3.0004, 3.1, ("get", "k"), "x;"),  # missed y only, 0.3 ms after it returned
        Operation("d", 4.0, 4.1, ("get", "k"), ""),  # missed both
    ]
    result = check(h, KVModel())
    found = stale_read(result)
    assert found == StaleRead(4, (0, 1))
    c = StaleRead(3, (1,)).describe(h)
    assert "t=3.0004 s" in c and "t=3.0001 s" in c


# ---------------------------------------------------------------------------
# Property: whatever the rules report is a real violation (check() agrees),
# and it involves the one read that was corrupted.
# ---------------------------------------------------------------------------
def _distinct_register(rng):
    """Register inputs with every written value new (cas included), like the workloads of labkit."""
    count = iter(range(10**9))
    inner = generate.register_inputs(values=3)

    def make(r):
        kind = inner(r)
        if kind[0] == "write":
            return ("write", next(count))
        return kind if kind[0] == "read" else ("cas", r.randrange(3), next(count))

    return make


def _distinct_kv(rng):
    """Appends of new values, a few puts, on 3 keys."""
    count = iter(range(10**9))

    def make(r):
        key, u = f"k{r.randrange(3)}", r.random()
        if u < 0.5:
            return ("get", key)
        return ("put" if u < 0.6 else "append", key, f"v{next(count)};")

    return make


FAMILIES = {  # model, inputs (None: generate's defaults, with many repeated values)
    "register": (RegisterModel, None),
    "register, distinct values": (RegisterModel, _distinct_register),
    "kv": (KVModel, None),
    "kv, distinct values": (KVModel, _distinct_kv),
}


def _parts(ops, model):
    parts = defaultdict(list)
    for i, op in enumerate(ops):
        parts[model.partition(op.input)].append(i)
    return parts.values()


def run_family(name: str, seeds: range) -> Counter:
    """For each seed: a linearizable history (the rules must find nothing in it) and a copy with one
    read corrupted (whatever the rules find there must involve that read, and check() must reject it)."""
    make_model, inputs = FAMILIES[name]
    counts: Counter = Counter()
    for seed in seeds:
        rng = random.Random(seed)
        model = make_model()
        h = generate.random_history(
            rng, model=model, inputs=None if inputs is None else inputs(rng),
            clients=4, ops=24, p_timeout=0.1, p_pending=0.05,
        )  # fmt: skip
        for ids in _parts(h, model):
            assert _find(tuple(h), ids, model) is None, (
                f"{name} seed {seed}: reported in a linearizable history"
            )
        bad = tuple(generate.corrupt(rng, h))
        (changed,) = [i for i in range(len(h)) if bad[i] != h[i]] or [None]
        result = check(bad, model)
        counts["not linearizable"] += result.ok is False
        for ids in _parts(bad, model):
            found = _find(bad, ids, model)
            if found is not None:
                assert result.ok is False, f"{name} seed {seed}: {found} in a linearizable history"
                assert changed in (found.read, *found.evidence), (
                    f"{name} seed {seed}: {found} misses #{changed}"
                )
                counts[found.kind] += 1
        if result.ok is False:
            counts["explained"] += stale_read(result) is not None
    return counts


@pytest.mark.parametrize("name", FAMILIES)
def test_what_the_rules_report_is_a_real_violation_on_random_histories(name):
    counts = run_family(name, range(500))
    assert counts["explained"] > 0.3 * counts["not linearizable"] > 0
    if "distinct" in name:  # every class shows up (so the property above is not vacuous)
        assert all(counts[kind] > 0 for kind in Anomaly), counts


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_what_the_rules_report_is_a_real_violation_on_many_random_histories(name):
    run_family(name, range(500, 20_500))


@pytest.mark.parametrize(
    "plant, family",
    [
        ("only_appends_after", "kv"),  # forgets that a put may take an append out again
        ("nothing_sets_after", "register"),  # forgets that a timed-out write may still take effect
    ],
)
def test_the_property_catches_a_rule_that_forgets_an_operation(monkeypatch, plant, family):
    from labkit.linearizability import stale

    if plant == "only_appends_after":
        monkeypatch.setattr(stale._Part, plant, lambda self, t: True)
    else:
        monkeypatch.setattr(
            stale._Part, plant, lambda self, r, t: all(self.ops[i].ret < t for i in self.setters(r))
        )
    with pytest.raises(AssertionError, match="linearizable history|misses"):
        run_family(family, range(300))
