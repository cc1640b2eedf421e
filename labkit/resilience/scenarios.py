"""The experiments of notebook 17, each one function that returns a finished run.

* :func:`slow_dependency`: C breaks from 5 s to 15 s under 100 req/s (the cascade);
* :func:`retry_storm`: C, near its capacity, is slow for one second (a blip);
* :func:`thundering_herd`: 200 requests arrive at once at a small C;
* :func:`overload`: three times more checkouts than C can serve.

Every function takes the policies to try and a seed, so the notebook, the
tests and the widget all run exactly the same experiments.
"""

from __future__ import annotations

from labkit import validation as valid
from labkit.resilience.model import ChainModel, Fault
from labkit.resilience.retry import Jitter
from labkit.resilience.service import Policies, ServiceSpec
from labkit.sim import Exponential

FAULT_WINDOW = (5.0, 15.0)


def slow_dependency(
    policies: Policies, *, seed: int = 1, fault: Fault | str = Fault.SLOW, until: float = 25.0
) -> ChainModel:
    """100 req/s (half checkout, half browse); C has ``fault`` during :data:`FAULT_WINDOW`."""
    m = ChainModel(seed, rate=100.0, policies=valid.instance("policies", policies, Policies))
    start, end = FAULT_WINDOW
    m.at(start, lambda m: m.set_fault("C", fault))
    m.at(end, lambda m: m.set_fault("C", Fault.NONE))
    return m.run(until)


def retry_storm(policies: Policies, *, seed: int = 1, until: float = 25.0) -> ChainModel:
    """140 req/s; C has 2 workers (about 100 checkouts/s, 70 arrive) and is slow from 5 s to 6 s."""
    m = ChainModel(seed, rate=140.0, policies=valid.instance("policies", policies, Policies))
    m.update_service("C", workers=2)
    m.at(5.0, lambda m: m.set_fault("C", Fault.SLOW))
    m.at(6.0, lambda m: m.set_fault("C", Fault.NONE))
    return m.run(until)


def thundering_herd(jitter: Jitter | str, *, seed: int = 3, max_attempts: int = 6) -> ChainModel:
    """Clients -> B -> C only. At t = 1 s, 200 checkouts arrive at once; C (4
    workers, room for 10 in its queue) rejects most of them, and B retries
    with exponential backoff and the given ``jitter``. Metrics in 10 ms buckets."""
    from labkit.resilience.model import make_policies

    services = {
        "B": ServiceSpec(workers=256, latency=0.001, calls={"checkout": ("C",)}),
        "C": ServiceSpec(workers=4, queue_limit=10, latency=Exponential(0.01, minimum=0.01)),
    }
    pol = make_policies(retries=True, jitter=jitter, max_attempts=max_attempts)
    m = ChainModel(
        seed,
        rate=5.0,
        bucket=0.01,
        services=services,
        policies={"B": pol},
        mix={"checkout": 1.0},
        deadline=2.0,
    )
    m.at(1.0, lambda m: m.burst(200, "checkout"))
    return m.run(4.0)


def overload(policies: Policies, *, seed: int = 4, until: float = 15.0) -> ChainModel:
    """300 checkouts/s, but C has 2 workers: it can serve about 100/s."""
    m = ChainModel(
        seed, rate=300.0, mix={"checkout": 1.0}, policies=valid.instance("policies", policies, Policies)
    )
    m.update_service("C", workers=2)
    return m.run(until)
