// Benchmark results from the benchmark database (`/api/v0/query` over the `results` view):
// one chart per kind and parameters, a line per hardware over time, each kind judged by its
// primary figure as `results compare` does (MB/s for the throughput benchmarks, duration
// for the others); under each kind, `results/compare` by hardware; and the regressions found.

import { call, sql } from './api.js';
import { el, num, when, duration } from './format.js';
import { timeChart, PALETTE } from './chart.js';

/** Rows read at most. */
const MAX_ROWS = 5000;
/** Charts drawn at most for one kind, the most recently active first. */
const MAX_CHARTS = 12;
/** Series per chart at most (one colour each). */
const MAX_SERIES = PALETTE.length;
const HARDWARE = "cpu_model || ' (' || cores || ' cores)'";

/** The figure a kind is judged by, as `roles/src/results` has it: column, unit, label. */
function figure(kind) {
  if (kind === 'bench.hash' || kind === 'bench.fetch') return ['mbps', 'MB/s', 'throughput'];
  if (kind === 'bench.store') return ['write_mbps', 'MB/s', 'write throughput'];
  return ['duration_ms', 'ms', 'duration'];
}

function rowsQuery(sinceMs) {
  const since = sinceMs ? `AND finished_at >= to_timestamp(${(Date.now() - sinceMs) / 1000})` : '';
  return `SELECT kind, param_key, ${HARDWARE} AS hardware, worker, task_id,
      epoch_ms(finished_at) AS t,
      CASE WHEN kind IN ('bench.hash', 'bench.fetch') THEN mbps
           WHEN kind = 'bench.store' THEN write_mbps
           ELSE duration_ms END AS v
    FROM results
    WHERE outcome = 'succeeded' ${since}
    ORDER BY finished_at DESC
    LIMIT ${MAX_ROWS}`;
}

/** Rows → charts: `[{kind, params, last, series: [{name, points}]}]`, newest first. */
function group(rows) {
  const charts = new Map();
  for (const r of rows) {
    if (r.v === null || r.v === undefined || !Number.isFinite(Number(r.v))) continue;
    const key = `${r.kind}\u0000${r.param_key}`;
    let c = charts.get(key);
    if (!c) {
      c = { kind: r.kind, params: r.param_key, last: 0, series: new Map(), points: 0 };
      charts.set(key, c);
    }
    const t = Number(r.t);
    c.last = Math.max(c.last, t);
    c.points += 1;
    if (!c.series.has(r.hardware)) c.series.set(r.hardware, []);
    const [, unit] = figure(r.kind);
    c.series.get(r.hardware).push({
      t,
      v: Number(r.v),
      label: `${num(r.v, 2)} ${unit} · ${when(t)}\n${r.hardware}\nworker …${r.worker.slice(-8)} · task ${r.task_id}`,
    });
  }
  const throughputFirst = (c) => (figure(c.kind)[1] === 'MB/s' ? 0 : 1);
  return [...charts.values()]
    .sort((a, b) => throughputFirst(a) - throughputFirst(b) || b.last - a.last)
    .map((c) => ({ ...c, series: [...c.series.entries()].map(([name, points]) => ({ name, points })) }));
}

function legend(series) {
  return el('ul', { class: 'legend' }, series.map((s, i) => {
    const swatch = el('span', { class: 'swatch' });
    swatch.style.background = PALETTE[i % PALETTE.length];
    return el('li', {}, swatch, s.name, el('span', { class: 'muted' }, ` · ${s.points.length}`));
  }));
}

function compareTable(answer, unit) {
  const names = answer.Columns.map((c) => c.Name);
  const at = (row, n) => row[names.indexOf(n)];
  return el('table', { class: 'compare' },
    el('thead', {}, el('tr', {}, ['hardware', 'runs', `median ${unit}`, 'p10', 'p90', 'min', 'max']
      .map((h) => el('th', {}, h)))),
    el('tbody', {}, answer.Rows.map((row) => el('tr', {},
      el('td', {}, at(row, 'group')),
      el('td', { class: 'num' }, num(at(row, 'n'), 0)),
      ...['median', 'p10', 'p90', 'min', 'max'].map((k) => el('td', { class: 'num' }, num(at(row, k), 2))),
    ))));
}

function chartCard(c) {
  const [, unit, label] = figure(c.kind);
  const shown = c.series.slice(0, MAX_SERIES);
  const card = el('article', { class: 'chart-card', dataset: { kind: c.kind, params: c.params } },
    el('header', {},
      el('h3', {}, c.kind, el('span', { class: 'muted' }, ` · ${label}`)),
      el('div', { class: 'muted small' }, c.params ? c.params : 'no parameters',
        ` · ${c.points} run${c.points === 1 ? "" : "s"} · latest ${when(c.last)}`)),
    timeChart(shown, { unit }),
    legend(shown));
  if (c.series.length > MAX_SERIES) {
    card.append(el('p', { class: 'muted small' }, `${c.series.length - MAX_SERIES} more hardware not drawn.`));
  }
  return card;
}

function regressionsBox(found) {
  const flagged = found.filter((r) => r.Regressed);
  if (flagged.length === 0) {
    return el('p', { class: 'muted', id: 'regressions' },
      found.length ? `No regression among ${found.length} series with enough history.`
        : 'Regressions are judged once a series has enough history.');
  }
  return el('div', { class: 'banner warn', id: 'regressions' },
    el('strong', {}, `${flagged.length} regression${flagged.length > 1 ? 's' : ''}: `),
    flagged.map((r) => el('div', {},
      `${r.Kind} ${r.Params || ''} on ${r.Hardware}: ${num(r.Latest, 2)} vs median ${num(r.Median, 2)} `,
      `(${num(r.WorsePct, 0)} % worse, task ${r.TaskId})`)));
}

export const resultsSection = {
  title: 'Results',
  init(ctx) {
    document.getElementById('results-since').addEventListener('change', () => ctx.refreshNow());
  },
  async refresh() {
    const since = Number(document.getElementById('results-since').value) || 0;
    const started = performance.now();
    const { rows, truncated } = await sql(rowsQuery(since));
    const charts = group(rows);
    const kinds = [...new Set(charts.map((c) => c.kind))];
    const [compares, found] = await Promise.all([
      Promise.all(kinds.map((k) => call('results/compare', { kind: k, by: 'cpu' }).catch(() => null))),
      call('results/regressions').catch(() => []),
    ]);
    const box = document.getElementById('charts');
    const note = document.getElementById('results-note');
    note.textContent = `${num(rows.length, 0)} results${truncated || rows.length === MAX_ROWS ? ' (the newest)' : ''}` +
      ` · read in ${duration(performance.now() - started)}`;
    if (charts.length === 0) {
      box.replaceChildren(el('p', { class: 'muted empty-results' },
        'No benchmark result yet. Submit a bench.hash task on the Tasks tab.'));
      return;
    }
    const parts = [regressionsBox(found)];
    for (const kind of kinds) {
      const own = charts.filter((c) => c.kind === kind).slice(0, MAX_CHARTS);
      const [, unit] = figure(kind);
      const compare = compares[kinds.indexOf(kind)];
      parts.push(el('section', { class: 'kind', dataset: { kind } },
        el('h2', {}, kind),
        el('div', { class: 'chart-grid' }, own.map(chartCard)),
        compare && compare.Rows.length
          ? el('details', { class: 'compare-box', open: true },
            el('summary', {}, 'By hardware, all parameters (results compare)'),
            compareTable(compare, unit))
          : null));
    }
    box.replaceChildren(...parts);
  },
};
