"""Pictures of transactions (notebook 14).

* :func:`timeline_figure`: one lane per transaction, one mark per step in the
  order they happened (reads, writes, waits for a lock, commit or abort);
* :func:`story_figure`: a story of :data:`labkit.txn.stories.STORIES` played at a level, as a timeline;
* :func:`graph_figure`: the checker's dependency graph, transactions as nodes
  and ww / wr / rw edges labelled with their key, the cycle it explains in red
  (Adya 1999's Direct Serialization Graph; Elle draws its explanations so);
* :func:`levels_figure`: each story at each isolation level: went wrong or not;
* :func:`findings_figure`: how many runs of a workload showed each anomaly, per database and level;
* :class:`StoryWidget`: pick a story, a level and an interleaving; watch the
  anomaly appear or not.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from labkit import validation as valid
from labkit.txn.checker import Anomaly, CheckResult, Dep, Edge
from labkit.txn.history import Status
from labkit.txn.run import EventKind, Run
from labkit.txn.store import PROGRAMMED_ABORT, Isolation, Rules
from labkit.txn.stories import STORIES, Story
from labkit.viz.common import (
    BAD_COLOR,
    MUTED_COLOR,
    OK_COLOR,
    PALETTE,
    SettingsWidget,
    add_point,
    button,
    dropdown,
    point_columns,
    slider,
    style_figure,
    toggles,
)

__all__ = [
    "timeline_figure",
    "story_figure",
    "graph_figure",
    "levels_figure",
    "findings_figure",
    "StoryWidget",
]

# (kind, legend name, colour, marker symbol), in a fixed order so a widget updates in place.
_MARKS = (
    (EventKind.READ, "read", PALETTE[0], "circle"),
    (EventKind.WRITE, "write", PALETTE[1], "square"),
    (EventKind.SKIP, "write skipped", MUTED_COLOR, "square-open"),
    (EventKind.WAIT, "waits for a lock", MUTED_COLOR, "hourglass"),
    (EventKind.COMMIT, "commit", OK_COLOR, "diamond"),
    (EventKind.ABORT, "abort", BAD_COLOR, "x"),
)
_DEP_COLORS = {Dep.WW: PALETTE[3], Dep.WR: PALETTE[0], Dep.RW: PALETTE[1]}


def _short(text: str, kind: EventKind) -> str:
    """The label on the figure: the step, and for an abort the gist of its reason (hover shows it all)."""
    if kind is EventKind.WAIT:
        return text.split(": waits")[0] + " (waits)"
    if kind is EventKind.ABORT:
        reason = text[text.find("(") + 1 :].rstrip(")") if "(" in text else text
        gist = reason.split(":")[0]
        return "abort: " + (gist if len(gist) <= 28 else gist[:27] + "…")
    return text if len(text) <= 30 else text[:29] + "…"


def timeline_figure(run: Run, *, title: str | None = None, figure: Any = None) -> Any:
    """The run's steps, one lane per transaction, in the order they happened.

    A dashed line joins a step that had to wait for a lock to the moment it went through.
    """
    import plotly.graph_objects as go

    valid.instance("run", run, Run)
    lanes = list(run.programs)
    marks, lane, wait = _timeline_points(run)
    fig = figure if figure is not None else go.Figure()
    with fig.batch_update():
        fig.data = ()
        fig.add_trace(go.Scatter(x=lane["x"], y=lane["y"], mode="lines", line={"color": "#dddddd", "width": 6},
                                 hoverinfo="skip", showlegend=False, name="lanes"))  # fmt: skip
        fig.add_trace(go.Scatter(x=wait["x"], y=wait["y"], mode="lines", name="waiting",
                                 line={"color": MUTED_COLOR, "width": 2, "dash": "dash"},
                                 showlegend=bool(wait["x"]), hoverinfo="skip"))  # fmt: skip
        for kind, legend, color, symbol in _MARKS:
            m = marks[kind]
            fig.add_trace(
                go.Scatter(
                    x=m["x"], y=m["y"], mode="markers+text", name=legend, text=m["text"], textposition=m["position"],
                    textfont={"size": 11}, hovertext=m["hover"], hoverinfo="text",
                    marker={"color": color, "symbol": symbol, "size": 13, "line": {"color": color, "width": 2}},
                    showlegend=bool(m["x"]),
                )
            )  # fmt: skip
        style_figure(fig, title=title or run.summary(), xaxis="step", yaxis="", height=170 + 75 * len(lanes))
        fig.update_layout(
            legend={"orientation": "h", "yanchor": "top", "y": -0.32, "xanchor": "left", "x": 0}
        )
        fig.update_yaxes(tickvals=list(range(len(lanes))), ticktext=lanes, range=[len(lanes) - 0.4, -0.6],
                         showgrid=False, zeroline=False)  # fmt: skip
        fig.update_xaxes(range=[-0.8, max(len(run.events), 1) - 0.2], dtick=1, showgrid=False, zeroline=False)
    return fig


def _timeline_points(run: Run) -> tuple[dict[EventKind, dict[str, list]], dict[str, list], dict[str, list]]:
    """The timeline's data: per kind of step its marks (x, y, text, position of the text, hover);
    each transaction's lane from its first step to its last; a line per wait, to when it went through."""
    row = {name: i for i, name in enumerate(run.programs)}
    events = sorted(run.events, key=lambda e: e.tick)
    marks = {k: point_columns("x", "y", "text", "position", "hover") for k, *_ in _MARKS}
    lanes: dict[str, list] = {"x": [], "y": []}
    waits: dict[str, list] = {"x": [], "y": []}
    for name in run.programs:
        ticks = [e.tick for e in events if e.txn == name]
        if ticks:
            lanes["x"] += [min(ticks), max(ticks), None]
            lanes["y"] += [row[name], row[name], None]
    for i, e in enumerate(events):
        position = "top center" if i % 2 == 0 else "bottom center"
        text, hover = _short(e.text, e.kind), f"{e.txn}: {e.text}"
        add_point(marks[e.kind], x=e.tick, y=row[e.txn], text=text, hover=hover, position=position)
        if e.kind is EventKind.WAIT:
            resume = next((f.tick for f in events if f.tick > e.tick and f.txn == e.txn), e.tick)
            waits["x"] += [e.tick, resume, None]
            waits["y"] += [row[e.txn], row[e.txn], None]
    return marks, lanes, waits


