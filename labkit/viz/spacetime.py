"""Space-time (Lamport) diagrams of a simulator trace.

One horizontal lane per node, time running left to right, one arrow per
message from the moment it was sent to the moment it arrived (Lamport 1978,
Figure 1, turned on its side). What the network did to each message is
visible at a glance:

* delivered: a solid line ending in a marker on the receiver's lane;
* delivered out of order or as a duplicate: the same, in other colours;
* lost, dropped by a partition or because the receiver was down: a dashed
  line to a cross on the receiver's lane, where it would have arrived. A
  message dropped the moment it was sent (a cut link, a receiver known to be
  down) is drawn as long as the run's typical flight (the median over its
  delivered messages): the cross always sits on the lane of the node that
  never got it, never between two lanes, where it would read as a message
  to a node in between.

Crashed intervals are shaded on the node's lane and partitions are shaded
across the whole diagram. Hovering a marker shows the message.

With ``clocks=True`` the diagram also shows each node's own physical clock
(set with :meth:`Simulator.set_clock`): hovering a message or an event gives
the sender's and receiver's clock readings next to true time, and a node
whose clock is off carries a label beside its lane, in the right margin ("n1 clock +50.0 ms"; the
legend then goes below the plot).

:func:`spacetime_data` reads a trace into what the picture shows;
:func:`spacetime_diagram` draws it. The figure always has the same traces in
the same order, so a widget can update it in place.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.sim import Kind, Simulator, Trace, TraceEvent
from labkit.viz.common import (
    BAD_COLOR,
    MUTED_COLOR,
    Arrows,
    band,
    check_figure,
    check_names,
    check_title,
    down_intervals,
    legend_below,
    replace_traces,
    style_figure,
)

__all__ = ["spacetime_diagram", "spacetime_data", "SpacetimeData", "SERIES", "clock_readers"]

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
# What counts as activity when the time axis is fitted to a run (timers firing in silence do not).
_ACTIVITY = (Kind.SEND, Kind.DELIVER, Kind.DROP, Kind.STATE, Kind.CRASH, Kind.RESTART, Kind.FAULT)


@dataclass
class SpacetimeData:
    """What a space-time diagram shows, read from a trace (see :func:`spacetime_data`)."""

    lanes: list[str]
    start: float
    end: float
    series: dict[str, Arrows]  # message series by name, in SERIES order
    events: Arrows  # protocol notes, crashes and restarts (heads only: mx, my, text)
    crashes: list[tuple[str, float, float]]  # (lane, from, to)
    partitions: list[tuple[float, float, str]]  # (from, to, "n1,n2 | n3")
    clock_labels: list[tuple[str, str]] | None  # (lane, text); None: the diagram does not show clocks


def _short(msg: Any, limit: int = 60) -> str:
    text = repr(msg)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _partition_intervals(events: list[TraceEvent], until: float) -> list[tuple[float, float, str]]:
    spans: list[tuple[float, float, str]] = []
    current: tuple[float, str] | None = None
    for e in events:
        if e.kind is Kind.FAULT and e.reason in ("partition", "heal"):
            if current is not None:
                spans.append((current[0], e.time, current[1]))
                current = None
            if e.reason == "partition":
                current = (e.time, " | ".join(",".join(g) for g in e.detail["groups"]))
    if current is not None:
        spans.append((current[0], until, current[1]))
    return spans


def clock_readers(events: Sequence[TraceEvent]) -> tuple[Callable[[str, float], float], dict[str, tuple]]:
    """Rebuild every node's physical clock from the trace's ``clock`` faults.

    Returns ``(read, last)``: ``read(node, t)`` is what the node's clock
    showed at true time ``t`` (true time itself before its first clock
    change), and ``last[node] = (since, offset, drift_ppm)`` is its latest
    setting, for nodes that have one.
    """
    changes: dict[str, tuple[list[float], list[tuple[float, float]]]] = {}
    for e in events:
        if e.kind is Kind.FAULT and e.reason == "clock":
            times, settings = changes.setdefault(e.detail["node"], ([], []))
            times.append(e.time)
            settings.append((e.detail["offset"], e.detail["drift_ppm"] * 1e-6))

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


def _fitted_end(events: list[TraceEvent], start: float, run_end: float) -> float:
    """The end of the time axis: a little after the last activity, so a run that went quiet early
    does not squeeze its messages into the left edge."""
    last = max((e.time for e in events if e.kind in _ACTIVITY and e.time >= start), default=run_end)
    return min(run_end, last + 0.05 * max(last - start, 1e-3)) if last > start else run_end


def spacetime_data(
    source: Simulator | Trace,
    *,
    nodes: Sequence[str] | None = None,
    until: float | None = None,
    start: float = 0.0,
    end: float | None = None,
    notes: bool = True,
    clocks: bool = False,
    boot_notes: bool = True,
) -> SpacetimeData:
    """Read a simulator's trace into what :func:`spacetime_diagram` draws (arguments as there)."""
    if isinstance(source, Simulator):
        trace, lanes, run_end = source.trace, list(source.nodes), source.now
    elif isinstance(source, Trace):
        trace, lanes, run_end = source, [], (source[-1].time if len(source.rows) else 0.0)
    else:
        raise TypeError(f"source must be a Simulator or a Trace, got {type(source).__name__}")
    if not trace.keep:
        raise ValueError("source keeps no trace to draw; create its simulator with trace=True")
    valid.boolean("clocks", clocks)
    valid.boolean("boot_notes", boot_notes)
    events = list(trace)
    fitted = end is None
    if end is None:
        end = _fitted_end(events, start, run_end)
    elif not end > start:
        raise ValueError(f"end must be after start={start!r}, got {end!r}")
    if nodes is None:
        for e in events:
            for nid in (e.node, e.src, e.dst):
                if nid is not None and nid not in lanes:
                    lanes.append(nid)
    else:
        lanes = list(nodes)
    if until is None:
        until = min(end, run_end)
    elif not until >= 0:
        raise ValueError(f"until must be a time >= 0, got {until!r}")
    visible = [e for e in events if start <= e.time <= until]
    read_clock = clock_readers(events)[0] if clocks else None
    flight = _typical_flight(visible, start, end)
    if fitted:  # room for the cross of a message dropped as it was sent, near the end
        end = max([end] + [e.time + flight for e in visible if e.kind is Kind.DROP and e.time == e.sent_at])
    return SpacetimeData(
        lanes=lanes,
        start=start,
        end=end,
        series=_message_series(visible, lanes, read_clock, flight=flight),
        events=_event_markers(visible, lanes, read_clock, notes, boot_notes),
        crashes=[c for c in down_intervals(visible, until) if c[0] in lanes],
        partitions=_partition_intervals(visible, until),
        clock_labels=_clock_labels(events, lanes, until) if clocks else None,
    )


