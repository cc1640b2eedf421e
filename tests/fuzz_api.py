"""Walk labkit's public API with bad arguments and sort what happens.

For every subpackage, every name in ``__all__`` that can be called (and the public methods of
an instance of every class) is first called once with arguments that work (its defaults, plus
the values in :data:`GOOD` and :data:`RECIPES` for what has no default). Then each parameter in
turn is given each value of a catalogue of bad values (:data:`BAD`), the others kept good, and
the outcome is sorted:

* **clear error**: ``ValueError`` or ``TypeError`` (or an error class of labkit's own);
* **other exception**: anything else (``AttributeError``, ``ZeroDivisionError``, ``KeyError``...);
* **hang**: the call ran longer than :data:`LIMIT` seconds (stopped by a timer signal);
* **silent acceptance**: the call returned although the parameter's type annotation (the
  machine-readable part of its docstring) rules the value out: ``None`` where ``None`` is not
  allowed, a ``str`` for an ``int``, ``True`` for a number, NaN anywhere a number is meant;
* **accepted**: the call returned and nothing rules the value out (``-1`` for an ``int`` may be
  fine: only the docstring says, so such calls are only held to "fast and no other exception").

Run ``python -m tests.fuzz_api`` for the table of counts per subpackage.
"""

from __future__ import annotations

import collections.abc as cabc
import contextlib
import enum
import importlib
import inspect
import io
import math
import os
import pkgutil
import random
import signal
import tempfile
import time
import types
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import labkit

LIMIT = 3.0  # seconds one call may take
SLOW_BASE = 0.05  # a callable whose good call takes longer gets only QUICK_BAD in the default run

NAN, INF = math.nan, math.inf
BAD: dict[str, Any] = {
    "None": None,
    "True": True,
    "-1": -1,
    "0": 0,
    "10**9": 10**9,
    "-0.5": -0.5,
    "nan": NAN,
    "inf": INF,
    "-inf": -INF,
    "''": "",
    "'x'": "x",
    "[]": [],
    "{}": {},
    "object()": object(),
}
QUICK_BAD = ("None", "'x'", "nan", "10**9", "-1", "inf")

# Plain records: frozen dataclasses that labkit itself builds and hands back (results, trace rows,
# messages between simulated nodes). They hold what they are given; the code that builds them checks.
RECORDS = {
    "clocks.Envelope", "clocks.LWWRun", "clocks.Stamps", "clocks.Write",
    "course.Notebook",
    "eventstore.LoadStats", "eventstore.RecordedEvent", "eventstore.StreamInfo",
    "examples.Hello", "examples.Request", "examples.Response", "examples.Rumor", "examples.Ping",
    "linearizability.CheckResult", "linearizability.PartitionResult",
    "net.Record",
    "raft.AppendEntries", "raft.AppendEntriesReply", "raft.ClientReply", "raft.ClientRequest",
    "raft.HistoryEntry", "raft.KVCommand", "raft.NoOp", "raft.RequestVote", "raft.RequestVoteReply",
    "replication.ClientOp", "replication.Operation",
    "resilience.Admission", "resilience.Request", "resilience.Response", "resilience.Transition",
    "saga.LogRecord",
    "shardkv.Install", "shardkv.Migration", "shardkv.Reconfigure", "shardkv.ShardOp", "shardkv.WrongGroup",
    "sim.TraceEvent", "sim.Effects",
    "broadcast.Ack",
}  # fmt: skip
# Not called at all, with the reason.
EXCLUDED = {
    "net.ProcessCluster": "starts operating-system processes",
    "net.RaftClient": "talks TCP to a running cluster",
    "sqlite_tx.WriteTransaction": "wraps a live sqlite3 connection (tested with the stores)",
    "sqlite_tx.ReadTransaction": "wraps a live sqlite3 connection (tested with the stores)",
    "sim.Context": "built by the simulator for each handler call",
    "course.sync": "rewrites notebooks on disk",
    "grading.check": "raises AssertionError by design: it is the grader",
    "grading.check_true": "raises AssertionError by design: it is the grader",
    "grading.check_close": "raises AssertionError by design: it is the grader",
    "eventstore.NewEvent": "checked by EventStore.append, whose errors name the event's place in the batch",
    "eventstore.Snapshot": "checked by SnapshotStore.save",
    "hashing.LinearScanRing": "a first attempt, shown to learners as written (for what it does wrong)",
    "eventstore.NaiveEventStore": "a first attempt, shown to learners as written (for what it does wrong)",
    "saga.OrderSaga": "a first attempt, shown to learners as written (for what it does wrong)",
}
EXCLUDED_PACKAGES = {
    "validation": "the checks themselves: what they refuse is tested value by value in tests/test_validation.py",
}
# Methods a driver calls, not a user: a node's handlers, called by the simulator with its own context.
DRIVER_METHODS = (
    "on_start", "on_message", "on_timer", "on_crash", "on_payload", "on_restart", "on_recover",
    "observe",  # the invariant monitor's hook, called by the simulator after every event
)  # fmt: skip


