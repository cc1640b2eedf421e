"""The quorum lab's scenarios: what each part tests, and how.

Each scenario is a short script over a :class:`World` (five storage nodes of
the learner's class, N = 3, and a few clients) plus a fault schedule per
seed. The clients run closed loops of reads and writes (each its own key or
a shared one); the safety properties are checked after every event
(:mod:`labkit.labs.quorum.properties`), and the scripts check what must have
happened by the end: requests succeed when enough replicas can answer, and
once every fault is lifted the store settles (hints handed home, a read of
every key with R = N sees every acknowledged write, read repair makes the
home replicas agree).

Part **quorums** (strict quorums, §4.4-§4.5): ``write then read``,
``one replica down``, ``too many down``, ``partition``, ``concurrent
writers``, ``lossy network``, ``random faults``.
Part **repair** (§5): ``read repair``, ``repair after crashes``, ``repair on a lossy network``.
Part **sloppy** (sloppy quorums and hinted handoff, §4.6): ``stand-ins take the writes``,
``W is still W``, ``handoff after a crash``, ``sloppy random faults``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from labkit.labs.core import Fault, Scenario, Trial, Violation
from labkit.labs.quorum.properties import AVAILABLE, HANDOFF, READ_REPAIR, in_mode
from labkit.replication.client import ClientNode, ClientOp, OpKind, Workload
from labkit.replication.config import StoreConfig
from labkit.replication.modes import Mode, Resolution
from labkit.replication.versions import Dot, Siblings, Versioned, covers, same_versions
from labkit.sim import Latency, Simulator, Uniform

__all__ = ["World", "SCENARIOS", "NODES", "SETTLE", "client_plan"]

NODES = tuple(f"n{i}" for i in range(1, 6))
LATENCY = Uniform(0.005, 0.015)
SETTLE = 1.0  # seconds after the faults are lifted for hints to be handed home
CLIENT_TIMEOUT = 1.0
READER = "checker"  # the client that reads every key at the end


def client_plan(*spec: tuple[str, str, str]) -> tuple[tuple[str, str, str], ...]:
    """Clients as (name, coordinator, key)."""
    return tuple(spec)


# x: home n4 n5 n1, stand-ins n2 n3;  y: home n5 n1 n2, stand-ins n3 n4 (the preference lists of 5 nodes)
TWO_KEYS = client_plan(("c1", "n1", "x"), ("c2", "n2", "y"))
SHARED = client_plan(("c1", "n4", "x"), ("c2", "n1", "x"), ("c3", "n2", "x"))
MIXED = client_plan(("c1", "n4", "x"), ("c2", "n1", "x"), ("c3", "n2", "y"))


class World:
    """Five storage nodes of the learner's class, clients, and what faults and checks need of them."""

    def __init__(
        self,
        trial: Trial,
        factory: Callable[..., Any],
        *,
        clients: tuple[tuple[str, str, str], ...] = TWO_KEYS,
        mode: Mode = Mode.CONSISTENCY_FIRST,
        n: int = 3,
        r: int = 2,
        w: int = 2,
        read_fraction: float = 0.5,
        think: float = 0.03,
        stop: float = 2.0,
        loss: float = 0.0,
        duplication: float = 0.0,
        latency: Latency | float = LATENCY,
    ) -> None:
        self.trial = trial
        self.config = StoreConfig(NODES, n=n, mode=mode, resolution=Resolution.VECTOR_CLOCKS)
        self.r, self.w = r, w
        self.sim = Simulator(trial.seed, latency=latency, loss=loss, duplication=duplication)
        self.servers = NODES
        self.written: dict[Dot, tuple[str, Versioned]] = {}  # every version a coordinator sent to replicas
        self.scanned = 0  # trace rows looked at for them
        for node in NODES:
            self.sim.add_node(node, lambda node_id: factory(node_id, self.config))
        self.coordinator_of: dict[str, str] = {}
        self.keys: list[str] = []
        for name, coordinator, key in clients:
            workload = Workload(key=key, read_fraction=read_fraction, think=think, stop=stop, r=r, w=w)
            self.sim.add_node(name, _client(coordinator, workload))
            self.coordinator_of[name] = coordinator
            if key not in self.keys:
                self.keys.append(key)
        self.clients = tuple(name for name, _, _ in clients)
        self.sim.add_node(READER, _client(NODES[0], None))
        self.coordinator_of[READER] = NODES[0]
        self.ids = (*NODES, *self.clients, READER)  # the lanes of the picture
        self._side: list[str] | None = None  # storage nodes cut off from the rest, if any
        # What the checks keep: the acknowledged writes so far, every hint seen, the reads at the end.
        self.acked: dict[str, list[ClientOp]] = {}
        self.hinted: dict[tuple[str, str], set[Dot]] = {}
        self.overlap = mode is Mode.CONSISTENCY_FIRST and r + w > n  # reads must see acknowledged writes
        self.final: dict[str, ClientOp] = {}

    # -- looking -----------------------------------------------------------------
    def stored(self, node: str) -> dict[str, Siblings]:
        """What ``node`` durably holds as its own data (readable while it is crashed)."""
        return {k[1]: v for k, v in self.sim.storage(node).items() if k[0] == "data"}

    def stored_hints(self, node: str) -> dict[tuple[str, str], Siblings]:
        """The hints ``node`` durably holds: (home replica, key) -> versions."""
        return {(k[1], k[2]): v for k, v in self.sim.storage(node).items() if k[0] == "hint" and v}

    def holders(self, key: str, dot: Dot) -> list[str]:
        """The nodes that store the write ``dot`` of ``key`` (or a version that saw it), as data or hint."""
        out = []
        for node in NODES:
            if covers(self.stored(node).get(key, ()), dot) or any(
                k == key and covers(v, dot) for (_, k), v in self.stored_hints(node).items()
            ):
                out.append(node)
        return out

    def ops(self, clients: tuple[str, ...] | None = None) -> list[ClientOp]:
        """Every operation the clients finished (or gave up on), by call time."""
        out: list[ClientOp] = []
        for name in self.clients if clients is None else clients:
            out.extend(self.sim.node(name).ops)  # type: ignore[attr-defined]
        return sorted(out, key=lambda op: (op.call, op.client))

    # -- changing the world --------------------------------------------------------
    def resolve(self, target: Any) -> list[str]:
        """Storage nodes named by a target: a node, ``("home", key, i)``, ``("stand-in", key, i)``,
        ``"all"``, or a tuple of those."""
        if target == "all":
            return list(NODES)
        if _is_replica(target):
            kind, key, i = target
            first = 0 if kind == "home" else self.config.n
            return [self.config.preference_list(key)[first + i]]
        if isinstance(target, tuple):
            out: list[str] = []
            for t in target:
                out += [s for s in self.resolve(t) if s not in out]
            return out
        if target in NODES:
            return [target]
        raise ValueError(
            f"fault target must be a node ({', '.join(NODES)}), ('home', key, i), ('stand-in', key, i), "
            f"'all' or a tuple of those, got {target!r}"
        )

    def partition(self, side: list[str]) -> None:
        """Cut the storage nodes ``side`` off from the others; each client stays with its coordinator."""
        self._side = list(side)
        self._apply_partition()

    def heal(self) -> None:
        self._side = None
        self.sim.heal()

    def _apply_partition(self) -> None:
        if self._side is None:
            return
        a = list(self._side)
        b = [x for x in NODES if x not in a]
        for client, coordinator in self.coordinator_of.items():
            (a if coordinator in a else b).append(client)
        self.sim.partition(a, b)

    def reachable(self, coordinator: str) -> list[str]:
        """The storage nodes up and on the same side as ``coordinator``."""
        return [
            x
            for x in NODES
            if self.sim.is_up(x) and (self._side is None or (x in self._side) == (coordinator in self._side))
        ]

    def read_all(self, trial: Trial, within: float = CLIENT_TIMEOUT) -> dict[str, ClientOp]:
        """The checker reads every key with R = N, one after another; the reads, by key."""
        node: ClientNode = self.sim.node(READER)  # type: ignore[assignment]
        for key in self.keys:
            before = len(node.ops)
            self.sim.call(
                READER, lambda c, ctx, key=key: c.submit(ctx, OpKind.READ, key, quorum=self.config.n)
            )
            trial.wait_for(lambda before=before: len(node.ops) > before, within + 0.1)
            op = node.ops[-1] if len(node.ops) > before else None
            trial.expect(
                op is not None and op.ok,
                in_mode(AVAILABLE, self.config.mode),
                f"with every node up and the network whole, a read of {key!r} with R = N = {self.config.n} "
                + ("was never asked" if op is None else "got no answer" if op.ok is None else "failed")
                + f" (via {self.coordinator_of[READER]})",
                node=READER,
            )
            self.final[key] = op  # type: ignore[assignment]
        return self.final


