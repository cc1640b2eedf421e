"""The argument checks of labkit.validation: what each accepts, what it refuses, and the message."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum
from fractions import Fraction

import numpy as np
import pytest

from labkit import validation as v


class Color(Enum):
    RED = "red"
    BLUE = "blue"


def test_wrong_type_is_both_type_error_and_value_error():
    with pytest.raises(TypeError):
        v.integer("n", "3")
    with pytest.raises(ValueError):
        v.integer("n", "3")
    # A value of the right type but out of range is a plain ValueError, not a TypeError.
    with pytest.raises(ValueError) as info:
        v.integer("n", 0, ge=1)
    assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: v.integer("n", 0, ge=1), "n must be an int >= 1, got 0"),
        (lambda: v.integer("n", 27, ge=1, le=26), "n must be an int from 1 to 26, got 27"),
        (lambda: v.integer("n", True, ge=0), "n must be an int >= 0, got True"),
        (lambda: v.integer("k", 1.0), "k must be an int, got 1.0"),
        (lambda: v.integer("k", "x", ge=1, none=True), "k must be an int >= 1 or None, got 'x'"),
        (
            lambda: v.integer("m", 0, ge=1, note="1 = no retries"),
            "m must be an int >= 1 (1 = no retries), got 0",
        ),
        (
            lambda: v.number("rate", math.nan, gt=0, unit="requests/s"),
            "rate must be a finite number of requests/s > 0, got nan",
        ),
        (lambda: v.number("t", math.inf, ge=0), "t must be a finite number >= 0, got inf"),
        (lambda: v.number("t", -1, ge=0, finite=False), "t must be a number >= 0, got -1"),
        (lambda: v.number("t", 10**400, ge=0), "t must be a finite number >= 0, got "),
        (lambda: v.number("x", 1.0, gt=0, lt=1), "x must be a finite number > 0 and < 1, got 1.0"),
        (lambda: v.number("x", "1", gt=0), "x must be a finite number > 0, got '1'"),
        (lambda: v.probability("p", 1.5), "p must be a probability between 0 and 1, got 1.5"),
        (lambda: v.probability("p", math.nan), "p must be a probability between 0 and 1, got nan"),
        (lambda: v.boolean("flag", 1), "flag must be True or False, got 1"),
        (lambda: v.string("name", ""), "name must be a non-empty str, got ''"),
        (lambda: v.string("name", 3), "name must be a non-empty str, got 3"),
        (lambda: v.instance("ring", [], dict), "ring must be a dict, got []"),
        (
            lambda: v.instance("ring", 1, (dict, list), none=True),
            "ring must be a dict or a list or None, got 1",
        ),
        (lambda: v.one_of("node", "n9", ["n1", "n2"]), "node must be one of n1, n2, got 'n9'"),
        (lambda: v.one_of("node", "n1", []), "node must be one of (none yet), got 'n1'"),
        (lambda: v.one_of("node", [1], {"a"}), "node must be one of a, got [1]"),
        (
            lambda: v.enum_member("color", "green", Color),
            "color must be a Color or one of 'red', 'blue', got 'green'",
        ),
        (
            lambda: v.non_empty("nodes", [], "list of node ids"),
            "nodes must be a non-empty list of node ids, got []",
        ),
        (lambda: v.non_empty("nodes", "abc"), "nodes must be a non-empty collection, got 'abc'"),
        (lambda: v.require(1 > 2, "lo", "<= hi (2)", 3), "lo must be <= hi (2), got 3"),
        (lambda: v.function("fn", 5), "fn must be a function, got 5"),
        (
            lambda: v.function("merge", "max", "a function (a, b) -> state", none=True),
            "merge must be a function (a, b) -> state or None, got 'max'",
        ),
        (
            lambda: v.collection("peers", "n1n2", "a list of server ids"),
            "peers must be a list of server ids, got 'n1n2'",
        ),
        (lambda: v.collection("ops", 3, "a list of Operation"), "ops must be a list of Operation, got 3"),
        (
            lambda: v.collection("start", {1, 2}, "a list of Action", Sequence),
            "start must be a list of Action, got {1, 2}",
        ),
    ],
)
def test_messages_name_the_argument_and_what_is_allowed(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value).startswith(message)


def test_accepted_values_come_back_normalised():
    assert v.integer("n", np.int64(3), ge=1) == 3 and type(v.integer("n", np.int64(3))) is int
    assert v.integer("n", None, none=True) is None
    assert v.number("x", 2) == 2.0 and type(v.number("x", 2)) is float
    assert v.number("x", Fraction(1, 4), gt=0) == 0.25
    assert v.number("x", np.float32(0.5), ge=0, le=1) == 0.5
    assert v.number("x", math.inf, gt=0, finite=False) == math.inf
    assert v.number("x", None, none=True) is None
    assert v.probability("p", 0) == 0.0 and v.probability("p", 1) == 1.0
    assert v.boolean("b", False) is False
    assert v.string("s", "", empty=True) == ""
    assert v.one_of("node", "n2", {"n1": 1, "n2": 2}) == "n2"
    assert (
        v.enum_member("c", "red", Color) is Color.RED and v.enum_member("c", Color.BLUE, Color) is Color.BLUE
    )
    assert v.non_empty("xs", (1,)) == (1,)
    assert v.function("f", len) is len and v.function("f", None, none=True) is None
    gen = iter(())
    assert v.collection("xs", gen, "an iterable") is gen and v.collection("xs", [1], "a list", Sequence) == [
        1
    ]
    v.require(True, "x", "anything", 0)


def test_bounds_are_inclusive_or_exclusive_as_named():
    assert v.number("x", 0, ge=0) == 0.0
    with pytest.raises(ValueError):
        v.number("x", 0, gt=0)
    assert v.integer("n", 5, le=5) == 5
    with pytest.raises(ValueError):
        v.integer("n", 5, lt=5)


def test_huge_values_make_short_messages():
    with pytest.raises(ValueError) as info:
        v.one_of("node", list(range(10**5)), ["a"])
    assert len(str(info.value)) < 200
    with pytest.raises(ValueError) as info:
        v.one_of("node", "x", [f"n{i}" for i in range(100)])
    assert str(info.value).startswith("node must be one of n0, n1,") and "..." in str(info.value)