# ---------------------------------------------------------------------------- good arguments
def _sim() -> Any:
    from labkit.clocks import run_chatter

    return run_chatter(3, duration=0.5, seed=1)


def _lww() -> Any:
    from labkit.clocks import Stamping, run_lww

    return run_lww(Stamping.LAMPORT, [(0.1, "A", "x=1"), (0.2, "B", "x=2")])


def _history() -> list[Any]:
    from labkit.linearizability import Operation

    return [Operation(0, 0.0, 1.0, ("write", 1), None), Operation(1, 2.0, 3.0, ("read",), 1)]


def _result() -> Any:
    from labkit.linearizability import Operation, RegisterModel, check

    bad = [Operation(0, 0.0, 1.0, ("write", 1), None), Operation(1, 2.0, 3.0, ("read",), 2)]
    return check(bad, RegisterModel())


def _cluster() -> Any:
    from labkit.raft import RaftCluster

    c = RaftCluster(3, seed=1)
    c.run_until(lambda: c.leader() is not None, timeout=5.0)
    return c


def _kv() -> Any:
    from labkit.shardkv import ShardedKV

    return ShardedKV(2, 3, seed=1)


def _store_config() -> Any:
    from labkit.replication import StoreConfig

    return StoreConfig(("n1", "n2", "n3"))


def _versioned() -> Any:
    from labkit.replication import Dot, Versioned

    return Versioned("v", Dot("n1", 1))


def _merkle() -> Any:
    from labkit.replication import MerkleTree

    return MerkleTree([("k", (_versioned(),))])


def _chain() -> Any:
    from labkit.resilience import ChainModel

    return ChainModel(rate=20.0).run(1.0)


def _shard_config() -> Any:
    from labkit.shardkv import ShardConfig

    return ShardConfig(0, ("g1", "g2"))


def _saga_run() -> Any:
    from labkit.saga import run_order_saga

    return run_order_saga(until=10.0)


def _scenario() -> Any:
    from labkit.replication import Mode
    from labkit.replication.experiments import run_partition_scenario

    return run_partition_scenario(Mode.CONSISTENCY_FIRST)


def _repo() -> Any:
    from labkit.eventstore import InMemoryEventStore, Repository
    from labkit.eventstore.bank import Account

    repo = Repository(InMemoryEventStore(), Account)
    repo.save(Account.open("acct-1", "ada"))
    return repo


def _tmpdir() -> str:
    return tempfile.mkdtemp(prefix="dir-", dir=".")  # inside the package run's own folder