def _when(read_clock: Callable[[str, float], float] | None, nid: str, t: float) -> str:
    """'0.120s'; with clocks '0.1200s (n1 clock 0.1700s)', to 0.1 ms."""
    if read_clock is None:
        return f"{t:.3f}s"
    return f"{t:.4f}s ({nid} clock {read_clock(nid, t):.4f}s)"


def _typical_flight(events: list[TraceEvent], start: float, end: float) -> float:
    """How long a message took to arrive in this run: the median over delivered messages, or, if none
    was delivered, a twentieth of the time axis. A message dropped as it was sent is drawn this long."""
    flights = sorted(e.time - e.sent_at for e in events if e.kind is Kind.DELIVER and e.time > e.sent_at)
    if flights:
        return flights[len(flights) // 2]
    return max((end - start) / 20, 1e-3)


def _message_series(
    events: list[TraceEvent], lanes: list[str], read_clock: Callable | None, flight: float
) -> dict[str, Arrows]:
    """An arrow per delivered or dropped message, sorted into :data:`SERIES`."""
    lane = {nid: i for i, nid in enumerate(lanes)}
    series = {name: Arrows() for name, *_ in SERIES}
    delivered: set[int] = set()  # message ids delivered before: the next delivery is a duplicate
    newest: dict[tuple[str, str], int] = {}  # per link, the highest message id delivered so far
    for e in events:
        if e.kind not in (Kind.DELIVER, Kind.DROP) or e.src not in lane or e.dst not in lane:
            continue
        t, y0, y1 = e.time, lane[e.src], lane[e.dst]
        sent = _when(read_clock, e.src, e.sent_at)
        if e.kind is Kind.DELIVER:
            link = (e.src, e.dst)
            if e.msg_id in delivered:
                name = "duplicate"
            elif e.msg_id < newest.get(link, 0):
                name = "reordered"
            else:
                name = "delivered"
            delivered.add(e.msg_id)
            newest[link] = max(newest.get(link, 0), e.msg_id)
            fate = f"arrived {_when(read_clock, e.dst, t)} ({name})"
        else:
            name = fate = _DROP_SERIES[e.reason]
            if t == e.sent_at:  # dropped as it was sent: drawn to where it would have arrived
                t = e.sent_at + flight
        series[name].add(
            e.sent_at, y0, t, y1, f"{_short(e.message)}<br>{e.src} → {e.dst}<br>sent {sent}, {fate}"
        )
    return series


def _event_markers(
    events: list[TraceEvent], lanes: list[str], read_clock: Callable | None, notes: bool, boot_notes: bool
) -> Arrows:
    """A marker per protocol note (``ctx.note``, if ``notes``), crash and restart.

    Without ``boot_notes``, the notes a node makes while it first boots are left out: a Raft server's
    "follower of term 0" gives its initial state, records no change, and would be counted five times
    at t = 0 for five servers. (A flooding node's "I start the rumour" at boot is news: hence the
    choice.) A reboot's notes always stay: what a node recovered is news.
    """
    lane = {nid: i for i, nid in enumerate(lanes)}
    out = Arrows()
    booting: dict[str, float] = {}  # node -> when it first booted, while its start handler runs
    rebooted: set[str] = set()
    for e in events:
        if e.kind is Kind.START:
            if e.node not in rebooted:
                booting[e.node] = e.time
            continue
        if e.kind in (Kind.DELIVER, Kind.TIMER, Kind.CRASH, Kind.RESTART):
            booting.pop(e.node, None)  # the node's next handler runs: its boot is over
            if e.kind is Kind.RESTART:
                rebooted.add(e.node)
        if (
            e.node not in lane
            or (not boot_notes and booting.get(e.node) == e.time)
            or not ((notes and e.kind is Kind.STATE) or e.kind in (Kind.CRASH, Kind.RESTART))
        ):
            continue
        label = e.reason if e.kind is Kind.STATE else e.kind.value
        text = f"{e.node}: {label} " + ", ".join(f"{k}={v}" for k, v in (e.detail or {}).items())
        if read_clock is not None:
            text += f"<br>at {_when(read_clock, e.node, e.time)}"
        out.mx.append(e.time)
        out.my.append(lane[e.node])
        out.text.append(text)
    return out


def _clock_labels(events: list[TraceEvent], lanes: list[str], until: float) -> list[tuple[str, str]]:
    """A label for each lane whose node's clock is off true time at ``until``."""
    read_clock, settings = clock_readers(events)
    labels = []
    for nid, (since, _offset, drift_ppm) in settings.items():
        if nid not in lanes or since > until:
            continue
        off = read_clock(nid, until) - until
        if abs(off) >= 5e-7 or drift_ppm:
            labels.append((nid, f"{nid} {_clock_label(off, drift_ppm)}"))
    return labels


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
    boot_notes: bool = True,
) -> Any:
    """Draw a trace as a plotly figure (``go.Figure``).

    Parameters
    ----------
    source: a :class:`Simulator` (its trace and node order are used) or a :class:`Trace`.
    nodes: lane order, top to bottom (default: the simulator's node order,
        or order of first appearance in the trace).
    until: draw only what happened up to this time (for replay sliders); the
        x axis still spans the whole run so replays do not rescale.
    start, end: the x axis range (default: from 0 to just after the last
        message, note, crash or fault of the run).
    notes: mark protocol state changes (``ctx.note``) on the lanes.
    figure: an existing ``go.Figure``/``FigureWidget`` to redraw in place.
    clocks: show the nodes' own clock readings in the hover texts and label
        the lane of every node whose clock is off true time.
    boot_notes: mark (and count) the notes nodes make when they first boot;
        leave them out where they only restate the initial state.
    """
    check_names("nodes", nodes, none=True)
    valid.number("until", until, unit="seconds", none=True)
    valid.number("start", start, unit="seconds")
    valid.number("end", end, unit="seconds", none=True)
    valid.boolean("notes", notes)
    check_title(title, none=False)
    valid.integer("height", height, ge=100, le=10_000, none=True, note="pixels")
    check_figure(figure)
    data = spacetime_data(
        source,
        nodes=nodes,
        until=until,
        start=start,
        end=end,
        notes=notes,
        clocks=clocks,
        boot_notes=boot_notes,
    )
    return draw_spacetime(data, title=title, height=height, figure=figure)


