"""Run a rule written elsewhere (a learner's, in notebook 10) inside labkit's Raft servers.

Each function takes one rule as a plain function and returns a
``node_factory(node_id, peers, config)`` for :class:`~labkit.raft.RaftCluster`:
servers that are :class:`~labkit.raft.RaftNode` in every way except that one
rule, so a live cluster, its invariant monitor and the linearizability checker
judge the rule under real faults. The rules:

* :func:`with_pre_vote_rule`: whether a server grants a pre-vote (Ongaro's
  dissertation §9.6); the rule gets a :class:`Voter` and the :class:`PreVote`;
* :func:`with_read_rule`: which waiting reads a leader may answer now
  (diss. §6.4); the rule gets the :class:`~labkit.raft.reads.PendingRead` list,
  the highest round of heartbeats a majority confirmed, and the last applied index;
* :func:`with_change_rule`: whether a leader may go from one set of voters to
  another in one step (diss. §4.1); the rule gets both as tuples of server ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.raft.messages import Configuration, PreVote, PreVoteReply
from labkit.raft.node import RaftConfig, RaftNode
from labkit.raft.reads import PendingRead, ReadQueue
from labkit.sim import Context

__all__ = ["Voter", "with_change_rule", "with_pre_vote_rule", "with_read_rule"]

NodeFactory = Callable[[str, tuple[str, ...], RaftConfig], RaftNode]


@dataclass(frozen=True, slots=True)
class Voter:
    """What a server knows when a pre-vote request arrives."""

    current_term: int
    last_log_index: int
    last_log_term: int
    hears_from_leader: bool  # a leader was heard within the minimum election timeout


def _check_rule(rule: Any, name: str) -> None:
    valid.function(name, rule)


def _answer(rule: Callable[..., Any], what: str, *args: Any) -> Any:
    try:
        return rule(*args)
    except NotImplementedError:
        raise
    except Exception as exc:  # the rule's own mistake: say whose it is
        raise RuntimeError(f"your {what} raised {type(exc).__name__}: {exc}") from exc


def with_pre_vote_rule(grant: Callable[[Voter, PreVote], bool]) -> NodeFactory:
    """Servers that grant a pre-vote when ``grant(voter, request)`` says so (diss. §9.6)."""
    _check_rule(grant, "grant")

    class PreVoteRule(RaftNode):
        def handle_pre_vote(self, ctx: Context, src: str, m: PreVote) -> None:
            me = Voter(
                self.current_term, self.log.last_index, self.log.last_term, self.hears_from_leader(ctx)
            )
            granted = _answer(grant, "pre-vote rule", me, m)
            if not isinstance(granted, bool):
                raise TypeError(f"your pre-vote rule must return True or False, got {granted!r}")
            ctx.send(src, PreVoteReply(self.current_term, granted, m.next_term))

    return lambda node_id, peers, config: PreVoteRule(node_id, peers, config)


def with_read_rule(ready: Callable[[list[PendingRead], int, int], Iterable[PendingRead]]) -> NodeFactory:
    """Leaders that answer the waiting reads ``ready(reads, confirmed_round, last_applied)`` returns (diss. §6.4)."""
    _check_rule(ready, "ready")

    class Queue(ReadQueue):
        def ready(self, confirmed: int, last_applied: int) -> list[PendingRead]:
            chosen = list(_answer(ready, "read rule", list(self.waiting), confirmed, last_applied))
            for r in chosen:
                if not any(r is w for w in self.waiting):
                    raise ValueError(f"your read rule returned {r!r}, which is not one of the waiting reads")
            self.waiting = [w for w in self.waiting if not any(w is r for r in chosen)]
            return chosen

    class ReadRule(RaftNode):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.reads = Queue()

    return lambda node_id, peers, config: ReadRule(node_id, peers, config)


def with_change_rule(allowed: Callable[[tuple[str, ...], tuple[str, ...]], bool]) -> NodeFactory:
    """Leaders that accept a new configuration when ``allowed(old_voters, new_voters)`` says so (diss. §4.1)."""
    _check_rule(allowed, "allowed")

    class ChangeRule(RaftNode):
        def may_change_configuration(self, old: Configuration, new: Configuration) -> bool:
            ok = _answer(allowed, "membership rule", old.voters, new.voters)
            if not isinstance(ok, bool):
                raise TypeError(f"your membership rule must return True or False, got {ok!r}")
            return ok

    return lambda node_id, peers, config: ChangeRule(node_id, peers, config)
