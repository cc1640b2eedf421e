"""The classic wrong answer of each exercise fails a check the learner can SEE.

A learner alone runs the student notebook, which has no hidden tests: if the check that carries an
exercise's point is hidden, the misconception the exercise is about gets only ticks. For each exercise
below, the notebook's cells are run in order in one namespace (once per notebook); at the exercise's test
cell the planted wrong answer (one misconception, replacing the instructor solution) runs against the
visible part of the cell only (before ``### BEGIN HIDDEN TESTS``) in a copy of the namespace, and must fail
a check; the instructor solution must pass the same visible checks. Where a misconception names ``says``, the
message the learner reads must say it: the check points at the rule that was broken. A wrong answer that
raises, even deep in a simulation the cell runs, must show as failed checks, never as a traceback.

The copy is made at the answer cell and runs every cell from there to the exercise's test cells, as the
learner's notebook would: a lab (05, 09, 15) runs a part in an ungraded cell and checks one scenario per test
cell, and adds its rules to the learner's class one cell at a time (``@MyRaft.rule``), so in the copy that class
is a fresh subclass and a planted rule never reaches the class the solution runs as. A lab's part runs a few
seeds, as the learner's does. Every graded test cell of the course must have a misconception here.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from labkit.grading import ExerciseFailed, _tally

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
HIDDEN = "### BEGIN HIDDEN TESTS"
TRACEBACK = "a traceback, not a failed check: "


@dataclass(frozen=True)
class Wrong:
    """A misconception: the body that replaces the solution of ``answer``, checked by ``test``."""

    notebook: str  # file name prefix, "01"
    answer: str  # grade id of the answer cell
    test: str  # grade id of the test cell
    body: str | tuple[str | None, ...]  # replaces the lines between ### BEGIN/END SOLUTION (None: keep them)
    why: str
    says: str | None = None  # if given, the visible failure must say this (the hint that points the way)


# Notebook 09's accept_entries, step by step as Figure 2's AppendEntries receiver states them; a
# misconception swaps one step.
_STEP_2 = (
    "    if m.prev_log_index > self.log.last_index or self.log.term(m.prev_log_index) != m.prev_log_term:\n"
    "        ctx.send(src, AppendEntriesReply(self.current_term, False, m.term, m.prev_log_index))\n"
    "        return\n"
)
_LOOP = "    index = m.prev_log_index\n    for entry in m.entries:\n        index += 1\n"
_STEP_3 = (
    "        if index <= self.log.last_index and self.log.term(index) != entry.term:\n"
    "            self.log.truncate(index - 1)\n"
)
_STEP_4 = (
    "        if index > self.log.last_index:\n"
    "            self.log.append([entry])\n"
    "            self.save_log(ctx, index)\n"
)
_APPEND_ONLY = _LOOP + _STEP_4  # step 3 skipped: a conflicting entry is kept
_CUT_AND_APPEND = (  # the log cut after prev_log_index whatever it holds
    "    self.log.truncate(m.prev_log_index)\n"
    "    self.log.append(list(m.entries))\n"
    "    if m.entries:\n"
    "        self.save_log(ctx, m.prev_log_index + 1)\n"
)


def accept_entries(
    step_2: str = _STEP_2,
    steps_3_4: str = _LOOP + _STEP_3 + _STEP_4,
    step_5: str = "max(self.commit_index, min(m.leader_commit, last_new))",
) -> str:
    """The body of 09's accept_entries, with the steps given."""
    return (
        step_2
        + steps_3_4
        + "    last_new = m.prev_log_index + len(m.entries)\n"
        + "    if m.leader_commit > self.commit_index:\n"
        + f"        self.commit_index = {step_5}\n"
        + "        self.apply_committed(ctx)\n"
        + "    ctx.send(src, AppendEntriesReply(self.current_term, True, m.term, m.prev_log_index, match_index=last_new))\n"
    )


# Notebook 09's handle_append_entries_reply: its success branch and its failure branch (Figure 2, Leaders).
_REPLY_SUCCESS = (
    "        self.match_index[src] = max(self.match_index[src], m.match_index)\n"
    "        self.next_index[src] = max(self.next_index[src], m.match_index + 1)\n"
)
_REPLY_FAILURE = (
    "    elif m.request_term == self.current_term and m.prev_log_index == self.next_index[src] - 1:\n"
    "        self.next_index[src] = max(self.next_index[src] - 1, self.match_index[src] + 1)\n"
)


def append_entries_reply(success: str = _REPLY_SUCCESS, failure: str = _REPLY_FAILURE) -> str:
    """The body of 09's handle_append_entries_reply, with the branches given."""
    return (
        "    if self.role is not Role.LEADER or m.term != self.current_term:\n"
        "        return\n"
        "    if m.success:\n" + success + "        self.advance_commit_index(ctx)\n"
        "        if self.next_index[src] <= self.log.last_index:\n"
        "            self.send_append_entries(ctx, src)\n"
        + failure
        + "        self.send_append_entries(ctx, src)\n"
    )


