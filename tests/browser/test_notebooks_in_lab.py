"""Every notebook, the way a learner meets it: JupyterLab in a real browser.

For each notebook (discovered, not listed), the learner's untouched student
version (as ``make lab`` writes it): open it with a fresh kernel, Run All,
wait for the kernel to go idle, then check that every code cell ran (Run All
went past every unanswered exercise to the last cell), no cell shows an
error or anything on stderr (warnings too) except the exercise cells, whose
only error is the short one of an unanswered exercise, every plotly figure
rendered with data, and every widget view rendered. Then drive its widgets
as described in ``interactions.py`` and check that a figure changed and no
error appeared. Every figure must also be readable (``figure_checks.py``), and every widget
button, label and readout show its whole text (``widget_checks.py``), after Run All and after
each widget step.
"""

from __future__ import annotations

import contextlib
import json
import re
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.figure_checks import figure_problems
from tests.browser.interactions import INTERACTIONS
from tests.browser.lab import NOTEBOOKS
from tests.browser.widget_checks import cut_controls

NOTEBOOK_PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
TIMEOUT_MS = 60_000
# What an untouched exercise may show: one line, either the stub's NotImplementedError
# or the verdict of labkit.grading. Never a traceback (through labkit/grading.py or the simulator).
EXERCISE_ERROR = re.compile(
    r"^(NotImplementedError.*: not written yet|ExerciseFailed: \d+ of \d+ checks failed)", re.M
)

# Per-cell state as the page shows it. Prompts read "[7]:" once run,
# "[*]:" while queued or running and "[ ]:" if never run.
CELL_STATE_JS = """
() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(cell => {
  const prompt = cell.querySelector('.jp-InputArea-prompt');
  const outputs = Array.from(cell.querySelectorAll('.jp-OutputArea-output'));
  // Errors and stderr streams (warnings too) both render with this mime type.
  const errors = outputs
    .filter(o => o.getAttribute('data-mime-type') === 'application/vnd.jupyter.stderr')
    .map(o => o.innerText);
  const widgetProblems = outputs
    .map(o => o.innerText)
    .filter(t => t.includes('Loading widget...') || t.includes('Error displaying widget'));
  const labkitErrors = Array.from(cell.querySelectorAll('.labkit-widget-error')).map(e => e.innerText);
  return {prompt: prompt ? prompt.innerText.trim() : '', errors, widgetProblems, labkitErrors};
})
"""

# Every plotly figure in the page with a digest of what it shows.
FIGURES_JS = """
() => {
 const hash = text => { let h = 0; for (const c of text) h = (h * 31 + c.charCodeAt(0)) | 0; return h; };
 return Array.from(document.querySelectorAll('.jp-Notebook .js-plotly-plot')).map(el => ({
  inWidget: !!el.closest('.jupyter-widgets'),
  traces: (el.data || []).length,
  rendered: !!el.querySelector('.main-svg'),
  digest: JSON.stringify([
    (el.layout && el.layout.title && (el.layout.title.text || el.layout.title)) || '',
    (el.data || []).map(d => [d.name, (d.x || []).length, (d.y || []).length,
      Array.from(d.x || []).reduce((a, v) => a + (typeof v === 'number' ? v : 0), 0).toFixed(6),
      hash(JSON.stringify(Array.from(d.y || []).filter(v => typeof v === 'string'))),
      hash(JSON.stringify([d.text || null, d.hovertext || null, (d.marker && d.marker.color) || null]))]),
    ((el.layout && el.layout.shapes) || []).length,
    hash(JSON.stringify(((el.layout && el.layout.annotations) || []).map(a => a.text))),
  ]),
 }));
}
"""

RUNNING_JS = """
() => {
  const prompts = Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt'));
  const busy = prompts.some(p => p.innerText.includes('*'));
  const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
  const idle = indicator ? indicator.getAttribute('data-status') === 'idle' : false;
  return prompts.length > 0 && !busy && idle;
}
"""


def _shutdown_kernels(lab) -> None:
    """Stop every session so the next notebook starts with a fresh kernel."""
    with urllib.request.urlopen(f"{lab.url}/api/sessions", timeout=10) as resp:
        sessions = json.loads(resp.read())
    for s in sessions:
        req = urllib.request.Request(f"{lab.url}/api/sessions/{s['id']}", method="DELETE")
        urllib.request.urlopen(req, timeout=30).close()


