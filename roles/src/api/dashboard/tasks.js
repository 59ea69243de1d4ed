// The tasks, live: counts by state and the newest tasks, read with `task/ls` incrementally
// (finished tasks do not change, so only the ones after the oldest unfinished are re-read),
// and the form that submits one with `task/submit`.

import { call, ApiError } from './api.js';
import { el, fillRows, ident, badge, bar, duration, when } from './format.js';

/** Task kinds, as `task/submit` names them; those that need an input CID are marked. */
const KINDS = [
  ['bench.hash', false, 'hash throughput over `size` bytes'],
  ['bench.store', false, 'block store write and read over `size` bytes'],
  ['bench.fetch', true, 'fetch the input DAG over the network'],
  ['dag.stat', true, 'count the input DAG\'s blocks and bytes'],
  ['noop', false, 'nothing: measures dispatch'],
  ['exec', false, 'run an allowed `program`'],
  ['sql', true, 'one read-only `query` over the input datasets'],
];
const STATES = ['queued', 'assigned', 'running', 'succeeded', 'failed', 'cancelled'];
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);
const TONE = { queued: '', assigned: 'info', running: 'info', succeeded: 'ok', failed: 'bad', cancelled: 'muted' };
/** Tasks shown in the table. */
const SHOWN = 100;
/** One `task/ls` page. */
const PAGE = 1000;
/** The whole list is read again this often (a new master has its own table). Milliseconds. */
const RESYNC_MS = 60_000;

const cache = {
  frontier: null, // every task up to this seq is finished and counted in `done`
  done: {}, // state → count, of those tasks
  recent: new Map(), // seq → record, the newest SHOWN
  syncedAt: 0,
  highlight: null, // the id of the task this page submitted last
};

function reset() {
  cache.frontier = null;
  cache.done = {};
  cache.recent = new Map();
  cache.syncedAt = Date.now();
}

/** Reads the tasks after the frontier; returns the counts of the unfinished part. */
async function sync() {
  if (Date.now() - cache.syncedAt > RESYNC_MS) reset();
  const live = {};
  let after = cache.frontier;
  let advancing = true;
  for (;;) {
    const page = await call('task/ls', { limit: PAGE, after: after ?? undefined });
    for (const t of page.Tasks) {
      if (advancing && TERMINAL.has(t.State)) {
        cache.done[t.State] = (cache.done[t.State] || 0) + 1;
        cache.frontier = t.Seq;
      } else {
        advancing = false;
        live[t.State] = (live[t.State] || 0) + 1;
      }
      cache.recent.set(t.Seq, t);
    }
    if (cache.recent.size > SHOWN) {
      const keep = [...cache.recent.keys()].sort((a, b) => a - b).slice(-SHOWN);
      const kept = new Map(keep.map((k) => [k, cache.recent.get(k)]));
      cache.recent = kept;
    }
    if (page.Next === null || page.Next === undefined || page.Tasks.length === 0) break;
    after = page.Next;
  }
  const counts = {};
  for (const s of STATES) counts[s] = (cache.done[s] || 0) + (live[s] || 0);
  return counts;
}

function took(t) {
  if (t.FinishedMs && t.StartedMs) return duration(t.FinishedMs - t.StartedMs);
  if (t.StartedMs && t.State === 'running') return `${duration(Date.now() - t.StartedMs)}…`;
  return '–';
}

function outcome(t) {
  if (t.LastError && t.State !== 'succeeded') {
    return el('span', { class: 'error-text', title: t.LastError }, t.LastError);
  }
  const figures = t.Figures || {};
  const parts = [];
  if (figures.MBps !== undefined) parts.push(`${figures.MBps.toFixed(1)} MB/s`);
  if (figures.WriteMBps !== undefined) parts.push(`write ${figures.WriteMBps.toFixed(1)} MB/s`);
  if (figures.ReadMBps !== undefined) parts.push(`read ${figures.ReadMBps.toFixed(1)} MB/s`);
  return el('span', {}, t.Result ? ident(t.Result, 6) : null,
    parts.length ? el('span', { class: 'figures' }, ` ${parts.join(' · ')}`) : null);
}

