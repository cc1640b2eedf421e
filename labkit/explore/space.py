"""The state space of a :class:`~labkit.explore.model.Model`: states, actions, successors.

This is the model checker's engine room; :mod:`labkit.explore.search`
holds the searches that walk it. Three ideas make it fast:

* **Interning.** Every distinct node state, durable storage, message and
  set of remembered facts gets a small integer id the first time it is
  seen. A state is then a tuple of integers,
  ``(hosts, in_flight, memory, time, used)``: one host id per node (node
  state + storage + pending timers), the in-flight messages as a sorted
  tuple of message ids (a multiset), the id of the remembered facts, the
  clock ticks taken and the fault budgets used. Comparing and storing such
  a tuple is cheap, and equal tuples mean equal states.
* **A transition cache.** A handler's result depends only on the node's own
  state and on what it receives, never on the other nodes. So the outcome
  of "host h receives message m" is computed once (copy the node, run the
  handler with a :class:`labkit.sim.Context`, freeze the result) and reused
  in every state where that host meets that message. Deep copies happen
  only on a miss, and of one node, never of a whole state.
* **Symmetry reduction.** For interchangeable nodes a state's *key* is the
  smallest of its renamings (Ip and Dill, "Better verification through
  symmetry", 1996), so states that differ only by which node is which are
  explored once. The search still walks real states, so a counterexample
  needs no renaming back.

Messages to a crashed node are lost with it, as in the simulator (a message
in flight to an earlier incarnation is dropped). A handler that raises does
not stop the search: the node is marked failed, with the error, and the
built-in check "no handler raises" reports it like any invariant.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import random
from collections.abc import Hashable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from labkit import validation as valid
from labkit.explore.freeze import digest, freeze, rename
from labkit.explore.model import Act, Action, Bounds, Model
from labkit.sim import Context, Node

__all__ = ["Space", "State", "StateKey"]

StateKey = tuple  # (hosts, in_flight, memory, time, used), all integers
Step = tuple  # (Act, ...) the internal form of an action

_DOWN = -1  # snapshot id of a crashed node
_FAILED = -2  # snapshot id of a node whose handler raised
_RESTART = ("restart",)

# Indexes into the "used" budget tuple.
_CRASHES, _RESTARTS, _DROPS, _DUPS, _INPUTS = range(5)


class _Driver:
    """What a :class:`~labkit.sim.Context` asks its driver: the time and a node's clock."""

    __slots__ = ("now", "offsets")

    def __init__(self, offsets: Mapping[str, float]) -> None:
        self.now = 0.0
        self.offsets = offsets

    def local_time(self, node_id: str) -> float:
        return self.now + self.offsets.get(node_id, 0.0)


class _Outcome:
    """What one handler call did: the host it left, the messages it sent, its notes."""

    __slots__ = ("host", "sends", "notes", "timers_set")

    def __init__(self, host: int, sends: tuple[int, ...], notes: tuple, timers_set: tuple[str, ...]) -> None:
        self.host = host
        self.sends = sends
        self.notes = notes
        self.timers_set = timers_set


