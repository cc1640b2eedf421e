"""Figures and the ring widget for consistent hashing (notebook 06).

Points go clockwise from twelve o'clock: angle = 2*pi * point / ring_size, as in the Dynamo paper's
Figure 2. :class:`RingWidget` grows and shrinks a ring and highlights the keys that moved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from labkit import validation as valid
from labkit.hashing import HashRing, assign, make_keys, moved_keys, node_names
from labkit.viz.common import (
    MUTED_COLOR,
    PALETTE,
    Widget,
    button,
    check_names,
    check_title,
    legend_below,
    new_figure,
    node_colors,
    slider,
    status_html,
    style_figure,
)

__all__ = ["ring_figure", "load_figure", "spread_figure", "moves_figure", "RingWidget"]

_VNODE_R = 1.0  # radius of the circle the virtual nodes sit on
_KEY_R = 0.82  # keys sit just inside it, so both stay readable
# Moved keys are circled in black and arrivals hatched: no node colour of the palette's first
# twelve is re-used as a highlight (BAD_COLOR is also node-5's orange).
_MOVED_COLOR = "#000000"


def _xy(point: int, ring_size: int, radius: float) -> tuple[float, float]:
    angle = 2 * math.pi * point / ring_size
    return radius * math.sin(angle), radius * math.cos(angle)


def _ring_traces(
    ring: HashRing, keys: Sequence[str], moved: set[str], colors: Mapping[str, str], slots: Sequence[str] = ()
) -> list[dict]:
    """Scatter specs (dicts) for the ring: the outline, one trace per node, the keys, the keys that moved.

    ``slots``: the nodes a widget keeps a trace for, in a fixed order (a node not on the ring gets an
    empty one, out of the legend), so that every redraw updates the same traces in place.
    """
    size = ring.ring_size
    cx, cy = zip(*(_xy(i, 180, _VNODE_R) for i in range(181)), strict=True)
    outline = {"x": list(cx), "y": list(cy), "mode": "lines", "line": {"color": "#DDDDDD", "width": 1},
               "name": "ring", "showlegend": False, "hoverinfo": "skip"}  # fmt: skip
    traces: list[dict] = [outline]
    per_node: dict[str, list[int]] = {n: [] for n in slots or ring.nodes}
    for point, owner in ring.points():
        per_node[owner].append(point)
    # Smaller diamonds when the circle is crowded, so one node's colour does not hide the others.
    diamond = {"size": max(4, 10 - len(ring.points()) // 150), "symbol": "diamond"}

    def spec(xy: list[tuple[float, float]], name: str, marker: dict, text: list[str], **extra: Any) -> dict:
        return {"x": [p[0] for p in xy], "y": [p[1] for p in xy], "name": name, "marker": marker, "text": text,
                "mode": "markers", "hoverinfo": "text", **extra}  # fmt: skip

    for node, points in per_node.items():
        xy = [_xy(p, size, _VNODE_R) for p in points]
        text = [f"{node}: virtual node at {p / size:.4f} of the ring" for p in points]
        marker = {"color": colors[node], **(diamond if node in ring else {})}
        extra = {"showlegend": node in ring, "legendgroup": node} if slots else {}
        traces.append(spec(xy, node, marker, text, **extra))
    key_xy = [_xy(ring.key_hash(k), size, _KEY_R) for k in keys]
    owners = [ring.node_for(k) for k in keys]
    text = [f"{k} on {o}" for k, o in zip(keys, owners, strict=True)]
    marker = {"color": [colors[o] for o in owners], "size": 5, "opacity": 0.6}
    traces.append(spec(key_xy, "keys (colour of their node)", marker, text))
    moved_idx = [i for i, k in enumerate(keys) if k in moved]
    marker = {"color": "rgba(0,0,0,0)", "size": 11, "line": {"color": _MOVED_COLOR, "width": 2}}
    text = [f"{keys[i]} moved to {owners[i]}" for i in moved_idx]
    traces.append(spec([key_xy[i] for i in moved_idx], "moved in the last change", marker, text))
    return traces


def _square_axes(fig: Any, row: int | None = None, col: int | None = None) -> None:
    kw = {"row": row, "col": col} if row else {}
    fig.update_xaxes(range=[-1.15, 1.15], visible=False, **kw)
    fig.update_yaxes(range=[-1.15, 1.15], visible=False, scaleanchor="x", scaleratio=1, **kw)


def ring_figure(
    ring: HashRing,
    keys: Sequence[str] = (),
    moved: Sequence[str] = (),
    *,
    title: str = "The ring: virtual nodes (diamonds) and keys (dots)",
) -> Any:
    """Virtual nodes around a circle coloured by physical node; keys inside, coloured by owner."""
    check_names("keys", keys)
    check_names("moved", moved)
    check_title(title, none=False)
    valid.instance("ring", ring, HashRing)
    fig = new_figure(colorway=list(PALETTE))
    for spec in _ring_traces(ring, list(keys), set(moved), node_colors(ring.nodes)):
        fig.add_scatter(**spec)
    style_figure(fig, title=title, xaxis="", yaxis="", height=520)
    _square_axes(fig)
    return fig


def load_figure(loads: Any, *, title: str = "Keys per node") -> Any:
    """Bars of keys per node from :func:`labkit.hashing.load_per_node`; a dict of frames gives grouped bars."""
    check_title(title, none=False)
    frames = loads if isinstance(loads, Mapping) else {"keys": loads}
    for label, frame in frames.items():
        if not {"node", "keys"} <= set(getattr(frame, "columns", ())):
            raise valid.ArgumentTypeError(
                f"loads must be a load_per_node() DataFrame or a dict of them, got {valid.shown(frame)} for {label!r}"
            )
    fig = new_figure(colorway=list(PALETTE))
    mean = None
    for i, (label, frame) in enumerate(frames.items()):
        fig.add_bar(x=list(frame["node"]), y=list(frame["keys"]), name=str(label), offsetgroup=i)
        mean = frame["keys"].mean()
    if mean is not None:
        fig.add_hline(y=mean, line_dash="dot", line_color=MUTED_COLOR, annotation_text="mean")
    style_figure(fig, title=title, xaxis="node", yaxis="keys")
    fig.update_layout(showlegend=len(frames) > 1)
    return fig


def spread_figure(frame: Any, *, title: str = "Load spread falls as virtual nodes grow") -> Any:
    """CV of load per node against vnodes (log-log) from :func:`labkit.hashing.spread_vs_vnodes`."""
    fig = new_figure(colorway=list(PALETTE))
    series = [
        ("cv", "measured over the keys", "lines+markers", None),
        ("cv_arcs", "from the arc lengths", "lines+markers", "dash"),
        ("rule_of_thumb", "rule of thumb 1/√vnodes", "lines", "dot"),
    ]
    for column, name, mode, dash in series:
        if column in frame.columns:
            fig.add_scatter(
                x=list(frame["vnodes"]), y=list(frame[column]), name=name, mode=mode, line={"dash": dash}
            )
    style_figure(
        fig, title=title, xaxis="virtual nodes per node (log)", yaxis="coefficient of variation (log)"
    )
    # Label only 1-2-5 values: over a short decade plotly's own log ticks print every digit 2..9.
    xs = [v for v in frame["vnodes"] if v > 0]
    ys = [v for column, *_ in series if column in frame.columns for v in frame[column] if v > 0]
    for update, values in ((fig.update_xaxes, xs), (fig.update_yaxes, ys)):
        ticks = _one_two_five(min(values), max(values)) if values else []
        update(type="log")
        if len(ticks) >= 2:  # fewer: plotly's own ticks label the axis better
            update(tickvals=ticks, ticktext=[f"{v:g}" for v in ticks])
    return fig


def _one_two_five(low: float, high: float) -> list[float]:
    """The values 1, 2, 5, 10, 20, 50, ... (times a power of ten) from ``low`` to ``high``."""
    out: list[float] = []
    exponent = math.floor(math.log10(low))
    while 10**exponent <= high:
        out += [m * 10**exponent for m in (1, 2, 5) if low / 1.001 <= m * 10**exponent <= high * 1.001]
        exponent += 1
    return [float(f"{v:.6g}") for v in out]


def moves_figure(frame: Any, *, title: str = "Keys moved when one node joins") -> Any:
    """Moved fraction against the node count, per scheme, from :func:`labkit.hashing.join_moves`."""
    fig = new_figure(colorway=list(PALETTE))
    for scheme, part in frame.groupby("scheme", sort=False):
        fig.add_scatter(x=list(part["nodes_before"]), y=list(part["moved_fraction"]), name=str(scheme),
                        mode="lines+markers")  # fmt: skip
    ideal = frame.drop_duplicates("nodes_before").sort_values("nodes_before")
    fig.add_scatter(x=list(ideal["nodes_before"]), y=list(ideal["ideal"]), name="ideal 1/(N+1)", mode="lines",
                    line={"dash": "dot", "color": MUTED_COLOR})  # fmt: skip
    style_figure(fig, title=title, xaxis="nodes before the join (N)", yaxis="fraction of keys moved")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def _mean_line(mean: float) -> dict:
    """A dotted horizontal line at the mean load across the bar chart (the second subplot)."""
    return {"type": "line", "xref": "x2 domain", "x0": 0, "x1": 1, "yref": "y2", "y0": mean, "y1": mean,
            "line": {"dash": "dot", "color": MUTED_COLOR}}  # fmt: skip


def membership_change(added: list[str], removed: list[str]) -> str:
    """'added a, b; removed c' (either part left out when empty; 'no change' if both are)."""
    parts = [
        f"{verb} {', '.join(nodes)}" for verb, nodes in (("added", added), ("removed", removed)) if nodes
    ]
    return "; ".join(parts) or "no change"


class RingWidget(Widget):
    """Grow and shrink a ring and watch which keys move.

    >>> w = RingWidget(nodes=4, vnodes=8)
    >>> w.add_node()          # the same as clicking "add a node"
    >>> len(w.moved)          # keys that moved, all of them to the newcomer
    >>> w                     # in a notebook: the controls, the ring and the loads

    Nodes are named ``node-0`` .. ``node-{max_nodes-1}``; a new node takes the smallest free name.
    """

    def __init__(
        self, nodes: int = 4, vnodes: int = 8, keys: int = 300, seed: int = 0, max_nodes: int = 12
    ) -> None:
        self.max_nodes = valid.integer("max_nodes", max_nodes, ge=1)
        self.max_vnodes = 200
        valid.integer("nodes", nodes, ge=1, le=max_nodes, note="max_nodes")
        valid.integer("vnodes", vnodes, ge=1, le=self.max_vnodes)
        valid.integer("keys", keys, ge=1)
        self.seed = seed
        self.pool = node_names(max_nodes)
        self.colors = node_colors(self.pool)
        self.keys = make_keys(keys, seed=seed)
        self.vnodes = vnodes
        self.ring = HashRing(self.pool[:nodes], vnodes=vnodes)
        self.assignment = assign(self.ring, self.keys)
        self.moved: list[str] = []
        self.last_change = "start"

    # -- the model: plain methods the controls call -----------------------------------
    @property
    def nodes(self) -> tuple[str, ...]:
        return self.ring.nodes

    def add_node(self) -> str:
        """Add the first unused node name; returns it."""
        free = [n for n in self.pool if n not in self.ring]
        if not free:
            raise ValueError(f"at most {self.max_nodes} nodes in this widget")
        node = free[0]
        self.ring.add_node(node)
        self._changed(f"added {node}")
        return node

    def remove_node(self, node: str | None = None) -> str:
        """Remove ``node`` (default: the highest-numbered one); returns it."""
        if len(self.ring) <= 1:
            raise ValueError("at least one node must remain")
        if node is None:
            node = max(self.ring.nodes, key=self.pool.index)
        self.ring.remove_node(valid.one_of("node", node, self.ring.nodes))
        self._changed(f"removed {node}")
        return node

    def set_node_count(self, n: int) -> None:
        """Add or remove nodes until there are ``n``."""
        valid.integer("node count", n, ge=1, le=self.max_nodes)
        before = set(self.ring.nodes)
        while len(self.ring) < n:
            self.ring.add_node(next(x for x in self.pool if x not in self.ring))
        while len(self.ring) > n:
            self.ring.remove_node(max(self.ring.nodes, key=self.pool.index))
        after = set(self.ring.nodes)
        self._changed(membership_change(sorted(after - before), sorted(before - after)))

    def set_vnodes(self, vnodes: int) -> None:
        """Rebuild the ring with ``vnodes`` virtual nodes per node."""
        valid.integer("vnodes", vnodes, ge=1, le=self.max_vnodes)
        old = self.vnodes
        self.vnodes = vnodes
        self.ring = HashRing(self.ring.nodes, vnodes=vnodes)
        self._changed(f"vnodes {old} → {vnodes}")

    def _changed(self, what: str) -> None:
        after = assign(self.ring, self.keys)
        self.moved = list(moved_keys(self.assignment, after)["key"])
        self.assignment = after
        self.last_change = what
        self._refresh()

    def loads(self) -> dict[str, int]:
        """Keys per node now (every node listed)."""
        counts = dict.fromkeys(self.ring.nodes, 0)
        for node in self.assignment.values():
            counts[node] += 1
        return counts

    def summary(self) -> str:
        """One line: the ring, and what the last change moved."""
        n, k = len(self.ring), len(self.keys)
        text = f"{n} node{'s' * (n != 1)} × {self.vnodes} vnodes, {k} keys. Last change: {self.last_change}"
        if self.last_change != "start":
            targets = sorted({self.assignment[key] for key in self.moved})
            text += f": {len(self.moved)} keys moved ({len(self.moved) / k:.1%})"
            if self.moved:
                text += f", to {', '.join(targets)}"
        return text + "."

    # -- the view -----------------------------------------------------------------------
    def _title(self) -> str:
        if self.last_change == "start":
            return f"{len(self.ring)} nodes × {self.vnodes} vnodes: make a change and watch which keys move"
        return (
            f"After '{self.last_change}': {len(self.moved)} of {len(self.keys)} keys moved (circled, hatched)"
        )

    def figure(self) -> Any:
        """The ring and the loads in a new (static) figure."""
        fig = self._empty_layout()
        self._fill(fig)
        return fig

    def _empty_layout(self) -> Any:
        from plotly.subplots import make_subplots

        titles = ("the ring (clockwise from the top)", "keys per node")
        return make_subplots(
            rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.08, subplot_titles=titles
        )

    def _fill(self, fig: Any) -> None:
        """(Re)draw every trace; the number and order of traces never change, so updates are in place."""
        import plotly.graph_objects as go

        loads = self.loads()
        arrived = dict.fromkeys(loads, 0)
        for key in self.moved:
            arrived[self.assignment[key]] += 1
        names = list(loads)
        kept = [loads[n] - arrived[n] for n in names]
        wanted = _ring_traces(self.ring, self.keys, set(self.moved), self.colors, slots=self.pool)
        colors = [self.colors[n] for n in names]
        hatched = {"shape": "/", "fgcolor": _MOVED_COLOR, "solidity": 0.5}
        bars = [
            {"x": names, "y": kept, "name": "keys that stayed", "marker": {"color": colors}, "showlegend": False},
            {"x": names, "y": [arrived[n] for n in names], "name": "keys that arrived in the last change",
             "marker": {"color": colors, "pattern": hatched}},
        ]  # fmt: skip
        mean = len(self.keys) / len(self.ring)
        with fig.batch_update():
            if not fig.data:
                # First draw: traces and the static layout. Later draws touch only data, title and mean.
                for spec in wanted:
                    fig.add_trace(go.Scatter(spec), row=1, col=1)
                for spec in bars:
                    fig.add_trace(go.Bar(spec), row=1, col=2)
                style_figure(fig, title=self._title(), xaxis="", yaxis="", height=520)
                # A column of legend on the right would leave the ring little room.
                legend_below(fig).update_layout(barmode="stack", margin={"t": 80}, shapes=[_mean_line(mean)])
                _square_axes(fig, row=1, col=1)
                fig.update_xaxes(title_text="node", row=1, col=2)
                fig.update_yaxes(title_text="keys (dotted: the mean)", row=1, col=2)
                return
            for trace, spec in zip(fig.data, wanted + bars, strict=True):
                if not spec["x"] and not trace.x:
                    continue  # an unused node slot that was already empty
                trace.update(spec, overwrite=True)
            fig.layout.title.text = self._title()
            fig.layout.shapes[0].update(y0=mean, y1=mean)

    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.fig, _plot = self._plot_area(self._empty_layout())
        self.count_slider = slider("nodes", len(self.ring), 1, self.max_nodes, integer=True,
                                   tip="number of physical nodes on the ring")  # fmt: skip
        self.vnode_slider = slider("vnodes", self.vnodes, 1, self.max_vnodes, integer=True,
                                   tip="virtual nodes (replicas on the ring) per physical node")  # fmt: skip
        add = button("add a node", icon="plus", tip="a new node joins the ring")
        self.add_button = self._on_click(add, self.add_node)
        remove = button("remove a node", icon="minus", tip="the highest-numbered node leaves the ring")
        self.remove_button = self._on_click(remove, self.remove_node)
        self._on_change(self.count_slider, self.set_node_count)
        self._on_change(self.vnode_slider, self.set_vnodes)
        return self._page(
            W.HBox([self.count_slider, self.vnode_slider]), W.HBox([self.add_button, self.remove_button])
        )

    def _sync_controls(self) -> None:
        self.count_slider.value = len(self.ring)
        self.vnode_slider.value = self.vnodes

    def _redraw(self) -> None:
        self._fill(self.fig)
        self.status.value = status_html(self.summary())