def _is_replica(target: Any) -> bool:
    return (
        isinstance(target, tuple)
        and len(target) == 3
        and target[0] in ("home", "stand-in")
        and isinstance(target[2], int)
    )


def _client(coordinator: str, workload: Workload | None) -> Callable[[str], ClientNode]:
    return lambda node_id: ClientNode(node_id, coordinator, workload, timeout=CLIENT_TIMEOUT)


# ---------------------------------------------------------------------------
# What the scripts check
# ---------------------------------------------------------------------------
def _op_text(op: ClientOp) -> str:
    what = f"write {op.key}={op.value!r}" if op.kind is OpKind.WRITE else f"read {op.key}"
    result = {True: "ok", False: "failed", None: "no answer"}[op.ok]
    return f"{op.client}'s {what} at t = {op.call:.3f} s via {op.coordinator}: {result}"


def expect_success(trial: Trial, ops: list[ClientOp], why: str) -> None:
    """Every one of ``ops`` succeeded (:data:`AVAILABLE`, or its sloppy twin); a failure is shown where the client heard it:
    its refusal, or its own timeout when no answer came (``ret`` stays ``inf`` then)."""
    for op in ops:
        if op.ok is not True:
            heard = op.call + CLIENT_TIMEOUT if op.ok is None else op.ret
            prop = in_mode(AVAILABLE, trial.world.config.mode)
            v = Violation(prop, f"{_op_text(op)}, although {why}", node=op.client, time=heard)
            v.event = _row_at(trial.world, op.client, heard)
            raise v


