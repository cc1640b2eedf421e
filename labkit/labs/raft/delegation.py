"""The Raft lab's reference: what a submission must not hand its rules to.

labkit's own :class:`~labkit.raft.RaftNode` (and what it is built from) is
the course's reference implementation; a learner's server that subclasses
it, or calls its rules, would pass every test without a rule of its own.
:mod:`labkit.labs.delegation` does the checking for every lab; this module
only says what Raft's reference is: the node, its teaching-bug subclasses,
the progress helpers and the log's ``maybe_append`` (AppendEntries steps 3-4).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

from labkit.labs import delegation
from labkit.labs.delegation import DelegationError
from labkit.labs.raft.skeleton import RaftServer
from labkit.raft import bugs as _bugs
from labkit.raft import node as _node
from labkit.raft import progress as _progress
from labkit.raft.log import RaftLog
from labkit.raft.node import RaftCore, RaftNode

__all__ = ["DelegationError", "problems", "tripwires", "FORBIDDEN_NAMES", "REFERENCE"]

# Names that only the reference's rules carry; any use of them is delegation.
FORBIDDEN_NAMES = frozenset(
    {
        "RaftCore",
        "RaftNode",
        "CommitPriorTerm",
        "StaleReads",
        "VoteTwice",
        "node_class",
        "Progress",
        "quorum_match_index",
        "maybe_append",  # RaftLog.maybe_append is the reference's AppendEntries steps 3-4
        "_log_is_up_to_date",
        "may_vote_for",
        "may_commit",
    }
)

_BUGGY = tuple(c for c in vars(_bugs).values() if inspect.isclass(c) and issubclass(c, RaftNode))
_NODE = tuple(c for c in RaftNode.__mro__ if c.__module__ == _node.__name__)  # the core and its extensions
_RULES = (*_NODE, _progress.Progress, *_BUGGY)

REFERENCE = delegation.Reference(
    what="labkit's reference Raft (labkit.raft), the course's reference implementation",
    classes=(RaftNode, RaftCore),
    objects=(*_RULES, _node, _bugs, _progress, RaftLog.maybe_append, _progress.quorum_match_index),
    names=FORBIDDEN_NAMES,
    trip=(*delegation.functions_of(*_RULES), RaftLog.maybe_append, _progress.quorum_match_index),
)


def problems(node: Any) -> list[str]:
    """Why ``node`` (a submitted server class) cannot be graded, as sentences; [] if it writes its own rules."""
    return delegation.problems(node, REFERENCE, base=RaftServer)


@contextlib.contextmanager
def tripwires() -> Iterator[None]:
    """Every function of the reference's rules raises :class:`DelegationError` until the block ends."""
    with delegation.tripwires(REFERENCE):
        yield
