"""Figures and the widget of notebook 17 (cascading failures).

:func:`timeline_figure` stacks goodput, p99 latency, queue depth and breaker state of one run of
:class:`~labkit.resilience.ChainModel`; :class:`ResilienceWidget` redraws it as a learner breaks C,
toggles policies and sets the load.
"""

from __future__ import annotations

import collections.abc as cabc
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from labkit import validation as valid
from labkit.resilience import Backoff, ChainModel, Fault, Jitter, default_services, make_policies
from labkit.resilience.service import MAX_RATE
from labkit.viz.common import (
    BAD_COLOR,
    MUTED_COLOR,
    PALETTE,
    Widget,
    check_title,
    checkbox,
    dropdown,
    gaps,
    new_figure,
    node_colors,
    slider,
    status_html,
    style_figure,
)

__all__ = [
    "timeline_figure",
    "compare_figure",
    "arrivals_figure",
    "backoff_figure",
    "ResilienceWidget",
    "WidgetSettings",
    "run_scenario",
]

_SERVICES = ("A", "B", "C", "D")
_BREAKERS = (("A", "B"), ("A", "D"), ("B", "C"))
_PANELS = ("goodput (req/s)", "p99 latency (s)", "mean queue depth", "breaker state")
# One colour, one meaning, across the four panels: a service keeps its colour in every panel,
# and the client kinds and the breakers use colours no service has.
_SERVICE_COLORS = node_colors(_SERVICES)
_KIND_COLORS = {"checkout": "#000000", "browse": PALETTE[9]}
_BREAKER_COLORS = (PALETTE[4], PALETTE[5], PALETTE[10])
_NO_BREAKER = "no circuit breaker in this run"
# Hover text per panel, with units (the breaker's level is a number drawn as a named tick).
_HOVER = (
    "%{fullData.name}: %{y:.0f} req/s at t = %{x:.1f} s<extra></extra>",
    "%{fullData.name}: %{y:.2f} s at t = %{x:.1f} s<extra></extra>",
    "%{fullData.name}: %{y:.0f} requests waiting at t = %{x:.1f} s<extra></extra>",
    "%{fullData.name} at t = %{x:.1f} s: %{text}<br>(levels: closed, half-open, open)<extra></extra>",
)
_LEVELS = ("closed", "half-open", "open")
# A→B and A→D are drawn a little below and above their level, so breakers in the same state do not
# hide each other; B→C, the one in front of C (the service the faults hit), sits on it.
_BREAKER_OFFSETS = (-0.1, 0.1, 0.0)


def _guarded(model: ChainModel, service: str, dependency: str, t: float) -> bool:
    """Whether a breaker guarded ``service``'s calls to ``dependency`` at time ``t``."""
    entries = [(since, b) for dep, since, b in model.stats[service].breakers if dep == dependency]
    current = [b for since, b in entries if since <= t]
    return bool(current) and current[-1] is not None


def _panel_traces(model: ChainModel) -> list[tuple[int, str, str, str, list[float], list[Any]]]:
    """(panel row, name, colour, dash, x, y) for every trace of the timeline, in a fixed order.

    A breaker's line has gaps (None) where no breaker guarded the calls: no
    breaker is not a closed breaker.
    """
    out: list[tuple[int, str, str, str, list[float], list[Any]]] = []
    cf = model.client_metrics()
    for kind in ("checkout", "browse"):
        part = cf[cf.kind == kind]
        out.append((1, f"{kind} goodput", _KIND_COLORS[kind], "solid", list(part.time), gaps(part.goodput)))
    offered = cf.groupby("time", sort=True).offered.sum() if len(cf) else None
    xs, ys = (list(offered.index), list(offered.values)) if offered is not None else ([], [])
    out.append((1, "offered (all)", MUTED_COLOR, "dot", xs, ys))
    sf = model.metrics()
    for row, column, label in ((2, "p99", "p99"), (3, "queue_depth", "queue")):
        for svc in _SERVICES:
            part = sf[sf.service == svc] if svc in model.specs else sf.iloc[0:0]
            out.append(
                (row, f"{svc} {label}", _SERVICE_COLORS[svc], "solid", list(part.time), gaps(part[column]))
            )
    bf = model.breaker_states()
    for color, offset, (svc, dep) in zip(_BREAKER_COLORS, _BREAKER_OFFSETS, _BREAKERS, strict=True):
        part = bf[(bf.service == svc) & (bf.dependency == dep)] if len(bf) else bf
        times = list(part.time) if len(part) else []
        levels = [
            lvl + offset if _guarded(model, svc, dep, t) else None
            for t, lvl in zip(times, list(part.level) if len(part) else [], strict=True)
        ]
        out.append((4, f"breaker {svc}→{dep}", color, "solid", times, levels))
    return out