def _row_at(world: World, node: str, when: float) -> int | None:
    """The trace row of the last event at ``node`` at time ``when`` (where a client heard its answer)."""
    trace = world.sim.trace
    for i in range(len(trace) - 1, -1, -1):
        e = trace[i]
        if e.time < when:
            break
        if e.time == when and e.node == node:
            return i
    return None


def lift(trial: Trial) -> None:
    """Lift every fault: heal the network, stop losing and duplicating, restart every crashed node."""
    trial.act("heal")
    trial.act("loss", 0.0)
    trial.act("duplication", 0.0)
    trial.act("restart", "all")


def check_handoff(trial: Trial) -> None:
    """No hint is left anywhere, and every version ever hinted is stored at its home replica."""
    world: World = trial.world
    for node in NODES:
        left = world.stored_hints(node)
        if left:
            (home, key), versions = next(iter(left.items()))
            trial.fail(
                HANDOFF,
                f"{SETTLE:g} s after everything healed, {node} still keeps {len(left)} hint(s), e.g. "
                f"{len(versions)} version(s) of {key!r} for {home}",
                node=node,
            )
    for (home, key), dots in world.hinted.items():
        missing = sorted(d for d in dots if not covers(world.stored(home).get(key, ()), d))
        trial.expect(
            not missing,
            HANDOFF,
            f"{home} never received the hinted write(s) {', '.join(map(str, missing))} of {key!r}: "
            "the hint was forgotten but not delivered",
            node=home,
        )


