"""The picture of a failing lab trial: a space-time diagram to step through (notebook 09).

:class:`FailureView` replays a :class:`~labkit.labs.Failure` (its shrunk
schedule, same seed, same run) recording every node's state after every
event, and draws:

* the run as a space-time diagram (:func:`labkit.viz.spacetime.spacetime_diagram`):
  one lane per node, an arrow per message, lost and cut messages as crosses,
  crashes and partitions shaded;
* each node's state on its lane, as a dot wherever it changed: hover it for
  the role, term, vote, log and commit index (what the lab's ``describe``
  says);
* the faults of the schedule as dotted lines, labelled;
* the violation as a red star at the moment where it was first seen, just above the lane of
  its node (clear of the event it marks), with the property's name; the earlier events it stems from
  (e.g. the commit of an entry a later leader lacks) as open red diamonds,
  labelled, and in view from the start.

A slider steps through the run one event at a time: the diagram grows up to
that event, a cursor marks it, and a table below shows every node's state at
that step. The view opens at the violation.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right
from typing import Any

from labkit.sim import Kind, TraceEvent
from labkit.viz.common import BAD_COLOR, Widget, button, legend_below, slider, stack_labels, vline
from labkit.viz.spacetime import spacetime_diagram

__all__ = ["FailureView", "STEP_KINDS"]

STEP_KINDS = (Kind.START, Kind.DELIVER, Kind.TIMER, Kind.CRASH, Kind.RESTART)
_FAULT_COLOR = "#882255"
_STATE_COLOR = "#009E73"
_STAR_ABOVE = 0.45  # lanes: a violation's star sits this far above its node's lane, clear of its event
_WINDOW = 1.5  # at most this many seconds of run are shown before the violation at first,
_MIN_WINDOW = 0.01  # at least this many,
_EVENTS_SHOWN = 60  # and about this many events
_COUNTED = re.compile(r"(.+) \((\d+)\)")  # a legend entry with its count: "delivered (13)"


def _state_text(node: str, time: float, state: dict[str, Any]) -> str:
    lines = [f"<b>{html.escape(node)}</b> at t = {time:.3f} s"]
    lines += [f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in state.items()]
    return "<br>".join(lines)


def _event_text(e: TraceEvent) -> str:
    if e.kind is Kind.DELIVER:
        text = repr(e.message)
        text = text if len(text) <= 90 else text[:89] + "…"
        return f"{e.node} receives from {e.src}: {text}"
    if e.kind is Kind.TIMER:
        return f"{e.node}: timer {e.reason!r} fires"  # a timer row's reason is the timer's name
    return f"{e.node}: {e.kind.value}"


class FailureView(Widget):
    """A failing trial to step through; see the module docstring.

    Works without a browser too: :meth:`figure` draws the run up to a step,
    :meth:`states` gives every node's state there, :attr:`step` is where the
    violation was seen.
    """

    def __init__(self, failure: Any) -> None:
        from labkit.labs.suite import Failure

        if not isinstance(failure, Failure):
            raise TypeError(f"failure must be a labkit.labs.Failure, got {type(failure).__name__}")
        self.failure = failure
        self.trial = failure.replay()
        sim = self.trial.sim
        self.events: list[TraceEvent] = list(sim.trace)  # the replayed run, row by row
        self.nodes = [n for n in sim.nodes if n in _lanes(self.trial)]
        self.violation = self._replayed_violation()
        # Steps: the trace rows where something happened at a node.
        self.steps = [i for i, e in enumerate(self.events) if e.kind in STEP_KINDS and e.node in self.nodes]
        if not self.steps:
            self.steps = [max(len(self.events) - 1, 0)]
        self.step = self._violation_step()
        # Each node's states, only where they changed: (row, time, state).
        self.history: dict[str, list[tuple[int, float, dict[str, Any]]]] = {n: [] for n in self.nodes}
        for row, t, node, state in self.trial.snapshots:
            h = self.history.get(node)
            if h is not None and (not h or h[-1][2] != state):
                h.append((row, t, state))
        self.shown = self.step  # the step on view

    def _replayed_violation(self) -> Any:
        """The violation as the replay saw it (the same as the failure's: same seed, same schedule)."""
        outcome = self.trial.outcome
        return outcome.violation if outcome is not None else None

    def _violation_step(self) -> int:
        v = self.violation
        if v is None or v.event is None:
            return len(self.steps) - 1
        return max(0, bisect_right(self.steps, v.event) - 1)

    # -- what the view shows -----------------------------------------------------
    def time_of(self, step: int) -> float:
        """Virtual time of step ``step``."""
        return self.events[self.steps[step]].time if self.events else 0.0

    def states(self, step: int | None = None) -> dict[str, dict[str, Any] | None]:
        """Every node's state at ``step`` (default: the violation's); None before its first event."""
        step = self.step if step is None else step
        # A step's handler ran before its snapshot was taken: count everything before the next step.
        bound = self.steps[step + 1] if step + 1 < len(self.steps) else len(self.events)
        out: dict[str, dict[str, Any] | None] = {}
        for node, h in self.history.items():
            i = bisect_right([r for r, _, _ in h], bound - 1) - 1
            out[node] = h[i][2] if i >= 0 else None
        return out

    def header(self) -> str:
        """What failed, the shrunk schedule and the line to reproduce it, as HTML."""
        f = self.failure
        v = self.violation or f.shown_violation
        faults = f.schedule
        shrunk = ""
        if f.shrunk is not None:
            shrunk = f" (shrunk from {len(f.faults)} to {len(faults)})"
        if faults:
            schedule = f"fault schedule{shrunk}:<ul style='margin:0'>"
            said = [f"<li>{x.at:.3f} s: {html.escape(f.lab.say(x))}</li>" for x in faults]
            schedule += "".join(said) + "</ul>"
        else:
            schedule = f"fault schedule{shrunk}: none, it fails without any fault<br>"
        return (
            f"<div class='labkit-failure'><b style='color:{BAD_COLOR}'>✗ {html.escape(v.property.name)}</b>: "
            f"{html.escape(v.detail)}<br>"
            f"<i>{html.escape(v.property.says)}</i>"
            + (f" ({html.escape(v.property.source)})" if v.property.source else "")
            + (f"<br>where to look: {html.escape(v.property.look_at)}" if v.property.look_at else "")
            + f"<br>scenario <b>{html.escape(f.scenario)}</b>, seed {f.seed}, seen at "
            f"{'node ' + html.escape(v.node) + ', ' if v.node else ''}t = {v.time:.3f} s<br>"
            + schedule
            + f"reproduce: <code>{html.escape(f.reproduce)}</code>"
            + "".join(f"<br>note: {html.escape(n)}" for n in f.notes)
            + "</div>"
        )

    def state_table(self, step: int | None = None) -> str:
        """Every node's state at ``step`` as an HTML table."""
        step = self.step if step is None else step
        states = self.states(step)
        keys: list[str] = []
        for s in states.values():
            for k in s or {}:
                if k not in keys:
                    keys.append(k)
        pad = "style='padding:1px 10px 1px 0; text-align:left'"
        head = "".join(f"<th {pad}>{html.escape(k)}</th>" for k in ["node", *keys])
        body = ""
        for node, s in states.items():
            cells = "".join(f"<td {pad}>{html.escape(str((s or {}).get(k, '')))}</td>" for k in keys)
            body += f"<tr><td {pad}><b>{html.escape(node)}</b></td>{cells if s else '<td>(not started)</td>'}</tr>"
        event = self.events[self.steps[step]]
        caption = f"step {step + 1} of {len(self.steps)} · t = {event.time:.3f} s · {html.escape(_event_text(event))}"
        return f"<div style='font-size:90%'>{caption}<table class='labkit-states'><tr>{head}</tr>{body}</table></div>"

    def figure(self, step: int | None = None) -> Any:
        """The space-time diagram up to ``step`` (default: the violation's), with states, faults and the violation."""
        import plotly.graph_objects as go

        step = self.step if step is None else step
        until = self.time_of(step)
        v = self.violation
        title = f"{self.failure.scenario}, seed {self.failure.seed}: step {step + 1} of {len(self.steps)}"
        # Boot notes left out: the state dots below give each server's state from its boot on.
        fig = spacetime_diagram(self.trial.sim, nodes=self.nodes, until=until, title=title, boot_notes=False)
        lane = {n: i for i, n in enumerate(self.nodes)}
        # Each server's state where it changed, up to the step: hover for role, term, log...
        sx, sy, stext = [], [], []
        for node, h in self.history.items():
            for _row, t, state in h:
                if t <= until:
                    sx.append(t)
                    sy.append(lane[node])
                    stext.append(_state_text(node, t, state))
        fig.add_trace(
            go.Scatter(
                x=sx,
                y=sy,
                mode="markers",
                marker={"color": _STATE_COLOR, "size": 6, "symbol": "circle"},
                name="server state (hover)",
                hovertext=stext,
                hoverinfo="text",
            )
        )
        shapes = list(fig.layout.shapes)
        notes = []
        for t, _fault, what in self.trial.injected:
            shapes.append(vline(t, _FAULT_COLOR, "dot", 1.2))
            notes.append(_label(t, what, _FAULT_COLOR))
        shapes.append(vline(until, "#333333", "solid", 1.2))
        cause = [
            (t, node, what) for node, t, what in getattr(v, "earlier", ()) if t <= until and node in lane
        ]
        if cause:  # where the violation started, e.g. an entry's commit that a later leader lacks
            notes += [_label(t, what, BAD_COLOR) for t, _node, what in cause]
            fig.add_trace(
                go.Scatter(
                    x=[t for t, _, _ in cause],
                    y=[lane[node] for _, node, _ in cause],
                    mode="markers",
                    marker={"color": BAD_COLOR, "size": 14, "symbol": "diamond-open", "line": {"width": 2}},
                    name="where it started",
                    hovertext=[html.escape(f"{what} at t = {t:.3f} s") for t, _, what in cause],
                    hoverinfo="text",
                )
            )
        if v is not None and v.time is not None:
            shapes.append(vline(v.time, BAD_COLOR, "dash", 1.2))
            notes.append(_label(v.time, f"✗ {v.property.name}", BAD_COLOR))
            if step >= self.step:
                n = len(self.nodes)
                if v.node not in lane:  # a property of the whole run: the star gets a row of its own on top
                    fig.update_yaxes(range=[n - 0.5, -1.3], tickvals=[-0.8, *range(n)],
                                     ticktext=["all nodes", *self.nodes])  # fmt: skip
                elif lane[v.node] == 0:  # room above the top lane for its star
                    fig.update_yaxes(range=[n - 0.5, -0.5 - _STAR_ABOVE])
                fig.add_trace(
                    go.Scatter(
                        # Just above the node's lane, on the red line: on the lane it hid the event it marks.
                        x=[v.time],
                        y=[lane[v.node] - _STAR_ABOVE if v.node in lane else -0.8],
                        mode="markers",
                        marker={"color": BAD_COLOR, "size": 18, "symbol": "star", "line": {"width": 1}},
                        name="violation",
                        hovertext=[f"<b>{html.escape(v.property.name)}</b><br>{html.escape(v.detail)}"],
                        hoverinfo="text",
                    )
                )
        fig.layout.shapes = shapes
        window = self.window(step)
        fig.layout.annotations = notes = stack_labels(notes, window, 0.27)  # a label: a quarter of the plot
        fig.update_xaxes(range=list(window))
        _count_in_view(fig, window)
        legend_below(fig)
        top = 80 + max((n["yshift"] for n in notes), default=0)  # the title stays above the stacked labels:
        title = {"yref": "container", "y": 1.0, "yanchor": "top", "pad": {"t": 12}}  # at the very top
        fig.update_layout(title=title)
        fig.update_layout(margin={"t": top, "b": 120}, height=max(360, 100 + top + 55 * len(self.nodes)))
        return fig

    def window(self, step: int | None = None) -> tuple[float, float]:
        """The x range shown: from just before the last fault before the violation (or the last few
        dozen events, if no fault came first), at most 1.5 s and at least 10 ms, but always from the
        first fault of a shrunk schedule (each is needed) and the first commit a violation names, plus a
        small margin on each side; zoom out for the rest. A ``step`` earlier than that range moves the range back, same
        width, to end just after it (the diagram is drawn up to the step)."""
        start, end = self._violation_window()
        if step is not None and self.time_of(step) < start:
            width = end - start
            start = max(0.0, self.time_of(step) - 0.85 * width)  # the run so far fills the view
            end = start + width
        # A margin on both sides, so that no marker is cut in half at an edge of the plot: also left of
        # t = 0, where every node boots (and where a server that boots broken fails at once).
        margin = 0.04 * (end - start) + 1e-3
        return start - margin, end + 2 * margin

    def _violation_window(self) -> tuple[float, float]:
        """What the first view must show, without margins."""
        v = self.violation
        end = v.time if v is not None and v.time is not None else self.time_of(self.step)
        faults = [t for t, _f, _w in self.trial.injected if t <= end]
        if faults:
            start = faults[-1] - 0.05
        else:  # the last few dozen events, boots left out (they all happen at 0)
            busy = [i for i in self.steps[: self.step + 1] if self.events[i].kind is not Kind.START]
            start = self.events[busy[-_EVENTS_SHOWN:][0]].time if busy else 0.0
        start = max(0.0, min(start, end - _MIN_WINDOW), end - _WINDOW)
        shrunk = self.failure.shrunk
        cause = [t for _node, t, _what in getattr(v, "earlier", ()) if t <= end]
        # A shrunk schedule keeps only faults the failure needs (each one removed, it passes): all in view.
        cause += [f.at for f in (shrunk.faults if shrunk is not None else ()) if f.at <= end]
        if cause:  # what the violation stems from is in view too, however long before
            start = max(0.0, min(start, min(cause) - 0.02 * (end - min(cause)) - 1e-3))
        return start, max(end, start + _MIN_WINDOW)  # a failure within 10 ms of t = 0 too

    # -- the widget ----------------------------------------------------------------
    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.fig, self.plot = self._plot_area(self.figure(self.shown))
        # The slider counts steps from 1, as the caption does.
        self.slider = slider("step", self.shown + 1, 1, len(self.steps), integer=True, width="60%",
                             tip="move through the run one event at a time")  # fmt: skip
        back = button("◀ one back", tip="the event before")
        forward = button("one on ▶", tip="the event after")
        home = button("the violation", tip="where the property was first seen broken")
        self._on_change(self.slider, lambda value: self.go(value - 1))
        self._on_click(back, lambda: self.go(self.shown - 1))
        self._on_click(forward, lambda: self.go(self.shown + 1))
        self._on_click(home, lambda: self.go(self.step))
        self.table = W.HTML()
        return self._page(
            W.HTML(self.header()), W.HBox([self.slider, back, forward, home]), below=[self.table]
        )

    def go(self, step: int) -> None:
        """Show ``step`` (clipped to the run): the diagram up to it and every node's state there."""
        self.shown = min(max(int(step), 0), len(self.steps) - 1)
        self._refresh()

    def _sync_controls(self) -> None:
        self.slider.value = self.shown + 1

    def _redraw(self) -> None:
        self.fig = self.figure(self.shown)
        self._plots = ((self.fig, self.plot),)
        self.table.value = self.state_table(self.shown)


def _lanes(trial: Any) -> list[str]:
    world = trial.world
    ids = getattr(world, "ids", None)
    return list(ids) if ids is not None else list(trial.sim.nodes)


def _label(x: float, text: str, color: str) -> dict[str, Any]:
    return {
        "x": x,
        "y": 1.0,
        "xref": "x",
        "yref": "paper",
        "text": html.escape(text if len(text) <= 40 else text[:39] + "…"),
        "showarrow": False,
        "yanchor": "bottom",
        "font": {"size": 10, "color": color},
    }


def _count_in_view(fig: Any, window: tuple[float, float]) -> None:
    """The legend's counts ("delivered (13)") of what the view shows: the diagram is drawn from t = 0
    (zoom out to see it), but the run before the view is not what its legend should count."""
    start, end = window
    counted: dict[str, int] = {}
    for trace in fig.data:
        found = _COUNTED.fullmatch(trace.name or "")
        if found and trace.mode == "markers":  # a series' heads, or the events
            shown = sum(1 for x in trace.x or () if x is not None and start <= x <= end)
            counted[trace.name] = counted.get(trace.name, 0) + shown
    for trace in fig.data:
        if trace.name in counted:
            trace.name = f"{_COUNTED.fullmatch(trace.name)[1]} ({counted[trace.name]})"
    fig.update_layout(legend_title_text="in view:")