WRONG = [
    Wrong(
        "01",
        "nb01-dedup",
        "nb01-dedup-test",
        "        if key not in self.responses:\n"
        "            self.balance += msg.amount\n"
        "            self.applied[key] = self.applied.get(key, 0) + 1\n"
        "            self.responses[key] = Response(msg.request_id, self.balance)\n"
        "            ctx.send(src, self.responses[key])\n",
        "a repeat is swallowed, so a client whose response was lost never gets one",
    ),
    Wrong(
        "01",
        "nb01-dedup",
        "nb01-dedup-test",
        "        if key not in self.responses:\n"
        "            self.balance += msg.amount\n"
        "            self.responses[key] = Response(msg.request_id, self.balance)\n"
        "        ctx.send(src, self.responses[key])\n",
        "applied by hand without counting it in self.applied (request_report then saw nothing applied,"
        " and the balance check said it expected 0)",
        says="apply with super().on_message(ctx, src, msg)",
    ),
    Wrong(
        "01",
        "nb01-dedup",
        "nb01-dedup-test",
        "        if key not in self.responses:\n"
        "            super().on_message(ctx, src, msg)\n"
        "            self.responses[key] = Response(msg.request_id, self.balance)\n"
        "        else:\n"
        "            ctx.send(src, Response(msg.request_id, self.balance))\n",
        "a repeat is answered with a fresh Response, whose balance has moved on since the first answer",
        says="a fresh Response carries the balance as it is now",
    ),
    Wrong(
        "01",
        "nb01-who-hears",
        "nb01-who-hears-test",
        "    for group in groups:\n        if origin in group:\n            return set(group)\n    return {origin}\n",
        "nodes in no group are taken to be cut off alone, not one more group",
    ),
    Wrong(
        "01",
        "nb01-dedup",
        "nb01-dedup-test",
        "        if key not in self.responses:\n"
        "            self.balance += msg.amount\n"
        "            self.applied[key] += 1\n"
        "            self.responses[key] = Response(msg.request_id, self.balance)\n"
        "        ctx.send(src, self.responses[key])\n",
        "a request applied for the first time counted with self.applied[key] += 1 (a KeyError raised in the"
        " simulator, shown as a traceback)",
        says="self.applied.get(key, 0)",
    ),
    Wrong(
        "01",
        "nb01-who-hears",
        "nb01-who-hears-test",
        "    for group in groups:\n        if origin in group:\n            return group\n"
        "    listed = {n for group in groups for n in group}\n"
        "    return {n for n in nodes if n not in listed}\n",
        "the origin's group returned as the list it is given, not as a set (failed with no hint)",
        says="return a set of node names",
    ),
    Wrong(
        "02",
        "nb02-lamport-times",
        "nb02-lamport-times-test",
        "    counter, in_flight, times = {}, {}, []\n"
        "    for kind, node, msg in events:\n"
        "        now = max(counter.get(node, 0), in_flight[msg]) + 1 if kind == 'recv' else counter.get(node, 0) + 1\n"
        "        if kind == 'send':\n"
        "            in_flight[msg] = now\n"
        "        counter[node] = now\n"
        "        times.append(now)\n"
        "    return times\n",
        "every event unpacked as (kind, node, message), though a local event has two fields (a ValueError"
        " traceback, not a check with its hint)",
        says="a local event has two fields",
    ),
    Wrong(
        "02",
        "nb02-hlc-receive",
        "nb02-hlc-receive-test",
        "    new_l = max(own_l, msg_l, pt)\n"
        "    if new_l == own_l and new_l == msg_l:\n"
        "        return [new_l, max(own_c, msg_c) + 1]\n"
        "    if new_l == own_l:\n"
        "        return [new_l, own_c + 1]\n"
        "    return [new_l, msg_c + 1] if new_l == msg_l else [new_l, 0]\n",
        "the right (l, c) returned as a list: every check failed, 'expected (12, 4), got [12, 4]', with no word of why",
        says="a tuple, not a list",
    ),
    Wrong(
        "04",
        "nb04-predict",
        "nb04-predict-test",
        "    side_a, side_b, w = 2, 3, 3\n    (float(side_a >= w), float(side_b >= w))\n",
        "the pair computed but not returned (a TypeError traceback from tuple(None), not a check with its hint)",
        says="did the function return?",
    ),
    Wrong(
        "06",
        "nb06-ring-lookup",
        "nb06-ring-lookup-test",
        "    i = bisect_left(h, points)\n    return owners[i % len(points)]\n",
        "bisect_left's arguments swapped (a TypeError traceback on the first check, not a check with its hint)",
        says="bisect_left(points, h), the sorted list first",
    ),
    Wrong(
        "06",
        "nb06-preference-list",
        "nb06-preference-list-test",
        "    start = bisect_left(points, h)\n"
        "    chosen = []\n"
        "    step = 0\n"
        "    while len(chosen) < n:\n"
        "        owner = owners[start + step]\n"
        "        if owner not in chosen:\n"
        "            chosen.append(owner)\n"
        "        step += 1\n"
        "    return chosen\n",
        "no wrap-around past the last point (an IndexError traceback, not a check with its hint)",
        says="take the index modulo len(points)",
    ),
    Wrong(
        "04",
        "nb04-can-write",
        "nb04-can-write-test",
        "    if mode is Mode.CONSISTENCY_FIRST:\n        return home_on_side >= w\n    return True\n",
        "availability-first is taken to be always available",
    ),
    Wrong(
        "07",
        "nb07-grant-vote",
        "nb07-grant-vote-check",
        "    return req_term == current_term and voted_for in (None, candidate)\n",
        "the vote rule drops up_to_date",
    ),
    Wrong(
        "08",
        "nb08-commit-index",
        "nb08-commit-index-check",
        "    n = len(match_index)\n"
        "    candidate = sorted(match_index)[n // 2]\n"
        "    if candidate > commit_index and log_terms[candidate - 1] == current_term:\n"
        "        return candidate\n"
        "    return commit_index\n",
        "the median of the ascending match indexes, wrong for an even number of servers",
    ),
    Wrong(
        "10",
        "nb10-majorities",
        "nb10-majorities-check",
        "    return len(set(old) ^ set(new)) > 1\n",
        "any change of more than one server is taken to be unsafe",
    ),
    Wrong(
        "11",
        "nb11-counterexample",
        "nb11-counterexample-test",
        "    return 3, {0, 1, 2, 3}\n",
        "B's write named as a conflict, though it may take effect any time before C's read returns",
    ),
    Wrong(
        "11",
        "nb11-judge",
        "nb11-judge-test",
        '    return {"h1": False, "h2": False, "h3": True, "h4": True, "h5": False}\n',
        "h4 judged linearizable: the overlapping reads after both writes",
    ),
    Wrong(
        "13",
        "nb13-classify",
        "nb13-classify-test",
        '    return {"r1": True, "r2": False, "r3": False}\n',
        "r3 judged not linearizable: a timed-out append taken not to have happened",
    ),
    Wrong(
        "14",
        "nb14-lost-update-rule",
        "nb14-lost-update-rule-blind",
        "    for key in txn.written:\n"
        "        if txn.read_at.get(key) != store.committed_at(key):\n"
        '            return f"{key} changed since {txn.name} read it"\n'
        "    return None\n",
        "a blind write (a key never read) is aborted",
    ),
    Wrong(
        "15",
        "nb15-naive-crash",
        "nb15-naive-crash-test",
        '    return ["charge", "create_label"]\n',
        "a hard-coded list of crash points, whatever the faults",
    ),
    Wrong(
        "15",
        "nb15-compensations",
        "nb15-compensations-test",
        '    actions = ["reserve", "charge", "create_label"]\n'
        '    undo = {"reserve": "release", "charge": "refund", "create_label": "cancel_label"}\n'
        "    return [undo[a] for a in reversed(actions[: actions.index(failed)])]\n",
        "timed_out ignored: a step that timed out is taken not to have happened",
    ),
    Wrong(
        "15",
        "nb15-idempotent",
        "nb15-idempotent-test",
        (
            None,
            '    seen = db["seen"].get(key)\n'
            '    if seen is not None and seen[0] == "charged":\n'
            "        _, customer, amount = seen\n"
            '        db["balance"][customer] += amount\n'
            '        db["seen"][key] = ("refunded", customer, amount)\n'
            '    return "ok"\n',
        ),
        "a refund of an unknown key leaves no tombstone",
    ),
    Wrong(
        "15",
        "nb15-idempotent",
        "nb15-idempotent-test",
        (
            None,
            '    seen = db["seen"][key]\n'
            '    if seen[0] == "charged":\n'
            "        _, customer, amount = seen\n"
            '        db["balance"][customer] += amount\n'
            '        db["seen"][key] = ("refunded", customer, amount)\n'
            '    return "ok"\n',
        ),
        "db['seen'][key] for a refund whose charge never came: a KeyError (was a traceback, its hint unseen)",
        says="look it up with db['seen'].get(key)",
    ),
    Wrong(
        "16",
        "nb16-retry",
        "nb16-retry-test",
        "    for attempt in range(1, attempts + 1):\n"
        "        try:\n"
        "            account = repo.load(account_id)\n"
        "            account.withdraw(cents)\n"
        "            repo.save(account)\n"
        "            return attempt\n"
        "        except (ConcurrencyError, AccountError):\n"
        "            if attempt == attempts:\n"
        "                raise\n",
        "an AccountError (an overdraft) is retried too",
    ),
    Wrong(
        "18",
        "nb18-read-leader-answer",
        "nb18-read-leader",
        "    if hint is not None:\n"
        "        return hint\n"
        "    return servers[(servers.index(asked) + 1) % len(servers)]\n",
        "any hint is followed, even one naming the server asked or another group's server",
    ),
    Wrong(
        "18",
        "nb18-read-leader-answer",
        "nb18-read-leader",
        "    if hint is not None and hint in servers and hint != asked:\n"
        "        return hint\n"
        "    return servers[servers.index(asked) + 1]\n",
        "no wrap-around after the last server: an IndexError (was a traceback, its hint unseen; in the run, through the router)",
        says="wrap around with %",
    ),
    Wrong(
        "01",
        "nb01-flood-count",
        "nb01-flood-count-test",
        "    return n * (n - 1)\n",
        "every node sends to every other, the origin's message counted again at each node",
    ),
    Wrong(
        "04",
        "nb04-rw",
        "nb04-rw-test",
        "    return r + w >= n\n",
        "R + W >= N: off by one, a read and a write quorum of N = 4, R = W = 2 may be disjoint",
    ),
    Wrong(
        "07",
        "nb07-up-to-date",
        "nb07-up-to-date-check",
        "    return cand_last_index >= my_last_index\n",
        "the longer log is taken to be the more up-to-date, whatever its last term",
    ),
    Wrong(
        "07",
        "nb07-fencing",
        "nb07-fencing-check",
        "    highest = None\n"
        "    accepted = []\n"
        "    for token, value in requests:\n"
        "        if highest is None or token > highest:\n"
        "            highest = token\n"
        "            accepted.append(value)\n"
        "    return accepted\n",
        "a token must grow strictly, so a leader's second write is refused",
    ),
    Wrong(
        "08",
        "nb08-conflict-hint",
        "nb08-conflict-hint-check",
        "    if prev_log_index > len(follower_terms):\n"
        "        return (len(follower_terms) + 1, None)\n"
        "    if prev_log_index == 0 or follower_terms[prev_log_index - 1] == prev_log_term:\n"
        "        return None\n"
        "    return (prev_log_index, follower_terms[prev_log_index - 1])\n",
        "the conflict is reported at prev_log_index, not at the first index of its term",
    ),
    Wrong(
        "08",
        "nb08-conflict-hint",
        "nb08-conflict-hint-check",
        "    if prev_log_index == 0 or follower_terms[prev_log_index - 1] == prev_log_term:\n"
        "        return None\n"
        "    t = follower_terms[prev_log_index - 1]\n"
        "    i = prev_log_index\n"
        "    while i > 1 and follower_terms[i - 2] == t:\n"
        "        i -= 1\n"
        "    return (i, t)\n",
        "a log too short to hold prev_log_index (an IndexError that was a traceback, not a check with its hint)",
        says="check the length first",
    ),
    Wrong(
        "08",
        "nb08-sessions",
        "nb08-sessions-check",
        "    data, last = {}, {}\n"
        "    for client, seq, key, suffix in commands:\n"
        "        if seq == last.get(client):\n"
        "            continue\n"
        "        last[client] = seq\n"
        '        data[key] = data.get(key, "") + suffix\n'
        "    return data\n",
        "only a repeat of the client's latest sequence number is skipped, not an older one arriving late",
    ),
    Wrong(
        "08",
        "nb08-conflict-hint",
        "nb08-conflict-hint-check",
        "    if prev_log_index > len(follower_terms):\n"
        "        return (len(follower_terms) + 1, None)\n"
        "    if prev_log_index == 0 or follower_terms[prev_log_index] == prev_log_term:\n"
        "        return None\n"
        "    t = follower_terms[prev_log_index]\n"
        "    i = prev_log_index\n"
        "    while i > 1 and follower_terms[i - 1] == t:\n"
        "        i -= 1\n"
        "    return (i, t)\n",
        "the log read 0-based: follower_terms[prev_log_index] (an IndexError that was a traceback at the first check)",
        says="Raft's log is 1-based",
    ),
    Wrong(
        "08",
        "nb08-conflict-hint",
        "nb08-conflict-hint-check",
        "    if prev_log_index > len(follower_terms):\n"
        "        return (len(follower_terms) + 1, None)\n"
        "    if prev_log_index == 0 or follower_terms[prev_log_index - 1] == prev_log_term:\n"
        "        return None\n"
        "    t = follower_terms[prev_log_index - 1]\n"
        "    i = prev_log_index\n"
        "    while follower_terms[i - 2] == t:\n"
        "        i -= 1\n"
        "    return (i, t)\n",
        "walking back with no stop at index 1: a log of one term wraps to its end (passed every check, hidden ones too)",
        says="stop walking back at index 1",
    ),
    Wrong(
        "08",
        "nb08-commit-index",
        "nb08-commit-index-check",
        "    n = len(match_index)\n"
        "    candidate = sorted(match_index, reverse=True)[n // 2]\n"
        "    if candidate > commit_index and log_terms[candidate] == current_term:\n"
        "        return candidate\n"
        "    return commit_index\n",
        "the term of entry i read as log_terms[i], 0-based (an IndexError that was a traceback at Figure 8's check)",
        says="log_terms[i - 1]",
    ),
    Wrong(
        "08",
        "nb08-sessions",
        "nb08-sessions-check",
        "    data, last = {}, {}\n"
        "    for client, seq, key, suffix in commands:\n"
        "        if seq <= last[client]:\n"
        "            continue\n"
        "        last[client] = seq\n"
        '        data[key] = data.get(key, "") + suffix\n'
        "    return data\n",
        "last[client] for a client seen for the first time: a KeyError (was a traceback, its hint unseen)",
        says="last.get(client, 0)",
    ),
    Wrong(
        "10",
        "nb10-pre-vote",
        "nb10-pre-vote-check",
        "    if request.next_term <= me.current_term:\n"
        "        return False\n"
        "    return (request.last_log_term, request.last_log_index) >= (me.last_log_term, me.last_log_index)\n",
        "a pre-vote is granted while the leader is still heard",
    ),
    Wrong(
        "10",
        "nb10-read-index",
        "nb10-read-index-check",
        "    return [r for r in reads if r.read_index is not None and r.read_index <= last_applied]\n",
        "a read is answered before the leader confirmed it is still leader (the round is ignored)",
    ),
    Wrong(
        "02",
        "nb02-later-write-lost",
        "nb02-later-write-lost-test",
        "    return skew > 0\n",
        "any skew of A's clock ahead loses B's later write, however late B writes",
    ),
    Wrong(
        "02",
        "nb02-later-write-lost",
        "nb02-later-write-lost-test",
        "    return abs(skew) > gap\n",
        "a clock off by more than the gap, ahead or behind, loses the write (passed every visible check)",
    ),
    Wrong(
        "02",
        "nb02-lamport-times",
        "nb02-lamport-times-test",
        "    counter, in_flight, times = {}, {}, []\n"
        "    for event in events:\n"
        "        kind, node = event[0], event[1]\n"
        "        if kind == 'recv':\n"
        "            now = max(counter.get(node, 0), in_flight[event[2]])\n"
        "        else:\n"
        "            now = counter.get(node, 0) + 1\n"
        "        if kind == 'send':\n"
        "            in_flight[event[2]] = now\n"
        "        counter[node] = now\n"
        "        times.append(now)\n"
        "    return times\n",
        "a receive takes the larger clock but does not tick",
    ),
    Wrong(
        "02",
        "nb02-vector-compare",
        "nb02-vector-compare-test",
        "    sa, sb = sum(a.values()), sum(b.values())\n"
        '    return "before" if sa < sb else "after" if sa > sb else "equal"\n',
        "vector clocks ordered by the sum of their entries, as if they were Lamport times",
    ),
    Wrong(
        "02",
        "nb02-hlc-receive",
        "nb02-hlc-receive-test",
        "    return max(own_l, msg_l, pt), max(own_c, msg_c) + 1\n",
        "c counts on even when the physical clock is ahead of both l",
    ),
    Wrong(
        "02",
        "nb02-hlc-receive",
        "nb02-hlc-receive-test",
        "    new_l = max(own_l, msg_l, pt)\n"
        "    return (new_l, 0) if new_l == pt and pt > max(own_l, msg_l) else (new_l, max(own_c, msg_c) + 1)\n",
        "c counts on from the larger c, even one that comes with an older l (passed every visible check)",
    ),
    Wrong(
        "03",
        "nb03-causally-ready",
        "nb03-causally-ready-test",
        "    return all(delivered.get(node, 0) == count for node, count in deps.items()) and len(deps) == len(delivered)\n",
        "a message is ready only when the dependencies equal what was delivered",
    ),
    Wrong(
        "03",
        "nb03-gcounter-merge",
        "nb03-gcounter-merge-test",
        "    return {replica: a.get(replica, 0) + b.get(replica, 0) for replica in a.keys() | b.keys()}\n",
        "merge adds the entries, so each meeting counts the increments again",
    ),
    Wrong(
        "03",
        "nb03-orset",
        "nb03-orset-test",
        (None, "    return {(e, tag) for e, tag in adds if e != element}, removed\n", None),
        "remove just drops the element's adds, with no tombstone",
    ),
    Wrong(
        "06",
        "nb06-ring-lookup",
        "nb06-ring-lookup-test",
        "    from bisect import bisect_right\n    return owners[bisect_right(points, h) % len(points)]\n",
        "bisect_right: a key exactly on a point goes to the next point",
    ),
    Wrong(
        "06",
        "nb06-ring-lookup",
        "nb06-ring-lookup-test",
        "    return owners[bisect_left(points, h)]\n",
        "no wrap-around past the last point (an IndexError that was a traceback, not a check with its hint)",
        says="bisect returns len(points) there",
    ),
    Wrong(
        "11",
        "nb11-queue-model",
        "nb11-queue-model-test",
        (
            None,
            '        if input[0] == "enq":\n'
            "            return None, state + (input[1],)\n"
            "        return (state[-1], state[:-1]) if state else (None, state)\n",
        ),
        "deq takes the newest element: a stack, not a queue",
    ),
    Wrong(
        "11",
        "nb11-queue-model",
        "nb11-queue-model-test",
        (
            "        return []\n",
            '        if input[0] == "enq":\n'
            "            return None, state + [input[1]]\n"
            "        return (state[0], state[1:]) if state else (None, state)\n",
        ),
        "states kept in lists, which the checker cannot store (its refusal was a traceback through checker.py)",
        says="a tuple, not a list",
    ),
    Wrong(
        "12",
        "nb12-invariant",
        "nb12-invariant-terms",
        "    leaders = [s for s, server in state.live().items() if server.role is Role.LEADER]\n"
        '    return [f"leaders {leaders}"] if len(leaders) > 1 else []\n',
        "at most one leader at a time, whatever their terms",
    ),
    Wrong(
        "13",
        "nb13-timeout",
        "nb13-timeout-test",
        "    xs = sorted(latencies)\n    return max(0.05, xs[max(0, -(-99 * len(xs) // 100) - 1)])\n",
        "the p99 itself, with no safety margin",
    ),
    Wrong(
        "14",
        "nb14-classify",
        "nb14-classify-p3",
        '    return {"p1": "G0", "p2": "G1a", "p3": "G2-item", "p4": "G1c", "p5": "G2-item", "p6": "none",\n'
        '            "p7": "G1b"}\n',
        "p3 taken for G2-item: one anti-dependency and one read dependency is G-single",
    ),
    Wrong(
        "16",
        "nb16-cart-state",
        "nb16-cart-state-test",
        "    cart = {}\n"
        "    for event in events:\n"
        '        kind = event["type"]\n'
        '        if kind == "ItemAdded":\n'
        '            cart[event["sku"]] = cart.get(event["sku"], 0) + event["qty"]\n'
        '        elif kind == "ItemRemoved":\n'
        '            cart[event["sku"]] = max(0, cart.get(event["sku"], 0) - event["qty"])\n'
        '        elif kind == "CartCleared":\n'
        "            cart = {}\n"
        "        else:\n"
        '            raise ValueError(f"unknown cart event type {kind!r}")\n'
        "    return cart\n",
        "an item removed down to zero stays in the cart",
    ),
    Wrong(
        "16",
        "nb16-upcaster",
        "nb16-upcaster-test",
        '    return {"sku": data["item"].lower(), "qty": data["n"]}\n',
        "the name lower-cased but not stripped",
    ),
    Wrong(
        "16",
        "nb16-upcaster",
        "nb16-upcaster-unchanged",
        '    data["sku"] = data.pop("item").strip().lower()\n    data["qty"] = data.pop("n")\n    return data\n',
        "the upcaster rewrites the stored event's data in place",
    ),
    Wrong(
        "16",
        "nb16-projection",
        "nb16-projection-test",
        (None, "        self.largest[record.stream_id] = event.cents\n"),
        "the latest withdrawal kept, not the largest",
    ),
    Wrong(
        "16",
        "nb16-cart-state",
        "nb16-cart-state-test",
        "    cart = {}\n"
        "    for event in events:\n"
        '        kind = event["type"]\n'
        '        if kind == "ItemAdded":\n'
        '            cart[event["sku"]] += event["qty"]\n'
        '        elif kind == "ItemRemoved":\n'
        '            left = cart.get(event["sku"], 0) - event["qty"]\n'
        "            if left > 0:\n"
        '                cart[event["sku"]] = left\n'
        "            else:\n"
        '                cart.pop(event["sku"], None)\n'
        '        elif kind == "CartCleared":\n'
        "            cart = {}\n"
        "        else:\n"
        '            raise ValueError(f"unknown cart event type {kind!r}")\n'
        "    return cart\n",
        "cart[sku] += qty for a sku not in the cart yet: a KeyError (was a traceback, its hint unseen)",
        says="cart.get(sku, 0)",
    ),
    Wrong(
        "16",
        "nb16-cart-state",
        "nb16-cart-state-test",
        "    cart = {}\n"
        "    for event in events:\n"
        '        kind = event["type"]\n'
        '        if kind == "ItemAdded":\n'
        '            cart[event["sku"]] = cart.get(event["sku"], 0) + event["qty"]\n'
        '        elif kind == "ItemRemoved":\n'
        '            cart[event["sku"]] = cart.get(event["sku"], 0) - event["qty"]\n'
        '            if cart[event["sku"]] == 0:\n'
        '                del cart[event["sku"]]\n'
        '        elif kind == "CartCleared":\n'
        "            cart = {}\n"
        "        else:\n"
        '            raise ValueError(f"unknown cart event type {kind!r}")\n'
        "    return cart\n",
        "only a quantity of exactly 0 leaves the cart: removing too many leaves a negative one (failed only in grading)",
        says="keep only quantities above 0",
    ),
    Wrong(
        "16",
        "nb16-cart-state",
        "nb16-cart-state-test",
        "    cart = {}\n"
        "    for event in events:\n"
        '        kind = event["type"]\n'
        '        if kind == "ItemAdded":\n'
        '            cart[event["sku"]] = cart.get(event["sku"], 0) + event["qty"]\n'
        '        elif kind == "ItemRemoved":\n'
        '            left = cart.get(event["sku"], 0) - event["qty"]\n'
        "            if left > 0:\n"
        '                cart[event["sku"]] = left\n'
        "            else:\n"
        '                cart.pop(event["sku"], None)\n'
        "        else:\n"
        '            raise ValueError(f"unknown cart event type {kind!r}")\n'
        "    return cart\n",
        "CartCleared forgotten, so it raises as an unknown type (failed only in grading)",
        says="clear, then add",
    ),
    Wrong(
        "16",
        "nb16-retry",
        "nb16-retry-test",
        "    account = repo.load(account_id)\n"
        "    account.withdraw(cents)\n"
        "    repo.save(account)\n"
        "    return 1\n",
        "no retry: the ConcurrencyError propagates at once (was a traceback through the event store)",
        says="start again from a fresh load",
    ),
    Wrong(
        "16",
        "nb16-retry",
        "nb16-retry-test",
        "    attempt = 0\n"
        "    while True:\n"
        "        attempt += 1\n"
        "        account = repo.load(account_id)\n"
        "        account.withdraw(cents)\n"
        "        try:\n"
        "            repo.save(account)\n"
        "            return attempt\n"
        "        except ConcurrencyError:\n"
        "            continue\n",
        "retried for ever, attempts ignored (failed only in grading)",
        says="at most `attempts` attempts",
    ),
    Wrong(
        "16",
        "nb16-upcaster",
        "nb16-upcaster-test",
        '    return {"sku": data["item"].replace(" ", "").lower(), "qty": data["n"]}\n',
        "every space removed, the inner one too, and a tab kept (failed only in grading)",
        says="strip() with no argument",
    ),
    Wrong(
        "16",
        "nb16-upcaster",
        "nb16-upcaster-test",
        '    return {"sku": data.item.strip().lower(), "qty": data.n}\n',
        "the dict read as an object: data.item (an AttributeError that was a traceback through upcast)",
        says='data["item"]',
    ),
    Wrong(
        "16",
        "nb16-projection",
        "nb16-projection-test",
        (None, "        self.largest[record.stream_id] = max(event.cents, self.largest[record.stream_id])\n"),
        "self.largest[stream] before the account's first withdrawal: a KeyError (was a traceback through catch_up)",
        says="self.largest.get(record.stream_id, 0)",
    ),
    Wrong(
        "17",
        "nb17-retry-budget",
        "nb17-retry-budget-check",
        "    return RetryPolicy(max_attempts=4, backoff=Backoff(base=0.01, cap=0.2))\n",
        "retries with backoff but no budget",
    ),
    Wrong("00", "nb00-majority", "nb00-majority-test", "    return (n + 1) // 2\n", "half of n rounded up"),
    Wrong(
        "02",
        "nb02-vector-compare",
        "nb02-vector-compare-test",
        "    le = all(a[n] <= b[n] for n in a.keys() | b.keys())\n"
        "    ge = all(a[n] >= b[n] for n in a.keys() | b.keys())\n"
        '    return "equal" if le and ge else "before" if le else "after" if ge else "concurrent"\n',
        "a node missing from one clock read as a[n] (a KeyError traceback, not a check with its hint)",
        says="counts as 0 there",
    ),
    Wrong(
        "03",
        "nb03-causally-ready",
        "nb03-causally-ready-test",
        "    return all(delivered[node] >= count for node, count in deps.items())\n",
        "a node missing from delivered read as delivered[node]: a KeyError, in the simulation too, must show as"
        " failed checks with the hint, never as a traceback",
        says="missing means 0",
    ),
    Wrong(
        "03",
        "nb03-gcounter-merge",
        "nb03-gcounter-merge-test",
        "    for replica, count in b.items():\n        a[replica] = max(a.get(replica, 0), count)\n    return a\n",
        "a merge that updates a in place (passed every visible check; the text says not to change a or b)",
    ),
    Wrong(
        "03",
        "nb03-causally-ready",
        "nb03-causally-ready-test",
        "    return all(delivered.get(node, 0) > count for node, count in deps.items())\n",
        "strictly more than deps asks for (the failing check had no hint)",
        says=">=, not >",
    ),
    Wrong(
        "03",
        "nb03-causally-ready",
        "nb03-causally-ready-test",
        "    return any(delivered.get(node, 0) >= count for node, count in deps.items())\n",
        "any() instead of all(): a message with no dependencies is never ready (told only 'too strict')",
        says="any() of none is False",
    ),
    Wrong(
        "03",
        "nb03-gcounter-merge",
        "nb03-gcounter-merge-test",
        "    return {**a, **b}\n",
        "b's entries overwrite a's: increments are lost (the count's hint spoke only of adding)",
        says="fewer: a merge that takes one side's entry",
    ),
    Wrong(
        "03",
        "nb03-orset",
        "nb03-orset-test",
        (None, None, "    return a[0] | b[0], a[1] & b[1]\n"),
        "merge keeps only the tombstones both sides have, so a remove is undone by the next merge",
        says="merge keeps only the tombstones both sides have",
    ),
    Wrong(
        "07",
        "nb07-fencing",
        "nb07-fencing-check",
        "    out, last = [], 0\n"
        "    for token, value in requests:\n"
        "        if token >= last:\n"
        "            out.append(value)\n"
        "        last = token\n"
        "    return out\n",
        "compared with the last request's token, a rejected one included, not the largest accepted",
    ),
    Wrong(
        "07",
        "nb07-fencing",
        "nb07-fencing-check",
        "    highest = requests[0][0]\n"
        "    accepted = []\n"
        "    for token, value in requests:\n"
        "        if token >= highest:\n"
        "            highest = token\n"
        "            accepted.append(value)\n"
        "    return accepted\n",
        "the largest token started at the first request's: an IndexError on no requests (was a traceback)",
        says="an empty list has no requests[0]",
    ),
    Wrong(
        "07",
        "nb07-fencing",
        "nb07-fencing-check",
        "    highest = 0\n"
        "    accepted = []\n"
        "    for value, token in requests:\n"
        "        if token >= highest:\n"
        "            highest = token\n"
        "            accepted.append(value)\n"
        "    return accepted\n",
        "a request unpacked as (value, token): a str compared with an int, a TypeError (was a traceback)",
        says="(token, value) pair",
    ),
    Wrong(
        "07",
        "nb07-grant-vote",
        "nb07-grant-vote-check",
        "    return req_term == current_term and (voted_for == candidate or (voted_for is None and up_to_date))\n",
        "a retry by the same candidate granted whatever its log",
    ),
    Wrong(
        "04",
        "nb04-predict",
        "nb04-predict-test",
        "    if mode is Mode.AVAILABILITY_FIRST:\n        return (1.0, 1.0)\n    return (0.0, 1.0)\n",
        "availability-first answers on both sides even with no node left to stand in",
    ),
    Wrong(
        "05",
        "nb05-overlap",
        "nb05-overlap-test",
        "    return r + w - n\n",
        "no floor at 0: R + W < N overlap negatively",
    ),
    Wrong(
        "05",
        "nb05-survivors",
        "nb05-survivors-test",
        "    return [b for b in versions if not any(a.context[b.dot.node] > b.dot.counter for a in versions)]\n",
        "a context covers a dot only beyond its counter (off by one)",
    ),
    Wrong(
        "06",
        "nb06-moved-fraction",
        "nb06-moved-fraction-test",
        ("    return 1 / n\n", None),
        "the newcomer's share counted among the old n nodes",
    ),
    Wrong(
        "06",
        "nb06-preference-list",
        "nb06-preference-list-test",
        "    start = bisect_left(points, h)\n    return [owners[(start + i) % len(points)] for i in range(n)]\n",
        "the next n points, not the next n distinct owners",
    ),
    Wrong(
        "17",
        "nb17-half-open",
        "nb17-half-open-check",
        '    if not ok:\n        return "open"\n    return "closed" if successes >= probes else "half_open"\n',
        "this probe's success not counted",
    ),
    Wrong(
        "17",
        "nb17-recovered-at",
        "nb17-recovered-at-check",
        '    totals = frame.groupby("time", sort=True)[["goodput", "offered"]].sum()\n'
        "    totals = totals[totals.index >= after]\n"
        "    healthy = totals[totals.goodput >= level * totals.offered]\n"
        "    return healthy.index[0] if len(healthy) else None\n",
        "the first healthy moment, not the start of the healthy stretch that lasts",
    ),
    Wrong(
        "17",
        "nb17-recovered-at",
        "nb17-recovered-at-check",
        '    totals = frame.groupby("time", sort=True)[["goodput", "offered"]].sum()\n'
        "    totals = totals[totals.index >= after]\n"
        "    bad = totals[totals.goodput < level * totals.offered]\n"
        "    later = totals[totals.index > bad.index[-1]] if len(bad) else totals\n"
        "    return later.index[0]\n",
        "None never returned: index[0] of an empty selection (an IndexError that was a traceback)",
        says="return None",
    ),
    Wrong(
        "17",
        "nb17-recovered-at",
        "nb17-recovered-at-check",
        "    rows = frame[frame.time >= after]\n"
        "    bad = rows[rows.goodput < level * rows.offered].time\n"
        "    times = sorted(set(rows.time))\n"
        "    later = [t for t in times if not len(bad) or t > bad.max()]\n"
        "    return later[0] if later else None\n",
        "each kind judged on its own, not the bucket's total",
        says="add up all kinds per bucket",
    ),
    Wrong(
        "17",
        "nb17-retry-budget",
        "nb17-retry-budget-check",
        "    return RetryPolicy(max_attempts=4, backoff=Backoff(base=0.2, cap=0.01), budget_ratio=0.4)\n",
        "base and cap swapped: RetryPolicy refuses it (a ValueError that was a traceback through labkit)",
        says="cap must be >= base",
    ),
    # The short test cells of 12, 14 and 16: each can fail with a misconception of its own.
    Wrong(
        "12",
        "nb12-invariant",
        "nb12-invariant-catches",
        "    leaders = {}\n"
        "    for server_id, server in state.live().items():\n"
        '        if server.role == "leader":\n'
        "            leaders.setdefault(server.current_term, []).append(server_id)\n"
        '    return [f"term {t}: {ids}" for t, ids in leaders.items() if len(ids) > 1]\n',
        "the role compared with the string 'leader' instead of Role.LEADER: no leader is ever found",
    ),
    Wrong(
        "12",
        "nb12-invariant",
        "nb12-invariant-passes",
        "    leaders = {}\n"
        "    for server_id, server in state.live().items():\n"
        "        if server.role is Role.LEADER:\n"
        "            leaders.setdefault(server.current_term, []).append(server_id)\n"
        '    return [f"term {t}: {ids}" for t, ids in leaders.items() if len(ids) >= 1]\n',
        "any leader is reported (>= 1 instead of > 1)",
    ),
    Wrong(
        "14",
        "nb14-lost-update-rule",
        "nb14-lost-update-rule-test",
        "    for key in txn.written:\n"
        "        if key in txn.read_at and txn.read_at[key] > store.committed_at(key):\n"
        '            return f"{key} changed"\n'
        "    return None\n",
        "the comparison the wrong way round: a newer committed version is let through",
    ),
    Wrong(
        "14",
        "nb14-lost-update-rule",
        "nb14-lost-update-rule-serial",
        "    for key in txn.written:\n"
        "        if key in txn.read_at and store.committed_at(key) != 0:\n"
        '            return f"{key} was written by another transaction"\n'
        "    return None\n",
        "any key another transaction ever committed counts as changed, even the version that was read",
    ),
    Wrong(
        "14",
        "nb14-lost-update-rule",
        "nb14-lost-update-rule-serial",
        "    for key in txn.written:\n"
        "        if key in txn.read_at and txn.read_at[key] != store.committed_at(key):\n"
        "            return True\n"
        "    return False\n",
        "True or False for 'abort?', so every commit is refused (the hint spoke only of the version read)",
        says="False included",
    ),
    Wrong(
        "14",
        "nb14-lost-update-rule",
        "nb14-lost-update-rule-blind",
        "    for key in txn.written:\n"
        "        if txn.read_at[key] != store.committed_at(key):\n"
        '            return f"{key} changed"\n'
        "    return None\n",
        "txn.read_at[key] on a key never read: a KeyError (a traceback through the store, its hint unseen)",
        says="a key the transaction never read is not in txn.read_at",
    ),
    Wrong(
        "14",
        "nb14-classify",
        "nb14-classify-test",
        '    return {"p1": "G1c", "p2": "G1a", "p3": "G-single", "p4": "G1c", "p5": "G2-item", "p6": "none",\n'
        '            "p7": "G1b"}\n',
        "p1 taken for G1c: the edges between the two writers are ww (the appends' order), not wr",
    ),
    Wrong(
        "14",
        "nb14-classify",
        "nb14-classify-p5",
        '    return {"p1": "G0", "p2": "G1a", "p3": "G-single", "p4": "G1c", "p5": "G-single", "p6": "none",\n'
        '            "p7": "G1b"}\n',
        "p5 taken for G-single: each transaction missed the other's append, two anti-dependencies",
    ),
    Wrong(
        "14",
        "nb14-classify",
        "nb14-classify-test",
        '    return {"p1": "G0", "p2": "G1b", "p3": "G-single", "p4": "G1c", "p5": "G2-item", "p6": "none",\n'
        '            "p7": "G1a"}\n',
        "G1a and G1b swapped: p2's writer aborted (an aborted read), p7's overwrote what was read (intermediate)",
        says="G1a, an aborted read",
    ),
    Wrong(
        "14",
        "nb14-classify",
        "nb14-classify-p5",
        '    return {"p1": "G0", "p2": "G1a", "p3": "G-single", "p4": "G0", "p5": "G2-item", "p6": "none",\n'
        '            "p7": "G1b"}\n',
        "p4 taken for G0: each transaction read the other's append, wr edges, not ww",
        says="G1c, circular information flow",
    ),
    Wrong(
        "14",
        "nb14-classify",
        "nb14-classify-p3",
        '    return {"p1": "G0", "p2": "G1a", "p3": "G-single", "p4": "G1c", "p5": "G2-item", "p6": "G1c",\n'
        '            "p7": "G1b"}\n',
        "p6 taken for G1c: its wr edges T1 -> T2 -> T3 are a chain, not a cycle; the history is serializable",
        says="is there a cycle at all",
    ),
    # Exercises 05 merkle, 06 capacity, 12, 13, 14 and 18, and the quorum and saga labs (05, 15).
    Wrong(
        "05",
        "nb05-merkle",
        "nb05-merkle-test",
        "    return 1 + depth\n",
        "one hash per level: the sibling of each differing node is forgotten",
        "two per level",
    ),
    Wrong(
        "06",
        "nb06-capacity",
        "nb06-capacity-test",
        "    return int((1 + epsilon) * m / n)\n",
        "the capacity rounded down, so no node may hold its share of the slack",
        "math.ceil",
    ),
    Wrong(
        "12",
        "nb12-count",
        "nb12-count-test",
        "    return 9\n",
        "one state per combination of phases: the order of events is forgotten",
        "three different orders",
    ),
    Wrong(
        "12",
        "nb12-bounds",
        "nb12-bounds-test",
        '    return Bounds(limits={"term": 4})\n',
        "terms bounded but heartbeats left on",
        "heartbeats",
    ),
    Wrong(
        "12",
        "nb12-bounds",
        "nb12-bounds-test",
        '    return Bounds(limits={"term": 3}, fires={"heartbeat": 0})\n',
        "one term too few: the story needs a fourth term for n2 to win without A",
        "how many terms",
    ),
    Wrong(
        "12",
        "nb12-hunt",
        "nb12-hunt-test",
        "    return [\n"
        '        "place order-1 at coordinator",\n'
        '        "deliver Request: coordinator → inventory",\n'
        '        "deliver Request: coordinator → payment",\n'
        '        "deliver Request: coordinator → shipping",\n'
        '        "deliver Reply: inventory → coordinator",\n'
        '        "deliver Reply: payment → coordinator",\n'
        '        "crash coordinator",\n'
        '        "restart coordinator",\n'
        "    ]\n",
        "the coordinator crashes before every vote is in, so it never decided commit",
        "all three votes yes",
    ),
    Wrong(
        "12",
        "nb12-hunt",
        "nb12-hunt-test",
        "    return [\n"
        '        "place order-1 at coordinator",\n'
        '        "deliver Request: coordinator -> inventory",\n'
        "    ]\n",
        "a button text typed with '->' for the arrow (Walk.do's refusal was a traceback through walk.py)",
        "the arrow is →",
    ),
    Wrong(
        "12",
        "nb12-invariant",
        "nb12-invariant-catches",
        "    leaders = [server for server in state.live() if server.role is Role.LEADER]\n"
        '    return ["two leaders"] if len(leaders) > 1 else []\n',
        "state.live() looped over as if it held servers: its keys are ids (a traceback through the search)",
        "loop over its .items()",
    ),
    Wrong(
        "12",
        "nb12-invariant",
        "nb12-invariant-passes",
        "    leaders = [server for server in state.live() if server.role is Role.LEADER]\n"
        '    return ["two leaders"] if len(leaders) > 1 else []\n',
        "state.live() looped over as if it held servers (a traceback through the search)",
        "loop over its .items()",
    ),
    Wrong(
        "13",
        "nb13-predict",
        "nb13-predict-test",
        '    return {"linearizable": True, "serializable": True}\n',
        "serializable taken for the stronger guarantee (as for transactions), so both pass",
        "its own copy",
    ),
    Wrong(
        "14",
        "nb14-predict-postgres",
        "nb14-predict-postgres-test",
        "    return {\n"
        '        "doctors": {"READ COMMITTED": 2, "REPEATABLE READ": 1, "SERIALIZABLE": 1},\n'
        '        "deposits": {"READ COMMITTED": 2, "REPEATABLE READ": 1, "SERIALIZABLE": 1},\n'
        "    }\n",
        "repeatable read taken to prevent write skew",
        "snapshot isolation",
    ),
    Wrong(
        "14",
        "nb14-predict-postgres",
        "nb14-predict-postgres-deposits",
        "    return {\n"
        '        "doctors": {"READ COMMITTED": 2, "REPEATABLE READ": 2, "SERIALIZABLE": 1},\n'
        '        "deposits": {"READ COMMITTED": 2, "REPEATABLE READ": 2, "SERIALIZABLE": 1},\n'
        "    }\n",
        "repeatable read taken to allow a lost update, as the SQL standard does",
        "deposits at REPEATABLE READ",
    ),
    Wrong(
        "14",
        "nb14-predict-postgres",
        "nb14-predict-postgres-serializable",
        "    return {\n"
        '        "doctors": {"READ COMMITTED": 2, "REPEATABLE READ": 2, "SERIALIZABLE": 2},\n'
        '        "deposits": {"READ COMMITTED": 2, "REPEATABLE READ": 1, "SERIALIZABLE": 1},\n'
        "    }\n",
        "serializable taken to let the doctors both commit: they write different rows, so nothing seems to conflict",
        "SSI refuses one",
    ),
    Wrong(
        "18",
        "nb18-owner-answer",
        "nb18-owner",
        "    return HashRing(groups).node_for(key)\n",
        "vnodes ignored: the ring is built with HashRing's default",
        "vnodes",
    ),
    Wrong(
        "18",
        "nb18-owner-answer",
        "nb18-owner",
        "    import zlib\n    return groups[zlib.crc32(key.encode()) % len(groups)]\n",
        "hash modulo the number of groups, not a ring",
        "HashRing",
    ),
    Wrong(
        "18",
        "nb18-moving-answer",
        "nb18-moving",
        "    old = HashRing(groups)\n"
        "    new = HashRing([*groups, new_group])\n"
        "    return {k for k in keys if old.node_for(k) != new.node_for(k)}\n",
        "vnodes ignored: both rings are built with HashRing's default",
        "vnodes",
    ),
    Wrong(
        "18",
        "nb18-moving-answer",
        "nb18-moving",
        "    import zlib\n"
        "    h = {k: zlib.crc32(k.encode()) for k in keys}\n"
        "    return {k for k in keys if h[k] % len(groups) != h[k] % (len(groups) + 1)}\n",
        "hash modulo the number of groups: most keys move, not a quarter",
    ),
    Wrong(
        "18",
        "nb18-moving-answer",
        "nb18-moving",
        "    old = HashRing(groups, vnodes=vnodes)\n"
        "    new = HashRing(groups + new_group, vnodes=vnodes)\n"
        "    return {k for k in keys if old.node_for(k) != new.node_for(k)}\n",
        "groups + new_group, a list plus a str: a TypeError (was a traceback)",
        says="HashRing([*groups, new_group]",
    ),
    Wrong(
        "18",
        "nb18-moving-answer",
        "nb18-moving",
        "    old = HashRing(groups, vnodes=vnodes)\n"
        "    new = HashRing([*groups, new_group], vnodes=vnodes)\n"
        "    return [k for k in keys if old.node_for(k) != new.node_for(k)]\n",
        "a list of the moving keys, not a set (told only to compare node_for)",
        says="a set of keys",
    ),
    Wrong(
        "18",
        "nb18-owner-answer",
        "nb18-owner",
        "    return HashRing(groups, vnodes=vnodes).owner(key)\n",
        "a ring method that does not exist: an AttributeError (was a traceback)",
        says="ask node_for(key)",
    ),
    Wrong(
        "05",
        "nb05-write-ack",
        "nb05-quorums",
        "    p = self.pending.get(m.req)\n"
        "    if p is None or p.is_read or p.replied:\n"
        "        return\n"
        "    p.answered.add(src)\n"
        "    self.answer(ctx, p, ok=True, versions=p.versions)\n",
        "a write is acknowledged to the client on its first replica's ack, whatever W",
        "handle_write_ack",
    ),
    Wrong(
        "05",
        "nb05-newest",
        "nb05-quorums",
        "    return (max(versions, key=lambda v: v.dot.counter),) if versions else ()\n",
        "siblings dropped: the version with the highest counter wins, as if counters were timestamps",
        "newest",
    ),
    Wrong(
        "05",
        "nb05-newest",
        "nb05-quorums",
        "    kept = []\n"
        "    for v in versions:\n"
        "        if all(k.dot != v.dot for k in kept):\n"
        "            kept.append(v)\n"
        "    return [v for v in kept if not any(w.supersedes(v) for w in kept)]\n",
        "newest returns a list, not a tuple (was a TypeError later, in handle_read_reply, naming neither)",
        "your rule newest returned list",
    ),
    Wrong(
        "05",
        "nb05-write-ack",
        "nb05-quorums",
        "    p = self.pending.get(m.req)\n"
        "    if p is None or p.is_read or p.replied:\n"
        "        return\n"
        "    p.answered.add(src)\n"
        "    if len(p.answered & set(p.home)) == len(p.home):\n"
        "        self.answer(ctx, p, ok=True, versions=p.versions)\n",
        "a write waits for all N home replicas, not W: unavailable with one down (its hint named part 3's rule)",
        "look at coordinate_put and coordinate_get",
    ),
    Wrong(
        "05",
        "nb05-read-repair",
        "nb05-repair",
        "    for node, versions in p.replies.items():\n"
        "        if node in p.home and not versions:\n"
        "            ctx.send(node, ReadRepair(p.key, p.merged))\n",
        "only replicas that returned nothing are repaired, not those that returned an older version",
        "read_repair",
    ),
    Wrong(
        "05",
        "nb05-quorum-reached",
        "nb05-sloppy",
        "    if self.config.mode is Mode.CONSISTENCY_FIRST:\n"
        "        return len(p.answered & set(p.home)) >= p.need\n"
        "    return len(p.answered) >= 1\n",
        "a sloppy quorum is taken to need any one answer (consistency level ANY), not W of them",
        "quorum_reached",
    ),
    Wrong(
        "05",
        "nb05-handoff-ack",
        "nb05-sloppy",
        "    self.forget_hint(ctx, src, m.key)\n",
        "a hint is forgotten on any ack, though a write joined it after it was sent",
        "handle_handoff_ack",
    ),
    Wrong(
        "15",
        "nb15-send-step",
        "nb15-steps",
        "    self.write(ctx, saga, LogRecord(LogKind.STEP_SENT, step, attempt))\n"
        '    self.send(ctx, saga, step, Op.DO, key=f"{saga.saga_id}/{step}/{attempt}")\n'
        "    self.set_timer(ctx, saga, self.policy.timeout)\n",
        "a new idempotency key per attempt, so a retried step runs twice",
        "key",
    ),
    Wrong(
        "15",
        "nb15-step-reply",
        "nb15-steps",
        (
            "    if saga.phase is not Phase.FORWARD:\n"
            "        return\n"
            "    if reply.outcome is Outcome.OK:\n"
            "        done = LogRecord(LogKind.STEP_DONE, reply.step, saga.attempt)\n"
            "        if reply.step == len(self.definition) - 1:\n"
            "            self.write(ctx, saga, done, LogRecord(LogKind.COMPLETED))\n"
            "            self.cancel_timer(ctx, saga)\n"
            "        else:\n"
            "            self.write(ctx, saga, done)\n"
            "            self.send_step(ctx, saga, saga.step, 1)\n"
            "    elif reply.outcome is Outcome.REJECTED:\n"
            "        self.write(ctx, saga, LogRecord(LogKind.STEP_FAILED, reply.step, saga.attempt, reply.detail))\n"
            "        self.compensate_next(ctx, saga)\n"
        ),
        "a late or duplicate answer to an earlier step counts",
        "handle_step_reply",
    ),
    Wrong(
        "15",
        "nb15-apply",
        "nb15-compensation",
        (
            "    kind = record.kind\n"
            "    if kind is LogKind.STEP_SENT or kind is LogKind.COMP_SENT:\n"
            "        saga.step, saga.attempt = record.step, record.attempt\n"
            "    elif kind is LogKind.STEP_DONE:\n"
            "        saga.to_undo.append(record.step)\n"
            "        saga.step, saga.attempt = record.step + 1, 0\n"
            "    elif kind is LogKind.STEP_FAILED or kind is LogKind.STEP_MAYBE:\n"
            "        saga.phase = Phase.COMPENSATING\n"
            "    elif kind is LogKind.COMP_DONE:\n"
            "        saga.to_undo.remove(record.step)\n"
            "    elif kind is LogKind.COMPLETED:\n"
            "        saga.phase = Phase.COMPLETED\n"
            "    elif kind is LogKind.ABORTED:\n"
            "        saga.phase = Phase.ABORTED\n"
        ),
        "a step that timed out is taken not to have run, so it is never undone",
        "apply",
    ),
    Wrong(
        "15",
        "nb15-compensate-next",
        "nb15-compensation",
        "    if saga.to_undo:\n"
        "        self.send_compensation(ctx, saga, saga.to_undo[0], 1)\n"
        "    else:\n"
        "        self.write(ctx, saga, LogRecord(LogKind.ABORTED))\n"
        "        self.cancel_timer(ctx, saga)\n",
        "compensations in forward order: the first step is undone first",
        "compensate_next",
    ),
    Wrong(
        "15",
        "nb15-resume",
        "nb15-recovery",
        "    if saga.phase is Phase.FORWARD:\n"
        "        if saga.step == len(self.definition):\n"
        "            self.write(ctx, saga, LogRecord(LogKind.COMPLETED))\n"
        "        else:\n"
        "            self.send_step(ctx, saga, saga.step, saga.attempt + 1)\n",
        "a saga that was compensating when the orchestrator crashed is left half undone",
        "resume",
    ),
    # The Raft lab (09): one classic learner bug per scenario's test cell, caught by that scenario.
    Wrong(
        "09",
        "nb09-append-entries",
        "nb09-initial-election-test",
        "    if m.term < self.current_term:\n"
        "        ctx.send(src, AppendEntriesReply(self.current_term, False, m.term, m.prev_log_index))\n"
        "        return\n"
        "    if self.role is Role.CANDIDATE:\n"
        "        self.become_follower(ctx)\n"
        "    self.leader_id = m.leader_id\n",
        "the election timer is not restarted by the leader's AppendEntries, so followers depose a live leader",
        "handle_append_entries",
    ),
    Wrong(
        "09",
        "nb09-append-entries",
        "nb09-initial-election-test",
        "    if m.term < self.current_term:\n"
        "        ctx.send(src, AppendEntriesReply(self.current_term, False, m.term, m.prev_log_index))\n"
        "        return\n"
        "    self.leader_id = m.leader_id\n"
        "    self.reset_election_timer(ctx)\n",
        "a candidate that hears the leader of its own term stays a candidate",
        "is still a candidate in the term",
    ),
    Wrong(
        "09",
        "nb09-request-vote",
        "nb09-initial-election-test",
        "    up_to_date = (m.last_log_term, m.last_log_index) >= (self.log.last_term, self.log.last_index)\n"
        "    grant = m.term == self.current_term and up_to_date\n"
        "    if grant:\n"
        "        self.voted_for = m.candidate_id\n"
        "        self.save_term_and_vote(ctx)\n"
        "        self.reset_election_timer(ctx)\n"
        "    ctx.send(src, RequestVoteReply(self.current_term, grant))\n",
        "votedFor not consulted: a server votes for every candidate of its term",
        "handle_request_vote",
    ),
    Wrong(
        "09",
        "nb09-observe-term",
        "nb09-re-election-test",
        "    if term > self.current_term:\n"
        "        self.current_term = term\n"
        "        self.save_term_and_vote(ctx)\n"
        "        self.become_follower(ctx)\n",
        "votedFor kept on a new term, so a server that voted once never votes for another candidate",
        "observe_term",
    ),
    Wrong(
        "09",
        "nb09-observe-term",
        "nb09-many-elections-test",
        "    if term > self.current_term:\n"
        "        self.current_term = term\n"
        "        self.voted_for = None\n"
        "        self.save_term_and_vote(ctx)\n",
        "a leader that hears a higher term keeps leading",
        "observe_term",
    ),
    Wrong(
        "09",
        "nb09-vote-reply",
        "nb09-late-vote-replies-test",
        "    if self.role is Role.CANDIDATE and m.vote_granted:\n"
        "        self.votes.add(src)\n"
        "        if len(self.votes) >= self.majority:\n"
        "            self.become_leader(ctx)\n",
        "a vote granted in an earlier term is counted in this one",
        "handle_request_vote_reply",
    ),
    Wrong(
        "09",
        "nb09-request-vote",
        "nb09-votes-restart-the-timer-test",
        "    up_to_date = (m.last_log_term, m.last_log_index) >= (self.log.last_term, self.log.last_index)\n"
        "    grant = m.term == self.current_term and self.voted_for in (None, m.candidate_id) and up_to_date\n"
        "    if grant:\n"
        "        self.voted_for = m.candidate_id\n"
        "        self.save_term_and_vote(ctx)\n"
        "    ctx.send(src, RequestVoteReply(self.current_term, grant))\n",
        "a vote granted without restarting the election timer: the voter may depose the leader it elected",
        "handle_request_vote: when you grant the vote, call reset_election_timer",
    ),
    Wrong(
        "09",
        "nb09-apply",
        "nb09-basic-agreement-test",
        "    for index in range(self.last_applied + 1, self.commit_index + 1):\n"
        "        self.apply(ctx, index)\n",
        "last_applied never advanced, so entries are applied again and again",
        "'increment lastApplied, apply log[lastApplied]'",  # was told only 'Progress', at a later checkpoint
    ),
    Wrong(
        "09",
        "nb09-request-vote",
        "nb09-agreement-with-failures-test",
        "    grant = m.term == self.current_term and self.voted_for in (None, m.candidate_id)\n"
        "    if grant:\n"
        "        self.voted_for = m.candidate_id\n"
        "        self.save_term_and_vote(ctx)\n"
        "        self.reset_election_timer(ctx)\n"
        "    ctx.send(src, RequestVoteReply(self.current_term, grant))\n",
        "a vote granted to a candidate whose log is behind (no up-to-date check, §5.4.1)",
        "up-to-date check in handle_request_vote",
    ),
    Wrong(
        "09",
        "nb09-accept-entries",
        "nb09-no-agreement-without-a-majority-test",
        accept_entries(steps_3_4=_APPEND_ONLY),
        "a conflicting entry is kept: the follower only appends past its last entry (step 3 skipped)",
        "accept_entries",
    ),
    Wrong(
        "09",
        "nb09-apply",
        "nb09-concurrent-submits-test",
        "    while self.last_applied < self.log.last_index:\n"
        "        self.last_applied += 1\n"
        "        self.apply(ctx, self.last_applied)\n",
        "every entry in the log is applied, committed or not",
        "apply_committed",
    ),
    Wrong(
        "09",
        "nb09-commit",
        "nb09-rejoin-test",
        "    for n in range(self.log.last_index, self.commit_index, -1):\n"
        "        copies = sum(self.match_index[peer] >= n for peer in self.peers)\n"
        "        if copies >= self.majority and self.log.term(n) == self.current_term:\n"
        "            self.commit_index = n\n"
        "            self.apply_committed(ctx)\n"
        "            return\n",
        "the leader does not count its own copy of an entry",
        "advance_commit_index",
    ),
    Wrong(
        "09",
        "nb09-accept-entries",
        "nb09-backup-test",
        accept_entries(step_5="m.leader_commit"),
        "commitIndex = leaderCommit, not min(leaderCommit, index of last new entry)",
        "step 5 commits no further",
    ),
    Wrong(
        "09",
        "nb09-accept-entries",
        "nb09-random-faults-test",
        accept_entries(step_2=""),
        "entries appended without checking prev_log_index and prev_log_term (step 2)",
        "accept_entries",
    ),
    Wrong(
        "09",
        "nb09-restore",
        "nb09-crash-and-restart-test",
        '    self.current_term = storage.get("current_term", 0)\n'
        '    self.voted_for = storage.get("voted_for")\n',
        "the log is not read back after a restart",
        "restore",
    ),
    Wrong(
        "09",
        "nb09-restore",
        "nb09-crash-while-voting-test",
        '    self.current_term = storage.get("current_term", 0)\n'
        '    self.log = RaftLog(storage[("log", i)] for i in range(1, storage.get("log_length", 0) + 1))\n',
        "the vote is not read back after a restart, so a server votes twice in one term",
        "restore",
    ),
    Wrong(
        "09",
        "nb09-commit",
        "nb09-figure-8-test",
        "    for n in range(self.log.last_index, self.commit_index, -1):\n"
        "        copies = 1 + sum(self.match_index[peer] >= n for peer in self.peers)\n"
        "        if copies >= self.majority:\n"
        "            self.commit_index = n\n"
        "            self.apply_committed(ctx)\n"
        "            return\n",
        "an entry of an earlier term committed by counting replicas (Figure 8)",
        "advance_commit_index",
    ),
    Wrong(
        "09",
        "nb09-accept-entries",
        "nb09-late-appendentries-test",
        accept_entries(steps_3_4=_CUT_AND_APPEND),
        "the log is always cut after prev_log_index, so a late AppendEntries removes committed entries",
        "accept_entries",
    ),
    Wrong(
        "09",
        "nb09-accept-entries",
        "nb09-late-commit-index-test",
        accept_entries(step_5="min(m.leader_commit, last_new)"),
        "Figure 2's step 5 read literally: a late AppendEntries with fewer entries lowers commit_index",
        "accept_entries step 5",
    ),
    Wrong(
        "09",
        "nb09-append-entries-reply",
        "nb09-stale-refusals-test",
        append_entries_reply(
            failure="    else:\n        self.next_index[src] = max(self.next_index[src] - 1, 1)\n"
        ),
        "next_index backed up on any failed reply, a refusal of an old term's request included",
        "handle_append_entries_reply: Figure 2 decrements nextIndex only",
    ),
    Wrong(
        "09",
        "nb09-append-entries",
        "nb09-stale-refusals-test",
        "    if m.term < self.current_term:\n"
        "        return\n"
        "    if self.role is Role.CANDIDATE:\n"
        "        self.become_follower(ctx)\n"
        "    self.leader_id = m.leader_id\n"
        "    self.reset_election_timer(ctx)\n",
        "an AppendEntries of an old term dropped without a reply, so its sender never hears of the newer term",
        "'Reply false if term < currentTerm (§5.1)'",
    ),
    Wrong(
        "09",
        "nb09-append-entries-reply",
        "nb09-reordered-replies-test",
        append_entries_reply(
            success="        self.match_index[src] = m.match_index\n        self.next_index[src] = m.match_index + 1\n"
        ),
        "matchIndex taken from every successful reply, so a late one lowers it",
        "handle_append_entries_reply: a late reply knows less than you already do",
    ),
    Wrong(
        "09",
        "nb09-append-new-entry",
        "nb09-prompt-replication-test",
        "    self.log.append([LogEntry(self.current_term, command)])\n"
        "    self.save_log(ctx, self.log.last_index)\n"
        "    return self.log.last_index\n",
        "a new entry is left to the next heartbeat instead of being sent at once",
        "append_new_entry: after appending, send the entry to every follower at once",
    ),
    Wrong(
        "09",
        "nb09-accept-entries",
        "nb09-unreliable-network-test",
        accept_entries(steps_3_4=_CUT_AND_APPEND),
        "the log is always cut after prev_log_index, so a late AppendEntries removes entries",
        "accept_entries",
    ),
    Wrong(
        "09",
        "nb09-restore",
        "nb09-churn-test",
        '    self.voted_for = storage.get("voted_for")\n'
        '    self.log = RaftLog(storage[("log", i)] for i in range(1, storage.get("log_length", 0) + 1))\n',
        "current_term is not read back after a restart",
        "restore",
    ),
]