def draw_spacetime(data: SpacetimeData, *, title: str, height: int | None = None, figure: Any = None) -> Any:
    """Draw :class:`SpacetimeData` (into ``figure`` if given, updating its traces in place)."""
    import plotly.graph_objects as go

    traces = []
    for name, color, dash, symbol in SERIES:
        line = {"color": color, "dash": dash, "width": 1.2}
        traces += data.series[name].traces(
            name, line=line, marker={"color": color, "symbol": symbol, "size": 7}
        )
    ev = data.events
    traces.append(go.Scatter(x=ev.mx, y=ev.my, mode="markers", marker={"color": "#000000", "symbol": "diamond", "size": 8},
                             name=f"events ({len(ev.mx)})", hovertext=ev.text, hoverinfo="text"))  # fmt: skip
    lane = {nid: i for i, nid in enumerate(data.lanes)}
    shapes = [
        {**band(t0, t1, MUTED_COLOR, 0.35, yref="y"), "y0": lane[nid] - 0.35, "y1": lane[nid] + 0.35}
        for nid, t0, t1 in data.crashes
    ] + [band(t0, t1, "#882255") for t0, t1, _label in data.partitions]
    fig = figure if figure is not None else go.Figure()
    n = len(data.lanes)
    clocks = data.clock_labels is not None
    # With clocks, the legend goes below the plot (taller by what it takes), so that the right margin
    # is free for the clock labels.
    height = height or max(260, 90 + 55 * n) + (_LEGEND_BELOW if clocks else 0)
    with fig.batch_update():
        if replace_traces(fig, traces, "x", "y", "name", "hovertext"):  # a new figure: the look too
            style_figure(
                fig,
                title=title,
                xaxis="time (virtual seconds)",
                yaxis="node",
                height=height,
                hovermode="closest",
            )
            if clocks:
                legend_below(fig)
        fig.layout.title.text = title
        fig.layout.height = height
        # Assign (not update): update_layout merges lists of shapes element by element.
        fig.layout.shapes = shapes
        if clocks:  # assign, as for shapes; without clocks leave annotations alone
            _clock_notes(fig, data.clock_labels, lane)
        fig.update_xaxes(range=[data.start, data.start + max(data.end - data.start, 1e-3) * 1.01])
        fig.update_yaxes(tickmode="array", tickvals=list(range(n)), ticktext=data.lanes, range=[n - 0.5, -0.5],
                         zeroline=False)  # fmt: skip
    if clocks:  # after the batch: its margins are readable now
        _legend_under_axis_title(fig)
    return fig