def settle(trial: Trial, *, repair: bool) -> None:
    """Lift the faults, let hints go home, read every key with R = N; with ``repair``, check read repair."""
    world: World = trial.world
    trial.run_until(max(trial.sim.now, world_stop(world)))
    lift(trial)
    trial.run_for(SETTLE)
    check_handoff(trial)
    reads = world.read_all(trial)
    if not repair:
        return
    trial.run_for(world.config.request_timeout + 0.1)  # the reads close, and their repairs arrive
    for key, op in reads.items():
        for node in world.config.home(key):
            held = world.stored(node).get(key, ())
            trial.expect(
                same_versions(held, op.versions),
                READ_REPAIR,
                f"a read of {key!r} at t = {op.call:.3f} s asked all {world.config.n} home replicas and "
                f"returned {_dots(op.versions)}, yet {node} still holds {_dots(held)}",
                node=node,
            )


def _dots(versions: Siblings) -> str:
    return "[" + ", ".join(f"{v.value!r} ({v.dot})" for v in versions) + "]" if versions else "nothing"


def world_stop(world: World) -> float:
    """When the clients stop issuing requests (plus the time the last ones may take)."""
    return 2.0 + CLIENT_TIMEOUT


def _during(world: World, clients: tuple[str, ...], start: float, end: float) -> list[ClientOp]:
    return [op for op in world.ops(clients) if start <= op.call and op.ret <= end]


# ---------------------------------------------------------------------------
# Part 1: strict quorums
# ---------------------------------------------------------------------------
def write_then_read(trial: Trial) -> None:
    """Two clients write and read their keys; nothing fails: every request succeeds."""
    world: World = trial.world
    trial.run_until(world_stop(world))
    expect_success(trial, world.ops(), "every node was up and the network whole")
    settle(trial, repair=False)


def one_down_faults(rng: random.Random) -> list[Fault]:
    victim = ("home", "x", rng.choice([0, 1]))  # n4 or n5: not c1's coordinator (n1)
    return [Fault(round(rng.uniform(0.2, 0.5), 3), "crash", victim), Fault(1.4, "restart", "all")]


def one_down(trial: Trial) -> None:
    """One home replica of x is down for a while: with N = 3 and R = W = 2, every request still succeeds."""
    world: World = trial.world
    trial.run_until(world_stop(world))
    expect_success(trial, world.ops(), "at most one home replica of each key was down (N = 3, R = W = 2)")
    settle(trial, repair=False)


def too_many_down_faults(rng: random.Random) -> list[Fault]:
    down = (("home", "x", 0), ("home", "x", 1))  # n4 and n5: only n1 (c1's coordinator) is left of x's home
    return [Fault(0.4, "crash", down), Fault(1.4, "restart", "all")]


def too_many_down(trial: Trial) -> None:
    """Two of x's three home replicas are down: no write of x may be acknowledged; afterwards all is well."""
    world: World = trial.world
    trial.run_until(world_stop(world))
    after = _during(world, ("c1",), 1.6, world_stop(world))
    expect_success(trial, after, "every node was up again and the network whole")
    settle(trial, repair=False)


def partition_faults(rng: random.Random) -> list[Fault]:
    side = rng.choice([("n4",), ("n5",), ("n1", "n2")])
    return [Fault(0.4, "partition", side), Fault(1.4, "heal")]


def partition(trial: Trial) -> None:
    """One side of a partition holds a minority of x's home replicas: it must not acknowledge a write."""
    world: World = trial.world
    trial.run_until(world_stop(world))
    after = _during(world, world.clients, 1.5, world_stop(world))
    expect_success(trial, after, "the network had healed")
    settle(trial, repair=False)


def concurrent_writers(trial: Trial) -> None:
    """Three clients write x through three coordinators at once: concurrent writes must stay siblings."""
    world: World = trial.world
    trial.run_until(world_stop(world))
    expect_success(trial, world.ops(), "every node was up and the network whole")
    settle(trial, repair=False)


