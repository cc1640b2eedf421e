"""A client that routes each key to its group's leader (a "smart client", DDIA ch. 6, "Request Routing").

The router looks the key up in the :class:`Directory` (the current
:class:`~labkit.shardkv.store.ShardConfig` and the servers of each group),
sends the request to the server it believes leads that group, and follows
"not the leader" hints or, on silence, tries the group's next server: it is
:class:`labkit.raft.KVClient` with the group's servers in place of the
cluster's (Raft §8). The rule for the next server to ask is
:func:`~labkit.raft.client.follow_hint_or_next`; a router can be given another
one (``next_server=``), which is how notebook 18's exercise plugs in a
learner's. A client knows only the answers it gets: it never asks the
simulator who leads.

# Invariant: an operation stays with the group it was first sent to, under the
# same sequence number, until that group answers. Only a :class:`WrongGroup`
# answer (proof that the group refused it and never applied it) lets the router
# pick a group again, under a fresh sequence number. Re-routing an operation
# whose fate is unknown could apply it in two groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.history import HistoryEntry
from labkit.raft.client import RETRY_TIMER, KVClient, NextServer, follow_hint_or_next
from labkit.shardkv.store import ShardConfig, WrongGroup
from labkit.sim import Context


@dataclass(slots=True)
class Directory:
    """Where keys live: the current config and each group's servers.

    A real deployment keeps this in its own small Raft group (the "shard
    controller"); here it is one shared object the controller updates once a
    move is complete.
    """

    config: ShardConfig
    servers: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        valid.instance("config", self.config, ShardConfig)
        valid.instance("servers", self.servers, dict)


class ShardRouter(KVClient):
    """A simulated client node of the sharded store; one operation at a time.

    ``served_by`` of each history entry names the group that answered.
    """

    def __init__(
        self,
        node_id: str,
        directory: Directory,
        history: list[HistoryEntry],
        *,
        retry_timeout: float = 0.3,
        backoff: float = 0.02,
        next_server: NextServer = follow_hint_or_next,
    ) -> None:
        self.directory = valid.instance("directory", directory, Directory)
        self.group = ""  # the group the current operation is bound to ("" once refused)
        self.targets: dict[str, int] = {}  # group -> which of its servers is the presumed leader
        super().__init__(
            node_id, (), history, retry_timeout=retry_timeout, backoff=backoff, next_server=next_server
        )

    @property  # type: ignore[override]
    def target(self) -> int:
        return self.targets.get(self.group, 0)

    @target.setter
    def target(self, i: int) -> None:
        self.targets[self.group] = i

    def _servers(self) -> tuple[str, ...]:
        return self.directory.servers[self.group]

    def _begin(self, ctx: Context) -> None:
        # Route by the published config, under a fresh sequence number: the
        # previous one (if any) was refused, never applied.
        self.group = self.directory.config.owner(self.current.input[1])  # type: ignore[union-attr]
        super()._begin(ctx)

    def _answered(self, ctx: Context, src: str, result: Any) -> None:
        if not self.group:
            return  # already refused; waiting to route again
        if isinstance(result, WrongGroup):
            # Refused, so never applied: safe to route again (after a pause for the move).
            self.current.refused += 1  # type: ignore[union-attr]
            self.group = ""
            ctx.set_timer(RETRY_TIMER, self.backoff)
        else:
            self._finish(ctx, self.group, result)

    def _not_leader(self, ctx: Context, src: str, hint: str | None) -> None:
        if self.group:
            super()._not_leader(ctx, src, hint)

    def _retry(self, ctx: Context) -> None:
        if self.group:
            super()._retry(ctx)  # silence from this server: ask another one, same seq
        else:
            self._begin(ctx)
