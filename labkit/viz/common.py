"""Shared pieces of every figure and widget: colours, styling, safe callbacks, the widget base, controls.

Widgets follow one rule (DESIGN.md, "Errors and faults"): an impossible
setting is refused with a visible message in the widget, never a traceback.
:func:`guarded` wraps a callback so that a ``ValueError`` or ``TypeError``
raised by labkit's input validation is shown in the widget's status line.
Anything else is a bug: it is shown too (marked ``labkit-widget-error`` so
browser tests can find it) and then re-raised so it is never hidden.
"""

from __future__ import annotations

import collections.abc as cabc
import functools
import html
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid

# Colour-blind-safe qualitative palette (Okabe-Ito, then extras).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999999",
    "#882255",
    "#44AA99",
    "#117733",
)
OK_COLOR = "#009E73"
BAD_COLOR = "#D55E00"
MUTED_COLOR = "#999999"


MAX_RUN = (
    600.0  # seconds of simulated time a widget or a picture may ask for: longer would not answer a click
)


def check_figure(figure: Any) -> Any:
    """``figure`` is None (draw a new figure) or a plotly figure to draw into."""
    if figure is None:
        return None
    from plotly.basedatatypes import BaseFigure

    return valid.instance("figure", figure, BaseFigure)


def check_title(title: Any, *, none: bool = True) -> Any:
    """A figure's title: a str (or None where a default is made up)."""
    return valid.instance("title", title, str, none=none)


def check_names(name: str, names: Any, *, none: bool = False) -> Any:
    """A sequence of str (node ids, keys): not a single str, not a mapping."""
    if names is None and none:
        return None
    if isinstance(names, (str, bytes, cabc.Mapping)) or not isinstance(names, cabc.Iterable):
        raise valid.ArgumentTypeError(f"{name} must be a sequence of str, got {valid.shown(names)}")
    names = list(names)
    for i, n in enumerate(names):
        valid.string(f"{name}[{i}]", n, empty=True)
    return names


def node_colors(node_ids: Iterable[str]) -> dict[str, str]:
    """A stable colour per node id, in the order given."""
    return {nid: PALETTE[i % len(PALETTE)] for i, nid in enumerate(node_ids)}


def gaps(values: Iterable[Any]) -> list[Any]:
    """``values`` with every missing number (NaN) as ``None``.

    Plotly draws a gap for both, but a figure *widget* sends its data to the
    browser as JSON, which has no NaN: the kernel then warns ("Out of range
    float values are not JSON compliant") under the cell. Pass trace data
    that may lack values (a p99 with no calls in the bucket) through here.
    """
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


def new_figure(figure: Any = None, **layout: Any) -> Any:
    """``figure`` if given (a widget's figure to redraw in place), else a new ``go.Figure`` with ``layout``."""
    import plotly.graph_objects as go

    return figure if figure is not None else go.Figure(layout=layout)


def style_figure(fig: Any, *, title: str, xaxis: str, yaxis: str, height: int = 420, **layout: Any) -> Any:
    """Apply the course's look: title, axis labels, white template, and the legend in a column on the
    right, outside the plot, where it covers neither the title, nor an axis title, nor the data.
    ``layout``: more layout settings for the same figure."""
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top"},
        **layout,
    )
    fig.update_xaxes(title_text=xaxis)
    fig.update_yaxes(title_text=yaxis)
    return fig


