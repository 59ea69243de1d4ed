// The cluster's peers (role, health from the last heartbeat's age, capacity), this node's
// storage tiers, and the pins with their replication.

import { call, callLines } from './api.js';
import { el, fillRows, bytes, duration, ident, badge, bar, num, ago } from './format.js';

/** A heartbeat older than this is late. Milliseconds. */
const LATE_MS = 5_000;
/** A heartbeat older than this: the peer is presumed gone. Milliseconds. */
const GONE_MS = 30_000;
/** The most pins listed. */
const MAX_PINS = 500;

function health(ms) {
  const tone = ms < LATE_MS ? 'ok' : ms < GONE_MS ? 'warn' : 'bad';
  const word = ms < LATE_MS ? 'healthy' : ms < GONE_MS ? 'late' : 'silent';
  return el('span', { class: `health ${tone}`, title: `last heartbeat ${duration(ms)} ago` },
    el('span', { class: 'dot' }), `${word} · ${duration(ms)}`);
}

function peerRow(p) {
  const c = p.Capacity || {};
  const memFree = c.MemoryTotalBytes ? c.MemoryAvailableBytes / c.MemoryTotalBytes : 0;
  const tags = [...(c.Tags || []), ...(c.Programs || []).map((x) => `exec:${x}`)];
  return el('tr', { dataset: { peer: p.Peer, role: p.Role } },
    el('td', {}, ident(p.Peer, 10), p.ThisNode ? badge('this node', 'info') : null,
      p.Leads !== null && p.Leads !== undefined ? badge(`leads · epoch ${p.Leads}`, 'ok') : null),
    el('td', {}, badge(p.Role, `role-${p.Role}`),
      p.Member ? badge(`member · ${p.Member}`, 'ok') : null,
      p.Dropped ? badge(`${num(p.Dropped, 0)} dropped`, 'bad') : null),
    el('td', {}, health(p.LastHeartbeatMsAgo)),
    el('td', { class: 'num' }, c.MaxConcurrent ? `${p.Running} / ${c.MaxConcurrent}` : String(p.Running)),
    el('td', { class: 'num' }, c.Cores ?? '–'),
    el('td', {}, bar(memFree, `${bytes(c.MemoryAvailableBytes)} of ${bytes(c.MemoryTotalBytes)}`)),
    el('td', { class: 'num' }, bytes(c.StoreFreeBytes)),
    el('td', { class: 'hw' }, c.Hardware || '–',
      tags.length ? el('div', { class: 'tags' }, tags.map((t) => badge(t))) : null),
  );
}

/** A peer whose messages this node drops: not a member (nor listed), or removed. */
function refusedLine(r) {
  const kinds = Object.entries(r.ByKind || {}).map(([k, n]) => `${k} ${num(n, 0)}`).join(', ');
  return el('li', { dataset: { peer: r.Peer } }, ident(r.Peer, 10), ' ',
    badge(r.Removed ? 'removed from the cluster' : 'not a member', 'bad'),
    ` ${num(r.Dropped, 0)} messages dropped (${kinds}), last ${ago(r.LastMs)}`);
}

function tierCard(t) {
  const rows = [];
  const add = (k, v) => rows.push(el('dt', {}, k), el('dd', {}, v));
  add('held', t.MaxBytes ? `${bytes(t.Bytes)} of ${bytes(t.MaxBytes)}` : bytes(t.Bytes));
  add('blocks', num(t.Blocks, 0));
  if (t.Hits !== undefined) {
    const total = t.Hits + t.Misses;
    add('hits', total ? `${num(t.Hits, 0)} (${num((100 * t.Hits) / total, 0)} %)` : '–');
  }
  if (t.CacheBytes) add('cache', bytes(t.CacheBytes));
  if (t.Evictions) add('evicted', `${num(t.Evictions, 0)} · ${bytes(t.EvictedBytes)}`);
  return el('div', { class: 'card' }, el('h3', {}, t.Name), el('dl', {}, rows));
}

