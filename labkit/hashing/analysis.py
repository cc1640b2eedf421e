"""Measurements for the notebook, as pandas DataFrames.

Every scheme in this package (``HashRing``, ``LinearScanRing`` through its
``get_node``, ``JumpHash``, ``RendezvousHash``, ``ModuloHash``,
``BoundedLoadHash``) answers "which node holds this key?". These helpers ask
that question for many keys and tabulate the answers: load per node, which keys
moved after a membership change and where to, and how the load spread of a ring
falls as the number of virtual nodes grows.

The spread is measured by the coefficient of variation (CV) of the per-node
load, ``std / mean`` (population std). A node's share of the ring is the sum of
its v arcs; each arc is roughly exponential, so the share's relative std is
about ``1/sqrt(v)``: the rule of thumb the notebook compares against.

pandas is imported inside the functions that build frames, so importing
``labkit.hashing`` for lookups alone stays fast.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from labkit import validation as valid
from labkit.hashing.hashfuncs import HashFunction, mmh3_128
from labkit.hashing.ring import HashRing

if TYPE_CHECKING:
    import pandas as pd


def make_keys(k: int, seed: int = 0, prefix: str = "key") -> list[str]:
    """``k`` distinct, reproducible pseudo-random key names like ``key:1f3a...``."""
    valid.integer("k", k, ge=0, le=10_000_000)
    valid.integer("seed", seed)
    valid.string("prefix", prefix, empty=True)
    rng = random.Random(seed)
    # 64 random bits plus the index: distinct by construction, random-looking to the hash.
    return [f"{prefix}:{rng.getrandbits(64):016x}{i:x}" for i in range(k)]


def node_names(n: int, prefix: str = "node") -> list[str]:
    """``["node-0", "node-1", ...]``."""
    valid.integer("n", n, ge=0, le=100_000)
    valid.string("prefix", prefix, empty=True)
    return [f"{prefix}-{i}" for i in range(n)]


def lookup_function(scheme: Any) -> Callable[[str], str]:
    """The scheme's key -> node function (``node_for``, or ``get_node`` for the linear-scan ring)."""
    for name in ("node_for", "get_node"):
        fn = getattr(scheme, name, None)
        if callable(fn):
            return fn
    if callable(scheme):
        return scheme
    raise TypeError(f"scheme must have node_for(key) or get_node(key), got {type(scheme).__name__}")


def _nodes_of(scheme: Any) -> list[str]:
    nodes = getattr(scheme, "nodes", None)
    if nodes is not None:
        return sorted(nodes)
    ring = getattr(scheme, "ring", None)  # the linear-scan ring keeps {point: node}
    if isinstance(ring, Mapping):
        return sorted(set(ring.values()))
    return []


def assign(scheme: Any, keys: Iterable[str]) -> dict[str, str]:
    """``{key: node}`` for every key."""
    lookup = lookup_function(scheme)
    if isinstance(keys, (str, bytes, Mapping)):
        raise valid.ArgumentTypeError(f"keys must be a sequence of keys, got {valid.shown(keys)}")
    return {key: lookup(key) for key in keys}


def load_per_node(scheme: Any, keys: Sequence[str]) -> pd.DataFrame:
    """Keys per node: columns ``node``, ``keys``, ``share`` and ``vs_mean`` (load / mean load).

    Nodes that got no key are listed with 0.
    """
    import pandas as pd

    counts = Counter(assign(scheme, keys).values())
    nodes = sorted(set(_nodes_of(scheme)) | set(counts))
    frame = pd.DataFrame({"node": nodes, "keys": [counts.get(n, 0) for n in nodes]})
    total = max(len(keys), 1)
    mean = total / max(len(nodes), 1)
    frame["share"] = frame["keys"] / total
    frame["vs_mean"] = frame["keys"] / mean
    return frame


def _shown(items: list[Any], desc: str, progress: bool) -> Iterable[Any]:
    """``items``, with a progress bar when ``progress``."""
    if not progress:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


def _cv(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    if mean == 0:
        return 0.0
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)) / mean


def load_cv(scheme: Any, keys: Sequence[str]) -> float:
    """Coefficient of variation (population std / mean) of keys per node."""
    loads = load_per_node(scheme, keys)["keys"].tolist()
    if not loads:
        raise ValueError("the scheme has no nodes")
    return _cv(loads)


def moved_keys(before: Mapping[str, str], after: Mapping[str, str]) -> pd.DataFrame:
    """Keys whose node changed: columns ``key``, ``from_node``, ``to_node``.

    ``before`` and ``after`` are :func:`assign` results for the same keys.
    """
    import pandas as pd

    if set(before) != set(after):
        raise ValueError("before and after must assign the same keys")
    rows = [(key, node, after[key]) for key, node in before.items() if after[key] != node]
    return pd.DataFrame(rows, columns=["key", "from_node", "to_node"])


