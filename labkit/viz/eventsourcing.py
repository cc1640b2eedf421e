"""Figures and a widget for notebook 16, "Event sourcing".

:class:`ReplayWidget` rebuilds one aggregate from scratch by replaying the first *v* events of its
stream (time travel); the figures show the store's global order and the load time with and without
snapshots.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from labkit import validation as valid
from labkit.eventstore.aggregate import Aggregate, Repository
from labkit.eventstore.recorder import EventStore, RecordedEvent
from labkit.viz.common import (
    MUTED_COLOR,
    PALETTE,
    Widget,
    button,
    check_figure,
    new_figure,
    slider,
    status_html,
    style_figure,
    vline,
)

__all__ = ["ReplayWidget", "event_label", "show_field", "global_log_figure", "load_time_figure"]

_TYPE_COLORS = {
    "AccountOpened": PALETTE[0],
    "Deposited": PALETTE[2],
    "Withdrawn": PALETTE[5],
    "AccountClosed": PALETTE[8],
}


def _type_color(event_type: str, seen: dict[str, str]) -> str:
    if event_type in _TYPE_COLORS:
        return _TYPE_COLORS[event_type]
    if event_type not in seen:
        seen[event_type] = PALETTE[(len(seen) + 3) % len(PALETTE)]
    return seen[event_type]


def show_field(name: str, value: Any) -> str:
    """``name=value``; an amount in cents (a field ``cents`` or ``balance``) in euros, as the plots show it."""
    valid.string("name", name)
    if name in ("cents", "balance") and isinstance(value, int) and not isinstance(value, bool):
        return f"{name}={value} ({value / 100:,.2f} €)"
    return f"{name}={value!r}"


def event_label(record: RecordedEvent) -> str:
    """``Type(k=v, ...)`` for a stored event (amounts in cents also in euros)."""
    valid.instance("record", record, RecordedEvent)
    return f"{record.type}({', '.join(show_field(k, v) for k, v in record.data.items())})"


_NOT_YET = 0.3  # the opacity of an event's marker before the replay has applied it


class ReplayWidget(Widget):
    """Rebuild one aggregate step by step: a slider over its versions.

    ``value`` picks the number to plot from the aggregate (default: an
    account's balance in euros). The widget reads the stream once, when it
    is made (so it keeps working after the store is closed); every change of
    version then builds a fresh aggregate and applies the first ``v`` events
    to it, exactly what ``repo.load(aggregate_id, at_version=v)`` does
    without snapshots.

    Plain methods do what the controls do: :meth:`set_version`,
    :meth:`step`, :meth:`describe`; :attr:`state` is the rebuilt aggregate.
    """

    def __init__(
        self,
        repo: Repository,
        aggregate_id: str,
        *,
        value: Callable[[Aggregate], float] | None = None,
        value_label: str = "balance (€)",
    ) -> None:
        valid.string("value_label", value_label)
        valid.instance("repo", repo, Repository)
        valid.function("value", value, "a function of the aggregate", none=True)
        self.repo = repo
        self.aggregate_id = aggregate_id
        self.value = value if value is not None else (lambda agg: agg.balance / 100)
        self.value_label = value_label
        self.records = repo.store.read(aggregate_id)  # raises StreamNotFoundError for an unknown id
        self.n = len(self.records)
        self._events = [repo.codec.decode(r) for r in self.records]  # upcast once, replayed at every move
        # The value after every version, computed once by stepping one aggregate forward (for the plot).
        agg = repo.aggregate_cls(aggregate_id)
        self.values = [self.value(agg)]
        for event in self._events:
            agg.apply(event)
            self.values.append(self.value(agg))
        self.version = self.n
        self.state = self._rebuild(self.n)

    # -- what the controls do ------------------------------------------------
    def set_version(self, version: int) -> None:
        """Rebuild the aggregate as of ``version`` (0 = before its first event)."""
        valid.integer("version", version, ge=0, le=self.n)
        self.state = self._rebuild(version)
        self.version = version
        self._refresh()

    def _rebuild(self, version: int) -> Aggregate:
        """A fresh aggregate with the first ``version`` events applied, one by one."""
        agg = self.repo.aggregate_cls(self.aggregate_id)
        for event in self._events[:version]:
            agg.apply(event)
        return agg

    def step(self, delta: int = 1) -> None:
        """Move ``delta`` versions forward (negative: back), stopping at the ends."""
        valid.integer("delta", delta)
        self.set_version(min(self.n, max(0, self.version + delta)))

    def describe(self) -> str:
        """One line: the version, the event just applied and the state it led to."""
        v = self.version
        last = event_label(self.records[v - 1]) if v else "nothing yet"
        state = ", ".join(show_field(k, x) for k, x in self.state.snapshot_state().items())
        return f"version {v} of {self.n}; last event applied: {last}; state: {state}"

    # -- the view ------------------------------------------------------------
    def figure(self, figure: Any = None) -> Any:
        """The history (muted), the part replayed so far, the events by type, the last one applied, a cursor.

        Without ``figure`` a new ``go.Figure`` is drawn. Redrawing into a figure
        this method drew before only updates what the version changes (the
        replayed line, the last event, the cursor, the title).
        """
        figure = new_figure(check_figure(figure))
        if not self._drawn_by_us(figure):
            with figure.batch_update():
                figure.data = []
                self._draw_static(figure)
        with figure.batch_update():
            self._draw_version(figure)
        return figure

    def _by_type(self) -> dict[str, list[int]]:
        by_type: dict[str, list[int]] = {}
        for i, r in enumerate(self.records, start=1):
            by_type.setdefault(r.type, []).append(i)
        return by_type

    def _drawn_by_us(self, fig: Any) -> bool:
        return len(fig.data) == 3 + len(self._by_type()) and fig.data[1].meta == "labkit-replayed"

    def _draw_static(self, fig: Any) -> None:
        """Traces and layout that do not depend on the version."""
        fig.add_scatter(x=list(range(self.n + 1)), y=self.values, mode="lines", name="whole history",
                        line={"color": MUTED_COLOR, "dash": "dot", "shape": "hv"}, hoverinfo="skip")  # fmt: skip
        fig.add_scatter(
            mode="lines", line={"color": PALETTE[0], "width": 3, "shape": "hv"}, meta="labkit-replayed"
        )
        extra: dict[str, str] = {}
        hover = "%{text}<br>" + self.value_label + " after: %{y}<extra></extra>"
        for event_type, versions in self._by_type().items():
            text = [f"v{i} · position {self.records[i - 1].position}<br>{event_label(self.records[i - 1])}"
                    for i in versions]  # fmt: skip
            fig.add_scatter(x=versions, y=[self.values[i] for i in versions], mode="markers", name=event_type,
                            marker={"color": _type_color(event_type, extra), "size": 9}, hovertemplate=hover,
                            text=text)  # fmt: skip
        fig.add_scatter(mode="markers", name="last event applied", hoverinfo="skip",
                        marker={"size": 16, "symbol": "circle-open", "color": "#000000", "line": {"width": 3}})  # fmt: skip
        fig.layout.shapes = [vline(0, "#000000", dash="dash")]  # the cursor: the version replayed
        style_figure(
            fig, title="", xaxis="version (number of events applied)", yaxis=self.value_label, height=400
        )
        fig.update_xaxes(range=[-0.5, self.n + 0.5])

    def _draw_version(self, fig: Any) -> None:
        """Only what the version changes: two short traces, the markers' shading, the cursor and the title."""
        v = self.version
        fig.data[1].update(x=list(range(v + 1)), y=self.values[: v + 1], name=f"replayed up to version {v}")
        fig.data[-1].update(x=[v] if v else [], y=[self.values[v]] if v else [])  # the last event applied
        for trace in fig.data[2:-1]:  # the events by type: those not replayed yet are faded, as their line is
            trace.marker.opacity = [1.0 if i <= v else _NOT_YET for i in trace.x]
        fig.layout.shapes[0].update(x0=v, x1=v)
        fig.layout.title.text = f"Rebuilding {self.aggregate_id!r} by replay: version {v} of {self.n}"

    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.slider = slider("version", self.version, 0, self.n, integer=True, continuous=True,
                             tip="how many events to replay; the state is rebuilt from the store at each step")  # fmt: skip
        self.play = W.Play(value=self.version, min=0, max=self.n, interval=400, description="play",
                           tooltip="replay the stream from the start, one event at a time")  # fmt: skip
        W.jslink((self.play, "value"), (self.slider, "value"))
        self.back_button = button("◀ one back", tip="undo the last event (rebuild one version earlier)")
        self.next_button = button("one more ▶", tip="apply the next event")
        self._on_change(self.slider, self.set_version)
        self._on_click(self.back_button, lambda: self.step(-1))
        self._on_click(self.next_button, lambda: self.step(1))
        self.state_html = W.HTML()
        self.fig, plot = self._plot_area(self.figure())
        controls = W.HBox([self.play, self.slider, self.back_button, self.next_button])
        return W.VBox([controls, self.status, self.state_html, plot])

    def _sync_controls(self) -> None:
        self.slider.value = self.version

    def _redraw(self) -> None:
        v = self.version
        last = event_label(self.records[v - 1]) if v else "(none: the empty aggregate)"
        self.status.value = status_html(f"version {v} of {self.n}; last event applied: {last}")
        rows = "".join(
            f"<tr><td style='padding-right:1em'>{k}</td><td><code>{html.escape(show_field(k, x).split('=', 1)[1])}</code></td></tr>"
            for k, x in self.state.snapshot_state().items()
        )
        self.state_html.value = (
            f"<b>state of {self.aggregate_id!r} as of version {self.state.version}</b>"
            f"<table style='font-size:90%'>{rows}</table>"
        )
        self.figure(self.fig)


def global_log_figure(store: EventStore, *, limit: int = 300) -> Any:
    """Every event of ``store`` at its global position, one row per stream (first ``limit`` events)."""
    valid.instance("store", store, EventStore)
    valid.integer("limit", limit, ge=1)
    records = store.read_all(0, limit=limit)
    fig = new_figure()
    extra: dict[str, str] = {}
    by_type: dict[str, list[RecordedEvent]] = {}
    for r in records:
        by_type.setdefault(r.type, []).append(r)
    for event_type, rs in by_type.items():
        fig.add_scatter(x=[r.position for r in rs], y=[r.stream_id for r in rs], mode="markers", name=event_type,
                        marker={"color": _type_color(event_type, extra), "size": 9, "symbol": "square"},
                        text=[f"position {r.position} · {r.stream_id} v{r.version}<br>{event_label(r)}" for r in rs],
                        hovertemplate="%{text}<extra></extra>")  # fmt: skip
    streams = list(dict.fromkeys(r.stream_id for r in records))
    title = f"The global log: {len(records)} events, each with one position (what read_all returns)"
    style_figure(
        fig, title=title, xaxis="global position", yaxis="stream", height=max(260, 80 + 40 * len(streams))
    )
    fig.update_yaxes(categoryorder="array", categoryarray=streams[::-1])
    return fig


def load_time_figure(rows: Sequence[dict[str, Any]]) -> Any:
    """Load time (ms, fastest of the repeats) against stream length, one line per mode, replay counts on hover."""
    if not rows:
        raise ValueError("rows must not be empty (use labkit.eventstore.bank.measure_load_times)")
    fig = new_figure()
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    for i, mode in enumerate(modes):
        rs = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["events"])
        fig.add_scatter(x=[r["events"] for r in rs], y=[r["seconds"] * 1e3 for r in rs], mode="lines+markers",
                        name=mode, line={"color": PALETTE[[0, 5][i % 2]] if i < 2 else PALETTE[i]},
                        text=[f"replayed {r['events_replayed']} events" for r in rs],
                        hovertemplate="%{x} events in the stream<br>%{y:.2f} ms<br>%{text}<extra></extra>")  # fmt: skip
    style_figure(fig, title="Loading one aggregate: full replay vs. snapshot + tail", xaxis="events in the stream",
                 yaxis="load time (ms, fastest of the repeats)")  # fmt: skip
    return fig