def legend_below(fig: Any) -> Any:
    """Put the legend in rows at the very bottom of the figure, under the x axis title (a figure whose
    plot needs the whole width)."""
    legend = {"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0, "xanchor": "left"}
    return fig.update_layout(legend=legend, margin={"b": 120})


def point_columns(*columns: str) -> dict[str, list]:
    """Empty columns (``x``, ``y``, ``text``, ``hover``, ...) for the points of one trace."""
    return {column: [] for column in columns}


def add_point(columns: dict[str, list], **values: Any) -> None:
    """Append one point (``x=..., y=..., hover=...``) to ``columns``."""
    for column, value in values.items():
        columns[column].append(value)


def marks(points: dict[str, list], *, name: str, marker: dict[str, Any], textposition: str | None = None,
          **extra: Any) -> Any:  # fmt: skip
    """A ``go.Scatter`` of markers from ``points`` (lists ``x``, ``y``, ``hover``, and ``text`` when
    ``textposition`` says where the labels go), hover texts shown as they are."""
    import plotly.graph_objects as go

    labels = {"text": points["text"], "textposition": textposition} if textposition else {}
    return go.Scatter(x=points["x"], y=points["y"], mode="markers+text" if textposition else "markers",
                      marker=marker, name=name, hovertext=points["hover"], hoverinfo="text", **labels, **extra)  # fmt: skip


@dataclass
class Arrows:
    """Arrows of one kind (messages, operations): line segments (``x``, ``y``, None between arrows)
    and a marker at each head (``mx``, ``my``) with its hover ``text``."""

    x: list[float | None] = field(default_factory=list)
    y: list[Any] = field(default_factory=list)
    mx: list[float] = field(default_factory=list)
    my: list[Any] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def add(self, x0: float, y0: Any, x1: float, y1: Any, text: str) -> None:
        """An arrow from (x0, y0) to its head at (x1, y1), hovered as ``text``."""
        self.x += [x0, x1, None]
        self.y += [y0, y1, None]
        self.mx.append(x1)
        self.my.append(y1)
        self.text.append(text)

    def traces(self, name: str, line: dict[str, Any], marker: dict[str, Any]) -> list[Any]:
        """The lines and the heads (with the hover texts), one legend entry ``name (count)`` for both."""
        import plotly.graph_objects as go

        label = f"{name} ({len(self.mx)})"
        lines = go.Scatter(
            x=self.x, y=self.y, mode="lines", line=line, name=label, legendgroup=name, hoverinfo="skip"
        )
        heads = go.Scatter(x=self.mx, y=self.my, mode="markers", marker=marker, name=label, legendgroup=name,
                           showlegend=False, hovertext=self.text, hoverinfo="text")  # fmt: skip
        return [lines, heads]


def replace_traces(fig: Any, traces: list[Any], *fields: str) -> bool:
    """Put ``traces`` into ``fig``: anew if their number differs (returns True), else copy only ``fields``
    of each into the trace in its place (a widget's redraw; the traces are always the same ones)."""
    if len(fig.data) != len(traces):
        fig.data = []
        fig.add_traces(traces)
        return True
    for old, new in zip(fig.data, traces, strict=True):
        old.update({f: new[f] for f in fields})
    return False


def band(x0: float, x1: float, color: str, opacity: float = 0.08, **where: Any) -> dict[str, Any]:
    """A shaded stretch of the x axis (a partition, a fault), the whole height of the plot."""
    return {"type": "rect", "xref": "x", "yref": "paper", "x0": x0, "x1": x1, "y0": 0, "y1": 1,
            "fillcolor": color, "opacity": opacity, "line": {"width": 0}, "layer": "below", **where}  # fmt: skip


def vline(x: float, color: str, dash: str = "dot", width: float = 1) -> dict[str, Any]:
    """A vertical line the whole height of the plot (a moment: a fault, the replay cursor)."""
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": color, "dash": dash, "width": width}}  # fmt: skip


def down_intervals(events: Iterable[Any], until: float) -> list[tuple[str, float, float]]:
    """(node, crashed at, restarted at or ``until``) for every crash among trace ``events``."""
    from labkit.sim import Kind

    down: dict[str, float] = {}
    out = []
    for e in events:
        if e.kind is Kind.CRASH:
            down.setdefault(e.node, e.time)
        elif e.kind is Kind.RESTART and e.node in down:
            out.append((e.node, down.pop(e.node), e.time))
    return out + [(node, t, until) for node, t in down.items()]


def stack_labels(
    notes: list[dict[str, Any]], window: tuple[float, float], width: float
) -> list[dict[str, Any]]:
    """The labels (annotations at data ``x``, drawn above the plot) inside ``window``, each raised
    (``yshift``) onto the lowest row where the label before it is at least ``width`` away (a fraction
    of the window: about how wide a label is), so that labels of close moments do not print over each
    other. Rows are 14 pixels apart, at most eight; raise the top margin by the highest ``yshift``."""
    start, end = window
    close = width * (end - start)
    out = []
    last_x: list[float] = []  # per row, the x of its rightmost label so far
    for note in sorted(notes, key=lambda n: n["x"]):
        if not start <= note["x"] <= end:
            continue
        row = 0
        while row < len(last_x) and note["x"] - last_x[row] < close:
            row += 1
        if row == len(last_x):
            last_x.append(note["x"])
        else:
            last_x[row] = note["x"]
        note["yshift"] = 14 * min(row, 7)
        out.append(note)
    return out


def status_html(text: str, kind: str = "info") -> str:
    """Markup for a widget's status line; kind is info, refused or error."""
    colors = {"info": "#333333", "refused": BAD_COLOR, "error": "#B00020"}
    if kind not in colors:
        raise ValueError(f"kind must be one of {sorted(colors)}, got {kind!r}")
    return f'<span class="labkit-widget-{kind}" style="color:{colors[kind]}">{html.escape(text)}</span>'


def guarded(status: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a widget callback so bad input shows in ``status`` (an HTML widget)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (ValueError, TypeError) as exc:
                status.value = status_html(f"Not allowed: {exc}", "refused")
            except Exception as exc:
                status.value = status_html(f"Internal error: {type(exc).__name__}: {exc}", "error")
                raise
            return None

        return inner

    return wrap


class Widget(ABC):
    """Base of the course's widgets.

    Plain Python methods do what the controls do, so a widget can be driven
    and tested without a browser; the controls and the figure are built on
    first display (or first use of :attr:`ui`). Every widget has a status
    line, :attr:`status`, where a refused setting is explained
    (:func:`guarded`). After every change :meth:`_refresh` makes the controls
    show the settings in force (:meth:`_sync_controls`), also after a change
    made from Python, redraws (:meth:`_redraw`) and sends the figures.
    """

    _ui: Any = None
    _syncing = False  # True while the controls are being set to the settings in force
    status: Any = None  # the status line (an ipywidgets.HTML), made with the controls
    fig: Any = None  # the figure (a go.Figure) the widget redraws in place
    _plots: tuple[tuple[Any, Any], ...] = ()  # (figure, the ipywidgets.Output showing it)

    @abstractmethod
    def _build_ui(self) -> Any:
        """Build and return the ipywidgets container (controls and figure)."""

    @property
    def ui(self) -> Any:
        """The ipywidgets container, built once (with an empty status line for :meth:`_build_ui` to place)
        and drawn for the settings in force."""
        if self._ui is None:
            import ipywidgets as W

            self.status = W.HTML()
            self._ui = self._build_ui()
            self._refresh()
        return self._ui

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.ui)

    def _plot_area(self, figure: Any = None) -> tuple[Any, Any]:
        """A figure (``figure``, or an empty one) and the output area that shows it.

        The figure is a plain ``go.Figure`` shown as a notebook output, which
        JupyterLab draws at the full width of the notebook (a ``FigureWidget``
        keeps plotly's 700-pixel default inside a widget box). :meth:`_redraw`
        redraws the figure in place and :meth:`_refresh` sends it.
        """
        import ipywidgets as W

        pair = (new_figure(figure), W.Output())
        self._plots = (*self._plots, pair)
        return pair

    def _page(self, *rows: Any, below: Iterable[Any] = ()) -> Any:
        """The widget's box: ``rows`` of controls, the status line, the figures, then ``below``."""
        import ipywidgets as W

        return W.VBox([*rows, self.status, *(output for _figure, output in self._plots), *below])

    def _show_figure(self) -> None:
        """Send the widget's figures, as they are now, to the browser."""
        for figure, output in self._plots:
            output.outputs = (_display_data(figure),)

    def _redraw(self) -> None:  # noqa: B027 - widgets draw their figures and status line here
        """Draw the figures and the status line for the current settings."""

    def _refresh(self, *, controls: bool = True) -> None:
        """After a change (also one made from Python): the controls show the settings (unless not
        ``controls``), the figures the run."""
        if self._ui is not None:
            if controls:
                self._show_settings()
            self._redraw()
            self._show_figure()

    def _sync_controls(self) -> None:  # noqa: B027 - a hook; widgets without settings have nothing to show
        """Set every control to the setting in force (override; :meth:`_show_settings` calls it)."""

    def _show_settings(self) -> None:
        """Make the controls show the settings in force without firing their callbacks."""
        self._syncing = True
        try:
            self._sync_controls()
        finally:
            self._syncing = False

    def _on_change(self, control: Any, fn: Callable[[Any], Any]) -> Any:
        """Call ``fn(new value)`` when the learner changes ``control``; returns ``control``.

        A refused value (``ValueError``/``TypeError``) is explained in the
        status line and the controls spring back to the settings in force;
        changes made by :meth:`_show_settings` are ignored.
        """

        def handler(change: Any) -> Any:
            if self._syncing:
                return None
            try:
                return fn(change["new"])
            except (ValueError, TypeError):
                self._show_settings()
                raise

        control.observe(guarded(self.status)(handler), "value")
        return control

    def _on_click(self, button: Any, fn: Callable[[], Any]) -> Any:
        """Call ``fn()`` when ``button`` is pressed (a refusal is explained in the status line); returns
        ``button``."""
        button.on_click(guarded(self.status)(lambda _button: fn()))
        return button


class SettingsWidget(Widget):
    """A widget whose state is a dict of named settings, one control per setting.

    :meth:`set` changes some settings, re-runs and redraws; a setting that is
    refused leaves every setting as it was. Controls in :attr:`controls` are
    keyed by the setting they show; :meth:`_to_control` and
    :meth:`_from_control` translate where a control cannot hold the value
    itself (a drop-down cannot offer ``None``).
    """

    params: dict[str, Any]
    controls: dict[str, Any]

    @abstractmethod
    def set(self, **changes: Any) -> None:
        """Change settings; re-run and redraw."""

    def _merged(self, changes: dict[str, Any], allowed: Iterable[str]) -> dict[str, Any]:
        """The settings with ``changes`` applied, refusing names not in ``allowed``."""
        allowed = set(allowed)
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown settings {sorted(unknown)}; allowed: {sorted(allowed)}")
        return {**getattr(self, "params", {}), **changes}

    def _to_control(self, name: str, value: Any) -> Any:
        return value

    def _from_control(self, name: str, value: Any) -> Any:
        return value

    def _sync_controls(self) -> None:
        for name, control in getattr(self, "controls", {}).items():
            value = self._to_control(name, self.params[name])
            if control.value != value:
                control.value = value

    def _wire(self) -> None:
        """Connect every control in :attr:`controls` to :meth:`set`."""
        for name, control in self.controls.items():
            self._on_change(
                control, lambda value, name=name: self.set(**{name: self._from_control(name, value)})
            )


# -- controls ---------------------------------------------------------------------------
# Short constructors for the ipywidgets every widget uses; ``label_width`` is the
# width of the description, so controls in one column line up.


def _style(label_width: str | None) -> dict[str, str]:
    return {"description_width": label_width} if label_width else {}


def _layout(width: str | None) -> Any:
    import ipywidgets as W

    return W.Layout(width=width) if width else W.Layout()


def slider(
    description: str,
    value: float,
    lo: float,
    hi: float,
    step: float = 1,
    *,
    tip: str = "",
    integer: bool = False,
    fmt: str | None = None,
    continuous: bool = False,
    label_width: str | None = None,
    width: str | None = None,
) -> Any:
    """An ``IntSlider`` (``integer=True``) or ``FloatSlider`` from ``lo`` to ``hi``; applied on release
    unless ``continuous``."""
    import ipywidgets as W

    kind = W.IntSlider if integer else W.FloatSlider
    extra = {"readout_format": fmt} if fmt else {}
    return kind(value=value, min=lo, max=hi, step=step, description=description, tooltip=tip,
                continuous_update=continuous, style=_style(label_width), layout=_layout(width), **extra)  # fmt: skip


def range_slider(
    description: str, value: tuple[float, float], lo: float, hi: float, step: float, *, tip: str = ""
) -> Any:
    """A ``FloatRangeSlider`` whose readout shows both ends in full."""
    import ipywidgets as W

    return W.FloatRangeSlider(value=value, min=lo, max=hi, step=step, description=description, tooltip=tip,
                              continuous_update=False, readout_format=".0f", layout=W.Layout(width="380px"))  # fmt: skip


def dropdown(
    description: str,
    options: Any,
    value: Any = None,
    *,
    tip: str = "",
    label_width: str | None = None,
    width: str | None = None,
) -> Any:
    """A ``Dropdown``; ``options`` as ipywidgets takes them (values, or (label, value) pairs)."""
    import ipywidgets as W

    extra = {} if value is None else {"value": value}
    return W.Dropdown(options=options, description=description, tooltip=tip, style=_style(label_width),
                      layout=_layout(width), **extra)  # fmt: skip


def toggles(
    options: Any,
    value: Any,
    *,
    description: str = "",
    tips: Iterable[str] = (),
    button_width: str | None = None,
    label_width: str | None = None,
) -> Any:
    """``ToggleButtons``: one of a few choices, all visible."""
    import ipywidgets as W

    style = _style(label_width) | ({"button_width": button_width} if button_width else {})
    return W.ToggleButtons(
        options=options, value=value, description=description, tooltips=list(tips), style=style
    )


def checkbox(description: str, value: bool, *, tip: str = "", width: str | None = None) -> Any:
    """A ``Checkbox`` with its label on the right (no indent)."""
    import ipywidgets as W

    return W.Checkbox(value=value, description=description, indent=False, tooltip=tip, layout=_layout(width))


def button(description: str, *, tip: str = "", icon: str = "", primary: bool = False) -> Any:
    """A ``Button``."""
    import ipywidgets as W

    return W.Button(
        description=description, tooltip=tip, icon=icon, button_style="primary" if primary else ""
    )


def _display_data(figure: Any) -> dict[str, Any]:
    """``figure`` as one notebook output, drawn by JupyterLab's plotly renderer."""
    import json

    data = {
        "application/vnd.plotly.v1+json": json.loads(figure.to_json()),
        "text/plain": repr(figure.layout.title.text),
    }
    return {"output_type": "display_data", "data": data, "metadata": {}}
