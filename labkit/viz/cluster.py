"""The cluster widget: break a simulated cluster and watch what happens.

A row of controls per node (up or crashed, side A or B of a partition, its clock's skew and drift),
message loss and latency, when the faults start, **Run**, **Reset**, and a time slider that replays the
run. Every change re-simulates from the seed and redraws the figure in place, so what you see is a
consequence of the settings, never of chance.

Any protocol can be shown: ``build(seed)`` returns a fresh simulator with its nodes added, and
``draw(sim, until, figure)`` redraws a figure (by default a space-time diagram with each node's own
clock reading in the hover texts and a label on the lane of every node whose clock is off; the clock
sliders are shown only with a figure that shows clocks, unless ``clocks`` says otherwise).

``build`` may instead return a cluster whose membership can change (a :class:`labkit.raft.RaftCluster`).
The widget then also offers **Add server** and **Remove**: at the fault time an operator asks the leader
to add a new server (a learner until it has caught up, then a voter) or to take one out (Ongaro's
dissertation, §4.2.1 and §4.2.2; a leader being removed may first hand its leadership over, §3.10).
``draw`` and ``summary`` are then given the cluster, not its simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.sim import Kind, Simulator, Uniform
from labkit.viz.common import (
    MAX_RUN,
    Widget,
    button,
    checkbox,
    dropdown,
    range_slider,
    slider,
    status_html,
    toggles,
)
from labkit.viz.spacetime import spacetime_diagram

__all__ = ["ClusterWidget", "ClusterSettings", "SKEW_MS_LIMIT", "DRIFT_PPM_LIMIT", "MAX_WIDGET_SERVERS"]

SKEW_MS_LIMIT = 500.0  # the skew sliders span -500..+500 ms
DRIFT_PPM_LIMIT = 1000.0  # and the drift sliders -1000..+1000 ppm (quartz: up to ~200)
MAX_WIDGET_SERVERS = 9  # servers, added ones included, the widget shows a row of controls for


@dataclass
class ClusterSettings:
    """What the controls say. Crashes and the partition start at ``fault_at``;
    loss, latency and the nodes' clocks (skew in ms, drift in ppm; a node
    not listed keeps the clock its scenario gave it) hold for the whole run.
    With a cluster whose membership can change, ``added`` new servers join and
    the servers in ``removed`` leave at ``fault_at`` too; a leader being
    removed first hands its leadership over if ``hand_over``."""

    down: set[str] = field(default_factory=set)
    side_b: set[str] = field(default_factory=set)
    skew_ms: dict[str, float] = field(default_factory=dict)
    drift_ppm: dict[str, float] = field(default_factory=dict)
    loss: float = 0.0
    latency_ms: tuple[float, float] = (5.0, 20.0)
    fault_at: float = 1.0
    duration: float = 3.0
    added: int = 0
    removed: set[str] = field(default_factory=set)
    hand_over: bool = False

    def __post_init__(self) -> None:
        for name in ("down", "side_b", "removed"):
            valid.instance(name, getattr(self, name), (set, frozenset))
        for name in ("skew_ms", "drift_ppm"):
            valid.instance(name, getattr(self, name), dict)
        valid.probability("loss", self.loss)
        lat = valid.instance("latency_ms", self.latency_ms, tuple)
        valid.require(len(lat) == 2, "latency_ms", "a (low, high) pair of milliseconds", lat)
        valid.number("latency_ms low", lat[0], ge=0, unit="ms")
        valid.number("latency_ms high", lat[1], ge=lat[0], unit="ms", note="not below low")
        valid.number("duration", self.duration, gt=0, le=MAX_RUN, unit="seconds")
        valid.number("fault_at", self.fault_at, ge=0, unit="seconds")
        valid.integer("added", self.added, ge=0, le=MAX_WIDGET_SERVERS)
        valid.boolean("hand_over", self.hand_over)


Draw = Callable[[Any, float, Any], Any]  # (what build returned, until, figure) -> figure


def _parts(made: Any) -> tuple[Simulator, Any]:
    """(the simulator, the cluster or None) of what ``build(seed)`` returned."""
    if isinstance(made, Simulator):
        return made, None
    sim = getattr(made, "sim", None)
    if isinstance(sim, Simulator) and all(
        callable(getattr(made, m, None)) for m in ("add_server", "remove_server")
    ):
        return sim, made
    raise TypeError(
        "build(seed) must return a Simulator, or a cluster with .sim, add_server and remove_server "
        f"(a RaftCluster), got {type(made).__name__}"
    )


def _draw_spacetime(sim: Simulator, until: float, figure: Any) -> Any:
    title = f"What happened up to t = {until:.2f} s"
    return spacetime_diagram(sim, until=until, figure=figure, title=title, clocks=True)


class ClusterWidget(Widget):
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
        valid.function("build", build, "callable as build(seed) -> Simulator")
        valid.integer("seed", seed)
        valid.number("duration", duration, gt=0, le=MAX_RUN, unit="seconds")
        valid.number("step", step, gt=0, unit="seconds")
        valid.number("fault_at", fault_at, ge=0, le=duration, unit="seconds", note="within the run")
        for name, fn in (("draw", draw), ("summary", summary)):
            valid.function(name, fn, none=True)
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
        self.sim, self.cluster = _parts(build(seed))
        self.first_ids: tuple[str, ...] = tuple(
            self.cluster.ids if self.cluster is not None else self.sim.nodes
        )
        self.node_ids = self.first_ids
        self.replay_at: float | None = None
        self._simulate()

    # -- the model: plain methods the controls call ------------------------
    def _simulate(self) -> None:
        s = self.settings
        sim, cluster = _parts(self.build(self.seed))
        lo, hi = s.latency_ms
        sim.set_latency(Uniform(lo / 1000, hi / 1000))
        sim.set_loss(s.loss)
        for nid in self.node_ids:  # clocks are off from the start, not from fault_at
            if nid in s.skew_ms or nid in s.drift_ppm:
                sim.set_clock(nid, offset=s.skew_ms.get(nid, 0.0) / 1000, drift_ppm=s.drift_ppm.get(nid, 0.0))
        sim.run(s.fault_at)
        if cluster is not None:  # new servers first, so that they can be crashed and partitioned too
            for _ in range(s.added):
                cluster.add_server(wait=False)
            self.node_ids = tuple(cluster.ids)
        for nid in sorted(s.down):
            sim.crash(nid)
        if self._partitioned():
            sim.partition([n for n in self.node_ids if n not in s.side_b], sorted(s.side_b))
        for nid in sorted(s.removed):  # the operator retries until the leader can make each change
            cluster.remove_server(nid, wait=False, hand_over=s.hand_over)
        sim.run(s.duration)
        self.sim, self.cluster = sim, cluster

    @property
    def shown_ids(self) -> tuple[str, ...]:
        """The nodes with controls: every node but the removed servers."""
        return tuple(n for n in self.node_ids if n not in self.settings.removed)

    def _partitioned(self) -> bool:
        """A partition needs a node on each side; all on A or all on B is none."""
        return 0 < len(self.settings.side_b) < len(self.node_ids)

    def _check_node(self, node_id: str) -> None:
        if node_id in self.settings.removed:
            raise ValueError(f"{node_id} was removed from the cluster; Reset brings it back")
        valid.one_of("node_id", node_id, self.shown_ids)

    def _check_membership(self) -> Any:
        if self.cluster is None:
            raise ValueError("this widget's nodes are fixed: build(seed) returned a Simulator, not a cluster "
                             "whose membership can change (a RaftCluster)")  # fmt: skip
        return self.cluster

    def add_server(self) -> str:
        """At the fault time, start a new server and have the leader add it: a learner that
        receives the log until it has caught up, then a voter (diss. §4.2.1). Returns its id."""
        self._check_membership()
        valid.require(len(self.node_ids) < MAX_WIDGET_SERVERS, "add_server", f"at most {MAX_WIDGET_SERVERS} "
                      "servers in the widget", len(self.node_ids) + 1)  # fmt: skip
        self.settings.added += 1
        self._changed()
        return self.node_ids[-1]

    def remove_server(self, node_id: str) -> None:
        """At the fault time, have the leader take ``node_id`` out of the configuration; it is shut
        down once that is committed (diss. §4.2.2). One of the first servers, not an added one, and
        not the last of them."""
        self._check_membership()
        self._check_node(node_id)
        first = [n for n in self.first_ids if n not in self.settings.removed]
        valid.require(node_id in first, "node_id", f"one of the servers there from the start ({', '.join(first)}); "
                      "an added one joins at the fault time and cannot leave then too", node_id)  # fmt: skip
        valid.require(len(first) > 1, "node_id", "not the last of the first servers; the cluster needs a voter",
                      node_id)  # fmt: skip
        s = self.settings
        s.removed.add(node_id)
        s.down.discard(node_id)  # its controls are gone: no setting of theirs stays
        s.side_b.discard(node_id)
        s.skew_ms.pop(node_id, None)
        s.drift_ppm.pop(node_id, None)
        self._changed()

    def set_hand_over(self, on: bool) -> None:
        """Whether a leader being removed first hands its leadership to another voter (diss. §3.10)."""
        self._check_membership()
        self.settings.hand_over = valid.boolean("on", on)
        self._changed()

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
        s = self.settings
        changes = (
            (s.skew_ms, "skew_ms", skew_ms, SKEW_MS_LIMIT),
            (s.drift_ppm, "drift_ppm", drift_ppm, DRIFT_PPM_LIMIT),
        )
        for _table, name, value, limit in changes:  # check both, then set both
            if value is not None:
                valid.number(name, value, ge=-limit, le=limit)
        for table, _name, value, _limit in changes:
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
        self.node_ids = self.first_ids
        self._changed()

    def replay(self, t: float | None) -> None:
        """Show the run only up to time ``t`` (None: all of it)."""
        if t is not None and not 0 <= t <= self.settings.duration:
            raise ValueError(f"replay time must be between 0 and {self.settings.duration} s, got {t!r}")
        self.replay_at = t
        self._refresh(controls=False)  # the time slider stays where the learner put it

    def _changed(self) -> None:
        self._simulate()
        self.replay_at = None
        self._refresh()

    # -- the view ------------------------------------------------------------
    def figure(self) -> Any:
        """Draw the current run into a new figure (no widgets needed)."""
        return self.draw(self._source, self.replay_at if self.replay_at is not None else self.sim.now, None)

    @property
    def _source(self) -> Any:
        """What ``draw`` and ``summary`` are given: the cluster if there is one, else the simulator."""
        return self.sim if self.cluster is None else self.cluster

    def _build_ui(self) -> Any:
        import ipywidgets as W

        s = self.settings
        self.fig, _plot = self._plot_area()
        self.up_boxes: dict[str, Any] = {}
        self.side_pickers: dict[str, Any] = {}
        self.skew_sliders: dict[str, Any] = {}  # empty without clock controls
        self.drift_sliders: dict[str, Any] = {}
        self._node_rows: dict[str, Any] = {}
        self.rows_box = W.VBox([])
        self._show_node_rows()
        self.loss_slider = slider(
            "loss", s.loss, 0, 1, 0.05, fmt=".0%", tip="probability that a message is lost"
        )
        self.latency_slider = range_slider("latency ms", s.latency_ms, 0, 500, 5,
                                           tip="one-way delay, drawn uniformly in this range")  # fmt: skip
        self.fault_slider = slider("faults at", s.fault_at, 0, s.duration, 0.1,
                                   tip="when the crashes, the partition and any membership changes begin (s)")  # fmt: skip
        self.run_button = button(f"Run +{self.step:g} s", tip="simulate further", icon="play", primary=True)
        self.reset_button = button("Reset", tip="back to the initial settings", icon="undo")
        self.time_slider = slider("replay to", s.duration, 0, s.duration, 0.05, continuous=True, width="60%",
                                  tip="show the run up to this time")  # fmt: skip
        self._on_change(self.loss_slider, self.set_loss)
        self._on_change(self.latency_slider, lambda lo_hi: self.set_latency(*lo_hi))
        self._on_change(self.fault_slider, self.set_fault_at)
        self._on_change(self.time_slider, lambda t: self.replay(None if t >= self.settings.duration else t))
        self._on_click(self.run_button, self.run)
        self._on_click(self.reset_button, self.reset)
        membership = self._membership_controls()
        what = "crashes, the partition and membership changes" if membership else "crashes and the partition"
        clocks = "; clocks are off from the start" if self.clocks else ""
        return self._page(
            W.HTML(f"<b>Nodes</b> ({what} start at the fault time{clocks})"),
            self.rows_box,
            *membership,
            W.HBox([self.loss_slider, self.latency_slider]),
            W.HBox([self.fault_slider, self.run_button, self.reset_button]),
            self.time_slider,
        )

    def _node_row(self, nid: str) -> Any:
        """The controls of one node: up or crashed, its side, and its clock if the figure shows clocks."""
        import ipywidgets as W

        s = self.settings
        tip = f"untick to crash {nid} at the fault time"
        box = checkbox(f"{nid} up", nid not in s.down, tip=tip, width="90px")
        side = toggles(["A", "B"], "B" if nid in s.side_b else "A", button_width="34px",
                       tips=[f"{nid} on side A", f"{nid} on side B"])  # fmt: skip
        self._on_change(box, lambda up, nid=nid: self.recover(nid) if up else self.crash(nid))
        self._on_change(side, lambda value, nid=nid: self.set_side(nid, value))
        self.up_boxes[nid], self.side_pickers[nid] = box, side
        row = [box, W.Label("side"), side]
        if self.clocks:
            clock = {"label_width": "88px", "width": "280px", "fmt": "+.0f"}
            skew = slider(f"{nid} skew ms", s.skew_ms.get(nid, 0.0), -SKEW_MS_LIMIT, SKEW_MS_LIMIT, 10, **clock,
                          tip=f"how far {nid}'s clock is ahead of true time (ms); hover an arrow to see it")  # fmt: skip
            drift = slider(f"{nid} drift ppm", s.drift_ppm.get(nid, 0.0), -DRIFT_PPM_LIMIT, DRIFT_PPM_LIMIT, 50,
                           tip=f"how fast {nid}'s clock runs away from true time (parts per million)", **clock)  # fmt: skip
            self._on_change(skew, lambda v, nid=nid: self.set_clock(nid, skew_ms=v))
            self._on_change(drift, lambda v, nid=nid: self.set_clock(nid, drift_ppm=v))
            self.skew_sliders[nid], self.drift_sliders[nid] = skew, drift
            row += [skew, drift]
        return W.HBox(row)

    def _show_node_rows(self) -> None:
        """A row of controls per node there is (added servers get theirs); a removed server's row
        gives way to a line saying it was removed, and its controls are forgotten."""
        import ipywidgets as W

        for nid in self.node_ids:
            if nid in self.settings.removed:
                for controls in (self.up_boxes, self.side_pickers, self.skew_sliders, self.drift_sliders):
                    controls.pop(nid, None)
                self._node_rows[nid] = W.HTML(
                    f"<i>{nid}: removed at the fault time (Reset brings it back)</i>"
                )
            elif nid not in self.up_boxes:
                self._node_rows[nid] = self._node_row(nid)
        for nid in [n for n in self._node_rows if n not in self.node_ids]:  # gone after a Reset
            del self._node_rows[nid]
            for controls in (self.up_boxes, self.side_pickers, self.skew_sliders, self.drift_sliders):
                controls.pop(nid, None)
        self.rows_box.children = [self._node_rows[nid] for nid in self.node_ids]

    def _membership_controls(self) -> list[Any]:
        """Add server, the server to remove and Remove, and whether a removed leader hands over:
        only for a cluster whose membership can change."""
        import ipywidgets as W

        if self.cluster is None:
            return []
        self.add_button = button("Add server", icon="plus", tip="at the fault time, start a new server: "
                                 "it catches up as a learner, then votes")  # fmt: skip
        self.remove_picker = dropdown("remove", [], tip="the server to take out of the cluster",
                                      label_width="60px", width="150px")  # fmt: skip
        self.remove_button = button(
            "Remove", icon="minus", tip="at the fault time, take the chosen server out"
        )
        self.hand_over_box = checkbox("a leader being removed hands over first", self.settings.hand_over,
                                      tip="leadership transfer (diss. §3.10) instead of an election after it steps down")  # fmt: skip
        self._on_click(self.add_button, self.add_server)
        self._on_click(self.remove_button, lambda: self.remove_server(self.remove_picker.value))
        self._on_change(self.hand_over_box, self.set_hand_over)
        row = [
            W.Label("membership:"),
            self.add_button,
            self.remove_picker,
            self.remove_button,
            self.hand_over_box,
        ]
        return [W.HBox(row)]

    def _sync_controls(self) -> None:
        s = self.settings
        if [*self._node_rows] != list(self.node_ids) or set(self.up_boxes) != set(self.shown_ids):
            self._show_node_rows()
        if self.cluster is not None:
            removable = [n for n in self.first_ids if n not in s.removed]
            if list(self.remove_picker.options) != removable:
                self.remove_picker.options = removable
            if self.remove_picker.value is None and removable:  # Remove always has a server to act on
                self.remove_picker.value = removable[0]
            self.remove_button.disabled = len(removable) < 2
            self.add_button.disabled = len(self.node_ids) >= MAX_WIDGET_SERVERS
            self.hand_over_box.value = s.hand_over
        for nid in self.shown_ids:
            self.up_boxes[nid].value = nid not in s.down
            self.side_pickers[nid].value = "B" if nid in s.side_b else "A"
            if nid in self.skew_sliders:
                self.skew_sliders[nid].value = s.skew_ms.get(nid, 0.0)
                self.drift_sliders[nid].value = s.drift_ppm.get(nid, 0.0)
        self.loss_slider.value = s.loss
        self.latency_slider.value = s.latency_ms
        self.fault_slider.max = s.duration
        self.fault_slider.value = s.fault_at
        self.time_slider.max = s.duration
        self.time_slider.value = s.duration

    def _redraw(self) -> None:
        until = self.replay_at if self.replay_at is not None else self.sim.now
        self.draw(self._source, until, self.fig)
        text = self.summary(self._source) + self._settings_text()
        if self.replay_at is not None:  # the summary is of the whole run: say so beside a replayed figure
            text = f"Figure replayed up to t = {self.replay_at:.2f} s; at the end of the run, {text}"
        if self.settings.side_b and not self._partitioned():
            # Refused, not ignored in silence: one side would be empty.
            why = "No partition: every node is on side B, so nobody is cut off; put at least one node on side A."
            self.status.value = status_html(f"{why}  |  {text}", "refused")
        else:
            self.status.value = status_html(text)

    def _settings_text(self) -> str:
        s = self.settings
        parts = [f"loss {s.loss:.0%}", f"latency {s.latency_ms[0]:g}–{s.latency_ms[1]:g} ms"]
        if s.down:
            parts.append("down from t={:g}s: {}".format(s.fault_at, ", ".join(sorted(s.down))))
        if self._partitioned():
            parts.append("partition from t={:g}s: B = {}".format(s.fault_at, ", ".join(sorted(s.side_b))))
        added = self.node_ids[len(self.first_ids) :]
        if added:
            parts.append("added at t={:g}s: {}".format(s.fault_at, ", ".join(added)))
        if s.removed:
            how = " (a leader hands over first)" if s.hand_over else ""
            parts.append("removed at t={:g}s: {}{}".format(s.fault_at, ", ".join(sorted(s.removed)), how))
        clocks = []
        for nid in self.shown_ids:
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
    sent, delivered, dropped = (sim.trace.count(kind) for kind in (Kind.SEND, Kind.DELIVER, Kind.DROP))
    return f"t = {sim.now:.2f} s: {sent} sent, {delivered} delivered, {dropped} dropped"