def story_figure(name: str, level: Isolation | Rules, order: Sequence[str] | None = None) -> Any:
    """Play the story ``name`` at ``level`` (its own interleaving unless ``order``) and draw its timeline,
    with the verdict in the title."""
    valid.one_of("name", name, STORIES)
    story = STORIES[name]
    r = story.run(level, order)
    verdict = f"went wrong: {story.violation}" if story.happened(r) else f"fine: {story.invariant}"
    return timeline_figure(r, title=f"{story.title} — {level}: {verdict}")


def _layout(nodes: list[str], cycle: list[str]) -> dict[str, tuple[float, float]]:
    """T0 on the left, ``end`` on the right, the cycle's nodes in cycle order around a circle, then the rest."""
    ring = [n for n in cycle if n not in ("T0", "end")]
    ring += [n for n in nodes if n not in ring and n not in ("T0", "end")]
    pos: dict[str, tuple[float, float]] = {}
    k = len(ring)
    for i, name in enumerate(ring):
        angle = math.pi / 2 - 2 * math.pi * i / max(k, 1)  # the first at the top, clockwise
        pos[name] = (math.cos(angle), math.sin(angle)) if k > 1 else (0.0, 0.0)
    if "T0" in nodes:
        pos["T0"] = (-2.0, 0.0)
    if "end" in nodes:
        pos["end"] = (2.0, 0.0)
    return pos


