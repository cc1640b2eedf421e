"""The reference solution of the Raft lab, taken from notebook 09, and the classic bugs planted in it.

The solution is the notebook's own solution code (its import cell, the class
cell and every answer cell of the instructor version), run in a fresh
namespace: never labkit's ``RaftNode``. A planted bug is one small edit of
one answer cell's source, the mistake a learner makes; :func:`planted` fails
loudly if the notebook's text changed so that an edit no longer applies.

Used by tests/test_labs_raft.py, tests/test_grading_labs.py and
benchmarks/bench_labs.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "09-lab-build-raft.ipynb"
CLASS_CELL = "class MyRaft(RaftServer):"

# bug -> [(grade id of the answer cell, text in it, what the mistake writes instead)]
BUGS: dict[str, list[tuple[str, str, str]]] = {
    "voting twice in a term": [
        (
            "nb09-request-vote",
            "and self.voted_for in (None, m.candidate_id) and up_to_date",
            "and up_to_date",
        )
    ],
    "not persisting voted_for before replying": [
        (
            "nb09-request-vote",
            "        self.voted_for = m.candidate_id\n        self.save_term_and_vote(ctx)\n",
            "        self.voted_for = m.candidate_id\n",
        )
    ],
    "counting a vote granted in an earlier term": [
        (
            "nb09-vote-reply",
            "if self.role is Role.CANDIDATE and m.term == self.current_term and m.vote_granted:",
            "if self.role is Role.CANDIDATE and m.vote_granted:",
        )
    ],
    "counting a duplicated vote twice": [
        (
            "nb09-start-election",
            "    self.votes = {self.node_id}\n",
            "    self.votes = {self.node_id}\n    self.granted = 1\n",
        ),
        (
            "nb09-vote-reply",
            "        self.votes.add(src)\n        if len(self.votes) >= self.majority:",
            "        self.granted += 1  # a duplicated reply counts again\n        if self.granted >= self.majority:",
        ),
    ],
    "committing an earlier term's entry by counting replicas": [
        ("nb09-commit", " and self.log.term(n) == self.current_term", ""),
    ],
    "not truncating a conflicting suffix": [
        (
            "nb09-accept-entries",
            "        if index <= self.log.last_index and self.log.term(index) != entry.term:\n"
            "            self.log.truncate(index - 1)\n",
            "",
        )
    ],
    "cutting the log after prev_log_index whatever it holds": [
        (
            "nb09-accept-entries",
            "        if index <= self.log.last_index and self.log.term(index) != entry.term:\n",
            "        if index <= self.log.last_index:  # no conflict needed: a late message cuts too\n",
        )
    ],
    "lowering commit_index on a late AppendEntries": [
        (  # Figure 2's step 5 read literally: "if leaderCommit > commitIndex, set commitIndex = min(...)"
            "nb09-accept-entries",
            "self.commit_index = max(self.commit_index, min(m.leader_commit, last_new))",
            "self.commit_index = min(m.leader_commit, last_new)",
        )
    ],
    "not saving the entries a follower accepts": [
        (
            "nb09-accept-entries",
            "            self.log.append([entry])\n            self.save_log(ctx, index)\n",
            "            self.log.append([entry])\n",
        ),
    ],
    "resetting the election timer on every message": [
        (
            "nb09-append-entries",
            "    ### BEGIN SOLUTION\n    if m.term < self.current_term:",
            "    ### BEGIN SOLUTION\n    self.reset_election_timer(ctx)\n    if m.term < self.current_term:",
        ),
        (
            "nb09-request-vote",
            "    ### BEGIN SOLUTION\n    up_to_date",
            "    ### BEGIN SOLUTION\n    self.reset_election_timer(ctx)\n    up_to_date",
        ),
    ],
    "applying an entry again (starting at last_applied, not after it)": [
        (
            "nb09-apply",
            "    while self.last_applied < self.commit_index:\n        self.last_applied += 1\n"
            "        self.apply(ctx, self.last_applied)\n",
            "    for i in range(max(self.last_applied, 1), self.commit_index + 1):\n        self.apply(ctx, i)\n"
            "    self.last_applied = self.commit_index\n",
        )
    ],
    "applying without advancing last_applied": [
        (
            "nb09-apply",
            "    while self.last_applied < self.commit_index:\n        self.last_applied += 1\n"
            "        self.apply(ctx, self.last_applied)\n",
            "    for i in range(self.last_applied + 1, self.commit_index + 1):\n        self.apply(ctx, i)\n",
        )
    ],
    "restoring last_applied from disk after a restart": [
        (
            "nb09-apply",
            "        self.apply(ctx, self.last_applied)\n",
            "        self.apply(ctx, self.last_applied)\n        ctx.persist('last_applied', self.last_applied)\n",
        ),
        (
            "nb09-restore",
            '    self.voted_for = storage.get("voted_for")\n',
            '    self.voted_for = storage.get("voted_for")\n'
            "    self.last_applied = self.commit_index = storage.get('last_applied', 0)\n",
        ),
    ],
    "a candidate that stays candidate under the leader of its term": [
        (
            "nb09-append-entries",
            "    if self.role is Role.CANDIDATE:\n        self.become_follower(ctx)\n",
            "",
        )
    ],
    "applying before committing": [
        (
            "nb09-apply",
            "while self.last_applied < self.commit_index",
            "while self.last_applied < self.log.last_index",
        )
    ],
    "a leader that takes a higher term but stays leader": [
        (
            "nb09-observe-term",
            "        self.save_term_and_vote(ctx)\n        self.become_follower(ctx)\n",
            "        self.save_term_and_vote(ctx)\n",
        )
    ],
    "a leader that never steps down on a higher term": [
        (
            "nb09-observe-term",
            "    if term > self.current_term:\n",
            "    if term > self.current_term and self.role is not Role.LEADER:\n",
        )
    ],
}


# The five bugs below that cost only time (each caught by the scenario that states the rule it breaks) ...
BUGS.update(
    {
        "granting a vote without restarting the election timer": [
            (
                "nb09-request-vote",
                "        self.save_term_and_vote(ctx)\n        self.reset_election_timer(ctx)\n",
                "        self.save_term_and_vote(ctx)\n",
            )
        ],
        # ... the same rule kept only where the term changes (a timer restarted in observe_term, as many
        # servers restart it on becoming a follower): a vote granted within the voter's current term is missed.
        "restarting the election timer only on a term change": [
            (
                "nb09-observe-term",
                "        self.save_term_and_vote(ctx)\n        self.become_follower(ctx)\n",
                "        self.save_term_and_vote(ctx)\n        self.become_follower(ctx)\n"
                "        self.reset_election_timer(ctx)\n",
            ),
            (
                "nb09-request-vote",
                "        self.save_term_and_vote(ctx)\n        self.reset_election_timer(ctx)\n",
                "        self.save_term_and_vote(ctx)\n",
            ),
        ],
        "backing up next_index on any failed reply": [
            (
                "nb09-append-entries-reply",
                "    elif m.request_term == self.current_term and m.prev_log_index == self.next_index[src] - 1:\n"
                "        self.next_index[src] = max(self.next_index[src] - 1, self.match_index[src] + 1)\n",
                "    else:\n        self.next_index[src] = max(self.next_index[src] - 1, 1)\n",
            )
        ],
        "matchIndex going backwards on a late reply": [
            (
                "nb09-append-entries-reply",
                "        self.match_index[src] = max(self.match_index[src], m.match_index)\n"
                "        self.next_index[src] = max(self.next_index[src], m.match_index + 1)\n",
                "        self.match_index[src] = m.match_index\n        self.next_index[src] = m.match_index + 1\n",
            )
        ],
        "leaving a stale AppendEntries unanswered": [
            (
                "nb09-append-entries",
                "        ctx.send(src, AppendEntriesReply(self.current_term, False, m.term, m.prev_log_index))\n"
                "        return\n",
                "        return\n",
            )
        ],
        "new entries sent only at the next heartbeat": [
            (
                "nb09-append-new-entry",
                "    for peer in self.peers:\n        self.send_append_entries(ctx, peer)\n",
                "",
            ),
        ],
        # ... and the same mistake without "only a leader of the reply's term listens": a deposed leader backs
        # up and sends AppendEntries of its new term as if it led it (a safety bug, caught before this one).
        "backing up on any failed reply, leader or not": [
            (
                "nb09-append-entries-reply",
                "    if self.role is not Role.LEADER or m.term != self.current_term:\n        return\n",
                "",
            ),
            (
                "nb09-append-entries-reply",
                "    elif m.request_term == self.current_term and m.prev_log_index == self.next_index[src] - 1:\n"
                "        self.next_index[src] = max(self.next_index[src] - 1, self.match_index[src] + 1)\n",
                "    else:\n        self.next_index[src] = max(self.next_index[src] - 1, 1)\n",
            ),
        ],
    }
)

# Other correct ways to write the rules, as learners do: each must pass every scenario, like the solution.
ALTERNATIVES: dict[str, list[tuple[str, str, str]]] = {
    "a vote refused early, then granted with the timer restarted first": [
        (
            "nb09-request-vote",
            "    grant = m.term == self.current_term and self.voted_for in (None, m.candidate_id) and up_to_date\n"
            "    if grant:\n"
            "        self.voted_for = m.candidate_id\n"
            "        self.save_term_and_vote(ctx)\n"
            "        self.reset_election_timer(ctx)\n"
            "    ctx.send(src, RequestVoteReply(self.current_term, grant))\n",
            "    if m.term < self.current_term or self.voted_for not in (None, m.candidate_id) or not up_to_date:\n"
            "        ctx.send(src, RequestVoteReply(self.current_term, False))\n"
            "        return\n"
            "    self.reset_election_timer(ctx)\n"
            "    self.voted_for = m.candidate_id\n"
            "    self.save_term_and_vote(ctx)\n"
            "    ctx.send(src, RequestVoteReply(self.current_term, True))\n",
        )
    ],
    "a new entry sent with a round of heartbeats": [
        (
            "nb09-append-new-entry",
            "    for peer in self.peers:\n        self.send_append_entries(ctx, peer)\n",
            "    self.send_heartbeats(ctx)\n",
        ),
    ],
    "replies handled by comparing, one step back at a time": [
        (
            "nb09-append-entries-reply",
            "        self.match_index[src] = max(self.match_index[src], m.match_index)\n"
            "        self.next_index[src] = max(self.next_index[src], m.match_index + 1)\n"
            "        self.advance_commit_index(ctx)\n",
            "        if m.match_index > self.match_index[src]:\n"
            "            self.match_index[src] = m.match_index\n"
            "            self.next_index[src] = m.match_index + 1\n"
            "            self.advance_commit_index(ctx)\n",
        ),
        (
            "nb09-append-entries-reply",
            "        self.next_index[src] = max(self.next_index[src] - 1, self.match_index[src] + 1)\n",
            "        self.next_index[src] -= 1\n",
        ),
    ],
    "backing up a whole term at once with the follower's hint (end of §5.3)": [
        (
            "nb09-accept-entries",
            "        ctx.send(src, AppendEntriesReply(self.current_term, False, m.term, m.prev_log_index))\n",
            "        if m.prev_log_index > self.log.last_index:\n"
            "            hint = self.log.last_index + 1\n"
            "        else:\n"
            "            hint = m.prev_log_index\n"
            "            while hint > 1 and self.log.term(hint - 1) == self.log.term(m.prev_log_index):\n"
            "                hint -= 1\n"
            "        ctx.send(src, AppendEntriesReply(self.current_term, False, m.term, m.prev_log_index, conflict_index=hint))\n",
        ),
        (
            "nb09-append-entries-reply",
            "        self.next_index[src] = max(self.next_index[src] - 1, self.match_index[src] + 1)\n",
            "        self.next_index[src] = max(min(self.next_index[src] - 1, m.conflict_index), self.match_index[src] + 1)\n",
        ),
    ],
}


def _cells(nb: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(grade id or None, source) of the code cells that make the solution, in order."""
    out = []
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    out.append((None, "".join(code[0]["source"])))  # the imports
    for c in code:
        src = "".join(c["source"])
        meta = c.get("metadata", {}).get("nbgrader", {})
        if src.startswith(CLASS_CELL):
            out.append((None, src))
        elif meta.get("solution") and meta.get("grade_id", "").startswith("nb09-"):
            out.append((meta["grade_id"], src))
    return out


