"""The pieces every lab is made of: faults, properties, scenarios, one trial, and the lab itself.

A *trial* is one run of one scenario on one seed with one fault schedule. It
builds the system (the lab's :meth:`Lab.build`, with the learner's nodes),
arms the schedule (each :class:`Fault` fires at its virtual time through
:meth:`Lab.inject`), installs the lab's per-event safety checks
(:meth:`Lab.watch`) and hands itself to the scenario's script, which runs the
simulator, submits work and checks what must have happened by when. The first
broken property ends the trial: a :class:`Violation` says which
:class:`Property`, what was seen, where and when.

Whatever raises inside the trial becomes a violation too: an exception from
a learner's handler is a failure to show ("your server raised KeyError"),
never a traceback through the simulator. Two guards keep a broken submission
from stalling a notebook: a cap on simulator events per trial (a message
storm) and a wall-clock deadline.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from labkit import validation as valid
from labkit.labs import delegation
from labkit.labs.delegation import Reference
from labkit.labs.rules import unwritten_notes

if TYPE_CHECKING:
    from labkit.sim import Node, Simulator

__all__ = [
    "Fault",
    "Property",
    "Violation",
    "Scenario",
    "Trial",
    "Outcome",
    "Lab",
    "NODE_ERROR",
    "TOO_SLOW",
    "MESSAGE_STORM",
]


@dataclass(frozen=True, slots=True)
class Fault:
    """At virtual time ``at`` (seconds from the start of the trial), do ``kind`` to ``target``.

    The kinds and what a target means belong to the lab (a server number, a
    group of servers, ``"leader"`` resolved when the fault fires). Times are
    absolute, so leaving a fault out of a schedule moves no other one: that is
    what lets :func:`~labkit.labs.shrink.shrink_schedule` remove faults one
    by one.
    """

    at: float
    kind: str
    target: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", valid.number("at", self.at, ge=0, unit="virtual seconds"))
        valid.string("kind", self.kind)

    def __str__(self) -> str:
        what = self.kind if self.target is None else f"{self.kind} {self.target}"
        return f"{self.at:.3f} s  {what}"

    def __repr__(self) -> str:
        args = [repr(round(self.at, 6)), repr(self.kind)]
        if self.target is not None:
            args.append(repr(self.target))
        return f"Fault({', '.join(args)})"


@dataclass(frozen=True, slots=True)
class Property:
    """Something a correct system guarantees: ``name``, what it ``says``, and its ``source``.

    ``look_at`` (optional) tells a learner whose code broke it where to look first: the rules
    that guard it.
    """

    name: str
    says: str
    source: str = ""
    look_at: str = ""

    def __str__(self) -> str:
        return self.name


NODE_ERROR = Property("No errors", "a node's handler never raises an exception")
TOO_SLOW = Property("Time budget", "a trial finishes within its wall-clock budget")
MESSAGE_STORM = Property("Bounded work", "a trial needs no more simulator events than its cap")


class Violation(AssertionError):
    """A :class:`Property` that did not hold: ``detail`` in words, at ``node`` (if one) and ``time``.

    Scripts and checks raise it with :meth:`Trial.fail`; the trial fills in
    the virtual ``time`` and the trace position ``event`` where it was seen.
    ``earlier`` names events before it that it stems from, as (node, time,
    what), e.g. the commit of an entry a later leader lacks: the failure
    picture marks them and opens with them in view.
    """

    def __init__(
        self,
        prop: Property,
        detail: str,
        *,
        node: str | None = None,
        time: float | None = None,
        event: int | None = None,
        earlier: tuple[tuple[str, float, str], ...] = (),
    ) -> None:
        super().__init__(f"{prop.name}: {detail}")
        self.property = prop
        self.detail = detail
        self.node = node
        self.time = time
        self.event = event
        self.earlier = tuple(earlier)

    def __reduce__(self) -> tuple:  # keep everything across processes (sweeps)
        return (_violation, (self.property, self.detail, self.node, self.time, self.event, self.earlier))

    def describe(self) -> str:
        """One line: the property, what broke it, where and when."""
        where = []
        if self.node is not None:
            where.append(f"at {self.node}")
        if self.time is not None:
            where.append(f"t = {self.time:.3f} s")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"{self.property.name}: {self.detail}{suffix}"


def _violation(prop: Property, detail: str, node: Any, time: Any, event: Any, earlier: Any = ()) -> Violation:
    return Violation(prop, detail, node=node, time=time, event=event, earlier=earlier)


def _no_faults(rng: random.Random) -> list[Fault]:
    return []


class ScheduleRandom(random.Random):
    """The generator a scenario's ``faults(rng)`` gets: seeded with the trial's seed, kept as ``trial_seed``.

    A schedule usually draws its faults from it; one that enumerates cases
    instead (every crash point in turn, one per seed) reads ``rng.trial_seed``.
    """

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.trial_seed = seed


@dataclass(frozen=True, eq=False)
class Scenario:
    """One test of a lab: a script, the faults it runs under, and how many seeds it takes.

    * ``play(trial)`` drives the system (run the simulator, submit work) and
      checks what must hold by when (:meth:`Trial.wait_for`, :meth:`Trial.expect`);
      the lab's safety checks run after every event meanwhile;
    * ``faults(rng)`` makes the fault schedule for one seed (``rng`` is seeded
      by it, and knows it as ``rng.trial_seed``): fixed steps, random ones, or both;
    * ``seeds``: how many seeds the default suite runs; ``options``: what the
      lab's :meth:`Lab.build` needs to know (number of servers, loss...).

    A script checks properties, not the schedule: "while a majority can talk,
    a leader appears within a second", never "after the third fault". Then a
    shorter schedule that still fails the same property is a true
    counterexample, which is what shrinking needs.
    """

    name: str
    part: str
    play: Callable[[Trial], None]
    faults: Callable[[random.Random], Sequence[Fault]] = _no_faults
    seeds: int = 10
    about: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        valid.string("name", self.name)
        valid.string("part", self.part)
        valid.function("play", self.play, "a function play(trial)")
        valid.function("faults", self.faults, "a function faults(rng) -> list of Fault")
        valid.integer("seeds", self.seeds, ge=1)

    def schedule(self, seed: int) -> tuple[Fault, ...]:
        """The fault schedule of ``seed``, sorted by time."""
        faults = tuple(self.faults(ScheduleRandom(seed)))
        for i, f in enumerate(faults):
            valid.instance(f"faults[{i}]", f, Fault)
        return tuple(sorted(faults, key=lambda f: f.at))


@dataclass(slots=True)
class Outcome:
    """What one trial found: its ``violation`` (None if it passed) and what it cost."""

    scenario: str
    seed: int
    faults: tuple[Fault, ...]
    violation: Violation | None
    virtual_time: float
    events: int
    wall: float
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.violation is None


class Trial:
    """One run of ``scenario`` on ``seed`` with the learner's ``node``, under ``faults``.

    Scripts use: ``world`` (what :meth:`Lab.build` made), ``sim``, ``rng`` (a
    generator for the script's own choices), :meth:`run_for`,
    :meth:`run_until`, :meth:`wait_for`, :meth:`expect` and :meth:`fail`.
    ``injected`` lists the faults that fired, with what each did.

    ``record=True`` also keeps, after every event, what :meth:`Lab.describe`
    says about the node it touched (``snapshots``), for the picture of a
    failure.
    """

    EVENTS_PER_CHECK = 20_000  # the guards are checked at least this often (simulator events)
    SLICE = 0.1  # and at least every this many virtual seconds

    def __init__(
        self,
        lab: Lab,
        scenario: Scenario,
        node: Any,
        seed: int,
        faults: Sequence[Fault] | None = None,
        *,
        record: bool = False,
        deadline: float | None = None,
        max_events: int | None = None,
    ) -> None:
        self.lab = lab
        self.scenario = scenario
        self.node = node
        self.seed = valid.integer("seed", seed)
        self.faults = scenario.schedule(seed) if faults is None else tuple(sorted(faults, key=lambda f: f.at))
        self.rng = random.Random(f"{seed}/script")
        self.record = record
        self.deadline = deadline  # time.monotonic() value, or None
        self.max_events = max_events if max_events is not None else lab.max_events
        self.events = 0
        self.injected: list[tuple[float, Fault, str]] = []
        self.snapshots: list[tuple[int, float, str, dict[str, Any]]] = []
        self.world: Any = None
        self.sim: Simulator = None  # type: ignore[assignment]
        self._watch: Callable[[str, Any], None] | None = None
        self._checks: list[Callable[[str, Any], None]] = []  # a scenario's own, see add_check
        self.outcome: Outcome | None = None  # set when play() returns

    # -- set-up --------------------------------------------------------------
    def _start(self) -> None:
        self.world = self.lab.build(self)
        self.sim = self.world.sim
        self._watch = self.lab.watch(self)
        self.sim.observer = self._observe
        for f in self.faults:
            self.sim.at(f.at, partial(self._inject, f))

    def _inject(self, fault: Fault, sim: Any) -> None:
        what = self.lab.inject(self, fault)
        self.injected.append((sim.now, fault, what or str(fault)))

    def _observe(self, node_id: str, node: Any) -> None:
        if self.record:
            state = self.lab.describe(node)
            if state is not None:
                self.snapshots.append((len(self.sim.trace.rows) - 1, self.sim.now, node_id, state))
        if self._watch is not None:
            self._watch(node_id, node)
        for check in self._checks:
            check(node_id, node)

    # -- running ---------------------------------------------------------------
    def run_for(self, seconds: float) -> None:
        """Run the simulator ``seconds`` of virtual time further."""
        self.run_until(self.sim.now + valid.number("seconds", seconds, ge=0))

    def run_until(self, when: float) -> None:
        """Run the simulator up to virtual time ``when``, with the trial's guards."""
        # In slices of virtual time and of events, checking the guards after each: a slow or
        # chatty server is stopped soon. Slicing changes nothing else (events run in heap order).
        sim, chunk = self.sim, self.EVENTS_PER_CHECK
        while True:
            done = sim.run(max(min(when, sim.now + self.SLICE), sim.now), max_events=chunk)
            self.events += done
            if self.events > self.max_events:
                self.fail(
                    MESSAGE_STORM,
                    f"more than {self.max_events:,} simulator events by t = {sim.now:.3f} s: "
                    "something sends far more messages than it should",
                )
            if self.deadline is not None and time.monotonic() > self.deadline:
                self.fail(TOO_SLOW, f"the wall-clock budget ran out at t = {sim.now:.3f} s")
            if done < chunk and sim.now >= when:
                return

    def wait_for(self, condition: Callable[[], bool], within: float, step: float = 0.01) -> bool:
        """Run until ``condition()`` holds (checked every ``step`` s), at most ``within`` s; whether it held."""
        end = self.sim.now + within
        while not condition():
            if self.sim.now >= end - 1e-12:
                return False
            self.run_until(min(end, self.sim.now + step))
        return True

    def add_check(self, check: Callable[[str, Any], None]) -> None:
        """Also call ``check(node_id, node)`` after every event from now on, as the lab's own checks are.

        For a requirement one scenario states (a rule whose breach costs time, not safety): it raises
        :class:`Violation` when the rule is broken, and the trial ends there, the event marked.
        """
        self._checks.append(valid.function("check", check, "a function check(node_id, node)"))

    def act(self, kind: str, target: Any = None) -> None:
        """Inject a fault now: a step of the script itself, not part of the (shrinkable) schedule."""
        self._inject(Fault(self.sim.now, kind, target), self.sim)

    def expect(self, condition: Any, prop: Property, detail: str, node: str | None = None) -> None:
        """Fail ``prop`` with ``detail`` unless ``condition`` holds."""
        if not condition:
            self.fail(prop, detail, node)

    def fail(self, prop: Property, detail: str, node: str | None = None) -> NoReturn:
        """End the trial: ``prop`` did not hold."""
        raise Violation(prop, detail, node=node)

    # -- one whole trial -------------------------------------------------------
    def play(self) -> Outcome:
        """Run the scenario's script; every failure becomes the outcome's violation."""
        started = time.perf_counter()
        violation: Violation | None = None
        try:
            self._start()
            self.scenario.play(self)
        except Violation as v:
            violation = v
        except Exception as exc:  # a learner's handler (or a script) raised
            violation = self.lab.explain_error(self, exc)
        if violation is not None:
            if violation.time is None and self.sim is not None:
                violation.time = self.sim.now
            if violation.event is None and self.sim is not None and self.sim.trace.keep:
                violation.event = len(self.sim.trace.rows) - 1
        now = self.sim.now if self.sim is not None else 0.0
        try:
            self.outcome = Outcome(
                self.scenario.name,
                self.seed,
                self.faults,
                violation,
                now,
                self.events,
                time.perf_counter() - started,
                tuple(self.lab.notes(self)) if self.sim is not None else (),
            )
        finally:
            if self.world is not None:
                self.lab.clean_up(self)
        return self.outcome


def _in_cell(filename: str) -> bool:
    return "ipykernel_" in filename or filename.startswith("<")


def _file(filename: str) -> str:
    """A file as a learner finds it: a notebook cell, labkit/... inside the package, else the path."""
    if _in_cell(filename):
        return "a notebook cell"
    parts = filename.replace("\\", "/").split("/")
    if "labkit" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("labkit") :])
    return filename


