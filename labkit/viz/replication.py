"""Figures and widgets for quorum replication and CAP (notebooks 04 and 05).

:func:`cap_timeline` draws every client operation of a partition scenario from call to return, coloured
by outcome, with the partition shaded; :class:`CapWidget` runs that scenario under controls.
:class:`QuorumWidget` draws one write and one read under N, R, W, crashes and a partition. The other
figures chart the tables of :mod:`labkit.replication.experiments`.
"""

from __future__ import annotations

import html
import math
from typing import Any

from labkit import validation as valid
from labkit.replication import Mode, ReplicatedStore, Resolution
from labkit.replication.config import check_quorum
from labkit.replication.experiments import ScenarioResult, run_partition_scenario, stale_flags
from labkit.sim import Kind
from labkit.viz.common import (
    BAD_COLOR,
    MUTED_COLOR,
    OK_COLOR,
    PALETTE,
    Arrows,
    SettingsWidget,
    band,
    check_figure,
    check_title,
    checkbox,
    new_figure,
    replace_traces,
    slider,
    status_html,
    style_figure,
    toggles,
)

__all__ = [
    "cap_timeline",
    "availability_figure",
    "consistency_figure",
    "latency_figure",
    "merkle_figure",
    "divergence_figure",
    "CapWidget",
    "QuorumWidget",
]

# (name, colour, marker) of each outcome series, in a fixed order so widgets update in place.
OUTCOMES = (
    ("write answered", OK_COLOR, "square"),
    ("read answered", PALETTE[0], "circle"),
    ("stale read", PALETTE[1], "circle-open"),
    ("refused", BAD_COLOR, "x"),
    ("no answer", MUTED_COLOR, "x-open"),
)
_PARTITION_COLOR = "#882255"


def _outcome(op: Any, stale: bool) -> str:
    if op.ok is None:
        return "no answer"
    if not op.ok:
        return "refused"
    if op.kind.value == "write":
        return "write answered"
    return "stale read" if stale else "read answered"


def cap_timeline(result: ScenarioResult, *, figure: Any = None, title: str | None = None) -> Any:
    """Each client's operations over time, coloured by outcome; the partition shaded."""
    check_figure(figure)
    check_title(title)
    valid.instance("result", result, ScenarioResult)
    end = result.store.sim.now
    lanes = {"A": 1, "B": 0}
    series = {name: Arrows() for name, _, _ in OUTCOMES}
    timeout = result.store.client_timeout
    for op, stale in zip(result.ops, stale_flags(result.ops), strict=True):
        name = _outcome(op, stale)
        is_write = op.kind.value == "write"
        y = lanes[result.side_of(op)] + (0.12 if is_write else -0.12)
        ret = op.ret if math.isfinite(op.ret) else min(end, op.call + timeout)
        what = f"write {op.value}" if is_write else f"read → {', '.join(map(str, op.values)) or '(nothing)'}"
        text = f"client {op.client} via {op.coordinator}: {what}<br>{op.call:.3f}s → {op.ret:.3f}s: {name}"
        series[name].add(op.call, y, ret, y, text)
    data = []
    for name, color, symbol in OUTCOMES:
        marker = {"color": color, "symbol": symbol, "size": 8}
        data += series[name].traces(name, line={"color": color, "width": 4}, marker=marker)
    fig = new_figure(figure)
    a, b = result.sides
    cfg = result.store.config
    title = title or (
        f"{cfg.mode.value}, {cfg.resolution.value}: client operations through a partition "
        f"(N={cfg.n}, R={result.r}, W={result.w})"
    )
    with fig.batch_update():
        if replace_traces(fig, data, "x", "y", "name", "hovertext"):  # a new figure: the look too
            note = {"x": (result.partition_at + result.heal_at) / 2, "y": 1.0, "xref": "x", "yref": "paper",
                    "text": "partition", "showarrow": False, "font": {"color": _PARTITION_COLOR}}  # fmt: skip
            style_figure(fig, title=title, xaxis="time (virtual seconds)", yaxis="client (writes above, reads below)",
                         height=330, annotations=[note], hovermode="closest")  # fmt: skip
        fig.layout.title.text = title
        fig.layout.shapes = [band(result.partition_at, result.heal_at, _PARTITION_COLOR)]
        last = max((op.ret for op in result.ops if math.isfinite(op.ret)), default=result.heal_at)
        fig.layout.xaxis.range = [0, max(last, result.heal_at) + 0.1]
        ticks = [f"A ({', '.join(a)})", f"B ({', '.join(b)})"]
        fig.layout.yaxis.update(
            tickmode="array", tickvals=[1, 0], ticktext=ticks, range=[-0.5, 1.5], zeroline=False
        )
    return fig


