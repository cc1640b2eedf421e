"""Jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory, Consistent
Hash Algorithm", arXiv:1406.2294, 2014; the C++ function given in the paper).

``jump_hash(key, n)`` maps a 64-bit key to a bucket in ``[0, n)`` with no table
at all, in O(log n) steps, and with perfect balance in expectation. Growing from
n to n+1 buckets moves exactly the keys that land in the new bucket (about
1/(n+1) of them) and nothing else. The catch: buckets are *numbers*. You can
only add or remove the last one, so it suits data stores whose shards are
numbered and replicated, not a cache cluster where any machine may die.

How it works (the paper's explanation): follow the key as the bucket count grows 1, 2, 3, ...
At each step it jumps to the new bucket with probability 1/(j+1). A seeded
pseudo-random generator (a 64-bit linear congruential step) lets us skip
straight to the next jump instead of visiting every count in between.
"""

from __future__ import annotations

import mmh3

from labkit import validation as valid
from labkit.hashing.hashfuncs import NodeList, check_key

_MASK64 = (1 << 64) - 1
_LCG_MULTIPLIER = 2862933555777941757  # the paper's 64-bit LCG constant


def _key64(key: int | str | bytes) -> int:
    if isinstance(key, bool):
        raise TypeError("key must be an int in [0, 2**64), str or bytes, got bool")
    if isinstance(key, int):
        if not 0 <= key <= _MASK64:
            raise ValueError(f"an int key must be in [0, 2**64), got {key}")
        return key
    check_key(key)
    # String keys are first hashed to 64 bits (the paper assumes the caller does this).
    return mmh3.hash64(key, signed=False)[0]


def jump_hash(key: int | str | bytes, num_buckets: int) -> int:
    """The bucket in ``[0, num_buckets)`` for ``key`` (Lamping & Veach 2014).

    >>> [jump_hash(k, 10) for k in (0, 1, 2**63)]
    [0, 6, 5]
    """
    valid.integer("num_buckets", num_buckets, ge=1)
    k = _key64(key)
    b, j = -1, 0
    # Invariant: b is the key's bucket when there are j buckets.
    while j < num_buckets:
        b = j
        k = (k * _LCG_MULTIPLIER + 1) & _MASK64
        j = int((b + 1) * ((1 << 31) / ((k >> 33) + 1)))
    return b


class JumpHash(NodeList):
    """Named nodes on top of :func:`jump_hash`: node ``i`` is bucket ``i``.

    Only the *last* node can be removed: taking out bucket 3 of 10 would renumber
    buckets 4-9 and move most keys. That is jump hashing's price for needing no memory.
    """

    __slots__ = ()

    def remove_node(self, node: str) -> None:
        """Remove ``node``; allowed only for the last bucket."""
        if node in self._nodes and node != self._nodes[-1]:
            raise ValueError(
                f"jump hash can only remove the last bucket ({self._nodes[-1]!r}), not {node!r}: "
                "removing another would renumber the buckets after it"
            )
        super().remove_node(node)

    def node_for(self, key: int | str | bytes) -> str:
        """The node owning ``key``."""
        return self._nodes[jump_hash(key, self._bucket_count())]
