// Drives the daemon's dashboard in headless Chromium and prints what it found as one JSON
// line (the last line of standard output); integration-tests/tests/dashboard.rs asserts on it.
//
// Usage: node dashboard.mjs <base-url> <out-dir>
//   base-url: the daemon's API origin, like http://127.0.0.1:5001
//   out-dir:  where the screenshots go (cluster.png, pins.png, tasks.png, results.png, auth.png)
// Environment: CHROMIUM (the browser, default /usr/bin/chromium).
//
// Every request to another origin is aborted and listed in the summary: the page must work
// offline. The auth step answers 401 to every API call without the test's bearer token and
// checks that the page asks for it, keeps it and sends it.

import { chromium } from 'playwright-core';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, outDir] = process.argv.slice(2);
if (!base || !outDir) {
  console.error('usage: node dashboard.mjs <base-url> <out-dir>');
  process.exit(2);
}
const origin = new URL(base).origin;
const TOKEN = 'dashboard-test-token';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const summary = {
  peers: [],
  refused: [],
  node: null,
  pins: [],
  task: null,
  counters: {},
  results: null,
  bandwidth: null,
  auth: null,
  screenshots: [],
  external: [],
  consoleErrors: [],
  pageErrors: [],
  failures: [],
};

mkdirSync(outDir, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'ipfsbench-dashboard-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ARGS,
  viewport: { width: 1400, height: 900 },
});
context.setDefaultTimeout(30_000);
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith(`${origin}/`) || url.startsWith('data:')) return route.continue();
  summary.external.push(url);
  return route.abort();
});

function watch(page) {
  page.on('console', (m) => {
    // A failed call (404 of stats/bw, the auth step's 401s) is logged by Chromium as a
    // resource error; the page shows it, so it is not a script error.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      summary.consoleErrors.push(m.text());
    }
  });
  page.on('pageerror', (e) => summary.pageErrors.push(String(e)));
}

async function shot(page, name) {
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  summary.screenshots.push(path);
}

async function step(name, body) {
  try {
    await body();
  } catch (e) {
    summary.failures.push(`${name}: ${e.message.split('\n')[0]}`);
  }
}

const page = await context.newPage();
watch(page);

await step('cluster', async () => {
  await page.goto(`${origin}/dashboard#cluster`);
  await page.waitForFunction(() => document.querySelectorAll('#peers tr[data-peer]').length >= 2);
  summary.peers = await page.$$eval('#peers tr[data-peer]', (rows) => rows.map((r) => ({
    peer: r.dataset.peer,
    role: r.dataset.role,
    text: r.innerText.replace(/\s+/g, ' ').trim(),
  })));
  await page.waitForFunction(() => document.querySelectorAll('#refused li[data-peer]').length >= 1);
  summary.refused = await page.$$eval('#refused li[data-peer]', (items) => items.map((li) => ({
    peer: li.dataset.peer,
    text: li.innerText.replace(/\s+/g, ' ').trim(),
  })));
  await page.waitForSelector('#node-id');
  summary.node = await page.getAttribute('#node-id', 'title');
  await page.waitForSelector('#tiers .card');
  await shot(page, 'cluster');
});

await step('pins', async () => {
  await page.click('a[data-tab="pins"]');
  await page.waitForSelector('#tab-pins:not([hidden]) #pins tbody tr');
  summary.pins = await page.$$eval('#pins tr[data-cid]', (rows) => rows.map((r) => ({
    cid: r.dataset.cid,
    text: r.innerText.replace(/\s+/g, ' ').trim(),
  })));
  await shot(page, 'pins');
});

