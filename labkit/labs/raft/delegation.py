"""A lab submission must write Raft's rules itself: refusing one that hands them to labkit's reference.

labkit's own :class:`~labkit.raft.RaftNode` (and what it is built from) is
the course's reference implementation; a learner's server that subclasses
it, or calls its rules, would pass every test without a rule of its own. Two
checks keep grading honest:

* :func:`problems` reads the submitted class: its bases, and every name its
  methods use (globals, attributes, nested functions), looking for the
  reference's classes and functions under any alias;
* :func:`tripwires`, while a submission is graded, makes every rule of the
  reference raise :class:`DelegationError` if anything calls it, however it
  was reached (a reference kept in a variable, ``getattr`` with a string...).
"""

from __future__ import annotations

import contextlib
import inspect
import types
from collections.abc import Iterator
from typing import Any

from labkit.raft import bugs as _bugs
from labkit.raft import node as _node
from labkit.raft import progress as _progress
from labkit.raft.log import RaftLog
from labkit.raft.node import RaftNode

__all__ = ["DelegationError", "problems", "tripwires", "FORBIDDEN_NAMES"]

# Names that only the reference's rules carry; any use of them is delegation.
FORBIDDEN_NAMES = frozenset(
    {
        "RaftNode",
        "CommitPriorTerm",
        "StaleReads",
        "VoteTwice",
        "node_class",
        "Progress",
        "quorum_match_index",
        "maybe_append",  # RaftLog.maybe_append is the reference's AppendEntries steps 3-4
        "_log_is_up_to_date",
        "may_vote_for",
        "may_commit",
    }
)


class DelegationError(RuntimeError):
    """Raised when graded code calls a rule of labkit's reference Raft."""


def _forbidden_objects() -> list[Any]:
    out: list[Any] = [RaftNode, _node, _bugs, _progress, RaftLog.maybe_append]
    out += [c for c in vars(_bugs).values() if inspect.isclass(c) and issubclass(c, RaftNode)]
    out += [_progress.Progress, _progress.quorum_match_index]
    return out


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
                yield f"{klass.__name__}.{name}", value


def problems(node: Any) -> list[str]:
    """Why ``node`` (a submitted server class) cannot be graded, as sentences; [] if it writes its own rules."""
    if not inspect.isclass(node):
        return [f"the submission must be your server class, got {node!r}"]
    out = []
    if issubclass(node, RaftNode):
        out.append(
            f"{node.__name__} subclasses labkit.raft.RaftNode, the course's reference implementation: "
            "it must subclass RaftServer and write Figure 2's rules itself"
        )
    forbidden = _forbidden_objects()
    for where, fn in _functions(node):
        used = set()
        for code in _code_objects(fn.__code__):
            used |= set(code.co_names) | set(code.co_freevars)
        named = sorted(used & FORBIDDEN_NAMES)
        seen = dict(fn.__globals__)
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or (), strict=False):
            with contextlib.suppress(ValueError):  # an empty cell
                seen[name] = cell.cell_contents
        aliases = sorted(
            name for name in used - FORBIDDEN_NAMES if any(seen.get(name) is obj for obj in forbidden)
        )
        for name in named + aliases:
            out.append(
                f"{where} uses {name}, which is part of labkit's reference Raft (labkit.raft): "
                "the lab asks you to write that rule yourself"
            )
    return out


def _refuse(name: str) -> types.CodeType:
    """Code that raises DelegationError naming ``name``; it needs nothing but builtins, because it runs
    with the globals of the function it replaces."""
    message = (
        f"{name} belongs to labkit's reference Raft, which graded code must not call: write the rule yourself"
    )
    source = (
        "def refused(*args, **kwargs):\n"
        f"    raise __import__({__name__!r}, fromlist=['DelegationError']).DelegationError({message!r})\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - a fixed template
    return namespace["refused"].__code__


@contextlib.contextmanager
def tripwires() -> Iterator[None]:
    """Every function of the reference's rules raises :class:`DelegationError` until the block ends."""
    targets: list[types.FunctionType] = []
    classes = [RaftNode, _progress.Progress]
    classes += [c for c in vars(_bugs).values() if inspect.isclass(c) and issubclass(c, RaftNode)]
    for cls in classes:
        for value in vars(cls).values():
            fn = value.fget if isinstance(value, property) else value
            if isinstance(fn, types.FunctionType) and fn.__code__.co_freevars == ():
                targets.append(fn)
    targets += [RaftLog.maybe_append, _progress.quorum_match_index]  # type: ignore[list-item]
    saved = [(fn, fn.__code__) for fn in targets]
    try:
        for fn, _ in saved:
            fn.__code__ = _refuse(fn.__qualname__)
        yield
    finally:
        for fn, code in saved:
            fn.__code__ = code
