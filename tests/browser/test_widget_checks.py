"""The widget checks catch what they claim to catch: planted controls, rendered in Chromium."""

from __future__ import annotations

from tests.browser.widget_checks import cut_controls

# JupyterLab's own rule for a toggle button: a fixed width, the overflow hidden behind an ellipsis.
BUTTON = "overflow:hidden;white-space:nowrap;text-overflow:ellipsis;width:{width};font:13px sans-serif"


def _show(page, tmp_path, width: str) -> None:
    html = tmp_path / "widget.html"
    button = f"<button style='{BUTTON.format(width=width)}'>total order (sequencer)</button>"
    html.write_text(
        f"<html><body><div class='jp-Notebook'><div class='jupyter-widgets'>{button}</div></div></body></html>"
    )
    page.goto(html.as_uri())


def test_a_button_too_narrow_for_its_label_is_reported_and_a_wide_one_is_not(page, tmp_path):
    # 03's broadcast widget gave its buttons 150 px: "total order (sequencer)" read "total order (seque...".
    _show(page, tmp_path, "100px")
    assert any('"total order (sequencer)" is cut' in p for p in cut_controls(page)), cut_controls(page)
    _show(page, tmp_path, "auto")
    assert cut_controls(page) == []
