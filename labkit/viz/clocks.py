"""Figures and a widget for notebook 02, "Time, clocks and order".

:func:`clock_diagram` labels every event of a space-time diagram with the value of one clock and marks
the writes a last-writer-wins register discarded; :class:`ClockSkewWidget` skews and drifts each
replica's clock under that diagram.
"""

from __future__ import annotations

import collections.abc as cabc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.clocks import EventKind, Stamping, Stamps, run_lww
from labkit.clocks.lww import LWWRun
from labkit.clocks.stamped import EVENT_NOTE
from labkit.sim import Kind, Simulator
from labkit.viz.common import (
    BAD_COLOR,
    Widget,
    button,
    check_figure,
    check_title,
    new_figure,
    node_colors,
    replace_traces,
    slider,
    status_html,
    style_figure,
    toggles,
)

__all__ = ["ClockSkewWidget", "clock_diagram", "clock_error_figure", "stamp_text"]


def stamp_text(stamps: Stamps, clock: Stamping) -> str:
    """The value of one clock in ``stamps``, as a short label."""
    valid.instance("stamps", stamps, Stamps)
    valid.instance("clock", clock, Stamping)
    if clock is Stamping.PHYSICAL:
        return f"{stamps.physical:.3f}"
    if clock is Stamping.LAMPORT:
        return str(stamps.lamport.time)
    if clock is Stamping.HLC:
        return f"({stamps.hlc.l:.3f},{stamps.hlc.c})"
    return str(stamps.vector)


_KIND_STYLE = {
    EventKind.SEND: ("send / write", "#000000", "circle", "top center"),
    EventKind.RECEIVE: ("receive", "#56B4E9", "circle-open", "bottom center"),
    EventKind.LOCAL: ("local event", "#999999", "square", "top center"),
}


@dataclass
class _Marks:
    """Markers of one kind of event: positions, labels and hover texts."""

    x: list[float] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    hover: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)  # the labels' positions, where they differ


def _clock_marks(sim: Simulator, clock: Stamping, start: float) -> tuple[dict[EventKind, _Marks], _Marks]:
    """Every clocked event from ``start`` on, labelled with ``clock``, by kind; and the discarded writes."""
    lane = {nid: i for i, nid in enumerate(sim.nodes)}
    events = {k: _Marks() for k in EventKind}
    discarded = _Marks()
    for e in sim.trace.notes():
        if e.node not in lane or e.time < start:
            continue
        if e.reason == EVENT_NOTE:
            d, marks = e.detail, events[e.detail["kind"]]
            s: Stamps = d["stamps"]
            value = stamp_text(s, clock)
            marks.x.append(e.time)
            marks.y.append(lane[e.node])
            # "write x=2 @ 0.200": without the "@" the stamp reads as part of the value.
            marks.text.append(
                f"{d['label']} @ {value}" if d["label"] and d["kind"] is EventKind.SEND else value
            )
            marks.hover.append(
                f"{e.node} {d['kind'].value} {d['label']}<br>true time {e.time:.3f} s<br>"
                f"physical {s.physical:.3f}<br>Lamport {s.lamport.time}<br>vector {s.vector}<br>HLC {s.hlc}"
            )
        elif e.reason == "discard":
            kept = ", ".join(str(v) for v in e.detail["kept"])
            discarded.x.append(e.time)
            discarded.y.append(lane[e.node])
            discarded.hover.append(f"{e.node} discarded {e.detail['write']} (kept {kept}) at {e.time:.3f} s")
    # An event's label moves onto the wider cross drawn over it, so that it sits clear of the cross.
    at = {(x, y): (k, i) for k, m in events.items() for i, (x, y) in enumerate(zip(m.x, m.y, strict=True))}
    for x, y in zip(discarded.x, discarded.y, strict=True):
        kind, i = at.get((x, y), (None, 0))
        discarded.text.append(events[kind].text[i] if kind is not None else "")
        discarded.where.append(_KIND_STYLE[kind][3] if kind is not None else "bottom center")
        if kind is not None:
            events[kind].text[i] = ""
    return events, discarded


