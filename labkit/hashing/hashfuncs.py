"""Hash functions that place keys and virtual nodes on a ring.

A consistent-hashing scheme needs a hash that spreads similar names (``node-1#0``,
``node-1#1``, ``user:42``) uniformly and independently over a large space. Two
are used in this package:

* :func:`mmh3_128`, MurmurHash3 x64 128-bit (the default): fast, non-cryptographic,
  well mixed; its 2**128 space makes two virtual nodes landing on the same point
  practically impossible.
* :func:`md5_int`, the MD5 digest read as an integer, which is what the first-attempt
  :class:`~labkit.hashing.LinearScanRing` uses. It is about as well mixed, but much slower, and being
  cryptographic buys nothing here: nobody is attacking the ring.

Keys are ``str`` or ``bytes``; any other type is refused, because silently calling
``str()`` on it would make ``1`` and ``"1"`` the same key.

:class:`NodeList` keeps the named nodes of the schemes without a ring: for those that map a
key to a bucket number (``hash % N``, jump hashing) node ``i`` is bucket ``i``; rendezvous
hashing keeps its list in name order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import mmh3

from labkit import validation as valid

HashFunction = Callable[[str | bytes], int]
"""A function from a key (``str`` or ``bytes``) to a non-negative integer."""


def check_key(key: object, name: str = "key") -> None:
    """Raise TypeError unless ``key`` is ``str`` or ``bytes``."""
    if not isinstance(key, str | bytes):
        raise TypeError(f"{name} must be str or bytes, got {type(key).__name__}")


def mmh3_128(key: str | bytes) -> int:
    """MurmurHash3 (x64, 128-bit) of ``key`` as an unsigned integer in ``[0, 2**128)``."""
    check_key(key)
    # The defaults are seed 0, x64 and *unsigned*; spell nothing positionally: in mmh3 5.3 a
    # positional ``signed=False`` still yields negative numbers.
    return mmh3.hash128(key)


def md5_int(key: str | bytes) -> int:
    """MD5 digest of ``key`` (UTF-8 for str) as an integer in ``[0, 2**128)``."""
    check_key(key)
    data = key.encode() if isinstance(key, str) else key
    return int.from_bytes(hashlib.md5(data).digest(), "big")


class NodeList:
    """Named nodes in a list (in the order added): node ``i`` is bucket ``i`` of a bucket scheme."""

    __slots__ = ("_nodes",)

    def __init__(self, nodes: Iterable[str] = ()) -> None:
        if isinstance(nodes, str | bytes):
            raise TypeError("nodes must be an iterable of node names, not a string")
        self._nodes: list[str] = []
        for node in nodes:
            self.add_node(node)

    def add_node(self, node: str) -> None:
        """Append ``node`` as the next bucket."""
        valid.string("node", node)
        if node in self._nodes:
            raise ValueError(f"node {node!r} is already present")
        self._nodes.append(node)

    def remove_node(self, node: str) -> None:
        """Remove ``node``; the nodes after it move down one bucket."""
        if node not in self._nodes:
            raise ValueError(f"node {node!r} is not present (nodes: {self._nodes})")
        self._nodes.remove(node)

    def _bucket_count(self) -> int:
        if not self._nodes:
            raise ValueError("no nodes: add_node() before looking keys up")
        return len(self._nodes)

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes, in list order (bucket order for a bucket scheme)."""
        return tuple(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)
