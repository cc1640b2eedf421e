"""Figures and a widget for notebook 03, "Broadcast and CRDTs" (the CRDT half).

* :func:`replica_diagram`: the space-time diagram of a replicated run
  (:func:`labkit.viz.spacetime.spacetime_diagram`: the gossip messages,
  partitions shaded), with each local update marked and each replica's value
  written on its lane whenever it changes;
* :class:`ReplicasWidget`: three replicas of a shared text, a set or a
  register. Partition them, edit on each side, heal, and watch them converge;
  with a last-writer-wins register, watch it throw an edit away.
"""

from __future__ import annotations

import collections.abc as cabc
from dataclasses import dataclass
from enum import Enum
from typing import Any

from labkit import validation as valid
from labkit.crdt import RGA, Edit, GossipReplica, LWWRegister, MVRegister, ORSet, StateCRDT
from labkit.sim import Simulator, Uniform
from labkit.viz.common import (
    MAX_RUN,
    OK_COLOR,
    Widget,
    button,
    check_figure,
    check_title,
    legend_below,
    marks,
    status_html,
    toggles,
)

__all__ = ["Doc", "ReplicasWidget", "replica_diagram"]


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset)):
        return "{" + ", ".join(map(str, value)) + "}"
    return str(value)


EMPTY_NOTE = "nothing has happened yet: no update, no message"


def replica_diagram(
    sim: Simulator,
    *,
    title: str = "Replicas",
    height: int = 420,
    start: float = 0.0,
    figure: Any = None,
    empty_note: str = EMPTY_NOTE,
) -> Any:
    """The replicas' messages, their local updates, and their values as they change.

    A run with nothing to draw yet says so (``empty_note``) across the plot, which would otherwise read as
    a figure that failed.
    """
    check_title(title, none=False)
    valid.string("empty_note", empty_note)
    valid.integer("height", height, ge=100, le=10_000, note="pixels")
    valid.number("start", start, unit="seconds")
    check_figure(figure)

    from labkit.viz.spacetime import spacetime_diagram

    valid.instance("sim", sim, Simulator)
    end = max(sim.now, start + 0.01)
    fig = spacetime_diagram(sim, notes=False, title=title, height=height, start=start, end=end, figure=figure)
    points = _value_points(sim, start)
    fig.add_traces(
        [
            marks(
                points["update"],
                name="local update",
                textposition="top center",
                marker={"color": "#000000", "symbol": "diamond", "size": 11},
            ),
            marks(
                points["merge"],
                name="changed by a merge",
                textposition="bottom center",
                marker={"color": OK_COLOR, "symbol": "circle", "size": 8},
                textfont={"color": "#006644"},
            ),
        ]
    )
    # Assigned, not added: a figure redrawn in place keeps its annotations.
    fig.layout.annotations = [a for a in fig.layout.annotations if a.name != "empty"]
    if not any(len(trace.x or ()) for trace in fig.data):
        fig.add_annotation(
            x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, name="empty",
            text=empty_note, font={"size": 13, "color": "#555555"},
        )  # fmt: skip
    legend_below(fig)
    return fig


def _value_points(sim: Simulator, start: float) -> dict[str, dict[str, list]]:
    """The replicas' values as they change, from their "value" notes: a mark per local update,
    and per merge that changed what a read returns (x, y, text, hover)."""
    lane = {n: i for i, n in enumerate(sim.nodes)}
    points: dict[str, dict[str, list]] = {
        k: {"x": [], "y": [], "text": [], "hover": []} for k in ("update", "merge")
    }
    last: dict[str, str] = {}  # what each replica read after its previous change
    for e in sim.trace.notes("value"):
        if e.node not in lane:
            continue
        why, value = e.detail["why"], _shown(e.detail["value"])
        merged = why.startswith("merge") or (" from " in why and not why.endswith(f" from {e.node}"))
        unchanged = last.get(e.node) == value
        last[e.node] = value
        if e.time < start or (merged and unchanged):
            continue  # a merge that changed the state but not what a read returns
        m = points["merge" if merged else "update"]
        m["x"].append(e.time)
        m["y"].append(lane[e.node])
        m["text"].append(value)
        m["hover"].append(f"{e.node} at {e.time:.3f}s: {why}<br>now reads {value}")
    return points


# -- the widget ---------------------------------------------------------------
class Doc(Enum):
    """What the replicas of :class:`ReplicasWidget` hold."""

    TEXT = "text (RGA)"
    SET = "set (OR-set)"
    LWW = "register (last writer wins)"
    MV = "register (multi-value)"


