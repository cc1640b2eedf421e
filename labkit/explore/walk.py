"""Walking a model's state space by hand: what the explorer widget does, without the widget.

A :class:`Walk` is a run under construction. From the state it has reached
it lists the enabled actions (deliver this message, fire that timer, crash
that node ...), takes the one you choose, and can go back. Every state on
the way is checked against the invariants, so you see the moment one breaks.
It can start from the model's start, from a search's counterexample (which
it then offers to step through, or to jump to), or from a simulator run
that is paused (a lab trial, a notebook's cluster).

:class:`labkit.viz.explore.Explorer` puts buttons on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labkit import validation as valid
from labkit.explore.model import Action, Bounds, Model
from labkit.explore.search import Invariant, Result, check_state, invariant_list
from labkit.explore.space import Space, State, StateKey

__all__ = ["Walk"]

GENEROUS = Bounds(crashes=2, restarts=2, drops=3, duplicates=2)
"""What a walk allows unless told otherwise: a few faults of each kind."""


class Walk:
    """A run you build one action at a time (see the module docstring).

    ``invariants``: checked at every state; ``bounds``: which faults are on
    offer (default :data:`GENEROUS`); ``counterexample``: a run to step
    through or jump to.
    """

    def __init__(
        self,
        model: Model,
        invariants: Mapping[str, Invariant] | Sequence[Invariant] = (),
        bounds: Bounds | None = None,
        *,
        counterexample: Sequence[Action] | None = None,
        space: Space | None = None,
        start: StateKey | None = None,
    ) -> None:
        valid.instance("model", model, Model)
        self.model = model
        self.space = space if space is not None else Space(model, GENEROUS if bounds is None else bounds)
        if self.space.model is not model:
            raise ValueError("space must be a state space of the same model")
        self.invariants = invariant_list(invariants) if invariants else []
        self.taken_over = start is not None  # starts from a run taken over, not the model's start
        self.start = self.space.initial() if start is None else start
        self.keys: list[StateKey] = [self.start]
        self.path: list[Action] = []
        self.counterexample: tuple[Action, ...] | None = None
        if counterexample is not None:
            for i, a in enumerate(counterexample):
                valid.instance(f"counterexample[{i}]", a, Action)
            self.counterexample = tuple(counterexample)

    # -- where to start ------------------------------------------------------------
    @classmethod
    def from_result(cls, result: Result) -> Walk:
        """A walk over the space a search explored, offering its counterexample (if any)."""
        valid.instance("result", result, Result)
        cex = result.violation.actions if result.violation is not None else None
        return cls(
            result.model, dict(result.invariants), result.bounds, counterexample=cex, space=result.space
        )

    @classmethod
    def from_simulator(
        cls,
        sim: Any,
        model: Model,
        invariants: Mapping[str, Invariant] | Sequence[Invariant] = (),
        bounds: Bounds | None = None,
    ) -> Walk:
        """A walk from where a paused simulator run stands (a lab trial, a notebook's cluster).

        The model's nodes are taken over as they are (copied: the run is not
        changed), with their durable storage, pending timers and the messages
        in flight between them; nodes of the run that are not in the model
        (clients) are left out, and what the model's nodes send them is dropped.
        """
        space = Space(model, GENEROUS if bounds is None else bounds)
        start = space.take_over(sim)
        return cls(model, invariants, bounds, space=space, start=start)

    # -- reading ------------------------------------------------------------------
    @property
    def state(self) -> State:
        """The state reached."""
        return self.space.view(self.keys[-1])

    def enabled(self) -> list[Action]:
        """The actions the current state enables, within the walk's bounds."""
        return [self.space.action(step) for step, _ in self.space.successors(self.keys[-1])]

    def violations(self) -> list[tuple[str, str]]:
        """Every invariant the current state breaks, as ``(name, what is wrong)``."""
        out = []
        st = self.state
        for name, fn in self.invariants:
            found = check_state(st, [(name, fn)])
            if found is not None:
                out.append(found)
        if not self.invariants:
            found = check_state(st, [])
            if found is not None:
                out.append(found)
        return out

    def nodes(self) -> list[dict[str, Any]]:
        """One row per node: its id, whether it is up, what the model's ``describe`` shows, its timers."""
        st = self.state
        describe = self.model.describe or _public
        errors = st.errors
        rows = []
        for nid, node in st.nodes.items():
            row: dict[str, Any] = {"node": nid}
            if node is None:
                row["status"] = "failed: " + errors[nid] if nid in errors else "crashed"
            else:
                row["status"] = "up"
                row.update(describe(node))
            row["timers"] = ", ".join(st.timers[nid]) or "–"
            rows.append(row)
        return rows

    def messages(self) -> list[tuple[str, str, Any]]:
        """The messages in flight, as ``(src, dst, message)``."""
        return self.state.in_flight

    # -- moving -------------------------------------------------------------------------
    def do(self, action: Action | int | str) -> State:
        """Take ``action``: an :class:`Action`, its number in :meth:`enabled`, or its text
        (``str(action)`` or ``action.button``). Returns the new state."""
        enabled = self.enabled()
        if isinstance(action, bool):
            raise valid.ArgumentTypeError(f"action must be an Action, a number or a text, got {action!r}")
        if isinstance(action, int):
            if not 0 <= action < len(enabled):
                raise ValueError(f"action must be a number from 0 to {len(enabled) - 1}, got {action}")
            chosen = enabled[action]
        elif isinstance(action, str):
            found = [a for a in enabled if action in (str(a), a.button)]
            if not found:
                raise ValueError(
                    f"no enabled action reads {action!r}; enabled: {[a.button for a in enabled]}"
                )
            chosen = found[0]
        elif isinstance(action, Action):
            chosen = action
        else:
            raise valid.ArgumentTypeError(
                f"action must be an Action, a number or a text, got {valid.shown(action)}"
            )
        step = self.space.find_step(self.keys[-1], chosen)
        self.keys.append(self.space.step(self.keys[-1], step)[0])
        self.path.append(chosen)
        return self.state

    def undo(self) -> bool:
        """Go back one action; False when already at the start."""
        if not self.path:
            return False
        self.path.pop()
        self.keys.pop()
        return True

    def reset(self) -> None:
        """Back to the start."""
        del self.path[:], self.keys[1:]

    @property
    def on_counterexample(self) -> bool:
        """True when the run so far is the beginning of the counterexample."""
        c = self.counterexample
        return c is not None and tuple(self.path) == c[: len(self.path)]

    def next(self) -> Action:
        """Take the counterexample's next action (starting again from the start if the run left it)."""
        c = self.counterexample
        if c is None:
            raise ValueError("this walk has no counterexample to follow")
        if not self.on_counterexample:
            self.reset()
        if len(self.path) == len(c):
            raise ValueError("the counterexample is over: its last state is reached")
        a = c[len(self.path)]
        self.keys.append(self.space.step(self.keys[-1], self.space.find_step(self.keys[-1], a))[0])
        self.path.append(a)
        return a

    def jump(self) -> None:
        """Go to the end of the counterexample: where the invariant breaks."""
        c = self.counterexample
        if c is None:
            raise ValueError("this walk has no counterexample to jump to")
        self.reset()
        for a in c:
            self.keys.append(self.space.step(self.keys[-1], self.space.find_step(self.keys[-1], a))[0])
            self.path.append(a)

    def trace(self) -> Any:
        """The run so far as a simulator :class:`~labkit.sim.Trace` (for the space-time diagram)."""
        from labkit.explore.replay import trace_of

        found = self.violations()
        start = self.start if self.taken_over else None
        return trace_of(self.space, self.path, violation=found[0] if found else None, start=start)

    def __repr__(self) -> str:
        return f"Walk({self.model.name!r}, {len(self.path)} steps, {len(self.enabled())} actions enabled)"


def _public(node: Any) -> dict[str, Any]:
    attrs = getattr(node, "__dict__", {})
    return {
        k: v for k, v in attrs.items() if not k.startswith("_") and k not in ("node_id", "peers", "config")
    }
