"""Vector clocks: partial order, semilattice merge, validation."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.clocks import Ordering, VectorClock

NODES = ["a", "b", "c"]
clocks = st.dictionaries(st.sampled_from(NODES), st.integers(0, 3)).map(VectorClock)
FAST = settings(max_examples=150, deadline=None)


def test_basic_happened_before_and_concurrency():
    a = VectorClock().increment("n1")
    b = a.increment("n2")
    c = a.increment("n1")
    assert a < b and a <= b and b > a and b >= a
    assert a.compare(b) is Ordering.BEFORE and b.compare(a) is Ordering.AFTER
    assert b.compare(c) is Ordering.CONCURRENT and b.concurrent_with(c)
    assert not (b < c) and not (c < b) and not (b <= c)
    assert b.merge(c) == VectorClock({"n1": 2, "n2": 1})
    assert b.merge(c).compare(b) is Ordering.AFTER


def test_zero_entries_are_canonical():
    assert VectorClock() == VectorClock({"x": 0})
    assert hash(VectorClock()) == hash(VectorClock({"x": 0}))
    assert VectorClock({"x": 0}).compare(VectorClock()) is Ordering.EQUAL
    assert len({VectorClock({"a": 1, "b": 2}), VectorClock({"b": 2, "a": 1})}) == 1


def test_immutable_and_readable():
    a = VectorClock({"n1": 2})
    b = a.increment("n1")
    assert a["n1"] == 2 and b["n1"] == 3 and a["zz"] == 0
    assert repr(b) == "VectorClock({'n1': 3})"
    assert repr(VectorClock()) == "VectorClock()"
    assert str(VectorClock({"b": 1, "a": 2})) == "[a:2 b:1]"
    assert eval(repr(b)) == b
    with pytest.raises(AttributeError):
        a.foo = 1  # slots: no new attributes


def test_in_asks_for_a_node_as_in_a_dict():
    # A learner's dict habit, `node in context`, must not be silently False (it compared with the pairs).
    vc = VectorClock({"n1": 2, "x": 0})
    assert "n1" in vc and "n2" not in vc and "x" not in vc  # a zero counter is an unseen node
    assert ("n1", 2) not in vc


@pytest.mark.parametrize(
    "arg, exc",
    [
        ({"a": -1}, ValueError),
        ({"a": 1.5}, TypeError),
        ({"a": True}, TypeError),
        ({1: 1}, TypeError),
        ({"": 1}, ValueError),
        ([("a", 1)], TypeError),
    ],
)
def test_bad_input(arg, exc):
    with pytest.raises(exc):
        VectorClock(arg)


def test_bad_operands():
    with pytest.raises(TypeError, match="node"):
        VectorClock().increment(3)
    with pytest.raises(TypeError, match="other"):
        VectorClock().merge({"a": 1})
    with pytest.raises(TypeError, match="other"):
        VectorClock().compare(None)
    with pytest.raises(TypeError):
        VectorClock() < 3  # noqa: B015


@FAST
@given(clocks)
def test_reflexive(a):
    assert a <= a and not a < a and a.compare(a) is Ordering.EQUAL


@FAST
@given(clocks, clocks)
def test_antisymmetric_and_compare_consistent(a, b):
    if a <= b and b <= a:
        assert a == b
    expected = {
        (True, True): Ordering.EQUAL,
        (True, False): Ordering.BEFORE,
        (False, True): Ordering.AFTER,
        (False, False): Ordering.CONCURRENT,
    }[(all(a[n] <= b[n] for n in NODES), all(b[n] <= a[n] for n in NODES))]
    assert a.compare(b) is expected
    # the opposite view agrees
    flip = {Ordering.BEFORE: Ordering.AFTER, Ordering.AFTER: Ordering.BEFORE}
    assert b.compare(a) is flip.get(expected, expected)


@FAST
@given(clocks, clocks, clocks)
def test_transitive(a, b, c):
    if a <= b and b <= c:
        assert a <= c
    if a < b and b <= c:
        assert a < c


@FAST
@given(clocks, clocks, clocks)
def test_merge_semilattice(a, b, c):
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    m = a.merge(b)
    assert a <= m and b <= m
    # least upper bound: anything above both is above the merge
    if a <= c and b <= c:
        assert m <= c


@FAST
@given(clocks, st.sampled_from(NODES))
def test_increment_is_strictly_later(a, n):
    b = a.increment(n)
    assert a < b and b[n] == a[n] + 1 and b.total() == a.total() + 1
