"""Figures and a widget for the sharded key-value store (:mod:`labkit.shardkv`): routing, the ring,
throughput and key placement per group, and :class:`ShardLab` to crash servers and add groups.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from labkit import validation as valid
from labkit.shardkv import ShardedKV
from labkit.viz.common import (
    BAD_COLOR,
    MUTED_COLOR,
    OK_COLOR,
    Widget,
    button,
    check_names,
    dropdown,
    new_figure,
    node_colors,
    stack_labels,
    status_html,
    style_figure,
    vline,
)

__all__ = ["route_figure", "ring_figure", "throughput_figure", "placement_figure", "ShardLab", "throughput"]

MAX_GROUPS = 8
_GROUP_NAMES = tuple(f"g{i}" for i in range(1, MAX_GROUPS + 1))


def _colors(kv: ShardedKV) -> dict[str, str]:
    return node_colors(_GROUP_NAMES + tuple(g for g in kv.groups if g not in _GROUP_NAMES))


def route_figure(kv: ShardedKV, keys: Sequence[str] | None = None) -> Any:
    """A Sankey picture of routing: each key flows to its group, each group to its leader."""
    valid.instance("kv", kv, ShardedKV)
    check_names("keys", keys, none=True)
    import plotly.graph_objects as go

    keys = list(keys if keys is not None else kv.keys[:12])
    groups = list(kv.directory.config.groups)
    leaders = [kv.leader(g) or f"{g}: no leader" for g in groups]
    labels = keys + groups + leaders
    colors = _colors(kv)
    owners = [kv.owner(k) for k in keys]
    # (source node, target node, value, group): a link per key to its group, a link per group to its leader
    links = [(i, len(keys) + groups.index(g), 1, g) for i, g in enumerate(owners)]
    links += [(len(keys) + j, len(keys) + len(groups) + j, owners.count(g), g)
              for j, g in enumerate(groups) if g in owners]  # fmt: skip
    node_col = [MUTED_COLOR] * len(keys) + [colors[g] for g in groups] * 2
    link = {"source": [s for s, _, _, _ in links], "target": [t for _, t, _, _ in links],
            "value": [v for _, _, v, _ in links], "color": [colors[g] + "66" for _, _, _, g in links]}  # fmt: skip
    fig = go.Figure(go.Sankey(arrangement="fixed", link=link,
                              node={"label": labels, "color": node_col, "pad": 8, "thickness": 14}))  # fmt: skip
    shown = "keys" if len(keys) == len(kv.keys) else f"{len(keys)} of the {len(kv.keys)} keys"
    heads = ((0.0, shown), (0.5, "Raft group"), (1.0, "leader (serves reads and writes)"))
    fig.update_layout(title={"text": "key → group (hash ring) → the group's leader", "x": 0.01}, height=420,
                      margin={"l": 20, "r": 20, "t": 60, "b": 20},
                      annotations=[{"x": x, "y": 1.06, "xref": "paper", "yref": "paper", "text": t, "showarrow": False}
                                   for x, t in heads])  # fmt: skip
    return fig


def ring_figure(kv: ShardedKV, keys: Sequence[str] | None = None) -> Any:
    """Each group's virtual nodes on the ring (one row per group) and the keys above them."""
    valid.instance("kv", kv, ShardedKV)
    check_names("keys", keys, none=True)
    cfg = kv.directory.config
    ring = cfg.ring
    size = ring.ring_size
    colors = _colors(kv)
    fig = new_figure()
    for g in cfg.groups:
        xs = [p / size for p, owner in ring.points() if owner == g]
        fig.add_scatter(x=xs, y=[g] * len(xs), mode="markers", name=f"{g} virtual nodes",
                        marker={"symbol": "line-ns-open", "size": 14, "color": colors[g]})  # fmt: skip
    keys = list(keys if keys is not None else kv.keys)
    for g in cfg.groups:
        mine = [k for k in keys if cfg.owner(k) == g]
        fig.add_scatter(x=[ring.key_hash(k) / size for k in mine], y=["keys"] * len(mine), mode="markers", text=mine,
                        hovertemplate="%{text} at %{x:.3f}<extra></extra>", name=f"keys of {g}",
                        marker={"size": 10, "color": colors[g]})  # fmt: skip
    # Labels as annotations, staggered above and below so that neighbours never overprint.
    where = sorted((ring.key_hash(k) / size, k) for k in keys)
    for (x, k), shift in zip(where, _label_shifts([x for x, _k in where]), strict=True):
        fig.add_annotation(x=x, y="keys", text=k, showarrow=False, yshift=shift,
                           font={"size": 11, "color": colors[cfg.owner(k)]})  # fmt: skip
    style_figure(fig, title=f"The ring (config {cfg.epoch}): a key belongs to the next virtual node clockwise",
                 xaxis="position on the ring (fraction of the hash space)", yaxis="", height=420)  # fmt: skip
    fig.update_xaxes(range=[0, 1])
    return fig


