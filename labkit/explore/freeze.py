"""Canonical snapshots of node state: the mechanics behind a state's identity.

The model checker must tell when two runs reach *the same* state, however
they got there. A node is a live Python object (a :class:`~labkit.raft.RaftNode`
holds a log, a dict of progress, a set of votes...), so :func:`freeze` turns
one into a **key**: a nested tuple of plain values that compares equal
exactly when the two nodes hold equal state.

* lists keep their order; dicts and sets are sorted, so insertion order
  (which depends on the path taken, and for sets of strings on
  ``PYTHONHASHSEED``) does not count;
* an object with ``__dict__`` or ``__slots__`` becomes its class and its
  attributes, sorted by name;
* immutable values (numbers, strings, enums, frozen dataclasses such as
  messages and log entries, and any class that defines ``__hash__``) are
  kept as they are;
* methods stored on an object (a handler table of bound methods) count by
  name only, and classes (the keys of such a table) by identity: they are
  wiring, not state.

A key is never turned back into an object: the explorer keeps one live
node per key and copies it when it needs to run a handler on it.

:func:`digest` gives a key a fingerprint that is stable across processes
and ``PYTHONHASHSEED`` (BLAKE2b of a canonical text, :func:`encode`);
:func:`rename` maps node ids inside a key, which is how symmetry reduction
compares states up to a renaming of interchangeable nodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import types
from collections import deque
from collections.abc import Callable, Collection, Mapping
from enum import Enum
from functools import partial
from typing import Any

__all__ = ["freeze", "encode", "digest", "rename"]

_ATOMS = (str, int, float, bool, type(None), bytes, complex)
_ATOM_TYPES = frozenset(_ATOMS)
_CALLABLES = (types.MethodType, types.FunctionType, types.BuiltinFunctionType, partial)


class _Tag:
    """Marks what kind of container a frozen tuple stands for (never equal to user data)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


LIST, DICT, SET, OBJ, METHOD = _Tag("list"), _Tag("dict"), _Tag("set"), _Tag("obj"), _Tag("method")

# Per class: the attribute names that hold its state (slots of every base, in order).
_SLOTS: dict[type, tuple[str, ...]] = {}
# Per class: True when instances are immutable values kept as they are.
_VALUE: dict[type, bool] = {}


