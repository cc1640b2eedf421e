"""Metrics over time: counters and gauges in fixed time buckets.

Services and clients report into these recorders as things happen (as a
process would export metrics to a monitoring system; the recorders are not
part of a node's state and survive its crash). :func:`service_frame` and
:func:`client_frame` turn them into pandas DataFrames, one row per time
bucket and service (or request kind), with rates in events per second.
Gauges (queue depth, busy workers) are integrated over time, so a bucket's
value is the exact time average, not a sample.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from labkit import validation as valid

# Counter slots of a service bucket.
ARRIVED, OK, GOOD, ERRORS, REJECTED, EXPIRED, CALLS, ATTEMPTS, RETRIES, TIMEOUTS, FAST_FAILS = range(11)
_NCOUNT = 11


def _check_bucket(bucket: float) -> float:
    return valid.number("bucket", bucket, gt=0, unit="seconds")


class ServiceStats:
    """What one service did, per time bucket of ``bucket`` seconds."""

    __slots__ = (
        "name",
        "bucket",
        "counts",
        "latencies",
        "areas",
        "breakers",
        "_t",
        "_queue",
        "_busy",
        "_workers",
    )

    def __init__(self, name: str, bucket: float, workers: int) -> None:
        self.name = name
        self.bucket = _check_bucket(bucket)
        self.counts: defaultdict[int, list[int]] = defaultdict(lambda: [0] * _NCOUNT)
        self.latencies: dict[int, list[float]] = {}
        # bucket -> [queue area, busy area, workers area] in item-seconds
        self.areas: defaultdict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        # (dependency, since, breaker): every breaker this service ever had, in
        # order; breaker None from the moment the dependency had none any more
        # (breakers switched off, or the service crashed)
        self.breakers: list[tuple[str, float, Any]] = []
        self._t = 0.0
        self._queue = 0
        self._busy = 0
        self._workers = workers

    def row(self, now: float) -> list[int]:
        """The counters of the bucket holding time ``now`` (created on demand)."""
        return self.counts[int(now / self.bucket)]

    def retire_breakers(self, now: float) -> None:
        """From ``now`` on, the service's current breakers no longer guard its calls."""
        latest = {dep: breaker for dep, _since, breaker in self.breakers}
        for dep, breaker in latest.items():
            if breaker is not None:
                self.breakers.append((dep, now, None))

    def latency(self, now: float, seconds: float) -> None:
        self.latencies.setdefault(int(now / self.bucket), []).append(seconds)

    def gauges(self, now: float, queue: int, busy: int, workers: int) -> None:
        """The gauges changed at ``now``: close the area of the old values."""
        t = self._t
        if now > t:
            b = self.bucket
            q, k, w = self._queue, self._busy, self._workers
            areas = self.areas
            while t < now:  # one bucket at a time (usually just the one holding t)
                i = int(t / b)
                end = min(now, (i + 1) * b)
                if end <= t:  # float rounding at a bucket edge
                    end = min(now, (i + 2) * b)
                    i += 1
                dt = end - t
                a = areas[i]
                a[0] += q * dt
                a[1] += k * dt
                a[2] += w * dt
                t = end
            self._t = now
        self._queue, self._busy, self._workers = queue, busy, workers


class ClientStats:
    """What the clients saw, per request kind and time bucket."""

    __slots__ = ("bucket", "sent", "good", "late", "errors", "latencies", "outstanding", "kinds")

    def __init__(self, bucket: float) -> None:
        self.bucket = _check_bucket(bucket)
        self.sent: dict[tuple[str, int], int] = {}
        self.good: dict[tuple[str, int], int] = {}  # answered OK before the deadline
        self.late: dict[tuple[str, int], int] = {}  # answered OK after the deadline
        self.errors: dict[tuple[str, int], int] = {}  # answered with an error
        self.latencies: dict[tuple[str, int], list[float]] = {}
        # rid -> (kind, sent_at, deadline); requests not yet answered
        self.outstanding: dict[int, tuple[str, float, float]] = {}
        self.kinds: list[str] = []

    def on_send(self, rid: int, kind: str, now: float, deadline: float) -> None:
        key = (kind, int(now / self.bucket))
        self.sent[key] = self.sent.get(key, 0) + 1
        self.outstanding[rid] = (kind, now, deadline)
        if kind not in self.kinds:
            self.kinds.append(kind)

    def on_response(self, rid: int, ok: bool, now: float) -> None:
        entry = self.outstanding.pop(rid, None)
        if entry is None:
            return
        kind, sent_at, deadline = entry
        key = (kind, int(now / self.bucket))
        if not ok:
            self.errors[key] = self.errors.get(key, 0) + 1
            return
        table = self.good if now <= deadline else self.late
        table[key] = table.get(key, 0) + 1
        self.latencies.setdefault(key, []).append(now - sent_at)


