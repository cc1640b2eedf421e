"""The settings every node of one replicated store shares.

Dynamo (SOSP 2007, §4.3) keeps each key on N nodes, the first N of its
*preference list*; clients choose R and W per request (§4.5). This course
keeps the preference list simple and fixed: the cluster's nodes in order,
rotated by a stable hash of the key, so each key has its own coordinator
order without a consistent-hashing ring (notebook 06 builds that).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.replication.modes import Mode, Resolution


def check_interval(name: str, value: object) -> float | None:
    """Validate a background interval: a finite number of seconds > 0, or None for "off"."""
    return valid.number(name, value, gt=0, unit="seconds", none=True)


def count_or_ids(name: str, value: Any) -> int | tuple[str, ...]:
    """``value`` as a count (an int) or a tuple of node ids; a bool or a bare str is refused."""
    if isinstance(value, (bool, str)) or not isinstance(value, (int, Iterable)):
        raise valid.ArgumentTypeError(
            f"{name} must be a count or a list of node ids, got {valid.shown(value)}"
        )
    return value if isinstance(value, int) else tuple(value)


def check_quorum(name: str, value: object, n: int) -> int:
    """Validate a read or write quorum size: an int in 1..n."""
    valid.string("name", name)
    valid.integer("n", n, ge=1)
    return valid.integer(name, value, ge=1, le=n, note=f"N={n}")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """What every replica and coordinator must agree on.

    ``nodes`` are the storage nodes in preference-list order; each key lives on ``n`` of them;
    ``mode`` chooses strict or sloppy quorums and ``resolution`` siblings or last writer wins.
    A coordinator waits ``request_timeout`` seconds for R (or W) answers before the request
    fails (stand-ins count in availability-first mode). In availability-first mode a home
    replica silent for ``hint_after`` seconds is replaced by the next node of the preference
    list, and a stand-in tries to hand its hints back every ``handoff_interval`` seconds.
    Every ``anti_entropy_interval`` seconds (None: never) a node compares Merkle trees of
    ``2**merkle_depth`` leaf buckets with a random peer. ``write_back_reads`` (consistency-first
    only): a read writes what it will return back to ``N - R + 1`` home replicas before it
    answers (Attiya, Bar-Noy and Dolev, 1995), so no later read can return anything older
    (:mod:`labkit.replication.coordinator`).
    """

    nodes: tuple[str, ...]
    n: int = 3
    mode: Mode = Mode.CONSISTENCY_FIRST
    resolution: Resolution = Resolution.VECTOR_CLOCKS
    request_timeout: float = 0.25
    hint_after: float = 0.06
    handoff_interval: float = 0.2
    anti_entropy_interval: float | None = None
    merkle_depth: int = 4
    write_back_reads: bool = False

    def __post_init__(self) -> None:
        nodes = self.nodes
        if isinstance(nodes, str) or not all(isinstance(x, str) and x for x in nodes):
            raise TypeError(f"nodes must be a sequence of non-empty node-id strings, got {nodes!r}")
        nodes = tuple(nodes)
        valid.require(0 < len(set(nodes)) == len(nodes), "nodes", "at least one node, all distinct", nodes)
        object.__setattr__(self, "nodes", nodes)
        valid.integer("n (replicas per key)", self.n, ge=1, le=len(nodes), note="at most the number of nodes")
        valid.instance("mode", self.mode, Mode)
        valid.instance("resolution", self.resolution, Resolution)
        for name in ("request_timeout", "hint_after", "handoff_interval"):
            object.__setattr__(self, name, valid.number(name, getattr(self, name), gt=0, unit="seconds"))
        object.__setattr__(
            self, "anti_entropy_interval", check_interval("anti_entropy_interval", self.anti_entropy_interval)
        )
        shorter = f"shorter than request_timeout ({self.request_timeout})"
        valid.require(self.hint_after < self.request_timeout, "hint_after", shorter, self.hint_after)
        valid.boolean("write_back_reads", self.write_back_reads)
        strict = self.mode is Mode.CONSISTENCY_FIRST
        sloppy = "False in a sloppy quorum (AVAILABILITY_FIRST): its quorums need not overlap"
        valid.require(strict or not self.write_back_reads, "write_back_reads", sloppy, self.write_back_reads)
        valid.integer("merkle_depth", self.merkle_depth, ge=0, le=16)

    def preference_list(self, key: str) -> tuple[str, ...]:
        """Every node, in the order a coordinator tries them for ``key``."""
        valid.string("key", key, empty=True)
        k = zlib.crc32(key.encode()) % len(self.nodes)
        return self.nodes[k:] + self.nodes[:k]

    def home(self, key: str) -> tuple[str, ...]:
        """The N replicas that own ``key``: the first N of its preference list."""
        return self.preference_list(key)[: self.n]
