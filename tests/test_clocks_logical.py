"""Lamport clocks and hybrid logical clocks: rules, merges, validation."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit.clocks import HLC, LamportClock

FAST = settings(max_examples=150, deadline=None)
lamports = st.integers(0, 50).map(LamportClock)
times = st.floats(-5, 5, allow_nan=False)
hlcs = st.builds(HLC, st.sampled_from([-1.0, 0.0, 0.5, 2.0]), st.integers(0, 4))


def test_lamport_rules():
    a = LamportClock()
    assert a.tick() == LamportClock(1)
    assert LamportClock(3).receive(LamportClock(7)) == LamportClock(8)
    assert LamportClock(9).receive(2) == LamportClock(10)
    assert LamportClock(3).merge(5) == LamportClock(5)
    assert LamportClock(4).stamp("n2") < LamportClock(4).stamp("n3") < LamportClock(5).stamp("n1")
    assert str(LamportClock(4)) == "4"


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.0, TypeError), (True, TypeError)])
def test_lamport_bad_input(bad, exc):
    with pytest.raises(exc, match="time"):
        LamportClock(bad)
    with pytest.raises(exc, match="other"):
        LamportClock().receive(bad)


@FAST
@given(lamports, lamports, lamports)
def test_lamport_merge_semilattice(a, b, c):
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a
    assert a.receive(b) > a and a.receive(b) > b and a.tick() > a


def test_hlc_figure5_cases():
    # send/local: physical time ahead -> (pt, 0); behind -> (l, c + 1)
    assert HLC(1.0, 3).tick(2.0) == HLC(2.0, 0)
    assert HLC(5.0, 3).tick(2.0) == HLC(5.0, 4)
    # receive: the four cases of Figure 5
    assert HLC(1.0, 2).receive(HLC(1.0, 5), pt=0.5) == HLC(1.0, 6)  # l == l' == l.m
    assert HLC(3.0, 2).receive(HLC(1.0, 5), pt=0.5) == HLC(3.0, 3)  # l == l'
    assert HLC(1.0, 2).receive(HLC(3.0, 5), pt=0.5) == HLC(3.0, 6)  # l == l.m
    assert HLC(1.0, 2).receive(HLC(3.0, 5), pt=4.0) == HLC(4.0, 0)  # pt wins
    assert HLC() < HLC(-100.0, 0) and HLC().tick(-3.0) == HLC(-3.0, 0)
    assert str(HLC(1.0, 2)) == "(1.000, 2)"


@pytest.mark.parametrize(
    "pt, exc",
    [(math.nan, ValueError), (math.inf, ValueError), ("1", TypeError), (None, TypeError), (True, TypeError)],
)
def test_hlc_bad_physical_time(pt, exc):
    with pytest.raises(exc, match="pt"):
        HLC().tick(pt)
    with pytest.raises(exc, match="pt"):
        HLC().receive(HLC(), pt)


def test_hlc_bad_fields():
    with pytest.raises(ValueError, match="c must be an int >= 0"):
        HLC(0.0, -1)
    with pytest.raises(TypeError, match="c must be an int"):
        HLC(0.0, 1.5)
    with pytest.raises(ValueError):
        HLC(math.nan, 0)
    with pytest.raises(TypeError, match="msg"):
        HLC().receive((1.0, 0), 1.0)
    with pytest.raises(TypeError, match="other"):
        HLC().merge(3)


@FAST
@given(hlcs, hlcs, hlcs)
def test_hlc_merge_semilattice(a, b, c):
    assert a.merge(b) == b.merge(a)
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(a) == a


@FAST
@given(hlcs, hlcs, times)
def test_hlc_steps_move_forward_and_reach_physical_time(a, m, pt):
    t = a.tick(pt)
    r = a.receive(m, pt)
    assert t > a and r > a and r > m  # never backwards; receive is after the send
    assert t.l >= pt and r.l >= pt  # l is at least the physical clock
    assert t.l == max(a.l, pt) and r.l == max(a.l, m.l, pt)  # and takes no other value


def test_hlc_max_offset_refuses_messages_from_too_far_ahead():
    from labkit.clocks import ClockOffsetError

    assert HLC(1.0, 0).receive(HLC(1.5, 2), pt=1.0, max_offset=0.5) == HLC(1.5, 3)  # at the bound: accepted
    with pytest.raises(ClockOffsetError, match="max_offset"):
        HLC(1.0, 0).receive(HLC(1.6, 0), pt=1.0, max_offset=0.5)
    assert issubclass(ClockOffsetError, ValueError)


@pytest.mark.parametrize(
    "bad, exc", [(-0.1, ValueError), (math.inf, ValueError), (math.nan, ValueError), ("1", TypeError)]
)
def test_hlc_bad_max_offset(bad, exc):
    with pytest.raises(exc, match="max_offset"):
        HLC().receive(HLC(), 1.0, max_offset=bad)
