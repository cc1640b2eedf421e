"""Sagas: distributed transactions as local transactions plus compensations.

One module per concept:

* :mod:`labkit.saga.services`: simulated inventory, payment and shipping
  services with idempotency keys and injectable faults;
* :mod:`labkit.saga.definition`: what a saga is (steps and compensations);
* :mod:`labkit.saga.log`: the durable saga log in SQLite;
* :mod:`labkit.saga.orchestrator`: the orchestrator and its crash recovery;
* :mod:`labkit.saga.naive`: ``OrderSaga``, a first attempt, kept as it was written;
* :mod:`labkit.saga.twopc`: two-phase commit on the same services, for contrast;
* :mod:`labkit.saga.scenario`: run a saga with faults and check the invariant.
"""

from labkit.saga.definition import ORDER_SAGA, Order, SagaDefinition, Step
from labkit.saga.log import LogKind, LogRecord, SagaLog, SagaStatus
from labkit.saga.naive import OrderSaga, run_naive_saga
from labkit.saga.orchestrator import SAGA_RETRY, CrashPoint, Orchestrator, RetryPolicy
from labkit.saga.scenario import FAULT_KINDS, invariant_violations, run_order_saga
from labkit.saga.services import ServiceFaults
from labkit.saga.twopc import CoordinatorCrash, TwoPhaseCoordinator, run_two_phase_commit

__all__ = [
    "ORDER_SAGA",
    "FAULT_KINDS",
    "CoordinatorCrash",
    "CrashPoint",
    "LogKind",
    "LogRecord",
    "Order",
    "OrderSaga",
    "Orchestrator",
    "RetryPolicy",
    "SAGA_RETRY",
    "SagaDefinition",
    "SagaLog",
    "SagaStatus",
    "ServiceFaults",
    "Step",
    "TwoPhaseCoordinator",
    "invariant_violations",
    "run_naive_saga",
    "run_order_saga",
    "run_two_phase_commit",
]
