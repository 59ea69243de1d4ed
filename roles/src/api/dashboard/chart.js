// Charts as inline SVG: a time series chart with one line of points per series, and the
// header's sparkline.

const NS = 'http://www.w3.org/2000/svg';
/** Series colours, distinguishable and legible on white. */
export const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2',
  '#db2777', '#4b5563'];

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return node;
}

/** Round steps inside `lo`..`hi`, about `count` of them (with `cover`, up to the first at
 * or past `hi`, so that an axis reaches every value). */
function ticks(lo, hi, count, cover = false) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  const end = cover ? Math.ceil(hi / step - 1e-9) * step : hi;
  for (let v = Math.ceil(lo / step) * step; v <= end + step * 1e-9; v += step) out.push(v);
  return out;
}

function timeLabel(ms, span) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  const clock = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (span < 2 * 3600_000) return `${clock}:${pad(d.getSeconds())}`;
  if (span < 2 * 86_400_000) return clock;
  return `${d.getMonth() + 1}/${d.getDate()}`;
}

function shortNum(v) {
  const a = Math.abs(v);
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(0)}k`;
  if (a >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  if (a >= 10 || v === 0) return v.toFixed(0);
  return v.toPrecision(2);
}

/**
 * A time series chart. `series`: `[{name, points: [{t, v, label}]}]`, `t` in Unix ms;
 * `unit` names the y axis. Returns the `<svg>`.
 */
export function timeChart(series, { unit, width = 640, height = 260 } = {}) {
  const m = { top: 14, right: 16, bottom: 30, left: 56 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const all = series.flatMap((s) => s.points);
  let t0 = Math.min(...all.map((p) => p.t));
  let t1 = Math.max(...all.map((p) => p.t));
  if (t1 - t0 < 60_000) {
    // A single moment: a minute's window around it.
    t0 -= 30_000;
    t1 += 30_000;
  }
  const vmax = Math.max(...all.map((p) => p.v)) || 1;
  const yTicks = ticks(0, vmax * 1.05, 4, true);
  const vtop = yTicks[yTicks.length - 1] || vmax;
  const x = (t) => m.left + ((t - t0) / (t1 - t0)) * w;
  const y = (v) => m.top + h - (v / vtop) * h;

  const root = svg('svg', { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img',
    'aria-label': `${unit} over time, ${series.length} series, ${all.length} points` });
  const grid = svg('g', { class: 'grid' });
  for (const v of yTicks) {
    grid.append(svg('line', { x1: m.left, x2: m.left + w, y1: y(v), y2: y(v) }));
    grid.append(svg('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, shortNum(v)));
  }
  for (const t of ticks(t0, t1, 5)) {
    grid.append(svg('text', { x: x(t), y: m.top + h + 18, 'text-anchor': 'middle' },
      timeLabel(t, t1 - t0)));
  }
  grid.append(svg('text', { x: 12, y: m.top + h / 2, 'text-anchor': 'middle',
    transform: `rotate(-90 12 ${m.top + h / 2})`, class: 'axis-name' }, unit));
  grid.append(svg('line', { class: 'axis', x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h }));
  root.append(grid);

  series.forEach((s, i) => {
    const colour = PALETTE[i % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a.t - b.t);
    const g = svg('g', { class: 'series', 'data-series': s.name });
    if (pts.length > 1) {
      const d = pts.map((p, j) => `${j ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
      g.append(svg('path', { d, fill: 'none', stroke: colour, 'stroke-width': 1.5, 'stroke-opacity': 0.6 }));
    }
    for (const p of pts) {
      g.append(svg('circle', { class: 'point', cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3.5,
        fill: colour, 'data-value': p.v },
      svg('title', {}, p.label)));
    }
    root.append(g);
  });
  return root;
}

/** The header's sparkline of `[in, out]` rate samples. */
export function sparkline(target, samples) {
  const max = Math.max(1, ...samples.flat());
  const step = samples.length > 1 ? 120 / (samples.length - 1) : 0;
  const line = (k) => samples
    .map((s, i) => `${i ? 'L' : 'M'}${(i * step).toFixed(1)},${(23 - (s[k] / max) * 22).toFixed(1)}`)
    .join('');
  target.replaceChildren(
    svg('path', { d: line(0), class: 'in' }),
    svg('path', { d: line(1), class: 'out' }),
  );
}
