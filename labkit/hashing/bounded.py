"""Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam,
"Consistent Hashing with Bounded Loads", SODA 2018).

A plain ring gives some node noticeably more keys than average (with 150 virtual
nodes the busiest of 10 nodes typically gets 10-20 % more). Bounded loads caps
that: with m keys on n nodes and a slack ``epsilon``, no node may hold more than

    capacity = ceil((1 + epsilon) * m / n)

keys. A key still starts at its point on the ring, but if the owner there is
full it walks on clockwise to the next node that has room (the paper's
"forwarding"). Smaller epsilon means tighter balance but longer walks and more
keys moving when things change; the paper shows the walk and the movement stay
bounded by a function of epsilon alone, independent of m and n.

This class places keys one at a time, in the order given. The capacity uses
the key count *including* the key being placed, so it never shrinks while keys
are added, and the bound holds after every placement:

    Invariant: for every node, load(node) <= ceil((1 + epsilon) * m / n).

A free slot always exists, because n * capacity >= (1 + epsilon) * m >= m and
the forwarding walk (:meth:`HashRing.walk`) reaches every one of the n nodes,
including a node whose virtual nodes all lost their points to hash collisions
(it waits right behind the owner of such a point). So n counts every node on
the ring, not only the ones that own points.
When a node joins or leaves, the placements are replayed in their original
order against the new ring: simple and obviously within the bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from labkit import validation as valid
from labkit.hashing.hashfuncs import HashFunction, check_key, mmh3_128
from labkit.hashing.ring import HashRing


def bounded_capacity(m: int, n: int, epsilon: float) -> int:
    """The most keys one node may hold: ``ceil((1 + epsilon) * m / n)``."""
    valid.integer("m (keys)", m, ge=0)
    valid.integer("n (nodes)", n, ge=1)
    valid.number("epsilon", epsilon, ge=0)
    # Round away float noise first: epsilon=0.1, m=10, n=1 must give 11, not ceil(11.000000000000002) = 12.
    return math.ceil(round((1 + epsilon) * m / n, 9))


class BoundedLoadHash:
    """A ring whose nodes accept at most ``ceil((1+epsilon) m / n)`` keys each.

    >>> b = BoundedLoadHash(["a", "b"], epsilon=0.0, vnodes=50)
    >>> _ = b.place_all([f"k{i}" for i in range(10)])
    >>> sorted(b.loads().values())
    [5, 5]
    """

    __slots__ = ("_ring", "_epsilon", "_order", "_owner", "_loads")

    def __init__(
        self,
        nodes: Iterable[str] = (),
        epsilon: float = 0.25,
        vnodes: int = 150,
        hash: HashFunction = mmh3_128,
    ) -> None:
        self._epsilon = valid.number("epsilon", epsilon, ge=0)
        self._ring = HashRing(nodes, vnodes=vnodes, hash=hash)
        self._order: list[str | bytes] = []  # keys in placement order
        self._owner: dict[str | bytes, str] = {}
        self._loads: dict[str, int] = dict.fromkeys(self._ring.nodes, 0)

    @property
    def epsilon(self) -> float:
        return self._epsilon

    @property
    def ring(self) -> HashRing:
        """The underlying ring (read it; change membership through this object)."""
        return self._ring

    @property
    def capacity(self) -> int:
        """The cap for the keys placed so far."""
        return bounded_capacity(len(self._order), max(len(self._ring), 1), self._epsilon)

    def place(self, key: str | bytes) -> str:
        """Place a new key and return its node: the first node clockwise with room."""
        check_key(key)
        if key in self._owner:
            raise ValueError(f"key {key!r} is already placed (on {self._owner[key]!r})")
        if not len(self._ring):
            raise ValueError("no nodes: add_node() before placing keys")
        node = self._forward(key, bounded_capacity(len(self._order) + 1, len(self._ring), self._epsilon))
        self._order.append(key)
        self._owner[key] = node
        self._loads[node] += 1
        return node

    def place_all(self, keys: Iterable[str | bytes]) -> dict[str | bytes, str]:
        """Place keys in order; returns ``{key: node}`` for them."""
        return {key: self.place(key) for key in keys}

    def _forward(self, key: str | bytes, cap: int) -> str:
        loads = self._loads
        for owner in self._ring.walk(key):
            if loads[owner] < cap:
                return owner
        # Unreachable: the walk visits all n nodes and n * cap >= m, so one has room.
        raise AssertionError(f"no node has room below capacity {cap}")

    def node_for(self, key: str | bytes) -> str:
        """The node a placed key lives on."""
        check_key(key)
        if key not in self._owner:
            raise ValueError(f"key {key!r} has not been placed; call place() first")
        return self._owner[key]

    def loads(self) -> dict[str, int]:
        """Keys per node, nodes sorted by name."""
        return dict(sorted(self._loads.items()))

    def assignment(self) -> dict[str | bytes, str]:
        """``{key: node}`` for every placed key, in placement order."""
        return {key: self._owner[key] for key in self._order}

    def add_node(self, node: str) -> None:
        """Add a node and replay all placements."""
        self._ring.add_node(node)
        self._replay()

    def remove_node(self, node: str) -> None:
        """Remove a node and replay all placements."""
        self._ring.remove_node(node)
        self._replay()

    def _replay(self) -> None:
        keys = self._order
        self._order, self._owner = [], {}
        self._loads = dict.fromkeys(self._ring.nodes, 0)
        if len(self._ring):
            self.place_all(keys)
        else:
            self._order = keys  # nowhere to put them; keep them for when a node returns
            # Invariant kept: no node, no load. node_for() will say the key is unplaced.

    @property
    def nodes(self) -> tuple[str, ...]:
        return self._ring.nodes

    def __len__(self) -> int:
        return len(self._ring)

    def check_invariants(self) -> None:
        """Raise AssertionError if a node is over capacity or the tables disagree."""
        self._ring.check_invariants()
        if not self._owner:
            return
        cap = self.capacity
        assert max(self._loads.values()) <= cap, f"load {self._loads} exceeds capacity {cap}"
        assert sum(self._loads.values()) == len(self._owner) == len(self._order)