function taskRow(t) {
  const params = (t.Params || []).map(([k, v]) => `${k}=${v}`).join(' ');
  const progress = t.State === 'succeeded' ? 1 : t.ProgressPermille / 1000;
  return el('tr', { dataset: { task: t.Id, state: t.State },
    class: t.Id === cache.highlight ? 'highlight' : null },
  el('td', {}, ident(t.Id, 6)),
  el('td', {}, el('strong', {}, t.Kind), params ? el('div', { class: 'muted small' }, params) : null),
  el('td', {}, badge(t.State, TONE[t.State]),
    t.Attempt > 1 ? el('span', { class: 'muted small' }, ` attempt ${t.Attempt}`) : null),
  el('td', {}, TERMINAL.has(t.State) && t.State !== 'succeeded'
    ? el('span', { class: 'muted' }, '–')
    : bar(progress, `${Math.round(progress * 100)} %`, t.State === 'succeeded' ? 'ok' : 'info')),
  el('td', {}, t.Worker ? ident(t.Worker, 6) : el('span', { class: 'muted' }, '–')),
  el('td', { class: 'small' }, when(t.SubmittedMs)),
  el('td', { class: 'num' }, took(t)),
  el('td', { class: 'outcome' }, outcome(t)),
  );
}

function renderCounters(counts) {
  const box = document.getElementById('task-counters');
  const groups = [
    ['queued', counts.queued + counts.assigned, ''],
    ['running', counts.running, 'info'],
    ['done', counts.succeeded, 'ok'],
    ['failed', counts.failed, 'bad'],
    ['cancelled', counts.cancelled, 'muted'],
  ];
  box.replaceChildren(...groups.map(([name, n, tone]) =>
    el('div', { class: `counter ${tone}`, dataset: { counter: name } },
      el('span', { class: 'n' }, String(n)), el('span', { class: 'label' }, name))));
}

function lines(text) {
  return text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
}

async function submit(form, ctx) {
  const status = document.getElementById('submit-status');
  const data = new FormData(form);
  const kind = data.get('kind');
  const args = [['kind', kind]];
  const inputs = lines(data.get('inputs') || '');
  for (const cid of inputs) args.push(['input', cid]);
  for (const p of (data.get('params') || '').split('\n').map((s) => s.trim()).filter(Boolean)) {
    if (!p.includes('=')) {
      status.className = 'form-status error';
      status.textContent = `“${p}” is not key=value`;
      return;
    }
    args.push(['param', p]);
  }
  const needsInput = KINDS.find(([k]) => k === kind)?.[1];
  if (needsInput && inputs.length === 0) {
    status.className = 'form-status error';
    status.textContent = `${kind} needs at least one input CID`;
    return;
  }
  if (data.get('target')) args.push(['target', data.get('target')]);
  if (data.get('timeout')) args.push(['timeout', data.get('timeout')]);
  if (data.get('attempts')) args.push(['max-attempts', data.get('attempts')]);
  const button = form.querySelector('button');
  button.disabled = true;
  status.className = 'form-status';
  status.textContent = 'submitting…';
  try {
    const answer = await call('task/submit', args);
    cache.highlight = answer.Id;
    status.className = 'form-status ok';
    status.replaceChildren(answer.New ? 'Submitted ' : 'Already submitted: ',
      el('code', { id: 'submitted-id' }, answer.Id));
    ctx.refreshNow();
  } catch (e) {
    status.className = 'form-status error';
    status.textContent = e instanceof ApiError ? e.message : String(e);
  } finally {
    button.disabled = false;
  }
}

function fillTargets(select, peers) {
  const chosen = select.value;
  const workers = peers.filter((p) => p.Role === 'worker');
  select.replaceChildren(el('option', { value: '' }, 'any'),
    ...workers.map((p) => el('option', { value: p.Peer },
      `…${p.Peer.slice(-8)} · ${(p.Capacity && p.Capacity.Hardware) || ''}`)));
  if (workers.some((p) => p.Peer === chosen)) select.value = chosen;
}

export const tasksSection = {
  title: 'Tasks',
  init(ctx) {
    const kind = document.getElementById('submit-kind');
    kind.replaceChildren(...KINDS.map(([k, , what]) => el('option', { value: k, title: what }, k)));
    const form = document.getElementById('submit-form');
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      submit(form, ctx);
    });
    const target = document.getElementById('submit-target');
    ctx.onPeers.push((peers) => fillTargets(target, peers));
  },
  async refresh(ctx) {
    if (ctx.peers.length === 0) {
      // The form's worker list, once.
      call('cluster/peers').then((p) => {
        ctx.peers = p.Peers;
        for (const f of ctx.onPeers) f(p.Peers);
      }).catch(() => {});
    }
    const counts = await sync();
    renderCounters(counts);
    const shown = [...cache.recent.values()].sort((a, b) => b.Seq - a.Seq);
    fillRows(document.querySelector('#tasks tbody'), shown.map(taskRow), 8,
      'No task yet: submit one with the form.');
  },
};
