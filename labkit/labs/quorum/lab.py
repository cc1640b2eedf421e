"""The quorum lab: five storage nodes of the learner's class, clients, faults and checks.

:class:`QuorumLab` says the five things a lab says (see :class:`labkit.labs.Lab`):

* the world of a trial (:class:`~labkit.labs.quorum.scenarios.World`): five
  storage nodes built as ``MyStore(node_id, config)``, N = 3, and clients
  (labkit's :class:`~labkit.replication.ClientNode`) running closed loops of
  reads and writes, each through one coordinator;
* faults: ``crash``, ``restart``, ``partition`` (the named storage nodes
  against the rest; each client stays with its coordinator), ``heal``,
  ``loss`` and ``duplication``. Targets are node names, ``("home", key, i)``
  (the key's i-th home replica), ``("stand-in", key, i)``, ``"all"``, or a
  tuple of those;
* after every event, the checks of :mod:`labkit.labs.quorum.properties`;
* a node's state for the picture: what it stores, its hints, its requests;
* a submission must not delegate to labkit's own coordinator or replica
  (:mod:`labkit.replication`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.labs import delegation
from labkit.labs.core import Fault, Lab, Trial, Violation
from labkit.labs.quorum.properties import NO_INVENTION, NO_LOST_WRITE, STAND_INS, WRITE_QUORUM, in_mode
from labkit.labs.quorum.scenarios import NODES, READER, SCENARIOS, World
from labkit.labs.quorum.skeleton import QuorumServer
from labkit.replication import coordinator as _coordinator
from labkit.replication import versions as _versions
from labkit.replication.client import ClientNode, ClientOp, OpKind
from labkit.replication.coordinator import Coordinator, PendingRequest
from labkit.replication.messages import ReplicaWrite
from labkit.replication.modes import Mode
from labkit.replication.replica import ReplicaNode
from labkit.replication.store import ReplicatedStore
from labkit.replication.versions import covers
from labkit.sim import Kind

__all__ = ["QuorumLab", "quorum_lab", "REFERENCE"]

REFERENCE = delegation.Reference(
    "labkit's quorum store (labkit.replication), the course's reference implementation",
    classes=(ReplicaNode, Coordinator, ReplicatedStore),
    objects=(
        ReplicaNode,
        Coordinator,
        PendingRequest,
        ReplicatedStore,
        _coordinator,
        _versions.reconcile,
        _versions.merge_siblings,
        _versions.covers,
    ),
    names=frozenset(
        {"Coordinator", "ReplicaNode", "ReplicatedStore", "PendingRequest", "reconcile", "merge_siblings"}
    ),
    trip=delegation.functions_of(Coordinator, ReplicaNode),
)


def _versions_text(versions: Any, limit: int = 3) -> str:
    shown = [f"{v.value!r} {v.dot}" for v in versions[:limit]]
    more = f" +{len(versions) - limit}" if len(versions) > limit else ""
    return " | ".join(shown) + more if shown else "–"


def _op_line(op: ClientOp) -> str:
    result = {True: "ok", False: "failed", None: "no answer"}[op.ok]
    if op.kind is OpKind.WRITE:
        return f"write {op.key}={op.value!r}: {result}"
    return f"read {op.key}: {result} {_versions_text(op.versions) if op.ok else ''}".rstrip()


class QuorumLab(Lab):
    """Dynamo's coordinator in three parts: quorums, read repair, sloppy quorums with hinted handoff."""

    name = "quorum"
    handle = "quorum_lab"
    parts = ("quorums", "repair", "sloppy")
    scenarios = SCENARIOS
    world_class = World
    skeleton = QuorumServer
    reference = REFERENCE
    max_events = 400_000
    trial_seconds = 15.0

    # -- faults --------------------------------------------------------------------
    def inject(self, trial: Trial, fault: Fault) -> str | None:
        act = _FAULTS.get(fault.kind)
        if act is None:
            raise ValueError(f"fault kind must be one of {', '.join(_FAULTS)}, got {fault.kind!r}")
        return act(trial.world, fault.target)

    # -- checks --------------------------------------------------------------------
    def watch(self, trial: Trial) -> Callable[[str, Any], None]:
        world: World = trial.world
        seen: dict[str, int] = {}  # client -> operations checked
        servers = set(NODES)

        def check(node_id: str, node: Any) -> None:
            _note_writes(world)
            if node_id in servers:
                _check_placement(world, node_id, node)
            elif isinstance(node, ClientNode) and len(node.ops) > seen.get(node_id, 0):
                for op in node.ops[seen.get(node_id, 0) :]:
                    _check_op(world, op, final=node_id == READER)
                seen[node_id] = len(node.ops)

        return check

    def describe(self, node: Any) -> dict[str, Any] | None:
        if isinstance(node, ClientNode):
            return {"last operation": _op_line(node.ops[-1]) if node.ops else "–"}
        try:
            data = {f"data {k}": _versions_text(v) for k, v in sorted(node.data.items())}
            hints = ", ".join(f"{k} for {h} ×{len(v)}" for (h, k), v in sorted(node.hints.items()))
            pending = getattr(node, "pending", None)
            if pending is None:  # labkit's own ReplicaNode keeps them in its Coordinator
                pending = getattr(getattr(node, "coordinator", None), "pending", {})
            return {**data, "hints": hints or "–", "coordinating": len(pending)}
        except (AttributeError, TypeError):
            return None


