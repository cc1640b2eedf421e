"""Text written on bars reads at the figure's size, level, inside its bar: rendered in Chromium."""

from __future__ import annotations

# Each text shown on a bar: its font size, how tall it is drawn (plotly scales a text down to fit a
# narrow bar), whether it is turned, and whether it stays within its bar.
BAR_TEXTS_JS = r"""
() => Array.from(document.querySelectorAll('.point')).map(p => [p, p.querySelector('text.bartext')])
  .filter(([p, t]) => t && t.textContent && getComputedStyle(t).display !== 'none').map(([p, t]) => {
    const bar = p.querySelector('path').getBoundingClientRect(), b = t.getBoundingClientRect();
    return {text: t.textContent, size: parseFloat(getComputedStyle(t).fontSize), drawn: b.height,
            turned: /rotate\((?!0\))/.test(t.getAttribute('transform') || ''),
            inside: b.left >= bar.left - 0.5 && b.right <= bar.right + 0.5};
  })
"""


def test_terms_on_the_role_timeline_are_full_size_level_and_inside_their_stretch(page, tmp_path):
    # 10: a candidate's stretch of 3 ms had its "t2" shrunk to 5 pixels high.
    from labkit.raft import scenarios
    from labkit.viz.raft import role_timeline

    fig = role_timeline(scenarios.TwoAtOnce().run(), title="two at once")
    html = tmp_path / "figure.html"
    html.write_text(fig.to_html(include_plotlyjs=True, full_html=True, default_width="1000px"))
    page.goto(html.as_uri())
    page.wait_for_selector(".main-svg")
    texts = page.evaluate(BAR_TEXTS_JS)
    assert sorted(t["text"] for t in texts) == ["t1", "t1", "t2", "t2", "t2"]  # the terms that fit
    for t in texts:
        assert t["size"] >= 12 and t["drawn"] >= t["size"] and not t["turned"] and t["inside"], t
