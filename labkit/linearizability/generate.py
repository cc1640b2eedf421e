"""Random concurrent histories of a correct object, and corrupted copies.

A history from :func:`random_history` is linearizable by construction: each
operation is given a hidden point inside its interval and the outputs are
those of a sequential run in the order of the points (the definition of
Herlihy & Wing 1990, §2, run backwards). Clients work like Jepsen's: each
client slot issues one request at a time; a request may time out
(``output=UNKNOWN``) or never return (``ret=math.inf``), and then the slot
carries on as a new client id, since the old one may still be waiting.
:func:`corrupt` changes one observed output, which usually (not always)
makes the history non-linearizable.

Used by the benchmarks, the tests and the notebooks. Randomness comes only
from the ``random.Random`` passed in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from labkit import validation as valid
from labkit.linearizability.history import UNKNOWN, Operation
from labkit.linearizability.models import KVModel, Model, RegisterModel

InputFn = Callable[[random.Random], tuple]


def register_inputs(values: int = 5) -> InputFn:
    """Reads (50%), writes (40%) and compare-and-sets (10%) over ``values`` small ints."""

    def make(rng: random.Random) -> tuple:
        u = rng.random()
        if u < 0.5:
            return ("read",)
        if u < 0.9:
            return ("write", rng.randrange(values))
        return ("cas", rng.randrange(values), rng.randrange(values))

    return make


def kv_inputs(keys: int = 10) -> InputFn:
    """Gets (50%), puts (25%) and appends (25%) over ``keys`` keys."""

    def make(rng: random.Random) -> tuple:
        key = f"k{rng.randrange(keys)}"
        u = rng.random()
        if u < 0.5:
            return ("get", key)
        return ("put" if u < 0.75 else "append", key, str(rng.randrange(10)))

    return make


def random_history(
    rng: random.Random,
    *,
    model: Model | None = None,
    inputs: InputFn | None = None,
    clients: int = 5,
    ops: int = 80,
    p_pending: float = 0.0,
    p_timeout: float = 0.0,
    mean_latency: float = 1.0,
) -> list[Operation]:
    """A linearizable history of ``ops`` operations by ``clients`` concurrent client slots.

    ``inputs`` draws one operation input (default: register operations, or
    key-value ones when ``model`` is a :class:`KVModel`). Each operation
    never returns with probability ``p_pending`` and times out with
    probability ``p_timeout``; such an operation takes effect with
    probability 1/2 (possibly after the timeout).
    """
    valid.instance("rng", rng, random.Random)
    model = RegisterModel() if model is None else model
    if inputs is None:
        inputs = kv_inputs() if isinstance(model, KVModel) else register_inputs()
    valid.integer("clients", clients, ge=1, le=10_000)
    valid.integer("ops", ops, ge=0, le=1_000_000)
    valid.probability("p_pending", p_pending)
    valid.probability("p_timeout", p_timeout)
    valid.number("mean_latency", mean_latency, gt=0, unit="seconds")

    free_at = [rng.uniform(0, mean_latency) for _ in range(clients)]
    client_id = list(range(clients))
    next_id = clients
    history: list[Operation] = []  # outputs still UNKNOWN: they come from the run below
    points: list[float | None] = []  # when each takes effect (its linearization point); None if never
    done: list[bool] = []  # whether its client learned the output
    for _ in range(ops):
        slot = min(range(clients), key=free_at.__getitem__)
        call = free_at[slot]
        took = rng.expovariate(1 / mean_latency)
        u = rng.random()
        fate = "pending" if u < p_pending else "timeout" if u < p_pending + p_timeout else "done"
        point: float | None = call + rng.random() * took
        if fate != "done" and rng.random() < 0.5:
            point = None  # never took effect
        elif fate != "done":
            point = call + rng.random() * 3 * took  # may land after the client gave up
        ret = math.inf if fate == "pending" else call + took
        history.append(Operation(client_id[slot], call, ret, inputs(rng)))
        points.append(point)
        done.append(fate == "done")
        free_at[slot] = call + took + rng.expovariate(4 / mean_latency)
        if fate != "done":
            client_id[slot] = next_id  # the old client may still be waiting
            next_id += 1

    # Outputs of one sequential run in the order of the hidden points, per part.
    states: dict[Any, Any] = {}
    outputs: dict[int, Any] = {}
    effective = [k for k, point in enumerate(points) if point is not None]
    for k in sorted(effective, key=points.__getitem__):
        input = history[k].input
        part = model.partition(input)
        outputs[k], states[part] = model.apply(states.get(part, model.init()), input)
    return [replace(op, output=outputs[k]) if done[k] else op for k, op in enumerate(history)]


def corrupt(rng: random.Random, history: list[Operation]) -> list[Operation]:
    """A copy of ``history`` with one read's output swapped for another read's different output."""
    valid.instance("rng", rng, random.Random)
    reads = [i for i, op in enumerate(history) if op.output is not UNKNOWN and op.input[0] in ("read", "get")]
    if not reads:
        raise ValueError("history has no read with a known output to corrupt")
    i = rng.choice([j for j in reads if history[j].output is not None] or reads)
    # Another output the same read gave somewhere in the history, else an impossible one.
    seen = {repr(op.output): op.output for op in history if op.input == history[i].input}
    choices = sorted((v for v in seen.values() if v is not UNKNOWN and v != history[i].output), key=repr)
    if not choices:
        choices = ["corrupted"] if isinstance(history[i].output, str) else [-1]
    out = list(history)
    out[i] = replace(history[i], output=rng.choice(choices))
    return out
