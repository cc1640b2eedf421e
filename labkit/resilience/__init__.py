"""Cascading failures and the policies that contain them (notebook 17).

One concept per module:

* :mod:`~labkit.resilience.messages`: requests, responses, outcomes;
* :mod:`~labkit.resilience.timeouts`: timeouts and deadline propagation;
* :mod:`~labkit.resilience.retry`: backoff with jitter, retry budgets;
* :mod:`~labkit.resilience.breaker`: the circuit breaker (a transition table);
* :mod:`~labkit.resilience.bulkhead`: per-dependency concurrency limits;
* :mod:`~labkit.resilience.shedding`: load shedding at the server;
* :mod:`~labkit.resilience.service`: services and clients on :mod:`labkit.sim`;
* :mod:`~labkit.resilience.metrics`: metrics over time as DataFrames;
* :mod:`~labkit.resilience.model`: the A -> B -> C (+ D) system to break;
* :mod:`~labkit.resilience.scenarios`: the notebook's experiments.
"""

from labkit.resilience.breaker import (
    TRANSITIONS,
    Admission,
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    Event,
    Transition,
    check_breaker_invariants,
)
from labkit.resilience.bulkhead import Bulkhead
from labkit.resilience.messages import Outcome, Request, Response
from labkit.resilience.model import CLIENT, ChainModel, Fault, default_services, make_policies
from labkit.resilience.retry import Backoff, Jitter, RetryBudget, RetryPolicy
from labkit.resilience.scenarios import FAULT_WINDOW, overload, retry_storm, slow_dependency, thundering_herd
from labkit.resilience.service import LoadGenerator, Policies, Service, ServiceSpec, check_service_invariants
from labkit.resilience.shedding import LoadShedder
from labkit.resilience.timeouts import Timeouts, remaining

__all__ = [
    "CLIENT",
    "FAULT_WINDOW",
    "TRANSITIONS",
    "Admission",
    "Backoff",
    "BreakerConfig",
    "BreakerState",
    "Bulkhead",
    "ChainModel",
    "CircuitBreaker",
    "CircuitOpenError",
    "Event",
    "Fault",
    "Jitter",
    "LoadGenerator",
    "LoadShedder",
    "Outcome",
    "Policies",
    "Request",
    "Response",
    "RetryBudget",
    "RetryPolicy",
    "Service",
    "ServiceSpec",
    "Timeouts",
    "Transition",
    "check_breaker_invariants",
    "check_service_invariants",
    "default_services",
    "make_policies",
    "overload",
    "remaining",
    "retry_storm",
    "slow_dependency",
    "thundering_herd",
]
