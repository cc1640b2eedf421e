"""Plotly figures and ipywidgets for the notebooks.

Only this package imports plotly and ipywidgets, and only inside the
functions that need them, so ``import labkit`` (and ``import labkit.viz``)
stays fast and works without them. One module per topic:

* ``labkit.viz.common``: palette, figure styling, the widget base class and
  its controls (sliders, drop-downs, toggles, buttons);
* ``labkit.viz.spacetime``: space-time (Lamport) diagrams of a simulator trace;
* ``labkit.viz.cluster``: the reusable cluster widget (crash, partition, loss,
  latency, run, reset, replay).
"""

from importlib import import_module
from typing import Any

_LAZY = {"spacetime_diagram": "labkit.viz.spacetime", "ClusterWidget": "labkit.viz.cluster"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'labkit.viz' has no attribute {name!r}")


__all__ = sorted(_LAZY)
