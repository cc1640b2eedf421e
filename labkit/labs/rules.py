"""A skeleton with rules left to write: the mechanics every lab's skeleton shares.

A lab's skeleton is a :class:`~labkit.sim.Node` that does everything but the
protocol's rules. Each rule is a method the learner adds to a subclass with
``@MyNode.rule``; until it is written it raises :class:`NotWritten` (a
``NotImplementedError``), and the skeleton still runs: it calls its rules
through :meth:`RuleBook.follow`, which lets a rule not written yet do
nothing and notes it once per node in the trace (``"not written"``), so a
learner can run the tests after the first rule and see exactly what is
missing (:func:`unwritten_notes` turns the notes into one sentence).

A rule whose result the skeleton or the learner's other rules go on to use
can say what it must return (``RETURNS``): a learner's rule that returns
something else (a list where a tuple is asked, ``None`` for a forgotten
``return``) is stopped right there, with an error naming the rule, what it
returned and what is allowed, not a ``TypeError`` deep in the rule that used
the result.

Used by every lab's skeleton (:mod:`labkit.labs.raft`, :mod:`labkit.labs.quorum`,
:mod:`labkit.labs.saga`)::

    class Skeleton(RuleBook, Node):
        RULES = rules_by_part(basics={"on_ping": "answer a ping", "alive": "whether a peer is up"})
        RETURNS = {"alive": (lambda v: isinstance(v, bool), "True or False")}

    with_stubs(Skeleton)          # every rule raises NotWritten until written

    class Mine(Skeleton): ...

    @Mine.rule
    def on_ping(self, ctx, src, m): ...
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any, ClassVar

from labkit import validation as valid

__all__ = ["NOT_WRITTEN", "NotWritten", "RuleBook", "rules_by_part", "with_stubs", "unwritten_notes"]

NOT_WRITTEN = "not written"  # the trace note of a rule that raised NotImplementedError


def rules_by_part(**parts: dict[str, str]) -> dict[str, tuple[str, str]]:
    """A skeleton's ``RULES`` (name -> (part, what it is)) from its rules listed part by part, in order:
    ``rules_by_part(basics={"on_ping": "answer a ping"}, ...)``."""
    return {name: (part, what) for part, rules in parts.items() for name, what in rules.items()}


class NotWritten(NotImplementedError):
    """Raised by a rule of a skeleton that the learner has not written yet."""

    def __init__(self, rule: str, part: str, what: str) -> None:
        super().__init__(f"{rule} is not written yet (part {part}: {what})")
        self.rule = rule


class RuleBook:
    """Mixin for a skeleton node: its ``RULES`` (name -> (part, what it is)), added with :meth:`rule`.

    ``RETURNS`` (name -> (a test of the result, what is allowed in words)): what those rules must return.
    """

    RULES: ClassVar[dict[str, tuple[str, str]]] = {}
    RETURNS: ClassVar[dict[str, tuple[Callable[[Any], bool], str]]] = {}

    @classmethod
    def rule(cls, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator: make ``fn`` this class's rule of the same name (one of ``RULES``)."""
        if not callable(fn) or not hasattr(fn, "__name__"):
            raise TypeError(f"rule must decorate a function, got {fn!r}")
        if "RULES" in vars(cls):
            raise TypeError(
                f"add rules to your own subclass (class MyNode({cls.__name__}): ...), not to {cls.__name__}"
            )
        if fn.__name__ not in cls.RULES:
            known = ", ".join(cls.RULES)
            raise ValueError(f"{fn.__name__!r} is not one of the rules of the lab; the rules are: {known}")
        contract = cls.RETURNS.get(fn.__name__)
        setattr(cls, fn.__name__, fn if contract is None else _returning(fn, *contract))
        return fn

    def follow(self, ctx: Any, rule: str, *args: Any) -> Any:
        """Call rule ``rule(*args)``; a rule not written yet (NotImplementedError) does nothing (None)."""
        try:
            return getattr(self, rule)(*args)
        except NotImplementedError as exc:
            name = getattr(exc, "rule", None)
            if name is None:  # a learner's `raise NotImplementedError()`: the rule it is in
                frames = traceback.extract_tb(exc.__traceback__)
                name = next((f.name for f in reversed(frames) if f.name in self.RULES), rule)
            noted = self.__dict__.setdefault("_noted_rules", set())
            if name not in noted:
                noted.add(name)
                ctx.note(NOT_WRITTEN, rule=name)
            return None


def _returning(fn: Callable[..., Any], ok: Callable[[Any], bool], allowed: str) -> Callable[..., Any]:
    """``fn``, refusing a result ``ok`` rejects: ``ArgumentTypeError`` naming ``fn``, the result and ``allowed``.

    The learner's own function stays reachable as ``__wrapped__`` (what :mod:`labkit.labs.delegation` reads).
    """

    @functools.wraps(fn)
    def check_what_the_rule_returns(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = fn(self, *args, **kwargs)
        if not ok(result):
            raise valid.ArgumentTypeError(
                f"your rule {fn.__name__} returned {type(result).__name__} {valid.shown(result)}; "
                f"it must return {allowed}"
            )
        return result

    return check_what_the_rule_returns


def _stub(name: str, part: str, what: str) -> Callable[..., Any]:
    def rule(self: Any, *args: Any) -> Any:
        raise NotWritten(name, part, what)

    rule.__name__ = rule.__qualname__ = name
    rule.__doc__ = f"{what}: not written yet."
    return rule


def with_stubs(cls: type[RuleBook]) -> type[RuleBook]:
    """Give ``cls`` a stub for every rule of its ``RULES`` (raising :class:`NotWritten`); returns ``cls``."""
    for name, (part, what) in cls.RULES.items():
        setattr(cls, name, _stub(name, part, what))
    return cls


def unwritten_notes(trial: Any, rules: dict[str, tuple[str, str]]) -> list[str]:
    """A note for the learner naming the rules a trial called before they were written ([] if none)."""
    sim = trial.sim
    rows = sim.trace.notes(NOT_WRITTEN) if sim is not None and sim.trace.keep else []
    order = list(rules)
    names = sorted({r.detail["rule"] for r in rows if r.detail["rule"] in rules}, key=order.index)
    if not names:
        return []
    listed = ", ".join(f"{n} (part {rules[n][0]})" for n in names)
    return [f"not written yet (NotImplementedError), so they did nothing: {listed}"]
