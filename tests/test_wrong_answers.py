"""The classic wrong answer of each exercise fails a check the learner can SEE.

A learner alone runs the student notebook, which has no hidden tests: if the check that carries an
exercise's point is hidden, the misconception the exercise is about gets only ticks. For each exercise
below, the notebook's cells are run in order in one namespace (once per notebook); at the exercise's test
cell the planted wrong answer (one misconception, replacing the instructor solution) runs against the
visible part of the cell only (before ``### BEGIN HIDDEN TESTS``) in a copy of the namespace, and must fail
a check; the instructor solution must pass the same visible checks.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from labkit.grading import ExerciseFailed, _tally

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
HIDDEN = "### BEGIN HIDDEN TESTS"


@dataclass(frozen=True)
class Wrong:
    """A misconception: the body that replaces the solution of ``answer``, checked by ``test``."""

    notebook: str  # file name prefix, "01"
    answer: str  # grade id of the answer cell
    test: str  # grade id of the test cell
    body: str | tuple[str | None, ...]  # replaces the lines between ### BEGIN/END SOLUTION (None: keep them)
    why: str
    says: str | None = None  # if given, the visible failure must say this (the hint that points the way)


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
        "nb01-who-hears",
        "nb01-who-hears-test",
        "    for group in groups:\n        if origin in group:\n            return set(group)\n    return {origin}\n",
        "nodes in no group are taken to be cut off alone, not one more group",
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
        "a node missing from delivered read as delivered[node] (a KeyError traceback, not a check with its hint)",
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
]


def test_misconceptions_are_not_repeated():
    keys = [(w.test, w.body) for w in WRONG]
    assert len(set(keys)) == len(keys), "the same wrong answer is listed twice"


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

    A wrong answer may also raise later in the cell (a simulation calling it); that counts as caught only
    if a check had already failed in sight, with its hint, before the error.
    """
    _tally.clear()
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            _run(source.split(HIDDEN)[0] + "\nfrom labkit.grading import verdict\nverdict()\n", ns, name)
    except (ExerciseFailed, AssertionError) as e:
        return f"{type(e).__name__}: {e}\n{out.getvalue()}"
    except Exception as e:
        if not _tally.failures:
            raise
        return f"{type(e).__name__} after failed checks: {e}\n{out.getvalue()}"
    return None


@cache
def _outcomes(prefix: str) -> dict[tuple[str, Any], tuple[str | None, str | None]]:
    """(test grade id, wrong body) -> (failures of the solution, of the wrong answer), for one notebook."""
    path = next(NOTEBOOKS.glob(f"{prefix}-*.ipynb"))
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    wanted: dict[str, list[Wrong]] = {}
    for w in WRONG:
        if w.notebook == prefix:
            wanted.setdefault(w.test, []).append(w)
    answers = {_nbgrader(c): "".join(c["source"]) for c in cells}
    ns: dict[str, Any] = {"__name__": "__main__", "display": lambda *a, **k: None}
    found: dict[tuple[str, Any], tuple[str | None, str | None]] = {}
    for i, cell in enumerate(cells):
        if len(found) == sum(map(len, wanted.values())):
            break
        grade_id, source = _nbgrader(cell), "".join(cell["source"])
        if grade_id in wanted:
            solution = _visible(source, ns, grade_id)
            for w in wanted[grade_id]:
                mine = dict(ns)
                _run(_plant(answers[w.answer], w.body), mine, w.answer + "-wrong")
                found[grade_id, w.body] = (solution, _visible(source, mine, grade_id))
        else:
            with contextlib.redirect_stdout(io.StringIO()):
                _run(source, ns, grade_id or f"{prefix}-cell-{i}")
    return found


@pytest.mark.parametrize("wrong", WRONG, ids=[w.answer for w in WRONG])
def test_the_wrong_answer_fails_a_visible_check_and_the_solution_passes_them(wrong):
    solution, planted = _outcomes(wrong.notebook)[wrong.test, wrong.body]
    assert solution is None, f"the instructor solution fails the visible checks of {wrong.test}:\n{solution}"
    assert planted is not None, f"{wrong.test}: '{wrong.why}' passes every visible check"
    if wrong.says is not None:
        assert wrong.says in planted, f"{wrong.test}: '{wrong.why}' is not told '{wrong.says}':\n{planted}"