def graph_figure(
    result: CheckResult, *, title: str | None = None, figure: Any = None, max_nodes: int = 14
) -> Any:
    """The dependency graph of a checked history; the first cycle found is drawn in red.

    With more than ``max_nodes`` committed transactions, only the cycle's
    transactions and their neighbours are drawn (up to ``max_nodes``).
    """
    import plotly.graph_objects as go

    valid.instance("result", result, CheckResult)
    cycle = [e.src for e in result.cycle]
    nodes = _graph_nodes(result, max_nodes)
    pos = _layout(nodes, cycle)
    node_colors = [BAD_COLOR if n in cycle else PALETTE[0] for n in nodes]
    fig = figure if figure is not None else go.Figure()
    with fig.batch_update():
        fig.data = ()
        fig.add_trace(
            go.Scatter(
                x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text", text=nodes,
                textfont={"color": "#ffffff", "size": 12}, hoverinfo="text", showlegend=False, name="transactions",
                marker={"size": 38, "color": node_colors, "line": {"color": "#ffffff", "width": 2}},
            )
        )  # fmt: skip
        style_figure(
            fig, title=_graph_title(result) if title is None else title, xaxis="", yaxis="", height=360
        )
        # Assigned, not updated: plotly's update keeps (and rewrites) old annotations when there are fewer now.
        fig.layout.annotations = _edge_annotations(result, set(nodes), pos)
        fig.update_layout(showlegend=False, margin={"l": 20, "r": 20, "t": 60, "b": 20})
        fig.update_xaxes(visible=False, range=[-2.5, 2.5])
        fig.update_yaxes(visible=False, range=[-1.35, 1.35], scaleanchor=None)
    return fig


def _graph_nodes(result: CheckResult, max_nodes: int) -> list[str]:
    """The committed transactions to draw: all of them, or the cycle's and their neighbours'."""
    cycle = [e.src for e in result.cycle]
    committed = [t.name for t in result.history if t.status is Status.COMMITTED]
    if len(committed) <= max_nodes:
        return committed
    keep = list(cycle)
    for e in result.edges:
        if len(keep) >= max_nodes:
            break
        for n in (e.src, e.dst):
            if (e.src in cycle or e.dst in cycle) and n not in keep and len(keep) < max_nodes:
                keep.append(n)
    return [n for n in committed if n in keep]


def _graph_title(result: CheckResult) -> str:
    """The anomaly of the first cycle and the cycle itself, or why there is none."""
    if not result.cycle:
        return "no cycle: " + (
            "no anomaly" if result.ok else ", ".join(sorted(a.value for a in result.anomalies))
        )
    cycle = [e.src for e in result.cycle]
    f = next(f for f in result.findings if f.cycle == result.cycle)
    title = f"{f.anomaly.value}: " + " → ".join([*cycle, cycle[0]])
    others = sorted({g.anomaly.value for g in result.findings} - {f.anomaly.value})
    return title + ("; also " + ", ".join(others) if others else "")


def _edge_annotations(
    result: CheckResult, shown: set[str], pos: dict[str, tuple[float, float]]
) -> list[dict[str, Any]]:
    """An arrow per pair of shown transactions with dependencies, and a label naming them;
    the cycle's edges in red, the two directions of a pair side by side."""
    cycle_edges: tuple[Edge, ...] = result.cycle
    in_cycle = {(e.src, e.dst) for e in cycle_edges}
    pairs: dict[tuple[str, str], list[Edge]] = {}
    for e in result.edges:
        if e.src in shown and e.dst in shown:
            pairs.setdefault((e.src, e.dst), []).append(e)
    annotations = []
    for (a, b), edges in pairs.items():
        (x0, y0), (x1, y1) = pos[a], pos[b]
        dx, dy = x1 - x0, y1 - y0
        length = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / length, dx / length  # to the left of the direction of travel
        off = 0.07 if (b, a) in pairs else 0.0
        x0o, y0o, x1o, y1o = x0 + off * nx, y0 + off * ny, x1 + off * nx, y1 + off * ny
        red = (a, b) in in_cycle
        labels = sorted({e.label for e in edges})
        if red:
            first = next(e for e in cycle_edges if (e.src, e.dst) == (a, b))
            labels = [first.label] + [lab for lab in labels if lab != first.label]
        color = BAD_COLOR if red else "#aaaaaa"
        annotations.append(dict(x=x1o, y=y1o, ax=x0o, ay=y0o, xref="x", yref="y", axref="x", ayref="y",
                                showarrow=True, arrowhead=3, arrowsize=1.3, arrowwidth=2.6 if red else 1.2,
                                arrowcolor=color, standoff=20, startstandoff=20, text=""))  # fmt: skip
        mx, my = x0o + 0.5 * dx + 1.6 * off * nx, y0o + 0.5 * dy + 1.6 * off * ny
        # A label of a two-way pair sits on the outer side of its own line, so the two never overlap.
        xanchor = "center" if not off or abs(nx) < 0.3 else ("left" if nx > 0 else "right")
        yanchor = "middle" if not off or abs(ny) < 0.3 else ("bottom" if ny > 0 else "top")
        annotations.append(dict(x=mx, y=my, xref="x", yref="y", showarrow=False, text=", ".join(labels[:3]),
                                xanchor=xanchor, yanchor=yanchor,
                                font={"size": 12, "color": BAD_COLOR if red else "#666666"},
                                bgcolor="rgba(255,255,255,0.85)"))  # fmt: skip
    return annotations


