"""A replicated list (and text): the replicated growable array, RGA.

Roh, Jeon, Kim & Lee, *Replicated abstract data types: Building blocks for
collaborative applications* (J. Parallel Distrib. Comput. 71(3), 2011)
introduced RGA; Shapiro et al.'s INRIA report RR-7506 (2011) lists it among
the sequence CRDTs. We write it in the equivalent tree form (Attiya et al.,
*Specification and Complexity of Collaborative Text Editing*, PODC 2016):

* every element gets an id ``(counter, replica)`` that is larger than every
  id its replica has seen (a Lamport timestamp, notebook 02) and remembers
  the element it was inserted *after* (its parent; the start of the list is
  the parent of the first element);
* the list is the tree read in pre-order, the children of an element
  newest first: a new element appears right after the element it was
  inserted after, and of two elements inserted concurrently at the same
  place, the one with the larger id comes first, on every replica;
* removing an element only marks it as removed (a *tombstone*): later and
  concurrent inserts may still name it as their parent.

``merge`` is the union of the elements and the union of the tombstones, so
it is commutative, associative and idempotent; the order is a function of
that state alone, so replicas with the same state show the same list. Two
people typing at the same place keep their words whole: each one's
characters form a chain (each inserted after the previous one).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labkit import validation as valid
from labkit.crdt.base import StateCRDT

__all__ = ["RGA", "ROOT", "Id"]

Id = tuple[int, str]  # (counter, replica), compared as a pair
ROOT: Id = (0, "")  # the start of the list: the parent of the first element


class RGA(StateCRDT):
    """A replicated list; with one-character items, a replicated text.

    >>> a = RGA().insert(0, "cat", "A")
    >>> b = a.insert(3, "s", "B")       # B appends...
    >>> c = a.delete(0).insert(0, "b", "C")   # ...while C changes c to b
    >>> b.merge(c).text, c.merge(b).text
    ('bats', 'bats')
    """

    __slots__ = ("_elements", "_removed", "_clock", "_order", "_visible")

    def __init__(
        self, elements: Mapping[Id, tuple[Id, Any]] | None = None, removed: Iterable[Id] = ()
    ) -> None:
        elements = dict(valid.instance("elements", elements, Mapping, none=True) or {})
        for i, entry in elements.items():
            if not (
                _is_id(i) and i != ROOT and isinstance(entry, tuple) and len(entry) == 2 and _is_id(entry[0])
            ):
                raise TypeError(
                    f"elements must map an id (counter, replica) to (parent id, item), got {i!r}: {entry!r}"
                )
        removed = frozenset(removed)
        if not removed <= elements.keys():
            raise ValueError(
                f"removed names ids that are not elements: {sorted(removed - elements.keys())[:3]}"
            )
        self._init(elements, removed, max((i[0] for i in elements), default=0), None)

    def _init(
        self, elements: dict[Id, tuple[Id, Any]], removed: frozenset[Id], clock: int, order: list[Id] | None
    ) -> None:
        # Invariant: _clock is the largest counter of any id; _order, once computed,
        # lists every element (tombstones included) in document order.
        self._elements = elements
        self._removed = removed
        self._clock = clock
        self._order = order
        self._visible: list[Id] | None = None

    @classmethod
    def _make(cls, elements: dict, removed: frozenset, clock: int, order: list[Id] | None) -> RGA:
        new = object.__new__(cls)
        new._init(elements, removed, clock, order)
        return new

    # -- reading ---------------------------------------------------------------
    def order(self) -> list[Id]:
        """Every element's id in list order, removed ones included (the tree in pre-order)."""
        if self._order is None:
            children: dict[Id, list[Id]] = {}
            for i, (parent, _) in self._elements.items():
                children.setdefault(parent, []).append(i)
            stack = sorted(children.get(ROOT, ()))  # popped from the end: largest id first
            order = []
            while stack:
                i = stack.pop()
                order.append(i)
                kids = children.get(i)
                if kids:
                    stack.extend(sorted(kids))
            self._order = order
        return self._order

    def ids(self) -> list[Id]:
        """The ids of the elements that are not removed, in list order."""
        if self._visible is None:
            dead = self._removed
            self._visible = [i for i in self.order() if i not in dead]
        return self._visible

    @property
    def value(self) -> tuple[Any, ...]:
        """The items, in order."""
        elements = self._elements
        return tuple(elements[i][1] for i in self.ids())

    @property
    def text(self) -> str:
        """The items joined as a string (for a text of characters)."""
        return "".join(map(str, self.value))

    def __len__(self) -> int:
        return len(self.ids())

    def parent(self, element: Id) -> Id:
        """The element ``element`` was inserted after (``ROOT`` for the start)."""
        return self._elements[element][0]

    # -- updating -------------------------------------------------------------
    def insert(self, index: int, items: Sequence[Any], replica: str) -> RGA:
        """Insert ``items`` (a str inserts its characters) before position ``index``, at ``replica``.

        The first item goes after the element now at ``index - 1`` (or at the
        start), each next one after the one before it.
        """
        valid.string("replica", replica)
        visible = self.ids()
        valid.integer("index", index, ge=0, le=len(visible))
        valid.instance("items", items, Sequence)
        parent = visible[index - 1] if index else ROOT
        elements = dict(self._elements)
        new: list[Id] = []
        clock = self._clock
        for item in items:
            clock += 1
            i = (clock, replica)  # larger than every id seen here
            elements[i] = (new[-1] if new else parent, item)
            new.append(i)
        order = None
        if self._order is not None:  # the new chain goes right after its parent
            at = self._order.index(parent) + 1 if parent != ROOT else 0
            order = self._order[:at] + new + self._order[at:]
        return RGA._make(elements, self._removed, clock, order)

    def delete(self, index: int, count: int = 1) -> RGA:
        """Remove ``count`` items from position ``index`` on (they stay as tombstones)."""
        visible = self.ids()
        valid.integer("index", index, ge=0, le=max(len(visible) - 1, 0))
        valid.integer("count", count, ge=0, le=len(visible) - index)
        gone = frozenset(visible[index : index + count])
        return RGA._make(self._elements, self._removed | gone, self._clock, self._order)

    def edit(self, text: str, replica: str) -> RGA:
        """Make the text read ``text``, by deleting and inserting only what changed.

        The changes are found with :class:`difflib.SequenceMatcher` and applied
        from the end backwards, so the positions of earlier ones stay valid.
        """
        valid.string("text", text, empty=True)
        old = self.text
        if len(old) != len(self.ids()):
            raise ValueError("edit works on a text: every item must be a single character")
        doc = self
        changes = difflib.SequenceMatcher(None, old, text, autojunk=False).get_opcodes()
        for tag, i1, i2, j1, j2 in reversed(changes):
            if tag in ("replace", "delete"):
                doc = doc.delete(i1, i2 - i1)
            if tag in ("replace", "insert"):
                doc = doc.insert(i1, text[j1:j2], replica)
        return doc

    def merge(self, other: RGA) -> RGA:
        """Every element and every tombstone of both sides."""
        self._same_type(other)
        mine, theirs = self._elements, other._elements
        if theirs.keys() <= mine.keys():  # nothing new: keep this order
            if other._removed <= self._removed:
                return self
            return RGA._make(mine, self._removed | other._removed, self._clock, self._order)
        if mine.keys() <= theirs.keys():
            return RGA._make(theirs, self._removed | other._removed, other._clock, other._order)
        elements = {**mine, **theirs}
        return RGA._make(elements, self._removed | other._removed, max(self._clock, other._clock), None)

    # -- the rest ---------------------------------------------------------------
    @property
    def elements(self) -> Mapping[Id, tuple[Id, Any]]:
        """``id -> (parent id, item)`` for every element, removed ones included."""
        return dict(self._elements)

    @property
    def removed(self) -> frozenset[Id]:
        """The tombstones."""
        return self._removed

    def metadata(self) -> dict[str, int]:
        return {"elements": len(self._elements), "tombstones": len(self._removed)}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RGA) and self._elements == other._elements and self._removed == other._removed
        )

    def __hash__(self) -> int:
        return hash((frozenset(self._elements), self._removed))

    def __repr__(self) -> str:
        shown = self.text if all(isinstance(v, str) for v in self.value) else list(self.value)
        return f"RGA({shown!r}, elements={len(self._elements)}, tombstones={len(self._removed)})"


def _is_id(x: Any) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], int) and isinstance(x[1], str)