def _hover_text(row: int, ys: list[Any]) -> list[str] | None:
    """The breaker state by name (its line is drawn a little off its level); None for other panels."""
    return [_LEVELS[round(y)] if y is not None else "no breaker" for y in ys] if row == 4 else None


def _breaker_note(traces: list[tuple[int, str, str, str, list[float], list[Any]]]) -> str:
    """The text over the breaker panel: empty while some breaker is drawn."""
    drawn = any(y is not None for row, *_, ys in traces if row == 4 for y in ys)
    return "" if drawn else _NO_BREAKER


def _timeline_layout(fig: Any, title: str, fault: tuple[float, float] | None) -> None:
    style_figure(fig, title=title, xaxis="", yaxis="", height=760)
    fig.update_xaxes(title_text="", row=1, col=1)
    fig.update_xaxes(title_text="virtual time (s)", row=4, col=1)
    for row, label in enumerate(_PANELS, start=1):
        fig.update_yaxes(title_text=label, row=row, col=1)
    # Rates, latencies and queue lengths are never negative: an all-zero panel
    # (no queue in a healthy chain) should not show an axis from -1 to 1.
    for row in (1, 2, 3):
        fig.update_yaxes(rangemode="nonnegative", row=row, col=1)
    fig.update_yaxes(tickvals=[0, 1, 2], ticktext=list(_LEVELS), range=[-0.3, 2.3], row=4, col=1)
    fig.update_layout(legend={"tracegroupgap": 40})  # one group per panel
    if fault is not None:
        for row in range(1, 5):
            fig.add_vrect(
                x0=fault[0], x1=fault[1], fillcolor=BAD_COLOR, opacity=0.08, line_width=0, row=row, col=1
            )


def timeline_figure(
    model: ChainModel, *, title: str = "The chain over time", fault: tuple[float, float] | None = None
) -> Any:
    """Four stacked panels sharing the time axis: clients' goodput per kind,
    each service's p99 latency, each service's queue depth, and the state of
    each circuit breaker. ``fault`` shades the window when C was broken."""
    check_title(title, none=False)
    _check_window("fault", fault)
    valid.instance("model", model, ChainModel)
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.05)
    traces = _panel_traces(model)
    for row, name, color, dash, xs, ys in traces:
        # Queue depths are stacked (they add up to the requests waiting in the chain), so services
        # with equal queues (none, in a healthy chain) do not hide each other.
        trace = go.Scatter(x=xs, y=ys, name=name, mode="lines", text=_hover_text(row, ys), hovertemplate=_HOVER[row - 1],
                           line={"color": color, "dash": dash, "shape": "hv" if row == 4 else "linear"},
                           stackgroup="queues" if row == 3 else None,
                           legendgroup=_PANELS[row - 1], legendgrouptitle_text=_PANELS[row - 1])  # fmt: skip
        fig.add_trace(trace, row=row, col=1)
    _timeline_layout(fig, title, fault)
    fig.add_annotation(name="breaker note", text=_breaker_note(traces), x=0.5, y=0.5, xref="x4 domain",
                       yref="y4 domain", showarrow=False, font={"color": "#555555", "size": 13})  # fmt: skip
    return fig