# Values by parameter name, for parameters without a default.
GOOD: dict[str, Callable[[], Any]] = {
    "node_id": lambda: "n1",
    "nodes": lambda: ("n1", "n2", "n3"),
    "key": lambda: "k",
    "keys": lambda: ["k1", "k2", "k3"],
    "stream_id": lambda: "s",
    "rng": lambda: random.Random(0),
    "history": _history,
    "model": lambda: __import__("labkit.linearizability", fromlist=["RegisterModel"]).RegisterModel(),
    "result": _result,
    "sim": _sim,
    "cluster": _cluster,
    "kv": _kv,
    "config": _store_config,
    "policies": lambda: __import__("labkit.resilience", fromlist=["make_policies"]).make_policies(),
    "jitter": lambda: "full",
    "stamping": lambda: __import__("labkit.clocks", fromlist=["Stamping"]).Stamping.LAMPORT,
    "writes": lambda: [(0.1, "A", "x=1"), (0.2, "B", "x=2")],
    "siblings": lambda: (_versioned(),),
    "incoming": _versioned,
    "version": _versioned,
    "a": _merkle,
    "b": _merkle,
    "items": lambda: [("k", (_versioned(),))],
    "path": lambda: os.path.join(_tmpdir(), "f.db"),
    "log_path": lambda: os.path.join(_tmpdir(), "saga.db"),
    "root": lambda: Path(labkit.__file__).resolve().parent.parent,
    "clock": lambda: lambda: 0.0,
    "ratio": lambda: 0.1,
    "limit": lambda: 4,
    "n": lambda: 3,
    "m": lambda: 10,
    "k": lambda: 5,
    "epsilon": lambda: 0.25,
    "num_buckets": lambda: 7,
    "after_write": lambda: 1,
    "order_id": lambda: "o1",
    "number": lambda: 1,
    "deadline": lambda: 1.0,
    "now": lambda: 0.0,
    "counter": lambda: 1,
    "node": lambda: "n1",
    "dot": lambda: __import__("labkit.replication", fromlist=["Dot"]).Dot("n1", 1),
    "value": lambda: 1,
    "name": lambda: "x",
    "aggregate_id": lambda: "acct-1",
}

