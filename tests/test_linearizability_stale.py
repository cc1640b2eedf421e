"""stale_read and stale_read_window find the evidence of a stale read among many operations."""

from __future__ import annotations

import pytest

from labkit.linearizability import (
    UNKNOWN,
    KVModel,
    Operation,
    RegisterModel,
    StaleRead,
    check,
    stale_read,
    stale_read_window,
)

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
    assert len(found.missed) == BEHIND
    r = ops[stale]
    for w in found.missed:  # every missed write returned before the read began and is not in its answer
        assert ops[w].ret < r.call and ops[w].input[2] not in r.output
    assert found.latest == max(found.missed, key=lambda i: ops[i].ret)
    text = found.describe(ops)
    assert (
        f"t={r.call:.3f} s" in text
        and f"t={ops[found.latest].ret:.3f} s" in text
        and "before it began" in text
    )


def test_the_window_holds_the_evidence_and_few_others():
    ops, stale = appends_with_one_stale_read()
    result = check(ops, KVModel())
    found = stale_read(result)
    window = stale_read_window(result, found, around=2)
    assert stale in window and found.latest in window
    assert len(window) <= 12 < len(ops) / 20  # a handful out of 300
    assert {ops[i].client for i in window} == {ops[stale].client, ops[found.latest].client}
    assert list(window) == sorted(window, key=lambda i: ops[i].call)
    assert set(stale_read_window(result, found, around=0)) == {stale, found.latest}


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
    # The same, in a history that fails for another reason (a read of a value written only later).
    future = [Operation("d", 0.0, 0.5, ("read",), 7), Operation("e", 6.0, 7.0, ("write", 7), None)]
    result = check([*h, rewrite, *future], RegisterModel())
    assert result.ok is False and stale_read(result) is None


def test_a_failure_that_is_not_a_stale_read_has_none():
    future = [
        Operation("a", 0.0, 1.0, ("read",), 7),  # sees a write that is called only later
        Operation("b", 2.0, 3.0, ("write", 7), None),
    ]
    assert stale_read(check(future, RegisterModel())) is None


def test_bad_arguments_are_refused():
    ok = check([Operation("a", 0.0, 1.0, ("write", 1), None)], RegisterModel())
    with pytest.raises(ValueError, match="not linearizable"):
        stale_read(ok)
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
    assert list(fig.layout.yaxis.ticktext) == [ops[stale].client, ops[stale_read(result).latest].client]
    assert "although" in fig.layout.title.text and f"t={ops[stale].call:.3f} s" in fig.layout.title.text
    read_bar = next(t for t in fig.data if t.name == "stale read").x
    lo, hi = fig.layout.xaxis.range
    assert read_bar[1] - read_bar[0] >= 0.01 * (hi - lo) - 1e-12  # wide enough to see
    with pytest.raises(ValueError, match="no stale read"):
        future = [Operation("a", 0, 1, ("read",), 7), Operation("b", 2, 3, ("write", 7))]
        stale_read_figure(check(future, RegisterModel()))


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
