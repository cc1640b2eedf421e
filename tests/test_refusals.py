"""Nothing hangs, nothing overflows: input that used to hang, crash or be accepted silently.

Each test is one report of an adversarial user (issue 21), now refused up front with a
``ValueError`` / ``TypeError`` naming the argument, or made to work in proportionate time.
"""

from __future__ import annotations

import math

import pytest

from labkit.clocks import Chatter, run_chatter


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"duration": None}, "duration must be a finite number of seconds >= 0"),
        ({"duration": math.inf}, "duration must be a finite number of seconds >= 0"),
        ({"rate": math.inf}, "rate must be a finite number of events per second > 0"),
        ({"n_nodes": 26, "rate": 1e6, "duration": 1e3}, r"n_nodes \* rate \* duration must be <= 1,000,000"),
    ],
)
def test_run_chatter_refuses_runs_that_never_end(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_chatter(**kwargs)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("n1", 0.0), "rate"),
        (("n1", math.inf), "rate"),
        (("n1", 5.0, 1.5), "send_prob"),
        (("n1", "5"), "rate"),
    ],
)
def test_chatter_checks_its_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        Chatter(*args)


# ---------------------------------------------------------------- resilience and sagas
def test_one_retry_policy_for_sagas_and_resilience():
    import labkit.resilience
    import labkit.saga

    assert labkit.saga.RetryPolicy is labkit.resilience.RetryPolicy


def test_a_compensation_retried_for_ever_does_not_overflow():
    from labkit.saga import SAGA_RETRY

    # The saga's old policy computed backoff * 2**(attempt - 1): OverflowError at attempt 1100.
    assert SAGA_RETRY.delay(1100) == SAGA_RETRY.delay(10**6) == SAGA_RETRY.backoff.cap == 1.6
    import random

    from labkit.saga import RetryPolicy

    assert 0 <= RetryPolicy().delay(1100, random.Random(0)) <= RetryPolicy().backoff.cap
    with pytest.raises(TypeError, match="rng must be a random.Random: full jitter draws random numbers"):
        RetryPolicy().delay(1100)


@pytest.mark.parametrize("field", ["timeout", "base", "cap"])
def test_saga_retry_policy_refuses_infinity(field):
    from labkit.resilience import Backoff, Jitter, RetryPolicy

    with pytest.raises(ValueError, match=f"{field} must be a finite number of seconds"):
        if field == "timeout":
            RetryPolicy(timeout=math.inf)
        else:
            RetryPolicy(backoff=Backoff(**{"base": 0.1, "cap": 1.6, field: math.inf}, jitter=Jitter.NONE))


def test_the_orchestrator_refuses_a_policy_it_cannot_follow():
    from labkit.resilience import Backoff, RetryPolicy
    from labkit.saga import run_order_saga

    with pytest.raises(ValueError, match="policy.timeout must be a number of seconds > 0"):
        run_order_saga(policy=RetryPolicy())
    with pytest.raises(
        ValueError, match="policy.backoff must be a Backoff with base > 0 and jitter=Jitter.NONE"
    ):
        run_order_saga(policy=RetryPolicy(timeout=0.3, backoff=Backoff()))  # full jitter
    with pytest.raises(ValueError, match="policy.backoff"):
        run_order_saga(policy=RetryPolicy(timeout=0.3, backoff=None))  # would retry at once, for ever


def test_load_shedder_refuses_zero_workers_instead_of_dividing_by_zero():
    from labkit.resilience import LoadShedder

    with pytest.raises(ValueError, match="workers must be an int >= 1, got 0"):
        LoadShedder().admit(0.0, 3, 0, 1.0, 0.01)


def test_chain_model_run_refuses_an_endless_run():
    from labkit.resilience import ChainModel

    with pytest.raises(ValueError, match="until must be a finite number of seconds"):
        ChainModel().run(None)
    with pytest.raises(ValueError, match="until must be a finite number of seconds"):
        ChainModel().run(math.inf)
    with pytest.raises(ValueError, match=r"until must be at most 2,000,000 requests ahead"):
        ChainModel().run(1e9)
    m = ChainModel().run(1.0)
    with pytest.raises(ValueError, match="not before now"):
        m.run(0.5)