def throughput(kv: ShardedKV, bucket: float = 0.1) -> dict[str, tuple[list[float], list[float]]]:
    """``group -> (bucket start times, answered operations per second)`` from the history.

    The buckets start at the first operation's call: before it nobody asked, and a zero there would
    read as a group that was unavailable.
    """
    valid.instance("kv", kv, ShardedKV)
    valid.number("bucket", bucket, gt=0, unit="seconds")
    first = min((h.call for h in kv.history), default=0.0)
    start = int(first / bucket) * bucket
    n = max(1, math.ceil((kv.sim.now - start) / bucket))
    counts = {g: [0] * n for g in kv.groups}
    for h in kv.history:
        if h.done and h.served_by in counts:
            counts[h.served_by][min(n - 1, int((h.ret - start) / bucket))] += 1
    xs = [start + i * bucket for i in range(n)]
    return {g: (xs, [c / bucket for c in cs]) for g, cs in counts.items()}


_EVENT_COLORS = {"crash": BAD_COLOR, "restart": OK_COLOR, "partition": "#CC79A7", "heal": OK_COLOR,
                 "join": "#0072B2", "joined": "#0072B2"}  # fmt: skip


def _fault_shapes(kv: ShardedKV) -> list[dict]:
    """A dotted line at every crash, restart, partition, heal and join."""
    return [vline(t, _EVENT_COLORS[what]) for t, what, _ in kv.events if what in _EVENT_COLORS]


def _fault_notes(kv: ShardedKV, start: float = 0.0, width: float = 0.12) -> list[dict]:
    """A label over each dotted line, above the plot: inside it, it printed over the top group's
    throughput line. Labels of close moments go on rows one above the other (``width``: about how
    wide a label is, as a fraction of the time axis from ``start`` to now)."""

    def text(what: str, who: Any) -> str:
        if what == "partition":
            return f"partition {who[1][0]} off"
        return f"{who} joined" if what == "joined" else f"{what} {who or ''}".strip()

    notes = [
        {"x": t, "xref": "x", "y": 1, "yref": "paper", "text": text(what, who), "showarrow": False, "yanchor": "bottom",
         "font": {"size": 10, "color": _EVENT_COLORS[what]}}
        for t, what, who in kv.events
        if what in _EVENT_COLORS
    ]  # fmt: skip
    return stack_labels(notes, (start, max(kv.sim.now, start + 1e-3)), width)


def _to_the_end(xs: list[float], ys: list[float], end: float) -> tuple[list[float], list[float]]:
    """A step line's points with the last bucket drawn to ``end`` (as steps, the last value would
    otherwise show only as a vertical stroke at its bucket's start)."""
    return (xs + [end], ys + ys[-1:]) if xs and end > xs[-1] else (xs, ys)


def throughput_figure(kv: ShardedKV, bucket: float = 0.1) -> Any:
    """Answered operations per second, one row per group; faults and joins marked across all rows."""
    valid.instance("kv", kv, ShardedKV)
    from plotly.subplots import make_subplots

    colors = _colors(kv)
    series = throughput(kv, bucket)
    fig = make_subplots(rows=len(series), cols=1, shared_xaxes=True, vertical_spacing=0.04)
    for row, (g, (xs, ys)) in enumerate(series.items(), start=1):
        xs, ys = _to_the_end(xs, ys, kv.sim.now)
        fig.add_scatter(
            x=xs, y=ys, mode="lines", name=g, line={"color": colors[g], "shape": "hv"}, row=row, col=1
        )
    style_figure(fig, title="Throughput per group (a drop to 0 = that group is unavailable)",
                 xaxis="simulated time (s)", yaxis="ops / s", height=140 + 90 * len(series))  # fmt: skip
    for row, g in enumerate(series, start=1):
        fig.update_yaxes(title_text=f"{g} ops/s", rangemode="tozero", row=row, col=1)
        if row < len(series):
            fig.update_xaxes(title_text="", row=row, col=1)
    notes = _fault_notes(kv)
    top = 60 + max((n["yshift"] for n in notes), default=0)  # the title stays above the stacked labels
    fig.update_layout(shapes=_fault_shapes(kv), annotations=notes, margin={"t": top})
    return fig


