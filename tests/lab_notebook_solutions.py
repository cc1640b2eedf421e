"""The reference solutions of the quorum lab (notebook 05) and the saga lab (notebook 15), taken from the
notebooks, and the classic bugs of each protocol planted in them.

A solution is the notebook's own code for the lab: its import cell, the class cell and every answer cell
of the lab (by grade id), run in a fresh namespace, never labkit's reference. A planted bug is one small
edit of one answer cell's source, the mistake a learner makes; :meth:`NotebookLab.plant` fails loudly if
the notebook's text changed so that an edit no longer applies.

Used by tests/test_labs_quorum.py, tests/test_labs_saga.py, tests/test_grading_labs_more.py and
benchmarks/bench_labs.py. (tests/lab_solutions.py does the same for the Raft lab of notebook 09.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# bug -> [(grade id of the answer cell, text in it, what the mistake writes instead)]
Edits = dict[str, list[tuple[str, str, str]]]


@dataclass(frozen=True, eq=False)
class NotebookLab:
    """Where a lab lives in its notebook, and the bugs to plant in its answers."""

    notebook: Path
    imports: str  # the lab's import cell contains this
    class_cell: str  # the class cell starts with this
    class_name: str
    rules: tuple[str, ...]  # grade ids of the lab's answer cells
    parts: tuple[str, ...]  # grade ids of the lab's test cells
    bugs: Edits

    def source(self) -> dict[str, Any]:
        return json.loads(self.notebook.read_text(encoding="utf-8"))

    def cells(self, nb: dict[str, Any]) -> list[tuple[str | None, str]]:
        """(grade id or None, source) of the code cells that make the solution, in order."""
        out: list[tuple[str | None, str]] = []
        for c in nb["cells"]:
            if c["cell_type"] != "code":
                continue
            src = "".join(c["source"])
            grade_id = c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if self.imports in src or src.startswith(self.class_cell):
                out.append((None, src))
            elif grade_id in self.rules:
                out.append((grade_id, src))
        found = {g for g, _ in out if g}
        if found != set(self.rules) or not any(g is None and s.startswith(self.class_cell) for g, s in out):
            raise AssertionError(f"{self.notebook.name}: the lab's cells changed; found {sorted(found)}")
        return out

    def plant(self, nb: dict[str, Any], bug: str) -> dict[str, Any]:
        """A copy of notebook ``nb`` with ``bug`` planted in its answer cells."""
        if bug not in self.bugs:
            raise ValueError(f"bug must be one of {sorted(self.bugs)}, got {bug!r}")
        nb = json.loads(json.dumps(nb))
        for grade_id, old, new in self.bugs[bug]:
            cell = next(
                c
                for c in nb["cells"]
                if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id
            )
            src = "".join(cell["source"])
            if src.count(old) != 1:
                raise AssertionError(f"{bug}: the text to change is not in {grade_id} exactly once: {old!r}")
            cell["source"] = src.replace(old, new)
        return nb

    def load(self, nb: dict[str, Any] | None = None) -> type:
        """The class the notebook ``nb`` (default: the lab's notebook) defines."""
        nb = self.source() if nb is None else nb
        ns: dict[str, Any] = {"__name__": self.notebook.stem[:2]}
        for i, (grade_id, src) in enumerate(self.cells(nb)):
            exec(compile(src, f"<{grade_id or f'cell-{i}'}>", "exec"), ns)  # noqa: S102 - the notebook's own code
        return ns[self.class_name]

    def solution(self) -> type:
        """The notebook's reference solution."""
        return self.load()

    def planted(self, bug: str) -> type:
        """The notebook's solution with ``bug`` planted."""
        return self.load(self.plant(self.source(), bug))

    def lab_only(self, nb: dict[str, Any] | None = None) -> dict[str, Any]:
        """The lab section of ``nb`` alone, as a notebook: from its ``## Lab`` heading to the summary."""
        nb = json.loads(json.dumps(self.source() if nb is None else nb))
        texts = ["".join(c["source"]) for c in nb["cells"]]
        start = next(i for i, t in enumerate(texts) if t.startswith("## Lab"))
        end = next(i for i, t in enumerate(texts) if t.startswith("## Summary"))
        nb["cells"] = nb["cells"][start:end]
        return nb


QUORUM = NotebookLab(
    notebook=ROOT / "notebooks" / "05-replication-and-quorums.ipynb",
    imports="from labkit.labs.quorum import",
    class_cell="class MyStore(QuorumServer):",
    class_name="MyStore",
    rules=(
        "nb05-coordinate-put",
        "nb05-coordinate-get",
        "nb05-quorum-reached",
        "nb05-write-ack",
        "nb05-read-reply",
        "nb05-newest",
        "nb05-read-repair",
        "nb05-stand-ins",
        "nb05-hand-off",
        "nb05-handoff-ack",
    ),
    parts=("nb05-quorums", "nb05-repair", "nb05-sloppy"),
    bugs={
        "answering before W acknowledgements": [
            (
                "nb05-write-ack",
                "    if self.quorum_reached(p):\n        self.answer(ctx, p, ok=True, versions=p.versions)\n",
                "    self.answer(ctx, p, ok=True, versions=p.versions)\n",
            )
        ],
        "forgetting read repair": [
            (
                "nb05-read-repair",
                "    for node, versions in p.replies.items():\n"
                "        if node in p.home and not self.same(versions, p.merged):\n"
                "            ctx.send(node, ReadRepair(p.key, p.merged))\n",
                "    pass\n",
            )
        ],
        "last writer wins instead of siblings": [
            (
                "nb05-newest",
                "    return tuple(v for v in kept if not any(w.supersedes(v) for w in kept))\n",
                "    return (max(kept, key=lambda v: v.timestamp),) if kept else ()\n",
            )
        ],
        "stand-ins not counted": [
            (
                "nb05-quorum-reached",
                "    return len(p.answered) >= p.need\n",
                "    return len(p.answered & set(p.home)) >= p.need\n",
            )
        ],
        "stand-ins counted as home replicas": [
            (
                "nb05-stand-ins",
                "ctx.send(stand_in, ReplicaWrite(p.req, p.key, p.versions, hint_for=home))",
                "ctx.send(stand_in, ReplicaWrite(p.req, p.key, p.versions))",
            )
        ],
        "hints never handed off": [
            (
                "nb05-hand-off",
                "    for (home, key), versions in self.hints.items():\n"
                "        ctx.send(home, Handoff(key, versions))\n",
                "    pass\n",
            )
        ],
    },
)

SAGA = NotebookLab(
    notebook=ROOT / "notebooks" / "15-sagas.ipynb",
    imports="from labkit.labs.saga import",
    class_cell="class MySagas(SagaOrchestrator):",
    class_name="MySagas",
    rules=(
        "nb15-apply",
        "nb15-send-step",
        "nb15-step-reply",
        "nb15-step-timeout",
        "nb15-compensate-next",
        "nb15-send-compensation",
        "nb15-compensation-reply",
        "nb15-compensation-timeout",
        "nb15-resume",
    ),
    parts=("nb15-steps", "nb15-compensation", "nb15-recovery"),
    bugs={
        "not logging before acting": [
            (
                "nb15-send-step",
                "    self.write(ctx, saga, LogRecord(LogKind.STEP_SENT, step, attempt))\n"
                '    self.send(ctx, saga, step, Op.DO, key=f"{saga.saga_id}/{step}")\n',
                '    self.send(ctx, saga, step, Op.DO, key=f"{saga.saga_id}/{step}")\n'
                "    self.write(ctx, saga, LogRecord(LogKind.STEP_SENT, step, attempt))\n",
            )
        ],
        "compensating in forward order": [
            (
                "nb15-compensate-next",
                "self.send_compensation(ctx, saga, saga.to_undo[-1], 1)",
                "self.send_compensation(ctx, saga, saga.to_undo[0], 1)",
            )
        ],
        "compensating steps that never ran": [
            (
                "nb15-apply",
                "    elif kind is LogKind.STEP_FAILED:\n        saga.phase = Phase.COMPENSATING\n",
                "    elif kind is LogKind.STEP_FAILED:\n        saga.phase = Phase.COMPENSATING\n"
                "        saga.to_undo = list(range(len(self.definition)))\n",
            )
        ],
        "re-running a completed step after recovery": [
            (
                "nb15-resume",
                "            self.send_step(ctx, saga, saga.step, saga.attempt + 1)\n",
                "            self.send_step(ctx, saga, 0, saga.attempt + 1)\n",
            )
        ],
        "not idempotent": [
            (
                "nb15-send-step",
                'key=f"{saga.saga_id}/{step}")',
                'key=f"{saga.saga_id}/{step}/{attempt}")',
            )
        ],
    },
)