def _rw_label(df: Any) -> list[str]:
    return [f"R={r} W={w}" for r, w in zip(df["r"], df["w"], strict=True)]


def availability_figure(df: Any) -> Any:
    """Bars: availability during the partition per mode, (R, W) and side (from ``compare_modes``)."""
    fig = new_figure()
    for i, (mode, side) in enumerate((m, s) for m in df["mode"].unique() for s in ("A", "B")):
        part = df[(df["mode"] == mode) & (df["side"] == side)]
        fig.add_bar(
            x=_rw_label(part), y=part["availability"], name=f"{mode}, side {side}", marker_color=PALETTE[i]
        )
    style_figure(fig, title="Availability during the partition", xaxis="quorum sizes",
                 yaxis="fraction of requests answered")  # fmt: skip
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return fig


def consistency_figure(df: Any) -> Any:
    """Bars: stale reads, lost writes and leftover siblings per mode and (R, W) (from ``compare_modes``)."""
    runs = df.groupby(["mode", "r", "w"], sort=False).agg(
        stale_reads=("stale_reads", "sum"),
        lost_writes=("lost_writes", "first"),
        conflicts=("conflicts", "first"),
    )
    runs = runs.reset_index()
    labels = [f"{m}<br>R={r} W={w}" for m, r, w in zip(runs["mode"], runs["r"], runs["w"], strict=True)]
    fig = new_figure()
    names = {
        "stale_reads": "stale reads",
        "lost_writes": "lost writes",
        "conflicts": "extra siblings after healing",
    }
    for i, (col, name) in enumerate(names.items()):
        fig.add_bar(x=labels, y=runs[col], name=name, marker_color=PALETTE[i + 4])
    style_figure(
        fig, title="What each choice cost in consistency", xaxis="mode and quorum sizes", yaxis="count"
    )
    return fig


def latency_figure(df: Any) -> Any:
    """Bars: mean request latency per (R, W), reads and writes, p99 as a marker (from ``quorum_latency``)."""
    fig = new_figure()
    for i, kind in enumerate(("read", "write")):
        part = df[df["kind"] == kind]
        labels = _rw_label(part)
        fig.add_bar(x=labels, y=part["mean_ms"], name=f"{kind}: mean", marker_color=PALETTE[i])
        fig.add_scatter(x=labels, y=part["p99_ms"], mode="markers", name=f"{kind}: 99th percentile",
                        marker={"color": PALETTE[i], "symbol": "line-ew-open", "size": 22, "line": {"width": 3}})  # fmt: skip
    style_figure(fig, title="No partition, still a price: latency of bigger quorums", xaxis="quorum sizes",
                 yaxis="latency (ms)")  # fmt: skip
    fig.update_layout(barmode="group")
    return fig


def merkle_figure(df: Any) -> Any:
    """Lines: hashes exchanged and keys sent against the number of differing keys.

    ``df`` needs columns ``differing``, ``hashes``, ``keys_sent`` and ``total_keys``.
    """
    fig = new_figure()
    for i, (column, name) in enumerate((("hashes", "hashes exchanged"), ("keys_sent", "keys sent"))):
        fig.add_scatter(
            x=df["differing"], y=df[column], mode="lines+markers", name=name, marker_color=PALETTE[i]
        )
    fig.add_scatter(x=df["differing"], y=df["total_keys"], mode="lines", name="keys a full comparison sends",
                    line={"dash": "dash", "color": MUTED_COLOR})  # fmt: skip
    style_figure(fig, title="Anti-entropy with a Merkle tree: cost grows with the difference, not the data",
                 xaxis="keys that differ between two replicas", yaxis="items sent")  # fmt: skip
    return fig