def test_misconceptions_are_not_repeated():
    keys = [(w.test, w.body) for w in WRONG]
    assert len(set(keys)) == len(keys), "the same wrong answer is listed twice"


def test_every_graded_test_cell_has_a_misconception():
    graded = set()
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("grade") and not meta.get("solution"):
                graded.add(meta["grade_id"])
    missing = sorted(graded - {w.test for w in WRONG})
    assert not missing, f"graded test cells with no planted misconception: {missing}"


def _nbgrader(cell: dict[str, Any]) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _plant(source: str, body: str | tuple[str | None, ...]) -> str:
    """``source`` with the lines between each pair of solution markers replaced by one of ``body``."""
    bodies = (body,) if isinstance(body, str) else body
    lines = source.splitlines(keepends=True)
    begins = [i for i, line in enumerate(lines) if "### BEGIN SOLUTION" in line]
    ends = [i for i, line in enumerate(lines) if "### END SOLUTION" in line]
    assert len(begins) == len(ends) == len(bodies), f"{len(begins)} solutions, {len(bodies)} wrong bodies"
    out, at = [], 0
    for begin, end, new in zip(begins, ends, bodies, strict=True):
        out += lines[at : begin + 1] + ([new] if new is not None else lines[begin + 1 : end])
        at = end
    return "".join(out + lines[at:])


