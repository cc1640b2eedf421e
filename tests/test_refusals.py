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
