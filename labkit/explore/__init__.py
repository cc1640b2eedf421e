"""A model checker for labkit's sans-IO protocols, with an explorer to step through its runs.

Random fault schedules find most bugs; some hide in one interleaving out of
millions. This package searches *every* interleaving of a small
configuration (TLC for TLA+, Yu, Manolios and Lamport 1999; the search tests
of DSLabs, Michael et al. 2019), on labkit's own nodes, so the code that is
checked is the code you read:

* :mod:`labkit.explore.model`: a :class:`Model` (which nodes, which outside
  inputs, which nodes are interchangeable), its :class:`Bounds` and the
  :class:`Action` s a state enables;
* :mod:`labkit.explore.space`: the states and their successors (interned
  states, a transition cache, symmetry reduction) and the :class:`State`
  invariants read;
* :mod:`labkit.explore.search`: :func:`bfs` (shortest counterexample),
  :func:`dfs` and :func:`random_walk`, each returning a :class:`Result`;
* :mod:`labkit.explore.invariants`: Raft's Figure 3, "no lost acknowledged
  write", "at most one decision", "never blocked", "no causal overwrite";
* :mod:`labkit.explore.protocols`: ready-made models of Raft, the quorum
  register, two-phase commit, the saga and the LWW register, correct and broken;
* :mod:`labkit.explore.checks`: those models with their invariants and
  bounds, the checks the tests, notebook 12 and the benchmark run;
* :mod:`labkit.explore.walk`: a :class:`Walk`, a run built one action at a
  time (what the explorer widget shows);
* :mod:`labkit.explore.replay`: a run replayed in the simulator, and drawn;
* :mod:`labkit.explore.freeze`: canonical snapshots and fingerprints of node state;
* :mod:`labkit.explore.naive`: a first attempt (breadth-first search that
  deep-copies every state), for the benchmark.

The explorer widget is :class:`labkit.viz.explore.Explorer`.
"""

from labkit.explore.model import Act, Action, Bounds, Input, Model
from labkit.explore.replay import Replay, replay, trace_of
from labkit.explore.search import Result, Violation, bfs, dfs, random_walk
from labkit.explore.space import Space, State
from labkit.explore.walk import Walk

__all__ = [
    "Act",
    "Action",
    "Bounds",
    "Input",
    "Model",
    "Replay",
    "Result",
    "Space",
    "State",
    "Violation",
    "Walk",
    "bfs",
    "dfs",
    "random_walk",
    "replay",
    "trace_of",
]
