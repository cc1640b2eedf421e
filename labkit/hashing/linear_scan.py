"""A first attempt at a consistent-hash ring, kept so it can be compared.

This is the ring as it is often first written (a ``ConsistentHash`` class with
``add_node`` and ``get_node``), and notebook 06 starts from it:

* MD5 of ``f"{node}:{i}"`` places each of ``replicas`` virtual nodes
  (:meth:`LinearScanRing.hash` is the MD5 digest read as an integer);
* ``get_node`` scans ``sorted_keys`` from the start until it finds the first
  point ``>= hash(key)``: a **linear scan, O(V)** for V virtual nodes (1,500 for
  10 nodes at 150 replicas), where a binary search needs about 11 comparisons;
* an empty ring returns ``None`` rather than raising;
* there is no ``remove_node``; and if two virtual nodes hash to the same point,
  the later one silently overwrites the earlier in ``ring`` while the point is
  appended to ``sorted_keys`` twice.

:class:`labkit.hashing.HashRing` is the improved version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from labkit import validation as valid


class LinearScanRing:
    """A first attempt: a linear-scan, MD5 consistent-hash ring (O(V) per lookup)."""

    def __init__(self, nodes: Iterable[str] | None = None, replicas: int = 150) -> None:
        valid.integer("replicas", replicas, ge=1)
        self.replicas = replicas
        self.ring: dict[int, str] = {}
        self.sorted_keys: list[int] = []

        if nodes:
            for node in nodes:
                self.add_node(node)

    def hash(self, key: str) -> int:
        """MD5 of ``key`` as an integer."""
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, got {type(key).__name__}")
        return int(hashlib.md5(key.encode()).hexdigest(), 16)

    def add_node(self, node: str) -> None:
        """Place ``replicas`` virtual nodes for ``node`` and re-sort all points."""
        for i in range(self.replicas):
            key = self.hash(f"{node}:{i}")
            self.ring[key] = node
            self.sorted_keys.append(key)

        self.sorted_keys.sort()

    def get_node(self, string_key: str) -> str | None:
        """The first node clockwise from ``string_key``, found by scanning every point."""
        if not self.ring:
            return None

        key = self.hash(string_key)

        # Find the next node in the ring (linear scan: this is the O(V) part).
        for ring_key in self.sorted_keys:
            if key <= ring_key:
                return self.ring[ring_key]

        # Wrap around to the first node
        return self.ring[self.sorted_keys[0]]
