"""What makes a figure readable, checked on every plotly figure the page shows.

Each rule is measured on the rendered page (bounding boxes of the drawn
elements, the axis ranges plotly settled on), so it holds for what a learner
sees, at the width the notebook gives the figure:

* the figure uses the width of its output area (not plotly's 700-pixel default);
* the title, the legend and the axis titles do not overlap, and the legend
  covers no plot area;
* text labels drawn by traces stay inside their plot area (not cut at its edge);
* no two text labels (of traces or annotations) print over each other;
* a time axis (an x axis whose title says "time") is not mostly empty: the
  data spans at least a third of the range it is drawn on;
* two line traces of the same width on the same axes do not draw exactly the
  same points (one would hide the other);
* in a figure of several panels, a colour means one thing: traces of
  different panels that share a colour name the same thing first ("A p99",
  "A queue").
"""

from __future__ import annotations

from typing import Any

FIGURE_PROBLEMS_JS = r"""
() => {
  const out = [];
  const box = e => { const b = e.getBoundingClientRect(); return {l: b.left, t: b.top, r: b.right, b: b.bottom}; };
  const meets = (a, b, pad = 1) => a.l < b.r - pad && b.l < a.r - pad && a.t < b.b - pad && b.t < a.b - pad;
  const figures = Array.from(document.querySelectorAll('.jp-Notebook .js-plotly-plot'));
  figures.forEach((el, i) => {
    const layout = el._fullLayout, data = el._fullData;
    if (!layout || !data) return;
    const name = `figure ${i} ("${(layout.title && layout.title.text) || ''}")`;
    const area = el.closest('.jp-OutputArea-output') || el.parentElement, svg = el.querySelector('.main-svg');
    const width = e => box(e).r - box(e).l;
    if (area && svg && width(svg) < 0.9 * width(area))
      out.push(`${name}: ${Math.round(width(svg))} px wide in an output area of ${Math.round(width(area))} px`);
    const named = [];
    const title = el.querySelector('.gtitle');
    if (title && title.textContent) named.push(['title', box(title)]);
    const legend = el.querySelector('.legend .bg');
    if (legend && layout.showlegend !== false) named.push(['legend', box(legend)]);
    el.querySelectorAll('[class^="g-x"][class$="title"] text, [class^="g-y"][class$="title"] text').forEach(t => {
      if (t.textContent) named.push([`axis title "${t.textContent}"`, box(t)]);
    });
    for (let a = 0; a < named.length; a++)
      for (let b = a + 1; b < named.length; b++)
        if (meets(named[a][1], named[b][1])) out.push(`${name}: the ${named[a][0]} overlaps the ${named[b][0]}`);
    const plots = Array.from(el.querySelectorAll('.nsewdrag')).map(box);
    if (legend && layout.showlegend !== false && plots.some(p => meets(box(legend), p, 2)))
      out.push(`${name}: the legend covers a plot area`);
    // Text labels inside their plot area (x only: labels above and below bars may use the margin).
    el.querySelectorAll('.textpoint text').forEach(t => {
      const b = box(t), mid = (b.t + b.b) / 2;
      const home = plots.find(p => mid >= p.t - 40 && mid <= p.b + 40 && b.r > p.l && b.l < p.r);
      if (t.textContent && home && (b.l < home.l - 2 || b.r > home.r + 2))
        out.push(`${name}: the label "${t.textContent}" is cut at the edge of its plot`);
    });
    // No two labels (trace text, annotations) print over each other.
    const texts = Array.from(el.querySelectorAll('.textpoint text, .annotation-text'))
      .filter(t => t.textContent.trim()).map(t => [t.textContent.trim(), box(t)]);
    for (let a = 0; a < texts.length; a++)
      for (let b = a + 1; b < texts.length; b++)
        if (meets(texts[a][1], texts[b][1])) out.push(`${name}: the label "${texts[a][0]}" overlaps "${texts[b][0]}"`);
    // Per x axis: the numeric x extent of the visible traces against the axis range.
    const extent = {};
    data.forEach(d => {
      if (d.visible !== true || !d.x || d.type === 'bar' || d.type === 'sankey') return;
      const xs = Array.from(d.x).filter(v => typeof v === 'number' && isFinite(v));
      if (!xs.length) return;
      const ax = d.xaxis || 'x';
      const e = extent[ax] || (extent[ax] = [Infinity, -Infinity]);
      e[0] = Math.min(e[0], ...xs); e[1] = Math.max(e[1], ...xs);
    });
    Object.entries(extent).forEach(([ax, [lo, hi]]) => {
      const axis = layout['xaxis' + ax.slice(1)];
      const titled = axis && axis.title && axis.title.text;
      if (!axis || axis.type !== 'linear' || !axis.range || !/time/i.test(titled || '')) return;
      const [a, b] = axis.range;
      const seen = Math.min(hi, b) - Math.max(lo, a);
      if (b > a && hi > lo && seen < (b - a) / 3)
        out.push(`${name}: the data (x from ${lo.toPrecision(3)} to ${hi.toPrecision(3)}) fills under a third of the x axis ${ax} (${a.toPrecision(3)} to ${b.toPrecision(3)})`);
    });
    // Lines drawing exactly the same points on the same axes.
    const lines = data.filter(d => d.visible === true && d.type === 'scatter' && (d.mode || '').includes('lines')
                                   && !d.stackgroup && d.x && d.x.length > 1
                                   && Array.from(d.y || []).some(v => typeof v === 'number'));
    // (A thin line on a wide band is a deliberate way to show both, so the line width is part of the key.)
    const key = d => JSON.stringify([d.xaxis, d.yaxis, d.line && d.line.width, Array.from(d.x), Array.from(d.y || [])]);
    const seenLines = {};
    lines.forEach(d => {
      const k = key(d);
      if (seenLines[k]) out.push(`${name}: "${seenLines[k]}" and "${d.name}" draw the same points, one hides the other`);
      else seenLines[k] = d.name;
    });
    // One colour, one meaning, across panels.
    const byColor = {};
    data.forEach(d => {
      const c = d._input && d._input.line && d._input.line.color;  // chosen, not plotly's colour cycle
      if (d.visible !== true || d.showlegend === false || typeof c !== 'string' || !d.name) return;
      (byColor[c] = byColor[c] || []).push(d);
    });
    Object.values(byColor).forEach(ds => {
      for (let a = 0; a < ds.length; a++)
        for (let b = a + 1; b < ds.length; b++) {
          const p = ds[a], q = ds[b];
          if (p.yaxis !== q.yaxis && p.name.split(' ')[0] !== q.name.split(' ')[0])
            out.push(`${name}: "${p.name}" and "${q.name}" share a colour in different panels`);
        }
    });
  });
  return out;
}
"""


def figure_problems(page: Any) -> list[str]:
    """Every broken rule of the module docstring, on the figures the page shows now."""
    return page.evaluate(FIGURE_PROBLEMS_JS)
