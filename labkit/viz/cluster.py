"""The cluster widget: break a simulated cluster and watch what happens.

Controls: a checkbox per node (up or crashed), a side (A or B) per node for a
network partition, a clock skew and a clock drift slider per node, sliders
for message loss and latency, a slider for when the faults start, **Run**
(simulate one more step) and **Reset** buttons, and a time slider that
replays the recorded run. Every change re-simulates from
the seed and redraws the figure in place, so what you see is a consequence of
the settings, never of chance.

Any protocol can be shown: pass ``build(seed) -> Simulator`` that returns a
fresh simulator with its nodes added, and optionally a ``draw(sim, until,
figure)`` that redraws a ``FigureWidget`` (the default draws a space-time
diagram, with each node's own clock reading in the hover texts and a label
on the lane of every node whose clock is off). The clock sliders are shown
only with a figure that shows clocks: by default only with the default
figure (pass ``clocks=True`` or ``False`` to decide).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labkit.sim import Kind, Simulator, Uniform
from labkit.viz.common import LazyWidget, guarded, status_html
from labkit.viz.spacetime import spacetime_diagram

__all__ = ["ClusterWidget", "ClusterSettings", "SKEW_MS_LIMIT", "DRIFT_PPM_LIMIT"]

SKEW_MS_LIMIT = 500.0  # the skew sliders span -500..+500 ms
DRIFT_PPM_LIMIT = 1000.0  # and the drift sliders -1000..+1000 ppm (quartz: up to ~200)


@dataclass
class ClusterSettings:
    """What the controls say. Crashes and the partition start at ``fault_at``;
    loss, latency and the nodes' clocks (skew in ms, drift in ppm; a node
    not listed keeps the clock its scenario gave it) hold for the whole run."""

    down: set[str] = field(default_factory=set)
    side_b: set[str] = field(default_factory=set)
    skew_ms: dict[str, float] = field(default_factory=dict)
    drift_ppm: dict[str, float] = field(default_factory=dict)
    loss: float = 0.0
    latency_ms: tuple[float, float] = (5.0, 20.0)
    fault_at: float = 1.0
    duration: float = 3.0


Draw = Callable[[Simulator, float, Any], Any]


def _draw_spacetime(sim: Simulator, until: float, figure: Any) -> Any:
    return spacetime_diagram(
        sim, until=until, figure=figure, title=f"What happened up to t = {until:.2f} s", clocks=True
    )


def _clock_slider(W: Any, label: str, value: float, limit: float, step: float, tip: str) -> Any:
    """A +/- ``limit`` slider for one node's clock (skew or drift), applied on release."""
    return W.FloatSlider(
        value=value,
        min=-limit,
        max=limit,
        step=step,
        description=label,
        tooltip=tip,
        readout_format="+.0f",
        continuous_update=False,
        style={"description_width": "88px"},
        layout=W.Layout(width="280px"),
    )


