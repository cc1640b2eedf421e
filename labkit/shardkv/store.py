"""The state machine each Raft group replicates: a key-value store that knows its shard.

A sharded store splits the keys over several replica groups, each one a Raft
cluster (DDIA ch. 6, "Partitioning"; the group is ch. 9's consensus). Keys go
to groups by consistent hashing (Karger et al. 1997; Dynamo §4.2): a
:class:`ShardConfig` is a numbered ring of group names.

Ownership is decided *in the log*, so every replica of a group agrees on it
at every log index (State Machine Safety, Raft §5.4.3):

* :class:`Reconfigure` carries the next config. When a group applies it,
  every key the new ring gives to another group is cut out of the store into
  ``outgoing`` (the committed state the newcomer will receive); from then on
  the group answers requests for those keys with :class:`WrongGroup`.
* :class:`Install` carries those keys into the receiving group. A group that
  still waits for an install answers :class:`WrongGroup` for everything.

So a write to a moving key either committed before the :class:`Reconfigure`
entry (and travels in the snapshot) or is refused after it (and the client
retries it elsewhere): no acknowledged write is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.hashing import HashRing
from labkit.raft import KVCommand, KVStore


@dataclass(frozen=True, slots=True)
class ShardConfig:
    """Config number ``epoch``: the groups on the ring and the ring's virtual-node count."""

    epoch: int
    groups: tuple[str, ...]
    vnodes: int = 64
    ring: HashRing = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        valid.integer("epoch", self.epoch, ge=0)
        distinct = isinstance(self.groups, tuple) and 0 < len(set(self.groups)) == len(self.groups)
        valid.require(distinct, "groups", "a non-empty tuple of distinct group names", self.groups)
        object.__setattr__(self, "ring", HashRing(self.groups, vnodes=self.vnodes))

    def owner(self, key: str) -> str:
        """The group that owns ``key`` under this config."""
        return self.ring.node_for(key)

    def with_group(self, group: str) -> ShardConfig:
        """The next config: the same ring plus ``group``."""
        if group in self.groups:
            raise ValueError(f"group {group!r} is already in the config")
        return ShardConfig(self.epoch + 1, (*self.groups, group), self.vnodes)


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """Log command: move to ``config`` (cut out the keys it gives to other groups)."""

    config: ShardConfig


@dataclass(frozen=True, slots=True)
class Install:
    """Log command: take in the keys ``source`` handed over when it moved to ``epoch``."""

    epoch: int
    source: str
    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class WrongGroup:
    """Answer to a key this group does not serve (now): ask the directory again and retry."""

    group: str
    epoch: int