def compare_figure(
    runs: Mapping[str, ChainModel],
    *,
    metric: str = "goodput",
    kind: str | None = None,
    service: str | None = None,
    title: str,
    yaxis: str | None = None,
    fault: tuple[float, float] | None = None,
) -> Any:
    """One line per run: a client metric (``kind`` or all kinds summed) or,
    with ``service``, a per-service metric of :meth:`ChainModel.metrics`."""
    valid.instance("runs", runs, cabc.Mapping)
    valid.instance("kind", kind, str, none=True)
    valid.instance("service", service, str, none=True)
    check_title(title, none=False)
    valid.instance("yaxis", yaxis, str, none=True)
    _check_window("fault", fault)
    if not runs:
        raise ValueError("runs must hold at least one labelled ChainModel")
    fig = new_figure()
    for i, (label, model) in enumerate(runs.items()):
        f = model.metrics() if service is not None else model.client_metrics()
        if metric not in f.columns:
            raise ValueError(f"metric must be one of {list(f.columns[2:])}, got {metric!r}")
        if service is not None:
            part = f[f.service == service]
            xs, ys = part.time, part[metric]
        else:
            part = f if kind is None else f[f.kind == kind]
            agg = part.groupby("time", sort=True)[metric]
            series = (
                agg.sum() if metric in ("offered", "goodput", "late", "errors", "timed_out") else agg.mean()
            )
            xs, ys = series.index, series.values
        fig.add_scatter(
            x=list(xs), y=list(ys), name=label, mode="lines", line={"color": PALETTE[i % len(PALETTE)]}
        )
    if fault is not None:
        fig.add_vrect(x0=fault[0], x1=fault[1], fillcolor=BAD_COLOR, opacity=0.08, line_width=0)
    return style_figure(fig, title=title, xaxis="virtual time (s)", yaxis=yaxis or metric)


def arrivals_figure(
    runs: Mapping[str, ChainModel],
    *,
    service: str = "C",
    title: str,
    time_range: tuple[float, float] | None = None,
) -> Any:
    """Requests arriving at ``service`` per second, one line per run
    (``time_range`` zooms the time axis)."""
    valid.string("service", service)
    _check_window("time_range", time_range)
    yaxis = f"arrivals at {service} (req/s)"
    fig = compare_figure(runs, metric="offered", service=service, title=title, yaxis=yaxis)
    if time_range is not None:
        fig.update_xaxes(range=list(time_range))
    return fig


def backoff_figure(
    backoffs: Mapping[str, Backoff],
    *,
    callers: int = 40,
    retries: int = 5,
    seed: int = 0,
    title: str | None = None,
) -> Any:
    """``callers`` calls fail together at t = 0 and retry ``retries`` times:
    one row of dots per backoff, a dot per retry at the time it is sent."""
    valid.instance("backoffs", backoffs, cabc.Mapping)
    valid.integer("callers", callers, ge=1, le=1000)
    valid.integer("retries", retries, ge=1, le=30)
    valid.integer("seed", seed)
    check_title(title)
    if not backoffs:
        raise ValueError("backoffs must hold at least one labelled Backoff")
    fig = new_figure()
    rng = random.Random(seed)
    for i, (label, backoff) in enumerate(backoffs.items()):
        xs: list[float] = []
        ys: list[float] = []
        hover: list[str] = []
        for caller in range(callers):
            t = 0.0
            for k, d in enumerate(backoff.delays(retries, rng), start=1):
                t += d
                xs.append(t)
                ys.append(i + rng.uniform(-0.3, 0.3))  # vertical spread only to see overlapping dots
                hover.append(f"caller {caller + 1}, retry {k}")
        # The y value is only a spread within the row: hover shows the row's name instead.
        fig.add_scatter(x=xs, y=ys, mode="markers", name=label, text=hover,
                        marker={"size": 5, "opacity": 0.6, "color": PALETTE[i % len(PALETTE)]},
                        hovertemplate=f"{label}: %{{text}} sent at %{{x:.3f}} s<extra></extra>")  # fmt: skip
    fig.update_yaxes(tickvals=list(range(len(backoffs))), ticktext=list(backoffs))
    return style_figure(fig, title=title or f"When {callers} callers that failed together retry",
                        xaxis="time since the common failure (s)", yaxis="backoff", height=360)  # fmt: skip


# -- the widget ------------------------------------------------------------------
_POLICY_TIPS = {
    "timeouts": "Give up on a call after 0.3 s",
    "deadlines": "Pass the client's deadline down; drop work that is already too late",
    "retries": "Retry a failed call (3 attempts in all)",
    "backoff": "Wait (exponentially longer) before each retry; off = retry at once",
    "budget": "Retries may add at most 10% load",
    "breaker": "Stop calling a dependency that keeps failing; probe it after 1 s",
    "bulkhead": "At most 6 calls in flight to each dependency",
    "shedding": "Reject requests when the queue is long or the deadline is out of reach",
}
_POLICY_FLAGS = tuple(_POLICY_TIPS)


