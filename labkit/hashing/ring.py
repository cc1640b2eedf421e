"""A consistent-hash ring with virtual nodes, weights and preference lists.

Karger et al. (STOC 1997) place both machines and keys on a circle by hashing
them; a key belongs to the first machine clockwise from it. When a machine joins,
only the keys on the arc it takes over move, all of them to the newcomer; when
one leaves, only its keys move, to the next machine clockwise. Dynamo (DeCandia
et al., SOSP 2007, §4.2) gives each physical node many *virtual nodes* (tokens)
so its share of the circle is the sum of many small arcs, which evens out the
load and lets a bigger machine take more tokens (§4.2, "heterogeneity"); its
preference list (§4.3) is the first N *distinct physical* nodes clockwise from a
key, skipping further tokens of nodes already chosen.

Compared with a first attempt, :class:`labkit.hashing.LinearScanRing`:

* lookups binary-search the sorted points (``bisect``), O(log V) instead of a
  linear scan over all V virtual nodes;
* the default hash is MurmurHash3 128-bit instead of MD5 (same spread, faster);
* nodes can leave, and may carry a weight (vnode count = round(vnodes * weight));
* two virtual nodes that hash to the same point are not silently overwritten:
  the point goes to the smallest ``(node, replica)`` claimant and the others
  wait behind it, taking over if it leaves. The ring therefore depends only on
  the set of nodes and weights, never on the order they were added in.

The rule for shadowed claimants: they own no keys (``node_for`` gives the
point's owner), but they stay *on the ring* for everything that walks it. A
walk clockwise yields, at each point, its owner and then its shadowed
claimants in claim order: exactly the nodes that would take the point over,
in the order they would. So every node on the ring appears in a walk, even one
whose every vnode is shadowed, a preference list always has ``n`` distinct
nodes for any ``n`` up to the node count, its second entry is where the key
goes if its first leaves, and bounded loads can forward keys to every node.

A lookup finds the first point ``>= hash(key)`` (the first attempt's ``key <= ring_key``).
To wrap around without a branch, the owner list carries one extra entry at the
end, a copy of the first owner: ``bisect_left`` returning ``len(points)`` lands on it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping

import mmh3

from labkit import validation as valid
from labkit.hashing.hashfuncs import HashFunction, check_key, mmh3_128

MAX_VNODES = 100_000  # virtual nodes per node: far past the point where more stop evening the load

_hash128 = mmh3.hash128


def vnode_label(node: str, replica: int) -> str:
    """The string hashed to place virtual node number ``replica`` of ``node``."""
    return f"{node}:{replica}"  # the first attempt's label, so HashRing(hash=md5_int) rebuilds its ring


class HashRing:
    """Consistent hashing with virtual nodes (Karger et al. 1997; Dynamo §4.2-4.3).

    >>> ring = HashRing(["a", "b", "c"], vnodes=100)
    >>> ring.node_for("user:42") in {"a", "b", "c"}
    True
    >>> sorted(ring.preference_list("user:42", 3))
    ['a', 'b', 'c']

    ``hash`` maps a ``str`` (virtual-node labels and keys) to an int in
    ``[0, ring_size)``; the default is MurmurHash3 x64 128-bit.
    """

    __slots__ = (
        "_vnodes",
        "_hash",
        "_fast",
        "_ring_size",
        "_weights",
        "_counts",
        "_claims",
        "_points",
        "_owners",
        "_shadowed",
    )

    def __init__(
        self,
        nodes: Iterable[str] | Mapping[str, float] = (),
        vnodes: int = 150,
        hash: HashFunction = mmh3_128,
        *,
        ring_size: int = 2**128,
    ) -> None:
        self._vnodes = valid.integer("vnodes", vnodes, ge=1, le=MAX_VNODES)
        self._hash = valid.function("hash", hash, "callable")
        # The default hash is inlined in node_for: one C call instead of two Python frames.
        self._fast = hash is mmh3_128
        self._ring_size = valid.integer("ring_size", ring_size, ge=1)
        self._weights: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        # Invariant: _claims[p] lists every (node, replica) hashing to p, sorted; the first owns p.
        self._claims: dict[int, list[tuple[str, int]]] = {}
        # Invariant: _points == sorted(_claims); _owners[i] == _claims[_points[i]][0][0];
        # len(_owners) == len(_points) + 1 and _owners[-1] == _owners[0] (the wrap-around copy).
        self._points: list[int] = []
        self._owners: list[str] = []
        self._shadowed = 0  # vnodes behind another claimant of their point (== collisions)
        if isinstance(nodes, str | bytes):
            raise TypeError("nodes must be node names (or a mapping name -> weight), not a string")
        for node, weight in nodes.items() if isinstance(nodes, Mapping) else ((node, 1) for node in nodes):
            self._add(node, weight)
        self._rebuild()

    # ----------------------------------------------------------------- membership

    def add_node(self, node: str, weight: float = 1) -> None:
        """Add a physical node with ``round(vnodes * weight)`` virtual nodes."""
        self._add(node, weight)
        self._rebuild()

    def remove_node(self, node: str) -> None:
        """Remove a physical node and all its virtual nodes; its keys go clockwise to the next nodes."""
        for replica in range(self._counts.pop(self._on_ring(node))):
            point = self._point(vnode_label(node, replica))
            claimants = self._claims[point]
            claimants.remove((node, replica))
            if not claimants:
                del self._claims[point]
        del self._weights[node]
        self._rebuild()

    def _on_ring(self, node: str) -> str:
        if valid.string("node", node) not in self._counts:
            raise ValueError(f"node {node!r} is not on the ring (nodes: {sorted(self._counts)})")
        return node

    def _add(self, node: str, weight: float) -> None:
        valid.string("node", node)
        if node in self._counts:
            raise ValueError(f"node {node!r} is already on the ring")
        count = self._count_for(weight)
        points = [self._point(vnode_label(node, replica)) for replica in range(count)]
        for replica, point in enumerate(points):
            claimants = self._claims.setdefault(point, [])
            claimants.append((node, replica))
            claimants.sort()
        self._weights[node] = weight
        self._counts[node] = count

    def _count_for(self, weight: float) -> int:
        valid.number("weight", weight, gt=0)
        count = round(self._vnodes * weight)
        most = f"at most {MAX_VNODES / self._vnodes:g} (at most {MAX_VNODES:,} virtual nodes per node)"
        valid.require(count <= MAX_VNODES, "weight", most, weight)
        if count < 1:
            raise ValueError(
                f"weight {weight} gives {self._vnodes} * {weight} < 0.5 virtual nodes; "
                f"use a weight >= {0.5 / self._vnodes:.3g} or more vnodes"
            )
        return count

    def _point(self, label: str) -> int:
        point = self._hash(label)
        if isinstance(point, bool) or not isinstance(point, int) or not 0 <= point < self._ring_size:
            raise ValueError(f"hash must return an int in [0, ring_size={self._ring_size}), got {point!r}")
        return point

    def _rebuild(self) -> None:
        # O(V log V) per membership change; lookups, the hot path, stay O(log V).
        self._points = sorted(self._claims)
        claims = self._claims
        self._owners = [claims[p][0][0] for p in self._points]
        if self._owners:
            self._owners.append(self._owners[0])
        self._shadowed = sum(len(c) - 1 for c in claims.values())

    # ----------------------------------------------------------------- lookups

    def node_for(self, key: str | bytes) -> str:
        """The node owning ``key``: the owner of the first point clockwise from ``hash(key)``."""
        if not self._points:
            raise ValueError("the ring is empty: add_node() before looking keys up")
        try:
            h = _hash128(key) if self._fast else self._hash(key)
        except TypeError:
            raise TypeError(f"key must be str or bytes, got {type(key).__name__}") from None
        return self._owners[bisect_left(self._points, h)]

    def preference_list(self, key: str | bytes, n: int) -> list[str]:
        """The first ``n`` distinct physical nodes clockwise from ``key`` (Dynamo §4.3).

        The first entry is :meth:`node_for`; the others are where replicas go,
        in the order the key would fail over to them. Nodes come in the order
        of :meth:`walk`, so a node whose vnodes are all shadowed by hash
        collisions still takes its place (right behind the owner it waits
        behind): ``n`` may be anything up to the number of nodes.
        """
        n = valid.integer("n", n, ge=1)
        valid.require(n <= len(self._counts), "n", f"<= the number of nodes ({len(self._counts)})", n)
        chosen: list[str] = []
        # One turn around the ring at most: a walk yields every node on the ring (shadowed
        # claimants included), so n <= node count guarantees n distinct nodes on the way.
        for owner in self.walk(key):
            if owner not in chosen:
                chosen.append(owner)
                if len(chosen) == n:
                    break
        return chosen

    def walk(self, key: str | bytes) -> Iterator[str]:
        """Nodes clockwise from ``key``, once around the ring (repeats included).

        At each point: its owner, then any claimants shadowed behind it by a
        hash collision, in claim order. Every node on the ring is yielded at
        least once.
        """
        check_key(key)
        if not self._points:
            raise ValueError("the ring is empty: add_node() before looking keys up")
        # Validate now, not on the first next(): hand back a generator over the checked start.
        return self._walk_from(bisect_left(self._points, self._hash(key)))

    def _walk_from(self, start: int) -> Iterator[str]:
        owners, size = self._owners, len(self._points)
        if not self._shadowed:  # the usual case: one claimant per point
            for step in range(size):
                yield owners[(start + step) % size]
            return
        points, claims = self._points, self._claims
        for step in range(size):
            for node, _replica in claims[points[(start + step) % size]]:
                yield node

    def key_hash(self, key: str | bytes) -> int:
        """Where ``key`` lands on the ring."""
        check_key(key)
        return self._hash(key)

    # ----------------------------------------------------------------- inspection

    @property
    def nodes(self) -> tuple[str, ...]:
        """Physical nodes, sorted by name (independent of insertion order)."""
        return tuple(sorted(self._counts))

    @property
    def vnodes(self) -> int:
        """Virtual nodes per unit of weight."""
        return self._vnodes

    @property
    def ring_size(self) -> int:
        """Points live in ``[0, ring_size)``."""
        return self._ring_size

    def weight(self, node: str) -> float:
        """The weight ``node`` was added with."""
        return self._weights[self._on_ring(node)]

    def vnode_count(self, node: str) -> int:
        """How many virtual nodes ``node`` has (including any shadowed by a collision)."""
        return self._counts[self._on_ring(node)]

    @property
    def collisions(self) -> int:
        """Virtual nodes currently shadowed because another claimed the same point first."""
        return self._shadowed

    def points(self) -> list[tuple[int, str]]:
        """``(point, owner)`` for every point on the ring, in clockwise order."""
        return list(zip(self._points, self._owners, strict=False))

    def arc_shares(self) -> dict[str, float]:
        """Fraction of the circle each node owns: the load it gets from uniformly hashed keys.

        The arc ending at a point (exclusive of the previous point) belongs to that point's owner.
        """
        shares = dict.fromkeys(sorted(self._counts), 0.0)
        points, size = self._points, self._ring_size
        for i, point in enumerate(points):
            arc = (point - points[i - 1]) % size if len(points) > 1 else size
            shares[self._owners[i]] += arc / size
        return shares

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, node: object) -> bool:
        return node in self._counts

    def __repr__(self) -> str:
        return f"HashRing(nodes={list(self.nodes)!r}, vnodes={self._vnodes}, points={len(self._points)})"

    def check_invariants(self) -> None:
        """Raise AssertionError if the internal tables disagree (used by the tests)."""
        assert self._points == sorted(self._claims), "points are not the sorted claimed points"
        assert all(a < b for a, b in zip(self._points, self._points[1:], strict=False)), "points not unique"
        for point, owner in zip(self._points, self._owners, strict=False):
            claimants = self._claims[point]
            assert claimants == sorted(claimants), f"claimants of {point} not sorted"
            assert owner == claimants[0][0], f"point {point} owned by {owner}, claimant {claimants[0]}"
        if self._points:
            assert len(self._owners) == len(self._points) + 1 and self._owners[-1] == self._owners[0]
        else:
            assert self._owners == []
        total = sum(len(c) for c in self._claims.values())
        assert total == sum(self._counts.values()), "claims and vnode counts disagree"
        assert self._shadowed == total - len(self._points), "shadowed count is stale"
        assert set(self._weights) == set(self._counts), "weights and counts name different nodes"