class _LWWWithWitness(StateCRDT):
    """An LWW register, with a multi-value register beside it that sees the same writes.

    The multi-value register keeps every write no other write has seen; any of
    those the LWW register does not hold, it threw away.
    """

    __slots__ = ("lww", "mv")

    def __init__(self, lww: LWWRegister, mv: MVRegister) -> None:
        self.lww, self.mv = lww, mv

    def merge(self, other: _LWWWithWitness) -> _LWWWithWitness:
        return _LWWWithWitness(self.lww.merge(other.lww), self.mv.merge(other.mv))

    @property
    def value(self) -> Any:
        return self.lww.value

    @property
    def discarded(self) -> tuple[Any, ...]:
        """Writes nobody overwrote knowingly that the LWW register dropped."""
        return tuple(v for v in self.mv.value if v != self.lww.value)

    def metadata(self) -> dict[str, int]:
        return self.lww.metadata()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _LWWWithWitness) and (self.lww, self.mv) == (other.lww, other.mv)

    def __hash__(self) -> int:
        return hash((self.lww, self.mv))


@dataclass(frozen=True, slots=True)
class _Write:
    """What saving an editor's content does, for each kind of document."""

    content: str

    def __call__(self, state: Any, replica: str, clock: float) -> Any:
        if isinstance(state, RGA):
            return Edit(self.content)(state, replica, clock)
        if isinstance(state, ORSet):
            wanted = _elements(self.content)
            for gone in sorted(state.value - wanted):
                state = state.remove(gone)
            for new in sorted(wanted - state.value):
                state = state.add(new, replica)
            return state
        if isinstance(state, _LWWWithWitness):
            return _LWWWithWitness(
                state.lww.assign(self.content, clock, replica), state.mv.assign(self.content, replica)
            )
        return state.assign(self.content, replica)

    def __str__(self) -> str:
        return f"save {self.content!r}"


def _elements(text: str) -> frozenset[str]:
    return frozenset(x.strip() for x in text.split(",") if x.strip())


_INITIAL = {Doc.TEXT: "hello world", Doc.SET: "milk, eggs", Doc.LWW: "10:00", Doc.MV: "10:00"}


def _initial_state(doc: Doc, first: str) -> Any:
    text = _INITIAL[doc]
    if doc is Doc.TEXT:
        return RGA().insert(0, text, first)
    if doc is Doc.SET:
        return _Write(text)(ORSet(), first, 0.0)
    if doc is Doc.LWW:
        return _LWWWithWitness(LWWRegister().assign(text, 0.0, first), MVRegister().assign(text, first))
    return MVRegister().assign(text, first)


