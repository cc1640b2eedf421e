"""Figures and the widget of notebook 15 (sagas).

:func:`saga_timeline` draws one lane per service (and the orchestrator) with the requests,
compensations, outcomes, log writes, crashes and down time of one run; :class:`SagaWidget` chooses
which step fails and where the orchestrator crashes, and redraws it.
"""

from __future__ import annotations

import html
from typing import Any

from labkit import validation as valid
from labkit.saga.definition import ORDER_SAGA, Order
from labkit.saga.naive import NAIVE_CALLS, run_naive_saga
from labkit.saga.orchestrator import CrashPoint
from labkit.saga.scenario import FAULT_KINDS, SERVICES, run_order_saga, timeline
from labkit.viz.common import (
    BAD_COLOR,
    MUTED_COLOR,
    OK_COLOR,
    PALETTE,
    Widget,
    check_figure,
    check_title,
    down_intervals,
    dropdown,
    new_figure,
    slider,
    status_html,
    style_figure,
    toggles,
)

__all__ = ["saga_timeline", "final_state_html", "two_pc_figure", "SagaWidget", "NO_CRASH"]

LANES = ("orchestrator", "shop", "coordinator", *SERVICES, "probe")

# category -> (legend name, marker symbol, colour, size)
_STYLE = {
    "request": ("request sent", "circle", PALETTE[0], 10),
    "compensation": ("compensation sent", "diamond", PALETTE[1], 11),
    "effect": ("service changed its data", "square", OK_COLOR, 9),
    "no effect": ("service changed nothing (held, refused, duplicate)", "square-open", PALETTE[3], 9),
    "log": ("saga log write", "line-ns-open", PALETTE[7], 12),
    "crash": ("crash", "x", BAD_COLOR, 14),
    "restart": ("restart", "triangle-up", OK_COLOR, 12),
}
# Drawn biggest first, so that a marker on the same spot as a bigger one shows on top of it (a crash
# drawn last hid the square of the change its service made just before); the legend keeps the order above.
_DRAWN = sorted(_STYLE, key=lambda category: -_STYLE[category][3])
_RANK = {category: 1000 + i for i, category in enumerate(_STYLE)}


def _lanes_of(rows: list[dict[str, Any]]) -> list[str]:
    used = {r["lane"] for r in rows} | set(SERVICES)  # every service, even one never called
    return [lane for lane in LANES if lane in used]


def _fill_timeline(fig: Any, run: Any, title: str) -> None:
    rows = timeline(run.trace)
    lanes = _lanes_of(rows)
    last = max((r["time"] for r in rows), default=1.0)
    end = last + 0.05 * last + 0.005  # a node still down at the end stays grey to the edge
    fresh = len(fig.data) != len(_STYLE) + 1
    if fresh:  # build the traces once; later redraws only change their data
        fig.data = []
        for category in _DRAWN:
            name, symbol, color, size = _STYLE[category]
            marker = {"symbol": symbol, "color": color, "size": size, "line": {"width": 1.5, "color": color}}
            fig.add_scatter(x=[], y=[], mode="markers", name=name, marker=marker, legendrank=_RANK[category],
                            hovertemplate="%{y} at %{x:.3f}s<br>%{text}<extra></extra>")  # fmt: skip
        # The grey bands are layout shapes, which have no legend entry: this empty series gives them one.
        fig.add_scatter(x=[None], y=[None], mode="markers", name="process down", hoverinfo="skip",
                        marker={"symbol": "square", "color": MUTED_COLOR, "opacity": 0.5, "size": 12},
                        legendrank=2000)  # fmt: skip
        style_figure(fig, title=title, xaxis="virtual time (s)", yaxis="process", height=420)
    for trace, category in zip(fig.data[: len(_STYLE)], _DRAWN, strict=True):
        pts = [r for r in rows if r["category"] == category]
        trace.x = [r["time"] for r in pts]
        trace.y = [r["lane"] for r in pts]
        trace.text = [r["what"] for r in pts]
    row = {lane: len(lanes) - 1 - i for i, lane in enumerate(lanes)}  # the first lane on top
    fig.layout.shapes = [
        {"type": "rect", "x0": start, "x1": stop, "y0": row[lane] - 0.3, "y1": row[lane] + 0.3, "yref": "y",
         "fillcolor": MUTED_COLOR, "opacity": 0.25, "line": {"width": 0}}
        for lane, start, stop in down_intervals(run.trace, end)
    ]  # fmt: skip
    fig.layout.title.text = title
    # The whole range: a lane shows even when nothing happened on it.
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(lanes)), type="category",
                     range=[-0.5, len(lanes) - 0.5])  # fmt: skip
    fig.update_xaxes(range=[-0.02 * end, end])


