"""A ready-made system to break: clients -> A; A -> B -> C and A -> D.

``checkout`` requests go down the chain A -> B -> C; ``browse`` requests
need only A and its other dependency D. So when C gets into trouble, browse
requests tell whether A itself is still healthy: in a cascade they fail too.
:class:`ChainModel` builds the simulation, lets you inject a fault into any
service (slow, erroring, down), switch policies and load mid-run, and
returns the metrics as DataFrames. :func:`make_policies` builds the
policies the notebook toggles one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Any

from labkit import validation as valid
from labkit.resilience.breaker import BreakerConfig
from labkit.resilience.metrics import ClientStats, ServiceStats, breaker_frame, client_frame, service_frame
from labkit.resilience.retry import Backoff, Jitter, RetryPolicy
from labkit.resilience.service import LoadGenerator, Policies, Service, ServiceSpec
from labkit.resilience.shedding import LoadShedder
from labkit.resilience.timeouts import Timeouts
from labkit.sim import Exponential, Fixed, Latency, Simulator
from labkit.sim.latency import as_latency

CLIENT = "clients"
MAX_REQUESTS_PER_RUN = 2_000_000  # one run() call at the current rate; about a minute of CPU
# What a slow service's own work takes: 0.1 s plus a long exponential tail (mean 0.3 s).
SLOW_LATENCY = Exponential(0.2, minimum=0.1)


class Fault(StrEnum):
    """What can go wrong with a service."""

    NONE = "none"
    SLOW = "slow"  # its own work takes ``slow_latency`` instead of its usual latency
    ERRORING = "erroring"  # every request fails (after the usual work)
    DOWN = "down"  # crashed: requests to it vanish, callers hear nothing


def default_services() -> dict[str, ServiceSpec]:
    """The four services of the standard model (capacities in the docstrings of the notebook)."""
    return {
        "A": ServiceSpec(
            workers=16,
            latency=Exponential(0.002, minimum=0.002),
            calls={"checkout": ("B",), "browse": ("D",)},
        ),
        "B": ServiceSpec(workers=64, latency=Exponential(0.003, minimum=0.002), calls={"checkout": ("C",)}),
        "C": ServiceSpec(workers=8, latency=Exponential(0.01, minimum=0.01)),
        "D": ServiceSpec(workers=8, latency=Exponential(0.005, minimum=0.005)),
    }


def make_policies(
    *,
    timeouts: bool = False,
    deadlines: bool = False,
    retries: bool = False,
    backoff: bool = True,
    jitter: Jitter | str = Jitter.FULL,
    budget: bool = False,
    breaker: bool = False,
    bulkhead: bool = False,
    shedding: bool = False,
    timeout: float = 0.3,
    max_attempts: int = 3,
    bulkhead_limit: int = 6,
    breaker_config: BreakerConfig | None = None,
) -> Policies:
    """Policies with the course's settings, each switched on by a flag.

    ``timeout`` is the per-call timeout in seconds; ``backoff=False`` retries
    at once; ``jitter`` picks the backoff's jitter; ``budget`` adds a retry
    budget of 10% (plus 1 retry/s); the breaker opens at 50% failures over
    the last 20 calls (at least 10) and cools down for 1 s.
    """
    jitter = valid.enum_member("jitter", jitter, Jitter)
    # Checked even with timeouts off, so a bad value does not wait for the day they are switched on.
    valid.number("timeout", timeout, gt=0, unit="seconds")
    flags = {"timeouts": timeouts, "deadlines": deadlines, "retries": retries, "backoff": backoff,
             "budget": budget, "breaker": breaker, "bulkhead": bulkhead, "shedding": shedding}  # fmt: skip
    for name, flag in flags.items():
        valid.boolean(name, flag)
    valid.integer("max_attempts", max_attempts, ge=1)
    valid.integer("bulkhead_limit", bulkhead_limit, ge=1)
    valid.instance("breaker_config", breaker_config, BreakerConfig, none=True)
    retry = None
    if retries:
        retry = RetryPolicy(
            max_attempts=max_attempts,
            backoff=Backoff(base=0.02, cap=1.0, jitter=jitter) if backoff else None,
            budget_ratio=0.1 if budget else None,
            budget_min_per_second=1.0,
            budget_window=5.0,
        )
    config = breaker_config or BreakerConfig(
        failure_rate=0.5, window=20, min_calls=10, cooldown=1.0, probes=3
    )
    return Policies(
        timeouts=Timeouts(per_call=timeout if timeouts else None, propagate_deadline=deadlines),
        retry=retry,
        breaker=config if breaker else None,
        bulkhead=bulkhead_limit if bulkhead else None,
        shedding=LoadShedder(max_queue=16, deadline_aware=True) if shedding else None,
    )


class ChainModel:
    """The clients and services of the standard model on one :class:`Simulator`.

    ``rate`` (requests/s), ``mix`` (kind -> weight) and ``deadline`` (s)
    describe the clients; ``services`` overrides the specs
    (:func:`default_services`); ``policies`` is one :class:`Policies` for
    every service or a mapping service -> Policies; ``bucket`` is the
    metrics' time resolution (s); ``network`` the one-way delay of each hop.
    ``trace=True`` keeps the simulator's record of every message in
    ``sim.trace``; it is off by default because the metrics are what the
    model is read through, and a minute at 1,000 requests/s is about a
    million rows. ``events`` counts the simulator events processed so far.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        rate: float = 100.0,
        mix: Mapping[str, float] | None = None,
        deadline: float = 1.0,
        services: Mapping[str, ServiceSpec] | None = None,
        policies: Policies | Mapping[str, Policies] | None = None,
        bucket: float = 0.5,
        network: Latency | float = Fixed(0.001),
        slow_latency: Latency | float = SLOW_LATENCY,
        trace: bool = False,
    ) -> None:
        self.sim = Simulator(seed, latency=network, trace=trace)
        self.events = 0
        self.bucket = bucket
        self.specs: dict[str, ServiceSpec] = dict(services) if services is not None else default_services()
        if not self.specs:
            raise ValueError("services must name at least one service")
        for name, spec in self.specs.items():
            valid.instance(f"services[{name!r}]", spec, ServiceSpec)
            for route in spec.calls.values():
                for dep in route:
                    if dep not in self.specs:
                        raise ValueError(
                            f"service {name!r} calls {dep!r}, which is not one of {sorted(self.specs)}"
                        )
        self.entry = next(iter(self.specs))
        # Each service's own latency and failure rate, which a fault overrides while it lasts.
        self._base = {
            name: {"latency": s.latency, "failure_rate": s.failure_rate} for name, s in self.specs.items()
        }
        self.slow_latency = as_latency(slow_latency, "slow_latency")
        self.faults: dict[str, Fault] = {name: Fault.NONE for name in self.specs}
        self.policies: dict[str, Policies] = {name: Policies() for name in self.specs}
        if policies is not None:
            self._store_policies(policies, None)
        self.stats = {name: ServiceStats(name, bucket, spec.workers) for name, spec in self.specs.items()}
        self.client_stats = ClientStats(bucket)
        if mix is None:
            mix = {"checkout": 0.5, "browse": 0.5}
        self._check_mix(mix)
        self.sim.add_node(
            CLIENT, lambda nid: LoadGenerator(nid, self.entry, rate, mix, deadline, self.client_stats)
        )
        for name in self.specs:
            self.sim.add_node(name, self._factory(name))

    def _factory(self, name: str) -> Callable[[str], Service]:
        # A restarted service comes back with the current spec and policies.
        return lambda nid: Service(nid, self.specs[name], self.policies[name], self.stats[name])

    # -- running --------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.sim.now

    def run(self, until: float) -> ChainModel:
        """Simulate up to virtual time ``until`` (seconds, not before now).

        One call simulates at most :data:`MAX_REQUESTS_PER_RUN` client requests at the
        current rate; for longer runs call it again (the load never stops by itself).
        """
        valid.number("until", until, ge=self.now, unit="seconds", note="not before now")
        rate = self.sim.node(CLIENT).rate  # type: ignore[attr-defined]
        requests = rate * (until - self.now)
        valid.require(
            requests <= MAX_REQUESTS_PER_RUN,
            "until",
            f"at most {MAX_REQUESTS_PER_RUN:,} requests ahead at {rate:g} requests/s (run in shorter steps)",
            until,
        )
        self.events += self.sim.run(until)
        return self

    def at(self, time: float, fn: Callable[[ChainModel], Any]) -> None:
        """Call ``fn(model)`` at virtual time ``time`` (to schedule faults and changes)."""
        valid.function("fn", fn, "callable as fn(model)")
        self.sim.at(time, lambda _sim: fn(self))

    # -- knobs ----------------------------------------------------------------
    def _check_service(self, service: str) -> None:
        valid.one_of("service", service, sorted(self.specs))

    def _check_mix(self, mix: Any) -> None:
        # A kind the entry service has no route for would be served by it alone
        # and look healthy: most likely a typo ("chekout").
        routes = self.specs[self.entry].calls
        if isinstance(mix, Mapping) and routes:
            unknown = [k for k in mix if k not in routes]
            if unknown:
                raise ValueError(
                    f"mix names request kinds {unknown} that {self.entry!r} has no route for; "
                    f"known kinds: {sorted(routes)}"
                )

    def _window(self, start: float, end: float | None, kind: str | None = None) -> float:
        """Check a time window ``[start, end)`` (and a request kind) of a result; return ``end``."""
        end = self.now if end is None else end
        if not 0 <= start < end <= self.now + 1e-9:
            raise ValueError(f"need 0 <= start < end <= now ({self.now}), got start={start!r}, end={end!r}")
        if kind is not None:
            known = set(self.client_stats.kinds) | set(self.specs[self.entry].calls)
            if kind not in known:
                raise ValueError(f"kind must be None or one of {sorted(known)}, got {kind!r}")
        return end

    def set_fault(self, service: str, fault: Fault | str) -> None:
        """Put ``service`` into ``fault`` now (``Fault.NONE`` heals it)."""
        self._check_service(service)
        fault = self.faults[service] = Fault(valid.one_of("fault", fault, [f.value for f in Fault]))
        self._apply_fault(service)
        was_down = not self.sim.is_up(service)
        if fault is Fault.DOWN and not was_down:
            self.sim.crash(service)
            self.stats[service].gauges(self.now, 0, 0, self.specs[service].workers)
            self.stats[service].retire_breakers(self.now)
        elif fault is not Fault.DOWN and was_down:
            self.sim.restart(service)

    def _apply_fault(self, service: str) -> None:
        """Set the spec's latency and failure rate: the fault's while one lasts, else the service's own."""
        spec, fault, base = self.specs[service], self.faults[service], self._base[service]
        spec.latency = self.slow_latency if fault is Fault.SLOW else base["latency"]
        spec.failure_rate = 1.0 if fault is Fault.ERRORING else base["failure_rate"]

    def update_service(self, service: str, **changes: Any) -> None:
        """Change spec fields of ``service`` now (``workers``, ``queue_limit``, ``latency``, ``failure_rate``)."""
        self._check_service(service)
        allowed = {"workers", "queue_limit", "latency", "failure_rate"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"can change only {sorted(allowed)}, got {sorted(unknown)}")
        spec = self.specs[service]
        new = ServiceSpec(**{**spec.__dict__, **changes})  # validates
        base = self._base[service]
        for key in changes:
            setattr(spec, key, getattr(new, key))
            if key in base:
                base[key] = getattr(new, key)
        self._apply_fault(service)  # a slow service stays slow, an erroring one keeps failing
        if self.sim.is_up(service):
            self.sim.call(service, lambda node, ctx: node.respec(ctx))

    def _store_policies(
        self, policies: Policies | Mapping[str, Policies], services: Iterable[str] | None
    ) -> list[str]:
        if isinstance(policies, Policies):  # the same policies for ``services`` (None: all)
            policies = dict.fromkeys(self.specs if services is None else services, policies)
        for n, p in valid.instance("policies", policies, (Policies, Mapping)).items():
            self._check_service(n)
            self.policies[n] = valid.instance(f"policies[{n!r}]", p, Policies)
        return list(policies)

    def set_policies(
        self, policies: Policies | Mapping[str, Policies], services: Iterable[str] | None = None
    ) -> None:
        """Switch policies now, for ``services`` (default: all) or per service with a mapping."""
        for n in self._store_policies(policies, services):
            if self.sim.is_up(n):
                pol = self.policies[n]
                self.sim.call(n, lambda node, ctx, pol=pol: node.configure(ctx, pol))

    def set_load(
        self, rate: float | None = None, mix: Mapping[str, float] | None = None, deadline: float | None = None
    ) -> None:
        """Change the clients' rate (req/s), mix or deadline (s) now."""

        if mix is not None:
            self._check_mix(mix)

        def apply(gen: LoadGenerator, ctx: Any) -> None:
            gen.set_load(
                gen.rate if rate is None else rate,
                gen.mix if mix is None else mix,
                gen.deadline if deadline is None else deadline,
            )
            gen.reschedule(ctx)

        self.sim.call(CLIENT, apply)

    def burst(self, n: int, kind: str | None = None) -> None:
        """``n`` extra requests at this instant."""
        if kind is not None:
            self._check_mix({kind: 1.0})
        self.sim.call(CLIENT, lambda gen, ctx: gen.burst(ctx, n, kind))

    def service(self, name: str) -> Service:
        """The live node of a service (raises if it is down)."""
        self._check_service(name)
        return self.sim.node(name)  # type: ignore[return-value]

    # -- results ----------------------------------------------------------------
    def metrics(self) -> Any:
        """Per-service metrics over time (see :func:`labkit.resilience.metrics.service_frame`)."""
        return service_frame(list(self.stats.values()), self.now)

    def client_metrics(self) -> Any:
        """What the clients saw over time, per request kind."""
        return client_frame(self.client_stats, self.now)

    def breaker_states(self) -> Any:
        """Circuit-breaker state over time, per (service, dependency)."""
        return breaker_frame(list(self.stats.values()), self.now, self.bucket)

    def transitions(self) -> Any:
        """Every breaker transition: ``time, service, dependency, source, target, event``."""
        import pandas as pd

        rows = [
            (t.time, st.name, dep, t.source.value, t.target.value, t.event.value)
            for st in self.stats.values()
            for dep, _since, breaker in st.breakers
            if breaker is not None
            for t in breaker.transitions
        ]
        frame = pd.DataFrame(rows, columns=["time", "service", "dependency", "source", "target", "event"])
        return frame.sort_values("time", kind="stable").reset_index(drop=True)

    def goodput(self, start: float = 0.0, end: float | None = None, kind: str | None = None) -> float:
        """Clients' goodput (OK answers within the deadline per second) over ``[start, end)``."""
        end = self._window(start, end, kind)
        return self._count(self.client_stats.good, start, end, kind) / (end - start)

    def offered(self, start: float = 0.0, end: float | None = None, kind: str | None = None) -> float:
        """Requests/s the clients sent over ``[start, end)``."""
        end = self._window(start, end, kind)
        return self._count(self.client_stats.sent, start, end, kind) / (end - start)

    def success(self, start: float = 0.0, end: float | None = None, kind: str | None = None) -> float:
        """Goodput as a share of the offered load over ``[start, end)`` (1.0 = everything in time)."""
        offered = self.offered(start, end, kind)
        return self.goodput(start, end, kind) / offered if offered else float("nan")

    def amplification(self, service: str, start: float = 0.0, end: float | None = None) -> float:
        """Requests that reached ``service`` per client request that needed it, over ``[start, end)``.

        1.0 means every request reached it exactly once; retries at every hop multiply.
        """
        self._check_service(service)
        end = self._window(start, end)
        arrived = sum(r[0] for i, r in self.stats[service].counts.items() if self._within(i, start, end))
        kinds = [k for k in self.client_stats.kinds if self._reaches(self.entry, k, service)]
        sent = sum(self._count(self.client_stats.sent, start, end, k) for k in kinds)
        return arrived / sent if sent else float("nan")

    def _within(self, bucket: int, start: float, end: float) -> bool:
        """Whether metrics bucket number ``bucket`` lies wholly inside ``[start, end)``."""
        return start <= bucket * self.bucket and (bucket + 1) * self.bucket <= end + 1e-9

    def _count(
        self, counts: Mapping[tuple[str, int], int], start: float, end: float, kind: str | None
    ) -> int:
        """The sum of ``counts`` ((kind, bucket) -> n) over ``kind`` (None: all) and ``[start, end)``."""
        return sum(
            n for (k, i), n in counts.items() if (kind is None or k == kind) and self._within(i, start, end)
        )

    def _reaches(self, at: str, kind: str, target: str) -> bool:
        if at == target:
            return True
        return any(self._reaches(dep, kind, target) for dep in self.specs[at].calls.get(kind, ()))

    def __repr__(self) -> str:
        faults = {k: v.value for k, v in self.faults.items() if v is not Fault.NONE}
        return f"ChainModel(now={self.now:.2f}s, services={list(self.specs)}, faults={faults or 'none'})"
