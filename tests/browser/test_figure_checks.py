"""The figure checks catch what they claim to catch: planted figures, rendered in Chromium."""

from __future__ import annotations

from tests.browser.figure_checks import figure_problems


def _show(page, fig, tmp_path) -> None:
    # The checks look at figures inside a notebook, as JupyterLab lays them out.
    html = tmp_path / "figure.html"
    body = fig.to_html(include_plotlyjs=True, full_html=False, default_width="100%")
    html.write_text(
        f"<html><body><div class='jp-Notebook'><div class='jp-OutputArea-output'>{body}</div></div></body></html>"
    )
    page.goto(html.as_uri())
    page.wait_for_selector(".main-svg")


def test_overlapping_labels_are_reported_and_spread_ones_are_not(page, tmp_path):
    import plotly.graph_objects as go

    crowded = go.Figure(go.Scatter(x=[0.100, 0.103, 0.6], y=["keys"] * 3, mode="markers+text",
                                   text=["k14", "k07", "k20"], textposition="top center"))  # fmt: skip
    crowded.update_layout(title="crowded", showlegend=False)
    crowded.update_xaxes(range=[0, 1])
    _show(page, crowded, tmp_path)
    problems = figure_problems(page)
    assert any('"k14" overlaps "k07"' in p for p in problems), problems
    assert not any("k20" in p for p in problems), problems

    crowded.data[0].x = (0.1, 0.3, 0.6)
    _show(page, crowded, tmp_path)
    assert not any("overlaps" in p for p in figure_problems(page))


def test_a_label_at_the_edge_of_a_stale_read_figure_stays_inside_its_plot(page, tmp_path):
    # The write a read missed is the first operation in view, with a long label: it was placed for a plot
    # 900 px wide, but the legend leaves about 700, and the label was cut (seen on a real etcd run, nb 13).
    from labkit.linearizability import KVModel, Operation, check
    from labkit.viz.linearizability import stale_read_figure

    key = "ser13-a"
    history = [
        Operation("s13w@m1", 14.060, 14.067, ("append", key, "s13w@m1.181;"), None),
        Operation("s13w@m1", 14.080, 14.200, ("append", key, "s13w@m1.182;"), None),
        Operation("s13r@m3", 14.073, 14.075, ("get", key), ""),
        Operation("s13r@m3", 14.090, 14.095, ("get", key), ""),
    ]
    page.set_viewport_size({"width": 1000, "height": 800})
    _show(page, stale_read_figure(check(history, KVModel())), tmp_path)
    assert not any("is cut at the edge" in p for p in figure_problems(page)), figure_problems(page)