def levels_figure(runs: Mapping[str, Mapping[Isolation, Run]], *, title: str | None = None) -> Any:
    """Each story (rows) at each level (columns): red where the anomaly happened.

    ``runs[story][level]`` is the story's run at that level (see :data:`labkit.txn.stories.STORIES`).
    """
    import plotly.graph_objects as go

    stories = list(runs)
    levels = list(Isolation)
    z, text = [], []
    for name in stories:
        zs, ts = [], []
        for level in levels:
            r = runs[name][level]
            bad = STORIES[name].happened(r)
            zs.append(1 if bad else 0)
            if bad:
                ts.append("anomaly")
            elif refused := [n for n, why in r.reasons.items() if why != PROGRAMMED_ABORT]:
                ts.append("safe: " + ", ".join(f"{n} aborted" for n in refused))
            elif r.waited:
                ts.append("safe: " + ", ".join(f"{n} waited" for n in sorted(r.waited)))
            else:
                ts.append("safe")
        z.append(zs)
        text.append(ts)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=[lv.value for lv in levels], y=stories, text=text, texttemplate="%{text}",
            colorscale=[[0, "#d9f0e3"], [1, "#f6c9b0"]], zmin=0, zmax=1, showscale=False, xgap=3, ygap=3,
            hovertemplate="%{y} at %{x}: %{text}<extra></extra>",
        )
    )  # fmt: skip
    style_figure(fig, title=title or "Each story at each isolation level", xaxis="", yaxis="", height=380)
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="top")
    fig.update_layout(margin={"t": 110})
    return fig


def findings_figure(
    counts: Mapping[str, Mapping[str, int]], runs: Mapping[str, int], *, title: str | None = None
) -> Any:
    """``counts[row][anomaly]``: in how many of ``runs[row]`` runs the checker found that anomaly."""
    import plotly.graph_objects as go

    rows = list(counts)
    order = {a.value: i for i, a in enumerate(Anomaly)}
    columns = sorted({a for c in counts.values() for a in c}, key=lambda a: (order.get(a, len(order)), a))
    columns = columns or ["(none)"]
    z = [[counts[r].get(a, 0) / max(runs[r], 1) for a in columns] for r in rows]
    text = [[f"{counts[r].get(a, 0)}/{runs[r]}" for a in columns] for r in rows]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=columns, y=rows, text=text, texttemplate="%{text}", zmin=0, zmax=1, xgap=3, ygap=3,
            colorscale=[[0, "#f7f7f7"], [1, BAD_COLOR]], showscale=False,
            hovertemplate="%{y}: %{x} in %{text} runs<extra></extra>",
        )
    )  # fmt: skip
    style_figure(fig, title=title or "Runs in which the checker found each anomaly", xaxis="", yaxis="",
                 height=140 + 34 * len(rows))  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="top")
    fig.update_layout(margin={"t": 100, "l": 260})
    return fig