def _place(f: traceback.FrameSummary) -> str:
    """A frame as a learner finds it: the function, the line number and, since JupyterLab numbers no
    lines by default, the line itself (when Python still has its source, as it has a notebook cell's)."""
    code = (f.line or "").strip() if _in_cell(f.filename) else ""  # labkit's files: open them
    if len(code) > 80:
        code = code[:79] + "…"
    return f"{f.name} (line {f.lineno} of {_file(f.filename)}" + (f": {code})" if code else ")")


def _last_frame(exc: BaseException) -> str:
    """Where ``exc`` was raised, and the learner's own code that led there if that is elsewhere."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    text = f" in {_place(frames[-1])}"
    if not _in_cell(frames[-1].filename):
        mine = [f for f in frames if _in_cell(f.filename)]
        if mine:
            text += f", called from {_place(mine[-1])}"
    return text


class Lab:
    """A lab: the system a learner's node runs in, the scenarios that test it, and what they check.

    Subclass it and say five things (the Raft lab, :mod:`labkit.labs.raft`,
    is the worked example):

    * the world for one trial (an object with a ``sim`` attribute, the
      :class:`~labkit.sim.Simulator`): its class as ``world_class``, built as
      ``world_class(trial, node class, **scenario options)`` (or override :meth:`build`);
    * :meth:`inject`: carry out one :class:`Fault` of the lab's vocabulary;
    * :meth:`watch`: a function called after every event at a node, raising
      :class:`Violation` the moment a safety property breaks (or None);
    * :meth:`describe`: a node's state in a few short fields, for the
      picture of a failure (hover and slider);
    * what a submission is: its ``skeleton`` (the class a learner's node
      subclasses, whose ``RULES`` the learner writes) and the ``reference``
      it must not hand those rules to (:mod:`labkit.labs.delegation`), from
      which :meth:`check_submission`, :meth:`tripwires` and :meth:`notes` follow;

    and list its ``scenarios``, each with a ``part``; a world that takes
    files or folders gives them back in :meth:`clean_up`. Running, shrinking,
    sweeps, grading and pictures are the harness's (:mod:`labkit.labs`).
    """

    name: str = "lab"
    handle: str = "lab"  # what notebooks call the lab object, for reproduction lines
    parts: tuple[str, ...] = ()
    scenarios: tuple[Scenario, ...] = ()
    max_events: int = 2_000_000
    trial_seconds: float = 20.0  # wall-clock guard for one trial
    world_class: Callable[..., Any] | None = None  # world_class(trial, node class, **scenario options)
    skeleton: type | None = None  # the class a learner's node subclasses (its RULES to write)
    reference: Reference | None = None  # labkit's own solution, which a submission must not use

    # -- what a lab says ---------------------------------------------------------
    def build(self, trial: Trial) -> Any:
        """The world of one trial: anything with a ``sim`` attribute (by default a :attr:`world_class`)."""
        if self.world_class is None:
            raise NotImplementedError
        what = f"your class (a subclass of {self.skeleton.__name__})" if self.skeleton else "your node class"
        node = valid.function("node", trial.node, what)
        return self.world_class(trial, node, **trial.scenario.options)

    def inject(self, trial: Trial, fault: Fault) -> str | None:
        """Carry out ``fault`` in ``trial.world``; return what it did, in words (or None)."""
        raise NotImplementedError

    def say(self, fault: Fault) -> str:
        """``fault`` in words, as the failure's summary lists it (a lab whose :meth:`inject` says what a
        fault did in other words says them here too, so that the summary and the picture agree)."""
        target = fault.target
        if target is None:
            return fault.kind
        if isinstance(target, (list, tuple)):
            target = ", ".join(str(t) for t in target)
        return f"{fault.kind} {target}"

    def watch(self, trial: Trial) -> Callable[[str, Node], None] | None:
        """Per-event safety checks: ``check(node_id, node)`` raising :class:`Violation`, or None."""
        return None

    def describe(self, node: Any) -> dict[str, Any] | None:
        """A node's state for the picture: a few short fields (role, term, log...)."""
        return None

    def check_submission(self, node: Any) -> list[str]:
        """Why ``node`` cannot be graded (e.g. it delegates to the reference), as sentences; [] if fine."""
        if self.reference is None or self.skeleton is None:
            return []
        return delegation.problems(node, self.reference, base=self.skeleton)

    @contextlib.contextmanager
    def tripwires(self) -> Iterator[None]:
        """While grading: the reference's rules refuse to run (:func:`labkit.labs.delegation.tripwires`)."""
        if self.reference is None:
            yield
            return
        with delegation.tripwires(self.reference):
            yield

    def clean_up(self, trial: Trial) -> None:
        """Release what :meth:`build` took outside the simulator (files, folders); runs once a trial is over.

        The trial's world, trace and snapshots stay readable afterwards.
        """

    def notes(self, trial: Trial) -> list[str]:
        """Remarks on a finished trial for the learner: the skeleton's rules it called before they were written."""
        rules = getattr(self.skeleton, "RULES", None)
        return unwritten_notes(trial, rules) if rules else []

    def explain_error(self, trial: Trial, exc: Exception) -> Violation:
        """An exception out of a trial, as a violation of :data:`NODE_ERROR`."""
        node = None
        sim = trial.sim
        if sim is not None and sim.trace.keep and len(sim.trace):
            node = sim.trace[-1].node
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Violation(NODE_ERROR, f"{text}{_last_frame(exc)}", node=node)

    # -- scenarios ---------------------------------------------------------------
    def scenario(self, name: str) -> Scenario:
        """The scenario called ``name``."""
        for s in self.scenarios:
            if s.name == name:
                return s
        valid.one_of("scenario", name, [s.name for s in self.scenarios])
        raise AssertionError("unreachable")

    def select(self, what: str | Iterable[str] | None = None) -> list[Scenario]:
        """Scenarios by part name, scenario name, a list of either, or None / ``"all"`` for every one."""
        if what is None or what == "all":
            return list(self.scenarios)
        names = [what] if isinstance(what, str) else list(what)
        out: list[Scenario] = []
        for name in names:
            if name in self.parts:
                out += [s for s in self.scenarios if s.part == name]
            else:
                allowed = ["all", *self.parts, *(s.name for s in self.scenarios)]
                valid.one_of("part or scenario", name, allowed)
                out.append(self.scenario(name))
        return list(dict.fromkeys(out))

    def trial(
        self,
        scenario: str | Scenario,
        node: Any,
        seed: int,
        faults: Sequence[Fault] | None = None,
        *,
        record: bool = False,
        deadline: float | None = None,
    ) -> tuple[Trial, Outcome]:
        """Run one trial; returns the trial (its world, trace and snapshots) and its outcome."""
        sc = scenario if isinstance(scenario, Scenario) else self.scenario(scenario)
        if deadline is None:
            deadline = time.monotonic() + self.trial_seconds
        t = Trial(self, sc, node, seed, faults, record=record, deadline=deadline)
        return t, t.play()

    # -- the harness, on this lab ---------------------------------------------------
    def run(self, what: str | Iterable[str] | None, node: Any, **options: Any) -> Any:
        """Run a part (or scenarios) on ``node``: see :func:`labkit.labs.suite.run_suite`."""
        from labkit.labs.suite import run_suite

        return run_suite(self, what, node, **options)

    def replay(self, node: Any, scenario: str, seed: int, faults: Sequence[Fault] | None = None) -> Any:
        """Run one trial again (a failure's reproduction line) and return it as a failure to look at.

        Its :meth:`~labkit.labs.suite.Failure.show` draws the run; if the trial
        passes, the picture shows a passing run.
        """
        from labkit.labs.suite import Failure, merge_notes

        _, outcome = self.trial(scenario, node, seed, faults)
        v = outcome.violation or Violation(Property("(none)", "the trial passed"), "nothing failed")
        notes = tuple(merge_notes(outcome.notes))
        return Failure(self, node, self.scenario(scenario).name, seed, outcome.faults, v, notes=notes)

    def sweep(self, scenario: str, node: Any, seeds: int | Iterable[int] = 1000, **options: Any) -> Any:
        """Run ``scenario`` over many seeds in parallel: see :func:`labkit.labs.sweep.sweep`."""
        from labkit.labs.sweep import sweep

        return sweep(self, scenario, node, seeds, **options)

    def grade(self, what: str | Iterable[str], node: Any, **options: Any) -> Any:
        """Grade a part on hidden seeds within a time budget: see :func:`labkit.labs.grading.grade`."""
        from labkit.labs.grading import grade

        return grade(self, what, node, **options)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name!r}, parts={list(self.parts)}, {len(self.scenarios)} scenarios)"
        )

    def __hash__(self) -> int:
        return hash((type(self), self.name))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.name == self.name  # type: ignore[attr-defined]


def seed_list(seeds: int | Iterable[int] | None, default: int, name: str = "seeds") -> list[int]:
    """``seeds`` as a list: a count (0..n-1), an iterable of ints, or None for ``default`` of them."""
    if seeds is None:
        return list(range(default))
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return list(range(valid.integer(name, seeds, ge=1)))
    valid.collection(name, seeds, "a count or an iterable of ints")
    out = [valid.integer(f"{name}[{i}]", s) for i, s in enumerate(seeds)]
    if not out:
        raise ValueError(f"{name} must hold at least one seed, got none")
    return out


def finite_or_none(name: str, value: Any) -> float | None:
    """A budget in seconds (> 0) or None for no limit."""
    if value is None:
        return None
    x = valid.number(name, value, gt=0, unit="seconds", finite=False)
    return None if math.isinf(x) else x
