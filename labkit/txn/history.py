"""Transaction histories: what each transaction did and saw, as the checker needs it.

A *history* is a sequence of :class:`Txn` records. Each transaction has a name
(``"T1"``), the micro-operations it performed in order (:class:`Op`), and how
it ended (:class:`Status`): committed, aborted, or unknown (the client never
learned, e.g. the connection broke during ``COMMIT``; Elle's ``:info``).

Two kinds of keys, as in Elle (Kingsbury & Alvaro, "Elle: Inferring Isolation
Anomalies from Experimental Observations", VLDB 2020, §3):

* **list-append** keys: ``append`` adds one element to the key's list, and a
  read returns the whole list (a tuple). Every element appended to a key is
  unique, so a read names every write it saw *and their order*: the version
  order of the key can be read off the longest read (§3.1, "recoverability"
  and "traceability");
* **read/write register** keys: ``write`` sets a value, a read returns one.
  Values written to a key are unique too, so a read names the write it saw;
  the order of versions can only be inferred in part (a transaction that read
  ``v`` and then wrote ``w`` puts ``v`` before ``w``). ``None`` is the value
  of a key nobody has written yet.

A ``scan`` reads every register key that starts with a prefix (a *predicate*
read in Adya's sense, "Weak Consistency: A Generalized Theory and Optimistic
Implementations for Distributed Transactions", MIT 1999, §3.1): it returns
the matching keys that exist and their values.

For notebooks and tests, :func:`parse_history` reads a compact notation, one
transaction per line::

    T1: r x [1 2], a y 3          # read x = [1, 2] (a list), append 3 to y
    T2 aborted: w z 10            # write z = 10, then abort
    T3: r z _, s room: {}         # read z = None (never written); scan "room:" saw nothing
    T4 unknown: a x 4             # the client never learned whether T4 committed

and :func:`format_txn` writes it back.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from labkit import validation as valid

__all__ = [
    "Fun",
    "Op",
    "Status",
    "Txn",
    "History",
    "append",
    "read",
    "write",
    "scan",
    "as_history",
    "parse_history",
    "parse_txn",
    "format_op",
    "format_txn",
    "format_value",
]


class Fun(Enum):
    """What a micro-operation does (the letter is its short name in the notation)."""

    READ = "r"
    APPEND = "a"
    WRITE = "w"
    SCAN = "s"


class Status(Enum):
    """How a transaction ended, as far as its client knows."""

    COMMITTED = "committed"
    ABORTED = "aborted"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Op:
    """One micro-operation of a transaction.

    * ``Op(Fun.APPEND, k, e)``: append element ``e`` to list ``k``;
    * ``Op(Fun.WRITE, k, v)``: set register ``k`` to ``v`` (not ``None``);
    * ``Op(Fun.READ, k, seen)``: read ``k``; ``seen`` is a tuple for a list key,
      a value (``None`` = never written) for a register;
    * ``Op(Fun.SCAN, prefix, seen)``: read every register key starting with
      ``prefix``; ``seen`` is a tuple of ``(key, value)`` pairs sorted by key.
    """

    f: Fun
    key: Hashable
    value: Any = None

    def __post_init__(self) -> None:
        valid.instance("f", self.f, Fun)
        try:
            hash(self.key)
        except TypeError:
            raise TypeError(f"key must be hashable, got {self.key!r}") from None
        if self.f is Fun.WRITE and self.value is None:
            raise ValueError(
                f"write {self.key!r}: None is the value of a key never written; write another value"
            )
        if self.f is Fun.APPEND:
            try:
                hash(self.value)
            except TypeError:
                raise TypeError(
                    f"append {self.key!r}: elements must be hashable, got {self.value!r}"
                ) from None
        if self.f is Fun.SCAN:
            if not isinstance(self.key, str):
                raise TypeError(f"scan: the prefix must be a str, got {self.key!r}")
            if not isinstance(self.value, tuple) or not all(
                isinstance(p, tuple) and len(p) == 2 for p in self.value
            ):
                raise TypeError(
                    f"scan {self.key!r}: seen must be a tuple of (key, value) pairs, got {self.value!r}"
                )

    @property
    def is_write(self) -> bool:
        return self.f is Fun.APPEND or self.f is Fun.WRITE

    def __str__(self) -> str:
        return format_op(self)


def append(key: Hashable, element: Any) -> Op:
    """Append ``element`` to the list at ``key``."""
    return Op(Fun.APPEND, key, element)


def write(key: Hashable, value: Any) -> Op:
    """Set the register ``key`` to ``value``."""
    return Op(Fun.WRITE, key, value)


def read(key: Hashable, seen: Any) -> Op:
    """A read of ``key`` that returned ``seen`` (a list is stored as a tuple)."""
    if isinstance(seen, list):
        seen = tuple(seen)
    return Op(Fun.READ, key, seen)


def scan(prefix: str, seen: Mapping[Hashable, Any]) -> Op:
    """A read of every register key starting with ``prefix``; ``seen`` maps the keys found to values."""
    if not isinstance(seen, Mapping):
        raise TypeError(f"scan {prefix!r}: seen must be a mapping of key to value, got {seen!r}")
    return Op(Fun.SCAN, prefix, tuple(sorted(seen.items(), key=lambda kv: str(kv[0]))))


@dataclass(frozen=True, slots=True)
class Txn:
    """One transaction: its name, its micro-operations in order, and how it ended.

    ``process`` is the client that ran it (optional; the checker does not use it).
    """

    name: str
    ops: tuple[Op, ...]
    status: Status = Status.COMMITTED
    process: Hashable = None

    def __post_init__(self) -> None:
        valid.string("name", self.name)
        valid.instance("status", self.status, Status)
        if isinstance(self.ops, list):
            object.__setattr__(self, "ops", tuple(self.ops))
        if not isinstance(self.ops, tuple) or not all(isinstance(o, Op) for o in self.ops):
            raise TypeError(f"{self.name}: ops must be a sequence of Op, got {self.ops!r}")

    @property
    def committed(self) -> bool:
        return self.status is Status.COMMITTED

    def __str__(self) -> str:
        return format_txn(self)


History = tuple[Txn, ...]


def as_history(txns: Iterable[Txn]) -> History:
    """Check that ``txns`` is a sequence of :class:`Txn` with distinct names and return it as a tuple."""
    valid.collection("history", txns, "a sequence of Txn")
    out = tuple(txns)
    seen: set[str] = set()
    for i, t in enumerate(out):
        if not isinstance(t, Txn):
            raise TypeError(f"history[{i}] must be a Txn, got {t!r}")
        if t.name in seen:
            raise ValueError(f"history: two transactions are named {t.name!r}; names must be unique")
        seen.add(t.name)
    return out


# ---------------------------------------------------------------------------
# The compact notation
# ---------------------------------------------------------------------------
_HEAD = re.compile(r"^\s*(?P<name>[^\s:]+)(?:\s+(?P<status>committed|aborted|unknown))?\s*:\s*(?P<body>.*)$")
_STATUS = {s.value: s for s in Status}


def _atom(text: str) -> Any:
    if text in ("_", "nil", "None"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _value(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        if not text.endswith("]"):
            raise ValueError(f"a list must end with ']', got {text!r}")
        return tuple(_atom(t) for t in text[1:-1].split())
    if text.startswith("{"):
        if not text.endswith("}"):
            raise ValueError(f"a scan result must end with '}}', got {text!r}")
        pairs = {}
        for item in text[1:-1].split():
            k, eq, v = item.partition("=")
            if not eq:
                raise ValueError(f"a scan result lists key=value pairs, got {item!r}")
            pairs[k] = _atom(v)
        return pairs
    if " " in text:
        raise ValueError(f"a value is one word, a [list] or a {{scan result}}, got {text!r}")
    return _atom(text)


def _split_ops(body: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in body:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _parse_op(text: str) -> Op:
    m = re.fullmatch(r"(?P<f>[rwas])\s+(?P<key>[^\s\[\]{}]+)\s+(?P<value>.+)", text)
    if m is None:
        raise ValueError(
            f"cannot read the operation {text!r}: write 'r KEY SEEN', 'a KEY ELEMENT', 'w KEY VALUE' or 's PREFIX {{k=v ...}}'"
        )
    f, key, value = Fun(m["f"]), _atom(m["key"]), _value(m["value"])
    if f is Fun.SCAN:
        if not isinstance(value, dict):
            raise ValueError(f"a scan's result is written {{k=v ...}}, got {m['value']!r}")
        return scan(str(key), value)
    if isinstance(value, dict):
        raise ValueError(f"only a scan returns {{k=v ...}}, got {text!r}")
    if f is Fun.READ:
        return read(key, value)
    if isinstance(value, tuple):
        raise ValueError(f"{text!r}: appends and writes take one value, not a list")
    return Op(f, key, value)


def parse_txn(line: str) -> Txn:
    """One transaction in the notation: ``"T1: r x [1 2], a y 3"`` or ``"T2 aborted: w z 1"``."""
    if not isinstance(line, str):
        raise TypeError(f"a transaction is written as a str like 'T1: r x [1], a x 2', got {line!r}")
    m = _HEAD.match(line.split("#", 1)[0])
    if m is None:
        raise ValueError(f"cannot read {line!r}: write 'NAME: op, op, ...' or 'NAME aborted: op, ...'")
    ops = tuple(_parse_op(p) for p in _split_ops(m["body"]))
    return Txn(m["name"], ops, _STATUS[m["status"] or "committed"])


def parse_history(*lines: str) -> History:
    """A history in the notation, one transaction per argument (or per line of one string)."""
    if len(lines) == 1 and "\n" in lines[0]:
        lines = tuple(line for line in lines[0].splitlines() if line.split("#", 1)[0].strip())
    return as_history(parse_txn(line) for line in lines)


def format_value(value: Any) -> str:
    if value is None:
        return "_"
    if isinstance(value, tuple):
        if value and all(isinstance(p, tuple) and len(p) == 2 for p in value):
            return "{" + " ".join(f"{k}={format_value(v)}" for k, v in value) + "}"
        return "[" + " ".join(format_value(v) for v in value) + "]"
    return str(value)


def format_op(op: Op) -> str:
    """``"r x [1 2]"``, ``"a x 3"``, ``"w y 10"``, ``"s room: {room:1=alice}"``."""
    if op.f is Fun.SCAN:
        return f"s {op.key} " + ("{" + " ".join(f"{k}={format_value(v)}" for k, v in op.value) + "}")
    return f"{op.f.value} {op.key} {format_value(op.value)}"


def format_txn(txn: Txn) -> str:
    """The transaction in the notation of :func:`parse_txn`."""
    status = "" if txn.status is Status.COMMITTED else f" {txn.status.value}"
    return f"{txn.name}{status}: " + ", ".join(format_op(o) for o in txn.ops)


def names(history: Sequence[Txn]) -> list[str]:
    return [t.name for t in history]
