"""How fast does the service model simulate? (notebook 17's widget re-runs it on every click)

Target: 1,000 requests/s through the A -> B -> C chain for 60 s of virtual
time in under 5 s of CPU time. Prints one table row per policy set and C
fault, whether each run met the target, and a verdict line; then the
slowest setting once more with the simulator's trace kept (as
``ChainModel(trace=True)``), against the same run without it. With
``--profile`` also the top of a cProfile of one run, to show whether
the time goes to labkit.sim or to labkit.resilience.

    .venv/bin/python benchmarks/bench_resilience.py [--seconds 60] [--rate 1000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from labkit.resilience import ChainModel, Fault, ServiceSpec, make_policies
from labkit.sim import Exponential


def chain() -> dict[str, ServiceSpec]:
    # Sized so that 1,000 req/s is about half of every service's capacity.
    return {
        "A": ServiceSpec(workers=128, latency=Exponential(0.002, minimum=0.002), calls={"checkout": ("B",)}),
        "B": ServiceSpec(workers=128, latency=Exponential(0.003, minimum=0.002), calls={"checkout": ("C",)}),
        "C": ServiceSpec(workers=48, latency=Exponential(0.01, minimum=0.01)),
    }


POLICIES = {
    "none": make_policies(),
    "timeouts+deadlines": make_policies(timeouts=True, deadlines=True),
    "all": make_policies(
        timeouts=True,
        deadlines=True,
        retries=True,
        budget=True,
        breaker=True,
        bulkhead=True,
        shedding=True,
        bulkhead_limit=64,
    ),
}


TARGET_RATE = 1000.0  # requests/s
TARGET_SECONDS = 60.0  # virtual
TARGET_CPU = 5.0  # seconds of CPU time per run


def run(policies, seconds: float, rate: float, fault: bool, trace: bool = False) -> ChainModel:
    m = ChainModel(1, rate=rate, mix={"checkout": 1.0}, services=chain(), policies=policies, trace=trace)
    if fault:  # C slow for the middle third
        m.at(seconds / 3, lambda m: m.set_fault("C", Fault.SLOW))
        m.at(2 * seconds / 3, lambda m: m.set_fault("C", Fault.NONE))
    return m.run(seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    at_target = args.rate >= TARGET_RATE and args.seconds >= TARGET_SECONDS
    print(f"{args.rate:g} req/s for {args.seconds:g} s virtual (target: < {TARGET_CPU:g} s CPU per run)")
    print(
        f"{'policies':<20} {'C fault':<8} {'CPU s':>7} {'events':>10} {'us/event':>8} {'requests':>9} "
        f"{'goodput/s':>10} {'target':>7}"
    )
    cpus = []
    for name, pol in POLICIES.items():
        for fault in (False, True):
            t0 = time.process_time()
            m = run(pol, args.seconds, args.rate, fault)
            cpu = time.process_time() - t0
            cpus.append(cpu)
            events = m.events
            sent = sum(m.client_stats.sent.values())
            print(
                f"{name:<20} {'slow' if fault else 'none':<8} {cpu:7.2f} {m.events:10d} {1e6 * cpu / events:8.2f} "
                f"{sent:9d} {m.goodput():10.1f} {('met' if cpu < TARGET_CPU else 'MISSED') if at_target else '-':>7}"
            )
    target = (
        f"target ({TARGET_RATE:,.0f} req/s through the 3-service chain for {TARGET_SECONDS:g} s virtual "
        f"in < {TARGET_CPU:g} s CPU)"
    )
    if not at_target:
        print(f"{target}: not checked at {args.rate:g} req/s for {args.seconds:g} s; run with the defaults")
    else:
        met = sum(cpu < TARGET_CPU for cpu in cpus)
        verdict = "MET" if met == len(cpus) else "NOT MET"
        print(f"{target}: {verdict} ({met} of {len(cpus)} runs; worst {max(cpus):.2f} s CPU)")
    # The model keeps no trace by default; what would keeping one cost?
    worst = max(range(len(cpus)), key=cpus.__getitem__)
    name, fault = list(POLICIES)[worst // 2], bool(worst % 2)
    t0 = time.process_time()
    traced = run(POLICIES[name], args.seconds, args.rate, fault, trace=True)
    cpu_traced = time.process_time() - t0
    print(
        f"{name}, C fault {'slow' if fault else 'none'}, trace kept: {cpu_traced:.2f} s CPU for "
        f"{len(traced.sim.trace):,} trace rows, {cpu_traced / cpus[worst]:.2f}x the same run without a trace"
    )
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run(POLICIES["all"], args.seconds, args.rate, False)
        prof.disable()
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(15)
        # Own time per package: is the simulator or the service model the bottleneck?
        shares: dict[str, float] = {}
        for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            key = next(
                (k for k in ("labkit/sim", "labkit/resilience") if k in filename),
                "other (heapq, random, ...)",
            )
            shares[key] = shares.get(key, 0.0) + tottime
        total = sum(shares.values())
        for key, t in sorted(shares.items(), key=lambda kv: -kv[1]):
            print(f"{key:<28} {t:6.2f} s own time under the profiler ({100 * t / total:4.1f}%)")


if __name__ == "__main__":
    main()