def plant(nb: dict[str, Any], bug: str) -> dict[str, Any]:
    """A copy of notebook ``nb`` with ``bug`` (or one of the :data:`ALTERNATIVES`) planted in its answer cells."""
    edits = {**BUGS, **ALTERNATIVES}
    if bug not in edits:
        raise ValueError(f"bug must be one of {sorted(edits)}, got {bug!r}")
    nb = json.loads(json.dumps(nb))
    for grade_id, old, new in edits[bug]:
        cell = next(
            c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id
        )
        src = "".join(cell["source"])
        if src.count(old) != 1:
            raise AssertionError(f"{bug}: the text to change is not in {grade_id} exactly once: {old!r}")
        cell["source"] = src.replace(old, new)
    return nb


def load(nb: dict[str, Any] | None = None) -> type:
    """The ``MyRaft`` class that notebook ``nb`` (default: notebook 09) defines."""
    if nb is None:
        nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    ns: dict[str, Any] = {"__name__": "nb09"}
    for i, (grade_id, src) in enumerate(_cells(nb)):
        exec(compile(src, f"<{grade_id or f'nb09-cell-{i}'}>", "exec"), ns)  # noqa: S102 - the notebook's own code
    return ns["MyRaft"]


def solution() -> type:
    """The notebook's reference solution, ``MyRaft``."""
    return load()


def planted(bug: str) -> type:
    """The notebook's solution with ``bug`` (or an alternative) planted: a class named ``MyRaft``."""
    return load(plant(json.loads(NOTEBOOK.read_text(encoding="utf-8")), bug))