@dataclass(frozen=True)
class WidgetSettings:
    """Everything that decides one run of the widget."""

    fault: Fault = Fault.SLOW
    rate: float = 50.0
    jitter: Jitter = Jitter.FULL
    timeouts: bool = False
    deadlines: bool = False
    retries: bool = False
    backoff: bool = True
    budget: bool = False
    breaker: bool = False
    bulkhead: bool = False
    shedding: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "fault", valid.enum_member("fault", self.fault, Fault))
        object.__setattr__(self, "jitter", valid.enum_member("jitter", self.jitter, Jitter))
        valid.number("rate", self.rate, gt=0, le=MAX_RATE, unit="requests/s")
        for name in _POLICY_FLAGS:
            valid.boolean(name, getattr(self, name))


def _check_window(name: str, window: Any) -> None:
    """None or a (start, end) pair of times with start <= end."""
    if window is None:
        return
    if not isinstance(window, tuple) or len(window) != 2:
        raise valid.ArgumentTypeError(
            f"{name} must be a (start, end) pair of seconds or None, got {valid.shown(window)}"
        )
    valid.number(f"{name} start", window[0], ge=0, unit="seconds")
    valid.number(f"{name} end", window[1], ge=window[0], unit="seconds", note="not before start")


def run_scenario(
    settings: WidgetSettings,
    *,
    seed: int = 0,
    duration: float = 16.0,
    fault_window: tuple[float, float] = (3.0, 10.0),
) -> ChainModel:
    """Simulate the widget's model: C has ``settings.fault`` during ``fault_window``.

    To answer a click quickly this is the standard model at half scale: the
    default load is 50 req/s and C has 4 workers instead of 8, so a slow C
    can serve only about half of the checkouts, as in the notebook.
    """
    valid.instance("settings", settings, WidgetSettings)
    flags = {k: getattr(settings, k) for k in _POLICY_FLAGS}
    services = default_services()
    services["C"].workers = 4
    m = ChainModel(
        seed, rate=settings.rate, services=services, policies=make_policies(**flags, jitter=settings.jitter)
    )
    start, end = fault_window
    if settings.fault is not Fault.NONE:
        m.at(start, lambda m: m.set_fault("C", settings.fault))
        m.at(end, lambda m: m.set_fault("C", Fault.NONE))
    return m.run(duration)


