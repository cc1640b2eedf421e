"""How long does the linearizability checker take on realistic random histories?

Cases (seeded, see labkit.linearizability.generate):

* register: 5 client slots on one register, 80 operations of which about 15
  never return, reads/writes/cas over 5 values;
* kv-10 / kv-50: 10 or 50 client slots over 10 keys, 300 to 2,000 operations
  (puts, appends and gets), every one with a known outcome;
* the same key-value cases with unknown outcomes (2% of the operations never
  return, 3% time out): harder, because an append whose outcome is unknown
  may take effect at any later point, and the search must try them all.

The target (every history of the first two kinds decided in under a second
of CPU) is checked and printed at the end; the harder cases are reported
beside it.

Each case is run on linearizable histories (as generated) and on corrupted
copies (one read's output changed), which are often the expensive ones: to
say "no", the search has to exhaust every order. Prints one row per case:
CPU time per history (median, 90th percentile, slowest), how many took more
than a second, the most search steps, and the verdicts.

    .venv/bin/python benchmarks/bench_linearizability.py [--quick]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time

from labkit.linearizability import KVModel, RegisterModel, check
from labkit.linearizability.generate import corrupt, random_history

TIMEOUT = 30.0  # seconds of wall clock before a history counts as undecided


def cases(quick: bool):
    """(name, how many histories, history maker, model, part of the target?)"""
    n = 10 if quick else 40
    yield (
        "register 5 clients, 80 ops, ~15 pending",
        n,
        lambda rng: random_history(rng, model=RegisterModel(), clients=5, ops=80, p_pending=15 / 80),
        RegisterModel(),
        True,
    )
    for unknown in (0.0, 0.05):
        for clients in (10, 50):
            for ops in (300, 2000):
                tail = ", 5% unknown" if unknown else ""
                yield (
                    f"kv {clients} clients, 10 keys, {ops} ops{tail}",
                    max(3, n // 4),
                    (
                        lambda rng, clients=clients, ops=ops, unknown=unknown: random_history(
                            rng,
                            model=KVModel(),
                            clients=clients,
                            ops=ops,
                            p_pending=0.4 * unknown,
                            p_timeout=0.6 * unknown,
                        )
                    ),
                    KVModel(),
                    not unknown,
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer histories per case")
    args = parser.parse_args()
    header = (
        f"{'case':42} {'kind':9} {'n':>3} {'median ms':>9} {'p90 ms':>8} {'max ms':>8} {'>1 s':>4} "
        f"{'max steps':>9}  verdicts"
    )
    print(header)
    print("-" * (len(header) + 22))
    worst = {True: (0.0, ""), False: (0.0, "")}
    over = {True: 0, False: 0}
    for name, n, make, model, in_target in cases(args.quick):
        for kind in ("valid", "corrupted"):
            rng = random.Random(f"{name}/{kind}")
            times, steps = [], []
            verdicts = {True: 0, False: 0, None: 0}
            for _ in range(n):
                history = make(rng)
                if kind == "corrupted":
                    history = corrupt(rng, history)
                # CPU time of this process: the machine is shared, wall time is not ours alone.
                start = time.process_time()
                result = check(history, model, timeout=TIMEOUT)
                elapsed = time.process_time() - start
                times.append(elapsed)
                steps.append(result.steps)
                verdicts[result.ok] += 1
                if kind == "valid" and result.ok is False:
                    print(f"BUG: a generated history was judged {result.verdict}", file=sys.stderr)
                    return 1
                over[in_target] += elapsed > 1.0
                if elapsed > worst[in_target][0]:
                    worst[in_target] = (
                        elapsed,
                        f"{name} ({kind}), {result.steps} steps, {result.verdict.value}",
                    )
            times.sort()
            p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
            summary = f"ok={verdicts[True]} bad={verdicts[False]} undecided={verdicts[None]}"
            print(
                f"{name:42} {kind:9} {n:>3} {statistics.median(times) * 1e3:>9.1f} {p90 * 1e3:>8.1f} "
                f"{times[-1] * 1e3:>8.1f} {sum(t > 1.0 for t in times):>4} {max(steps):>9}  {summary}",
                flush=True,
            )
    for in_target, label in ((True, "target cases"), (False, "with unknown outcomes")):
        ms, what = worst[in_target]
        print(f"\n{label}: slowest {ms * 1e3:.1f} ms CPU ({what}); {over[in_target]} over 1 s")
    print(
        f"target (each history of the target cases decided in under 1 s): {'MET' if not over[True] else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
