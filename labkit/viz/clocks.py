"""Figures and a widget for notebook 02, "Time, clocks and order".

* :func:`clock_diagram`: a space-time diagram (the messages drawn by
  :func:`labkit.viz.spacetime.spacetime_diagram`) with every event labelled
  by the value of one clock, and the writes an LWW register discarded
  marked with a cross;
* :func:`clock_error_figure`: how far each node's physical clock and its
  HLC are from true time, over a run;
* :class:`ClockSkewWidget`: offset and drift sliders per node that re-run a
  last-writer-wins scenario and redraw the diagram.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit.clocks import EventKind, Stamping, Stamps, run_lww
from labkit.clocks.lww import LWWRun
from labkit.clocks.stamped import EVENT_NOTE
from labkit.sim import Kind, Simulator
from labkit.viz.common import BAD_COLOR, LazyWidget, guarded, node_colors, status_html, style_figure

__all__ = ["ClockSkewWidget", "clock_diagram", "clock_error_figure", "stamp_text"]


def stamp_text(stamps: Stamps, clock: Stamping) -> str:
    """The value of one clock in ``stamps``, as a short label."""
    if not isinstance(clock, Stamping):
        raise TypeError(f"clock must be a Stamping ({', '.join(s.name for s in Stamping)}), got {clock!r}")
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
    import plotly.graph_objects as go

    from labkit.viz.spacetime import spacetime_diagram

    if not isinstance(sim, Simulator):
        raise TypeError(f"sim must be a Simulator, got {type(sim).__name__}")
    if not isinstance(clock, Stamping):
        raise TypeError(f"clock must be a Stamping ({', '.join(s.name for s in Stamping)}), got {clock!r}")
    title = title or f"Events labelled with {clock.value} clock values"
    # Frame the clocked events, not the idle start and end of the run.
    busy = [r[0] for r in sim.trace.rows if r[1] in (Kind.SEND, Kind.DELIVER, Kind.DROP, Kind.STATE)]
    first, last = min(busy, default=0.0), max(busy, default=sim.now)
    margin = 0.08 * max(last - first, 0.01)
    if start is None:
        start = max(0.0, first - margin)
    if end is None:
        end = last + margin
    if not end > start:
        raise ValueError(f"end must be after start={start!r}, got {end!r}")
    base = spacetime_diagram(sim, notes=False, start=start, end=end, title=title)
    lane = {nid: i for i, nid in enumerate(sim.nodes)}
    groups: dict[EventKind, dict[str, list]] = {
        k: {"x": [], "y": [], "text": [], "hover": []} for k in EventKind
    }
    dropped: dict[str, list] = {"x": [], "y": [], "hover": []}
    for r in sim.trace.rows:
        if r[1] is not Kind.STATE or r[2] not in lane or r[0] < start:
            continue
        if r[8] == EVENT_NOTE:
            d = r[9]
            s: Stamps = d["stamps"]
            g = groups[d["kind"]]
            g["x"].append(r[0])
            g["y"].append(lane[r[2]])
            value = stamp_text(s, clock)
            # "write x=2 @ 0.200": without the "@" the stamp reads as part of the value.
            g["text"].append(
                f"{d['label']} @ {value}" if d["label"] and d["kind"] is EventKind.SEND else value
            )
            g["hover"].append(
                f"{r[2]} {d['kind'].value} {d['label']}<br>true time {r[0]:.3f} s<br>"
                f"physical {s.physical:.3f}<br>Lamport {s.lamport.time}<br>"
                f"vector {s.vector}<br>HLC {s.hlc}"
            )
        elif r[8] == "discard":
            w = r[9]["write"]
            kept = ", ".join(str(v) for v in r[9]["kept"])
            dropped["x"].append(r[0])
            dropped["y"].append(lane[r[2]])
            dropped["hover"].append(f"{r[2]} discarded {w} (kept {kept}) at {r[0]:.3f} s")
    extra = []
    for kind, g in groups.items():
        name, color, symbol, pos = _KIND_STYLE[kind]
        extra.append(
            go.Scatter(
                x=g["x"],
                y=g["y"],
                text=g["text"],
                hovertext=g["hover"],
                hoverinfo="text",
                mode="markers+text",
                textposition=pos,
                textfont={"size": 11, "color": "#222222"},
                marker={"color": color, "symbol": symbol, "size": 8, "line": {"width": 1.5, "color": color}},
                name=f"{name} ({len(g['x'])})",
            )
        )
    extra.append(
        go.Scatter(
            x=dropped["x"],
            y=dropped["y"],
            hovertext=dropped["hover"],
            hoverinfo="text",
            mode="markers",
            marker={
                "color": BAD_COLOR,
                "symbol": "x-thin",
                "size": 16,
                "line": {"width": 3, "color": BAD_COLOR},
            },
            name=f"write discarded ({len(dropped['x'])})",
        )
    )
    for t in base.data:  # message series with nothing in them only clutter the legend
        if not any(v is not None for v in (t.x or ())):
            t.showlegend = False
    data = [*base.data, *extra]
    height = max(300, 130 + 70 * len(lane))
    if figure is None:
        fig = go.Figure(data=data, layout=base.layout)
        fig.update_layout(height=height)
        fig.update_xaxes(range=[start, end], title_text="true time (s)")
        return fig
    with figure.batch_update():
        if len(figure.data) != len(data):
            figure.data = []
            figure.add_traces(data)
            figure.update_layout(base.layout.to_plotly_json())
        else:
            # Copy only what changes: copying whole traces and layouts (the
            # template) costs hundreds of milliseconds per redraw.
            for old, new in zip(figure.data, data, strict=True):
                old.update(
                    x=new.x,
                    y=new.y,
                    text=new.text,
                    hovertext=new.hovertext,
                    name=new.name,
                    showlegend=new.showlegend,
                )
            lay = base.layout
            figure.layout.title.text = lay.title.text
            figure.layout.shapes = lay.shapes
            figure.layout.yaxis.update(
                tickvals=lay.yaxis.tickvals, ticktext=lay.yaxis.ticktext, range=lay.yaxis.range
            )
        figure.layout.height = height
        figure.layout.xaxis.update(range=[start, end], title_text="true time (s)")
    return figure


def clock_error_figure(sim: Simulator, *, title: str = "Clock readings minus true time") -> Any:
    """Physical clock and HLC ``l`` minus true time, per node, at every clocked event (ms)."""
    import plotly.graph_objects as go

    from labkit.clocks import clock_events

    if not isinstance(sim, Simulator):
        raise TypeError(f"sim must be a Simulator, got {type(sim).__name__}")
    df = clock_events(sim.trace)
    colors = node_colors(sim.nodes)
    fig = go.Figure()
    for nid in sim.nodes:
        g = df[df.node == nid]
        fig.add_scatter(
            x=g.time,
            y=(g.physical - g.time) * 1e3,
            mode="lines",
            line={"color": colors[nid], "dash": "dot", "width": 1.5},
            name=f"{nid} physical clock",
        )
        fig.add_scatter(
            x=g.time,
            y=(g.hlc_l - g.time) * 1e3,
            mode="lines+markers",
            marker={"size": 4},
            line={"color": colors[nid], "width": 2, "shape": "hv"},
            name=f"{nid} HLC l",
        )
    style_figure(fig, title=title, xaxis="true time (s)", yaxis="reading − true time (ms)", height=420)
    return fig


@dataclass
class _Settings:
    offsets_ms: dict[str, float] = field(default_factory=dict)
    drifts_ppm: dict[str, float] = field(default_factory=dict)
    stamping: Stamping = Stamping.PHYSICAL


class ClockSkewWidget(LazyWidget):
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
        if not isinstance(sync_age, (int, float)) or isinstance(sync_age, bool) or not sync_age >= 0:
            raise ValueError(f"sync_age must be a number of seconds >= 0, got {sync_age!r}")
        self.nodes = tuple(nodes)
        self.writes = [(sync_age + t, n, v) for t, n, v in writes]
        self.sync_age = float(sync_age)
        self.latency = latency
        self.seed = seed
        self.settings = _Settings(
            {n: 0.0 for n in self.nodes}, {n: 0.0 for n in self.nodes}, Stamping.PHYSICAL
        )
        self._ui: Any = None
        self._syncing = False
        self.set_stamping(stamping, _rerun=False)
        for n, v in (offsets_ms or {}).items():
            self.set_offset(n, v, _rerun=False)
        for n, v in (drifts_ppm or {}).items():
            self.set_drift(n, v, _rerun=False)
        self._simulate()

    # -- what the controls do ---------------------------------------------------
    def _check(self, node: str, name: str, value: float, lo: float, hi: float) -> float:
        if node not in self.nodes:
            raise ValueError(f"node must be one of {list(self.nodes)}, got {node!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
        return float(value)

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
        if not isinstance(stamping, Stamping):
            raise TypeError(f"stamping must be a Stamping, got {stamping!r}")
        self.settings.stamping = stamping
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
        self.result: LWWRun = run_lww(
            s.stamping,
            self.writes,
            nodes=self.nodes,
            offsets={n: v / 1e3 for n, v in s.offsets_ms.items()},
            drifts=dict(s.drifts_ppm),
            latency=self.latency,
            seed=self.seed,
        )

    def _changed(self) -> None:
        self._simulate()
        if self._ui is not None:
            # Also after a change made from Python (w.set_offset(...)): the sliders show what is in force.
            self._sync_controls()
            self._redraw()

    def summary(self) -> str:
        """One line: what every replica holds at the end and what was lost."""
        r = self.result
        held = ", ".join(sorted({" | ".join(map(str, v)) for v in r.final.values()}))
        text = f"{r.stamping.value} stamps: every replica ends with {held}."
        if r.lost:
            lost = "; ".join(f"{w} (written at t = {w.true_time - self.sync_age:.3f} s)" for w in r.lost)
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
        return clock_diagram(
            self.result.sim,
            self.settings.stamping,
            title=f"LWW by {self.settings.stamping.value} clocks; {self.clock_settings_text()}",
            figure=figure,
        )

    def _build_ui(self) -> Any:
        import ipywidgets as W
        import plotly.graph_objects as go

        self.status = W.HTML()
        g = guarded(self.status)
        self.fig = go.FigureWidget()
        self.offset_sliders: dict[str, Any] = {}
        self.drift_sliders: dict[str, Any] = {}
        rows = []
        for n in self.nodes:
            off = W.FloatSlider(
                value=self.settings.offsets_ms[n],
                min=self.OFFSET_RANGE_MS[0],
                max=self.OFFSET_RANGE_MS[1],
                step=10,
                description=f"{n} skew ms",
                tooltip=f"how far {n}'s clock was from true time at the last sync (ms, + = ahead)",
                continuous_update=False,
            )
            dr = W.FloatSlider(
                value=self.settings.drifts_ppm[n],
                min=self.DRIFT_RANGE_PPM[0],
                max=self.DRIFT_RANGE_PPM[1],
                step=100,
                description=f"{n} drift ppm",
                tooltip=f"how fast {n}'s clock runs away (parts per million; "
                f"{self.sync_age:g} s since the sync)",
                continuous_update=False,
            )
            off.observe(g(self._user(lambda ch, n=n: self.set_offset(n, ch["new"]))), "value")
            dr.observe(g(self._user(lambda ch, n=n: self.set_drift(n, ch["new"]))), "value")
            self.offset_sliders[n], self.drift_sliders[n] = off, dr
            rows.append(W.HBox([off, dr]))
        self.stamping_picker = W.ToggleButtons(
            options=[(s.value, s) for s in Stamping],
            value=self.settings.stamping,
            description="order by",
            tooltips=[f"LWW compares {s.value} timestamps" for s in Stamping],
        )
        self.stamping_picker.observe(g(self._user(lambda ch: self.set_stamping(ch["new"]))), "value")
        self.reset_button = W.Button(
            description="Perfect clocks", icon="undo", tooltip="all skews and drifts to 0"
        )
        self.reset_button.on_click(g(lambda _b: self.reset()))
        self._redraw()
        return W.VBox(
            [
                W.HTML("<b>Clocks</b> (skew at the last sync, and drift since)"),
                *rows,
                W.HBox([self.stamping_picker, self.reset_button]),
                self.status,
                self.fig,
            ]
        )

    def _user(self, fn: Any) -> Any:
        def handler(change: Any) -> Any:
            if self._syncing:
                return None
            return fn(change)

        return handler

    def _sync_controls(self) -> None:
        self._syncing = True
        try:
            for n in self.nodes:
                self.offset_sliders[n].value = self.settings.offsets_ms[n]
                self.drift_sliders[n].value = self.settings.drifts_ppm[n]
            self.stamping_picker.value = self.settings.stamping
        finally:
            self._syncing = False

    def _redraw(self) -> None:
        self.figure(self.fig)
        self.status.value = status_html(self.summary())
