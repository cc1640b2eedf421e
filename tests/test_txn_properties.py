"""Property tests of the checker (hypothesis), derandomized so every run tries the same examples.

* A history of transactions run one at a time is serializable, so the checker
  must report nothing: no cycle, no anomaly (Adya 1999, ch. 3: the DSG of a
  serial history is acyclic). Lists and registers, with or without aborts.
* Each anomaly generator (``labkit.txn.generate.GENERATORS``) builds a history
  with one anomaly of its class, a cycle of ``n`` transactions for the cyclic
  ones, hidden among serial noise: the checker must report that class, and
  only that class (a lost update also shows as G2-item, see the checker's docs).
* Every cycle reported is a cycle: consecutive edges meet, and each edge is
  among the inferred dependencies.
* The verdict does not depend on the order in which transactions are listed.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.txn import Anomaly, Txn, check
from labkit.txn.checker import CYCLE_CLASSES
from labkit.txn.generate import GENERATORS, random_run, serial_history, with_noise
from labkit.txn.run import Abort, Append, Commit, Read, run, serial_order
from labkit.txn.store import Isolation


def examples(n: int) -> settings:
    return settings(
        max_examples=n, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
    )


@examples(60)
@given(seed=st.integers(0, 10**6), txns=st.integers(1, 40), keys=st.integers(1, 6), registers=st.booleans())
def test_serial_histories_never_show_an_anomaly(seed, txns, keys, registers):
    history = serial_history(random.Random(seed), txns, keys, registers=registers)
    result = check(history)
    assert result.ok, result.explain()


@examples(40)
@given(seed=st.integers(0, 10**6), txns=st.integers(2, 20), level=st.sampled_from(list(Isolation)))
def test_serial_runs_with_aborts_at_any_level_show_nothing(seed, txns, level):
    rng = random.Random(seed)
    programs = {}
    for i in range(1, txns + 1):
        k = f"k{rng.randrange(3)}"
        steps = [Read(k), Append(k, i)] if rng.random() < 0.7 else [Append(k, i)]
        programs[f"T{i}"] = (*steps, Abort() if rng.random() < 0.3 else Commit())
    result = run(programs, serial_order(programs), level).result
    assert result.ok, result.explain()


EXPECTED_EXTRA = {Anomaly.LOST_UPDATE: {Anomaly.G2_ITEM}}


@examples(80)
@given(
    anomaly=st.sampled_from(list(GENERATORS)),
    n=st.integers(2, 6),
    noise=st.integers(0, 25),
    seed=st.integers(0, 10**6),
)
def test_each_generator_produces_its_class(anomaly, n, noise, seed):
    history = with_noise(random.Random(seed), anomaly, n, noise)
    result = check(history)
    assert anomaly in result.anomalies, result.explain()
    assert result.anomalies <= {anomaly} | EXPECTED_EXTRA.get(anomaly, set()), result.explain()
    if anomaly in CYCLE_CLASSES:
        finding = result.first(anomaly)
        assert len(finding.cycle) == n  # the generator's ring is the shortest cycle there is
        assert {t for t in finding.txns} <= {t.name for t in history if t.name.startswith("C")}


@examples(40)
@given(seed=st.integers(0, 10**6), level=st.sampled_from(list(Isolation)[:4]))
def test_reported_cycles_are_cycles_of_inferred_edges(seed, level):
    r = random_run(random.Random(seed), level, txns=30, keys=3)
    result = r.result
    edges = {(e.src, e.dst, e.dep, e.key) for e in result.edges}
    for f in result.findings:
        if not f.cycle:
            continue
        for e, nxt in zip(f.cycle, (*f.cycle[1:], f.cycle[0]), strict=True):
            assert e.dst == nxt.src
            assert (e.src, e.dst, e.dep, e.key) in edges
        assert len({e.src for e in f.cycle}) == len(f.cycle)


@examples(30)
@given(seed=st.integers(0, 10**6), level=st.sampled_from(list(Isolation)))
def test_the_order_transactions_are_listed_in_does_not_matter(seed, level):
    history = random_run(random.Random(seed), level, txns=25, keys=3).history
    shuffled: list[Txn] = list(history)
    random.Random(seed + 1).shuffle(shuffled)
    assert check(history).anomalies == check(shuffled).anomalies