def _open(page, lab, name: str) -> None:
    # ?reset starts from an empty workspace, so no other notebook is reopened.
    page.goto(f"{lab.url}/lab/tree/{name}?reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=TIMEOUT_MS)
    # The kernel is ready when the status bar says so (not merely when nothing runs).
    page.wait_for_selector(".jp-StatusBar-TextItem:has-text('| Idle')", timeout=TIMEOUT_MS)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=TIMEOUT_MS)


def _run_all(page) -> None:
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
    # Run All marks every code cell as queued at once; wait until none is.
    page.wait_for_function(RUNNING_JS, timeout=10 * TIMEOUT_MS, polling=250)


def _exercise_cells(path: Path) -> tuple[set[int], set[int]]:
    """Indices (among code cells) of the cells tagged raises-exception, and of the graded test cells."""
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    tagged = {i for i, c in enumerate(cells) if "raises-exception" in c.get("metadata", {}).get("tags", [])}
    graded = {i for i, c in enumerate(cells) if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    return tagged, graded


def _problems(page, exercises: set[int]) -> list[str]:
    out = []
    for i, cell in enumerate(page.evaluate(CELL_STATE_JS)):
        for err in cell["errors"]:
            if i in exercises and EXERCISE_ERROR.search(err) and len(err.strip().splitlines()) == 1:
                continue  # an unanswered exercise, reported in one line
            kind = "exercise cell" if i in exercises else "code cell"
            out.append(f"{kind} {i}: error or stderr output:\n{err[-1500:]}")
        for msg in cell["widgetProblems"]:
            out.append(f"code cell {i}: widget did not render: {msg[:200]}")
        for msg in cell["labkitErrors"]:
            out.append(f"code cell {i}: widget reported: {msg[:300]}")
    return out


def _figure_digests(page) -> list[str]:
    return [f["digest"] for f in page.evaluate(FIGURES_JS)]


@pytest.mark.parametrize("nb", NOTEBOOK_PATHS, ids=lambda p: p.stem)
def test_student_notebook_runs_all_in_jupyterlab(lab, page, nb: Path):
    assert nb.stem in INTERACTIONS, (
        f"tests/browser/interactions.py has no entry for {nb.stem}: add "
        f'"{nb.stem}": [...] with one step per kind of widget control (or [] if it has no interactive figure)'
    )
    current_step = None
    exercises, tests = _exercise_cells(lab.root / nb.name)
    try:
        _open(page, lab, nb.name)
        _run_all(page)
        cells = page.evaluate(CELL_STATE_JS)
        not_run = [i for i, c in enumerate(cells) if not c["prompt"].strip("[]: ").isdigit()]
        problems = _problems(page, exercises)
        assert not problems, "\n".join(problems)
        assert not not_run, (
            f"code cells {not_run} did not run (prompts: {[cells[i]['prompt'] for i in not_run]})"
        )
        # Untouched, every test cell failed, and Run All still went on to the end.
        quiet = sorted(i for i in tests if not any(EXERCISE_ERROR.search(e) for e in cells[i]["errors"]))
        assert not quiet, f"test cells {quiet} of the untouched student version show no exercise error"

        # Widget views draw after the kernel is idle; on a busy machine that takes a while.
        with contextlib.suppress(PlaywrightTimeout):
            page.wait_for_function(
                "() => (" + FIGURES_JS + ")().every(f => f.traces && f.rendered)",
                timeout=TIMEOUT_MS,
                polling=250,
            )
        figures = page.evaluate(FIGURES_JS)
        empty = [i for i, f in enumerate(figures) if not (f["traces"] and f["rendered"])]
        assert not empty, f"plotly figures {empty} rendered without data"
        unreadable = figure_problems(page) + cut_controls(page)
        assert not unreadable, "\n".join(unreadable)
        widget_figures = [f for f in figures if f["inWidget"]]
        steps = INTERACTIONS[nb.stem]
        if widget_figures:
            assert steps, f"{nb.stem} has interactive figures: add steps for its controls in interactions.py"

        if steps:
            # Widget updates from the last cells may still be arriving: start once
            # the figures have stopped changing for a second.
            page.wait_for_function(
                "() => { const d = JSON.stringify((" + FIGURES_JS + ")().map(f => f.digest));"
                " if (window.__labkitDigest !== d) { window.__labkitDigest = d; window.__labkitSince = Date.now();"
                " return false; } return Date.now() - window.__labkitSince > 1000; }",
                timeout=TIMEOUT_MS,
                polling=200,
            )
        for step in steps:
            before = _figure_digests(page)
            current_step = step
            step.perform(page)
            if not getattr(step, "redraws", True):
                problems = _problems(page, exercises)
                assert not problems, f"after {step}:\n" + "\n".join(problems)
                continue
            # Wait until a figure changed, or stop early when the widget shows an error.
            page.wait_for_function(
                "before => { if (document.querySelector('.jp-Notebook .labkit-widget-error')) return true;"
                " const now = (" + FIGURES_JS + ")().map(f => f.digest);"
                " return JSON.stringify(now) !== JSON.stringify(before); }",
                arg=before,
                timeout=TIMEOUT_MS,
                polling=100,
            )
            problems = _problems(page, exercises) + figure_problems(page) + cut_controls(page)
            assert not problems, f"after {step}:\n" + "\n".join(problems)
    except Exception as exc:
        if current_step is not None:
            exc.add_note(f"while checking the widget step {current_step}")
        raise
    finally:
        _shutdown_kernels(lab)


def test_contents_links_open_every_notebook(lab, page):
    _open(page, lab, "00-welcome.ipynb")
    # JupyterLab resolves relative links to /files/<name>?_xsrf=... and opens them in a tab on click.
    hrefs = page.evaluate(
        "() => Array.from(document.querySelectorAll('.jp-Notebook .jp-RenderedMarkdown a'))"
        ".map(a => decodeURIComponent(new URL(a.href, location.href).pathname))"
    )
    linked = {h.rsplit("/", 1)[-1] for h in hrefs if h.endswith(".ipynb")}
    others = [p.name for p in NOTEBOOK_PATHS if not p.name.startswith("00")]
    assert set(others) <= linked, f"00-welcome does not link to {sorted(set(others) - linked)}"
    try:
        for name in others:
            page.locator(f".jp-Notebook .jp-RenderedMarkdown a[href*='/files/{name}']").first.click()
            current = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current", has_text=name)
            current.first.wait_for(timeout=TIMEOUT_MS)
            page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for(timeout=TIMEOUT_MS)
            # Back to the contents tab for the next link.
            page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="00-welcome").first.click()
    finally:
        _shutdown_kernels(lab)


