"""``@message``: declare a message type the way house rule 2 asks, built as cheaply as a plain object.

A message is a frozen, slotted dataclass: immutable once sent (the simulator
hands the same object to every receiver) and compared by value. A frozen
dataclass's own ``__init__`` gets past its immutability with
``object.__setattr__`` for every field, a slow generic call; protocols build
messages on the simulator's hot path, so :func:`message` swaps in an
``__init__`` with the same parameters and defaults that writes each slot
through its descriptor instead, about twice as fast. Everything else (equality,
hashing, ``repr``, refusing assignment) is the dataclass's own.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import TypeVar

__all__ = ["message"]

T = TypeVar("T")


def message(cls: type[T]) -> type[T]:
    """``@dataclass(frozen=True, slots=True)`` with a faster ``__init__`` (see the module docstring)."""
    cls = dataclass(frozen=True, slots=True)(cls)
    namespace: dict = {}
    params, body = [], []
    for f in fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not MISSING or not f.init:
            return cls  # not needed by any message so far: keep the dataclass's own __init__
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        body.append(f"    _set_{f.name}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"]), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init  # type: ignore[misc]
    return cls
