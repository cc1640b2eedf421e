"""A lab submission must write its rules itself: refusing one that hands them to labkit's reference.

Every protocol the labs teach also lives in labkit, written by the course (the
reference). A learner's node that subclasses the reference, or calls its
rules, would pass every test without a rule of its own. Two checks keep
grading honest, for any lab:

* :func:`problems` reads a submitted class: its bases, and every name its
  methods use (globals, attributes, nested functions), looking for the
  reference's classes and functions, by name or under any alias;
* :func:`tripwires`, while a submission is graded, makes the reference's
  functions raise :class:`DelegationError` if anything calls them, however
  they were reached (a reference kept in a variable, ``getattr`` with a string...).

A lab says what its reference is with a :class:`Reference`.
"""

from __future__ import annotations

import contextlib
import inspect
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["DelegationError", "Reference", "problems", "tripwires", "functions_of"]


class DelegationError(RuntimeError):
    """Raised when graded code calls a rule of labkit's reference implementation."""


@dataclass(frozen=True)
class Reference:
    """What a lab's submissions must not use.

    ``what``: the reference in words ("labkit's quorum store (labkit.replication)");
    ``classes``: classes a submission must not subclass; ``objects``: classes and
    functions it must not use under any name; ``names``: names only the
    reference's rules carry (any use of them is delegation); ``trip``: functions
    that raise :class:`DelegationError` while grading (they must be functions
    the lab's own skeleton never calls).
    """

    what: str
    classes: tuple[type, ...] = ()
    objects: tuple[Any, ...] = ()
    names: frozenset[str] = frozenset()
    trip: tuple[types.FunctionType, ...] = ()


def functions_of(*classes: type) -> tuple[types.FunctionType, ...]:
    """Every plain function defined in ``classes`` (methods, properties' getters), for :attr:`Reference.trip`."""
    out = []
    for cls in classes:
        for value in vars(cls).values():
            fn = value.fget if isinstance(value, property) else value
            if isinstance(fn, (staticmethod, classmethod)):
                fn = fn.__func__
            if isinstance(fn, types.FunctionType) and fn.__code__.co_freevars == ():
                out.append(fn)
    return tuple(out)


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _functions(cls: type) -> Iterator[tuple[str, Any]]:
    """The functions a class (and its bases outside labkit) defines, with their names."""
    for klass in cls.__mro__:
        if klass.__module__.startswith("labkit.") or klass is object:
            continue
        for name, value in vars(klass).items():
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                value = value.fget
            if isinstance(value, types.FunctionType):
                yield f"{klass.__name__}.{name}", inspect.unwrap(value)  # a rule whose result is checked


def problems(node: Any, reference: Reference, *, base: type) -> list[str]:
    """Why ``node`` (a submitted class) cannot be graded, as sentences; [] if it writes its own rules.

    ``base`` is the lab's skeleton class, which the submission must subclass.
    """
    if not inspect.isclass(node):
        return [f"the submission must be your class (a subclass of {base.__name__}), got {node!r}"]
    out = []
    for cls in reference.classes:
        if issubclass(node, cls):
            out.append(
                f"{node.__name__} subclasses {cls.__module__}.{cls.__name__}, which is {reference.what}: "
                f"it must subclass {base.__name__} and write the rules itself"
            )
            break  # one reason is enough (the reference's classes may build on one another)
    if not issubclass(node, base):
        out.append(f"{node.__name__} must subclass {base.__name__}, the lab's skeleton")
    for where, fn in _functions(node):
        used: set[str] = set()
        for code in _code_objects(fn.__code__):
            used |= set(code.co_names) | set(code.co_freevars)
        named = sorted(used & reference.names)
        seen = dict(fn.__globals__)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            with contextlib.suppress(ValueError):  # an empty cell
                seen[name] = cell.cell_contents
        aliases = sorted(
            name for name in used - reference.names if any(seen.get(name) is obj for obj in reference.objects)
        )
        for name in named + aliases:
            out.append(
                f"{where} uses {name}, which is part of {reference.what}: "
                "the lab asks you to write that rule yourself"
            )
    return out


def _refuse(name: str, what: str) -> types.CodeType:
    """Code that raises DelegationError naming ``name``; it needs nothing but builtins, because it runs
    with the globals of the function it replaces."""
    message = f"{name} belongs to {what}, which graded code must not call: write the rule yourself"
    source = (
        "def refused(*args, **kwargs):\n"
        f"    raise __import__({__name__!r}, fromlist=['DelegationError']).DelegationError({message!r})\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - a fixed template
    return namespace["refused"].__code__


@contextlib.contextmanager
def tripwires(reference: Reference) -> Iterator[None]:
    """Every function of ``reference.trip`` raises :class:`DelegationError` until the block ends."""
    saved = [(fn, fn.__code__) for fn in reference.trip]
    try:
        for fn, _ in saved:
            fn.__code__ = _refuse(fn.__qualname__, reference.what)
        yield
    finally:
        for fn, code in saved:
            fn.__code__ = code