def saga_timeline(run: Any, *, title: str | None = None, figure: Any = None) -> Any:
    """The timeline of one run (a ``SagaRun``, ``NaiveRun`` or ``TwoPCRun``).

    Grey bands are the time a node was down. Pass ``figure`` (a
    ``FigureWidget``) to redraw it in place.
    """
    check_title(title)
    check_figure(figure)
    if not hasattr(run, "trace") or not hasattr(run, "outcome"):
        raise TypeError(
            f"run must be the result of run_order_saga, run_naive_saga or run_two_phase_commit, got {run!r}"
        )
    fig = new_figure(figure)
    title = title or f"Steps and compensations per service (final state: {run.outcome})"
    with fig.batch_update():
        _fill_timeline(fig, run, title)
    return fig


def final_state_html(run: Any) -> str:
    """An HTML table of what the order left in each service, and the verdict."""
    if not (hasattr(run, "effects") and hasattr(run, "order")):
        raise valid.ArgumentTypeError(
            f"run must be what run_order_saga, run_naive_saga or run_two_phase_commit returns, got {valid.shown(run)}"
        )
    e = run.effects
    order: Order = run.order
    reserved = f"{e.reserved} unit(s) reserved in {e.reservations} reservation(s)"
    rows = [
        ("inventory", reserved, e.reserved == order.qty),
        ("payment", f"{e.charged} charged in {e.charges} charge(s)", e.charged == order.amount),
        ("shipping", f"{e.labels} label(s)", e.labels == 1),
    ]
    verdict = BAD_COLOR if run.violations or run.outcome == "partial" else OK_COLOR  # all or none is fine
    cells = "".join(
        f"<tr><td style='padding:2px 8px'>{s}</td><td style='padding:2px 8px'>{html.escape(text)}</td>"
        f"<td style='padding:2px 8px'>{'holds' if held else '-'}</td></tr>"
        for s, text, held in rows
    )
    problems = "".join(f"<li>{html.escape(v)}</li>" for v in run.violations) or "<li>none</li>"
    return (
        "<div class='labkit-saga-final'><table style='border-collapse:collapse'>"
        "<tr><th style='text-align:left;padding:2px 8px'>service</th><th style='text-align:left;padding:2px 8px'>"
        "effect of this order</th><th style='text-align:left;padding:2px 8px'>done?</th></tr>"
        f"{cells}</table><p style='color:{verdict}'><b>Final state: {run.outcome}</b></p>"
        f"<p>Invariant violations:</p><ul>{problems}</ul></div>"
    )


