// The dashboard's shell: the tabs (#cluster, #pins, #tasks, #results), the header with this
// node's identity and transfer rates, and the refresh loop of the section in view.

import { call, ApiError } from './api.js';
import { el, rate, bytes } from './format.js';
import { peersSection, pinsSection } from './cluster.js';
import { tasksSection } from './tasks.js';
import { resultsSection } from './results.js';
import { sparkline } from './chart.js';

/** How often each section reloads while in view. Milliseconds. */
const SECTIONS = {
  cluster: { section: peersSection, every: 3000 },
  pins: { section: pinsSection, every: 5000 },
  tasks: { section: tasksSection, every: 1500 },
  results: { section: resultsSection, every: 15000 },
};
/** How often the transfer rates are read. Milliseconds. */
const BW_EVERY = 2000;
/** Samples of the rates kept for the sparkline. */
const BW_SAMPLES = 60;

const ctx = {
  peers: [], // the last `cluster/peers` answer, for the submit form's worker list
  onPeers: [],
};

let current = null;
let timer = null;
let generation = 0;

function banner(message) {
  const b = document.getElementById('banner');
  if (message) {
    b.textContent = message;
    b.hidden = false;
  } else {
    b.hidden = true;
  }
}

function stamp() {
  const d = new Date();
  document.getElementById('updated').textContent =
    `updated ${d.toLocaleTimeString('en-GB', { hour12: false })}`;
}

async function refresh(name, mine) {
  const { section, every } = SECTIONS[name];
  try {
    await section.refresh(ctx);
    if (mine !== generation) return;
    banner(null);
    stamp();
  } catch (e) {
    if (mine !== generation) return;
    banner(e instanceof ApiError ? `${section.title}: ${e.message}` : `${section.title}: ${e}`);
    console.warn(e);
  }
  if (mine !== generation) return;
  timer = setTimeout(() => refresh(name, mine), every);
}

function show(name) {
  if (!SECTIONS[name]) name = 'cluster';
  if (name === current) return;
  current = name;
  generation += 1;
  clearTimeout(timer);
  for (const s of document.querySelectorAll('main > section')) {
    s.hidden = s.dataset.section !== name;
  }
  for (const a of document.querySelectorAll('nav.tabs a')) {
    if (a.dataset.tab === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · ipfsbench`;
  refresh(name, generation);
}

/** Reloads the section in view now (after a submission, say). */
export function refreshNow() {
  if (!current) return;
  generation += 1;
  clearTimeout(timer);
  refresh(current, generation);
}
ctx.refreshNow = refreshNow;

async function nodeInfo() {
  const box = document.getElementById('node-info');
  try {
    const [id, master] = await Promise.all([
      call('id'),
      call('cluster/master').catch(() => null),
    ]);
    const role = master ? master.ThisNode : '';
    box.replaceChildren(
      el('span', { class: 'muted' }, 'node '),
      el('code', { title: id.ID, id: 'node-id' }, `${id.ID.slice(0, 12)}…${id.ID.slice(-6)}`),
      role ? el('span', { class: 'badge' }, role) : null,
      el('span', { class: 'muted' }, ` ${id.AgentVersion || ''}`),
    );
  } catch (e) {
    box.textContent = `node: ${e.message}`;
  }
}

const bwHistory = [];

async function bandwidth() {
  const text = document.getElementById('bw-text');
  const spark = document.getElementById('bw-spark');
  try {
    const bw = await call('stats/bw');
    const fields = ['TotalIn', 'TotalOut', 'RateIn', 'RateOut'];
    if (!fields.every((f) => Number.isFinite(Number(bw[f])))) {
      throw new Error('unexpected answer');
    }
    text.className = '';
    text.replaceChildren(
      el('span', { title: `received in all: ${bytes(bw.TotalIn)}` }, `↓ ${rate(bw.RateIn)}`),
      ' ',
      el('span', { title: `sent in all: ${bytes(bw.TotalOut)}` }, `↑ ${rate(bw.RateOut)}`),
      el('span', { class: 'muted' }, ` · ${bytes(bw.TotalIn)} in, ${bytes(bw.TotalOut)} out`),
    );
    text.dataset.state = 'ok';
    bwHistory.push([Number(bw.RateIn), Number(bw.RateOut)]);
    if (bwHistory.length > BW_SAMPLES) bwHistory.shift();
    sparkline(spark, bwHistory);
  } catch (e) {
    text.className = 'muted';
    text.textContent = 'unavailable';
    text.title = e.message;
    text.dataset.state = 'unavailable';
    spark.replaceChildren();
  }
  setTimeout(bandwidth, BW_EVERY);
}

function start() {
  for (const { section } of Object.values(SECTIONS)) {
    if (section.init) section.init(ctx);
  }
  window.addEventListener('hashchange', () => show(location.hash.slice(1)));
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refreshNow();
  });
  show(location.hash.slice(1) || 'cluster');
  nodeInfo();
  bandwidth();
}

start();
