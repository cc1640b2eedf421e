"""Messages on the wire: length-prefixed frames of JSON, and an explicit registry of types.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON. Nothing read from the network is ever unpickled or evaluated: a frame
decodes to plain JSON values, and only the message types named in a
:class:`Registry` are rebuilt from them. Anything else (a frame too long, bytes
that are not JSON, a type nobody registered, fields that do not fit) raises
:class:`WireError`, and the receiver refuses the connection with a log line.

The encoding of a registered frozen dataclass is a JSON object
``{"@": "AppendEntries", "f": [term, leader_id, ...]}`` with the fields in
declaration order. Tuples become JSON arrays and every JSON array decodes to a
tuple (messages are immutable, so they hold tuples, never lists). Types that
are not dataclasses (a vector clock) register a pair of functions to and from
a JSON-able value; ``dict``, ``frozenset`` and ``bytes`` (as base64 text) are built in.

Which registry a node uses is part of its configuration (see
:func:`registry_for`): the Raft store registers its RPCs and log entries, the
quorum store its own messages, and a learner's node type can register more.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import struct
from collections.abc import Callable, Iterable
from typing import Any

from labkit import validation as valid

__all__ = [
    "MAX_FRAME",
    "Registry",
    "WireError",
    "FrameReader",
    "frame",
    "registry_for",
]

MAX_FRAME = 4 << 20  # bytes; a longer frame is refused (a stray client, or a bug)
_HEADER = struct.Struct(">I")


class WireError(ValueError):
    """A frame that cannot be accepted: too long, not JSON, or not a registered message."""


class Registry:
    """The message types one kind of node accepts from the network, by name.

    ``register(cls)`` for a dataclass; ``register(cls, to_wire=..., from_wire=...)``
    for any other type. ``early`` names the message types a driver may send
    before the batch's durable writes are synced (see :mod:`labkit.net.node`);
    by default every message waits for the sync.
    """

    def __init__(self, name: str) -> None:
        self.name = valid.string("name", name)
        self._by_name: dict[str, tuple[type, Callable[[Any], Any] | None, Callable[[Any], Any]]] = {}
        self._by_type: dict[type, tuple[str, Callable[[Any], Any]]] = {}
        self.early: frozenset[type] = frozenset()
        self.register(dict, to_wire=lambda d: [[k, v] for k, v in d.items()], from_wire=lambda v: dict(v))
        self.register(frozenset, to_wire=lambda s: sorted(s, key=repr), from_wire=frozenset)
        self.register(bytes, to_wire=lambda b: base64.b64encode(b).decode("ascii"), from_wire=_from_base64)

    def register(
        self,
        cls: type,
        *,
        to_wire: Callable[[Any], Any] | None = None,
        from_wire: Callable[[Any], Any] | None = None,
        name: str | None = None,
        early: bool = False,
    ) -> type:
        """Accept ``cls`` on the wire under ``name`` (default: the class name)."""
        if not isinstance(cls, type):
            raise TypeError(f"cls must be a class, got {cls!r}")
        name = cls.__name__ if name is None else name
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        known = self._by_name.get(name)
        if known is not None and known[0] is not cls:
            raise ValueError(f"name {name!r} is already registered for {known[0].__qualname__}")
        if (to_wire is None) != (from_wire is None):
            raise TypeError("to_wire and from_wire go together: give both or neither")
        if to_wire is None:
            if not dataclasses.is_dataclass(cls):
                raise TypeError(
                    f"{cls.__qualname__} is not a dataclass: register it with to_wire= and from_wire="
                )
            fields = dataclasses.fields(cls)
            names = tuple(f.name for f in fields)
            # JSON would write a dict as a plain object, which the decoder refuses
            # (objects are tagged messages): fields that may hold one are tagged here.
            mapped = any("dict" in str(f.type) or "Mapping" in str(f.type) for f in fields)

            def encode(obj: Any, _names: tuple[str, ...] = names, _mapped: bool = mapped) -> Any:
                values = [getattr(obj, n) for n in _names]
                return [_tag_dicts(v) for v in values] if _mapped else values

            def decode(fields: Any, _cls: type = cls, _n: int = len(names)) -> Any:
                if not isinstance(fields, tuple) or len(fields) != _n:
                    raise WireError(f"{_cls.__name__} needs {_n} fields, got {fields!r}"[:200])
                return _cls(*fields)

            self._by_name[name] = (cls, None, decode)
            self._by_type[cls] = (name, encode)
        else:
            self._by_name[name] = (cls, to_wire, from_wire)
            self._by_type[cls] = (name, to_wire)
        if early:
            self.early = self.early | {cls}
        return cls

    def register_all(self, classes: Iterable[type]) -> None:
        """Register several dataclasses."""
        for cls in classes:
            self.register(cls)

    @property
    def names(self) -> list[str]:
        """The registered type names."""
        return sorted(self._by_name)

    # -- encoding --------------------------------------------------------------
    def _default(self, obj: Any) -> Any:
        entry = self._by_type.get(type(obj))
        if entry is None:
            raise TypeError(
                f"{type(obj).__qualname__} is not registered with the {self.name!r} wire registry; "
                f"registered: {', '.join(self.names)}"
            )
        name, encode = entry
        return {"@": name, "f": encode(obj)}

    def encode(self, msg: Any) -> bytes:
        """``msg`` as one frame (length prefix included)."""
        body = json.dumps(msg, default=self._default, separators=(",", ":"), ensure_ascii=False).encode()
        if len(body) > MAX_FRAME:
            raise WireError(f"message of {len(body)} bytes exceeds the {MAX_FRAME}-byte frame limit")
        return _HEADER.pack(len(body)) + body

    # -- decoding --------------------------------------------------------------
    def _hook(self, obj: dict) -> Any:
        tag = obj.get("@")
        if tag is None or len(obj) != 2 or "f" not in obj:
            raise WireError(
                f"a JSON object must be a tagged message {{'@': type, 'f': fields}}, got {obj!r}"[:200]
            )
        entry = self._by_name.get(tag) if isinstance(tag, str) else None
        if entry is None:
            raise WireError(f"unknown message type {tag!r}"[:120])
        cls, to_wire, decode = entry
        fields = _tuples(obj["f"])
        try:
            return decode(fields)
        except WireError:
            raise
        except (TypeError, ValueError) as e:
            raise WireError(f"bad fields for {tag}: {e}"[:200]) from None

    def decode(self, body: bytes) -> Any:
        """One frame's body (without the length prefix) back to a message."""
        try:
            return _tuples(json.loads(body, object_hook=self._hook))
        except WireError:
            raise
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
            raise WireError(f"frame is not valid JSON: {e}"[:200]) from None


