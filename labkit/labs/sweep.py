"""Hunting rare bugs: one scenario over thousands of seeds, in parallel.

A bug that shows on one seed in ten thousand needs ten thousand trials.
:func:`sweep` runs them in batches in worker processes (the local cores by
default) or on a Dask cluster (pass a ``distributed.Client``), with a progress
bar, and returns the failing seeds as a pandas DataFrame, one row each: the
seed, the property that broke, what was seen, when, and the size of the
schedule. Each seed's trial is the same as in the suite, so any row can be
shrunk and drawn with :meth:`Lab.replay <labkit.labs.Lab.replay>`.

Worker processes are forked where the platform allows it, so a server class
defined in a notebook reaches them without being importable (the child starts
as a copy of the notebook's kernel). Elsewhere, and on Dask, the class travels
pickled (Dask's cloudpickle sends a notebook's class by value).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from labkit import validation as valid
from labkit.labs.core import Lab, Scenario, seed_list

__all__ = ["sweep", "run_batch", "COLUMNS"]

COLUMNS = ["scenario", "seed", "property", "detail", "node", "time", "faults", "events"]

# What a forked worker runs: set in the parent just before the pool starts (inherited by fork).
_JOB: tuple[Lab, str, Any] | None = None


def run_batch(
    lab: Lab, scenario: str, node: Any, seeds: list[int]
) -> tuple[list[dict[str, Any]], int, float]:
    """Run ``scenario`` on each of ``seeds``; the failures as rows, the trials run and their virtual time."""
    rows: list[dict[str, Any]] = []
    virtual = 0.0
    for seed in seeds:
        _, outcome = lab.trial(scenario, node, seed)
        virtual += outcome.virtual_time
        v = outcome.violation
        if v is not None:
            rows.append(
                {
                    "scenario": scenario,
                    "seed": seed,
                    "property": v.property.name,
                    "detail": v.detail,
                    "node": v.node,
                    "time": v.time,
                    "faults": len(outcome.faults),
                    "events": outcome.events,
                }
            )
    return rows, len(seeds), virtual


def _run_forked(seeds: list[int]) -> tuple[list[dict[str, Any]], int, float]:
    assert _JOB is not None, "the sweep's job was not inherited by this worker"
    lab, scenario, node = _JOB
    return run_batch(lab, scenario, node, seeds)


def _batches(seeds: list[int], size: int) -> list[list[int]]:
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def _frame(rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values("seed", kind="stable").reset_index(drop=True)


def sweep(
    lab: Lab,
    scenario: str | Scenario,
    node: Any,
    seeds: int | Iterable[int] = 1000,
    *,
    workers: int | None = None,
    client: Any = None,
    batch: int | None = None,
    progress: bool = True,
) -> Any:
    """Run ``scenario`` on every seed; the failing seeds as a DataFrame (``COLUMNS``).

    ``seeds``: a count (0..n-1) or the seeds themselves. ``workers``: worker
    processes (default: the machine's cores; 1 runs here, in this process).
    ``client``: a ``distributed.Client`` to run the batches on a Dask cluster
    instead. ``batch``: seeds per task (default: enough for about four tasks
    per worker). ``df.attrs`` holds ``seeds`` (trials run), ``virtual_time``,
    ``wall`` (seconds) and ``workers``.
    """
    name = scenario.name if isinstance(scenario, Scenario) else lab.scenario(scenario).name
    seeds_ = seed_list(seeds, 1000)
    if workers is None:
        workers = os.cpu_count() or 1
    workers = valid.integer("workers", workers, ge=1, le=256)
    if client is not None and not hasattr(client, "submit"):
        raise valid.ArgumentTypeError(f"client must be a dask.distributed Client, got {valid.shown(client)}")
    if client is not None:
        workers = max(1, sum(client.ncores().values()))
    if batch is None:
        batch = max(1, min(200, -(-len(seeds_) // (4 * workers))))
    batch = valid.integer("batch", batch, ge=1)
    parts = _batches(seeds_, batch)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds_), desc=f"sweep · {name}", unit="seed")
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    virtual = 0.0

    def collect(result: tuple[list[dict[str, Any]], int, float]) -> None:
        nonlocal virtual
        found, count, seconds = result
        rows.extend(found)
        virtual += seconds
        if bar is not None:
            bar.update(count)
            if rows:
                bar.set_postfix(failing=len(rows))

    try:
        if client is not None:
            _on_dask(client, lab, name, node, parts, collect)
        elif workers == 1:
            for part in parts:
                collect(run_batch(lab, name, node, part))
        else:
            _on_processes(lab, name, node, parts, workers, collect)
    finally:
        if bar is not None:
            bar.close()
    df = _frame(rows)
    df.attrs.update(
        seeds=len(seeds_), virtual_time=virtual, wall=time.perf_counter() - started, workers=workers
    )
    return df


def _on_processes(lab: Lab, name: str, node: Any, parts: list[list[int]], workers: int, collect: Any) -> None:
    global _JOB
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods:
        _JOB = (lab, name, node)
        context = multiprocessing.get_context("fork")
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                _drain(pool, [(_run_forked, (part,)) for part in parts], collect)
        finally:
            _JOB = None
    else:  # spawn: the node class must be importable (defined in a module, not a notebook)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            _drain(pool, [(run_batch, (lab, name, node, part)) for part in parts], collect)


def _drain(pool: ProcessPoolExecutor, tasks: list[tuple[Any, tuple]], collect: Any) -> None:
    """Submit the tasks a few at a time per worker, collecting results as they come."""
    pending: set[Future] = set()
    todo = list(reversed(tasks))
    limit = 2 * (pool._max_workers or 1)  # noqa: SLF001 - the pool's own size
    while todo or pending:
        while todo and len(pending) < limit:
            fn, args = todo.pop()
            pending.add(pool.submit(fn, *args))
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for f in done:
            collect(f.result())


def _on_dask(client: Any, lab: Lab, name: str, node: Any, parts: list[list[int]], collect: Any) -> None:
    from distributed import as_completed

    futures = [client.submit(run_batch, lab, name, node, part, pure=False) for part in parts]
    for future in as_completed(futures):
        collect(future.result())