def _busy_range(sim: Simulator, label_chars: int) -> tuple[float, float]:
    """Just around the messages and clocked events (not the idle start and end of the run), with room
    for half the longest label at either end (a character of the 11 px font is about 6.5 px of a plot
    about 900 px wide)."""
    busy = [e.time for e in sim.trace.of_kind(Kind.SEND, Kind.DELIVER, Kind.DROP, Kind.STATE)]
    first, last = min(busy, default=0.0), max(busy, default=sim.now)
    share = min(0.3, (label_chars * 6.5 / 2 + 10) / 900)  # of the whole axis, on each side
    margin = max(0.08, share / (1 - 2 * share)) * max(last - first, 0.01)
    return max(0.0, first - margin), last + margin


def clock_diagram(
    sim: Simulator,
    clock: Stamping = Stamping.LAMPORT,
    *,
    title: str | None = None,
    start: float | None = None,
    end: float | None = None,
    figure: Any = None,
) -> Any:
    """A space-time diagram of a clocked run, each event labelled with ``clock``.

    ``start``/``end``: the time axis (default: just around the clocked events).

    ``figure``: a ``go.FigureWidget`` to redraw in place (the trace count is
    always the same, so a widget only updates values).
    """
    check_title(title)
    check_figure(figure)
    import plotly.graph_objects as go

    from labkit.viz.spacetime import spacetime_diagram

    valid.instance("sim", sim, Simulator)
    valid.instance("clock", clock, Stamping)
    title = title or f"Events labelled with {clock.value} clock values"
    events, discarded = _clock_marks(sim, clock, 0.0 if start is None else start)
    busy = _busy_range(sim, max((len(t) for m in events.values() for t in m.text), default=0))
    start = busy[0] if start is None else start
    end = busy[1] if end is None else end
    if not end > start:
        raise ValueError(f"end must be after start={start!r}, got {end!r}")
    base = spacetime_diagram(sim, notes=False, start=start, end=end, title=title)
    extra = []
    for kind, m in events.items():
        name, color, symbol, pos = _KIND_STYLE[kind]
        extra.append(
            go.Scatter(x=m.x, y=m.y, text=m.text, hovertext=m.hover, hoverinfo="text", mode="markers+text",
                       textposition=pos, textfont={"size": 11, "color": "#222222"}, cliponaxis=False,
                       marker={"color": color, "symbol": symbol, "size": 8, "line": {"width": 1.5, "color": color}},
                       name=f"{name} ({len(m.x)})")
        )  # fmt: skip
    extra.append(
        go.Scatter(x=discarded.x, y=discarded.y, hovertext=discarded.hover, hoverinfo="text", mode="markers+text",
                   text=discarded.text, textposition=discarded.where, textfont={"size": 11, "color": "#222222"},
                   cliponaxis=False, name=f"write discarded ({len(discarded.x)})",
                   marker={"color": BAD_COLOR, "symbol": "x-thin", "size": 16, "line": {"width": 3, "color": BAD_COLOR}})
    )  # fmt: skip
    for t in base.data:  # message series with nothing in them only clutter the legend
        if not any(v is not None for v in (t.x or ())):
            t.showlegend = False
    return _draw_clocked(base, extra, start, end, len(sim.nodes), figure)


def _draw_clocked(base: Any, extra: list[Any], start: float, end: float, lanes: int, figure: Any) -> Any:
    """The space-time diagram ``base`` with the clock labels ``extra`` on top (into ``figure`` if given)."""
    fig = new_figure(figure)
    with fig.batch_update():
        # Copy only what a run changes; the template and the rest of the layout stay.
        data = [*base.data, *extra]
        if replace_traces(fig, data, "x", "y", "text", "textposition", "hovertext", "name", "showlegend"):
            fig.update_layout(base.layout.to_plotly_json())
        else:
            lay = base.layout
            fig.layout.title.text = lay.title.text
            fig.layout.shapes = lay.shapes
            fig.layout.yaxis.update(
                tickvals=lay.yaxis.tickvals, ticktext=lay.yaxis.ticktext, range=lay.yaxis.range
            )
        fig.layout.height = max(300, 130 + 70 * lanes)
        fig.layout.xaxis.update(range=[start, end], title_text="true time (s)")
    return fig


