"""What clients saw: one record per operation, a *history* in Herlihy & Wing's sense (1990).

Every simulated client in labkit (a Raft cluster's, the sharded store's, the
quorum-replicated store's) records each operation it ran as one
:class:`HistoryEntry`: who asked (``client``), what (``input``), when it was
sent (``call``), when the answer came (``ret``, ``math.inf`` while there is
none) and the answer (``output``). The clients of real processes
(:mod:`labkit.net`) record the same entries, with wall-clock times.
:mod:`labkit.linearizability` checks such histories (its ``adapters`` turn
them into its immutable ``Operation``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["HistoryEntry"]


@dataclass(slots=True)
class HistoryEntry:
    """One client operation. ``ret`` is ``math.inf`` until (unless) it returns.

    ``gave_up`` is when the client stopped waiting for an answer that never
    came (``math.inf`` while it waits, or if it never gives up). Such an
    operation stays *pending* in Herlihy & Wing's sense (1990, §2): its
    outcome is unknown, it may have taken effect or not, and may still take
    effect at any later time, so ``ret`` stays ``math.inf``; the checker
    may place it anywhere after ``call``, or leave it out.

    ``attempts`` counts the requests sent for it (retries included),
    ``refused`` the answers that turned it away unapplied so that it was sent
    again elsewhere (the sharded store's "not my key"), and ``served_by``
    names who answered (a server, or a group of servers).
    """

    client: str
    input: tuple
    call: float = math.nan
    ret: float = math.inf
    output: Any = None
    attempts: int = 0
    refused: int = 0
    served_by: str = ""
    gave_up: float = math.inf

    @property
    def done(self) -> bool:
        """True once the client has its answer."""
        return self.ret != math.inf
