"""Property test: the saga invariant over random networks, faults and crashes.

The sweep in test_saga_orchestrator.py enumerates faults and crash points on
a perfect network. Here hypothesis adds what a real network does: lost,
duplicated and reordered messages, on top of random service faults and an
optional orchestrator crash at a random log write.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.saga.orchestrator import CrashPoint
from labkit.saga.scenario import FAULT_KINDS, SERVICES, run_order_saga
from labkit.sim import Uniform

FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

faults = st.fixed_dictionaries({s: st.sampled_from(sorted(FAULT_KINDS)) for s in SERVICES}).map(
    lambda d: {s: FAULT_KINDS[k] for s, k in d.items() if k != "none"}
)
crash = st.none() | st.builds(CrashPoint, st.integers(1, 12), st.booleans())


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    faults=faults,
    crash=crash,
    seed=st.integers(0, 10_000),
    loss=st.sampled_from([0.0, 0.05, 0.2]),
    duplication=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_invariant_on_a_lossy_duplicating_reordering_network(faults, crash, seed, loss, duplication):
    run = run_order_saga(
        faults=faults,
        crashes=[crash] if crash else [],
        seed=seed,
        latency=Uniform(0.002, 0.05),
        loss=loss,
        duplication=duplication,
        workdir=FAST_TMP,
    )
    assert run.ok, (run.violations, faults, crash, seed, loss, duplication)