def clock_error_figure(sim: Simulator, *, title: str = "Clock readings minus true time") -> Any:
    """Physical clock and HLC ``l`` minus true time, per node, at every clocked event (ms).

    The physical clock is a wide pale band and the HLC a line on top of it, so
    where the HLC equals the physical clock both stay visible.
    """
    check_title(title, none=False)
    from labkit.clocks import clock_events

    valid.instance("sim", sim, Simulator)
    df = clock_events(sim.trace)
    colors = node_colors(sim.nodes)
    fig = new_figure()
    for nid in sim.nodes:
        g = df[df.node == nid]
        fig.add_scatter(x=g.time, y=(g.physical - g.time) * 1e3, mode="lines", opacity=0.35,
                        line={"color": colors[nid], "width": 8}, name=f"{nid} physical clock")  # fmt: skip
        fig.add_scatter(x=g.time, y=(g.hlc_l - g.time) * 1e3, mode="lines+markers", marker={"size": 4},
                        line={"color": colors[nid], "width": 2, "shape": "hv"}, name=f"{nid} HLC l")  # fmt: skip
    style_figure(fig, title=title, xaxis="true time (s)", yaxis="reading − true time (ms)", height=420)
    return fig


@dataclass
class _Settings:
    offsets_ms: dict[str, float] = field(default_factory=dict)
    drifts_ppm: dict[str, float] = field(default_factory=dict)
    stamping: Stamping = Stamping.PHYSICAL