# Whatever nbgrader adds to JupyterLab: its menu, the Validate button, the Create Assignment panel.
NBGRADER_UI_JS = """
() => [
  ...Array.from(document.querySelectorAll('.lm-MenuBar-itemLabel')).map(e => e.innerText)
     .filter(t => /nbgrader/i.test(t)).map(t => 'menu ' + t),
  ...Array.from(document.querySelectorAll('.jp-NotebookPanel-toolbar .jp-Toolbar-item'))
     .filter(e => /validate/i.test(e.innerText)).map(e => 'toolbar ' + e.innerText.trim()),
  ...Array.from(document.querySelectorAll('.lm-TabBar-tab'))
     .filter(e => /nbgrader/i.test((e.getAttribute('data-id') || '') + (e.getAttribute('title') || '')))
     .map(e => 'panel ' + e.getAttribute('title')),
]
"""


def _status(url: str) -> int:
    import urllib.error

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_learner_sees_no_nbgrader_and_the_teacher_does(lab, instructor_lab, page):
    found = {}
    for who, server in (("learner", lab), ("instructor", instructor_lab)):
        _open(page, server, "00-welcome.ipynb")
        page.wait_for_selector(".jp-NotebookPanel-toolbar .jp-Toolbar-item", timeout=TIMEOUT_MS)
        found[who] = page.evaluate(NBGRADER_UI_JS)
        found[who + " formgrader"] = _status(f"{server.url}/formgrader")
        _shutdown_kernels(server)
    assert found["learner"] == [], f"the learner's JupyterLab shows nbgrader: {found['learner']}"
    assert found["learner formgrader"] == 404
    # The same page for the teacher has them: the check above can fail.
    assert any(x.startswith("toolbar") for x in found["instructor"]), found["instructor"]
    assert any(x.startswith("panel") for x in found["instructor"]), found["instructor"]
    assert found["instructor formgrader"] in (200, 302)
