"""Sagas: distributed transactions as local transactions plus compensations.

One module per concept:

* :mod:`labkit.saga.services`: simulated inventory, payment and shipping
  services with idempotency keys and injectable faults;
* :mod:`labkit.saga.definition`: what a saga is (steps and compensations);
* :mod:`labkit.saga.log`: the durable saga log in SQLite;
* :mod:`labkit.saga.orchestrator`: the orchestrator and its crash recovery;
* :mod:`labkit.saga.naive`: the seed's ``OrderSaga``, kept as it was written;
* :mod:`labkit.saga.twopc`: two-phase commit on the same services, for contrast;
* :mod:`labkit.saga.scenario`: run a saga with faults and check the invariant.
"""