await step('tasks', async () => {
  await page.click('a[data-tab="tasks"]');
  await page.waitForSelector('#tab-tasks:not([hidden]) #task-counters .counter');
  await page.selectOption('#submit-kind', 'bench.hash');
  await page.fill('#submit-form textarea[name="params"]', 'size=262144');
  await page.click('#submit-form button[type="submit"]');
  const id = (await page.textContent('#submitted-id', { timeout: 15_000 })).trim();
  const seen = [];
  const deadline = Date.now() + 60_000;
  let state = null;
  while (Date.now() < deadline) {
    state = await page.getAttribute(`#tasks tr[data-task="${id}"]`, 'data-state', { timeout: 1000 })
      .catch(() => null);
    if (state && seen[seen.length - 1] !== state) seen.push(state);
    if (state === 'succeeded' || state === 'failed' || state === 'cancelled') break;
    await page.waitForTimeout(200);
  }
  const row = await page.$(`#tasks tr[data-task="${id}"]`);
  summary.task = {
    id,
    state,
    seen,
    row: row ? (await row.innerText()).replace(/\s+/g, ' ').trim() : null,
  };
  summary.counters = Object.fromEntries(await page.$$eval('#task-counters .counter', (cs) =>
    cs.map((c) => [c.dataset.counter, Number(c.querySelector('.n').textContent)])));
  await shot(page, 'tasks');
});

await step('results', async () => {
  await page.click('a[data-tab="results"]');
  await page.waitForFunction(() =>
    document.querySelectorAll('#tab-results:not([hidden]) svg.chart circle.point').length > 0);
  summary.results = await page.evaluate(() => {
    const charts = [...document.querySelectorAll('#charts .chart-card')];
    return {
      charts: charts.length,
      points: document.querySelectorAll('#charts svg.chart circle.point').length,
      kinds: [...new Set(charts.map((c) => c.dataset.kind))],
      series: [...new Set([...document.querySelectorAll('#charts svg.chart g.series')]
        .map((g) => g.dataset.series))],
      compareRows: document.querySelectorAll('#charts table.compare tbody tr').length,
      values: [...document.querySelectorAll('#charts svg.chart circle.point')]
        .map((c) => Number(c.dataset.value)),
    };
  });
  await shot(page, 'results');
});

await step('bandwidth', async () => {
  await page.waitForFunction(() => document.getElementById('bw-text').dataset.state);
  summary.bandwidth = await page.evaluate(() => {
    const t = document.getElementById('bw-text');
    return { state: t.dataset.state, text: t.textContent };
  });
});

await page.close();

await step('auth', async () => {
  const auth = await context.newPage();
  watch(auth);
  const calls = { refused: 0, authorized: 0 };
  await auth.route(`${origin}/api/v0/**`, (route) => {
    if (route.request().headers().authorization === `Bearer ${TOKEN}`) {
      calls.authorized += 1;
      return route.continue();
    }
    calls.refused += 1;
    return route.fulfill({
      status: 401,
      contentType: 'application/json',
      body: JSON.stringify({ Message: 'a bearer token is required', Code: 0, Type: 'error' }),
    });
  });
  await auth.goto(`${origin}/dashboard#cluster`);
  await auth.waitForSelector('#token-dialog[open]');
  await shot(auth, 'auth');
  await auth.fill('#token-input', TOKEN);
  await auth.press('#token-input', 'Enter');
  await auth.waitForFunction(() => document.querySelectorAll('#peers tr[data-peer]').length >= 2);
  const stored = await auth.evaluate(() => sessionStorage.getItem('ipfsbench.apiToken'));
  const refusedBefore = calls.refused;
  await auth.reload();
  await auth.waitForFunction(() => document.querySelectorAll('#peers tr[data-peer]').length >= 2);
  summary.auth = {
    prompted: true,
    stored: stored === TOKEN,
    promptedAgain: await auth.isVisible('#token-dialog[open]'),
    refusedAfterReload: calls.refused - refusedBefore,
    ...calls,
  };
  await auth.close();
});

await context.close();
rmSync(profile, { recursive: true, force: true });
console.log(JSON.stringify(summary));
process.exit(summary.failures.length ? 1 : 0);