def _slots(cls: type) -> tuple[str, ...]:
    names = _SLOTS.get(cls)
    if names is None:
        found: list[str] = []
        for base in reversed(cls.__mro__):
            slots = base.__dict__.get("__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                if name not in ("__dict__", "__weakref__") and name not in found:
                    found.append(name)
        names = _SLOTS[cls] = tuple(found)
    return names


def _is_value(cls: type) -> bool:
    """Immutable values: enums, frozen dataclasses, classes with their own ``__hash__``."""
    known = _VALUE.get(cls)
    if known is None:
        if issubclass(cls, Enum):
            known = True
        elif dataclasses.is_dataclass(cls):
            known = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
        else:
            h = getattr(cls, "__hash__", None)
            known = h is not None and h is not object.__hash__ and not issubclass(cls, (list, dict, set))
        _VALUE[cls] = known
    return known


def _order(x: Any) -> tuple:
    """A sort key that orders any frozen values the same way in every process."""
    if type(x) is str:
        return (0, x)
    if type(x) is int or type(x) is float:
        return (1, x)
    return (2, encode(x))


def _attributes(x: Any) -> list[tuple[str, Any]]:
    out = [(name, getattr(x, name)) for name in _slots(type(x)) if hasattr(x, name)]
    d = getattr(x, "__dict__", None)
    if d is not None:
        out.extend(d.items())
    return out


def freeze(x: Any, skip: Collection[str] = ()) -> Any:
    """The canonical key of ``x`` (see the module docstring).

    ``skip`` names attributes of ``x`` itself (not of objects inside it) to
    leave out: the constant wiring of a node (its peers, its configuration).
    """
    t = type(x)
    if t in _ATOM_TYPES:
        return x
    if t is tuple:
        return tuple([freeze(i) for i in x])
    if t is list or t is deque:
        return (LIST, *[freeze(i) for i in x])
    if isinstance(x, dict):
        items = [(freeze(k), freeze(v)) for k, v in x.items()]
        if len(items) > 1:
            items.sort(key=lambda kv: _order(kv[0]))
        return (DICT, *items)
    if t is set or t is frozenset:
        members = [freeze(i) for i in x]
        if len(members) > 1:
            members.sort(key=_order)
        return (SET, *members)
    if isinstance(x, _CALLABLES):
        if isinstance(x, partial):
            return (METHOD, freeze(x.func), freeze(x.args), freeze(x.keywords))
        fn = getattr(x, "__func__", x)
        if getattr(fn, "__closure__", None) and not isinstance(x, types.MethodType):
            # A copy of the node would still call into the original through the closure.
            raise TypeError(
                f"cannot take a snapshot of the function {fn.__qualname__}: it closes over variables "
                "(a lambda over self?), which a copy of its node would share; keep a method, or a "
                "functools.partial of one"
            )
        return (METHOD, getattr(fn, "__qualname__", repr(fn)))
    if _is_value(t) or isinstance(x, type):
        return x
    if isinstance(x, random.Random):
        return (OBJ, t, ("state", x.getstate()))
    attrs = _attributes(x)
    if not attrs and not hasattr(x, "__dict__") and not _slots(t):
        raise TypeError(
            f"cannot take a snapshot of a {t.__qualname__}: it has neither attributes nor a hash; "
            "keep node state in plain values, containers and objects"
        )
    attrs.sort()
    return (OBJ, t, *[(name, freeze(v)) for name, v in attrs if name not in skip])


def encode(x: Any) -> str:
    """A canonical text for a frozen key: equal keys give equal texts in every process."""
    t = type(x)
    if t is str:
        return repr(x)
    if t in _ATOM_TYPES:
        return repr(x)
    if t is tuple:
        if x and type(x[0]) is _Tag:
            tag = x[0]
            if tag is OBJ:
                cls = x[1]
                body = ",".join(f"{name}={encode(v)}" for name, v in x[2:])
                return f"{cls.__module__}.{cls.__qualname__}({body})"
            if tag is METHOD:
                return f"method:{x[1]}"
            return f"{tag.name}[" + ",".join(encode(i) for i in x[1:]) + "]"
        return "(" + ",".join(encode(i) for i in x) + ")"
    if t is frozenset or t is set:
        return "set[" + ",".join(sorted(encode(i) for i in x)) + "]"
    if isinstance(x, Enum):
        return f"{t.__qualname__}.{x.name}"
    if isinstance(x, type):
        return f"class:{x.__module__}.{x.__qualname__}"
    if dataclasses.is_dataclass(t):
        body = ",".join(f"{f.name}={encode(getattr(x, f.name))}" for f in dataclasses.fields(x))
        return f"{t.__module__}.{t.__qualname__}({body})"
    if type(x) is _Tag:
        return f"<{x.name}>"
    if t.__repr__ is not object.__repr__:
        return f"{t.__module__}.{t.__qualname__}:{x!r}"
    return encode(freeze(x)) if not _is_value(t) else encode(_value_fields(x))


def _value_fields(x: Any) -> tuple:
    attrs = sorted(_attributes(x))
    return (OBJ, type(x), *[(name, freeze(v)) for name, v in attrs if not name.startswith("_hash")])


def digest(x: Any) -> bytes:
    """16 bytes that identify a frozen key in every process (BLAKE2b of :func:`encode`)."""
    return hashlib.blake2b(encode(x).encode(), digest_size=16).digest()


def rename(x: Any, names: Mapping[str, str]) -> Any:
    """The frozen key ``x`` with every node id replaced as ``names`` says.

    Strings are renamed wherever they appear as whole values (a dict key, a
    field of a message, a member of a set); dicts and sets are sorted again
    afterwards. Values of classes other than frozen dataclasses are kept as
    they are: a model that puts node ids inside such values cannot use
    symmetry reduction.
    """
    t = type(x)
    if t is str:
        return names.get(x, x)
    if t in _ATOM_TYPES:
        return x
    if t is tuple:
        if x and type(x[0]) is _Tag:
            tag = x[0]
            if tag is DICT:
                items = [(rename(k, names), rename(v, names)) for k, v in x[1:]]
                items.sort(key=lambda kv: _order(kv[0]))
                return (DICT, *items)
            if tag is SET:
                return (SET, *sorted((rename(i, names) for i in x[1:]), key=_order))
            if tag is OBJ:
                return (OBJ, x[1], *[(name, rename(v, names)) for name, v in x[2:]])
            if tag is METHOD:
                return x
            return (tag, *[rename(i, names) for i in x[1:]])
        return tuple([rename(i, names) for i in x])
    if t is frozenset:
        return frozenset(rename(i, names) for i in x)
    if dataclasses.is_dataclass(t) and not isinstance(x, type):
        changes = {}
        for f in dataclasses.fields(x):
            old = getattr(x, f.name)
            new = rename(old, names)
            if new is not old and new != old:
                changes[f.name] = new
        return dataclasses.replace(x, **changes) if changes else x
    return x


Freezer = Callable[[Any], Any]
