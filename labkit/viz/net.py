"""Pictures of runs on real processes (notebook 13).

* :func:`latency_figure`: a histogram of measured latencies with the median
  and the 99th percentile marked;
* :func:`run_timeline`: what the clients got, second by second, while the
  nemesis struck: completed operations per bin (by kind), operations that
  ended unknown (when their client gave up), and every fault as a labelled vertical line.

The history itself is drawn by :func:`labkit.viz.linearizability.history_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from labkit.viz.common import BAD_COLOR, MUTED_COLOR, PALETTE, style_figure

__all__ = ["latency_figure", "run_timeline", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``."""
    if not values:
        raise ValueError("values must not be empty")
    if not 0 < q <= 1:
        raise ValueError(f"q must be in (0, 1], got {q!r}")
    xs = sorted(values)
    return xs[max(0, math.ceil(q * len(xs)) - 1)]


def latency_figure(latencies: Sequence[float], *, title: str = "Put latency over loopback") -> Any:
    """Histogram of ``latencies`` (seconds), in milliseconds, with p50 and p99 marked."""
    import plotly.graph_objects as go

    ms = [x * 1e3 for x in latencies]
    fig = go.Figure(go.Histogram(x=ms, nbinsx=60, marker_color=PALETTE[0], name="puts"))
    for q, dash in ((0.5, "dash"), (0.99, "dot")):
        v = percentile(ms, q)
        fig.add_vline(x=v, line_dash=dash, line_color=BAD_COLOR if q > 0.5 else "#333333")
        fig.add_annotation(
            x=v, y=1, yref="paper", text=f"p{round(q * 100)} = {v:.2f} ms", showarrow=False, xanchor="left",
            yanchor="bottom" if q == 0.5 else "top",
        )  # fmt: skip
    style_figure(fig, title=title, xaxis="latency (ms)", yaxis="puts", height=360)
    return fig


def run_timeline(run: Any, *, bin_width: float = 0.2, title: str | None = None) -> Any:
    """Operations completed per second, by kind, and unknown outcomes, with the faults marked."""
    import plotly.graph_objects as go

    hist = run.history
    if not hist:
        raise ValueError("the run recorded no operation")
    t0 = min(r.call for r in hist)
    t1 = max(t for r in hist for t in (r.ret, r.gave_up) if math.isfinite(t))
    bins = max(1, math.ceil((t1 - t0) / bin_width))
    xs = [t0 + (i + 0.5) * bin_width for i in range(bins)]
    fig = go.Figure()
    for k, kind in enumerate(("get", "put", "append")):
        counts = [0] * bins
        for r in hist:
            if r.done and r.input[0] == kind:
                counts[min(bins - 1, int((r.ret - t0) / bin_width))] += 1
        if any(counts):
            fig.add_trace(
                go.Bar(x=xs, y=[c / bin_width for c in counts], name=f"{kind} ok", marker_color=PALETTE[k])
            )
    unknown = [0] * bins
    for r in hist:
        if not r.done and math.isfinite(r.gave_up):
            unknown[min(bins - 1, int((r.gave_up - t0) / bin_width))] += 1
    fig.add_trace(
        go.Bar(x=xs, y=[c / bin_width for c in unknown], name="unknown outcome", marker_color=MUTED_COLOR)
    )
    for t, kind, arg in run.events:
        label = kind if arg is None else f"{kind} {_short(arg)}"
        fig.add_vline(x=t, line_dash="dot", line_color=BAD_COLOR)
        fig.add_annotation(x=t, y=1, yref="paper", text=label, showarrow=False, textangle=-90,
                           xanchor="right", yanchor="top", font={"size": 10, "color": BAD_COLOR},
                           bgcolor="rgba(255,255,255,0.85)")  # readable over a bar  # fmt: skip
    fig.update_layout(barmode="stack", bargap=0.05)
    if title is None:
        c = run.counts()
        title = f"{c['ok']} operations completed, {c['unknown']} unknown, {len(run.events)} faults"
    style_figure(fig, title=title, xaxis="time since the cluster started (s)", yaxis="operations per second")
    return fig


def _short(arg: Any) -> str:
    if isinstance(arg, (list, tuple)):
        return "/".join(_short(a) for a in arg)
    return str(arg)