# Whole argument sets for callables whose parameters GOOD cannot guess (qualified by subpackage).
RECIPES: dict[str, Callable[[], dict[str, Any]]] = {
    "clocks.LWWReplica": lambda: {"node_id": "A"},
    "clocks.clock_events": lambda: {"trace": _sim().trace},
    "clocks.clock_violations": lambda: {
        "events": __import__("labkit.clocks", fromlist=["clock_events"]).clock_events(_sim().trace)
    },
    "course.by_number": lambda: {"number": 2},
    "course.nav_line": lambda: {"nb": __import__("labkit.course", fromlist=["COURSE"]).COURSE[2]},
    "eventstore.Aggregate": lambda: {"aggregate_id": "a1"},
    "eventstore.EventCodec": lambda: {"event_classes": []},
    "eventstore.NewEvent": lambda: {"type": "T", "data": {"a": 1}},
    "eventstore.Repository": lambda: {
        "store": __import__("labkit.eventstore", fromlist=["InMemoryEventStore"]).InMemoryEventStore(),
        "aggregate_cls": __import__("labkit.eventstore.bank", fromlist=["Account"]).Account,
    },
    "eventstore.Snapshot": lambda: {
        "stream_id": "s",
        "version": 1,
        "aggregate_type": "T",
        "snapshot_schema": 1,
        "state": {},
    },
    "eventstore.applies": lambda: {"event_cls": type("E", (), {})},
    "examples.request_report": lambda: {
        "sim": __import__("labkit.examples", fromlist=["request_response_cluster"]).request_response_cluster()
    },
    "hashing.assign": lambda: {
        "scheme": __import__("labkit.hashing", fromlist=["HashRing"]).HashRing(["a", "b"])
    },
    "hashing.load_cv": lambda: {
        "scheme": __import__("labkit.hashing", fromlist=["HashRing"]).HashRing(["a", "b"])
    },
    "hashing.load_per_node": lambda: {
        "scheme": __import__("labkit.hashing", fromlist=["HashRing"]).HashRing(["a", "b"])
    },
    "hashing.balance_table": lambda: {
        "schemes": {"ring": __import__("labkit.hashing", fromlist=["HashRing"]).HashRing(["a", "b"])}
    },
    "hashing.join_moves": lambda: {
        "schemes": {"ring": __import__("labkit.hashing", fromlist=["HashRing"]).HashRing},
        "node_counts": [2, 3],
    },
    "hashing.moved_keys": lambda: {"before": {"k": "a"}, "after": {"k": "b"}},
    "hashing.move_matrix": lambda: {
        "moved": __import__("labkit.hashing", fromlist=["moved_keys"]).moved_keys({"k": "a"}, {"k": "b"})
    },
    "hashing.spread_vs_vnodes": lambda: {"vnode_counts": [1, 4]},
    "hashing.jump_hash": lambda: {"key": "k"},
    "linearizability.Operation": lambda: {"client": 0, "call": 0.0, "ret": 1.0, "input": ("read",)},
    "linearizability.format_op": lambda: {"op": _history()[0]},
    "net.Registry": lambda: {"name": "kv"},
    "net.registry_for": lambda: {"kind": "kv"},
    "net.to_operations": lambda: {"records": []},
    "raft.ClientHandle": lambda: {"name": "alice"},
    "raft.InvariantMonitor": lambda: {"nodes": lambda node_id: None, "servers": ("n1", "n2", "n3")},
    "raft.KVClient": lambda: {"node_id": "c1", "servers": ("n1", "n2", "n3"), "history": []},
    "raft.LogEntry": lambda: {"term": 1, "command": "x"},
    "raft.Progress": lambda: {"next_index": 1},
    "raft.RaftNode": lambda: {"node_id": "n1", "peers": ("n2", "n3")},
    "raft.election_safety": lambda: {"leaders": [("n1", 1)]},
    "raft.leader_completeness": lambda: {"committed": {1: 1}, "leader": "n1", "log": []},
    "raft.log_matching": lambda: {"logs": {"n1": []}},
    "raft.state_machine_safety": lambda: {"applied": {"n1": []}},
    "replication.ClientNode": lambda: {"coordinator": "n2"},
    "replication.ReplicaNode": lambda: {"config": _store_config()},
    "replication.StoreConfig": lambda: {"nodes": ("n1", "n2", "n3")},
    "replication.check_quorum": lambda: {"name": "r", "value": 2},
    "replication.check_replica": lambda: {
        "node": __import__("labkit.replication", fromlist=["ReplicaNode"]).ReplicaNode("n1", _store_config())
    },
    "replication.covers": lambda: {"version": _versioned()},
    "replication.Versioned": lambda: {
        "value": 1,
        "dot": __import__("labkit.replication", fromlist=["Dot"]).Dot("n1", 1),
    },
    "resilience.Bulkhead": lambda: {"limit": 4},
    "resilience.CircuitBreaker": lambda: {"clock": lambda: 0.0},
    "resilience.LoadGenerator": lambda: {
        "node_id": "clients",
        "target": "A",
        "rate": 10.0,
        "mix": {"checkout": 1.0},
        "deadline": 1.0,
        "stats": __import__("labkit.resilience.metrics", fromlist=["ClientStats"]).ClientStats(0.5),
    },
    "resilience.Service": lambda: {
        "node_id": "A",
        "spec": __import__("labkit.resilience", fromlist=["ServiceSpec"]).ServiceSpec(),
        "stats": __import__("labkit.resilience.metrics", fromlist=["ServiceStats"]).ServiceStats("A", 0.5, 8),
    },
    "resilience.check_breaker_invariants": lambda: {
        "breaker": __import__("labkit.resilience", fromlist=["CircuitBreaker"]).CircuitBreaker(
            clock=lambda: 0.0
        )
    },
    "resilience.remaining": lambda: {"deadline": 1.0, "now": 0.0},
    "saga.OrderSaga": lambda: {"inventory_service": None, "payment_service": None, "shipping_service": None},
    "saga.SagaDefinition": lambda: {
        "name": "s",
        "steps": __import__("labkit.saga", fromlist=["ORDER_SAGA"]).ORDER_SAGA.steps,
    },
    "saga.Step": lambda: {
        "name": "s",
        "service": "inventory",
        "action": "reserve",
        "compensation": "release",
        "args": lambda order: (),
    },
    "saga.invariant_violations": lambda: {"effects": _saga_run().effects, "order": _saga_run().order},
    "shardkv.ClientHandle": lambda: {"name": "alice"},
    "shardkv.Directory": lambda: {"config": _shard_config()},
    "shardkv.ShardConfig": lambda: {"epoch": 0, "groups": ("g1", "g2")},
    "shardkv.ShardRouter": lambda: {
        "node_id": "r1",
        "directory": __import__("labkit.shardkv", fromlist=["Directory"]).Directory(_shard_config()),
        "history": [],
    },
    "shardkv.ShardStore": lambda: {"group": "g1", "config": _shard_config()},
    "validation.instance": lambda: {"name": "x", "value": 1, "cls": int},
    "validation.one_of": lambda: {"name": "x", "value": 1, "allowed": [1, 2]},
    "validation.enum_member": lambda: {
        "name": "x",
        "value": "full",
        "enum": __import__("labkit.resilience", fromlist=["Jitter"]).Jitter,
    },
    "validation.require": lambda: {"condition": True, "name": "x", "what": "y", "value": 1},
    "validation.shown": lambda: {"value": 1},
    "validation.boolean": lambda: {"name": "x", "value": True},
    "validation.integer": lambda: {"name": "x", "value": 1},
    "validation.number": lambda: {"name": "x", "value": 1.0},
    "validation.probability": lambda: {"name": "x", "value": 0.5},
    "validation.string": lambda: {"name": "x", "value": "y"},
    "validation.non_empty": lambda: {"name": "x", "value": [1]},
    "viz.ClusterWidget": lambda: {
        "build": lambda seed: __import__("labkit.examples", fromlist=["x"]).heartbeat_cluster(seed)
    },
    "viz.cluster.ClusterWidget": lambda: {
        "build": lambda seed: __import__("labkit.examples", fromlist=["x"]).heartbeat_cluster(seed)
    },
    "viz.spacetime_diagram": lambda: {"source": _sim()},
    "viz.spacetime.spacetime_diagram": lambda: {"source": _sim()},
    "viz.clocks.ClockSkewWidget": lambda: {"writes": [(0.1, "A", "x=1"), (0.2, "B", "x=2")]},
    "viz.clocks.stamp_text": lambda: {
        "stamps": _lww().writes[0].stamps,
        "clock": __import__("labkit.clocks", fromlist=["Stamping"]).Stamping.LAMPORT,
    },
    "viz.eventsourcing.ReplayWidget": lambda: {"repo": _repo()},
    "viz.eventsourcing.event_label": lambda: {"record": _repo().store.read_all()[0]},
    "viz.eventsourcing.global_log_figure": lambda: {"store": _repo().store},
    "viz.eventsourcing.load_time_figure": lambda: {
        "rows": [
            {"events": 10, "snapshots": False, "seconds": 0.01},
            {"events": 10, "snapshots": True, "seconds": 0.001},
        ]
    },
    "viz.hashing.ring_figure": lambda: {
        "ring": __import__("labkit.hashing", fromlist=["HashRing"]).HashRing(["a", "b"], vnodes=4)
    },
    "viz.hashing.load_figure": lambda: {
        "loads": __import__("labkit.hashing", fromlist=["load_per_node"]).load_per_node(
            __import__("labkit.hashing", fromlist=["HashRing"]).HashRing(["a", "b"]), ["k1", "k2"]
        )
    },
    "viz.linearizability.history_figure": lambda: {"history_or_result": _result()},
    "viz.linearizability.op_label": lambda: {"op": _history()[0]},
    "viz.raft.role_segments": lambda: {"source": _cluster()},
    "viz.raft.role_timeline": lambda: {"source": _cluster()},
    "viz.raft.election_summary": lambda: {"sim": _cluster().sim},
    "viz.replication.cap_timeline": lambda: {"result": _scenario()},
    "viz.resilience.timeline_figure": lambda: {"model": _chain()},
    "viz.resilience.compare_figure": lambda: {"runs": {"a": _chain()}, "title": "t"},
    "viz.resilience.arrivals_figure": lambda: {"runs": {"a": _chain()}, "title": "t"},
    "viz.resilience.backoff_figure": lambda: {
        "backoffs": {"full": __import__("labkit.resilience", fromlist=["Backoff"]).Backoff()}
    },
    "viz.resilience.run_scenario": lambda: {
        "settings": __import__("labkit.viz.resilience", fromlist=["WidgetSettings"]).WidgetSettings(),
        "duration": 4.0,
    },
    "viz.saga.saga_timeline": lambda: {"run": _saga_run()},
    "viz.saga.final_state_html": lambda: {"run": _saga_run()},
    "viz.saga.two_pc_figure": lambda: {
        "run": __import__("labkit.saga", fromlist=["run_two_phase_commit"]).run_two_phase_commit(until=10.0)
    },
}