# ---------------------------------------------------------------------------
# The widget
# ---------------------------------------------------------------------------
class StoryWidget(SettingsWidget):
    """A story at a level, in one of its interleavings: timeline, verdict and dependency graph.

    >>> w = StoryWidget(story="lost update", level=Isolation.READ_COMMITTED)
    >>> STORIES["lost update"].happened(w.run)
    True
    >>> w.set(level=Isolation.SNAPSHOT)
    >>> STORIES["lost update"].happened(w.run)
    False
    """

    def __init__(
        self,
        *,
        story: str = "lost update",
        level: Isolation = Isolation.READ_COMMITTED,
        interleaving: int | None = None,
    ) -> None:
        self.timeline: Any = None
        self.graph: Any = None
        self.controls: dict[str, Any] = {}
        self.params: dict[str, Any] = {}
        self.set(story=story, level=level, interleaving=interleaving)

    @property
    def story(self) -> Story:
        return STORIES[self.params["story"]]

    def set(self, **changes: Any) -> None:
        """Change ``story`` (a name in STORIES), ``level`` (an Isolation) or ``interleaving``
        (its number, 0 to count - 1; None: the story's own); re-run and redraw."""
        p = self._merged(changes, ("story", "level", "interleaving"))
        valid.one_of("story", p["story"], STORIES)
        p["level"] = valid.enum_member("level", p["level"], Isolation)
        if (
            "story" in changes
            and changes["story"] != self.params.get("story")
            and "interleaving" not in changes
        ):
            p["interleaving"] = None
        orders = STORIES[p["story"]].interleavings()
        i = p["interleaving"]
        if i is None:
            i = orders.index(STORIES[p["story"]].order)
        valid.integer("interleaving", i, ge=0, le=len(orders) - 1, none=False)
        p["interleaving"] = i
        story = STORIES[p["story"]]
        self.orders = orders
        self.run = story.run(p["level"], orders[i])
        self.bad = sum(story.happened(story.run(p["level"], o)) for o in orders)
        self.params = p
        self._refresh()

    def verdict(self) -> str:
        story, r = self.story, self.run
        went_wrong = story.happened(r)
        found = ", ".join(sorted(a.value for a in r.result.anomalies)) or "no anomaly"
        head = f"Went wrong: {story.violation}" if went_wrong else f"Fine: {story.invariant}"
        return (
            f"{head}. Checker: {found}. {r.summary()}. "
            f"At {self.params['level'].value}, {self.bad} of {len(self.orders)} interleavings go wrong."
        )

    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.timeline, _timeline = self._plot_area()
        self.graph, _graph = self._plot_area()
        self.controls = {
            "story": dropdown("story", list(STORIES), label_width="80px"),
            "level": toggles([(lv.value, lv) for lv in Isolation], self.params["level"], description="level",
                             label_width="80px", button_width="150px"),
            "interleaving": slider("interleaving", 0, 0, len(self.orders) - 1, integer=True, label_width="80px",
                                   width="420px"),
        }  # fmt: skip
        own = button("story's order", tip="back to the interleaving the story tells")
        self.order_label = W.HTML()
        self._wire()
        self._on_click(own, lambda: self.set(interleaving=None))
        c = self.controls
        return self._page(c["story"], c["level"], W.HBox([c["interleaving"], own, self.order_label]))

    def _sync_controls(self) -> None:
        self.controls["interleaving"].max = len(self.orders) - 1
        super()._sync_controls()

    def _redraw(self) -> None:
        story, p = self.story, self.params
        title = f"{story.title} — {p['level'].value}, interleaving {p['interleaving']}"
        timeline_figure(self.run, title=title, figure=self.timeline)
        graph_figure(self.run.result, figure=self.graph)
        color = BAD_COLOR if story.happened(self.run) else OK_COLOR
        self.status.value = f'<span style="color:{color}">{html.escape(self.verdict())}</span>'
        self.order_label.value = "order: " + " ".join(self.orders[p["interleaving"]])