class Space:
    """The states of ``model`` reachable within ``bounds``, built on demand."""

    def __init__(self, model: Model, bounds: Bounds | None = None) -> None:
        self.model = valid.instance("model", model, Model)
        self.bounds = model.check_bounds(Bounds() if bounds is None else bounds)
        self.ids = model.ids
        self.index = {nid: i for i, nid in enumerate(self.ids)}
        self._known = frozenset(self.ids)
        self._outside: frozenset[str] = frozenset()  # nodes of a taken-over run outside the model
        self.epoch = 0.0  # the time of the start (a taken-over run's ``now``)
        self._driver = _Driver(model.clock_offsets)
        self._rng = random.Random(0)
        # Interning tables: value -> id, and id -> value.
        self._snap_ids: dict[Any, int] = {}
        self.snaps: list[Any] = []
        self._storage_ids: dict[Any, int] = {}
        self._storages: list[dict] = []
        self._storage_keys: list[Any] = []
        self._host_ids: dict[tuple, int] = {}
        self.hosts: list[tuple] = []  # (node index, snap id or _DOWN/_FAILED, storage id, timers)
        self._errors: dict[int, str] = {}  # host id -> what the failed handler raised
        self._protos: dict[tuple[int, int], Node] = {}
        self._packet_ids: dict[tuple, int] = {}
        self.packets: list[tuple[int, int, Any]] = []  # (src index, dst index, message)
        self._mem_ids: dict[frozenset, int] = {}
        self.memories: list[frozenset] = []
        self._facts: dict[int, int] = {}  # host id -> memory id of its facts
        self._unions: dict[tuple[int, int], int] = {}
        self._within: dict[int, bool] = {}
        self._outcomes: dict[int, dict[Any, _Outcome]] = {}  # host id -> event -> outcome
        self._initial_nodes: dict[int, Node] = {}
        # Fault budgets and timers with a fire limit.
        b = self.bounds
        self._fires = tuple(b.fires)
        self._fire_limit = {name: (5 + i, b.fires[name]) for i, name in enumerate(self._fires)}
        self._limits = tuple(b.limits.items())
        self._cap = b.in_flight
        self._keep = b.duplicates is None  # unlimited duplication: the network keeps every message
        self._measures = model.measures
        self.memo: dict[Any, Any] = {}  # for invariants that cache their verdicts per part of a state
        self.misses = 0  # handler calls actually run
        self.pruned = 0  # successors left out because they break a bound
        self._empty_storage = self._intern_storage({})
        self._no_memory = self._intern_memory(frozenset())
        # Symmetry: every permutation of the interchangeable nodes (identity first).
        self._perms: list[tuple[tuple[int, ...], dict[str, str]]] = []
        if model.symmetric:
            sym = [self.index[n] for n in model.symmetric]
            for image in itertools.permutations(sym):
                perm = list(range(len(self.ids)))
                for a, b2 in zip(sym, image, strict=True):
                    perm[a] = b2
                names = {self.ids[i]: self.ids[perm[i]] for i in range(len(self.ids))}
                self._perms.append((tuple(perm), names))
        self._sym = [self.index[n] for n in model.symmetric]
        self._blot = {n: "*" for n in model.symmetric}
        self._perm_number = {p: n for n, (p, _) in enumerate(self._perms)}
        self._shapes: dict[int, int] = {}
        self._candidate_cache: dict[tuple[int, ...], list[int]] = {}
        self._shape_ids: dict[Any, int] = {}
        self._renamed_hosts: list[dict[int, int]] = [{} for _ in self._perms]
        self._renamed_packets: list[dict[int, int]] = [{} for _ in self._perms]
        self._renamed_mems: dict[tuple[int, int], int] = {}
        self._digests: dict[tuple[str, int], bytes] = {}

    # ------------------------------------------------------------------
    # Interning
    # ------------------------------------------------------------------
    def _intern_snap(self, key: Any) -> int:
        sid = self._snap_ids.get(key)
        if sid is None:
            try:
                sid = self._snap_ids[key] = len(self.snaps)
            except TypeError as exc:
                raise TypeError(
                    f"a node's state holds an unhashable value inside a frozen one: {exc}"
                ) from None
            self.snaps.append(key)
        return sid

    def _intern_storage(self, storage: dict) -> int:
        key = freeze(storage)
        sid = self._storage_ids.get(key)
        if sid is None:
            sid = self._storage_ids[key] = len(self._storages)
            self._storages.append(dict(storage))
            self._storage_keys.append(key)
        return sid

    def _intern_host(self, rec: tuple) -> int:
        hid = self._host_ids.get(rec)
        if hid is None:
            hid = self._host_ids[rec] = len(self.hosts)
            self.hosts.append(rec)
        return hid

    def _intern_packet(self, pkt: tuple) -> int:
        try:
            pid = self._packet_ids.get(pkt)
        except TypeError:
            raise TypeError(
                f"messages must be hashable (frozen dataclasses), got {pkt[2]!r} from "
                f"{self.ids[pkt[0]]} to {self.ids[pkt[1]]}"
            ) from None
        if pid is None:
            pid = self._packet_ids[pkt] = len(self.packets)
            self.packets.append(pkt)
        return pid

    def _intern_memory(self, facts: frozenset) -> int:
        mid = self._mem_ids.get(facts)
        if mid is None:
            try:
                mid = self._mem_ids[facts] = len(self.memories)
            except TypeError:
                raise TypeError(f"remembered facts must be hashable values, got {set(facts)!r}") from None
            self.memories.append(facts)
        return mid

    # ------------------------------------------------------------------
    # Running handlers (the only place node code runs)
    # ------------------------------------------------------------------
    def _outcome(self, h: int, event: Any, time: int) -> _Outcome:
        table = self._outcomes.get(h)
        if table is None:
            table = self._outcomes[h] = {}
        key = event if not time else (event, time)
        out = table.get(key)
        if out is None:
            out = table[key] = self._run(h, event, time)
        return out

    def _run(self, h: int, event: Any, time: int) -> _Outcome:
        """Run one handler on a copy of host ``h``'s node; intern what it leaves."""
        self.misses += 1
        idx, snap, sto, timers = self.hosts[h]
        nid = self.ids[idx]
        if event is _RESTART:
            node = self.model.factories[nid](nid)
            if not isinstance(node, Node):
                raise TypeError(f"the factory of {nid!r} returned {node!r}, which is not a labkit Node")
            self._initial_nodes.setdefault(idx, node)
        else:
            node = copy.deepcopy(self._protos[(idx, snap)])
        storage = dict(self._storages[sto])
        self._driver.now = self.epoch + time * self.model.tick
        self._rng.seed(0)
        peers = tuple(p for p in self.ids if p != nid)
        ctx = Context(
            nid, peers, self._rng, MappingProxyType(storage), self._driver, known=self._known | self._outside
        )
        try:
            if event is _RESTART:
                node.on_start(ctx)
            elif type(event) is int:
                src, _, msg = self.packets[event]
                node.on_message(ctx, self.ids[src], msg)
            elif event[0] == "t":
                node.on_timer(ctx, event[1])
            else:
                self.model.inputs[event[1]].call(node, ctx)
        except Exception as exc:  # a bug in the protocol: keep it as a failed node
            error = f"{nid}: {type(exc).__name__}: {exc}"
            fid = self._intern_host((idx, _FAILED, sto, ()))
            self._errors[fid] = error
            return _Outcome(fid, (), (("error", {"error": error}),), ())
        eff = ctx.effects
        for k, v in eff.persists:
            storage[k] = v
        sends = []
        view = self.model.message_view
        for dst, msg in eff.sends:
            if dst in self.index:  # what goes to a node outside the model (a client) is dropped
                sends.append(self._intern_packet((idx, self.index[dst], msg if view is None else view(msg))))
        pending = set(() if event is _RESTART else timers)
        if type(event) is tuple and event[0] == "t":
            pending.discard(event[1])
        set_now = []
        for name, delay in eff.timers:
            if delay is None:
                pending.discard(name)
            else:
                pending.add(name)
                set_now.append(name)
        self._check_constant(idx, node)
        snap_id = self._intern_snap(freeze(node, self.model.skip))
        self._protos.setdefault((idx, snap_id), node)
        sto2 = sto if not eff.persists else self._intern_storage(storage)
        new = self._intern_host((idx, snap_id, sto2, tuple(sorted(pending))))
        notes = tuple(eff.notes)
        eff.clear()
        return _Outcome(new, tuple(sorted(sends)), notes, tuple(set_now))

    def _check_constant(self, idx: int, node: Node) -> None:
        first = self._initial_nodes.get(idx)
        if first is None or first is node:
            return
        for name in self.model.constant:
            a, b = getattr(first, name, None), getattr(node, name, None)
            if a is not b and a != b and freeze(a) != freeze(b):
                raise ValueError(
                    f"{self.ids[idx]}.{name} changed from {a!r} to {b!r}, so it cannot be one of "
                    "the model's constant attributes"
                )

    # ------------------------------------------------------------------
    # Facts, bounds
    # ------------------------------------------------------------------
    def _facts_of(self, h: int) -> int:
        mid = self._facts.get(h)
        if mid is None:
            idx, snap, _, _ = self.hosts[h]
            facts: frozenset = frozenset()
            if self.model.remember is not None and snap >= 0:
                facts = frozenset(self.model.remember(self.ids[idx], self._protos[(idx, snap)]))
            mid = self._facts[h] = self._intern_memory(facts)
        return mid

    def _union(self, mem: int, h: int) -> int:
        facts = self._facts_of(h)
        if facts == self._no_memory:
            return mem
        key = (mem, facts)
        out = self._unions.get(key)
        if out is None:
            merged = self.memories[mem] | self.memories[facts]
            out = self._unions[key] = (
                mem if len(merged) == len(self.memories[mem]) else self._intern_memory(merged)
            )
        return out

    def within(self, h: int) -> bool:
        """Whether host ``h`` keeps every measure within the bounds' limits."""
        ok = self._within.get(h)
        if ok is None:
            idx, snap, _, _ = self.hosts[h]
            ok = True
            if snap >= 0:
                node = self._protos[(idx, snap)]
                ok = all(self._measures[name](node) <= limit for name, limit in self._limits)
            self._within[h] = ok
        return ok

    # ------------------------------------------------------------------
    # States and their successors
    # ------------------------------------------------------------------
    def boot(self, idx: int) -> _Outcome:
        """What node number ``idx`` does when it first boots (built, then ``on_start``)."""
        down = self._intern_host((idx, _DOWN, self._empty_storage, ()))
        return self._outcome(down, _RESTART, 0)

    def initial(self) -> StateKey:
        """Every node built by its factory and started (``on_start``), in the model's order."""
        hosts, sends, mem = [], [], self._no_memory
        for idx in range(len(self.ids)):
            out = self.boot(idx)
            hosts.append(out.host)
            sends.extend(out.sends)
            mem = self._union(mem, out.host)
        used = (0,) * (5 + len(self._fires))
        net = tuple(sorted(set(sends) if self._keep else sends))
        return (tuple(hosts), net, mem, 0, used)

    def take_over(self, sim: Any) -> StateKey:
        """The state a paused simulator run stands in, as a state of this space (the run is not changed).

        Each node of the model is copied with its storage and pending timers;
        the messages in flight between nodes of the model come along. Nodes
        of the run outside the model (clients) are left out: what the model's
        nodes send them from now on is dropped.
        """
        from labkit.sim import Simulator

        valid.instance("sim", sim, Simulator)
        missing = [n for n in self.ids if n not in sim.nodes]
        if missing:
            raise ValueError(f"the run has no node {missing[0]!r}; its nodes are {list(sim.nodes)}")
        self._outside = frozenset(n for n in sim.nodes if n not in self.index)
        self.epoch = sim.now
        hosts, mem = [], self._no_memory
        for idx, nid in enumerate(self.ids):
            sto = self._intern_storage(dict(sim.storage(nid)))
            if sim.is_up(nid):
                node = copy.deepcopy(sim.node(nid))
                self._initial_nodes.setdefault(idx, node)
                snap = self._intern_snap(freeze(node, self.model.skip))
                self._protos.setdefault((idx, snap), node)
                h = self._intern_host((idx, snap, sto, sim.pending_timers(nid)))
            else:
                h = self._intern_host((idx, _DOWN, sto, ()))
            hosts.append(h)
            mem = self._union(mem, h)
        index, view = self.index, self.model.message_view
        net = [
            self._intern_packet((index[src], index[dst], msg if view is None else view(msg)))
            for src, dst, msg in sim.in_flight()
            if src in index and dst in index
        ]
        used = (0,) * (5 + len(self._fires))
        return (tuple(hosts), tuple(sorted(set(net) if self._keep else net)), mem, 0, used)

    def after(self, actions: Sequence[Action]) -> StateKey:
        """The state reached from the start by ``actions`` (taken whatever the bounds say)."""
        s = self.initial()
        for i, a in enumerate(actions):
            valid.instance(f"actions[{i}]", a, Action)
            s = self.step(s, self.find_step(s, a))[0]
        return s

    def _after(self, s: StateKey, i: int, out: _Outcome, net: tuple, used: tuple) -> StateKey | None:
        """The state after node ``i``'s handler ``out``, or None if it breaks a bound."""
        sends = out.sends
        if sends:
            cap = self._cap
            if cap is not None and not self._keep and len(net) + len(sends) > cap:
                self.pruned += 1
                return None
            if self._keep:
                net = tuple(sorted(set(net).union(sends)))
                if cap is not None and len(net) > cap:
                    self.pruned += 1
                    return None
            else:
                net = tuple(sorted(net + sends))
        h = out.host
        if self._limits and not self.within(h):
            self.pruned += 1
            return None
        hosts = s[0]
        mem = s[2]
        facts = self._facts.get(h)
        if facts is None or facts != self._no_memory:
            mem = self._union(mem, h)
        return (hosts[:i] + (h,) + hosts[i + 1 :], net, mem, s[3], used)

    def successors(self, s: StateKey) -> list[tuple[Step, StateKey]]:
        """Every enabled action of ``s`` with the state it leads to, within the bounds."""
        hosts, net, _, time, used = s
        host_rec, packets = self.hosts, self.packets
        out: list[tuple[Step, StateKey]] = []
        prev = -1
        for k, pid in enumerate(net):
            if pid == prev:
                continue
            prev = pid
            dst = packets[pid][1]
            if host_rec[hosts[dst]][1] < 0:
                continue  # a failed node receives nothing more
            rest = net if self._keep else net[:k] + net[k + 1 :]
            t = self._after(s, dst, self._outcome(hosts[dst], pid, time), rest, used)
            if t is not None:
                out.append(((Act.DELIVER, pid), t))
        for i, h in enumerate(hosts):
            for name in host_rec[h][3]:
                u = used
                if name in self._fire_limit:
                    slot, limit = self._fire_limit[name]
                    if used[slot] >= limit:
                        continue
                    u = used[:slot] + (used[slot] + 1,) + used[slot + 1 :]
                t = self._after(s, i, self._outcome(h, ("t", name), time), net, u)
                if t is not None:
                    out.append(((Act.TIMEOUT, i, name), t))
        inputs = self.model.inputs
        if inputs:
            mask = used[_INPUTS]
            for j, inp in enumerate(inputs):
                if mask & (1 << j):
                    continue
                u = used[:_INPUTS] + (mask | (1 << j),) + used[_INPUTS + 1 :]
                for i, h in enumerate(hosts):
                    idx, snap, _, _ = host_rec[h]
                    if snap < 0 or (inp.nodes is not None and self.ids[i] not in inp.nodes):
                        continue
                    if inp.when is not None and not inp.when(self._protos[(idx, snap)]):
                        continue
                    t = self._after(s, i, self._outcome(h, ("i", j), time), net, u)
                    if t is not None:
                        out.append(((Act.INPUT, i, j), t))
        b = self.bounds
        if b.drops and used[_DROPS] < b.drops:
            u = used[:_DROPS] + (used[_DROPS] + 1,) + used[_DROPS + 1 :]
            for k, pid in enumerate(net):
                if k and net[k - 1] == pid:
                    continue
                out.append(((Act.DROP, pid), (hosts, net[:k] + net[k + 1 :], s[2], time, u)))
        if b.duplicates and not self._keep and used[_DUPS] < b.duplicates:
            u = used[:_DUPS] + (used[_DUPS] + 1,) + used[_DUPS + 1 :]
            for k, pid in enumerate(net):
                if k and net[k - 1] == pid:
                    continue
                if b.in_flight is not None and len(net) + 1 > b.in_flight:
                    self.pruned += 1
                    continue
                out.append(((Act.DUPLICATE, pid), (hosts, tuple(sorted((*net, pid))), s[2], time, u)))
        if b.crashes and used[_CRASHES] < b.crashes:
            u = used[:_CRASHES] + (used[_CRASHES] + 1,) + used[_CRASHES + 1 :]
            for i, h in enumerate(hosts):
                idx, snap, sto, _ = host_rec[h]
                if snap < 0:
                    continue
                down = self._intern_host((idx, _DOWN, sto, ()))
                kept = tuple(p for p in net if packets[p][1] != i)
                out.append(((Act.CRASH, i), (hosts[:i] + (down,) + hosts[i + 1 :], kept, s[2], time, u)))
        if b.restarts and used[_RESTARTS] < b.restarts:
            u = used[:_RESTARTS] + (used[_RESTARTS] + 1,) + used[_RESTARTS + 1 :]
            for i, h in enumerate(hosts):
                if host_rec[h][1] != _DOWN:
                    continue
                t = self._after(s, i, self._outcome(h, _RESTART, time), net, u)
                if t is not None:
                    out.append(((Act.RESTART, i), t))
        if b.ticks and time < b.ticks:
            out.append(((Act.TICK,), (hosts, net, s[2], time + 1, used)))
        return out

    def step(self, s: StateKey, step: Step) -> tuple[StateKey, _Outcome | None]:
        """Take one internal step from ``s`` (no bounds applied); the handler's outcome if one ran."""
        for st, t in self._all_successors(s):
            if st == step:
                return t
        raise ValueError(f"action {self.action(step)} is not enabled in this state")

    def _all_successors(self, s: StateKey) -> Iterator[tuple[Step, tuple[StateKey, _Outcome | None]]]:
        """Like :meth:`successors`, ignoring bounds, with each step's handler outcome."""
        hosts, net, mem, time, used = s
        host_rec, packets = self.hosts, self.packets

        def after(i: int, out: _Outcome, rest: tuple, u: tuple) -> tuple[StateKey, _Outcome]:
            if not out.sends:
                n2 = rest
            elif self._keep:
                n2 = tuple(sorted(set(rest).union(out.sends)))
            else:
                n2 = tuple(sorted(rest + out.sends))
            h = out.host
            return (hosts[:i] + (h,) + hosts[i + 1 :], n2, self._union(mem, h), time, u), out

        for k, pid in enumerate(net):
            dst = packets[pid][1]
            if host_rec[hosts[dst]][1] >= 0:
                rest = net if self._keep else net[:k] + net[k + 1 :]
                yield (Act.DELIVER, pid), after(dst, self._outcome(hosts[dst], pid, time), rest, used)
            yield (Act.DROP, pid), ((hosts, net[:k] + net[k + 1 :], mem, time, _bump(used, _DROPS)), None)
            yield (
                (Act.DUPLICATE, pid),
                ((hosts, tuple(sorted((*net, pid))), mem, time, _bump(used, _DUPS)), None),
            )
        for i, h in enumerate(hosts):
            idx, snap, sto, timers = host_rec[h]
            for name in timers:
                u = used
                if name in self._fire_limit:
                    u = _bump(used, self._fire_limit[name][0])
                yield (Act.TIMEOUT, i, name), after(i, self._outcome(h, ("t", name), time), net, u)
            if snap >= 0:
                down = self._intern_host((idx, _DOWN, sto, ()))
                kept = tuple(p for p in net if packets[p][1] != i)
                yield (
                    (Act.CRASH, i),
                    ((hosts[:i] + (down,) + hosts[i + 1 :], kept, mem, time, _bump(used, _CRASHES)), None),
                )
                for j, _inp in enumerate(self.model.inputs):
                    if not used[_INPUTS] & (1 << j):
                        u = used[:_INPUTS] + (used[_INPUTS] | (1 << j),) + used[_INPUTS + 1 :]
                        yield (Act.INPUT, i, j), after(i, self._outcome(h, ("i", j), time), net, u)
            elif snap == _DOWN:
                yield (
                    (Act.RESTART, i),
                    after(i, self._outcome(h, _RESTART, time), net, _bump(used, _RESTARTS)),
                )
        yield (Act.TICK,), ((hosts, net, mem, time + 1, used), None)

    # ------------------------------------------------------------------
    # Actions in words
    # ------------------------------------------------------------------
    def action(self, step: Step) -> Action:
        """The public :class:`Action` for an internal step."""
        kind = step[0]
        if kind in (Act.DELIVER, Act.DROP, Act.DUPLICATE):
            src, dst, msg = self.packets[step[1]]
            return Action(kind, self.ids[dst], self.ids[src], msg)
        if kind is Act.TIMEOUT:
            return Action(kind, self.ids[step[1]], timer=step[2])
        if kind is Act.INPUT:
            return Action(kind, self.ids[step[1]], label=self.model.inputs[step[2]].label)
        if kind is Act.TICK:
            return Action(kind)
        return Action(kind, self.ids[step[1]])

    def find_step(self, s: StateKey, action: Action) -> Step:
        """The internal step of ``s`` that ``action`` names (ValueError if it is not enabled)."""
        for st, _ in self._all_successors(s):
            if self.action(st) == action:
                return st
        raise ValueError(f"{action} is not enabled in this state")

    # ------------------------------------------------------------------
    # Keys: symmetry and fingerprints
    # ------------------------------------------------------------------
    def key(self, s: StateKey) -> StateKey:
        """The key the search deduplicates on: ``s`` itself, or its smallest renaming under symmetry.

        Only the renamings that list the interchangeable nodes in order of
        their *shape* (their state with every node id blotted out) can give
        the smallest key, so only those are tried: usually one or two, not
        all n! of them.
        """
        if not self._perms:
            return s
        best = None
        for n in self._candidates(s[0]):
            r = s if n == 0 else self._renamed(s, n, *self._perms[n])
            if best is None or r < best:
                best = r
        return best  # type: ignore[return-value]

    def _candidates(self, hosts: tuple[int, ...]) -> list[int]:
        """The permutations (by number) that sort the symmetric nodes by shape."""
        shape = self._shape
        sigs = tuple([shape(hosts[i]) for i in self._sym])
        out = self._candidate_cache.get(sigs)
        if out is None:
            out = self._candidate_cache[sigs] = self._sorting_perms(sigs)
        return out

    def _sorting_perms(self, sigs: tuple[int, ...]) -> list[int]:
        sym = self._sym
        order = sorted(range(len(sym)), key=sigs.__getitem__)
        groups: list[list[int]] = []
        for k in order:
            if groups and sigs[groups[-1][0]] == sigs[k]:
                groups[-1].append(k)
            else:
                groups.append([k])
        out = []
        base = list(range(len(self.ids)))
        for choice in itertools.product(*(itertools.permutations(g) for g in groups)):
            perm = base[:]
            pos = 0
            for g in choice:
                for k in g:
                    perm[sym[k]] = sym[pos]
                    pos += 1
            out.append(self._perm_number[tuple(perm)])
        return out

    def _shape(self, h: int) -> int:
        """A number for host ``h``'s state with the interchangeable nodes' ids blotted out."""
        out = self._shapes.get(h)
        if out is None:
            idx, snap, sto, timers = self.hosts[h]
            blot = self._blot
            key = (
                snap if snap < 0 else rename(self.snaps[snap], blot),
                rename(self._storage_keys[sto], blot),
                timers,
                self._errors.get(h),
            )
            out = self._shape_ids.get(key)
            if out is None:
                out = self._shape_ids[key] = len(self._shape_ids)
            self._shapes[h] = out
        return out

    def _renamed(self, s: StateKey, n: int, perm: tuple[int, ...], names: dict[str, str]) -> StateKey:
        hosts, net, mem, time, used = s
        new_hosts = [0] * len(hosts)
        rh = self._renamed_hosts[n]
        for i, h in enumerate(hosts):
            r = rh.get(h)
            if r is None:
                r = self._rename_host(h, n, perm, names)
            new_hosts[perm[i]] = r
        rp = self._renamed_packets[n]
        pkts = []
        for p in net:
            r = rp.get(p)
            if r is None:
                r = self._rename_packet(p, n, perm, names)
            pkts.append(r)
        pkts.sort()
        return (tuple(new_hosts), tuple(pkts), self._rename_memory(mem, n, names), time, used)

    def _rename_host(self, h: int, n: int, perm: tuple[int, ...], names: dict[str, str]) -> int:
        idx, snap, sto, timers = self.hosts[h]
        snap2 = snap if snap < 0 else self._intern_snap(rename(self.snaps[snap], names))
        sto2 = self._intern_storage_key(rename(self._storage_keys[sto], names))
        out = self._renamed_hosts[n][h] = self._intern_host((perm[idx], snap2, sto2, timers))
        if h in self._errors:
            self._errors.setdefault(out, self._errors[h])
        return out

    def _intern_storage_key(self, key: Any) -> int:
        sid = self._storage_ids.get(key)
        if sid is None:
            sid = self._storage_ids[key] = len(self._storages)
            self._storages.append({})  # a renamed storage is only ever compared, never read
            self._storage_keys.append(key)
        return sid

    def _rename_packet(self, p: int, n: int, perm: tuple[int, ...], names: dict[str, str]) -> int:
        src, dst, msg = self.packets[p]
        out = self._renamed_packets[n][p] = self._intern_packet((perm[src], perm[dst], rename(msg, names)))
        return out

    def _rename_memory(self, m: int, n: int, names: dict[str, str]) -> int:
        if m == self._no_memory:
            return m
        key = (m, n)
        out = self._renamed_mems.get(key)
        if out is None:
            out = self._renamed_mems[key] = self._intern_memory(
                frozenset(rename(f, names) for f in self.memories[m])
            )
        return out

    def _digest(self, kind: str, i: int) -> bytes:
        key = (kind, i)
        d = self._digests.get(key)
        if d is None:
            if kind == "host":
                idx, snap, sto, timers = self.hosts[i]
                snap_key = (
                    ("down",)
                    if snap == _DOWN
                    else ("failed", self._errors.get(i))
                    if snap == _FAILED
                    else self.snaps[snap]
                )
                d = digest((self.ids[idx], snap_key, self._storage_keys[sto], timers))
            elif kind == "packet":
                src, dst, msg = self.packets[i]
                d = digest((self.ids[src], self.ids[dst], freeze(msg)))
            else:
                d = digest(freeze(self.memories[i]))
            self._digests[key] = d
        return d

    def fingerprint(self, s: StateKey, canonical: bool = True) -> str:
        """A hex digest of ``s`` that is the same in every process and under every ``PYTHONHASHSEED``.

        With ``canonical`` (the default) and a symmetric model, states that
        differ by a renaming of interchangeable nodes get the same fingerprint.
        """
        candidates = [s]
        if canonical and self._perms:
            candidates += [self._renamed(s, n, p, names) for n, (p, names) in enumerate(self._perms) if n]
        return min(self._fingerprint_of(c) for c in candidates)

    def _fingerprint_of(self, s: StateKey) -> str:
        hosts, net, mem, time, used = s
        h = hashlib.blake2b(digest_size=16)
        for x in hosts:
            h.update(self._digest("host", x))
        h.update(b"|")
        for d in sorted(self._digest("packet", p) for p in net):
            h.update(d)
        h.update(b"|")
        h.update(self._digest("memory", mem))
        h.update(repr((time, used)).encode())
        return h.hexdigest()

    # ------------------------------------------------------------------
    # Reading a state
    # ------------------------------------------------------------------
    def view(self, s: StateKey) -> State:
        """A read-only :class:`State` for invariants and the explorer."""
        return State(self, s)

    def failed(self, s: StateKey) -> bool:
        """Whether a handler raised on the way to ``s`` (some node is marked failed)."""
        errors = self._errors
        return bool(errors) and any(h in errors for h in s[0])

    def error(self, h: int) -> str | None:
        """What the handler of a failed host raised (None if it did not fail)."""
        return self._errors.get(h)

    def node_of(self, h: int) -> Node | None:
        idx, snap, _, _ = self.hosts[h]
        return self._protos[(idx, snap)] if snap >= 0 else None

    def storage_of(self, h: int) -> Mapping[Hashable, Any]:
        return MappingProxyType(self._storages[self.hosts[h][2]])