# Methods whose arguments GOOD cannot guess: "subpackage.Class.method" -> arguments.
METHOD_RECIPES: dict[str, Callable[[], dict[str, Any]]] = {}


# ---------------------------------------------------------------------------- annotations
def _verdict(ann: Any, value: Any) -> bool | None:
    """True if the annotation allows the value's type, False if it rules it out, None if unknown."""
    if (
        ann is None
        or ann is Any
        or ann is object
        or isinstance(ann, (str, typing.ForwardRef, typing.TypeVar))
    ):
        return None
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        votes = [_verdict(a, value) for a in typing.get_args(ann)]
        if any(v is True for v in votes):
            return True
        return False if all(v is False for v in votes) else None
    if origin is typing.Literal:
        return value in typing.get_args(ann)
    if ann is type(None):
        return value is None
    if ann is bool:
        return isinstance(value, bool)
    if ann is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if ann is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if ann in (str, bytes):
        return isinstance(value, ann)
    if origin is type or ann is type:
        return isinstance(value, type) or None
    if origin in (cabc.Callable,) or ann is cabc.Callable:
        return callable(value)
    if isinstance(ann, type) and issubclass(ann, os.PathLike) and isinstance(value, str):
        return None  # a path given as text
    if origin is not None:
        if isinstance(value, str) and origin in (cabc.Sequence, cabc.Iterable, cabc.Collection):
            return None  # a str is a sequence; whether it is meant is for the docstring
        if origin in (tuple, frozenset, set) and isinstance(value, (list, tuple, set, frozenset)):
            return None  # another collection of the same elements works alike
        try:
            return isinstance(value, origin)
        except TypeError:
            return None
    if isinstance(ann, type):
        if issubclass(ann, enum.Enum):
            if isinstance(value, ann):
                return True
            return None if isinstance(value, str) and value in {m.value for m in ann} else False
        if ann.__module__ == "typing" or ann is typing.Hashable:
            return None
        try:
            return isinstance(value, ann)
        except TypeError:
            return None
    return None


