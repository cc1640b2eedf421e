"""What the Raft lab checks: Figure 3's safety properties, Raft's liveness, and the clients' view.

Safety is checked after every event by labkit's
:class:`~labkit.raft.InvariantMonitor` (Figure 3 of the extended paper, plus
two of Figure 2's own invariants) and one more rule, :data:`MAJORITY_COMMIT`:
whenever a server raises its commit index to i, the entry at i must be stored
by a majority (§5.3: "a log entry is committed once the leader that created
it has replicated it on a majority of the servers"). Liveness is checked by
the scenarios at their checkpoints (§5.2, §5.6: with timeouts well above the
time a message takes, a majority that can talk elects a leader and makes
progress). The clients' view is checked at the end of a run: every result a
client saw must be explained by one sequential execution (linearizability,
Herlihy & Wing 1990; DDIA ch. 9). Five *requirements* are rules of Figure 2 (and §5.3) whose breach
costs time, not safety; the scenario that states each one checks it after every event
(:mod:`labkit.labs.raft.requirements`).
"""

from __future__ import annotations

from labkit.labs.core import Property

__all__ = [
    "ELECTION_SAFETY",
    "LOG_MATCHING",
    "LEADER_COMPLETENESS",
    "STATE_MACHINE_SAFETY",
    "COMMITTED_STAYS",
    "COMMIT_MONOTONIC",
    "APPLY_COMMITTED",
    "APPLY_ONCE",
    "MAJORITY_COMMIT",
    "SKELETON",
    "LEADER_ELECTED",
    "STABLE_LEADER",
    "PROGRESS",
    "LINEARIZABLE",
    "SAFETY",
    "VOTE_RESTARTS_TIMER",
    "BACK_UP_ON_MISMATCH",
    "REFUSE_STALE",
    "MATCH_INDEX_GROWS",
    "PROMPT_REPLICATION",
    "REQUIREMENTS",
]

# Safety (Figure 3 and Figure 2), checked after every event.
ELECTION_SAFETY = Property(
    "Election Safety",
    "at most one leader is elected in a term: never two leaders in one term",
    "Figure 3",
    look_at=(
        "handle_request_vote (one vote per term, saved before the reply), handle_request_vote_reply "
        "(count only votes of your own term, as a candidate), observe_term (a higher term: step down to "
        "follower, with a fresh vote; a leader that only takes the new term leads it unelected) and restore "
        "(the vote survives a restart)"
    ),
)
LOG_MATCHING = Property(
    "Log Matching",
    "two logs with an entry of the same index and term are identical up to it: logs never diverge below it",
    "Figure 3",
    look_at=(
        "accept_entries: the prev_log_index / prev_log_term check (step 2), and cutting the log only "
        "where an entry conflicts (step 3), never because a message came late"
    ),
)
LEADER_COMPLETENESS = Property(
    "Leader Completeness",
    "a committed entry is in the log of every leader of a later term",
    "Figure 3",
    look_at=(
        "the up-to-date check in handle_request_vote (§5.4.1), the current-term condition in "
        "advance_commit_index (§5.4.2), accept_entries (step 3 cuts the log only where an entry conflicts: "
        "a late AppendEntries removes nothing), and saving the log and the vote before replying (restore "
        "reads them back)"
    ),
)
STATE_MACHINE_SAFETY = Property(
    "State Machine Safety",
    "no two servers ever apply different entries at one index: a committed entry is never lost",
    "Figure 3",
    look_at=(
        "what commits an entry: advance_commit_index (a majority, an entry of the current term), "
        "accept_entries step 5 (min(leader_commit, last new entry)); and apply_committed (in index order,"
        " each once)"
    ),
)
COMMITTED_STAYS = Property(
    "Committed entries stay",
    "an index once committed is never committed again with another entry",
    "§5.4",
    look_at=(
        "the up-to-date check in handle_request_vote and the current-term condition in "
        "advance_commit_index: no server without a committed entry may lead, and no earlier term's entry "
        "commits by counting"
    ),
)
COMMIT_MONOTONIC = Property(
    "Commit index only grows",
    "a server's commit_index never decreases while it is up",
    "Figure 2",
    look_at=(
        "accept_entries step 5 and advance_commit_index: commit_index only ever grows, even for a late or"
        " repeated message"
    ),
)
APPLY_COMMITTED = Property(
    "Apply only committed entries",
    "last_applied <= commit_index: nothing is applied before it commits",
    "Figure 2",
    look_at="apply_committed: apply up to commit_index, never past it",
)
APPLY_ONCE = Property(
    "Apply each entry once, in order",
    "a server applies log[1], log[2], ... one after another, each once, and last_applied counts them",
    "Figure 2, Rules for Servers: All Servers; State: lastApplied",
    look_at=(
        "apply_committed: Figure 2 says 'increment lastApplied, apply log[lastApplied]': start after "
        "last_applied, and keep last_applied up to date as you go, so that the next call does not apply "
        "the same entries again; and restore: last_applied is volatile (Figure 2), so a restarted server "
        "starts from 0 and applies its entries again, onto an empty state machine"
    ),
)
MAJORITY_COMMIT = Property(
    "Commit needs a majority",
    "an entry is committed only once a majority of servers store it",
    "§5.3",
    look_at=(
        "advance_commit_index (count the leader itself and match_index, not next_index) and "
        "accept_entries step 5 (commit no further than the last entry the message carried)"
    ),
)
SKELETON = Property(
    "Skeleton's state", "Figure 2's state stays in the skeleton's fields and types", "the lab's skeleton"
)