export const peersSection = {
  title: 'Cluster',
  async refresh(ctx) {
    const [peers, tiers] = await Promise.all([
      call('cluster/peers'),
      call('storage/tiers').catch(() => null),
    ]);
    const list = [...peers.Peers].sort((a, b) =>
      (b.ThisNode - a.ThisNode) || a.Role.localeCompare(b.Role) || a.Peer.localeCompare(b.Peer));
    ctx.peers = list;
    for (const f of ctx.onPeers) f(list);
    document.getElementById('peer-count').textContent = String(list.length);
    fillRows(document.querySelector('#peers tbody'), list.map(peerRow), 8, 'No peer heard yet.');
    const refused = peers.Refused || [];
    const refusedBox = document.getElementById('refused');
    refusedBox.hidden = refused.length === 0;
    refusedBox.querySelector('ul').replaceChildren(...refused.map(refusedLine));
    const box = document.getElementById('tiers');
    if (tiers) {
      box.replaceChildren(...tiers.Tiers.map(tierCard));
    } else {
      box.replaceChildren(el('p', { class: 'muted' }, 'Storage tiers unavailable.'));
    }
  },
};

const TRACKING_TONE = {
  pinned: 'ok',
  pinning: 'info',
  pin_queued: '',
  pin_error: 'bad',
  unexpectedly_unpinned: 'bad',
  remote: 'muted',
};

function pinRow(p) {
  const peers = Object.entries(p.PeerMap || {});
  const holders = peers.filter(([, s]) => s.Status !== 'remote');
  const wanted = p.ReplicationFactorMin ?? holders.length;
  const target = Math.max(wanted, holders.length, 1);
  // The DAG's size as the peers that hold it report it: the goal of the others' progress.
  const size = Math.max(0, ...peers.filter(([, s]) => s.Status === 'pinned').map(([, s]) => s.Bytes));
  const chips = holders.map(([peer, s]) => {
    let text = s.Status.replaceAll('_', ' ');
    if (s.Status === 'pinning') {
      text += size ? ` ${num((100 * s.Bytes) / size, 0)} %` : ` ${bytes(s.Bytes)}`;
    }
    return el('span', { class: 'peer-status', title: `${peer}\n${bytes(s.Bytes)}, ${num(s.Blocks, 0)} blocks` +
      `${s.Error ? `\n${s.Error}` : ''}\nreported ${ago(s.UpdatedAtMs)}` },
    el('code', {}, `…${peer.slice(-6)}`), badge(text, TRACKING_TONE[s.Status]));
  });
  const tone = p.UnderReplicated ? 'warn' : 'ok';
  return el('tr', { dataset: { cid: p.Cid } },
    el('td', {}, p.Name || el('span', { class: 'muted' }, 'unnamed')),
    el('td', {}, ident(p.Cid, 8)),
    el('td', {},
      bar(p.Pinned / target, `${p.Pinned} pinned · at least ${p.ReplicationFactorMin ?? 'all'}`, tone),
      p.UnderReplicated ? badge('under-replicated', 'warn') : null),
    el('td', { class: 'chips' }, chips.length ? chips : el('span', { class: 'muted' }, 'none allocated')),
  );
}

export const pinsSection = {
  title: 'Pins',
  async refresh() {
    const { items, more } = await callLines('cluster/pins/status', {}, MAX_PINS);
    items.sort((a, b) => Number(b.UnderReplicated) - Number(a.UnderReplicated) ||
      (a.Name || '').localeCompare(b.Name || '') || a.Cid.localeCompare(b.Cid));
    document.getElementById('pin-count').textContent = more ? `${MAX_PINS}+` : String(items.length);
    document.getElementById('pins-note').textContent = more
      ? `The first ${MAX_PINS} pins; \`cluster pin status\` lists them all.`
      : '';
    fillRows(document.querySelector('#pins tbody'), items.map(pinRow), 4, 'No pin in the cluster.');
  },
};