def ruled_out(ann: Any, value: Any) -> bool:
    """Whether the annotation (or the house rule "no NaN where a number is meant") rules ``value`` out."""
    if ann is None or ann is Any:
        return False
    if isinstance(value, float) and math.isnan(value):
        return _numeric(ann)  # where a number is meant
    return _verdict(ann, value) is False


def _numeric(ann: Any) -> bool:
    """Whether the annotation names int or float (itself or in a union)."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in typing.get_args(ann))
    return ann in (int, float)


def _hints(fn: Any) -> dict[str, Any]:
    target = fn.__init__ if isinstance(fn, type) else fn
    try:
        return typing.get_type_hints(target)
    except Exception:
        return {}


# ---------------------------------------------------------------------------- calling
class Hang(BaseException):
    """Raised by the timer inside a call that ran too long (a BaseException: no handler swallows it)."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


@contextlib.contextmanager
def _time_limit(seconds: float):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _clear(exc: BaseException, fn: Any) -> bool:
    """A ValueError or TypeError, an error class of labkit's own, or one the docstring names."""
    if isinstance(exc, (ValueError, TypeError)) or type(exc).__module__.startswith("labkit"):
        return True
    doc = inspect.getdoc(fn) or ""
    return any(f"``{c.__name__}``" in doc or f":class:`{c.__name__}`" in doc for c in type(exc).__mro__[:-2])


