"""What to click in each notebook's widgets, keyed by notebook name.

Every notebook in ``notebooks/`` needs an entry. A notebook whose widgets draw
figures needs at least one step per kind of control it offers (toggle a node,
change a partition, move a slider, press run...); after each step the test
waits for a figure in the page to change and checks that no error appeared.
A notebook without interactive figures maps to an empty list.

Steps find controls by their visible text, so a spec reads like instructions
to a learner: ``Toggle("n2 up")`` ticks or unticks the checkbox labelled
"n2 up". ``nth`` picks among several matches (0 = first in the notebook).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Toggle:
    """Click the checkbox whose label is ``label``."""

    label: str
    nth: int = 0

    def perform(self, page: Any) -> None:
        box = page.locator(".widget-checkbox", has_text=self.label).nth(self.nth).locator("input")
        box.scroll_into_view_if_needed()
        box.click()


@dataclass(frozen=True)
class Click:
    """Press the button whose text is ``text``."""

    text: str
    nth: int = 0

    def perform(self, page: Any) -> None:
        button = page.locator("button.jupyter-button", has_text=self.text).nth(self.nth)
        button.scroll_into_view_if_needed()
        button.click()


@dataclass(frozen=True)
class Pick:
    """Choose the option ``text`` of a ToggleButtons control (``nth`` match)."""

    text: str
    nth: int = 0

    def perform(self, page: Any) -> None:
        button = page.locator(".widget-toggle-buttons button", has_text=self.text).nth(self.nth)
        button.scroll_into_view_if_needed()
        button.click()


@dataclass(frozen=True)
class Slide:
    """Move the slider labelled ``label`` by ``presses`` steps with the keyboard."""

    label: str
    presses: int = 3
    nth: int = 0

    def perform(self, page: Any) -> None:
        slider = page.locator(".widget-slider", has=page.locator(f".widget-label:text-is('{self.label}')"))
        handle = slider.nth(self.nth).locator(".noUi-handle").first
        handle.scroll_into_view_if_needed()
        handle.focus()
        key = "ArrowRight" if self.presses > 0 else "ArrowLeft"
        for _ in range(abs(self.presses)):
            handle.press(key)


@dataclass(frozen=True)
class Choose:
    """Select ``option`` in the drop-down labelled ``label``.

    ``redraws=False`` marks a choice that only sets up the next step (which
    server a button acts on): the test then checks for errors but does not
    wait for a figure to change.
    """

    label: str
    option: str
    nth: int = 0
    redraws: bool = True

    def perform(self, page: Any) -> None:
        box = page.locator(".widget-dropdown", has=page.locator(f".widget-label:text-is('{self.label}')"))
        select = box.nth(self.nth).locator("select")
        select.scroll_into_view_if_needed()
        select.select_option(label=self.option)


@dataclass(frozen=True)
class Type:
    """Type ``text`` into the text box labelled ``label`` (replacing what it held).

    Typing redraws nothing by itself (a button such as "Save" uses the text),
    so the test checks for errors but does not wait for a figure to change.
    """

    label: str
    text: str
    nth: int = 0
    redraws: bool = False

    def perform(self, page: Any) -> None:
        box = page.locator(".widget-text", has=page.locator(f".widget-label:text-is('{self.label}')"))
        field = box.nth(self.nth).locator("input")
        field.scroll_into_view_if_needed()
        field.fill(self.text)


Step = Toggle | Click | Pick | Slide | Choose | Type

CLUSTER_WIDGET = [
    Toggle("n2 up"),
    Pick("B"),
    Slide("loss"),
    Slide("latency ms"),
    Click("Run"),
    Click("Reset"),
]

# The heartbeat demo draws a space-time diagram, which shows clocks: moving a
# skew slider relabels n1's lane and its clock readings. (07 reuses the widget
# over Raft's role timeline, which has no clocks and so no clock sliders, and adds
# membership changes.)
CLUSTER_WIDGET_WITH_CLOCKS = [*CLUSTER_WIDGET, Slide("n1 skew ms")]

INTERACTIONS: dict[str, list[Step]] = {
    "00-welcome": CLUSTER_WIDGET_WITH_CLOCKS,
    "01-the-network-is-unreliable": CLUSTER_WIDGET_WITH_CLOCKS,
    "02-time-clocks-and-order": [
        Slide("A skew ms"),
        Slide("B drift ppm"),
        Pick("lamport"),
        Click("Perfect clocks"),
    ],
    "03-broadcast-and-crdts": [
        Pick("FIFO"),
        Slide("network seed"),
        Pick("total order (Raft)"),
        Click("Partition A | B C"),
        Type("edit A", "hello brave world"),
        Click("Save at A"),
        Type("edit B", "Hello world!"),
        Click("Save at B"),
        Click("Heal"),
        Pick("register (last writer wins)"),
        Click("Run 1 s"),
        Click("Reset"),
    ],
    "07-leader-election": [
        *CLUSTER_WIDGET,
        Click("Add server"),  # n6 joins at the fault time: a learner, then a voter
        Choose("remove", "n2", redraws=False),
        Click("Remove"),  # n2 leaves: its row is hatched "removed", its controls go
    ],
    "08-log-replication": [
        Click("Submit"),
        Choose("server", "n2", redraws=False),  # the buttons now read "Crash n2" etc.
        Click("Crash n2"),
        Click("Run 0.5 s"),
        Click("Restart n2"),
        Click("Isolate n2"),
        Pick("B", 2),  # n3 (the leader) alone on side B
        Click("Heal"),
        Click("Crash leader"),
        Click("Run 0.5 s"),
        Click("Isolate leader"),
        Click("Restart crashed"),
        Click("Reset"),
    ],
    # The failure picture of the first run (labkit's VoteTwice): step back, one back, back to the violation.
    "09-lab-build-raft": [Slide("step", presses=-3), Click("one back"), Click("the violation")],
    "10-raft-in-practice": [
        Click("Submit"),
        Click("Add server"),  # n4 joins as a learner
        Click("Run 0.5 s"),
        Choose("server", "n2", redraws=False),  # n3 leads: the buttons now read "Lead: n2" etc.
        Click("Lead: n2"),
        Click("Run 0.5 s"),
        Click("Remove n2"),  # the new leader removes itself
        Click("Run 0.5 s"),
        Pick("B", 0),  # n1 on side B
        Click("Heal"),
        Click("Reset"),
        # The cluster widget after the explorer: its membership row.
        Click("Add server", 1),
        Choose("remove", "n3", redraws=False),  # n3 leads
        Click("Remove", 1),
        Toggle("a leader being removed hands over first"),
    ],
    "11-linearizability": [
        Slide("B starts at", presses=4),
        Choose("B read", "None (old)"),
        Choose("store", "CAP register, availability-first"),
        Slide("seed", presses=1),
    ],
    "14-transactions-and-isolation": [
        Choose("story", "phantom"),
        Pick("serializable (2PL)"),
        Slide("interleaving", presses=-3),
        Click("story's order"),
    ],
    "15-sagas": [
        Choose("failing step", "ship"),
        Choose("how", "crash after apply"),
        Choose("crash", "after log write 3, before sending"),
        Pick("first-attempt OrderSaga"),
        Slide("retries", 1),
        # The lab's first failure picture (the untouched orchestrator accepts an order and does nothing).
        Click("one back"),
        Slide("step", presses=-2),
        Click("the violation"),
    ],
    "16-event-sourcing": [Slide("version", presses=-3), Click("one back"), Click("one more")],
    "17-cascading-failures": [
        Choose("C is", "down"),
        Toggle("breaker"),
        Slide("load (req/s)", presses=-2),
        Toggle("retries"),
        Choose("jitter", "none"),
    ],
    "04-cap-theorem": [
        Slide("nodes", -1),
        Slide("side A", 1),
        Pick("availability-first"),
        Slide("R", -1),
        Slide("W", 1),
        Pick("last-writer-wins"),
    ],
    "05-replication-and-quorums": [
        Slide("N", 1),
        Toggle("crash n4"),
        Toggle("side B", 4),
        Pick("availability-first"),
        Pick("reader on side B"),
        Slide("W", -1),
        # The lab's failure picture of last-writer-wins replicas: step back, one back, back to the violation.
        Slide("step", presses=-3),
        Click("one back"),
        Click("the violation"),
    ],
    "06-consistent-hashing": [Slide("nodes"), Slide("vnodes"), Click("add a node"), Click("remove a node")],
    # The Figure 8 counterexample: two steps of it, its end, one back; then the hunt's first two actions.
    "12-model-checking": [
        Click("Next step of the counterexample"),
        Click("Next step of the counterexample"),
        Click("Jump to the counterexample"),
        Click("Undo"),
        Click("place order-1 at coordinator"),
        Click("deliver Request: coordinator → inventory"),
    ],
    "13-leaving-the-simulator": [],  # real processes; no widgets
    "18-capstone": [
        Choose("server", "g2n1", redraws=False),
        Click("Crash"),
        Click("Run 0.5 s"),
        Click("Add group"),
        Click("Restart"),
        Click("Reset"),
    ],
}
