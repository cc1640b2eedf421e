"""Figures and a widget for notebook 03, "Broadcast and CRDTs" (the broadcast half).

* :func:`broadcast_diagram`: the space-time diagram of a broadcast run
  (:func:`labkit.viz.spacetime.spacetime_diagram`), with each broadcast and
  each delivery labelled by its message, the time a message was *held back*
  (received, not yet delivered) drawn as a thick grey bar on the receiver's
  lane, and the deliveries that break a guarantee marked in red;
* :func:`delivery_orders`: who delivered what, in which order, as a table;
* :func:`verdicts`: which guarantees each of several runs kept, as a table;
* :class:`BroadcastWidget`: pick a broadcast algorithm and a seed, watch
  the same group chat delivered in different orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from labkit import validation as valid
from labkit.broadcast import (
    Ack,
    BroadcastRun,
    EventKind,
    Msg,
    Packet,
    Property,
    Protocol,
    Sequenced,
    SequencerBroadcast,
    carried,
    run_broadcast,
)
from labkit.sim import Kind, Simulator, Trace, Uniform
from labkit.viz.common import BAD_COLOR, OK_COLOR, Widget, legend_below, marks, slider, status_html, toggles

__all__ = ["BroadcastWidget", "CHAT", "broadcast_diagram", "delivery_orders", "legend_below", "verdicts"]

HELD_COLOR = "#bbbbbb"


def _messages_only(sim: Simulator) -> Trace:
    """The run's trace without the link layer's acknowledgements (they only clutter)."""
    trace = Trace()
    trace.rows = [r for r, e in zip(sim.trace.rows, sim.trace, strict=True) if not isinstance(e.message, Ack)]
    return trace


def broadcast_diagram(
    run: BroadcastRun,
    *,
    highlight: Property | Iterable[Property] | None = None,
    title: str | None = None,
    height: int = 440,
    figure: Any = None,
) -> Any:
    """A space-time diagram of ``run`` with broadcasts, deliveries and hold-backs.

    ``highlight``: the guarantee(s) whose violations are marked in red
    (default: every guarantee the run broke). ``figure``: a ``go.FigureWidget``
    to redraw in place (the number of traces never changes).
    """
    from labkit.viz.spacetime import spacetime_diagram

    valid.instance("run", run, BroadcastRun)
    if highlight is None:
        props = set(run.broken())
    elif isinstance(highlight, Property):
        props = {highlight}
    else:
        props = set(highlight)
        for p in props:
            valid.instance("highlight", p, Property)
    points = _Points.of(run, props)
    name = run.protocol.value if run.protocol else "your broadcast"
    fig = spacetime_diagram(
        _messages_only(run.sim),
        nodes=list(run.sim.nodes),
        start=points.first - 0.04 * points.width,
        end=points.last + 0.08 * points.width,
        notes=False,
        title=title or f"{name} broadcast",
        figure=figure,
        height=height,
    )
    # spacetime_diagram has just (re)drawn its own traces, and dropped ours if there were any.
    fig.add_traces(points.traces(props))
    legend_below(fig)
    return fig


@dataclass
class _Points:
    """What :func:`broadcast_diagram` draws over the messages: marks per kind, labels, hold-backs."""

    first: float  # the first and last broadcast or delivery: the diagram frames these
    last: float
    width: float
    series: dict[str, dict[str, list]]  # "broadcast", "delivered", "violation" -> x, y, text, hover
    labels: dict[str, list]  # one label per delivery, coloured if it breaks a guarantee
    held_x: list[Any]  # a bar from when a message arrived at a node to when it was delivered there
    held_y: list[Any]

    @classmethod
    def of(cls, run: BroadcastRun, props: set[Property]) -> _Points:
        sim = run.sim
        lane = {n: i for i, n in enumerate(sim.nodes)}
        bad = {(v.node, v.msgs[0].id) for p in props for v in run.violations[p]}
        # Frame the broadcasts and deliveries, not a quiet start or end of the run; with room for their labels.
        times = [e.time for e in run.history.events]
        first, last = min(times, default=0.0), max(times, default=0.0)
        width = max(last - first, 0.01)
        arrived = _arrivals(sim)
        series: dict[str, dict[str, list]] = {
            k: {"x": [], "y": [], "text": [], "hover": []} for k in ("broadcast", "delivered", "violation")
        }
        labels: dict[str, list] = {"x": [], "y": [], "text": [], "hover": []}
        held_x: list[Any] = []
        held_y: list[Any] = []
        for e in run.history.events:
            y = lane[e.node]
            if e.kind is EventKind.BROADCAST:
                s = series["broadcast"]
                s["hover"].append(f"{e.node} broadcasts {e.msg} at {e.time:.3f}s")
            else:
                got = arrived.get((e.node, e.msg.id))
                if e.msg.origin == e.node and got is None and (e.node, e.msg.id) not in bad:
                    continue  # its own message, delivered where it was broadcast: the broadcast marks it
                s = series["violation" if (e.node, e.msg.id) in bad else "delivered"]
                waited = "" if got is None else f", received {got:.3f}s"
                s["hover"].append(f"{e.node} delivers {e.msg} at {e.time:.3f}s{waited}")
                if got is not None and e.time - got > 1e-9:
                    held_x += [got, e.time, None]
                    held_y += [y, y, None]
            s["x"].append(e.time)
            s["y"].append(y)
            s["text"].append(str(e.msg))
            if e.kind is EventKind.DELIVER:  # one label per cluster of deliveries, in delivery order
                bad_one = (e.node, e.msg.id) in bad
                labels["x"].append(e.time)
                labels["y"].append(y)
                labels["text"].append(
                    f'<span style="color:{BAD_COLOR}">{e.msg}</span>' if bad_one else str(e.msg)
                )
                labels["hover"].append("")
        gap = (last - first + 0.12 * width) / 150
        series["broadcast"] = _join_close(series["broadcast"], gap)
        return cls(first, last, width, series, _join_close(labels, gap), held_x, held_y)

    def traces(self, props: set[Property]) -> list[Any]:
        import plotly.graph_objects as go

        why = {p.value for p in props}
        return [
            go.Scatter(
                x=self.held_x,
                y=self.held_y,
                mode="lines",
                line={"color": HELD_COLOR, "width": 9},
                name="held back",
                hoverinfo="skip",
                opacity=0.8,
            ),
            marks(
                self.series["broadcast"],
                name="broadcast",
                textposition="top center",
                marker={"color": "#000000", "symbol": "circle", "size": 9},
            ),
            marks(
                self.series["delivered"],
                name="delivered",
                marker={"color": OK_COLOR, "symbol": "square", "size": 8},
            ),
            marks(
                self.series["violation"],
                name="breaks " + (", ".join(sorted(why)) if why else "nothing"),
                marker={"color": BAD_COLOR, "symbol": "square-x", "size": 12},
            ),
            go.Scatter(
                x=self.labels["x"],
                y=self.labels["y"],
                mode="markers+text",  # invisible markers the size of the squares push the text below them
                marker={"size": 14, "opacity": 0},
                text=self.labels["text"],
                textposition="bottom center",
                name="delivery labels",
                showlegend=False,
                hoverinfo="skip",
            ),
        ]


def _arrivals(sim: Simulator) -> dict[tuple[str, tuple[str, int]], float]:
    """When a message first reached each node on its way to be delivered there
    (requests to a sequencer or a Raft leader are not counted)."""
    arrived: dict[tuple[str, tuple[str, int]], float] = {}
    for d in sim.trace.of_kind(Kind.DELIVER):
        frame = d.message.payload if isinstance(d.message, Packet) else d.message
        if isinstance(frame, (Msg, Sequenced)) and not (isinstance(frame, Msg) and _to_sequencer(sim, d.dst)):
            arrived.setdefault((d.dst, carried(frame).id), d.time)  # type: ignore[union-attr]
    return arrived


def _to_sequencer(sim: Simulator, node: str) -> bool:
    node_obj = sim.node(node) if sim.is_up(node) else None
    return isinstance(node_obj, SequencerBroadcast) and node_obj.sequencer == node


def _join_close(points: dict[str, list], gap: float) -> dict[str, list]:
    """Merge markers on one lane less than ``gap`` apart into one, labels joined in order."""
    out: dict[str, list] = {"x": [], "y": [], "text": [], "hover": []}
    last_at: dict[Any, int] = {}
    for x, y, text, hover in zip(points["x"], points["y"], points["text"], points["hover"], strict=True):
        i = last_at.get(y)
        if i is not None and x - out["x"][i] < gap:
            out["text"][i] += " " + text
            out["hover"][i] += "<br>" + hover
            continue
        last_at[y] = len(out["x"])
        out["x"].append(x)
        out["y"].append(y)
        out["text"].append(text)
        out["hover"].append(hover)
    return out


def delivery_orders(run: BroadcastRun) -> Any:
    """A DataFrame: one row per node, the messages it delivered in order."""
    import pandas as pd

    valid.instance("run", run, BroadcastRun)
    orders = {n: [str(m) for m in run.history.delivered(n)] for n in run.sim.nodes}
    width = max((len(v) for v in orders.values()), default=0)
    return pd.DataFrame(
        {n: v + [""] * (width - len(v)) for n, v in orders.items()},
        index=pd.RangeIndex(1, width + 1, name="delivered #"),
    ).T


def verdicts(runs: Mapping[Any, BroadcastRun] | Iterable[BroadcastRun]) -> Any:
    """A DataFrame: for each run (row), whether each guarantee held (✓) or how often it broke."""
    import pandas as pd

    items = list(runs.items()) if isinstance(runs, Mapping) else [(r.protocol.value, r) for r in runs]
    rows = {}
    for key, run in items:
        valid.instance("run", run, BroadcastRun)
        rows[key] = {p.value: "✓" if not v else f"✗ {len(v)}" for p, v in run.violations.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


# A small group chat: A asks, B answers as soon as it sees the question, and
# A and C post one more message each at about the same time.
CHAT = {
    "broadcasts": [(0.0, "A", "q?"), (0.05, "A", "x"), (0.06, "C", "y")],
    "replies": {"q?": ("B", "a!")},
    "latency": Uniform(0.01, 0.15),
}


class BroadcastWidget(Widget):
    """The same group chat under each broadcast algorithm.

    Pick an algorithm and a network seed: the diagram shows what each node
    delivered when, and the status line which guarantees held.

    >>> w = BroadcastWidget()
    >>> w.set_protocol(Protocol.FIFO); w.set_seed(3)   # the same as clicking
    >>> w.run.broken()
    """

    SEEDS = (0, 20)

    def __init__(self, protocol: Protocol = Protocol.BEST_EFFORT, seed: int = 1) -> None:
        self.protocol = valid.instance("protocol", protocol, Protocol)
        self.seed = valid.integer("seed", seed, ge=self.SEEDS[0], le=self.SEEDS[1])
        self._simulate()

    def set_protocol(self, protocol: Protocol) -> None:
        self.protocol = valid.instance("protocol", protocol, Protocol)
        self._changed()

    def set_seed(self, seed: int) -> None:
        self.seed = valid.integer("seed", seed, ge=self.SEEDS[0], le=self.SEEDS[1])
        self._changed()

    def _simulate(self) -> None:
        self.run: BroadcastRun = run_broadcast(
            self.protocol,
            CHAT["broadcasts"],
            replies=CHAT["replies"],
            latency=CHAT["latency"],
            seed=self.seed,
        )

    def _changed(self) -> None:
        self._simulate()
        self._refresh()

    def summary(self) -> str:
        """Each node's delivery order, and which guarantees held."""
        orders = "; ".join(f"{n}: {' '.join(self.run.delivered(n))}" for n in self.run.sim.nodes)
        kept = [p.value for p in (Property.FIFO, Property.CAUSAL, Property.TOTAL_ORDER) if self.run.holds(p)]
        broken = [p.value for p in self.run.broken()]
        return f"Delivered {orders}. Held: {', '.join(kept) or 'no ordering guarantee'}." + (
            f" Broken: {', '.join(broken)}." if broken else ""
        )

    def _build_ui(self) -> Any:
        self.fig, _plot = self._plot_area()
        self.protocol_picker = toggles([(p.value, p) for p in Protocol], self.protocol, description="broadcast",
                                       button_width="auto")  # fmt: skip
        self.seed_slider = slider("network seed", self.seed, *self.SEEDS, integer=True, label_width="100px")
        self._on_change(self.protocol_picker, self.set_protocol)
        self._on_change(self.seed_slider, self.set_seed)
        return self._page(self.protocol_picker, self.seed_slider)

    def _sync_controls(self) -> None:
        self.protocol_picker.value = self.protocol
        self.seed_slider.value = self.seed

    def _redraw(self) -> None:
        title = f"{self.protocol.value} broadcast, network seed {self.seed}"
        broadcast_diagram(self.run, title=title, figure=self.fig)
        self.status.value = status_html(self.summary())
