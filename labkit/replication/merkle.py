"""Merkle trees for anti-entropy (Dynamo, SOSP 2007, §4.7; Merkle 1987).

Two replicas that want to know where they differ could send each other
every key. A hash tree lets them send far less: the keys are split into
``2**depth`` *buckets* (by a hash of the key); a leaf holds the hash of one
bucket's contents and every inner node the hash of its two children. Equal
roots mean equal data (up to hash collisions) and the exchange stops after
one hash; otherwise the replicas walk down only the branches whose hashes
differ, and finally swap just the keys of the differing buckets.

:func:`diff` plays the whole walk locally and counts the hashes it would
send; :class:`~labkit.replication.replica.ReplicaNode` plays it over the
network with :class:`~labkit.replication.messages.MerkleLevel` messages.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from typing import Any

from labkit import validation as valid
from labkit.replication.versions import Siblings, Versioned


def bucket_of(key: str, depth: int) -> int:
    """The leaf bucket of ``key`` in a tree with ``2**depth`` leaves."""
    return zlib.crc32(key.encode()) & ((1 << depth) - 1)


def _digest(parts: Iterable[bytes]) -> bytes:
    """A 16-byte BLAKE2b hash of ``parts``, one after the other."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part)
    return h.digest()


def _tagged(tag: bytes, body: bytes) -> bytes:
    return tag + len(body).to_bytes(8, "big") + body


def canonical(value: Any) -> bytes:
    """Bytes for ``value`` that do not depend on the order it was built in, or on the process.

    ``repr`` is not such an encoding: ``{"a": 1, "b": 2}`` and
    ``{"b": 2, "a": 1}`` are equal but print differently, and a set of
    strings prints in an order that changes from one Python process to the
    next. Here every value is a type tag, a length and a body; dict items
    and set elements are sorted by their own encodings. The type is part of
    the value (``1``, ``1.0`` and ``True`` encode differently). Types other than None, bool, int, float, str,
    bytes, tuple, list, dict, set and frozenset fall back to their type name
    and ``repr`` (so give such values a deterministic ``repr``).
    """
    if value is None:
        return b"N"
    if isinstance(value, bool):  # before int: True is an int too
        return b"T" if value else b"F"
    if isinstance(value, int):
        return _tagged(b"i", str(value).encode())
    if isinstance(value, float):
        return _tagged(b"f", value.hex().encode())
    if isinstance(value, str):
        return _tagged(b"s", value.encode("utf-8", "surrogatepass"))
    if isinstance(value, (bytes, bytearray)):
        return _tagged(b"b", bytes(value))
    if isinstance(value, (tuple, list)):
        return _tagged(b"t" if isinstance(value, tuple) else b"l", b"".join(canonical(x) for x in value))
    if isinstance(value, dict):
        items = sorted(canonical(k) + canonical(v) for k, v in value.items())
        return _tagged(b"d", b"".join(items))
    if isinstance(value, (set, frozenset)):
        return _tagged(b"e", b"".join(sorted(canonical(x) for x in value)))
    return _tagged(b"r", f"{type(value).__qualname__}:{value!r}".encode())


def _version_bytes(v: Versioned) -> bytes:
    dot = canonical((v.dot.node, v.dot.counter))
    return dot + canonical(tuple(v.context)) + canonical(v.timestamp) + canonical(v.value)


def version_digest(key: str, versions: Siblings) -> bytes:
    """A digest of one key's sibling set (dots, contexts, values), independent of sibling order."""
    return _digest([canonical(key), *sorted(_version_bytes(v) for v in versions)])


class MerkleTree:
    """A complete binary hash tree over ``2**depth`` buckets of keys.

    ``levels[0]`` is ``[root]``; ``levels[depth]`` holds the leaves.
    """

    __slots__ = ("depth", "levels", "buckets")

    def __init__(self, items: Iterable[tuple[str, Siblings]], depth: int = 4) -> None:
        valid.integer("depth", depth, ge=0, le=16)
        self.depth = depth
        width = 1 << depth
        self.buckets: list[list[tuple[str, bytes]]] = [[] for _ in range(width)]
        for key, versions in items:
            if versions:  # a never-written key and an absent key look the same
                self.buckets[bucket_of(key, depth)].append((key, version_digest(key, versions)))
        levels = [[_digest(digest for _, digest in sorted(bucket)) for bucket in self.buckets]]
        while len(levels[0]) > 1:  # the level above hashes each pair of the one below
            pairs = zip(levels[0][::2], levels[0][1::2], strict=True)
            levels.insert(0, [_digest(pair) for pair in pairs])
        # Invariant: len(levels[i]) == 2**i and each inner hash is the hash of its two children.
        self.levels = levels

    @property
    def root(self) -> bytes:
        return self.levels[0][0]


def diff(a: MerkleTree, b: MerkleTree) -> tuple[list[int], int]:
    """Walk both trees from the root; return (differing leaf buckets, hashes sent).

    Each level, one side sends the hashes of the nodes still in question
    (the root, then the children of the nodes that differed), which is what
    the replicas do over the network; the count is the total sent.
    """
    valid.instance("a", a, MerkleTree)
    valid.instance("b", b, MerkleTree)
    if a.depth != b.depth:
        raise ValueError(f"trees must have the same depth, got {a.depth} and {b.depth}")
    positions, sent = [0], 0
    for level in range(a.depth + 1):
        sent += len(positions)
        differing = [p for p in positions if a.levels[level][p] != b.levels[level][p]]
        if level == a.depth or not differing:
            break
        positions = [c for p in differing for c in (2 * p, 2 * p + 1)]  # the children of what differs
    return differing, sent