def _label_shifts(xs: Sequence[float], gap: float = 0.04, step: int = 14) -> list[int]:
    """A vertical offset (pixels) for the label of each point at ``xs`` (sorted, fractions of the width):
    above, below, further above, further below... the first level whose last label is ``gap`` away."""
    last: list[float] = []
    shifts = []
    for x in xs:
        level = next((i for i, seen in enumerate(last) if x - seen >= gap), len(last))
        last[level : level + 1] = [x]
        shifts.append((1 if level % 2 == 0 else -1) * (13 + step * (level // 2)))
    return shifts


def placement_figure(kv: ShardedKV) -> Any:
    """How many keys each group's leader holds now (grey: a group with no leader)."""
    valid.instance("kv", kv, ShardedKV)
    import plotly.graph_objects as go

    place = kv.placement()
    colors = _colors(kv)
    groups = list(kv.groups)
    held = Counter(place.values())  # keys per group
    counts = [held[g] for g in groups]
    fig = go.Figure(go.Bar(x=groups, y=counts, name="keys held", marker={"color": [colors[g] for g in groups]},
                           text=[_lines(sorted(k for k, g2 in place.items() if g2 == g)) for g in groups], textangle=0,
                           hovertemplate="%{x}: %{y} keys<br>%{text}<extra></extra>"))  # fmt: skip
    style_figure(
        fig, title="Where the keys live", xaxis="group", yaxis="keys held by the group's leader", height=340
    )
    return fig


def _lines(keys: Sequence[str], per_line: int = 3) -> str:
    """Keys as a few short lines, so a bar's label reads across instead of up its side."""
    return "<br>".join(", ".join(keys[i : i + per_line]) for i in range(0, len(keys), per_line))


class ShardLab(Widget):
    """Crash and restart servers and add groups; re-simulated from the seed.

    Two clients per group (on that group's keys at the start) run a random
    workload the whole time. Every action is kept
    in :attr:`actions`; after each one the lab rebuilds the store from the seed
    and replays them all, half a simulated second apart, so the picture is a
    pure function of (seed, actions).
    """

    STEP = 0.5

    def __init__(self, seed: int = 0, groups: int = 3, rate: float = 20.0) -> None:
        valid.integer("seed", seed)
        self.seed, self.n_groups, self.rate = seed, groups, rate
        self.actions: list[tuple[str, str]] = []
        self.kv = self._replay()

    # -- plain methods (what the buttons do) ---------------------------------
    def crash(self, node: str) -> None:
        """Crash server ``node`` (e.g. ``"g1n2"``)."""
        if not self.kv.is_up(node):
            raise ValueError(f"{node} is already down; restart it first")
        self._do("crash", node)

    def restart(self, node: str) -> None:
        """Restart crashed server ``node``."""
        if self.kv.is_up(node):
            raise ValueError(f"{node} is up; crash it first")
        self._do("restart", node)

    def crash_leader(self, group: str) -> None:
        """Crash the leader of ``group``."""
        lead = self.kv.leader(group)
        if lead is None:
            raise ValueError(f"{group} has no leader right now")
        self._do("crash", lead)

    def add_group(self) -> None:
        """Add one Raft group and move it its keys."""
        if len(self.kv.groups) >= MAX_GROUPS:
            raise ValueError(f"at most {MAX_GROUPS} groups")
        self._do("join", "")

    def run(self) -> None:
        """Let another half second pass."""
        self._do("run", "")

    def reset(self) -> None:
        """Forget every action."""
        self.actions = []
        self.kv = self._replay()
        self._refresh()

    def _do(self, what: str, arg: str) -> None:
        # The simulator is deterministic, so applying one more action to the current run
        # gives exactly what a replay of every action from the seed gives (tests check it),
        # at the cost of one step instead of all of them.
        self._apply(self.kv, what, arg)
        self.actions.append((what, arg))
        self._refresh()

    def _apply(self, kv: ShardedKV, what: str, arg: str) -> None:
        if what == "crash":
            kv.crash(arg)
        elif what == "restart":
            kv.restart(arg)
        elif what == "join":
            kv.add_group(wait=False)
        kv.run_for(self.STEP)

    def _replay(self) -> ShardedKV:
        """A fresh run from the seed with every action in :attr:`actions` applied."""
        kv = ShardedKV(groups=self.n_groups, seed=self.seed)
        kv.run_for(0.5)
        # Two clients per group's keys: a client runs one operation at a time, so a client
        # that also used other groups' keys would wait for a stalled group and stop them too.
        for g in kv.groups:
            for i in range(2):
                kv.client(f"c{g}.{i}").start_workload(rate=self.rate, duration=3600.0, keys=kv.keys_of(g))
        kv.run_for(self.STEP)
        for what, arg in self.actions:
            self._apply(kv, what, arg)
        return kv

    # -- drawing ------------------------------------------------------------
    def summary(self) -> str:
        """One line: each group's leader and the keys it holds. A group with fewer than a majority of
        its servers up is stalled: its leader, if one is still up, can commit nothing (Raft §5.3)."""
        held = Counter(self.kv.placement().values())
        parts = []
        for g, lead in self.kv.leaders().items():
            servers = self.kv.servers(g)
            up = sum(self.kv.is_up(s) for s in servers)
            keys = f"{held[g]} key{'' if held[g] == 1 else 's'}"
            if up <= len(servers) // 2:
                thinks = f"; {lead} still thinks it leads" if lead else ""
                parts.append(f"{g}: no majority, {up} of {len(servers)} servers up{thinks} ({keys})")
            else:
                parts.append(f"{g}: leader {lead or 'none'} ({keys})")
        moving = [m.group for m in self.kv.migrations if m.phase.value == "moving"]
        tail = f"; {', '.join(moving)} still joining" if moving else ""
        return f"t = {self.kv.sim.now:.1f} s. " + "; ".join(parts) + tail

    def server_text(self, node: str) -> str:
        """What the Crash / Restart buttons would act on: ``node``'s group and state."""
        group = self.kv.group_of(node)
        if not self.kv.is_up(node):
            state = "down (Restart brings it back)"
        elif self.kv.leader(group) == node:
            state = f"up, leader of {group}"
        else:
            state = f"up, a follower in {group}"
        return f"Chosen server {node}: {state}."

    def _build_ui(self) -> Any:
        import ipywidgets as W
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        self._node = dropdown(
            "server", self.kv.servers(), tip="which server the Crash / Restart buttons act on"
        )
        self._chosen = W.HTML(self.server_text(self._node.value))
        self._on_change(self._node, lambda node: setattr(self._chosen, "value", self.server_text(node)))
        buttons = {
            "Crash": ("crash the chosen server", lambda: self.crash(self._node.value)),
            "Restart": ("restart the chosen server", lambda: self.restart(self._node.value)),
            "Add group": ("add a Raft group and move it its keys", self.add_group),
            "Run 0.5 s": ("let half a simulated second pass", self.run),
            "Reset": ("forget every action", self.reset),
        }
        row = [self._on_click(button(label, tip=tip), fn) for label, (tip, fn) in buttons.items()]
        fig = make_subplots(rows=1, cols=2, column_widths=[0.68, 0.32], horizontal_spacing=0.1)
        for g in _GROUP_NAMES:
            # Stacked: each group is a band, so groups serving the same rate do not hide each other.
            band = go.Scatter(x=[], y=[], mode="lines", name=g, line={"shape": "hv"}, stackgroup="throughput")
            fig.add_trace(band, row=1, col=1)
        fig.add_trace(go.Bar(x=[], y=[], name="keys held", showlegend=False), row=1, col=2)
        style_figure(fig, title="Throughput per group, stacked (left), and keys held per group (right)",
                     xaxis="simulated time (s)", yaxis="answered operations / s", height=420)  # fmt: skip
        fig.update_xaxes(title_text="group", row=1, col=2)
        fig.update_yaxes(title_text="keys", row=1, col=2)
        self.fig, _plot = self._plot_area(fig)
        return self._page(W.HBox([self._node, *row]), self._chosen)

    def _redraw(self) -> None:
        kv = self.kv
        colors = _colors(kv)
        series = throughput(kv)
        held = Counter(kv.placement().values())
        with self.fig.batch_update():
            for i, g in enumerate(_GROUP_NAMES):
                tr = self.fig.data[i]
                xs, ys = _to_the_end(*series.get(g, ([], [])), kv.sim.now)
                tr.x, tr.y, tr.visible = xs, ys, g in series
                tr.line.color = colors[g]
            groups = list(kv.groups)
            self.fig.data[-1].update(
                x=groups, y=[held[g] for g in groups], marker_color=[colors[g] for g in groups]
            )
            self.fig.layout.shapes = _fault_shapes(kv)
            # Labelled over the throughput plot (68 % of the width: a label takes a larger share of its axis).
            start = min((xs[0] for xs, _ in series.values() if xs), default=0.0)
            notes = _fault_notes(kv, start, width=0.18)
            self.fig.layout.annotations = notes
            self.fig.layout.margin.t = 60 + max((n["yshift"] for n in notes), default=0)
        if list(self._node.options) != list(kv.servers()):
            keep = self._node.value
            self._node.options = kv.servers()
            self._node.value = keep  # a group joining must not change the chosen server
        self._chosen.value = self.server_text(self._node.value)
        self.status.value = status_html(self.summary())