# -- widgets ------------------------------------------------------------
class CapWidget(SettingsWidget):
    """A register through a partition: change nodes, sides, mode, N, R, W.

    >>> w = CapWidget(seed=0)
    >>> w.set(mode=Mode.AVAILABILITY_FIRST, r=1, w=1)   # what the controls do
    >>> w.counters()                                     # the live numbers
    """

    def __init__(self, *, seed: int = 0, nodes: int = 5, side_a: int = 2, n: int = 3, r: int = 2, w: int = 2,
                 mode: Mode = Mode.CONSISTENCY_FIRST, resolution: Resolution = Resolution.VECTOR_CLOCKS) -> None:  # fmt: skip
        self.seed = seed
        self.params: dict[str, Any] = {}
        self.result: ScenarioResult
        self.set(nodes=nodes, side_a=side_a, n=n, r=r, w=w, mode=mode, resolution=resolution)

    def set(self, **changes: Any) -> None:
        """Change settings (nodes, side_a, n, r, w, mode, resolution) and re-simulate."""
        params = self._merged(changes, ("nodes", "side_a", "n", "r", "w", "mode", "resolution"))
        if "nodes" in changes and "side_a" not in changes and isinstance(params["nodes"], int):
            # Fewer nodes: keep at least one on side B rather than refusing.
            params["side_a"] = max(1, min(params["side_a"], params["nodes"] - 1))
        if params["n"] > params["nodes"]:
            raise ValueError(
                f"N={params['n']} replicas need at least {params['n']} nodes, got {params['nodes']}"
            )
        check_quorum("R", params["r"], params["n"])
        check_quorum("W", params["w"], params["n"])
        # Simulate first: a refused setting leaves the widget as it was.
        self.result = run_partition_scenario(
            params["mode"], nodes=params["nodes"], n=params["n"], r=params["r"], w=params["w"],
            side_a=params["side_a"], resolution=params["resolution"], seed=self.seed,
        )  # fmt: skip
        self.params = params
        self._refresh()

    def counters(self) -> dict[str, Any]:
        """Availability per side during the partition, stale reads, lost writes, siblings."""
        return self.result.counts()

    def counters_html(self) -> str:
        c = self.counters()

        def pct(x: float) -> str:
            return "–" if math.isnan(x) else f"{x:.0%}"

        def cell(label: str, value: str, bad: bool) -> str:
            color = BAD_COLOR if bad else OK_COLOR
            return (f'<div style="display:inline-block;margin:0 18px 4px 0"><div style="font-size:11px;color:#555">'
                    f'{html.escape(label)}</div><div style="font-size:20px;color:{color}"><b>{value}</b></div></div>')  # fmt: skip

        return "".join(
            [
                cell("available on side A (partition)", pct(c["availability_A"]), c["availability_A"] < 1),
                cell("available on side B (partition)", pct(c["availability_B"]), c["availability_B"] < 1),
                cell("stale reads", str(c["stale_reads"]), c["stale_reads"] > 0),
                cell("lost writes", str(c["lost_writes"]), c["lost_writes"] > 0),
                cell("versions after healing", str(c["siblings"]), c["siblings"] > 1),
            ]
        )

    def figure(self) -> Any:
        """The timeline of the current run as a new figure."""
        return cap_timeline(self.result)

    def _build_ui(self) -> Any:
        import ipywidgets as W

        p = self.params
        self.fig, _plot = self._plot_area()
        self.counter_box = W.HTML()
        narrow = {"integer": True, "label_width": "70px"}
        self.controls = {
            "nodes": slider("nodes", p["nodes"], 2, 7, tip="storage nodes in the cluster", **narrow),
            "side_a": slider("side A", p["side_a"], 1, p["nodes"] - 1, **narrow,
                             tip="how many nodes (the first ones) are on side A of the partition"),
            "n": slider("N", p["n"], 1, 7, tip="replicas per key", **narrow),
            "r": slider("R", p["r"], 1, 7, tip="replicas a read waits for", **narrow),
            "w": slider("W", p["w"], 1, 7, tip="replicas a write waits for", **narrow),
            "mode": toggles([(m.value, m) for m in Mode], p["mode"], description="mode", label_width="70px",
                            tips=["strict quorum: refuse without R/W home replicas",
                                  "sloppy quorum + hinted handoff: stand-ins count towards R/W"]),
            "resolution": toggles([(x.value, x) for x in Resolution], p["resolution"], description="conflicts",
                                  label_width="70px",
                                  tips=["keep concurrent versions as siblings", "keep only the latest timestamp"]),
        }  # fmt: skip
        self._wire()
        c = self.controls
        return self._page(
            W.HBox([c["nodes"], c["side_a"]]),
            W.HBox([c["n"], c["r"], c["w"]]),
            c["mode"],
            c["resolution"],
            self.counter_box,
        )

    def _sync_controls(self) -> None:
        self.controls["side_a"].max = self.params["nodes"] - 1
        super()._sync_controls()

    def _redraw(self) -> None:
        p = self.params
        cap_timeline(self.result, figure=self.fig)
        self.counter_box.value = self.counters_html()
        a, b = self.result.sides
        self.status.value = status_html(
            f"{p['mode'].value}, N={p['n']}, R={p['r']}, W={p['w']} (R+W{'>' if p['r'] + p['w'] > p['n'] else '≤'}N); "
            f"partition {{{', '.join(a)}}} | {{{', '.join(b)}}} from t={self.result.partition_at:g}s "
            f"to t={self.result.heal_at:g}s; key x lives on {', '.join(self.result.store.config.home('x'))}"
        )


