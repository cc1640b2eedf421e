"""Pictures of the model checker's runs, and the explorer to step through them (notebook 12).

* :func:`run_diagram` draws a run of a model (a counterexample, or any
  walk) on the space-time diagram: step *i* of the run at *i* on the x axis,
  an arrow per message from the step that sent it to the step that
  delivered it, and the violated invariant marked at the step where it broke;
* :func:`counterexample_diagram` does it for a search :class:`~labkit.explore.Result`;
* :class:`Explorer` is the widget: from the state reached it shows every
  node's state, the messages in flight and one button per enabled action
  ("deliver RequestVote: n1 → n2", "timeout n3 (election)", "crash n2");
  press one to take it. **Undo** goes back, **Next step of the counterexample**
  and **Jump to the counterexample** follow the run a search found.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from labkit import validation as valid
from labkit.explore import Action, Model, Result, Space
from labkit.explore.replay import trace_of
from labkit.explore.search import where, without_name
from labkit.explore.walk import Walk
from labkit.viz.common import BAD_COLOR, OK_COLOR, Widget, button, check_title, legend_below, vline
from labkit.viz.spacetime import spacetime_diagram

__all__ = ["run_diagram", "counterexample_diagram", "Explorer"]

MAX_BUTTONS = 60  # buttons shown at once; the rest are listed by number
STAR_ABOVE = 0.45  # lanes: the violation's star sits this far above the last step's lane
START_NOTE = "step 0: the start, no action taken yet"
BOOT_NOTE = "<br>(the diamonds: what the nodes noted as they booted)"
PRESS_NOTE = "<br>press an enabled action below to take step 1"


def run_diagram(
    space: Space,
    actions: Sequence[Action],
    *,
    violation: tuple[str, str] | None = None,
    start: Any = None,
    title: str | None = None,
) -> Any:
    """A run of ``space``'s model as a space-time diagram (a ``go.Figure``), one step per x unit.

    ``violation``: ``(invariant, what is wrong)``, marked with a red line and
    a star at the last step. ``start``: the state the run starts from, if not
    the model's start.
    """
    import plotly.graph_objects as go

    valid.instance("space", space, Space)
    check_title(title)
    trace = trace_of(space, actions, violation=violation, start=start)
    n = len(actions)
    name = title or f"{space.model.name}: {n} step{'s' * (n != 1)}"
    # From step -0.5: what the nodes note while they boot sits at step 0, and its diamonds are whole.
    fig = spacetime_diagram(trace, nodes=list(space.ids), title=name, start=-0.5, end=max(n, 1) + 0.5)
    fig.update_xaxes(title_text="step of the run", dtick=1 if n <= 40 else None, tick0=0)
    _bend_messages(fig)
    lanes = list(space.ids)
    steps = [(i, a) for i, a in enumerate(actions, 1) if a.node in lanes]
    fig.add_trace(
        go.Scatter(
            x=[i for i, _ in steps],
            y=[lanes.index(a.node) for _, a in steps],  # type: ignore[arg-type]
            mode="markers",
            marker={"color": "#555555", "size": 11, "symbol": "circle-open"},
            name="step (hover: the action)",
            hovertext=[f"step {i}: {html.escape(str(a))}" for i, a in steps],
            hoverinfo="text",
        )
    )
    if violation is not None:
        lane = list(space.ids).index(actions[-1].node) if actions and actions[-1].node in space.ids else 0
        if lane == 0:  # room above the top lane for its star
            fig.update_yaxes(range=[len(space.ids) - 0.5, -0.5 - STAR_ABOVE])
        fig.add_trace(
            go.Scatter(
                # Just above the lane, on the red line: on it, the star hid the last step's markers.
                x=[n],
                y=[lane - STAR_ABOVE],
                mode="markers",
                marker={"color": BAD_COLOR, "size": 18, "symbol": "star", "line": {"width": 1}},
                name=f"✗ {violation[0]}",
                hovertext=[f"<b>{html.escape(violation[0])}</b><br>{html.escape(violation[1])}"],
                hoverinfo="text",
            )
        )
        fig.layout.shapes = [*fig.layout.shapes, vline(n, BAD_COLOR, "dash", 1.5)]
        fig.add_annotation(
            x=n, y=1.0, xref="x", yref="paper", yanchor="bottom", xanchor="right", showarrow=False,
            text=html.escape(f"✗ {violation[0]}"), font={"size": 11, "color": BAD_COLOR},
        )  # fmt: skip
    if n == 0:  # an empty plot would read as a broken figure; the note starts right of step 0's diamonds
        booted = any(t.name.startswith("events") and t.x for t in fig.data)
        fig.add_annotation(
            x=0.15, y=0.5, xref="x", yref="paper", xanchor="left", align="left", showarrow=False,
            text=START_NOTE + (BOOT_NOTE if booted else ""), font={"size": 13, "color": "#555555"},
        )  # fmt: skip
    legend_below(fig)
    fig.update_layout(margin={"t": 90, "b": 120}, height=max(340, 190 + 55 * len(space.ids)))
    return fig


def _bend_messages(fig: Any, samples: int = 12) -> None:
    """Draw each message that spans more than one step as a curve bowed towards later steps.

    Steps are evenly spaced, so straight lines from one sender at one step meet: a request
    delivered two steps later lies exactly on the line through the one delivered a step
    later, and the picture reads as a chain (coordinator → inventory → payment) that never
    happened. A bow that grows with the span keeps such lines apart.
    """
    for tr in fig.data:
        if tr.mode != "lines" or tr.x is None:
            continue
        xs, ys = list(tr.x), list(tr.y)
        new_x: list[Any] = []
        new_y: list[Any] = []
        for i in range(0, len(xs) - 2, 3):  # segments come as x0, x1, None
            x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
            if None in (x0, x1, y0, y1) or x1 - x0 <= 1 or y0 == y1:
                new_x += [x0, x1, None]
                new_y += [y0, y1, None]
                continue
            cx, cy = (x0 + x1) / 2 + min(0.35 * (x1 - x0 - 1), 1.0), (y0 + y1) / 2
            ts = [k / samples for k in range(samples + 1)]
            new_x += [(1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t**2 * x1 for t in ts] + [None]
            new_y += [(1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t**2 * y1 for t in ts] + [None]
        tr.x, tr.y = new_x, new_y


def counterexample_diagram(result: Result, *, title: str | None = None) -> Any:
    """The violating run a search found, with the violated invariant marked."""
    valid.instance("result", result, Result)
    v = result.violation
    if v is None:
        raise ValueError("the search found no violation: there is no run to draw")
    name = title or f"{result.model.name}: {v.invariant} broken {where(len(v))}"
    return run_diagram(result.space, v.actions, violation=(v.invariant, v.message), title=name)


def _cell(value: Any) -> str:
    text = str(value)
    return html.escape(text if len(text) <= 80 else text[:79] + "…")


class Explorer(Widget):
    """Step through a model's runs by hand; see the module docstring.

    ``source``: a search :class:`~labkit.explore.Result` (its model, bounds,
    invariants and counterexample), a :class:`~labkit.explore.walk.Walk`, or a
    :class:`~labkit.explore.Model` (then give ``invariants`` and ``bounds``).
    The methods do what the buttons do: :meth:`do`, :meth:`undo`,
    :meth:`reset`, :meth:`next` and :meth:`jump`.
    """

    def __init__(
        self,
        source: Result | Walk | Model,
        invariants: Mapping[str, Any] | Sequence[Any] = (),
        bounds: Any = None,
    ) -> None:
        if isinstance(source, Result):
            self.walk = Walk.from_result(source)
        elif isinstance(source, Walk):
            self.walk = source
        elif isinstance(source, Model):
            self.walk = Walk(source, invariants, bounds)
        else:
            raise valid.ArgumentTypeError(
                f"source must be a search Result, a Walk or a Model, got {valid.shown(source)}"
            )

    # -- what the buttons do ----------------------------------------------------------
    def enabled(self) -> list[Action]:
        """The actions the current state enables."""
        return self.walk.enabled()

    def do(self, action: Action | int | str) -> None:
        """Take an enabled action (an :class:`Action`, its number or its text)."""
        self.walk.do(action)
        self._refresh()

    def undo(self) -> None:
        """Go back one action."""
        self.walk.undo()
        self._refresh()

    def reset(self) -> None:
        """Back to the start."""
        self.walk.reset()
        self._refresh()

    def next(self) -> None:
        """Take the counterexample's next action."""
        self.walk.next()
        self._refresh()

    def jump(self) -> None:
        """Go to the end of the counterexample, where the invariant breaks."""
        self.walk.jump()
        self._refresh()

    # -- what the widget shows -------------------------------------------------------------
    def figure(self) -> Any:
        """The run so far as a space-time diagram."""
        w = self.walk
        found = w.violations()
        start = w.start if w.taken_over else None
        fig = run_diagram(w.space, w.path, violation=found[0] if found else None, start=start)
        for note in fig.layout.annotations:
            if note.text.startswith(START_NOTE) and self.enabled():
                note.text += PRESS_NOTE
        return fig

    def verdict(self) -> str:
        """The invariants on the current state, as HTML: all hold, or which break and why."""
        found = self.walk.violations()
        if not found:
            names = ", ".join(n for n, _ in self.walk.invariants) or "no handler raises"
            return f"<span style='color:{OK_COLOR}'>✓ every invariant holds ({html.escape(names)})</span>"
        return "<br>".join(
            f"<b style='color:{BAD_COLOR}'>✗ {html.escape(n)}</b>: {html.escape(without_name(n, m))}"
            for n, m in found
        )

    def state_table(self) -> str:
        """Every node's state, and the messages in flight, as HTML."""
        rows = self.walk.nodes()
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        pad = "style='padding:1px 10px 1px 0; text-align:left; vertical-align:top'"
        head = "".join(f"<th {pad}>{html.escape(k)}</th>" for k in keys)
        body = "".join(
            "<tr>" + "".join(f"<td {pad}>{_cell(r.get(k, ''))}</td>" for k in keys) + "</tr>" for r in rows
        )
        flying = self.walk.messages()
        msgs = "".join(
            f"<li>{html.escape(s)} → {html.escape(d)}: {_cell(repr(m))}</li>" for s, d, m in flying
        )
        step = len(self.walk.path)
        where = f"after step {step}: {html.escape(str(self.walk.path[-1]))}" if step else "at the start"
        return (
            f"<div style='font-size:90%'><b>State {where}</b>"
            f"<table class='labkit-states'><tr>{head}</tr>{body}</table>"
            f"<b>{len(flying)} message{'s' * (len(flying) != 1)} in flight</b><ul style='margin:0'>{msgs}</ul></div>"
        )

    # -- the widget -------------------------------------------------------------------------
    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.fig, self.plot = self._plot_area(self.figure())
        undo = button("Undo", tip="go back one action", icon="undo")
        again = button("Start again", tip="back to the start")
        controls = [undo, again]
        self._on_click(undo, self.undo)
        self._on_click(again, self.reset)
        if self.walk.counterexample is not None:
            step = button("Next step of the counterexample", tip="take the run's next action", primary=True)
            jump = button("Jump to the counterexample", tip="where the invariant breaks")
            for b in (step, jump):  # the default width clips these two labels
                b.layout.width = "auto"
            self._on_click(step, self.next)
            self._on_click(jump, self.jump)
            controls += [step, jump]
        self.table = W.HTML()
        self.actions = W.Box(layout=W.Layout(display="flex", flex_flow="row wrap"))
        self.more = W.HTML()
        title = html.escape(self.walk.model.name)
        cex = self.walk.counterexample
        extra = f" · a counterexample of {len(cex)} steps to follow" if cex is not None else ""
        return self._page(
            W.HTML(f"<b>Explorer: {title}</b>{extra}"),
            W.HBox(controls),
            below=[
                self.table,
                W.HTML("<b>Enabled actions</b> (press one to take it):"),
                self.actions,
                self.more,
            ],
        )

    def _redraw(self) -> None:
        import ipywidgets as W

        self.fig = self.figure()
        self._plots = ((self.fig, self.plot),)
        self.status.value = self.verdict()
        self.table.value = self.state_table()
        enabled = self.enabled()
        buttons = []
        for i, a in enumerate(enabled[:MAX_BUTTONS]):
            b = W.Button(description=a.button, tooltip=str(a), layout=W.Layout(width="auto"))
            self._on_click(b, lambda i=i: self.do(i))
            buttons.append(b)
        self.actions.children = buttons
        rest = enabled[MAX_BUTTONS:]
        self.more.value = (
            f"and {len(rest)} more: call <code>explorer.do(n)</code> with n from {MAX_BUTTONS} to {len(enabled) - 1}"
            if rest
            else ("" if enabled else "<i>nothing is enabled: every node waits</i>")
        )