def two_pc_figure(run: Any, *, title: str | None = None) -> Any:
    """Bars: how long each participant was in doubt (locked); markers: what a
    second order for the same customer was told, over time."""
    check_title(title)
    if not hasattr(run, "in_doubt"):
        raise TypeError(f"run must be the result of run_two_phase_commit, got {run!r}")
    fig = new_figure()
    end = max([t for t, _ in run.probes] + [s for s, _ in run.in_doubt.values()] + [0.1])
    names = list(run.in_doubt)
    spans = [(start, (stop if stop is not None else end) - start) for start, stop in run.in_doubt.values()]
    fig.add_bar(y=names, x=[length for _, length in spans], base=[start for start, _ in spans], orientation="h",
                name="in doubt (prepared, locked)", marker_color=PALETTE[1],
                hovertemplate="%{y}: in doubt for %{x:.2f}s<extra></extra>")  # fmt: skip
    for label, color, test in (
        ("other order served", OK_COLOR, lambda o: o == "ok"),
        ("other order refused (locked)", BAD_COLOR, lambda o: o != "ok"),
    ):
        pts = [(t, o) for t, o in run.probes if test(o)]
        fig.add_scatter(x=[t for t, _ in pts], y=["other order"] * len(pts), mode="markers", name=label,
                        marker={"color": color, "size": 9}, text=[o for _, o in pts],
                        hovertemplate="%{x:.2f}s: %{text}<extra></extra>")  # fmt: skip
    for t, node in run.crashes:
        # The label sits above the plot area so it does not cover the first bar.
        fig.add_vline(x=t, line_dash="dot", line_color=BAD_COLOR)
        fig.add_annotation(x=t, y=1.0, xref="x", yref="paper", yanchor="bottom", xanchor="left",
                           text=f"{node} crashes", showarrow=False, font={"color": BAD_COLOR})  # fmt: skip
    title = title or f"Two-phase commit: participants blocked for {run.blocking_window:.2f} s"
    style_figure(fig, title=title, xaxis="virtual time (s)", yaxis="participant", height=320)
    fig.update_yaxes(
        type="category", categoryorder="array", categoryarray=["other order", *reversed(SERVICES)]
    )
    return fig


_FLAVOURS = ("durable saga", "first-attempt OrderSaga")
_STEPS = ("none", *(s.name for s in ORDER_SAGA.steps))
_KINDS = tuple(k for k in FAULT_KINDS if k != "none")
# The crash picker's value for "no crash": ipywidgets reads a Dropdown value of None as "nothing selected".
NO_CRASH = "no crash"