@dataclass
class Outcome:
    kind: str  # "clear", "other", "hang", "silent", "accepted"
    where: str
    detail: str = ""


@dataclass
class Report:
    package: str
    tried: int = 0
    counts: Counter = field(default_factory=Counter)
    problems: list[Outcome] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def add(self, o: Outcome) -> None:
        self.tried += 1
        self.counts[o.kind] += 1
        if o.kind in ("other", "hang", "silent"):
            self.problems.append(o)


def _call(fn: Callable[..., Any], kwargs: dict[str, Any], limit: float) -> tuple[str, Any]:
    out = io.StringIO()
    try:
        with _time_limit(limit), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            result = fn(**kwargs)
            if inspect.isgenerator(result):
                for _ in zip(range(1000), result, strict=False):
                    pass
        return "ok", result
    except Hang:
        return "hang", None
    except Exception as exc:  # sorted by the caller
        return "raised", exc


def _params(fn: Any) -> list[inspect.Parameter]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name != "self"
        and not p.name.startswith("_")  # private: labkit's own plumbing
    ]


def _good_args(qual: str, fn: Any, recipes: dict[str, Callable[[], dict[str, Any]]]) -> dict[str, Any] | None:
    """Arguments for every parameter without a default, or None if some cannot be guessed."""
    args = dict(recipes[qual]()) if qual in recipes else {}
    for p in _params(fn):
        if p.name in args or p.default is not p.empty:
            continue
        if p.name not in GOOD:
            return None
        args[p.name] = GOOD[p.name]()
    return args


def fuzz_callable(
    report: Report, qual: str, fn: Any, args: dict[str, Any], *, full: bool, rebuild: Callable[[], Any] | None
) -> Any:
    """Call ``fn`` with good ``args``, then with each bad value in each parameter; return the good result."""
    start = time.perf_counter()
    status, base = _call(fn, args, LIMIT)
    elapsed = time.perf_counter() - start
    if status != "ok":
        report.skipped[qual] = (
            f"the good call failed: {base!r}"[:200] if status == "raised" else "the good call hangs"
        )
        return None
    hints = _hints(fn)
    names = list(BAD) if full or elapsed < SLOW_BASE else list(QUICK_BAD)
    for p in _params(fn):
        ann = hints.get(p.name)
        for label in names:
            bad = BAD[label]
            if p.default is not p.empty and _same(bad, p.default):
                continue  # the default itself is not a bad value
            target = rebuild() if rebuild is not None else fn
            status, got = _call(target, {**args, p.name: bad}, LIMIT)
            where = f"{qual}({p.name}={label})"
            if status == "hang":
                report.add(Outcome("hang", where, f"no answer within {LIMIT} s"))
            elif status == "raised":
                kind = "clear" if _clear(got, fn) else "other"
                report.add(Outcome(kind, where, f"{type(got).__name__}: {got}"[:300]))
            elif ruled_out(ann, bad):
                report.add(Outcome("silent", where, f"accepted although annotated {ann}"))
            else:
                report.add(Outcome("accepted", where))
    return base


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and (a == b or (a != a and b != b))
    except Exception:
        return False


def modules_of(package: str) -> list[str]:
    if package == "viz":
        import labkit.viz

        return ["labkit.viz", *(f"labkit.viz.{m.name}" for m in pkgutil.iter_modules(labkit.viz.__path__))]
    return [f"labkit.{package}"]


