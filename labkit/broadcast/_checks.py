"""Argument checks for ``labkit.broadcast`` and ``labkit.crdt``.

A stand-in with the same signatures as the course's shared validation module
(``labkit.validation``: ``integer``, ``number``, ``string``, ``instance``), so
that moving to it is a change of import. Each check names the argument, says
what is allowed and shows what was given, and returns the value.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["integer", "instance", "number", "string"]


def integer(name: str, value: Any, *, ge: int | None = None, le: int | None = None) -> int:
    """An ``int`` (not ``bool``) with ``ge <= value <= le``."""
    bounds = " and ".join(
        b for b in (f">= {ge}" if ge is not None else "", f"<= {le}" if le is not None else "") if b
    )
    what = f"an int {bounds}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if (ge is not None and value < ge) or (le is not None and value > le):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def number(
    name: str,
    value: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    unit: str = "",
    none: bool = False,
) -> Any:
    """A finite real number (not ``bool``) with ``value >= ge`` / ``value > gt``; ``None`` if ``none``."""
    if value is None and none:
        return None
    bound = f">= {ge}" if ge is not None else f"> {gt}" if gt is not None else ""
    what = " ".join(p for p in ("a finite number", f"of {unit}" if unit else "", bound) if p)
    if none:
        what += " or None"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or (ge is not None and x < ge) or (gt is not None and x <= gt):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return x


def string(name: str, value: Any) -> str:
    """A non-empty ``str``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a non-empty str, got {value!r}")
    if not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def instance(name: str, value: Any, cls: type | tuple[type, ...]) -> Any:
    """An instance of ``cls``."""
    if not isinstance(value, cls):
        names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
        raise TypeError(f"{name} must be a {names}, got {type(value).__name__} {value!r}")
    return value