def _percentile(values: list[float] | None, q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    # Linear interpolation between closest ranks (numpy's default).
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def service_frame(stats: list[ServiceStats], until: float) -> Any:
    """One row per (bucket, service) up to virtual time ``until``.

    Columns: ``time`` (bucket start, s), ``service``, ``offered`` (arrivals/s),
    ``goodput`` (OK replies within the request's deadline, when the service
    knew one, per s), ``errors`` (error replies/s, sheds included),
    ``error_rate`` (error replies / all replies), ``shed`` (rejected/s),
    ``expired`` (dropped for a passed deadline, /s), ``p50``/``p99`` (seconds
    from arrival to reply), ``queue_depth`` and ``busy`` (time averages),
    ``utilisation`` (busy / workers; above 1 for a while after workers are
    taken away, as requests already running finish first), ``calls``/``attempts``/``retries``/
    ``timeouts``/``fast_fails`` (downstream, per s) and ``amplification``
    (attempts / calls: 1.0 means no retries).
    """
    import pandas as pd

    rows = []
    for st in stats:
        b = st.bucket
        n = max(1, math.ceil(until / b - 1e-9))
        for i in range(n):
            c = st.counts.get(i) or [0] * _NCOUNT
            a = st.areas.get(i) or [0.0, 0.0, 0.0]
            lat = st.latencies.get(i)
            replies = c[OK] + c[ERRORS]
            rows.append(
                {
                    "time": i * b,
                    "service": st.name,
                    "offered": c[ARRIVED] / b,
                    "goodput": c[GOOD] / b,
                    "errors": c[ERRORS] / b,
                    "error_rate": c[ERRORS] / replies if replies else math.nan,
                    "shed": c[REJECTED] / b,
                    "expired": c[EXPIRED] / b,
                    "p50": _percentile(lat, 0.5),
                    "p99": _percentile(lat, 0.99),
                    "queue_depth": a[0] / b,
                    "busy": a[1] / b,
                    "utilisation": a[1] / a[2] if a[2] else math.nan,
                    "calls": c[CALLS] / b,
                    "attempts": c[ATTEMPTS] / b,
                    "retries": c[RETRIES] / b,
                    "timeouts": c[TIMEOUTS] / b,
                    "fast_fails": c[FAST_FAILS] / b,
                    "amplification": c[ATTEMPTS] / c[CALLS] if c[CALLS] else math.nan,
                }
            )
    return pd.DataFrame(rows)


def client_frame(stats: ClientStats, until: float) -> Any:
    """One row per (bucket, kind): ``offered``, ``goodput``, ``late``, ``errors``,
    ``timed_out`` (no answer by the deadline), all per second, ``success_rate``
    (goodput / offered) and ``p50``/``p99`` latency of OK answers (s)."""
    import pandas as pd

    b = stats.bucket
    n = max(1, math.ceil(until / b - 1e-9))
    timed_out: dict[tuple[str, int], int] = {}
    for kind, _sent_at, deadline in stats.outstanding.values():
        if deadline <= until:
            key = (kind, int(deadline / b))
            timed_out[key] = timed_out.get(key, 0) + 1
    rows = []
    for kind in stats.kinds:
        for i in range(n):
            key = (kind, i)
            sent = stats.sent.get(key, 0)
            good = stats.good.get(key, 0)
            lat = stats.latencies.get(key)
            rows.append(
                {
                    "time": i * b,
                    "kind": kind,
                    "offered": sent / b,
                    "goodput": good / b,
                    "late": stats.late.get(key, 0) / b,
                    "errors": stats.errors.get(key, 0) / b,
                    "timed_out": timed_out.get(key, 0) / b,
                    "success_rate": good / sent if sent else math.nan,
                    "p50": _percentile(lat, 0.5),
                    "p99": _percentile(lat, 0.99),
                }
            )
    return pd.DataFrame(rows)


def breaker_frame(stats: list[ServiceStats], until: float, bucket: float) -> Any:
    """Breaker state per bucket and (service, dependency): ``time``, ``service``,
    ``dependency``, ``state`` (at the end of the bucket), ``level`` (0 closed,
    1 half-open, 2 open) and ``open_fraction`` (share of the bucket not closed).
    A breaker built anew (after a restart or a policy change) starts closed;
    while a dependency has no breaker (switched off, or the service is down)
    its state is "closed" too: nothing refuses the calls. A retired breaker's
    late transitions (stale outcomes of calls it admitted) are not shown."""
    import pandas as pd

    levels = {"closed": 0, "half_open": 1, "open": 2}
    rows = []
    n = max(1, math.ceil(until / bucket - 1e-9))
    for st in stats:
        deps = list(dict.fromkeys(dep for dep, _, _ in st.breakers))
        for dep in deps:
            entries = [(since, breaker) for d, since, breaker in st.breakers if d == dep]
            changes: list[tuple[float, str]] = []
            for j, (since, breaker) in enumerate(entries):
                retired = entries[j + 1][0] if j + 1 < len(entries) else math.inf
                changes.append((since, "closed"))
                if breaker is not None:
                    changes.extend((t.time, t.target.value) for t in breaker.transitions if t.time < retired)
            changes.sort(key=lambda c: c[0])  # stable: creation precedes its own transitions
            state, k = "closed", 0
            for i in range(n):
                start, end = i * bucket, (i + 1) * bucket
                t, not_closed = start, 0.0
                while k < len(changes) and changes[k][0] <= end:
                    if state != "closed":
                        not_closed += changes[k][0] - t
                    t, state = max(t, changes[k][0]), changes[k][1]
                    k += 1
                if state != "closed":
                    not_closed += end - t
                rows.append((start, st.name, dep, state, levels[state], not_closed / bucket))
    return pd.DataFrame(rows, columns=["time", "service", "dependency", "state", "level", "open_fraction"])
