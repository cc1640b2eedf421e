"""What the saga lab checks (Garcia-Molina and Salem, "Sagas", SIGMOD 1987; DDIA ch. 9 and 12).

Safety, after every event:

* :data:`ONCE`: no step takes effect twice: a service holds at most one live
  entry per saga (the idempotency key at work, DDIA ch. 12 "end-to-end
  argument");
* :data:`REVERSE`: when a compensation Ci takes effect, no later step of the
  same saga is still in effect: compensations run Cj..C1, last step first (§1);
* :data:`ONLY_RAN`: the orchestrator compensates only steps that may have run:
  never a step it never requested, never one its log records as refused (§1);
* :data:`RESUME`: after a restart the orchestrator goes on from its log: it
  never requests a step again once its log records the step's outcome, nor
  any step once the saga is compensating (§4, §5).

At the end of a run, once every fault is over:

* :data:`FINISHED`: every saga in the log, and every order the orchestrator
  accepted, ends completed or aborted;
* :data:`ALL_OR_NOTHING`: a completed saga's three effects all hold, once each;
  an aborted saga, or an order the log never heard of, left none; nothing
  leaked (stock and money add up);
* :data:`COMPLETES`: an order whose every step its service would accept ends
  completed (where the scenario has no fault that could make a step time out).
"""

from __future__ import annotations

from labkit.labs.core import Property

__all__ = ["ONCE", "REVERSE", "ONLY_RAN", "RESUME", "FINISHED", "ALL_OR_NOTHING", "COMPLETES", "SAFETY"]

ONCE = Property(
    "Once in effect",
    "no step takes effect twice: retries and duplicates carry the step's idempotency key",
    "Garcia-Molina & Salem §1; DDIA ch. 12",
    look_at="send_step and send_compensation: every attempt of a step carries the same key, the step's own",
)
REVERSE = Property(
    "Reverse order",
    "when a step's compensation takes effect, no later step of the saga is still in effect (Cj..C1)",
    "Garcia-Molina & Salem §1",
    look_at="compensate_next (undo the last step in saga.to_undo first) and apply (COMP_DONE removes that step)",
)
ONLY_RAN = Property(
    "Compensate what ran",
    "only steps that may have run are compensated: never one not yet requested, never one refused",
    "Garcia-Molina & Salem §1",
    look_at="apply: only STEP_DONE and STEP_MAYBE put a step in saga.to_undo; STEP_FAILED (refused) does not",
)
RESUME = Property(
    "Resume, not redo",
    "after a restart the saga goes on from its log: a step whose outcome is logged is not requested again",
    "Garcia-Molina & Salem §4, §5",
    look_at=(
        "handle_step_reply (only an answer to the step under way counts) and resume (go on from the "
        "step the log is at, not from the start)"
    ),
)
FINISHED = Property(
    "Every saga ends",
    "once the faults are over, every saga in the log, and every order the orchestrator accepted, ends "
    "completed or aborted in the log",
    "Garcia-Molina & Salem §1, §4, §5",
    look_at=(
        "resume (a saga that was compensating goes on compensating), compensation_timed_out (a "
        "compensation never gives up) and compensate_next (log ABORTED when nothing is left to undo)"
    ),
)
ALL_OR_NOTHING = Property(
    "All or nothing",
    "a completed saga's steps all took effect once; an aborted one, or an order the log never knew, left "
    "no effect; stock and money add up",
    "Garcia-Molina & Salem §1",
    look_at=(
        "apply (a step that timed out, STEP_MAYBE, may have run: it is undone too), step_timed_out and "
        "handle_compensation_reply"
    ),
)
COMPLETES = Property(
    "Completes",
    "an order whose every step its service would accept ends completed: T1..Tn, the preferable sequence",
    "Garcia-Molina & Salem §1",
    look_at="handle_step_reply (OK: log STEP_DONE, then the next step) and step_timed_out (retry while attempts are left)",
)

SAFETY = (ONCE, REVERSE, ONLY_RAN, RESUME)