# -- the checks --------------------------------------------------------------------
def _note_writes(world: World) -> None:
    """Remember every version a coordinator sent to a replica since the last look (what was written)."""
    trace = world.sim.trace
    for i in range(world.scanned, len(trace)):
        e = trace[i]
        if e.kind is Kind.SEND and type(e.message) is ReplicaWrite:
            for v in e.message.versions:
                world.written.setdefault(v.dot, (e.message.key, v))
    world.scanned = len(trace)


def _check_placement(world: World, node_id: str, node: Any) -> None:
    """Data only for keys the node is a home replica of; hints only for others' keys (§4.6)."""
    home = world.config.home
    for key in node.data:
        if node_id not in home(key):
            raise Violation(
                in_mode(STAND_INS, world.config.mode),
                f"{node_id} stores {key!r} as its own data, but {key!r}'s home replicas are "
                f"{', '.join(home(key))}: a stand-in must keep the write as a hint naming the home replica",
                node=node_id,
            )
    for (owner, key), versions in node.hints.items():
        world.hinted.setdefault((owner, key), set()).update(v.dot for v in versions)
        if owner not in home(key) or node_id in home(key):
            raise Violation(
                in_mode(STAND_INS, world.config.mode),
                f"{node_id} keeps a hint of {key!r} for {owner}, but {key!r}'s home replicas are "
                f"{', '.join(home(key))}",
                node=node_id,
            )


def _check_op(world: World, op: ClientOp, *, final: bool) -> None:
    if not op.ok:
        return
    if op.kind is OpKind.WRITE:
        _check_write(world, op)
    else:
        _check_read(world, op, final=final)


def _check_write(world: World, op: ClientOp) -> None:
    """W nodes store an acknowledged write: home replicas (strict), or home replicas and stand-ins (sloppy)."""
    dot = op.dot
    assert dot is not None
    holders = world.holders(op.key, dot)
    if world.config.mode is Mode.CONSISTENCY_FIRST:
        home = world.config.home(op.key)
        holders = [h for h in holders if h in home and covers(world.stored(h).get(op.key, ()), dot)]
    if len(holders) < world.w:
        stored = f"only {', '.join(holders)}" if holders else "no node"
        who = "home replicas" if world.config.mode is Mode.CONSISTENCY_FIRST else "nodes"
        raise Violation(
            WRITE_QUORUM,
            f"{op.client}'s write {op.key}={op.value!r} ({dot}) was acknowledged at t = {op.ret:.3f} s, "
            f"yet {stored} stored it: W = {world.w} {who} must store it before the client is told ok",
            node=op.client,
        )
    world.acked.setdefault(op.key, []).append(op)


def _check_read(world: World, op: ClientOp, *, final: bool) -> None:
    for v in op.versions:
        known = world.written.get(v.dot)
        if known is None or known[0] != op.key or known[1] != v:
            raise Violation(
                NO_INVENTION,
                f"{op.client}'s read of {op.key!r} returned {v.value!r} ({v.dot}), "
                + (
                    "which no coordinator ever sent to a replica"
                    if known is None
                    else f"but {v.dot} is the write {known[0]}={known[1].value!r}"
                    + ("" if known[0] != op.key or known[1].value != v.value else " with another context")
                ),
                node=op.client,
            )
    if not (world.overlap or final):
        return
    for w in world.acked.get(op.key, ()):
        if w.ret < op.call and not covers(op.versions, w.dot):  # type: ignore[arg-type]
            shown = ", ".join(f"{v.value!r} ({v.dot})" for v in op.versions) or "nothing"
            why = (
                f"R + W = {world.r + world.w} > N = {world.config.n}"
                if not final
                else "every node was up, the network whole and every hint handed off"
            )
            raise Violation(
                NO_LOST_WRITE,
                f"{op.client}'s read of {op.key!r} at t = {op.call:.3f} s returned {shown}, missing "
                f"{w.client}'s write {w.value!r} ({w.dot}), acknowledged at t = {w.ret:.3f} s ({why})",
                node=op.client,
            )


# -- the fault vocabulary --------------------------------------------------------
def _crash(world: World, target: Any) -> str:
    done = [s for s in world.resolve(target) if world.sim.is_up(s)]
    for s in done:
        world.sim.crash(s)
    return f"crash {', '.join(done) or 'nobody'}"


def _restart(world: World, target: Any) -> str:
    done = [s for s in world.resolve(target) if not world.sim.is_up(s)]
    for s in done:
        world.sim.restart(s)
    return f"restart {', '.join(done) or 'nobody'}"


def _partition(world: World, target: Any) -> str:
    side = world.resolve(target)
    if not side or len(side) == len(NODES):
        return "partition: nothing to split"
    world.partition(side)
    rest = [s for s in NODES if s not in side]
    return f"partition {', '.join(side)} | {', '.join(rest)}"


def _heal(world: World, target: Any) -> str:
    world.heal()
    return "heal the network"


def _loss(world: World, target: Any) -> str:
    world.sim.set_loss(target)
    return f"lose {target:.0%} of messages"


def _duplication(world: World, target: Any) -> str:
    world.sim.set_duplication(target)
    return f"duplicate {target:.0%} of messages"


_FAULTS: dict[str, Callable[[World, Any], str]] = {
    "crash": _crash,
    "restart": _restart,
    "partition": _partition,
    "heal": _heal,
    "loss": _loss,
    "duplication": _duplication,
}

quorum_lab = QuorumLab()
