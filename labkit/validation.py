"""Argument checks every public function and constructor of labkit uses.

One rule, stated once (DESIGN.md, house rule 6): bad input is refused at the door with an
error that names the argument, says what is allowed, and shows what was given::

    rate must be a finite number of requests/s > 0, got nan

Import it as ``valid``. Each check takes the argument's name first and returns the value, normalised
(``int``/``float``), so a constructor states its rules in a line each::

    self.rate = valid.number("rate", rate, gt=0, unit="requests/s")
    self.n = valid.integer("n", n, ge=1, le=len(nodes))

A value of the wrong *type* raises :class:`ArgumentTypeError`, which is both a ``TypeError`` and a
``ValueError``: "wrong kind of thing" is a type error, and a caller (a widget showing a message, a
form) that catches ``ValueError`` for "not allowed" still catches it. A value of the right type
outside the allowed range raises ``ValueError``.

``bool`` is never accepted as a number (``True`` is an ``int`` in Python, but ``rate=True`` is a
mistake), and numbers are finite unless a check says otherwise: ``nan`` and ``inf`` are how an
unbounded loop or an overflow gets in.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Callable, Collection, Iterable
from enum import Enum
from typing import Any, TypeVar

__all__ = [
    "ArgumentTypeError",
    "boolean",
    "collection",
    "function",
    "integer",
    "instance",
    "non_empty",
    "number",
    "one_of",
    "partition_groups",
    "enum_member",
    "hashable",
    "probability",
    "require",
    "shown",
    "string",
]

E = TypeVar("E", bound=Enum)

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 6


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type: a ``TypeError`` that ``except ValueError`` also catches."""


def shown(value: Any) -> str:
    """``repr(value)``, shortened so an error message about a huge list stays one line."""
    return _repr.repr(value)


def _fail(name: str, what: str, value: Any, error: type[Exception] = ValueError) -> Exception:
    return error(f"{name} must be {what}, got {shown(value)}")


def _a(noun: str) -> str:
    """``noun`` with its indefinite article: "a Mapping", "an Order"."""
    return f"{'an' if noun[:1] in 'AEIOU' else 'a'} {noun}"


def _num(x: float) -> str:
    """A bound as a person writes it: 500 rather than 500.0."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return str(x)


def _bounds(ge: float | None, gt: float | None, le: float | None, lt: float | None) -> str:
    low = f">= {_num(ge)}" if ge is not None else f"> {_num(gt)}" if gt is not None else ""
    high = f"<= {_num(le)}" if le is not None else f"< {_num(lt)}" if lt is not None else ""
    if ge is not None and le is not None:
        return f"from {_num(ge)} to {_num(le)}"
    return " and ".join(b for b in (low, high) if b)


def _describe(kind: str, bounds: str, none: bool, note: str | None) -> str:
    what = f"{kind} {bounds}".rstrip()
    if none:
        what += " or None"
    return f"{what} ({note})" if note else what


def _in_range(x: float, ge: float | None, gt: float | None, le: float | None, lt: float | None) -> bool:
    return (
        (ge is None or x >= ge)
        and (gt is None or x > gt)
        and (le is None or x <= le)
        and (lt is None or x < lt)
    )


def integer(
    name: str,
    value: Any,
    *,
    ge: int | None = None,
    gt: int | None = None,
    le: int | None = None,
    lt: int | None = None,
    none: bool = False,
    note: str | None = None,
) -> Any:
    """An ``int`` (not ``bool``) within the given bounds; ``None`` too if ``none``."""
    if value is None and none:
        return None
    what = _describe("an int", _bounds(ge, gt, le, lt), none, note)
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise _fail(name, what, value, ArgumentTypeError)
    if not _in_range(value, ge, gt, le, lt):
        raise _fail(name, what, value)
    return int(value)


def number(
    name: str,
    value: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    unit: str | None = None,
    finite: bool = True,
    none: bool = False,
    note: str | None = None,
) -> Any:
    """A real number (not ``bool``, never NaN; finite unless ``finite=False``) within the bounds.

    ``unit`` names what the number counts ("seconds"), for the message. Returns a ``float``.
    """
    if value is None and none:
        return None
    kind = ("a finite number" if finite else "a number") + (f" of {unit}" if unit else "")
    what = _describe(kind, _bounds(ge, gt, le, lt), none, note)
    t = type(value)  # the two common types first: an ABC check is slow on hot paths
    if t is not float and t is not int and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        raise _fail(name, what, value, ArgumentTypeError)
    try:
        x = float(value)
    except OverflowError:  # an int too large for a float
        x = math.inf if value > 0 else -math.inf
    if math.isnan(x) or (finite and math.isinf(x)) or not _in_range(x, ge, gt, le, lt):
        raise _fail(name, what, value)
    return x


def probability(name: str, value: Any, *, none: bool = False) -> Any:
    """A number from 0 to 1 inclusive, as a ``float``."""
    if value is None and none:
        return None
    what = "a probability between 0 and 1" + (" or None" if none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(name, what, value, ArgumentTypeError)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise _fail(name, what, value)
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` exactly (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise _fail(name, "True or False", value, ArgumentTypeError)
    return value


def string(name: str, value: Any, *, empty: bool = False) -> str:
    """A ``str``, non-empty unless ``empty=True``."""
    what = "a str" if empty else "a non-empty str"
    if not isinstance(value, str):
        raise _fail(name, what, value, ArgumentTypeError)
    if not value and not empty:
        raise _fail(name, what, value)
    return value


def instance(name: str, value: Any, cls: type | tuple[type, ...], *, none: bool = False) -> Any:
    """An instance of ``cls`` (or ``None`` if ``none``); refused with ``TypeError`` otherwise."""
    if (value is None and none) or isinstance(value, cls):
        return value
    classes = cls if isinstance(cls, tuple) else (cls,)
    what = " or ".join(_a(c.__name__) for c in classes) + (" or None" if none else "")
    raise _fail(name, what, value, ArgumentTypeError)


def hashable(name: str, value: Any, what: str = "hashable") -> Any:
    """A value ``hash()`` accepts (a dict key, a set member, a state a search remembers)."""
    try:
        hash(value)
    except TypeError:
        raise _fail(name, what, value, ArgumentTypeError) from None
    return value


def one_of(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """One of ``allowed`` (a node id among the known ones, a mode among the modes...)."""
    allowed = list(allowed)
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value asked of a set-like container
        ok = False
    if not ok:
        listed = ", ".join(str(a) for a in allowed[:20]) + (", ..." if len(allowed) > 20 else "")
        raise _fail(name, f"one of {listed}" if allowed else "one of (none yet)", value)
    return value


def enum_member(name: str, value: Any, enum: type[E]) -> E:
    """A member of ``enum``, or the value of one (``"full"`` for ``Jitter.FULL``)."""
    if isinstance(value, enum):
        return value
    try:
        return enum(value)
    except (ValueError, TypeError):
        listed = ", ".join(repr(m.value) for m in enum)
        raise _fail(name, f"{_a(enum.__name__)} or one of {listed}", value) from None


def non_empty(name: str, value: Any, what: str = "collection") -> Any:
    """A sized collection (not a ``str``) with at least one element."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
        raise _fail(name, f"a non-empty {what}", value, ArgumentTypeError)
    if len(value) == 0:
        raise _fail(name, f"a non-empty {what}", value)
    return value