def test_overload_refuses_until_none():
    from labkit.resilience import make_policies
    from labkit.resilience.scenarios import overload

    with pytest.raises(ValueError, match="until must be a finite number of seconds"):
        overload(make_policies(), until=None)


@pytest.mark.parametrize("until", [-1, 0, math.nan, math.inf, None])
def test_run_order_saga_refuses_a_run_that_cannot_finish(until):
    from labkit.saga import run_order_saga

    with pytest.raises(ValueError, match="until must be a finite number of seconds > 0"):
        run_order_saga(until=until)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"participants": ()}, "participants must be a non-empty sequence of node ids"),
        ({"participants": ("a", "a")}, "participants must be distinct"),
        ({"participants": ("a", 3)}, r"participants\[1\] must be a non-empty str"),
        ({"vote_timeout": 0}, "vote_timeout must be a finite number of seconds > 0"),
        ({"resend_every": math.inf}, "resend_every must be a finite number of seconds > 0"),
        ({"crash": "before"}, "crash must be a CoordinatorCrash"),
    ],
)
def test_two_phase_coordinator_checks_its_arguments(kwargs, match):
    from labkit.saga import TwoPhaseCoordinator

    with pytest.raises(ValueError, match=match):
        TwoPhaseCoordinator("coordinator", **kwargs)


# ---------------------------------------------------------------- raft
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": 0}, "step must be a finite number of seconds > 0"),
        ({"timeout": math.inf}, "timeout must be a finite number of seconds > 0"),
        ({"timeout": math.nan}, "timeout must be a finite number of seconds > 0"),
        ({"step": -1}, "step must be a finite number of seconds > 0"),
    ],
)
def test_run_until_refuses_a_wait_that_never_ends(kwargs, match):
    from labkit.raft import RaftCluster

    with pytest.raises(ValueError, match=match):
        RaftCluster().run_until(lambda: False, **kwargs)


def test_raft_log_refuses_terms_that_go_down():
    from labkit.raft import LogEntry, RaftLog

    log = RaftLog([LogEntry(1, "a"), LogEntry(3, "b")])
    with pytest.raises(
        ValueError, match=r"entries\[0\].term must be >= 3 \(terms never go down along a log\)"
    ):
        log.append([LogEntry(2, "c")])
    with pytest.raises(ValueError, match=r"entries\[1\].term must be >= 2"):
        RaftLog([LogEntry(2, "a"), LogEntry(1, "b")])
    with pytest.raises(TypeError, match="entries must be a sequence of LogEntry"):
        log.append(LogEntry(4, "d"))
    log.append([LogEntry(3, "c"), LogEntry(4, "d")])
    assert log.terms() == [1, 3, 3, 4]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda r: r.RaftNode(3, ("n2",)), "node_id must be a non-empty str"),
        (lambda r: r.RaftNode("n1", "n2n3"), "peers must be a collection of server ids"),
        (lambda r: r.RaftNode("n1", ("n2",), config="fast"), "config must be a RaftConfig"),
        (lambda r: r.KVClient("c", "n1", []), "servers must be a tuple"),
        (lambda r: r.KVClient("c", ("n1",), [], retry_timeout=0), "retry_timeout must be a finite number"),
        (lambda r: r.KVClient("c", ("n1",), [], reads_anywhere=1), "reads_anywhere must be True or False"),
        (lambda r: r.LogEntry(-1, "x"), "term must be an int >= 0"),
        (lambda r: r.LogEntry("1", "x"), "term must be an int >= 0"),
        (lambda r: r.Progress(0), "next_index must be an int >= 1"),
    ],
)
def test_low_level_raft_constructors_check_their_arguments(build, match):
    import labkit.raft

    with pytest.raises(ValueError, match=match):
        build(labkit.raft)


# ---------------------------------------------------------------- widgets
def test_cap_widget_refuses_a_hundred_thousand_nodes_at_once():
    import time

    from labkit.viz.replication import CapWidget

    w = CapWidget()
    start = time.process_time()
    with pytest.raises(ValueError, match="nodes must be an int from"):
        w.set(nodes=10**5)
    assert time.process_time() - start < 1.0