def _from_base64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise WireError(f"bytes travel as a base64 string, got {text!r}"[:120])
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise WireError(f"bytes are not valid base64: {e}"[:120]) from None


def _tag_dicts(value: Any) -> Any:
    """Dicts (at any depth of dicts) as tagged pairs, which JSON cannot tell from messages otherwise."""
    if isinstance(value, dict):
        return {"@": "dict", "f": [[k, _tag_dicts(v)] for k, v in value.items()]}
    return value


def _tuples(value: Any) -> Any:
    """JSON arrays as tuples, all the way down (messages hold tuples, never lists)."""
    if type(value) is list:
        return tuple([_tuples(v) if type(v) is list else v for v in value])
    return value


def frame(body: bytes) -> bytes:
    """A raw frame around ``body`` (for tests and tools that speak the protocol by hand)."""
    return _HEADER.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream into frame bodies; refuses a frame longer than ``limit``."""

    __slots__ = ("_buf", "limit")

    def __init__(self, limit: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every complete frame body now available."""
        buf = self._buf
        buf += data
        out = []
        pos = 0
        n = len(buf)
        while n - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            if size > self.limit:
                raise WireError(f"frame of {size} bytes exceeds the {self.limit}-byte limit")
            if n - pos - 4 < size:
                break
            out.append(bytes(buf[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole frame."""
        return len(self._buf)


# ---------------------------------------------------------------------------
# The registries of labkit's node kinds
# ---------------------------------------------------------------------------
def _raft_registry() -> Registry:
    from labkit.net import messages
    from labkit.raft import messages as rm

    reg = Registry("raft")
    reg.register_all([rm.LogEntry, rm.KVCommand, rm.RequestVote, rm.RequestVoteReply, rm.AppendEntriesReply])
    reg.register(rm.NoOp, to_wire=lambda _: 0, from_wire=lambda _: rm.NOOP)
    # The leader's AppendEntries promises nothing about its own disk: it may
    # leave before the leader's write is synced (see labkit.net.node).
    reg.register(rm.AppendEntries, early=True)
    reg.register_all([rm.ClientRequest, rm.ClientReply])
    # What production Rafts add (snapshots, PreVote, membership, leadership transfer).
    reg.register_all(
        [
            rm.Configuration,
            rm.Snapshot,
            rm.InstallSnapshot,
            rm.InstallSnapshotReply,
            rm.PreVote,
            rm.PreVoteReply,
            rm.TimeoutNow,
        ]
    )
    messages.register_runtime(reg)
    return reg


def _quorum_registry() -> Registry:
    from labkit.clocks import VectorClock
    from labkit.net import messages
    from labkit.replication import messages as qm
    from labkit.replication import versions

    reg = Registry("quorum")
    reg.register(
        VectorClock,
        to_wire=lambda vc: [[n, c] for n, c in vc.as_dict().items()],
        from_wire=lambda pairs: VectorClock(dict(pairs)),
    )
    for name in dir(versions):
        obj = getattr(versions, name)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == versions.__name__:
            reg.register(obj)
    for name in qm.__all__:
        obj = getattr(qm, name)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj):
            reg.register(obj)
    messages.register_runtime(reg)
    return reg


_FACTORIES: dict[str, Callable[[], Registry]] = {"raft": _raft_registry, "quorum": _quorum_registry}
_CACHE: dict[str, Registry] = {}


def registry_for(kind: str) -> Registry:
    """The registry of a node kind: ``"raft"`` (the Raft key-value store) or ``"quorum"``."""
    if kind not in _FACTORIES:
        raise ValueError(f"kind must be one of {sorted(_FACTORIES)}, got {kind!r}")
    if kind not in _CACHE:
        _CACHE[kind] = _FACTORIES[kind]()
    return _CACHE[kind]