def lossy_faults(rng: random.Random) -> list[Fault]:
    out = []
    t = 0.3
    while t < 1.8:
        victim = rng.choice(NODES)
        out.append(Fault(round(t, 3), "crash", victim))
        out.append(Fault(round(t + rng.uniform(0.1, 0.4), 3), "restart", victim))
        t += rng.uniform(0.4, 0.8)
    return out


def lossy(trial: Trial) -> None:
    """Messages are lost, duplicated and reordered, and a node at a time crashes: nothing acknowledged is lost."""
    settle(trial, repair=False)


def random_faults(rng: random.Random) -> list[Fault]:
    """Crashes, restarts, partitions and loss, at random (at most three of five nodes down)."""
    out, t = [], 0.2
    while t < 1.9:
        kind = rng.choice(["crash", "crash", "restart", "partition", "heal", "loss"])
        if kind in ("crash", "restart"):
            target: Any = rng.choice(NODES) if kind == "crash" else "all"
        elif kind == "partition":
            target = tuple(sorted(rng.sample(NODES, rng.randint(1, 2))))
        elif kind == "loss":
            target = rng.choice([0.0, 0.1, 0.3])
        else:
            target = None
        out.append(Fault(round(t, 3), kind, target))
        t += rng.uniform(0.1, 0.4)
    return out


def random_strict(trial: Trial) -> None:
    """Random crashes, partitions and loss under load; then everything heals and every key is read."""
    settle(trial, repair=False)


# ---------------------------------------------------------------------------
# Part 2: read repair
# ---------------------------------------------------------------------------
def behind_faults(rng: random.Random) -> list[Fault]:
    behind = ("home", "x", rng.choice([0, 1]))  # n4 or n5 misses the writes (W = 2 without it)
    return [Fault(0.1, "partition", (behind,))]  # healed only once the clients stopped writing


def read_repair(trial: Trial) -> None:
    """A home replica of x misses every write behind a partition; a read with R = N must repair it."""
    settle(trial, repair=True)


def crash_repair_faults(rng: random.Random) -> list[Fault]:
    out, t = [], 0.2
    while t < 1.6:
        victim = ("home", rng.choice(["x", "y"]), rng.choice([0, 1, 2]))
        out.append(Fault(round(t, 3), "crash", victim))
        out.append(Fault(round(t + rng.uniform(0.2, 0.5), 3), "restart", "all"))
        t += rng.uniform(0.5, 0.9)
    return out


def repair_after_crashes(trial: Trial) -> None:
    """Home replicas crash and miss writes; reads with R = N bring them all up to date."""
    settle(trial, repair=True)


def lossy_repair(trial: Trial) -> None:
    """A fifth of the messages are lost, so replicas miss writes; reads with R = N repair them."""
    settle(trial, repair=True)


# ---------------------------------------------------------------------------
# Part 3: sloppy quorums and hinted handoff
# ---------------------------------------------------------------------------
def stand_ins_faults(rng: random.Random) -> list[Fault]:
    # x's home replicas n4 and n5 are cut off; c1's coordinator n1 sees one home replica and two stand-ins.
    side = [("n4", "n5"), ("n3", "n4", "n5"), ("n2", "n4", "n5")][rng.randrange(3)]
    return [Fault(0.3, "partition", side), Fault(1.6, "heal")]


def stand_ins(trial: Trial) -> None:
    """Two of x's home replicas are cut off: stand-ins take the writes; after healing the hints go home."""
    world: World = trial.world
    trial.run_until(world_stop(world))
    during = _during(world, ("c1",), 0.35, 1.55)
    reach = len(world.reachable("n1"))
    if reach >= max(world.r, world.w):
        expect_success(
            trial,
            during,
            f"n1 could reach {reach} nodes (R = W = {world.w}): a sloppy quorum counts stand-ins",
        )
    settle(trial, repair=True)


def w_is_w_faults(rng: random.Random) -> list[Fault]:
    alone = rng.choice([("n1",), ("n1", "n2")])  # c1's coordinator with at most one other node
    return [Fault(0.3, "partition", alone), Fault(1.5, "heal")]


