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

import mmh3

from labkit.hashing.hashfuncs import NodeList, check_key


class ModuloHash(NodeList):
    """``nodes[hash(key) % len(nodes)]``, nodes kept in the order added.

    Adding a node makes N grow by one and removing one shifts the later nodes down:
    either way most keys change node.
    """

    __slots__ = ()

    def node_for(self, key: str | bytes) -> str:
        """``nodes[hash(key) % N]``."""
        check_key(key)
        return self._nodes[mmh3.hash128(key) % self._bucket_count()]