class SagaWidget(Widget):
    """Choose which step fails and how, and where the orchestrator crashes.

    >>> w = SagaWidget()
    >>> w.fail("charge", "very slow"); w.crash(3)     # what the controls do
    >>> w.result.outcome, w.result.violations
    >>> w                                              # displays the widget

    ``crash`` takes, for the durable saga, the log write after which the
    orchestrator dies (``before_send`` chooses whether that write's requests
    left first) and for the first-attempt saga the call it dies before (one of
    :data:`~labkit.saga.naive.NAIVE_CALLS`). ``None`` (or :data:`NO_CRASH`) means no crash.
    """

    def __init__(self, *, seed: int = 0, flavour: str = "durable saga") -> None:
        valid.integer("seed", seed)
        self.seed = seed
        self.flavour = "durable saga"
        self.failing_step = "none"
        self.failure = "reject"
        self.crash_point: CrashPoint | str | None = None
        self.retries = 0
        self.baseline_writes = 0
        self.result: Any = None
        self.set_flavour(flavour)

    # -- what the controls do -------------------------------------------------
    def set_flavour(self, flavour: str) -> None:
        self.flavour = valid.one_of("flavour", flavour, _FLAVOURS)
        self.crash_point = None
        self._simulate()

    def fail(self, step: str, kind: str = "reject") -> None:
        """Make ``step`` ("reserve", "charge", "ship" or "none") fail with ``kind``."""
        valid.one_of("step", step, _STEPS)
        valid.one_of("kind", kind, _KINDS)
        self.failing_step, self.failure = step, kind
        self.crash_point = None  # the crash points depend on the run
        self._simulate()

    def crash(self, point: int | str | None, *, before_send: bool = True) -> None:
        """Crash the orchestrator at ``point`` (see the class docstring)."""
        if point is None or point == NO_CRASH:
            self.crash_point = None
        elif self.flavour == "durable saga":
            valid.integer("point", point, ge=1, le=self.baseline_writes, note="a log write of this run")
            self.crash_point = CrashPoint(point, before_send)
        else:
            self.crash_point = valid.one_of("point", point, NAIVE_CALLS)
        self._simulate()

    def set_retries(self, n: int) -> None:
        """How often the caller retries the first-attempt saga after it raised."""
        valid.integer("retries", n, ge=0, le=3)
        self.retries = n
        self._simulate()

    @property
    def faults(self) -> dict:
        if self.failing_step == "none":
            return {}
        return {ORDER_SAGA.steps[ORDER_SAGA.index(self.failing_step)].service: FAULT_KINDS[self.failure]}

    def crash_options(self) -> list[tuple[str, Any]]:
        """(label, value) of every crash point the current run offers."""
        if self.flavour == "durable saga":
            opts: list[tuple[str, Any]] = [("no crash", NO_CRASH)]
            for k in range(1, self.baseline_writes + 1):
                opts.append((f"after log write {k}, before sending", (k, True)))
                opts.append((f"after log write {k}, after sending", (k, False)))
            return opts
        return [("no crash", NO_CRASH)] + [(f"before calling {c}", c) for c in NAIVE_CALLS]

    # -- simulation ----------------------------------------------------------------
    def _simulate(self) -> None:
        if self.flavour == "durable saga":
            if self.crash_point is None:
                self.result = run_order_saga(faults=self.faults, seed=self.seed)
                self.baseline_writes = self.result.writes
            else:
                self.result = run_order_saga(faults=self.faults, crashes=[self.crash_point], seed=self.seed)
        else:
            crash, retries = self.crash_point, self.retries
            self.result = run_naive_saga(
                faults=self.faults, crash_before=crash, retries=retries, seed=self.seed
            )
        self._refresh()

    def summary(self) -> str:
        r = self.result
        if self.flavour == "durable saga":
            status = r.status.value if r.status is not None else "never started"
            head = f"durable saga: log says {status}, {r.writes} log writes"
        else:
            head = "first-attempt OrderSaga: " + "; ".join(f"{how}: {what}" for how, what in r.attempts)
        verdict = "invariant holds" if r.ok else "INVARIANT BROKEN: " + "; ".join(r.violations)
        return f"{head}. Final state: {r.outcome}. {verdict}."

    def figure(self) -> Any:
        """A static plotly figure of the current run."""
        return saga_timeline(self.result)

    # -- the widget ------------------------------------------------------------------
    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.final = W.HTML()
        self.fig, _plot = self._plot_area()
        self.flavour_picker = toggles(list(_FLAVOURS), self.flavour, description="saga", button_width="190px",
                                      tips=["the orchestrator with a durable log", "a first attempt, as written"])  # fmt: skip
        self.step_picker = dropdown("failing step", list(_STEPS), self.failing_step, tip="which step fails")
        self.kind_picker = dropdown("how", list(_KINDS), self.failure, tip="how the failing step fails")
        self.crash_picker = dropdown("crash", [], tip="where the orchestrator process dies")
        self.retry_slider = slider("retries", self.retries, 0, 3, integer=True, continuous=True,
                                   tip="how often the caller runs the first-attempt saga again after an error")  # fmt: skip
        self._on_change(self.flavour_picker, self.set_flavour)
        self._on_change(self.step_picker, lambda step: self.fail(step, self.kind_picker.value))
        self._on_change(self.kind_picker, lambda kind: self.fail(self.step_picker.value, kind))
        self._on_change(self.crash_picker, self._on_crash)
        self._on_change(self.retry_slider, self.set_retries)
        return self._page(
            self.flavour_picker,
            W.HBox([self.step_picker, self.kind_picker]),
            W.HBox([self.crash_picker, self.retry_slider]),
            below=[self.final],
        )

    def _on_crash(self, value: Any) -> None:
        if isinstance(value, tuple):  # (log write, before sending?) of the durable saga
            self.crash(value[0], before_send=value[1])
        else:
            self.crash(value)

    def _sync_controls(self) -> None:
        # Methods called from Python move the controls too.
        self.flavour_picker.value = self.flavour
        self.step_picker.value = self.failing_step
        self.kind_picker.value = self.failure
        self.retry_slider.value = self.retries
        self.crash_picker.options = self.crash_options()
        cp = self.crash_point
        if isinstance(cp, CrashPoint):
            cp = (cp.after_write, cp.before_send)
        self.crash_picker.value = NO_CRASH if cp is None else cp
        self.retry_slider.disabled = self.flavour == "durable saga"

    def _redraw(self) -> None:
        saga_timeline(self.result, figure=self.fig)
        self.final.value = final_state_html(self.result)
        self.status.value = status_html(self.summary(), "info" if self.result.ok else "refused")