def packages() -> list[str]:
    return [m.name for m in pkgutil.iter_modules(labkit.__path__) if m.name not in EXCLUDED_PACKAGES]


def fuzz_package(package: str, *, full: bool = False) -> Report:
    """Fuzz one subpackage, inside a temporary folder (bad paths like ``'x'`` create files there)."""
    with tempfile.TemporaryDirectory(prefix="labkit-fuzz-") as folder, contextlib.chdir(folder):
        return _fuzz_package(package, full=full)


def _fuzz_package(package: str, *, full: bool) -> Report:
    report = Report(package)
    seen: set[int] = set()
    for modname in modules_of(package):
        mod = importlib.import_module(modname)
        prefix = modname.removeprefix("labkit.")
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            qual = f"{prefix}.{name}"
            if not callable(obj) or id(obj) in seen and not modname.startswith("labkit.viz."):
                continue
            seen.add(id(obj))
            if isinstance(obj, type) and (
                issubclass(obj, (BaseException, enum.Enum)) or inspect.isabstract(obj)
            ):
                continue
            if qual in RECORDS or qual in EXCLUDED:
                report.skipped[qual] = EXCLUDED.get(qual, "a plain record labkit builds itself")
                continue
            try:
                args = _good_args(qual, obj, RECIPES)
            except Exception as exc:
                report.skipped[qual] = f"its recipe fails: {exc!r}"[:200]
                continue
            if args is None:
                report.skipped[qual] = "no good value for a parameter without a default"
                continue
            instance = fuzz_callable(report, qual, obj, args, full=full, rebuild=None)
            if isinstance(obj, type) and instance is not None:
                _fuzz_methods(report, qual, obj, args, full=full)
    return report


def _fuzz_methods(report: Report, qual: str, cls: type, args: dict[str, Any], *, full: bool) -> None:
    for mname, member in inspect.getmembers(cls):
        if mname.startswith("_") or not inspect.isfunction(member) or mname in DRIVER_METHODS:
            continue
        mqual = f"{qual}.{mname}"
        margs = _good_args(mqual, member, METHOD_RECIPES)
        if margs is None:
            report.skipped[mqual] = "no good value for a parameter without a default"
            continue
        if not _params(member) and mqual not in METHOD_RECIPES:
            continue  # nothing to give a bad value to

        def fresh(cls: type = cls, args: dict[str, Any] = args, mname: str = mname) -> Any:
            return getattr(cls(**args), mname)

        try:
            bound = fresh()
        except Exception as exc:
            report.skipped[mqual] = f"cannot build an instance: {exc!r}"[:200]
            continue
        fuzz_callable(report, mqual, bound, margs, full=full, rebuild=fresh)


def table(reports: list[Report]) -> str:
    rows = [
        ("subpackage", "calls", "clear errors", "accepted", "other exceptions", "hangs", "silent", "skipped")
    ]
    for r in reports:
        c = r.counts
        rows.append(
            (
                r.package,
                r.tried,
                c["clear"],
                c["accepted"],
                c["other"],
                c["hang"],
                c["silent"],
                len(r.skipped),
            )
        )
    total = ["total"] + [sum(row[i] for row in rows[1:]) for i in range(1, len(rows[0]))]
    rows.append(tuple(total))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(v).rjust(w) for v, w in zip(row, widths, strict=True)) for row in rows)


if __name__ == "__main__":
    import sys

    full = "--full" in sys.argv
    wanted = [a for a in sys.argv[1:] if not a.startswith("--")] or packages()
    reports = []
    for pkg in wanted:
        t = time.perf_counter()
        r = fuzz_package(pkg, full=full)
        reports.append(r)
        print(f"{pkg}: {r.tried} calls in {time.perf_counter() - t:.1f} s", flush=True)
        for o in r.problems:
            print(f"   {o.kind:6} {o.where}: {o.detail}")
        if "--skipped" in sys.argv:
            for q, why in r.skipped.items():
                print(f"   skipped {q}: {why}")
    print(table(reports))
