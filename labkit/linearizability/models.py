"""Sequential specifications: what one copy of the object would answer.

Linearizability is defined relative to a *sequential specification*
(Herlihy & Wing 1990, §2): the set of legal sequential histories of the
object. Here a specification is a deterministic state machine,
:class:`Model`, with

* :meth:`Model.init`: the initial state (hashable, because the checker
  remembers the states it has already explored);
* :meth:`Model.apply`: ``(state, input) -> (output, new_state)``, the output
  a single copy would give and the state it would move to;
* :meth:`Model.read_only` (optional): which operations never change the
  state, a hint that makes the search faster;
* :meth:`Model.partition` (optional): a key that splits a history into
  independent parts, checked one by one. Linearizability is *local*
  (Herlihy & Wing, Theorem 1): a history over several independent objects is
  linearizable exactly when each object's sub-history is. Horn & Kroening
  ("Faster linearizability checking via P-compositionality", FORTE 2015) use
  the same idea for the keys of a map.

Write your own by subclassing :class:`Model` (a counter, a queue, ...).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from typing import Any

from labkit import validation as valid


class Model(ABC):
    """Base class of sequential specifications; override :meth:`init` and :meth:`apply`."""

    name: str = "model"

    @abstractmethod
    def init(self) -> Hashable:
        """The state before any operation."""

    @abstractmethod
    def apply(self, state: Any, input: tuple) -> tuple[Any, Any]:
        """Run ``input`` on ``state``: return ``(output, new_state)``.

        Raise ``ValueError`` for an input the object does not support. Never
        mutate ``state``: the checker keeps and revisits old states.
        """

    def partition(self, input: tuple) -> Hashable:
        """The independent part an input touches; all in one part by default."""
        return None

    def read_only(self, input: tuple, output: Any) -> bool:
        """True if ``input`` answering ``output`` leaves *every* state it can answer that in unchanged.

        Optional: the checker places such an operation as soon as it fits,
        without trying alternatives, which is much faster. ``output`` may be
        :data:`~labkit.linearizability.UNKNOWN`; then answer True only if the
        input changes no state whatever it answers. The default, ``False``, is
        always safe. A read is read-only; a write is not, even when it happens
        to write the value already there.
        """
        return False

    def describe_state(self, state: Any) -> str:
        """The state in words, for explanations."""
        return repr(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def checked_model(model: Any) -> Model:
    """``model`` if it has ``init()`` and ``apply()``; refused with a ``TypeError`` otherwise."""
    return valid.has_methods(
        "model", model, ("init", "apply"), "a Model with init() and apply(state, input) (subclass Model)"
    )


class RegisterModel(Model):
    """A single read/write register with compare-and-set.

    ``("read",)`` returns the value (``None`` while unset, or ``initial``);
    ``("write", v)`` returns ``None``; ``("cas", expected, new)`` sets ``new``
    and returns ``True`` if the value equals ``expected``, else returns
    ``False`` and changes nothing. Values must be hashable.
    """

    name = "register"

    def __init__(self, initial: Hashable = None) -> None:
        self.initial = valid.hashable("initial", initial, "a hashable value")

    def init(self) -> Hashable:
        return self.initial

    def apply(self, state: Any, input: tuple) -> tuple[Any, Any]:
        # The checker calls this in its inner loop: the common, valid cases first.
        kind, n = input[0], len(input)
        if kind == "read" and n == 1:
            return state, state
        if kind == "write" and n == 2:
            return None, input[1]
        if kind == "cas" and n == 3:
            if state == input[1]:
                return True, input[2]
            return False, state
        forms = {"read": "('read',)", "write": "('write', value)", "cas": "('cas', expected, new)"}
        if kind in forms:
            raise ValueError(f"{kind!r} takes the form {forms[kind]}, got {input!r}")
        raise ValueError(f"a register supports 'read', 'write' and 'cas', got {input!r}")

    def read_only(self, input: tuple, output: Any) -> bool:
        # A cas that answered False changed nothing, whatever the value was.
        return input[0] == "read" or (input[0] == "cas" and output is False)

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
        # The checker calls this in its inner loop: the common, valid cases first.
        kind, n = input[0], len(input)
        if kind == "get" and n == 2:
            return state, state
        if n == 3 and isinstance(input[2], str):
            if kind == "append":
                return None, state + input[2]
            if kind == "put":
                return None, input[2]
        forms = {"get": "('get', key)", "put": "('put', key, value)", "append": "('append', key, value)"}
        if kind not in forms:
            raise ValueError(f"a key-value store supports 'get', 'put' and 'append', got {input!r}")
        if n != len(forms[kind].split(",")):
            raise ValueError(f"{kind!r} takes the form {forms[kind]}, got {input!r}")
        raise ValueError(f"values of the key-value store are strings, got {input!r}")

    def partition(self, input: tuple) -> Hashable:
        if len(input) < 2:
            raise ValueError(f"a key-value operation names its key second, got {input!r}")
        return input[1]

    def read_only(self, input: tuple, output: Any) -> bool:
        return input[0] == "get"

    def describe_state(self, state: Any) -> str:
        return "empty ('')" if state == "" else repr(state)