def w_is_w(trial: Trial) -> None:
    """c1's coordinator can reach fewer than W = 3 nodes: even a sloppy quorum must refuse its writes."""
    world: World = trial.world
    trial.run_until(world_stop(world))
    settle(trial, repair=True)


def handoff_crash_faults(rng: random.Random) -> list[Fault]:
    victim = ("home", "x", rng.choice([0, 1]))
    return [Fault(round(rng.uniform(0.2, 0.4), 3), "crash", victim), Fault(1.5, "restart", "all")]


def handoff_after_crash(trial: Trial) -> None:
    """W = N = 3 with a home replica of x down: a stand-in holds its writes until it is back."""
    world: World = trial.world
    trial.run_until(world_stop(world))
    expect_success(
        trial, world.ops(), "four of five nodes were up: W = 3 counts a stand-in for the one that was down"
    )
    settle(trial, repair=True)


def random_sloppy(trial: Trial) -> None:
    """Random crashes, partitions and loss in a sloppy quorum; then every hint must reach home."""
    settle(trial, repair=True)


_LOSSY = {"loss": 0.1, "duplication": 0.05, "latency": Uniform(0.001, 0.03)}
_SLOPPY = {"mode": Mode.AVAILABILITY_FIRST}

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("write then read", "quorums", write_then_read, seeds=3,
             about="every request succeeds while nothing fails; a read sees the writes before it (§4.5)"),
    Scenario("one replica down", "quorums", one_down, one_down_faults, seeds=6,
             about="with N = 3 and R = W = 2 one home replica may be down (§4.5)"),
    Scenario("too many down", "quorums", too_many_down, too_many_down_faults, seeds=3,
             about="with two of three home replicas down, no write is acknowledged (§4.5)"),
    Scenario("partition", "quorums", partition, partition_faults, seeds=6,
             about="a minority side acknowledges no write; the majority side carries on (§4.5)"),
    Scenario("concurrent writers", "quorums", concurrent_writers, seeds=6,
             options={"clients": SHARED, "read_fraction": 0.3},
             about="concurrent writes of one key are kept as siblings, none dropped (§4.4)"),
    Scenario("lossy network", "quorums", lossy, lossy_faults, seeds=8, options={"clients": MIXED, **_LOSSY},
             about="loss, duplication, reordering and crashes: nothing acknowledged is lost (§4.5)"),
    Scenario("random faults", "quorums", random_strict, random_faults, seeds=20, options={"clients": MIXED},
             about="random crashes, partitions and loss under load (§4.4, §4.5)"),
    Scenario("read repair", "repair", read_repair, behind_faults, seeds=3,
             about="a read with R = N brings a replica that missed every write up to date (§5)"),
    Scenario("repair after crashes", "repair", repair_after_crashes, crash_repair_faults, seeds=8,
             options={"clients": MIXED}, about="replicas that missed writes while down are repaired (§5)"),
    Scenario("repair on a lossy network", "repair", lossy_repair, seeds=8,
             options={"clients": MIXED, "loss": 0.2},
             about="replicas that missed writes on a lossy network are repaired (§5)"),
    Scenario("stand-ins take the writes", "sloppy", stand_ins, stand_ins_faults, seeds=3, options=_SLOPPY,
             about="stand-ins keep writes as hints and hand them home after healing (§4.6)"),
    Scenario("W is still W", "sloppy", w_is_w, w_is_w_faults, seeds=4, options={**_SLOPPY, "w": 3, "r": 1},
             about="a sloppy write still needs W acknowledgements (§4.6)"),
    Scenario("handoff after a crash", "sloppy", handoff_after_crash, handoff_crash_faults, seeds=4,
             options={**_SLOPPY, "w": 3, "r": 1},
             about="W = N with a home replica down: a stand-in counts, then hands off (§4.6)"),
    Scenario("sloppy random faults", "sloppy", random_sloppy, random_faults, seeds=20,
             options={**_SLOPPY, "clients": MIXED},
             about="random crashes, partitions and loss in a sloppy quorum: every hint goes home (§4.6)"),
)  # fmt: skip
