// Formatting and small DOM helpers shared by the sections.

/** An element: `el('td', {class: 'x', title: 't'}, child, 'text', ...)`. */
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the rows of a table body; `empty` is shown across `columns` when there are none. */
export function fillRows(tbody, rows, columns, empty) {
  if (rows.length === 0) {
    tbody.replaceChildren(el('tr', { class: 'empty' }, el('td', { colspan: columns }, empty)));
  } else {
    tbody.replaceChildren(...rows);
  }
}

/** Bytes in binary units: `1.5 GiB`. */
export function bytes(n) {
  if (n === null || n === undefined || !Number.isFinite(Number(n))) return '–';
  let v = Number(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(i === 0 || v >= 100 ? 0 : 1)} ${units[i]}`;
}

/** A rate in bytes per second. */
export function rate(n) {
  return `${bytes(n)}/s`;
}

/** A duration in milliseconds: `850 ms`, `12.3 s`, `4 min`, `2.5 h`, `3 d`. */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return '–';
  const v = Number(ms);
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(1)} s`;
  if (v < 3_600_000) return `${Math.round(v / 60_000)} min`;
  if (v < 86_400_000) return `${(v / 3_600_000).toFixed(1)} h`;
  return `${Math.round(v / 86_400_000)} d`;
}

/** How long ago a Unix-ms time was, from now. */
export function ago(unixMs) {
  if (!unixMs) return '–';
  return `${duration(Math.max(0, Date.now() - unixMs))} ago`;
}

/** A local date and time, to the second. */
export function when(unixMs) {
  if (!unixMs) return '–';
  const d = new Date(unixMs);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A number with at most `digits` decimals and thousands separators. */
export function num(v, digits = 1) {
  if (v === null || v === undefined || !Number.isFinite(Number(v))) return '–';
  return Number(v).toLocaleString('en-US', { maximumFractionDigits: digits });
}

/** A long identifier (peer id, CID) shown shortened; the whole in the text for search/copy. */
export function ident(id, keep = 8) {
  if (!id) return el('span', { class: 'muted' }, '–');
  const text = String(id);
  const short = text.length > keep * 2 + 1 ? `${text.slice(0, keep)}…${text.slice(-keep)}` : text;
  return el('code', { class: 'ident', title: text, dataset: { full: text } },
    el('span', { class: 'short', 'aria-hidden': 'true' }, short),
    el('span', { class: 'full' }, text));
}

/** A coloured label. */
export function badge(text, tone) {
  return el('span', { class: `badge ${tone || ''}` }, text);
}

/** A progress bar, `fraction` in 0..1, with a caption. */
export function bar(fraction, caption, tone) {
  const f = Math.max(0, Math.min(1, Number(fraction) || 0));
  const fill = el('span', { class: `fill ${tone || ''}` });
  fill.style.width = `${(f * 100).toFixed(1)}%`;
  return el('span', { class: 'bar', title: caption, role: 'progressbar',
    'aria-valuenow': Math.round(f * 100), 'aria-valuemin': 0, 'aria-valuemax': 100 },
  fill, el('span', { class: 'caption' }, caption));
}