def _run(source: str, ns: dict[str, Any], name: str) -> None:
    exec(compile(source, f"<{name}>", "exec"), ns)  # noqa: S102 - the notebook's own code


def _visible(source: str, ns: dict[str, Any], name: str) -> str | None:
    """Run the visible checks of a test cell and its verdict; the failures, or None if all pass.

    Any other error the cell raises (a wrong answer that raises inside a simulation the cell runs) is what
    the learner would see as a traceback: it is returned marked with ``TRACEBACK``, and the test fails it.
    The cell must call the answer through ``labkit.grading.outcome`` and fail a check instead.
    """
    _tally.clear()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            _run(source.split(HIDDEN)[0] + "\nfrom labkit.grading import verdict\nverdict()\n", ns, name)
    except (ExerciseFailed, AssertionError) as e:
        return f"{type(e).__name__}: {e}\n{out.getvalue()}"
    except Exception as e:  # noqa: BLE001 - reported by the test as a traceback the learner would see
        return f"{TRACEBACK}{type(e).__name__}: {e}\n{out.getvalue()}"
    return None


def _fork(ns: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``ns`` in which the learner's lab classes are fresh subclasses, so planted rules stay in it."""
    mine = dict(ns)
    for name, value in ns.items():
        if (
            isinstance(value, type)
            and value.__module__ == "__main__"
            and callable(getattr(value, "rule", None))
        ):
            mine[name] = type(value.__name__, (value,), {"__module__": "__main__", "__doc__": value.__doc__})
    return mine


def _quietly(source: str, ns: dict[str, Any], name: str, *, tolerate: bool) -> None:
    """Run a cell with its output hidden; with ``tolerate``, a cell that fails is passed over, as Run All does."""
    _tally.clear()
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            _run(source, ns, name)
        except Exception:
            if not tolerate:
                raise


@cache
def _outcomes(prefix: str) -> tuple[dict[str, str | None], dict[Wrong, str | None]]:
    """For one notebook: test grade id -> failures of the solution, and misconception -> its failures.

    A lab shrinks each failing schedule for the picture it draws; here that step is skipped (it takes most
    of the time): a shrunk schedule fails the same property, so the checks fail and hint alike.
    """
    with mock.patch("labkit.labs.suite.shrink_schedule", lambda *a, **k: None):
        return _run_notebook(prefix)


def _run_notebook(prefix: str) -> tuple[dict[str, str | None], dict[Wrong, str | None]]:
    path = next(NOTEBOOKS.glob(f"{prefix}-*.ipynb"))
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    mine = [w for w in WRONG if w.notebook == prefix]
    tests = {w.test for w in mine}
    ns: dict[str, Any] = {"__name__": "__main__", "display": lambda *a, **k: None}
    forks: dict[tuple[str, Any], dict[str, Any]] = {}  # (answer, body) -> the namespace it runs in
    solution: dict[str, str | None] = {}
    planted: dict[Wrong, str | None] = {}
    for i, cell in enumerate(cells):
        if len(solution) == len(tests):
            break
        grade_id, source = _nbgrader(cell), "".join(cell["source"])
        name = grade_id or f"{prefix}-cell-{i}"
        for key, fork in forks.items():  # the copies run this cell as the learner's student version would
            targets = [w for w in mine if (w.answer, w.body) == key and w.test == grade_id]
            if targets:
                failures = _visible(source, fork, grade_id)
                planted.update(dict.fromkeys(targets, failures))
            else:
                _quietly(source.split(HIDDEN)[0], fork, name, tolerate=True)
        for w in mine:
            if w.answer == grade_id and (w.answer, w.body) not in forks:
                forks[w.answer, w.body] = fork = _fork(ns)
                _quietly(_plant(source, w.body), fork, name + "-wrong", tolerate=False)
        if grade_id in tests:
            solution[grade_id] = _visible(source, ns, grade_id)
        else:
            _quietly(source, ns, name, tolerate=False)
        for key in [k for k in forks if all(w in planted for w in mine if (w.answer, w.body) == k)]:
            del forks[key]  # no test cell left for it
    missing = [w.test for w in mine if w not in planted]
    assert not missing, f"test cells not reached after their answer cell: {missing}"
    return solution, planted


def _id(w: Wrong) -> str:
    return w.answer if sum(v.answer == w.answer for v in WRONG) == 1 else f"{w.test}:{w.why[:32]}"


@pytest.mark.parametrize("wrong", WRONG, ids=[_id(w) for w in WRONG])
def test_the_wrong_answer_fails_a_visible_check_and_the_solution_passes_them(wrong):
    solution, planted = _outcomes(wrong.notebook)
    assert solution[wrong.test] is None, (
        f"the instructor solution fails the visible checks of {wrong.test}:\n{solution[wrong.test]}"
    )
    failure = planted[wrong]
    assert failure is not None, f"{wrong.test}: '{wrong.why}' passes every visible check"
    assert not failure.startswith(TRACEBACK), (
        f"{wrong.test}: '{wrong.why}' shows the learner {failure}\n"
        "call the answer through labkit.grading.outcome and fail a check (with its hint) instead"
    )
    if wrong.says is not None:
        assert wrong.says in failure, f"{wrong.test}: '{wrong.why}' is not told '{wrong.says}':\n{failure}"
