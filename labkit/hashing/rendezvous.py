"""Rendezvous (highest random weight) hashing (Thaler and Ravishankar, "Using
Name-Based Mappings to Increase Hit Rates", IEEE/ACM ToN 1998).

Every node scores every key with a hash of (node, key); the key goes to the node
with the highest score. Removing a node moves only the keys it held (each to its
second-highest scorer) and adding one moves only the keys it now wins. No ring,
no virtual nodes, perfect balance in expectation, any node may leave, and the
ranked scores give a preference list for free. The price is O(n) work per
lookup for n nodes, fine for tens of nodes, costly for thousands.

Each node gets a 32-bit seed and a 128-bit salt from the hash of its name; its
score for a key is ``mmh3_128(key, seed) XOR salt``. Hashing the key once per
node with a different seed avoids building ``node + key`` strings, and the salt
keeps two nodes whose 32-bit seeds happen to collide from tying on every key.
Remaining ties (probability about 2**-128) go to the smaller node name.
"""

from __future__ import annotations

from collections.abc import Iterable

import mmh3

from labkit import validation as valid
from labkit.hashing.hashfuncs import NodeList, check_key

_hash128 = mmh3.hash128


class RendezvousHash(NodeList):
    """Highest-random-weight hashing over named nodes, kept in name order.

    >>> hrw = RendezvousHash(["a", "b", "c"])
    >>> hrw.node_for("user:42") == hrw.preference_list("user:42", 3)[0]
    True
    """

    __slots__ = ("_params",)

    def __init__(self, nodes: Iterable[str] = ()) -> None:
        # node -> (seed, salt), in name order like the node list: no order depends on insertion.
        self._params: dict[str, tuple[int, int]] = {}
        super().__init__(nodes)

    def add_node(self, node: str) -> None:
        """Add ``node``; it takes exactly the keys for which it now scores highest."""
        super().add_node(node)
        self._nodes.sort()
        h = _hash128(node)
        self._params[node] = (h & 0xFFFFFFFF, h)
        self._params = {n: self._params[n] for n in self._nodes}

    def remove_node(self, node: str) -> None:
        """Remove ``node``; each of its keys goes to that key's next-highest scorer."""
        super().remove_node(node)
        del self._params[node]

    def score(self, node: str, key: str | bytes) -> int:
        """The pseudo-random weight ``node`` gives ``key``."""
        if node not in self._params:
            raise ValueError(f"node {node!r} is not present")
        check_key(key)
        seed, salt = self._params[node]
        return _hash128(key, seed) ^ salt

    def node_for(self, key: str | bytes) -> str:
        """The node with the highest score for ``key``."""
        self._bucket_count()  # refuses an empty node list
        best_node, best = "", -1
        try:
            # Strict '>' over name-sorted nodes: a tie keeps the smaller name.
            for node, (seed, salt) in self._params.items():
                s = _hash128(key, seed) ^ salt
                if s > best:
                    best_node, best = node, s
        except TypeError:
            raise TypeError(f"key must be str or bytes, got {type(key).__name__}") from None
        return best_node

    def preference_list(self, key: str | bytes, n: int) -> list[str]:
        """The ``n`` highest-scoring nodes for ``key``, best first."""
        valid.integer("n", n, ge=1, le=len(self._params), note="at most the number of nodes")
        check_key(key)
        ranked = sorted(self._params, key=lambda node: (-self.score(node, key), node))
        return ranked[:n]

    def __contains__(self, node: object) -> bool:
        return node in self._params