class ResilienceWidget(Widget):
    """Break C, switch policies on and off, and see what A's clients get.

    >>> w = ResilienceWidget(seed=0)
    >>> w                         # the controls and the four panels, in a notebook
    >>> w.set_policy("breaker", True); w.summary()   # the same as clicking
    """

    def __init__(
        self, *, seed: int = 0, duration: float = 16.0, fault_window: tuple[float, float] = (3.0, 10.0)
    ) -> None:
        valid.integer("seed", seed)
        valid.number("duration", duration, gt=0, unit="seconds")
        start, end = fault_window
        if not 0 <= start < end <= duration:
            raise ValueError(f"fault_window must satisfy 0 <= start < end <= duration, got {fault_window!r}")
        self.seed = seed
        self.duration = float(duration)
        self.fault_window = (float(start), float(end))
        self.settings = WidgetSettings()
        self._cache: dict[WidgetSettings, ChainModel] = {}
        self.model = self._simulate()
        self._controls: dict[str, Any] = {}

    # -- plain methods (what the controls do) -------------------------------------
    def _simulate(self) -> ChainModel:
        s = self.settings
        model = self._cache.get(s)
        if model is None:
            model = run_scenario(s, seed=self.seed, duration=self.duration, fault_window=self.fault_window)
            if len(self._cache) >= 64:
                self._cache.pop(next(iter(self._cache)))
            self._cache[s] = model
        return model

    def _update(self, **changes: Any) -> None:
        self.settings = replace(self.settings, **changes)
        self.model = self._simulate()
        self._refresh()

    def set_fault(self, fault: Fault | str) -> None:
        """C's fault during the fault window: none, slow, erroring or down."""
        self._update(fault=valid.enum_member("fault", fault, Fault))

    def set_policy(self, name: str, on: bool) -> None:
        """Switch one policy (``timeouts``, ``deadlines``, ``retries``, ``backoff``,
        ``budget``, ``breaker``, ``bulkhead``, ``shedding``) on or off."""
        valid.one_of("policy", name, _POLICY_FLAGS)
        self._update(**{name: valid.boolean("on", on)})

    def set_jitter(self, jitter: Jitter | str) -> None:
        """The backoff's jitter: none, full, equal or decorrelated."""
        self._update(jitter=valid.enum_member("jitter", jitter, Jitter))

    def set_rate(self, rate: float) -> None:
        """Client load in requests per second (10 to 150)."""
        self._update(rate=valid.number("rate", rate, ge=10, le=150, unit="requests/s"))

    def summary(self) -> dict[str, float]:
        """Goodput share during the fault (all and browse), after it, and C's amplification."""
        m = self.model
        start, end = self.fault_window
        during = (min(start + 2.0, end - 0.5), end)
        return {
            "goodput_during": m.success(*during),
            "browse_during": m.success(*during, "browse"),
            "goodput_after": m.success(min(end + 3.0, self.duration - 1.0), self.duration),
            "amplification_C": m.amplification("C", start, end),
        }

    def status_text(self) -> str:
        s = self.summary()
        # After the fault, requests queued during it may finish too: more answers than requests arrive.
        draining = " (the backlog draining)" if s["goodput_after"] > 1.0 else ""
        return (
            f"During the fault {s['goodput_during']:.0%} of requests succeeded in time "
            f"(browse: {s['browse_during']:.0%}); at the end {s['goodput_after']:.0%}{draining}. "
            f"Requests reaching C per checkout: {s['amplification_C']:.2f}."
        )

    def figure(self) -> Any:
        """The current run as a static figure (no widgets needed)."""
        return timeline_figure(self.model, title=self._title(), fault=self._fault_shading())

    def _title(self) -> str:
        s = self.settings
        jitter = "no jitter" if s.jitter is Jitter.NONE else f"{s.jitter.value} jitter"
        retries = f"retries (backoff, {jitter})" if s.backoff else "retries (no backoff)"
        on = [retries if k == "retries" else k for k in _POLICY_FLAGS if getattr(s, k) and k != "backoff"]
        return f"C {s.fault.value}, {s.rate:g} req/s; policies: {', '.join(on) or 'none'}"

    def _fault_shading(self) -> tuple[float, float] | None:
        return None if self.settings.fault is Fault.NONE else self.fault_window

    # -- the view --------------------------------------------------------------------
    def _redraw(self) -> None:
        fig = self.fig
        traces = _panel_traces(self.model)
        with fig.batch_update():
            for trace, (row, _name, _color, _dash, xs, ys) in zip(fig.data, traces, strict=True):
                trace.update(x=xs, y=ys, text=_hover_text(row, ys))
            fig.layout.title.text = self._title()
            fig.update_annotations(selector={"name": "breaker note"}, text=_breaker_note(traces))
            shade = self._fault_shading()
            for shape in fig.layout.shapes:
                shape.visible = shade is not None
        self.status.value = status_html(self.status_text())

    def _sync_controls(self) -> None:
        s = self.settings
        values = {"fault": s.fault.value, "rate": int(s.rate), "jitter": s.jitter.value}
        values.update({name: getattr(s, name) for name in _POLICY_FLAGS})
        for name, control in self._controls.items():
            if control.value != values[name]:
                control.value = values[name]
        # Backoff, jitter and the budget only shape retries: greyed out while they have no effect.
        self._controls["jitter"].disabled = not (s.retries and s.backoff)
        self._controls["backoff"].disabled = self._controls["budget"].disabled = not s.retries

    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.fig, _plot = self._plot_area(
            timeline_figure(self.model, title=self._title(), fault=self.fault_window)
        )
        s = self.settings
        fault = dropdown("C is", [(f.value, f.value) for f in Fault], s.fault.value,
                         tip="What goes wrong with C between the shaded times")  # fmt: skip
        rate = slider("load (req/s)", int(s.rate), 10, 150, 10, integer=True,
                      tip="Requests per second the clients send to A (half checkout, half browse)")  # fmt: skip
        jitter = dropdown("jitter", [j.value for j in Jitter], s.jitter.value,
                          tip="Randomness in the retry backoff (needs retries and backoff on)")  # fmt: skip
        self._on_change(fault, self.set_fault)
        self._on_change(rate, self.set_rate)
        self._on_change(jitter, self.set_jitter)
        boxes = {name: checkbox(name, getattr(s, name), tip=tip) for name, tip in _POLICY_TIPS.items()}
        for name, box in boxes.items():
            self._on_change(box, lambda on, name=name: self.set_policy(name, on))
        self._controls = {"fault": fault, "rate": rate, "jitter": jitter, **boxes}
        policy_row = W.HBox(list(boxes.values()), layout=W.Layout(flex_flow="row wrap"))
        return self._page(W.HBox([fault, rate, jitter]), policy_row)
