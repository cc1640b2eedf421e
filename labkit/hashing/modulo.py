"""The naive scheme consistent hashing replaces: ``hash(key) % N``.

With N nodes in a list, key k goes to ``nodes[hash(k) % N]``. Perfectly balanced
and O(1), but when N changes almost every key moves: going from N to N+1 nodes
a key stays put only if ``h % N == h % (N+1)``, which holds for about 1/(N+1)
of uniformly hashed keys. So about N/(N+1) of the data moves (90 % for 9 -> 10),
where a consistent scheme moves only the 1/(N+1) that the new node must take
(DDIA ch. 6, "Rebalancing Partitions": "How not to do it: hash mod N").

Python's built-in ``hash()`` of a str changes from one process to the next
(hash randomization), so this uses MurmurHash3 like the ring does.
"""

from __future__ import annotations

from collections.abc import Iterable

import mmh3

from labkit.hashing.hashfuncs import check_key
from labkit.hashing.ring import check_node_name

__all__ = ["ModuloHash"]


class ModuloHash:
    """``nodes[hash(key) % len(nodes)]``, nodes kept in the order added."""

    __slots__ = ("_nodes",)

    def __init__(self, nodes: Iterable[str] = ()) -> None:
        if isinstance(nodes, str | bytes):
            raise TypeError("nodes must be an iterable of node names, not a string")
        self._nodes: list[str] = []
        for node in nodes:
            self.add_node(node)

    def add_node(self, node: str) -> None:
        """Append ``node``; N grows by one, so most keys change node."""
        check_node_name(node)
        if node in self._nodes:
            raise ValueError(f"node {node!r} is already present")
        self._nodes.append(node)

    def remove_node(self, node: str) -> None:
        """Remove ``node``; N shrinks and the later nodes shift down, so most keys move."""
        if node not in self._nodes:
            raise ValueError(f"node {node!r} is not present (nodes: {self._nodes})")
        self._nodes.remove(node)

    def node_for(self, key: str | bytes) -> str:
        """``nodes[hash(key) % N]``."""
        check_key(key)
        if not self._nodes:
            raise ValueError("no nodes: add_node() before looking keys up")
        return self._nodes[mmh3.hash128(key) % len(self._nodes)]

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)
