"""A failure's reproduction line runs as printed when pasted into its lab notebook.

Each lab notebook (05, 09, 15) tells the learner to paste the line after ``reproduce:`` into a cell. The line
names the learner's class, the lab and the faults as ``Fault(...)``; everything it names must be defined by
the notebook's own import cell, or the pasted line stops at a NameError.
"""

from __future__ import annotations

import json

import pytest

from labkit.labs.core import Property, Violation
from labkit.labs.suite import Failure
from tests import lab_notebook_solutions, lab_solutions

LABS = {
    "09": (lab_solutions.NOTEBOOK, "from labkit.labs.raft import", lab_solutions.solution),
    "05": (lab_notebook_solutions.QUORUM.notebook, "from labkit.labs.quorum import",
           lab_notebook_solutions.QUORUM.solution),
    "15": (lab_notebook_solutions.SAGA.notebook, "from labkit.labs.saga import",
           lab_notebook_solutions.SAGA.solution),
}  # fmt: skip


@pytest.mark.parametrize("nb", sorted(LABS))
def test_the_reproduction_line_runs_in_the_namespace_of_the_notebooks_imports(nb):
    path, imports, solution = LABS[nb]
    cells = ["".join(c["source"]) for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    ns: dict = {}
    exec(next(src for src in cells if imports in src), ns)  # noqa: S102 - the notebook's own import cell
    node = solution()
    ns[node.__qualname__] = node  # the learner's class, defined in the notebook
    lab = next(v for k, v in ns.items() if k.endswith("_lab"))
    scenario = next(s for s in lab.scenarios if s.schedule(0))  # one whose schedule has faults
    failure = Failure(lab, node, scenario.name, 0, scenario.schedule(0), Violation(Property("p", "q"), "d"))
    assert "Fault(" in failure.reproduce
    replayed = eval(failure.reproduce, ns)  # noqa: S307 - the line the notebook tells the learner to paste
    assert replayed.faults == scenario.schedule(0) and replayed.seed == 0