_LEGEND_BELOW = 70  # pixels a legend below the plot takes, beyond the usual bottom margin
_AXIS_TITLE_BELOW = 58  # pixels from the plot's bottom edge to below its x axis title
_CLOCK_GAP = 8  # pixels between the plot's right edge and a clock label
_CHAR_WIDTH = 6.5  # pixels per character of an 11-pixel label (sans-serif), a little generous


def _clock_notes(fig: Any, labels: list[tuple[str, str]], lane: dict[str, int]) -> None:
    """Each clock label in the right margin, level with its lane (inside the plot it printed over the
    arrowheads arriving there near the end of the run), and a margin wide enough for the longest."""
    # The drift on a line of its own: one line of "n3 clock +1.5 ms, drift +500 ppm" took 30 % of an
    # 800-pixel figure for its margin.
    texts = [(nid, text.replace(", drift", ",<br>drift")) for nid, text in labels]
    fig.layout.annotations = [
        {"xref": "paper", "yref": "y", "x": 1.0, "y": lane[nid], "xanchor": "left", "yanchor": "middle",
         "align": "left", "xshift": _CLOCK_GAP, "text": text, "showarrow": False,
         "font": {"size": 11, "color": "#555555"}}
        for nid, text in texts
    ]  # fmt: skip
    longest = max((len(line) for _nid, text in texts for line in text.split("<br>")), default=0)
    fig.layout.margin.r = 20 + (_CLOCK_GAP + math.ceil(_CHAR_WIDTH * longest) if labels else 0)


def _legend_under_axis_title(fig: Any) -> None:
    """The legend's top just under the x axis title (at the container's bottom it left a gap there)."""
    m = fig.layout.margin
    plot = fig.layout.height - m.t - m.b  # pixels
    fig.layout.legend.update(yref="paper", y=-_AXIS_TITLE_BELOW / plot, yanchor="top")