# Liveness, checked by the scenarios.
LEADER_ELECTED = Property(
    "Leader election",
    "while a majority of servers are up and can talk, exactly one of them leads, all of them are in its term, "
    "and the others follow it",
    "§5.2, §5.6",
    look_at=(
        "start_election, handle_request_vote, handle_request_vote_reply and become_leader; observe_term "
        "(a higher term makes a server a follower with a fresh vote); handle_append_entries (a candidate "
        "that hears from the leader of its own term becomes its follower, §5.2); and when the election timer "
        "restarts: only on granting a vote or on AppendEntries of the current term (handle_append_entries)"
    ),
)
STABLE_LEADER = Property(
    "Stable leader",
    "while nothing fails, the leader keeps its place: no election without a reason",
    "§5.2",
    look_at=(
        "handle_append_entries: the current leader's AppendEntries restarts a follower's election timer "
        "(and so does granting a vote, in handle_request_vote); become_leader sends heartbeats at once"
    ),
)
PROGRESS = Property(
    "Progress",
    "a command given to the leader of a majority that can talk is applied by all of that majority",
    "§5.3, §5.6",
    look_at=(
        "append_new_entry, accept_entries, handle_append_entries_reply (on a failure back up next_index "
        "and retry; after a success send the rest), advance_commit_index and apply_committed"
    ),
)

# Requirements: Figure 2's rules whose breach costs time, not safety (a vote without a fresh timeout, a
# stale AppendEntries left unanswered, a step back on a stale reply, matchIndex going back, a new entry held until the next heartbeat). No
# property above can see them, so the scenarios that state them check them on the servers' own state.
VOTE_RESTARTS_TIMER = Property(
    "Granting a vote restarts the timer",
    "a server that grants a vote restarts its election timeout in the same step",
    "Figure 2, Rules for Servers: Followers; §5.2",
    look_at=(
        "handle_request_vote: when you grant the vote, call reset_election_timer, as Figure 2's Followers "
        "rule says: convert to candidate only if the timeout elapses 'without receiving AppendEntries RPC "
        "from current leader or granting vote to candidate'. Every grant, also one in the term you have "
        "already (a candidate whose request came late): a timer restarted only when the term changes, in "
        "observe_term or become_follower, misses that vote"
    ),
)
BACK_UP_ON_MISMATCH = Property(
    "Back up only on a log mismatch",
    "a leader moves next_index back only for a failed reply to the request it would send now "
    "(this term, prev_log_index = next_index - 1)",
    "Figure 2, Rules for Servers: Leaders; §5.3",
    look_at=(
        "handle_append_entries_reply: Figure 2 decrements nextIndex only 'if AppendEntries fails because of "
        "log inconsistency'; a reply to an older request (m.request_term, m.prev_log_index: late, "
        "duplicated, or refused at step 1 because its term was old) is no news about the log"
    ),
)
REFUSE_STALE = Property(
    "Refuse a stale AppendEntries",
    "a server that gets an AppendEntries of a term older than its own answers it: false, with its own term",
    "Figure 2, AppendEntries RPC, receiver step 1; §5.1",
    look_at=(
        "handle_append_entries: step 1, 'Reply false if term < currentTerm (§5.1)': send the refusal, "
        "with your current term, before you return. The reply is how a deposed leader learns of the newer "
        "term and steps down (§5.1: 'If a candidate or leader discovers that its term is out of date, it "
        "immediately reverts to follower state')"
    ),
)
MATCH_INDEX_GROWS = Property(
    "matchIndex only grows",
    "while a server leads a term, its match_index of each follower never goes down",
    "Figure 2, State: matchIndex 'increases monotonically'",
    look_at=(
        "handle_append_entries_reply: a late reply knows less than you already do; keep the larger "
        "match_index (and next_index) of the two"
    ),
)
PROMPT_REPLICATION = Property(
    "Prompt replication",
    "with nothing failing, a command given to the leader commits within two round trips",
    "§5.3",
    look_at=(
        "append_new_entry: after appending, send the entry to every follower at once (send_append_entries); "
        "§5.3: the leader 'issues AppendEntries RPCs in parallel to each of the other servers to replicate "
        "the entry'. Heartbeats are for idle periods"
    ),
)

# The clients' view, checked at the end of a run.
LINEARIZABLE = Property(
    "Linearizability",
    "every result a client saw is explained by one sequential execution of the operations",
    "Herlihy & Wing 1990; DDIA ch. 9",
)

SAFETY = (
    ELECTION_SAFETY,
    LOG_MATCHING,
    LEADER_COMPLETENESS,
    STATE_MACHINE_SAFETY,
    COMMITTED_STAYS,
    COMMIT_MONOTONIC,
    APPLY_COMMITTED,
    APPLY_ONCE,
    MAJORITY_COMMIT,
)

REQUIREMENTS = (VOTE_RESTARTS_TIMER, REFUSE_STALE, BACK_UP_ON_MISMATCH, MATCH_INDEX_GROWS, PROMPT_REPLICATION)

# The InvariantMonitor's messages start with these words.
MONITOR_PREFIXES = {
    "Election Safety": ELECTION_SAFETY,
    "Log Matching": LOG_MATCHING,
    "Leader Completeness": LEADER_COMPLETENESS,
    "State Machine Safety": STATE_MACHINE_SAFETY,
    "Commit index": COMMIT_MONOTONIC,
    "Commit": COMMITTED_STAYS,
    "Apply": APPLY_COMMITTED,
}