class ShardStore(KVStore):
    """:class:`~labkit.raft.KVStore` plus shard ownership (see the module docstring).

    ``awaiting`` names the groups whose :class:`Install` must be applied before
    this group serves anything (a group that joins waits for every old group).
    """

    __slots__ = ("group", "config", "awaiting", "outgoing", "installed")

    def __init__(self, group: str, config: ShardConfig, awaiting: frozenset[str] = frozenset()) -> None:
        super().__init__()
        valid.instance("config", config, ShardConfig)
        valid.instance("awaiting", awaiting, (set, frozenset, list, tuple))
        if group not in config.groups:
            raise ValueError(f"group {group!r} is not in config {config.groups}")
        self.group = group
        self.config = config
        self.awaiting = set(awaiting)
        # Invariant: outgoing[(epoch, dest)] holds exactly the keys this group cut out when it
        # applied Reconfigure(epoch) and that the new ring gives to dest.
        self.outgoing: dict[tuple[int, str], tuple[tuple[str, str], ...]] = {}
        self.installed: set[tuple[int, str]] = set()

    def serves(self, key: str) -> bool:
        """True if this group answers requests for ``key`` now."""
        return not self.awaiting and self.config.owner(key) == self.group

    def apply(self, command: Any) -> Any:
        if isinstance(command, KVCommand):
            last = self.sessions.get(command.client)
            if last is not None and command.seq <= last[0]:
                # A retry: same answer as the first time (applied or refused, never both).
                return last[1] if command.seq == last[0] else None
            if not self.serves(command.op[1]):
                refused = WrongGroup(self.group, self.config.epoch)
                self.sessions[command.client] = (command.seq, refused)
                return refused
            return super().apply(command)
        if isinstance(command, Reconfigure):
            return self._reconfigure(command.config)
        if isinstance(command, Install):
            return self._install(command)
        return None

    def _reconfigure(self, config: ShardConfig) -> int:
        if config.epoch <= self.config.epoch:
            return 0  # a duplicate submission of a config already applied
        moving: dict[str, list[tuple[str, str]]] = {}
        for key in sorted(self.data):
            dest = config.owner(key)
            if dest != self.group:
                moving.setdefault(dest, []).append((key, self.data[key]))
        for dest, items in moving.items():
            for key, _ in items:
                del self.data[key]
            self.outgoing[(config.epoch, dest)] = tuple(items)
        for dest in config.groups:
            if dest not in self.config.groups:
                self.outgoing.setdefault((config.epoch, dest), ())
        self.config = config
        return sum(len(v) for v in moving.values())

    def _install(self, cmd: Install) -> int:
        if (cmd.epoch, cmd.source) in self.installed or cmd.epoch != self.config.epoch:
            return 0  # already installed (the controller retried)
        self.installed.add((cmd.epoch, cmd.source))
        for key, value in cmd.items:
            self.data[key] = value
        self.awaiting.discard(cmd.source)
        return len(cmd.items)

    def query(self, op: tuple) -> Any:
        """A read without the log (ReadIndex, Ongaro's dissertation §6.4): refused like a write
        when this group does not serve the key now."""
        if not self.serves(op[1]):
            return WrongGroup(self.group, self.config.epoch)
        return super().query(op)

    def snapshot(self) -> tuple:
        """The key-value state and sessions, plus ownership: config, awaited installs, what is set aside.

        Plain values only, as :meth:`~labkit.raft.StateMachine.snapshot` promises (a snapshot travels
        as JSON, :func:`labkit.raft.snapshot.encode`): the config as ``(epoch, groups, vnodes)``, and a
        refusal a session remembers, a :class:`WrongGroup`, as ``(group, epoch)``; put and append
        remember None, a get its string. :meth:`restore` turns them back.
        """
        data, sessions = super().snapshot()
        return (
            (data, tuple((client, (seq, _plain_answer(answer))) for client, (seq, answer) in sessions)),
            (self.config.epoch, self.config.groups, self.config.vnodes),
            tuple(sorted(self.awaiting)),
            tuple(sorted(self.outgoing.items())),
            tuple(sorted(self.installed)),
        )

    def restore(self, state: Any) -> None:
        kv, (epoch, groups, vnodes), awaiting, outgoing, installed = state
        super().restore(kv)
        self.sessions = {client: (seq, _answer(answer)) for client, (seq, answer) in self.sessions.items()}
        self.config = ShardConfig(epoch, tuple(groups), vnodes)
        self.awaiting = set(awaiting)
        self.outgoing = dict(outgoing)
        self.installed = set(installed)

    def check_invariants(self) -> list[str]:
        """Keys held here are keys this group owns under its config."""
        return [
            f"{self.group} holds {k!r} owned by {self.config.owner(k)}"
            for k in self.data
            if self.config.owner(k) != self.group
        ]

    def __repr__(self) -> str:
        return f"ShardStore({self.group}, epoch={self.config.epoch}, {len(self.data)} keys)"


def _plain_answer(answer: Any) -> Any:
    """A session's remembered answer as a snapshot holds it: a :class:`WrongGroup` as ``(group, epoch)``."""
    return (answer.group, answer.epoch) if isinstance(answer, WrongGroup) else answer


def _answer(plain: Any) -> Any:
    """The answer :func:`_plain_answer` wrote down (a key-value answer is None or a string, never a tuple)."""
    return WrongGroup(*plain) if isinstance(plain, tuple) else plain