class ClockSkewWidget(Widget):
    """Skew and drift each replica's clock, pick the clock LWW orders writes by, watch writes survive or vanish.

    The writes happen ``sync_age`` seconds after the clocks were last
    synchronised (set to their offsets), so a drift of ``d`` ppm has moved
    a clock by ``d * sync_age`` microseconds by then.

    >>> w = ClockSkewWidget(writes=[(0.1, "A", "x=1"), (0.2, "B", "x=2")])
    >>> w.set_offset("A", 300)           # ms; the same as moving A's slider
    >>> [x.value for x in w.result.lost]
    ['x=2']
    """

    OFFSET_RANGE_MS = (-500.0, 500.0)
    DRIFT_RANGE_PPM = (-5000.0, 5000.0)

    def __init__(
        self,
        writes: Sequence[tuple[float, str, Any]],
        *,
        nodes: Sequence[str] = ("A", "B", "C"),
        stamping: Stamping = Stamping.PHYSICAL,
        offsets_ms: Mapping[str, float] | None = None,
        drifts_ppm: Mapping[str, float] | None = None,
        sync_age: float = 60.0,
        latency: float = 0.02,
        seed: int = 0,
    ) -> None:
        valid.instance("offsets_ms", offsets_ms, cabc.Mapping, none=True)
        valid.instance("drifts_ppm", drifts_ppm, cabc.Mapping, none=True)
        valid.number("sync_age", sync_age, ge=0, unit="seconds")
        self.nodes = tuple(nodes)
        self.writes = [(sync_age + t, n, v) for t, n, v in writes]
        self.sync_age = float(sync_age)
        self.latency = latency
        self.seed = seed
        self.settings = _Settings({n: 0.0 for n in self.nodes}, {n: 0.0 for n in self.nodes})
        self.set_stamping(stamping, _rerun=False)
        for n, v in (offsets_ms or {}).items():
            self.set_offset(n, v, _rerun=False)
        for n, v in (drifts_ppm or {}).items():
            self.set_drift(n, v, _rerun=False)
        self._simulate()

    # -- what the controls do ---------------------------------------------------
    def _check(self, node: str, name: str, value: float, lo: float, hi: float) -> float:
        valid.one_of("node", node, self.nodes)
        return valid.number(name, value, ge=lo, le=hi)

    def set_offset(self, node: str, ms: float, *, _rerun: bool = True) -> None:
        """Set ``node``'s clock offset at the last sync, in milliseconds."""
        self.settings.offsets_ms[node] = self._check(node, "offset (ms)", ms, *self.OFFSET_RANGE_MS)
        if _rerun:
            self._changed()

    def set_drift(self, node: str, ppm: float, *, _rerun: bool = True) -> None:
        """Set ``node``'s clock drift in parts per million."""
        self.settings.drifts_ppm[node] = self._check(node, "drift (ppm)", ppm, *self.DRIFT_RANGE_PPM)
        if _rerun:
            self._changed()

    def set_stamping(self, stamping: Stamping, *, _rerun: bool = True) -> None:
        """Choose the clock that orders writes (and labels the diagram)."""
        self.settings.stamping = valid.instance("stamping", stamping, Stamping)
        if _rerun:
            self._changed()

    def reset(self) -> None:
        """Perfect clocks again."""
        for n in self.nodes:
            self.settings.offsets_ms[n] = 0.0
            self.settings.drifts_ppm[n] = 0.0
        self._changed()

    def _simulate(self) -> None:
        s = self.settings
        offsets = {n: v / 1e3 for n, v in s.offsets_ms.items()}
        self.result: LWWRun = run_lww(s.stamping, self.writes, nodes=self.nodes, offsets=offsets,
                                      drifts=dict(s.drifts_ppm), latency=self.latency, seed=self.seed)  # fmt: skip

    def _changed(self) -> None:
        self._simulate()
        self._refresh()

    def summary(self) -> str:
        """One line: what every replica holds at the end and what was lost."""
        r = self.result
        held = ", ".join(sorted({" | ".join(map(str, v)) for v in r.final.values()}))
        text = f"{r.stamping.value} stamps: every replica ends with {held}."
        if r.lost:
            lost = "; ".join(f"{w} (written at true time {w.true_time:.3f} s)" for w in r.lost)
            text += f" LOST: {lost}."
        else:
            text += " No write was lost."
        return text

    def clock_settings_text(self) -> str:
        """The clock settings in words, e.g. ``A +150 ms, C +200 ppm`` (``all clocks exact``)."""
        s = self.settings
        parts = []
        for n in self.nodes:
            bits = []
            if s.offsets_ms[n]:
                bits.append(f"{s.offsets_ms[n]:+g} ms")
            if s.drifts_ppm[n]:
                bits.append(f"{s.drifts_ppm[n]:+g} ppm")
            if bits:
                parts.append(f"{n} " + " ".join(bits))
        return ", ".join(parts) if parts else "all clocks exact"

    # -- the view ---------------------------------------------------------------
    def figure(self, figure: Any = None) -> Any:
        """Draw the current run (into ``figure`` if given)."""
        check_figure(figure)
        title = f"LWW by {self.settings.stamping.value} clocks; {self.clock_settings_text()}"
        return clock_diagram(self.result.sim, self.settings.stamping, title=title, figure=figure)

    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.fig, _plot = self._plot_area()
        self.offset_sliders: dict[str, Any] = {}
        self.drift_sliders: dict[str, Any] = {}
        for n in self.nodes:
            off = slider(f"{n} skew ms", self.settings.offsets_ms[n], *self.OFFSET_RANGE_MS, 10, fmt="+.0f",
                         tip=f"how far {n}'s clock was from true time at the last sync (ms, + = ahead)")  # fmt: skip
            dr = slider(f"{n} drift ppm", self.settings.drifts_ppm[n], *self.DRIFT_RANGE_PPM, 100, fmt="+.0f",
                        tip=f"how fast {n}'s clock runs away (parts per million; {self.sync_age:g} s since the sync)")  # fmt: skip
            self._on_change(off, lambda ms, n=n: self.set_offset(n, ms))
            self._on_change(dr, lambda ppm, n=n: self.set_drift(n, ppm))
            self.offset_sliders[n], self.drift_sliders[n] = off, dr
        self.stamping_picker = toggles([(s.value, s) for s in Stamping], self.settings.stamping, description="order by",
                                       tips=[f"LWW compares {s.value} timestamps" for s in Stamping])  # fmt: skip
        self._on_change(self.stamping_picker, self.set_stamping)
        self.reset_button = button("Perfect clocks", icon="undo", tip="all skews and drifts to 0")
        self._on_click(self.reset_button, self.reset)
        return self._page(
            W.HTML("<b>Clocks</b> (skew at the last sync, and drift since)"),
            *(W.HBox([self.offset_sliders[n], self.drift_sliders[n]]) for n in self.nodes),
            W.HBox([self.stamping_picker, self.reset_button]),
        )

    def _sync_controls(self) -> None:
        for n in self.nodes:
            self.offset_sliders[n].value = self.settings.offsets_ms[n]
            self.drift_sliders[n].value = self.settings.drifts_ppm[n]
        self.stamping_picker.value = self.settings.stamping

    def _redraw(self) -> None:
        self.figure(self.fig)
        self.status.value = status_html(self.summary())
