"""Sequential specifications: what one copy of the object would answer.

Linearizability is defined relative to a *sequential specification*
(Herlihy & Wing 1990, §2): the set of legal sequential histories of the
object. Here a specification is a deterministic state machine,
:class:`Model`, with

* :meth:`Model.init`: the initial state (hashable, because the checker
  remembers the states it has already explored);
* :meth:`Model.apply`: ``(state, input) -> (output, new_state)``, the output
  a single copy would give and the state it would move to;
* :meth:`Model.partition` (optional): a key that splits a history into
  independent parts, checked one by one. Linearizability is *local*
  (Herlihy & Wing, Theorem 1): a history over several independent objects is
  linearizable exactly when each object's sub-history is. Horn & Kroening
  ("Faster linearizability checking via P-compositionality", FORTE 2015) use
  the same idea for the keys of a map.

Write your own by subclassing :class:`Model` (a counter, a queue, ...).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = ["Model", "RegisterModel", "KVModel"]


class Model:
    """Base class of sequential specifications; override :meth:`init` and :meth:`apply`."""

    name: str = "model"

    def init(self) -> Hashable:
        """The state before any operation."""
        raise NotImplementedError

    def apply(self, state: Any, input: tuple) -> tuple[Any, Any]:
        """Run ``input`` on ``state``: return ``(output, new_state)``.

        Raise ``ValueError`` for an input the object does not support. Never
        mutate ``state``: the checker keeps and revisits old states.
        """
        raise NotImplementedError

    def partition(self, input: tuple) -> Hashable:
        """The independent part an input touches; all in one part by default."""
        return None

    def describe_state(self, state: Any) -> str:
        """The state in words, for explanations."""
        return repr(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _arity(input: tuple, n: int, form: str) -> None:
    if len(input) != n:
        raise ValueError(f"{input[0]!r} takes the form {form}, got {input!r}")


class RegisterModel(Model):
    """A single read/write register with compare-and-set.

    ``("read",)`` returns the value (``None`` while unset, or ``initial``);
    ``("write", v)`` returns ``None``; ``("cas", expected, new)`` sets ``new``
    and returns ``True`` if the value equals ``expected``, else returns
    ``False`` and changes nothing. Values must be hashable.
    """

    name = "register"

    def __init__(self, initial: Hashable = None) -> None:
        try:
            hash(initial)
        except TypeError:
            raise TypeError(f"initial must be a hashable value, got {initial!r}") from None
        self.initial = initial

    def init(self) -> Hashable:
        return self.initial

    def apply(self, state: Any, input: tuple) -> tuple[Any, Any]:
        kind = input[0]
        if kind == "read":
            _arity(input, 1, "('read',)")
            return state, state
        if kind == "write":
            _arity(input, 2, "('write', value)")
            return None, input[1]
        if kind == "cas":
            _arity(input, 3, "('cas', expected, new)")
            if state == input[1]:
                return True, input[2]
            return False, state
        raise ValueError(f"a register supports 'read', 'write' and 'cas', got {input!r}")

    def describe_state(self, state: Any) -> str:
        return "unset (None)" if state is None else repr(state)

    def __repr__(self) -> str:
        return "RegisterModel()" if self.initial is None else f"RegisterModel(initial={self.initial!r})"


class KVModel(Model):
    """A key-value store of strings with get/put/append, partitioned by key.

    ``("get", k)`` returns the value (``""`` for a missing key);
    ``("put", k, v)`` and ``("append", k, v)`` return ``None``. Each key is an
    independent object, so the state the checker sees is the value of one key.
    """

    name = "key-value store"

    def init(self) -> Hashable:
        return ""

    def apply(self, state: Any, input: tuple) -> tuple[Any, Any]:
        kind = input[0]
        if kind == "get":
            _arity(input, 2, "('get', key)")
            return state, state
        if kind == "put" or kind == "append":
            _arity(input, 3, f"('{kind}', key, value)")
            value = input[2]
            if not isinstance(value, str):
                raise ValueError(f"values of the key-value store are strings, got {input!r}")
            return None, (value if kind == "put" else state + value)
        raise ValueError(f"a key-value store supports 'get', 'put' and 'append', got {input!r}")

    def partition(self, input: tuple) -> Hashable:
        if len(input) < 2:
            raise ValueError(f"a key-value operation names its key second, got {input!r}")
        return input[1]

    def describe_state(self, state: Any) -> str:
        return "empty ('')" if state == "" else repr(state)
