"""Pictures of histories and the checker's verdict (notebook 11).

The picture follows Herlihy & Wing (1990), Figure 1: time runs left to right, an operation is an
interval from call to return, and a linearization is one point per interval. :func:`history_figure`
draws a history and, for a failing one, the longest partial linearization, the operation that could
not be placed and the smallest set of operations that conflict; :func:`stale_read_figure` draws only
a stale (or non-monotonic, or future) read, its evidence and their neighbours. :class:`RealTimeWidget` slides two
reads around a write; :class:`StoreCheckWidget` checks the history of one of labkit's stores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.linearizability import (
    UNKNOWN,
    Anomaly,
    CheckResult,
    KVModel,
    Operation,
    RegisterModel,
    Verdict,
    check,
    linearization_points,
    minimal_violation,
    stale_read,
    stale_read_window,
)
from labkit.viz.common import (
    BAD_COLOR,
    MUTED_COLOR,
    OK_COLOR,
    PALETTE,
    SettingsWidget,
    add_point,
    check_figure,
    check_title,
    dropdown,
    new_figure,
    point_columns,
    slider,
    status_html,
    style_figure,
)

__all__ = [
    "history_figure",
    "history_picture",
    "stale_read_figure",
    "draw_history",
    "HistoryPicture",
    "op_label",
    "RealTimeWidget",
    "StoreCheckWidget",
    "STORES",
]

_SURE_COLOR = PALETTE[0]
_CONFLICT_COLOR = PALETTE[1]
_POINT_COLOR = "#000000"
# (name, colour, width, dash) of the bar series, in a fixed order so widgets update in place.
_BARS = (
    ("operation", _SURE_COLOR, 12, "solid"),
    ("outcome unknown", MUTED_COLOR, 6, "dash"),
    ("conflicting operation", _CONFLICT_COLOR, 12, "solid"),
    ("could not be placed", BAD_COLOR, 12, "solid"),
)
_MAX_CORE_OPS = 80  # shrink a counterexample only when the failing part is this small
_CORE_STEPS = 5_000  # search steps per check while shrinking it (deterministic)
_MAX_LABELS = 24  # more operations in view than this: label only the conflicting ones


def _brief(value: Any, limit: int) -> str:
    """``repr(value)``, its middle cut out when longer than ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-(limit // 2 - 1) :]}"


def op_label(op: Operation, limit: int = 16) -> str:
    """A short label: ``write 1``, ``read → 1``, ``put x=a``, ``cas 1→2: True``; values longer
    than ``limit`` characters are shortened."""
    valid.instance("op", op, Operation)
    valid.integer("limit", limit, ge=4, note="characters")
    kind, *args = op.input
    out = "?" if op.output is UNKNOWN else _brief(op.output, limit)
    a = [_brief(x, limit) for x in args]
    if kind == "write" and len(args) == 1:
        return f"write {a[0]}"
    if kind == "read" and not args:
        return f"read → {out}"
    if kind == "cas" and len(args) == 2:
        return f"cas {a[0]}→{a[1]}: {out}"
    if kind == "put" and len(args) == 2:
        return f"put {args[0]}={a[1]}"
    if kind == "append" and len(args) == 2:
        return f"append {args[0]}+={a[1]}"
    if kind == "get" and len(args) == 1:
        return f"get {args[0]} → {out}"
    return f"{kind}({', '.join(a)})" + ("" if op.output is None else f" → {out}")


def _as_result(history_or_result: Any, model: Any) -> tuple[tuple[Operation, ...], CheckResult | None]:
    if isinstance(history_or_result, CheckResult):
        return history_or_result.history, history_or_result
    valid.collection("history_or_result", history_or_result, "a list of Operation or a CheckResult", Sequence)
    ops = tuple(history_or_result)
    return ops, (check(ops, model) if model is not None else None)


@dataclass
class HistoryPicture:
    """What :func:`history_figure` draws, read from a history and its verdict."""

    ops: tuple[Operation, ...]
    shown: list[int]  # operation ids drawn, by call
    clients: list[Any]  # one row per client, top to bottom
    kind: dict[int, str]  # operation id -> its bar series (a name in _BARS)
    order: list[list[int]]  # the linearization (or longest partial one) of each part drawn
    points: dict[int, float]  # operation id -> its linearization point
    verdict: str  # "linearizable", "NOT linearizable on key 'x'", ... ("history" without a verdict)
    ok: bool | None  # the verdict, None without one
    x_range: list[float]
    horizon: float  # where the bars of operations that never returned end
    labelled: set[int]  # operations whose bars carry a label
    names: dict[str, str] = field(default_factory=dict)  # legend names replacing those of _BARS
    min_width: float = 0.0  # bars shorter than this fraction of the view are drawn this long (centred)


def history_picture(
    history_or_result: Any, model: Any = None, *, focus: bool = True, conflict: bool = True, key: Any = None
) -> HistoryPicture:
    """Read a history (and its verdict) into what :func:`history_figure` draws (arguments as there)."""
    ops, result = _as_result(history_or_result, model)
    shown = list(range(len(ops)))
    points: dict[int, float] = {}
    order: list[list[int]] = []
    blocked: int | None = None
    core: set[int] = set()
    verdict = "history"
    if result is not None:
        points = linearization_points(result)
        order = [list(p.order) for p in result.partitions]
        failure = result.failure
        if result.verdict is Verdict.LINEARIZABLE:
            verdict = "linearizable"
        elif failure is not None:
            verdict = "NOT linearizable" if result.ok is False else "undecided (budget ran out)"
            if focus and len(result.partitions) + len(result.unchecked) > 1:
                shown, order = sorted(failure.ops), [list(failure.order)]
                verdict += f" on key {failure.key!r}"
            if result.ok is False:
                blocked = failure.blocked
                if conflict and len(failure.ops) <= _MAX_CORE_OPS:
                    core = set(minimal_violation(result, max_steps=_CORE_STEPS))
    if key is not None:
        part = next((p for p in result.partitions if p.key == key), None) if result is not None else None
        if part is None:
            raise ValueError(f"key must be one of the checked parts of the history, got {key!r}")
        shown, order = sorted(part.ops), [list(part.order)]
        if part.verdict is Verdict.LINEARIZABLE:
            verdict = f"key {key!r} linearizable"
    shown_set = set(shown)
    points = {i: t for i, t in points.items() if i in shown_set}
    core &= shown_set
    if blocked not in shown_set:
        blocked = None
    shown.sort(key=lambda i: (ops[i].call, i))
    clients = list(dict.fromkeys(ops[i].client for i in shown))
    kind = {i: _bar_kind(ops[i], i == blocked, i in core) for i in shown}
    marked = core | ({blocked} if blocked is not None else set())
    x_range, horizon = _view(ops, shown, marked if focus else set())
    in_view = [i for i in shown if ops[i].call <= x_range[1] and (ops[i].pending or ops[i].ret >= x_range[0])]
    labelled = set(in_view) if len(in_view) <= _MAX_LABELS else marked
    ok = None if result is None else result.ok
    return HistoryPicture(ops, shown, clients, kind, order, points, verdict, ok, x_range, horizon, labelled)


def _bar_kind(op: Operation, blocked: bool, conflicting: bool) -> str:
    if blocked:
        return "could not be placed"
    if conflicting:
        return "conflicting operation"
    return "outcome unknown" if op.output is UNKNOWN else "operation"


def _view(ops: tuple[Operation, ...], shown: list[int], marked: set[int]) -> tuple[list[float], float]:
    """The time axis (around the conflict, if ``marked``) and where never-returned bars end."""
    finite = [ops[i].ret for i in shown if not ops[i].pending] + [ops[i].call for i in shown]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    span = (hi - lo) or 1.0
    horizon = hi + 0.08 * span
    x_range = [lo - 0.04 * span, horizon + 0.02 * span]
    if marked:
        a = min(ops[i].call for i in marked)
        b = max(ops[i].ret if not ops[i].pending else horizon for i in marked)
        pad = max(0.5 * (b - a), 0.02 * span)
        x_range = [max(x_range[0], a - pad), min(x_range[1], b + pad)]
    return x_range, horizon


def _labels(pic: HistoryPicture, row: dict[Any, int]) -> tuple[list[float], list[float], list[str]]:
    """Labels below the bar if that space is free, else above, else none (the hover still has it).

    Slots (row, above/below) keep the x intervals in use: overlapping labels
    are unreadable. A character of the 11 px font is about 6.5 px of a plot
    area about 680 px wide: a notebook's output is about 1000 px, less the
    client names on the left and the legend on the right (with 900 px, a
    long label at the edge of the view was cut off).
    """
    lo, hi = pic.x_range
    char = 6.5 / 680 * (hi - lo)
    slots: dict[tuple[int, float], list[tuple[float, float]]] = {}
    xs, ys, texts = [], [], []
    for i in pic.shown:
        if i not in pic.labelled:
            continue
        op, label = pic.ops[i], op_label(pic.ops[i])
        end = pic.horizon if op.pending else op.ret
        half = 0.5 * len(label) * char
        # Centred on the part of the bar in view, and kept inside the axes.
        mid = min(max((max(op.call, lo) + min(end, hi)) / 2, lo + half), hi - half)
        for dy in (0.3, -0.3):
            taken = slots.setdefault((row[op.client], dy), [])
            if all(mid + half < a or mid - half > b for a, b in taken):
                taken.append((mid - half - char, mid + half + char))
                xs.append(mid)
                ys.append(row[op.client] + dy)
                texts.append(label)
                break
    return xs, ys, texts


def history_figure(
    history_or_result: Any,
    model: Any = None,
    *,
    title: str | None = None,
    figure: Any = None,
    focus: bool = True,
    conflict: bool = True,
    key: Any = None,
) -> Any:
    """Draw a history; with a :class:`CheckResult` (or a ``model``), also the verdict.

    ``focus``: for a failing history of several parts (keys), draw only the
    failing part, around its conflict. ``key``: draw only this part (key) of a
    checked history. ``conflict``: shrink a failing part to its conflicting
    operations and highlight them. ``figure``: a ``go.FigureWidget`` to
    redraw in place (widgets); by default a new ``go.Figure``.
    """
    check_title(title)
    check_figure(figure)
    valid.boolean("focus", focus)
    valid.boolean("conflict", conflict)
    pic = history_picture(history_or_result, model, focus=focus, conflict=conflict, key=key)
    return draw_history(pic, title=title or f"{len(pic.shown)} operations: {pic.verdict}", figure=figure)


# What the read's nearest evidence is called in the legend, per kind of violation.
_STALE_NAMES = {
    Anomaly.STALE_READ: "write it missed",
    Anomaly.NON_MONOTONIC_READ: "earlier read",
    Anomaly.FUTURE_READ: "write of its value",
}
# Where the title's sentence (StaleRead.describe) starts a new line.
_TITLE_BREAKS = (
    (" although ", "<br>although "),
    (" (it missed", "<br>(it missed"),
    (": the value went back", "<br>the value went back"),
    (": the later value", "<br>the later value"),
    (", but no operation wrote", "<br>but no operation wrote"),
)


def stale_read_figure(result: CheckResult, *, around: int = 2, title: str | None = None) -> Any:
    """Draw the stale, non-monotonic or future read of a failing ``result`` (see
    :func:`~labkit.linearizability.stale_read`).

    Only the read, its nearest evidence (the write it missed, the earlier read
    it goes back from, or the later write of its value) and ``around``
    operations before and after each on their own clients are drawn, one row
    per client involved; dotted lines mark the two moments that make it a
    violation, and the title says what is wrong. A failing history of hundreds
    of operations becomes a handful: the picture shows the evidence, not the
    whole run. Raises ValueError if the failing part holds none of the three
    (draw it with :func:`history_figure`).
    """
    valid.instance("result", result, CheckResult)
    check_title(title)
    stale = stale_read(result)
    if stale is None:
        raise ValueError(
            "result's failing part holds no stale, non-monotonic or future read (a violation that only a "
            "search explains): draw it with history_figure(result)"
        )
    ops = result.history
    r, e = ops[stale.read], None if stale.nearest is None else ops[stale.nearest]
    shown = list(stale_read_window(result, stale, around=around))
    clients = list(dict.fromkeys(ops[i].client for i in (stale.read, stale.nearest) if i is not None))
    evidence = set(stale.evidence)
    kind = {i: _bar_kind(ops[i], i == stale.read, i in evidence) for i in shown}
    # The view spans the operations with known outcomes; unknown ones run off its edges.
    known = [ops[i] for i in shown if ops[i].output is not UNKNOWN] + ([e] if e is not None else [])
    lo, hi = min(o.call for o in known), max(o.ret if not o.pending else o.call for o in known)
    span = hi - lo or 1.0
    x_range = [lo - 0.05 * span, hi + 0.05 * span]
    bad, why = stale.name, _STALE_NAMES[stale.kind]
    names = {"could not be placed": bad, "conflicting operation": why}
    # Only the evidence is labelled (every bar's hover has its operation).
    pic = HistoryPicture(ops, shown, clients, kind, [], {}, "NOT linearizable", False, x_range, hi + 0.1 * span,
                         {i for i in (stale.read, stale.nearest) if i is not None}, names, min_width=0.01)  # fmt: skip
    text = stale.describe(ops)
    for cut, line in _TITLE_BREAKS:
        text = text.replace(cut, line, 1)
    fig = draw_history(pic, title=title or f"<b>{stale.name.capitalize()}</b>: {text}")
    if e is None:
        marks = []
    elif stale.kind is Anomaly.FUTURE_READ:
        marks = [(r.ret, "read returned", "top left"), (e.call, f"{e.input[0]} called", "top right")]
    else:
        first = (
            "earlier read returned" if stale.kind is Anomaly.NON_MONOTONIC_READ else f"{e.input[0]} returned"
        )
        marks = [(e.ret, first, "top left"), (r.call, "read called", "top right")]
    for x, note, pos in marks:
        fig.add_vline(x=x, line={"color": MUTED_COLOR, "width": 1, "dash": "dot"}, annotation_text=note,
                      annotation_position=pos, annotation_font_size=11)  # fmt: skip
    fig.update_layout(height=220 + 60 * len(clients), margin={"t": 150})
    return fig


def draw_history(pic: HistoryPicture, *, title: str, figure: Any = None) -> Any:
    """Draw a :class:`HistoryPicture`: a bar per operation, labels, linearization points."""

    def describe(i: int) -> str:
        return f"#{i} client {ops[i].client}: {op_label(ops[i], 200)}"

    ops = pic.ops
    row = {c: k for k, c in enumerate(pic.clients)}
    bars: dict[str, tuple[list[Any], list[Any], list[str]]] = {name: ([], [], []) for name, *_ in _BARS}
    grow = pic.min_width * (pic.x_range[1] - pic.x_range[0])
    for i in pic.shown:
        op = ops[i]
        xs, ys, hover = bars[pic.kind[i]]
        text = f"{describe(i)}<br>call {op.call:.6g}, return " + ("never" if op.pending else f"{op.ret:.6g}")
        start, end = op.call, pic.horizon if op.pending else op.ret
        if end - start < grow:  # too short to see: widen it around its middle (the hover has the times)
            start, end = (start + end - grow) / 2, (start + end + grow) / 2
        xs += [start, end, None]
        ys += [row[op.client], row[op.client], None]
        hover += [text, text, ""]
    lin = point_columns("x", "y", "hover")
    for part in pic.order:
        for i in part:
            if i in pic.points:
                hover = f"{describe(i)}<br>takes effect at {pic.points[i]:.4g} s"
                add_point(lin, x=pic.points[i], y=row[ops[i].client], hover=hover)
        add_point(lin, x=None, y=None, hover="")
    label_x, label_y, label_text = _labels(pic, row)
    fig = new_figure(figure)
    with fig.batch_update():
        fig.data = ()
        for name, color, width, dash in _BARS:
            xs, ys, hover = bars[name]
            fig.add_scatter(
                x=xs, y=ys, mode="lines+markers", name=pic.names.get(name, name), line={"color": color, "width": width, "dash": dash},
                # White ticks at call and return keep back-to-back operations apart.
                marker={"symbol": "line-ns", "size": width + 4, "color": "#ffffff",
                        "line": {"color": "#ffffff", "width": 2}},
                hovertext=hover, hoverinfo="text", showlegend=bool(xs) or name == "operation",
            )  # fmt: skip
        fig.add_scatter(x=label_x, y=label_y, mode="text", text=label_text, name="labels", showlegend=False,
                        textfont={"size": 11, "color": "#333333"}, hoverinfo="skip")  # fmt: skip
        fig.add_scatter(
            x=lin["x"], y=lin["y"], mode="lines+markers", name="linearization point" if pic.ok else "partial linearization",
            line={"color": _POINT_COLOR, "width": 1, "dash": "dot"},
            marker={"symbol": "diamond", "size": 11, "color": OK_COLOR if pic.ok else _POINT_COLOR,
                    "line": {"color": "#000000", "width": 1}},
            showlegend=bool(pic.points), hovertext=lin["hover"], hoverinfo="text",
        )  # fmt: skip
        n = max(1, len(pic.clients))
        style_figure(fig, title=title, xaxis="time (s)", yaxis="client", height=140 + 52 * n)
        fig.update_yaxes(
            tickvals=list(range(len(pic.clients))), ticktext=[str(c) for c in pic.clients],
            range=[len(pic.clients) - 0.45, -0.55], zeroline=False, showgrid=False,
        )  # fmt: skip
        fig.update_xaxes(range=pic.x_range)
    return fig


# -- widgets ------------------------------------------------------------
class _Widget(SettingsWidget):
    """A history widget: a figure, a status line with the verdict, controls that call :meth:`set`."""

    result: CheckResult
    fig: Any = None
    controls: dict[str, Any] = {}  # noqa: RUF012 - replaced per instance when the controls are built

    def _verdict_html(self) -> str:
        r = self.result
        if r.ok:
            return status_html(f"linearizable ({len(r.history)} operations, {r.steps} search steps)")
        failure = r.failure
        text = "NOT linearizable" if r.ok is False else "undecided"
        if failure is not None and failure.blocked is not None:
            text += f": operation #{failure.blocked} cannot be placed ({len(r.history)} operations)"
        return status_html(text, "refused")


class RealTimeWidget(_Widget):
    """Client A writes 1 during [1, 3]; clients B and C each read once. Is it linearizable?

    >>> w = RealTimeWidget()
    >>> w.set(b_start=3.5, b_saw=None)   # B starts after the write returned but saw nothing
    >>> w.result.ok
    False
    """

    SAW = (None, 1)
    SAW_CHOICES = (("None (old)", "old"), ("1 (new)", "new"))

    def _to_control(self, name: str, value: Any) -> Any:
        if name in ("b_saw", "c_saw"):
            return "old" if value is None else "new"
        return value

    def _from_control(self, name: str, value: Any) -> Any:
        if name in ("b_saw", "c_saw"):
            return None if value == "old" else 1
        return value

    def __init__(
        self, *, b_start: float = 0.5, b_saw: Any = None, c_start: float = 2.0, c_saw: Any = 1
    ) -> None:
        self.params = {}
        self.set(b_start=b_start, b_saw=b_saw, c_start=c_start, c_saw=c_saw)

    def history(self) -> list[Operation]:
        p = self.params
        return [
            Operation("A", 1.0, 3.0, ("write", 1), None),
            Operation("B", p["b_start"], p["b_start"] + 1.0, ("read",), p["b_saw"]),
            Operation("C", p["c_start"], p["c_start"] + 1.0, ("read",), p["c_saw"]),
        ]

    def set(self, **changes: Any) -> None:
        """Change b_start / c_start (0 to 5 s) and b_saw / c_saw (None or 1); re-check and redraw."""
        p = self._merged(changes, ("b_start", "b_saw", "c_start", "c_saw"))
        for name in ("b_start", "c_start"):
            valid.number(name, p[name], ge=0, le=5, unit="seconds")
        for name in ("b_saw", "c_saw"):
            valid.one_of(name, p[name], self.SAW)
        self.params = p
        self.result = check(self.history(), RegisterModel())
        self._refresh()

    def _build_ui(self) -> Any:
        import ipywidgets as W

        p = self.params
        self.fig, _plot = self._plot_area()
        wide = {"label_width": "90px"}
        self.controls = {
            "b_start": slider("B starts at", p["b_start"], 0, 5, 0.25, continuous=True, **wide,
                              tip="when client B calls read (it returns 1 s later)"),
            "b_saw": dropdown("B read", self.SAW_CHOICES, self._to_control("b_saw", p["b_saw"]), **wide,
                              tip="what B's read returned"),
            "c_start": slider("C starts at", p["c_start"], 0, 5, 0.25, continuous=True, **wide,
                              tip="when client C calls read (it returns 1 s later)"),
            "c_saw": dropdown("C read", self.SAW_CHOICES, self._to_control("c_saw", p["c_saw"]), **wide,
                              tip="what C's read returned"),
        }  # fmt: skip
        self._wire()
        c = self.controls
        return self._page(W.HBox([c["b_start"], c["b_saw"]]), W.HBox([c["c_start"], c["c_saw"]]))

    def _redraw(self) -> None:
        verdict = "linearizable" if self.result.ok else "NOT linearizable"
        with self.fig.batch_update():
            history_figure(self.result, figure=self.fig, title=f"A writes 1; B and C read: {verdict}")
            self.fig.update_xaxes(range=[-0.2, 6.2])  # fixed, so sliding a read does not move the axis
        self.status.value = self._verdict_html()


def _cap_history(mode: str, seed: int) -> list[Operation]:
    from labkit.linearizability.adapters import from_replication
    from labkit.replication import Mode, Resolution
    from labkit.replication.experiments import run_partition_scenario

    run = run_partition_scenario(Mode(mode), seed=seed, resolution=Resolution.LAST_WRITER_WINS)
    return from_replication(run.history())


def _raft_history(seed: int, *, stale_reads: bool = False) -> list[Operation]:
    from labkit.raft import Bug
    from labkit.raft.schedules import run_schedule

    bugs = (Bug.STALE_READS,) if stale_reads else ()
    return run_schedule(seed, bugs=bugs, strict=False).operations()


# name -> (model, history maker(seed))
STORES: dict[str, tuple[Callable[[], Any], Callable[[int], list[Operation]]]] = {
    "CAP register, consistency-first": (RegisterModel, lambda seed: _cap_history("consistency-first", seed)),
    "CAP register, availability-first": (
        RegisterModel,
        lambda seed: _cap_history("availability-first", seed),
    ),
    "Raft key-value store": (KVModel, _raft_history),
    "Raft, reads served by any node": (KVModel, lambda seed: _raft_history(seed, stale_reads=True)),
}


class StoreCheckWidget(_Widget):
    """Run one of labkit's stores under faults (seeded) and check its history.

    >>> w = StoreCheckWidget(store="Raft key-value store", seed=3)
    >>> w.result.ok
    True
    """

    def __init__(self, *, store: str = "CAP register, availability-first", seed: int = 0) -> None:
        self.params = {}
        self.set(store=store, seed=seed)

    def set(self, **changes: Any) -> None:
        """Change store (a key of :data:`STORES`) and seed (0 to 99); re-run, re-check, redraw."""
        p = self._merged(changes, ("store", "seed"))
        model, make = STORES[valid.one_of("store", p["store"], STORES)]
        seed = valid.integer("seed", p["seed"], ge=0, le=99)
        self.result = check(make(seed), model(), timeout=5.0)
        self.params = p
        self._refresh()

    def _build_ui(self) -> Any:
        import ipywidgets as W

        p = self.params
        self.fig, _plot = self._plot_area()
        self.controls = {
            "store": dropdown("store", list(STORES), p["store"], tip="which store to run under faults", width="420px"),
            "seed": slider("seed", p["seed"], 0, 99, integer=True, tip="the seed of the run: workload, faults and network"),
        }  # fmt: skip
        self._wire()
        return self._page(W.HBox([self.controls["store"], self.controls["seed"]]))

    def _redraw(self) -> None:
        history_figure(
            self.result, figure=self.fig, title=f"{self.params['store']}, seed {self.params['seed']}"
        )
        self.status.value = self._verdict_html()