class ClusterWidget(LazyWidget):
    """Interactive fault injection over any simulated protocol.

    >>> w = ClusterWidget(lambda seed: heartbeat_cluster(seed), seed=1)
    >>> w            # displays the controls and the figure in a notebook
    >>> w.crash("n2"); w.run()   # the same as clicking, for scripts and tests
    """

    def __init__(
        self,
        build: Callable[[int], Simulator],
        *,
        seed: int = 0,
        duration: float = 3.0,
        step: float = 1.0,
        fault_at: float = 1.0,
        draw: Draw | None = None,
        summary: Callable[[Simulator], str] | None = None,
        clocks: bool | None = None,
    ) -> None:
        if not callable(build):
            raise TypeError(f"build must be callable as build(seed) -> Simulator, got {build!r}")
        if not duration > 0:
            raise ValueError(f"duration must be > 0 seconds, got {duration!r}")
        if not step > 0:
            raise ValueError(f"step must be > 0 seconds, got {step!r}")
        if not 0 <= fault_at <= duration:
            raise ValueError(f"fault_at must be between 0 and duration={duration}, got {fault_at!r}")
        if clocks is not None and not isinstance(clocks, bool):
            raise TypeError(
                f"clocks must be True, False or None (shown with the default figure), got {clocks!r}"
            )
        # Clock sliders only where the figure can show what they do.
        self.clocks = draw is None if clocks is None else clocks
        self.build = build
        self.seed = seed
        self.step = step
        self.draw = draw or _draw_spacetime
        self.summary = summary or _default_summary
        self._initial = ClusterSettings(fault_at=fault_at, duration=duration)
        self.settings = ClusterSettings(fault_at=fault_at, duration=duration)
        probe = build(seed)
        if not isinstance(probe, Simulator):
            raise TypeError(f"build(seed) must return a Simulator, got {type(probe).__name__}")
        self.node_ids = probe.nodes
        self.sim: Simulator = probe
        self.replay_at: float | None = None
        self._ui: Any = None
        self._simulate()

    # -- the model: plain methods the controls call ------------------------
    def _simulate(self) -> None:
        s = self.settings
        sim = self.build(self.seed)
        lo, hi = s.latency_ms
        sim.set_latency(Uniform(lo / 1000, hi / 1000))
        sim.set_loss(s.loss)
        for nid in self.node_ids:  # clocks are off from the start, not from fault_at
            if nid in s.skew_ms or nid in s.drift_ppm:
                sim.set_clock(nid, offset=s.skew_ms.get(nid, 0.0) / 1000, drift_ppm=s.drift_ppm.get(nid, 0.0))
        sim.run(s.fault_at)
        for nid in sorted(s.down):
            sim.crash(nid)
        if self._partitioned():
            sim.partition([n for n in self.node_ids if n not in s.side_b], sorted(s.side_b))
        sim.run(s.duration)
        self.sim = sim

    def _partitioned(self) -> bool:
        """A partition needs a node on each side; all on A or all on B is none."""
        return 0 < len(self.settings.side_b) < len(self.node_ids)

    def _check_node(self, node_id: str) -> None:
        if node_id not in self.node_ids:
            raise ValueError(f"node_id must be one of {list(self.node_ids)}, got {node_id!r}")

    def crash(self, node_id: str) -> None:
        """Crash ``node_id`` from ``fault_at`` on."""
        self._check_node(node_id)
        self.settings.down.add(node_id)
        self._changed()

    def recover(self, node_id: str) -> None:
        """Keep ``node_id`` up."""
        self._check_node(node_id)
        self.settings.down.discard(node_id)
        self._changed()

    def set_side(self, node_id: str, side: str) -> None:
        """Put a node on side "A" or "B" of the partition (all on A: no partition)."""
        self._check_node(node_id)
        if side not in ("A", "B"):
            raise ValueError(f"side must be 'A' or 'B', got {side!r}")
        (self.settings.side_b.add if side == "B" else self.settings.side_b.discard)(node_id)
        self._changed()

    def set_clock(
        self, node_id: str, *, skew_ms: float | None = None, drift_ppm: float | None = None
    ) -> None:
        """Set a node's physical clock from the start of the run.

        ``skew_ms``: how far it is ahead (positive) or behind true time, within
        ±500 ms; ``drift_ppm``: how fast it runs away, within ±1000 ppm (100 ppm
        gains 0.1 ms per second). Leave one out to keep its setting.
        """
        self._check_node(node_id)
        for name, value, limit in (
            ("skew_ms", skew_ms, SKEW_MS_LIMIT),
            ("drift_ppm", drift_ppm, DRIFT_PPM_LIMIT),
        ):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {value!r}")
            if not (math.isfinite(value) and -limit <= value <= limit):
                raise ValueError(f"{name} must be between {-limit:g} and {limit:g}, got {value!r}")
        s = self.settings
        for table, value in ((s.skew_ms, skew_ms), (s.drift_ppm, drift_ppm)):
            if value is not None:
                table[node_id] = float(value)
        self._changed()

    def set_loss(self, p: float) -> None:
        """Probability in [0, 1] that each message is lost."""
        if not 0 <= p <= 1:
            raise ValueError(f"loss must be between 0 and 1, got {p!r}")
        self.settings.loss = float(p)
        self._changed()

    def set_latency(self, low_ms: float, high_ms: float) -> None:
        """One-way delays drawn uniformly between ``low_ms`` and ``high_ms``."""
        if not 0 <= low_ms <= high_ms:
            raise ValueError(
                f"latency must satisfy 0 <= low <= high (ms), got low={low_ms!r}, high={high_ms!r}"
            )
        self.settings.latency_ms = (float(low_ms), float(high_ms))
        self._changed()

    def set_fault_at(self, t: float) -> None:
        """When crashes and the partition begin (seconds)."""
        if not 0 <= t <= self.settings.duration:
            raise ValueError(f"fault time must be between 0 and {self.settings.duration} s, got {t!r}")
        self.settings.fault_at = float(t)
        self._changed()

    def run(self) -> None:
        """Simulate ``step`` more seconds (from the seed, with every setting)."""
        self.settings.duration += self.step
        self._changed()

    def reset(self) -> None:
        """Back to the initial settings."""
        init = self._initial
        self.settings = ClusterSettings(fault_at=init.fault_at, duration=init.duration)
        self._changed()

    def replay(self, t: float | None) -> None:
        """Show the run only up to time ``t`` (None: all of it)."""
        if t is not None and not 0 <= t <= self.settings.duration:
            raise ValueError(f"replay time must be between 0 and {self.settings.duration} s, got {t!r}")
        self.replay_at = t
        self._redraw()

    def _changed(self) -> None:
        self._simulate()
        self.replay_at = None
        if self._ui is not None:
            # Every control, so a change made from Python (w.crash(...)) shows too.
            self._sync_controls()
            self._redraw()

    # -- the view ------------------------------------------------------------
    def figure(self) -> Any:
        """Draw the current run into a new figure (no widgets needed)."""
        return self.draw(self.sim, self.replay_at if self.replay_at is not None else self.sim.now, None)

    def _build_ui(self) -> Any:
        import ipywidgets as W
        import plotly.graph_objects as go

        s = self.settings
        self.status = W.HTML()
        g = guarded(self.status)
        self.fig = go.FigureWidget()
        self.up_boxes = {}
        self.side_pickers = {}
        self.skew_sliders: dict[str, Any] = {}  # empty without clock controls
        self.drift_sliders: dict[str, Any] = {}
        rows = []
        for nid in self.node_ids:
            box = W.Checkbox(
                value=nid not in s.down,
                description=f"{nid} up",
                indent=False,
                tooltip=f"untick to crash {nid} at the fault time",
                layout=W.Layout(width="90px"),
            )
            side = W.ToggleButtons(
                options=["A", "B"],
                value="B" if nid in s.side_b else "A",
                tooltips=[f"{nid} on side A", f"{nid} on side B"],
                style={"button_width": "34px"},
            )
            box.observe(
                g(self._user(lambda ch, nid=nid: self.recover(nid) if ch["new"] else self.crash(nid))),
                "value",
            )
            side.observe(g(self._user(lambda ch, nid=nid: self.set_side(nid, ch["new"]))), "value")
            self.up_boxes[nid], self.side_pickers[nid] = box, side
            row = [box, W.Label("side"), side]
            if self.clocks:
                skew = _clock_slider(
                    W,
                    f"{nid} skew ms",
                    s.skew_ms.get(nid, 0.0),
                    SKEW_MS_LIMIT,
                    10,
                    f"how far {nid}'s clock is ahead of true time (ms); hover an arrow to see it",
                )
                drift = _clock_slider(
                    W,
                    f"{nid} drift ppm",
                    s.drift_ppm.get(nid, 0.0),
                    DRIFT_PPM_LIMIT,
                    50,
                    f"how fast {nid}'s clock runs away from true time (parts per million)",
                )
                skew.observe(
                    g(self._user(lambda ch, nid=nid: self.set_clock(nid, skew_ms=ch["new"]))), "value"
                )
                drift.observe(
                    g(self._user(lambda ch, nid=nid: self.set_clock(nid, drift_ppm=ch["new"]))), "value"
                )
                self.skew_sliders[nid], self.drift_sliders[nid] = skew, drift
                row += [skew, drift]
            rows.append(W.HBox(row))
        self.loss_slider = W.FloatSlider(
            value=s.loss,
            min=0,
            max=1,
            step=0.05,
            description="loss",
            tooltip="probability that a message is lost",
            readout_format=".0%",
            continuous_update=False,
        )
        self.loss_slider.observe(g(self._user(lambda ch: self.set_loss(ch["new"]))), "value")
        self.latency_slider = W.FloatRangeSlider(
            value=s.latency_ms,
            min=0,
            max=500,
            step=5,
            description="latency ms",
            continuous_update=False,
            tooltip="one-way delay, drawn uniformly in this range",
        )
        self.latency_slider.observe(g(self._user(lambda ch: self.set_latency(*ch["new"]))), "value")
        self.fault_slider = W.FloatSlider(
            value=s.fault_at,
            min=0,
            max=s.duration,
            step=0.1,
            description="faults at",
            continuous_update=False,
            tooltip="when the crashes and the partition begin (s)",
        )
        self.fault_slider.observe(g(self._user(lambda ch: self.set_fault_at(ch["new"]))), "value")
        self.run_button = W.Button(
            description=f"Run +{self.step:g} s",
            button_style="primary",
            tooltip="simulate further",
            icon="play",
        )
        self.run_button.on_click(g(lambda _b: self.run()))
        self.reset_button = W.Button(description="Reset", tooltip="back to the initial settings", icon="undo")
        self.reset_button.on_click(g(lambda _b: self.reset()))
        self.time_slider = W.FloatSlider(
            value=s.duration,
            min=0,
            max=s.duration,
            step=0.05,
            description="replay to",
            continuous_update=True,
            tooltip="show the run up to this time",
            layout=W.Layout(width="60%"),
        )
        self.time_slider.observe(g(self._user(lambda ch: self._on_time(ch["new"]))), "value")
        self._sync_controls()
        self._redraw()
        controls = W.VBox(
            [
                W.HTML(
                    "<b>Nodes</b> (crashes and the partition start at the fault time"
                    + ("; clocks are off from the start)" if self.clocks else ")")
                ),
                *rows,
                W.HBox([self.loss_slider, self.latency_slider]),
                W.HBox([self.fault_slider, self.run_button, self.reset_button]),
                self.time_slider,
                self.status,
            ]
        )
        return W.VBox([controls, self.fig])

    def _on_time(self, t: float) -> None:
        self.replay(None if t >= self.settings.duration else t)

    def _sync_controls(self) -> None:
        """Make controls show the settings without firing their callbacks."""
        s = self.settings
        self._syncing = True
        try:
            for nid in self.node_ids:
                self._quiet(self.up_boxes[nid], nid not in s.down)
                self._quiet(self.side_pickers[nid], "B" if nid in s.side_b else "A")
                if nid in self.skew_sliders:
                    self._quiet(self.skew_sliders[nid], s.skew_ms.get(nid, 0.0))
                    self._quiet(self.drift_sliders[nid], s.drift_ppm.get(nid, 0.0))
            self._quiet(self.loss_slider, s.loss)
            self._quiet(self.latency_slider, s.latency_ms)
            self.fault_slider.max = s.duration
            self._quiet(self.fault_slider, s.fault_at)
            self.time_slider.max = s.duration
            self._quiet(self.time_slider, s.duration)
        finally:
            self._syncing = False

    def _quiet(self, widget: Any, value: Any) -> None:
        # Callbacks made by _user() ignore changes while _syncing is set, so
        # showing the settings does not re-trigger a simulation.
        widget.value = value

    def _user(self, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def handler(change: Any) -> Any:
            if getattr(self, "_syncing", False):
                return None
            return fn(change)

        return handler

    def _redraw(self) -> None:
        if self._ui is None and not hasattr(self, "fig"):
            return
        until = self.replay_at if self.replay_at is not None else self.sim.now
        self.draw(self.sim, until, self.fig)
        text = self.summary(self.sim) + self._settings_text()
        if self.settings.side_b and not self._partitioned():
            # Refused, not ignored in silence: one side would be empty.
            self.status.value = status_html(
                "No partition: every node is on side B, so nobody is cut off; "
                "put at least one node on side A.  |  " + text,
                "refused",
            )
        else:
            self.status.value = status_html(text)

    def _settings_text(self) -> str:
        s = self.settings
        parts = [f"loss {s.loss:.0%}", f"latency {s.latency_ms[0]:g}–{s.latency_ms[1]:g} ms"]
        if s.down:
            parts.append("down from t={:g}s: {}".format(s.fault_at, ", ".join(sorted(s.down))))
        if self._partitioned():
            parts.append("partition from t={:g}s: B = {}".format(s.fault_at, ", ".join(sorted(s.side_b))))
        clocks = []
        for nid in self.node_ids:
            skew, drift = s.skew_ms.get(nid, 0.0), s.drift_ppm.get(nid, 0.0)
            if skew or drift:
                clocks.append(f"{nid} {skew:+g} ms" + (f" {drift:+g} ppm" if drift else ""))
        if clocks:
            parts.append("clocks: " + ", ".join(clocks))
        return "  |  " + "; ".join(parts)

    # -- a ready-made demo ------------------------------------------------------
    @classmethod
    def demo(cls, seed: int = 0, n: int = 4) -> ClusterWidget:
        """Heartbeating nodes: crash one and watch the others suspect it."""
        from labkit.examples import heartbeat_cluster

        return cls(lambda s: heartbeat_cluster(s, n=n), seed=seed)


def _default_summary(sim: Simulator) -> str:
    rows = sim.trace.rows
    sent = sum(1 for r in rows if r[1] is Kind.SEND)
    delivered = sum(1 for r in rows if r[1] is Kind.DELIVER)
    dropped = sum(1 for r in rows if r[1] is Kind.DROP)
    return f"t = {sim.now:.2f} s: {sent} sent, {delivered} delivered, {dropped} dropped"