class ReplicasWidget(Widget):
    """Three replicas of one document, gossiping their states.

    Every button is a method: ``partition()``, ``edit(replica, content)``,
    ``heal()``, ``run(seconds)``, ``reset()``, ``set_doc(doc)``. Each runs the
    simulation on (an edit for 0.3 s, a heal for 1 s) and redraws.

    >>> w = ReplicasWidget(Doc.TEXT)
    >>> w.partition(); w.edit("A", "hello brave world"); w.edit("B", "Hello world!"); w.heal()
    >>> w.values(), w.converged()
    """

    REPLICAS = ("A", "B", "C")
    EMPTY = "nothing has happened yet: save an edit at a replica, or press Run 1 s"

    def __init__(
        self,
        doc: Doc = Doc.TEXT,
        *,
        clock_offsets: dict[str, float] | None = None,
        interval: float = 0.25,
        seed: int = 0,
    ) -> None:
        valid.instance("clock_offsets", clock_offsets, cabc.Mapping, none=True)
        self.doc = valid.instance("doc", doc, Doc)
        self.clock_offsets = dict(clock_offsets or {})
        for r, off in self.clock_offsets.items():
            valid.one_of("clock_offsets key", r, self.REPLICAS)
            valid.number(f"clock_offsets[{r!r}]", off, unit="seconds")
        self.interval = valid.number("interval", interval, gt=0, unit="seconds")
        self.seed = valid.integer("seed", seed)
        self.reset()

    # -- the model -----------------------------------------------------------------
    def reset(self) -> None:
        """Start again: every replica holds the same initial document."""
        sim = Simulator(self.seed, latency=Uniform(0.01, 0.05))
        initial = _initial_state(self.doc, self.REPLICAS[0])
        for r in self.REPLICAS:
            sim.add_node(r, lambda n: GossipReplica(n, initial, interval=self.interval))
        for r, off in self.clock_offsets.items():
            sim.set_clock(r, offset=off)
        sim.run(0.0)
        self.sim = sim
        self.edits: list[tuple[float, str, str]] = []
        self._changed()

    def set_doc(self, doc: Doc) -> None:
        """Replicate another kind of document (starts again)."""
        self.doc = valid.instance("doc", doc, Doc)
        self.reset()

    def partition(self) -> None:
        """Cut A off from B and C."""
        self.sim.partition([self.REPLICAS[0]], list(self.REPLICAS[1:]))
        self.sim.run_for(0.1)
        self._changed()

    def heal(self, seconds: float = 1.0) -> None:
        """Reconnect everyone, and run ``seconds`` so the replicas can gossip."""
        valid.number("seconds", seconds, ge=0, le=MAX_RUN, unit="seconds")
        seconds = valid.number("seconds", seconds, ge=0, unit="seconds")
        self.sim.heal()
        self.sim.run_for(seconds)
        self._changed()

    def run(self, seconds: float = 1.0) -> None:
        """Let ``seconds`` pass."""
        valid.number("seconds", seconds, ge=0, le=MAX_RUN, unit="seconds")
        self.sim.run_for(valid.number("seconds", seconds, gt=0, unit="seconds"))
        self._changed()

    def edit(self, replica: str, content: str) -> None:
        """Save ``content`` at ``replica`` (a text; a set as "a, b, c"; a register value)."""
        valid.one_of("replica", replica, self.REPLICAS)
        valid.instance("content", content, str)
        self.sim.call(replica, lambda node, ctx: node.update(ctx, _Write(content)))
        self.edits.append((self.sim.now, replica, content))
        self.sim.run_for(0.3)
        self._changed()

    def values(self) -> dict[str, Any]:
        """What each replica reads now."""
        return {r: self.sim.node(r).value for r in self.REPLICAS}

    def shown(self, replica: str) -> str:
        """A replica's value as its editor shows it."""
        value = self.sim.node(replica).value
        if self.doc is Doc.SET:
            return ", ".join(value)
        if self.doc is Doc.MV:
            return " | ".join(value)
        return str(value)

    def converged(self) -> bool:
        """Every replica holds the same state."""
        states = [self.sim.node(r).state for r in self.REPLICAS]
        return all(s == states[0] for s in states[1:])

    def discarded(self) -> tuple[Any, ...]:
        """(LWW only) saved values that were thrown away although no write had seen them."""
        if self.doc is not Doc.LWW:
            return ()
        lost: set[Any] = set()
        for r in self.REPLICAS:
            lost.update(self.sim.node(r).state.discarded)
        return tuple(sorted(lost))

    def partitioned(self) -> bool:
        """True while A is cut off from B and C."""
        return len(self.sim.partitions) > 1

    def summary(self) -> str:
        cut = self.partitioned()
        text = "Network: A is cut off from B and C, " if cut else "Network: connected. "
        if cut:  # said at once, before any edit shows it
            text += "so an edit reaches only its own side until you heal. "
        parts = [f"{r} reads {self.shown(r)!r}" for r in self.REPLICAS]
        text += "; ".join(parts) + ". "
        if self.converged():
            text += "All replicas agree."
        else:
            text += "The replicas differ" + (": heal to merge them." if cut else " (gossip is on its way).")
        lost = self.discarded()
        if lost:
            text += f" Last writer wins threw away {', '.join(map(repr, lost))}."
        return text

    def _changed(self) -> None:
        self._refresh()

    # -- the view ------------------------------------------------------------------
    def figure(self, figure: Any = None) -> Any:
        check_figure(figure)
        cut = " (A cut off from B and C)" if self.partitioned() else ""
        return replica_diagram(
            self.sim, title=f"Three replicas of a {self.doc.value}{cut}", figure=figure, empty_note=self.EMPTY
        )

    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.fig, _plot = self._plot_area()
        self.doc_picker = toggles(
            [(d.value, d) for d in Doc], self.doc, description="replicate", button_width="190px"
        )
        self._on_change(self.doc_picker, self.set_doc)
        self.editors: dict[str, Any] = {}
        rows = []
        for r in self.REPLICAS:
            self.editors[r] = box = W.Text(description=f"edit {r}", layout=W.Layout(width="420px"))
            save = button(f"Save at {r}", tip=f"replace {r}'s copy with what the box says")
            self._on_click(save, lambda r=r, box=box: self.edit(r, box.value))
            rows.append(W.HBox([box, save]))
        buttons = []
        for label, tip, fn in (
            ("Partition A | B C", "cut A off from B and C", self.partition),
            ("Heal", "reconnect everyone and run 1 s", self.heal),
            ("Run 1 s", "let a second pass", self.run),
            ("Reset", "start again from the initial document", self.reset),
        ):
            buttons.append(button(label, tip=tip))
            self._on_click(buttons[-1], fn)
        return self._page(self.doc_picker, *rows, W.HBox(buttons))

    def _sync_controls(self) -> None:
        self.doc_picker.value = self.doc
        for r, box in self.editors.items():
            box.value = self.shown(r)

    def _redraw(self) -> None:
        self.figure(self.fig)
        self.status.value = status_html(self.summary())
