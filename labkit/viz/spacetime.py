"""Space-time (Lamport) diagrams of a simulator trace.

One horizontal lane per node, time running left to right, one arrow per
message from the moment it was sent to the moment it arrived (Lamport 1978,
Figure 1, turned on its side). What the network did to each message is
visible at a glance:

* delivered: a solid line ending in a marker on the receiver's lane;
* delivered out of order or as a duplicate: the same, in other colours;
* lost: a short dashed stub ending in a cross;
* dropped by a partition or because the receiver was down: a dashed line to
  a cross where it would have arrived.

Crashed intervals are shaded on the node's lane and partitions are shaded
across the whole diagram. Hovering a marker shows the message.

With ``clocks=True`` the diagram also shows each node's own physical clock
(set with :meth:`Simulator.set_clock`): hovering a message or an event gives
the sender's and receiver's clock readings next to true time, and a node
whose clock is off carries a label on its lane ("clock +50.0 ms").

The figure always has the same traces in the same order, so a widget can
update it in place.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

from labkit.sim import Kind, Simulator, Trace
from labkit.viz.common import BAD_COLOR, MUTED_COLOR, style_figure

__all__ = ["spacetime_diagram", "SERIES"]

# (name, colour, dash, marker symbol) of each message series, in trace order.
SERIES = (
    ("delivered", "#0072B2", "solid", "triangle-right"),
    ("reordered", "#E69F00", "solid", "triangle-right"),
    ("duplicate", "#CC79A7", "solid", "triangle-right"),
    ("lost", BAD_COLOR, "dot", "x"),
    ("cut by partition", "#882255", "dash", "x"),
    ("receiver down", MUTED_COLOR, "dash", "x"),
)
_DROP_SERIES = {"loss": "lost", "partition": "cut by partition", "crashed": "receiver down"}


def _short(msg: Any, limit: int = 60) -> str:
    text = repr(msg)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _intervals(rows: list[tuple], start_kind: Kind, end_kind: Kind, until: float) -> dict[str, list]:
    """Per node, the [start, end) intervals between matching events."""
    out: dict[str, list[list[float]]] = {}
    for r in rows:
        if r[1] is start_kind:
            out.setdefault(r[2], []).append([r[0], until])
        elif r[1] is end_kind and out.get(r[2]) and out[r[2]][-1][1] == until:
            out[r[2]][-1][1] = r[0]
    return out


def _partition_intervals(rows: list[tuple], until: float) -> list[tuple[float, float, str]]:
    spans: list[tuple[float, float, str]] = []
    current: tuple[float, str] | None = None
    for r in rows:
        if r[1] is Kind.FAULT and r[8] in ("partition", "heal"):
            if current is not None:
                spans.append((current[0], r[0], current[1]))
                current = None
            if r[8] == "partition":
                groups = r[9]["groups"]
                current = (r[0], " | ".join(",".join(g) for g in groups))
    if current is not None:
        spans.append((current[0], until, current[1]))
    return spans


def clock_readers(rows: list[tuple]) -> tuple[Callable[[str, float], float], dict[str, tuple]]:
    """Rebuild every node's physical clock from the trace's ``clock`` faults.

    Returns ``(read, last)``: ``read(node, t)`` is what the node's clock
    showed at true time ``t`` (true time itself before its first clock
    change), and ``last[node] = (since, offset, drift_ppm)`` is its latest
    setting, for nodes that have one.
    """
    changes: dict[str, tuple[list[float], list[tuple[float, float]]]] = {}
    for r in rows:
        if r[1] is Kind.FAULT and r[8] == "clock":
            d = r[9]
            times, settings = changes.setdefault(d["node"], ([], []))
            times.append(r[0])
            settings.append((d["offset"], d["drift_ppm"] * 1e-6))

    def read(node: str, t: float) -> float:
        found = changes.get(node)
        if found is None:
            return t
        i = bisect_right(found[0], t) - 1
        if i < 0:
            return t
        offset, drift = found[1][i]
        return t + offset + drift * (t - found[0][i])

    last = {n: (ts[-1], st[-1][0], st[-1][1] * 1e6) for n, (ts, st) in changes.items()}
    return read, last


def _clock_label(offset_s: float, drift_ppm: float) -> str:
    text = f"clock {offset_s * 1000:+.1f} ms"
    return text + (f", drift {drift_ppm:+g} ppm" if drift_ppm else "")


def spacetime_diagram(
    source: Simulator | Trace,
    *,
    nodes: Sequence[str] | None = None,
    until: float | None = None,
    start: float = 0.0,
    end: float | None = None,
    notes: bool = True,
    title: str = "Space-time diagram",
    height: int | None = None,
    figure: Any = None,
    clocks: bool = False,
) -> Any:
    """Draw a trace as a plotly figure (``go.Figure``).

    Parameters
    ----------
    source: a :class:`Simulator` (its trace and node order are used) or a :class:`Trace`.
    nodes: lane order, top to bottom (default: the simulator's node order,
        or order of first appearance in the trace).
    until: draw only what happened up to this time (for replay sliders); the
        x axis still spans ``[start, end of run]`` so replays do not rescale.
    start, end: the x axis range (default: 0 to the end of the run).
    notes: mark protocol state changes (``ctx.note``) on the lanes.
    figure: an existing ``go.Figure``/``FigureWidget`` to redraw in place.
    clocks: show the nodes' own clock readings in the hover texts and label
        the lane of every node whose clock is off true time.
    """
    import plotly.graph_objects as go

    if isinstance(source, Simulator):
        trace, order, run_end = source.trace, list(source.nodes), source.now
    elif isinstance(source, Trace):
        trace, order, run_end = source, [], (source.rows[-1][0] if source.rows else 0.0)
    else:
        raise TypeError(f"source must be a Simulator or a Trace, got {type(source).__name__}")
    if not trace.keep:
        raise ValueError("source keeps no trace to draw; create its simulator with trace=True")
    rows = trace.rows
    if end is None:
        end = run_end
    elif not end > start:
        raise ValueError(f"end must be after start={start!r}, got {end!r}")
    if nodes is None:
        for r in rows:
            for nid in (r[2], r[3], r[4]):
                if nid is not None and nid not in order:
                    order.append(nid)
    else:
        order = list(nodes)
    if until is None:
        until = min(end, run_end)
    elif not until >= 0:
        raise ValueError(f"until must be a time >= 0, got {until!r}")
    if not isinstance(clocks, bool):
        raise TypeError(f"clocks must be True or False, got {clocks!r}")
    lane = {nid: i for i, nid in enumerate(order)}
    visible = [r for r in rows if start <= r[0] <= until]
    read_clock, clock_settings = clock_readers(rows) if clocks else (None, {})

    def at(nid: str, t: float) -> str:
        """'0.120s'; with clocks '0.1200s (n1 clock 0.1700s)', to 0.1 ms."""
        if read_clock is None:
            return f"{t:.3f}s"
        return f"{t:.4f}s ({nid} clock {read_clock(nid, t):.4f}s)"

    # Which message ids were delivered more than once, and in which order.
    deliveries_seen: set[int] = set()
    link_max: dict[tuple[str, str], int] = {}
    series: dict[str, dict[str, list]] = {
        s[0]: {"x": [], "y": [], "mx": [], "my": [], "text": []} for s in SERIES
    }
    stub = 0.25 * max((end - start) / 40, 1e-3)
    for r in visible:
        kind = r[1]
        if kind is Kind.DELIVER:
            t, src, dst, mid, msg, sent = r[0], r[3], r[4], r[5], r[6], r[7]
            if src not in lane or dst not in lane:
                continue
            if mid in deliveries_seen:
                name = "duplicate"
            elif mid < link_max.get((src, dst), 0):
                name = "reordered"
            else:
                name = "delivered"
            deliveries_seen.add(mid)
            link_max[(src, dst)] = max(link_max.get((src, dst), 0), mid)
            y0, y1 = lane[src], lane[dst]
            hover = f"{_short(msg)}<br>{src} → {dst}<br>sent {at(src, sent)}, arrived {at(dst, t)} ({name})"
        elif kind is Kind.DROP:
            t, src, dst, msg, sent, reason = r[0], r[3], r[4], r[6], r[7], r[8]
            if src not in lane or dst not in lane:
                continue
            name = _DROP_SERIES[reason]
            y0, y1 = lane[src], lane[dst]
            if t == sent:  # dropped at send time: draw a short stub towards dst
                y1 = y0 + (y1 - y0) * 0.3
                t = sent + stub
            hover = f"{_short(msg)}<br>{src} → {dst}<br>sent {at(src, sent)}, {name}"
        else:
            continue
        s = series[name]
        s["x"] += [sent, t, None]
        s["y"] += [y0, y1, None]
        s["mx"].append(t)
        s["my"].append(y1)
        s["text"].append(hover)

    data = []
    for name, color, dash, symbol in SERIES:
        s = series[name]
        n = len(s["mx"])
        label = f"{name} ({n})"
        data.append(
            go.Scatter(
                x=s["x"],
                y=s["y"],
                mode="lines",
                line={"color": color, "dash": dash, "width": 1.2},
                name=label,
                legendgroup=name,
                hoverinfo="skip",
            )
        )
        data.append(
            go.Scatter(
                x=s["mx"],
                y=s["my"],
                mode="markers",
                marker={"color": color, "symbol": symbol, "size": 7},
                name=label,
                legendgroup=name,
                showlegend=False,
                hovertext=s["text"],
                hoverinfo="text",
            )
        )
    # Protocol notes and lifecycle events as labelled markers on the lanes.
    nx, ny, ntext = [], [], []
    for r in visible:
        if r[2] not in lane:
            continue
        if (notes and r[1] is Kind.STATE) or r[1] in (Kind.CRASH, Kind.RESTART):
            label = r[8] if r[1] is Kind.STATE else r[1].value
            detail = r[9] or {}
            nx.append(r[0])
            ny.append(lane[r[2]])
            text = f"{r[2]}: {label} " + ", ".join(f"{k}={v}" for k, v in detail.items())
            if read_clock is not None:
                text += f"<br>at {at(r[2], r[0])}"
            ntext.append(text)
    data.append(
        go.Scatter(
            x=nx,
            y=ny,
            mode="markers",
            marker={"color": "#000000", "symbol": "diamond", "size": 8},
            name=f"events ({len(nx)})",
            hovertext=ntext,
            hoverinfo="text",
        )
    )

    shapes = []
    for nid, spans in _intervals(visible, Kind.CRASH, Kind.RESTART, until).items():
        if nid not in lane:
            continue
        for t0, t1 in spans:
            shapes.append(
                {
                    "type": "rect",
                    "x0": t0,
                    "x1": t1,
                    "y0": lane[nid] - 0.35,
                    "y1": lane[nid] + 0.35,
                    "fillcolor": MUTED_COLOR,
                    "opacity": 0.35,
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
    for t0, t1, _label in _partition_intervals(visible, until):
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "paper",
                "x0": t0,
                "x1": t1,
                "y0": 0,
                "y1": 1,
                "fillcolor": "#882255",
                "opacity": 0.08,
                "line": {"width": 0},
                "layer": "below",
            }
        )

    # A label on the lane of each node whose clock is off, as of `until`.
    annotations = []
    for nid, (since, _offset, drift_ppm) in clock_settings.items():
        if nid not in lane or since > until:
            continue
        off = read_clock(nid, until) - until  # type: ignore[misc]
        if abs(off) < 5e-7 and not drift_ppm:
            continue
        annotations.append(
            {
                "xref": "paper",
                "yref": "y",
                "x": 1.0,
                "y": lane[nid],
                "xanchor": "right",
                "yanchor": "bottom",
                "yshift": 4,
                "text": f"{nid} {_clock_label(off, drift_ppm)}",
                "showarrow": False,
                "font": {"size": 11, "color": "#555555"},
            }
        )

    fig = figure if figure is not None else go.Figure()
    with fig.batch_update():
        if len(fig.data) != len(data):
            fig.data = []
            fig.add_traces(data)
        else:
            for old, new in zip(fig.data, data, strict=True):
                old.update(x=new.x, y=new.y, name=new.name, hovertext=new.hovertext)
        style_figure(
            fig,
            title=title,
            xaxis="time (virtual seconds)",
            yaxis="node",
            height=height or max(260, 90 + 55 * len(order)),
        )
        # Assign (not update): update_layout merges lists of shapes element by element.
        fig.layout.shapes = shapes
        if clocks:  # assign, as for shapes; without clocks leave annotations alone
            fig.layout.annotations = annotations
        fig.update_layout(hovermode="closest")
        span = max(end - start, 1e-3)
        fig.update_xaxes(range=[start, start + span * 1.01])
        fig.update_yaxes(
            tickmode="array",
            tickvals=list(range(len(order))),
            ticktext=order,
            range=[len(order) - 0.5, -0.5],
            zeroline=False,
        )
    return fig