def _bump(used: tuple, slot: int) -> tuple:
    return used[:slot] + (used[slot] + 1,) + used[slot + 1 :]


class State:
    """One state of a model, as invariants and the explorer read it. Do not change what it shows.

    ``nodes`` maps each node id to its live node object (``None`` while the
    node is crashed or after its handler raised); ``in_flight`` lists the
    messages in flight as ``(src, dst, message)`` (a message in flight twice
    appears twice); ``timers`` the pending timers per node; ``memory`` the
    facts remembered along the run (see :class:`~labkit.explore.Model`).
    """

    __slots__ = ("space", "key", "_nodes")

    def __init__(self, space: Space, key: StateKey) -> None:
        self.space = space
        self.key = key
        self._nodes: dict[str, Any] | None = None

    @property
    def nodes(self) -> dict[str, Any]:
        if self._nodes is None:
            sp = self.space
            self._nodes = {nid: sp.node_of(h) for nid, h in zip(sp.ids, self.key[0], strict=True)}
        return self._nodes

    def node(self, node_id: str) -> Any:
        """The live node ``node_id`` (None while it is crashed or failed)."""
        if node_id not in self.space.index:
            raise ValueError(f"node_id must be one of {', '.join(self.space.ids)}, got {node_id!r}")
        return self.nodes[node_id]

    def live(self) -> dict[str, Any]:
        """The nodes that are up, by id."""
        return {k: v for k, v in self.nodes.items() if v is not None}

    def up(self, node_id: str) -> bool:
        return self.node(node_id) is not None

    @property
    def crashed(self) -> tuple[str, ...]:
        sp = self.space
        return tuple(nid for nid, h in zip(sp.ids, self.key[0], strict=True) if sp.hosts[h][1] == _DOWN)

    @property
    def errors(self) -> dict[str, str]:
        """Nodes whose handler raised, with what it raised."""
        sp = self.space
        return {nid: sp.error(h) for nid, h in zip(sp.ids, self.key[0], strict=True) if sp.error(h)}  # type: ignore[misc]

    def storage(self, node_id: str) -> Mapping[Hashable, Any]:
        """The durable storage of ``node_id`` (it survives crashes)."""
        self.node(node_id)
        return self.space.storage_of(self.key[0][self.space.index[node_id]])

    @property
    def in_flight(self) -> list[tuple[str, str, Any]]:
        sp = self.space
        return [(sp.ids[s], sp.ids[d], m) for s, d, m in (sp.packets[p] for p in self.key[1])]

    @property
    def timers(self) -> dict[str, tuple[str, ...]]:
        sp = self.space
        return {nid: sp.hosts[h][3] for nid, h in zip(sp.ids, self.key[0], strict=True)}

    @property
    def memory(self) -> frozenset:
        return self.space.memories[self.key[2]]

    @property
    def time(self) -> float:
        """Seconds the clocks have advanced (ticks taken times the model's tick)."""
        return self.key[3] * self.space.model.tick

    @property
    def fingerprint(self) -> str:
        """A hex digest of the state, the same in every process (canonical under symmetry)."""
        return self.space.fingerprint(self.key)

    @property
    def failed(self) -> bool:
        """True when some node's handler raised on the way here."""
        return self.space.failed(self.key)

    def remembered(self, name: str, compute: Any) -> Any:
        """``compute(self.memory)``, cached under ``name`` for every state with the same memory."""
        cache = self.space.memo
        key = (name, self.key[2])
        out = cache.get(key)
        if out is None:
            out = cache[key] = compute(self.memory)
        return out

    def __repr__(self) -> str:
        return f"State({self.fingerprint[:12]}, {len(self.key[1])} in flight)"
