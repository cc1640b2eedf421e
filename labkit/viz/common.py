"""Shared pieces of every figure and widget: colours, styling, safe callbacks.

Widgets follow one rule (DESIGN.md, "Errors and faults"): an impossible
setting is refused with a visible message in the widget, never a traceback.
:func:`guarded` wraps a callback so that a ``ValueError`` or ``TypeError``
raised by labkit's input validation is shown in the widget's status line.
Anything else is a bug: it is shown too (marked ``labkit-widget-error`` so
browser tests can find it) and then re-raised so it is never hidden.
"""

from __future__ import annotations

import functools
import html
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any

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


def style_figure(fig: Any, *, title: str, xaxis: str, yaxis: str, height: int = 420) -> Any:
    """Apply the course's look: title, axis labels, legend, white template."""
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
    )
    fig.update_xaxes(title_text=xaxis)
    fig.update_yaxes(title_text=yaxis)
    return fig


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


class LazyWidget(ABC):
    """Base of the course's widgets: plain Python methods do what the controls
    do, and the controls themselves are built on first display (or first use
    of :attr:`ui`), so a widget can be driven and tested without a browser."""

    _ui: Any = None

    @abstractmethod
    def _build_ui(self) -> Any:
        """Build and return the ipywidgets container (controls and figure)."""

    @property
    def ui(self) -> Any:
        """The ipywidgets container, built once."""
        if self._ui is None:
            self._ui = self._build_ui()
        return self._ui

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.ui)