def collection(name: str, value: Any, what: str, kind: type = Iterable) -> Any:
    """An iterable (or a ``kind``: ``Sequence``, ``Collection``) that is not a ``str``: ``peers="n1n2"``
    is a string of characters, not of server ids. ``what`` names the items ("a list of Action")."""
    if isinstance(value, (str, bytes)) or not isinstance(value, kind):
        raise _fail(name, what, value, ArgumentTypeError)
    return value


def function(name: str, value: Any, what: str = "a function", *, none: bool = False) -> Any:
    """Something to call: a function, a class, a factory. ``what`` says how it is called, for the
    message ("a function (servers, asked, hint) -> server")."""
    if callable(value) or (value is None and none):
        return value
    raise _fail(name, what + (" or None" if none else ""), value, ArgumentTypeError)


def has_methods(name: str, value: Any, methods: tuple[str, ...], what: str) -> Any:
    """``value`` if it has every method in ``methods``; refused with ``ArgumentTypeError`` otherwise."""
    if all(callable(getattr(value, m, None)) for m in methods):
        return value
    raise _fail(name, what, value, ArgumentTypeError)


def require(condition: bool, name: str, what: str, value: Any) -> None:
    """Raise ``ValueError("<name> must be <what>, got <value>")`` unless ``condition``.

    For the rules that tie arguments together: ``require(lo <= hi, "lo", f"<= hi ({hi})", lo)``.
    """
    if not condition:
        raise _fail(name, what, value)


def partition_groups(groups: tuple, member: Callable[[Any, str], Any]) -> list[list[Any]]:
    """The sides of a network partition as lists, each member checked by ``member(value, name)``.

    Refused: no group at all, a group given as a string (``"n1"`` where ``["n1"]`` was meant), an
    empty group, and a node in two groups (it can be on one side only). The simulator and the
    clusters of real processes both split their networks through this, so both word a mistake alike.
    """
    if not groups:
        raise ValueError("partition needs at least one group of node ids")
    side: dict[Any, int] = {}
    out = []
    for i, group in enumerate(groups):
        if isinstance(group, str):
            raise ArgumentTypeError(
                f"each group must be a list of node ids, got the string {group!r}; write [{group!r}]"
            )
        members = [member(x, f"group {i} member") for x in group]
        if not members:
            raise ValueError(f"group {i} is empty; every group needs at least one node")
        for x in members:
            if x in side:
                raise ValueError(
                    f"node {x!r} is in group {side[x]} and group {i}; a node can be on one side of a partition only"
                )
            side[x] = i
        out.append(members)
    return out