def move_matrix(moved: pd.DataFrame) -> pd.DataFrame:
    """How many keys went from each node (rows) to each node (columns)."""
    import pandas as pd

    if not {"from_node", "to_node"} <= set(getattr(moved, "columns", ())):
        raise ValueError("moved must have from_node and to_node columns (use moved_keys())")
    return pd.crosstab(moved["from_node"], moved["to_node"])


def spread_vs_vnodes(
    nodes: Sequence[str],
    vnode_counts: Iterable[int],
    keys: Sequence[str],
    hash: HashFunction = mmh3_128,
    progress: bool = False,
) -> pd.DataFrame:
    """Load spread of a ring as the vnode count grows.

    Columns: ``vnodes``; ``cv`` (measured over ``keys``); ``cv_arcs`` (from the exact
    arc lengths, i.e. for infinitely many keys); ``max_over_mean`` and ``min_over_mean``
    (busiest and idlest node against the mean); ``rule_of_thumb`` = ``1/sqrt(vnodes)``.
    """
    import pandas as pd

    valid.non_empty("nodes", nodes, "sequence of node names")
    valid.non_empty("keys", keys, "sequence of keys")
    rows = []
    for v in _shown(list(vnode_counts), "vnode counts", progress):
        ring = HashRing(nodes, vnodes=v, hash=hash)
        loads = load_per_node(ring, keys)["keys"].tolist()
        mean = len(keys) / len(nodes)
        rows.append({"vnodes": v, "cv": _cv(loads), "cv_arcs": _cv(list(ring.arc_shares().values())),
                     "max_over_mean": max(loads) / mean, "min_over_mean": min(loads) / mean,
                     "rule_of_thumb": 1 / math.sqrt(v)})  # fmt: skip
    return pd.DataFrame(rows)


def join_moves(
    schemes: Mapping[str, Callable[[list[str]], Any]],
    node_counts: Iterable[int],
    keys: Sequence[str],
    progress: bool = False,
) -> pd.DataFrame:
    """Fraction of keys that move when one node joins N nodes, for several schemes.

    ``schemes`` maps a label to a factory ``make(nodes) -> scheme`` (the scheme must have
    ``add_node``). For each N in ``node_counts`` the scheme is built on ``node-0`` ..
    ``node-{N-1}``, the keys are assigned, ``node-N`` joins, and the keys are assigned again.
    Columns: ``scheme``, ``nodes_before``, ``moved_fraction``, ``to_newcomer`` (the fraction of
    moved keys that went to the new node) and ``ideal`` = 1/(N+1).
    """
    import pandas as pd

    counts = list(node_counts)
    valid.non_empty("keys", keys, "sequence of keys")
    for i, n in enumerate(counts):
        valid.integer(f"node_counts[{i}]", n, ge=1, le=10_000)
    valid.instance("schemes", schemes, Mapping)
    valid.boolean("progress", progress)
    jobs = [(label, make, n) for label, make in schemes.items() for n in counts]
    rows = []
    for label, make, n in _shown(jobs, "joins", progress):
        scheme = make(node_names(n))
        before = assign(scheme, keys)
        newcomer = f"node-{n}"
        scheme.add_node(newcomer)
        moved = moved_keys(before, assign(scheme, keys))
        to_newcomer = (moved["to_node"] == newcomer).mean() if len(moved) else 1.0
        rows.append({"scheme": label, "nodes_before": n, "moved_fraction": len(moved) / len(keys),
                     "to_newcomer": to_newcomer, "ideal": 1 / (n + 1)})  # fmt: skip
    return pd.DataFrame(rows)


def balance_table(schemes: Mapping[str, Any], keys: Sequence[str]) -> pd.DataFrame:
    """Balance of several schemes over the same keys, one row each.

    Columns: ``scheme``, ``load_cv`` (std / mean of keys per node), ``max_over_mean`` (the
    busiest node against the mean) and ``min_over_mean`` (the idlest).
    """
    import pandas as pd

    valid.non_empty("keys", keys, "sequence of keys")
    valid.instance("schemes", schemes, Mapping)
    rows = []
    for label, scheme in schemes.items():
        load = load_per_node(scheme, keys)["vs_mean"]
        rows.append({"scheme": label, "load_cv": _cv(load.tolist()), "max_over_mean": load.max(),
                     "min_over_mean": load.min()})  # fmt: skip
    return pd.DataFrame(rows)