class QuorumWidget(SettingsWidget):
    """One write and one read under faults: N, R, W, crashed nodes, a partition.

    The story: ``x = "v1"`` is written while all is well; then the chosen
    nodes crash and the chosen nodes are cut off (side B); a client on side
    A writes ``x = "v2"``, a client on the chosen side reads ``x``; then
    everything heals and the store gets a second to repair itself.
    """

    def __init__(self, *, seed: int = 0, nodes: int = 5, n: int = 3, r: int = 2, w: int = 2,
                 mode: Mode = Mode.CONSISTENCY_FIRST) -> None:  # fmt: skip
        valid.integer("nodes", nodes, ge=2, le=7)
        self.seed = seed
        self.node_ids = tuple(f"n{i}" for i in range(1, nodes + 1))
        self.params: dict[str, Any] = {"n": n, "r": r, "w": w, "mode": mode, "down": frozenset(),
                                       "side_b": frozenset(), "read_from": "A"}  # fmt: skip
        self.set()

    # -- the model ------------------------------------------------------------------
    def set(self, **changes: Any) -> None:
        """Change n, r, w, mode, down (crashed nodes), side_b (cut-off nodes), read_from ("A"/"B")."""
        p = self._merged(changes, self.params)
        valid.integer("r", p["r"], ge=1)
        valid.integer("w", p["w"], ge=1)
        for name in ("down", "side_b"):
            p[name] = frozenset(valid.one_of(name, node, self.node_ids) for node in p[name])
        valid.one_of("read_from", p["read_from"], ("A", "B"))
        side_a = [x for x in self.node_ids if x not in p["side_b"]]
        if not [x for x in side_a if x not in p["down"]]:
            raise ValueError("side A needs at least one live node for the writing client to talk to")
        if p["read_from"] == "B" and not [x for x in p["side_b"] if x not in p["down"]]:
            raise ValueError("to read from side B, put at least one live node on side B")
        store = ReplicatedStore(self.node_ids, p["n"], p["mode"], r=p["r"], w=p["w"], seed=self.seed)
        self._run(store, p, side_a)
        self.params = p
        self._refresh()

    def _run(self, store: ReplicatedStore, p: dict[str, Any], side_a: list[str]) -> None:
        store.put("x", "v1")
        store.run_for(0.1)
        self.fault_at = store.sim.now
        for node in sorted(p["down"]):
            store.crash(node)
        if p["side_b"]:
            store.partition(side_a)
        up = [x for x in store.config.preference_list("x") if x not in p["down"]]
        writer = next(x for x in up if x in side_a)
        reader_side = side_a if p["read_from"] == "A" else sorted(p["side_b"])
        reader = next(x for x in up if x in reader_side)
        self.write = store.put("x", "v2", via=writer)
        self.read = store.get("x", via=reader)
        self.during = {x: store.stored(x).get("x", ()) for x in store.nodes}
        self.hints_during = {x: store.stored_hints(x) for x in store.nodes}
        self.heal_at = store.sim.now + 0.05
        store.run_for(0.05)
        store.heal()
        for node in sorted(p["down"]):
            store.restart(node)
        store.run_for(1.0)
        self.after = {x: store.stored(x).get("x", ()) for x in store.nodes}
        self.store = store

    def outcome(self) -> dict[str, Any]:
        """What the clients saw and where the data ended up."""
        return {
            "write_ok": self.write.ok,
            "write_quorum_met": self.write.quorum_met,
            "read_ok": self.read.ok,
            "read_values": self.read.values,
            "read_fresh": self.read.ok is True and "v2" in self.read.values if self.write.ok else None,
            "hints": sum(len(h) for h in self.hints_during.values()),
            "replicas_with_v2_after_healing": sum(
                1 for x in self.store.config.home("x") if "v2" in [v.value for v in self.after[x]]
            ),
        }

    # -- the view --------------------------------------------------------------------
    def figure(self) -> Any:
        from labkit.viz.spacetime import spacetime_diagram

        return spacetime_diagram(self.store.sim, **self._diagram_args())

    def _diagram_args(self) -> dict[str, Any]:
        # End the x axis just after the last message (background timers keep ticking silently).
        sends = [e.time for e in self.store.sim.trace.of_kind(Kind.SEND)]
        end = (max(sends) if sends else self.store.sim.now) + 0.05
        return {"nodes": [*self.store.nodes, "client"], "title": self._title(), "end": end}

    def _title(self) -> str:
        p = self.params
        return f"{p['mode'].value}: write v2 then read x (N={p['n']}, R={p['r']}, W={p['w']})"

    def table_html(self) -> str:
        """Per node: role for key x, state, side, what it held during the faults and after healing."""
        home = self.store.config.home("x")
        p = self.params

        def show(versions: tuple) -> str:
            return ", ".join(str(v.value) for v in versions) or "–"

        rows = []
        for x in self.store.nodes:
            hints = self.hints_during[x]
            hinted = ", ".join(f"{v.value} for {h}" for (h, _k), vs in hints.items() for v in vs)
            rows.append(
                f"<tr><td>{x}</td><td>{'home replica' if x in home else 'other'}</td>"
                f"<td>{'crashed' if x in p['down'] else 'up'}</td><td>{'B' if x in p['side_b'] else 'A'}</td>"
                f"<td>{html.escape(show(self.during[x]))}</td><td>{html.escape(hinted or '–')}</td>"
                f"<td>{html.escape(show(self.after[x]))}</td></tr>"
            )
        head = ("<tr><th>node</th><th>role for x</th><th>state</th><th>side</th><th>x during faults</th>"
                "<th>hints held</th><th>x after healing</th></tr>")  # fmt: skip
        # Jupyter's widget CSS zeroes cell padding: give the columns room to breathe.
        style = "<style>.labkit-replicas th, .labkit-replicas td {padding: 1px 10px 1px 0; text-align: left}</style>"
        table = '<table class="labkit-replicas" style="border-collapse:collapse;font-size:12px">'
        return f"{style}{table}{head}{''.join(rows)}</table>"

    def summary_text(self) -> str:
        o = self.outcome()
        w = "answered" if o["write_ok"] else ("refused" if o["write_ok"] is False else "no answer")
        r = f"returned {', '.join(map(str, o['read_values'])) or 'nothing'}" if o["read_ok"] else "refused"
        fresh = ""
        if o["read_ok"] and o["read_fresh"] is not None:
            fresh = " (fresh)" if o["read_fresh"] else " (stale!)"
        return (
            f"write v2: {w}; read: {r}{fresh}; hints stored: {o['hints']}; "
            f"home replicas with v2 after healing: {o['replicas_with_v2_after_healing']}/{self.params['n']}"
        )

    def _build_ui(self) -> Any:
        import ipywidgets as W

        p = self.params
        self.fig, _plot = self._plot_area()
        self.table = W.HTML()
        n = len(self.node_ids)
        self.controls = {
            "n": slider("N", p["n"], 1, n, integer=True, label_width="40px", tip="replicas per key"),
            "r": slider("R", p["r"], 1, n, integer=True, label_width="40px", tip="replicas a read waits for"),
            "w": slider("W", p["w"], 1, n, integer=True, label_width="40px", tip="replicas a write waits for"),
            "mode": toggles([(m.value, m) for m in Mode], p["mode"],
                            tips=["strict quorum", "sloppy quorum with hinted handoff"]),
            "read_from": toggles([("reader on side A", "A"), ("reader on side B", "B")], p["read_from"],
                                 button_width="130px",
                                 tips=["the reader talks to a node on side A", "the reader talks to a node on side B"]),
        }  # fmt: skip
        self._wire()
        self._boxes = []  # per node: HBox(crash checkbox, side B checkbox)
        for x in self.node_ids:
            crash = checkbox(f"crash {x}", False, tip=f"crash {x} before v2 is written", width="100px")
            cut = checkbox("side B", False, tip=f"cut {x} off on side B", width="90px")
            self._on_change(crash, lambda on, x=x: self._toggle("down", x, on))
            self._on_change(cut, lambda on, x=x: self._toggle("side_b", x, on))
            self._boxes.append(W.HBox([crash, cut]))
        c = self.controls
        return self._page(
            W.HBox([c["n"], c["r"], c["w"]]),
            W.HBox([c["mode"], c["read_from"]]),
            W.HBox([W.VBox(self._boxes), self.table]),
        )

    def _toggle(self, name: str, node: str, on: bool) -> None:
        nodes = set(self.params[name])
        (nodes.add if on else nodes.discard)(node)
        self.set(**{name: nodes})

    def _sync_controls(self) -> None:
        super()._sync_controls()
        for x, row in zip(self.node_ids, self._boxes, strict=True):
            crash, cut = row.children
            crash.value, cut.value = x in self.params["down"], x in self.params["side_b"]

    def _redraw(self) -> None:
        from labkit.viz.spacetime import spacetime_diagram

        with self.fig.batch_update():
            # Clear the shapes first: updating a shape list in place merges by index.
            self.fig.layout.shapes = ()
            spacetime_diagram(self.store.sim, **self._diagram_args(), figure=self.fig)
        self.table.value = self.table_html()
        self.status.value = status_html(self.summary_text())


def divergence_figure(runs: dict[str, Any]) -> Any:
    """Lines: divergent keys over time, one line per labelled ``anti_entropy_run`` table."""
    if not isinstance(runs, dict) or not runs:
        raise TypeError("runs must be a non-empty dict of label -> anti_entropy_run() table")
    fig = new_figure()
    for i, (label, df) in enumerate(runs.items()):
        fig.add_scatter(
            x=df["time"], y=df["divergent_keys"], mode="lines+markers", name=label, marker_color=PALETTE[i]
        )
    style_figure(fig, title="Keys whose replicas disagree, after healing", xaxis="seconds since healing",
                 yaxis="divergent keys")  # fmt: skip
    return fig
