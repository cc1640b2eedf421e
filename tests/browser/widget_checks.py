"""What makes a widget's controls readable, checked on the rendered page.

* the text of a button, a label or a readout is not cut: a control narrower than
  its text shows "total order (seque..." and the learner cannot tell what it does.
  The browser measures it: an element whose content is wider than its box
  (``scrollWidth > clientWidth``) has had its text clipped or ellipsised.
"""

from __future__ import annotations

from typing import Any

CUT_CONTROLS_JS = r"""
() => Array.from(document.querySelectorAll(
    '.jp-Notebook .jupyter-widgets button, .jp-Notebook .jupyter-widgets .widget-label,'
    + ' .jp-Notebook .jupyter-widgets .widget-readout'))
  .filter(e => e.offsetParent !== null && (e.innerText || '').trim() && e.scrollWidth > e.clientWidth + 1)
  .map(e => `the widget text "${e.innerText.trim()}" is cut (${e.scrollWidth} px of text in ${e.clientWidth} px)`)
"""


def cut_controls(page: Any) -> list[str]:
    """Every widget button, label or readout on the page whose text does not fit."""
    return page.evaluate(CUT_CONTROLS_JS)
