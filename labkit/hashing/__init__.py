"""Consistent hashing: which node holds which key, and what moves when nodes change.

One concept per module:

* :mod:`~labkit.hashing.hashfuncs`: MurmurHash3 128-bit (default) and MD5 as integers;
* :mod:`~labkit.hashing.linear_scan`: :class:`LinearScanRing`, a first attempt (MD5, linear scan), kept for comparison;
* :mod:`~labkit.hashing.ring`: :class:`HashRing`, virtual nodes, weights, binary search, preference
  lists (Karger et al. 1997; Dynamo, SOSP 2007, §4.2-4.3);
* :mod:`~labkit.hashing.modulo`: :class:`ModuloHash`, ``hash(key) % N``, the scheme to avoid;
* :mod:`~labkit.hashing.jump`: :func:`jump_hash` and :class:`JumpHash` (Lamping and Veach 2014);
* :mod:`~labkit.hashing.rendezvous`: :class:`RendezvousHash`, highest random weight (Thaler and
  Ravishankar 1998);
* :mod:`~labkit.hashing.bounded`: :class:`BoundedLoadHash`, consistent hashing with bounded loads
  (Mirrokni, Thorup and Zadimoghaddam, SODA 2018);
* :mod:`~labkit.hashing.analysis`: pandas tables of loads, moved keys and spread vs vnodes.
"""

from labkit.hashing.analysis import (
    assign,
    balance_table,
    join_moves,
    load_cv,
    load_per_node,
    make_keys,
    move_matrix,
    moved_keys,
    node_names,
    spread_vs_vnodes,
)
from labkit.hashing.bounded import BoundedLoadHash, bounded_capacity
from labkit.hashing.hashfuncs import md5_int, mmh3_128
from labkit.hashing.jump import JumpHash, jump_hash
from labkit.hashing.linear_scan import LinearScanRing
from labkit.hashing.modulo import ModuloHash
from labkit.hashing.rendezvous import RendezvousHash
from labkit.hashing.ring import HashRing

__all__ = [
    "BoundedLoadHash",
    "HashRing",
    "JumpHash",
    "LinearScanRing",
    "ModuloHash",
    "RendezvousHash",
    "assign",
    "balance_table",
    "join_moves",
    "bounded_capacity",
    "jump_hash",
    "load_cv",
    "load_per_node",
    "make_keys",
    "md5_int",
    "mmh3_128",
    "move_matrix",
    "moved_keys",
    "node_names",
    "spread_vs_vnodes",
]
