// The product page: a header, tabs, and one tab's content. Overview (owners, support, SLAs,
// classifications, and per stream freshness, throughput, consumer groups, samples), schema
// (every version and the field-level changelog), quality, lineage, dead letters, live tail.

import { getJson, seg } from '../api.js';
import { badge, classificationBadge, h, notice, replace, safeUrl, section, table } from '../dom.js';
import { ago, bytes, count, describe, duration, time } from '../format.js';
import { barList, freshnessChart, throughputChart } from '../charts.js';
import { jsonView } from '../json-view.js';
import { lineageFromProducts, lineageGraph } from '../lineage.js';
import { productHref } from './catalog.js';
import { deadLettersTab } from './dead-letters.js';
import { liveTail } from './live.js';

export const PRODUCT_TABS = [
  { id: 'overview', label: 'Overview' },
  { id: 'schema', label: 'Schema' },
  { id: 'quality', label: 'Quality' },
  { id: 'lineage', label: 'Lineage' },
  { id: 'dead-letters', label: 'Dead letters' },
  { id: 'live', label: 'Live tail' },
];

/** How often the overview refreshes its numbers while it is open. */
const OVERVIEW_REFRESH_MS = 10000;
/** Freshness samples kept per stream for the freshness chart (one per refresh). */
const FRESHNESS_SAMPLES_MAX = 120;
/** Freshness samples seen while the page is open, per stream; kept across tab switches. */
const freshnessHistory = new Map();

export async function productView(main, id, tab, params, ctx) {
  const product = await getJson(`/api/v1/products/${seg(id)}`, { signal: ctx.signal });
  recordFreshness(product);
  const content = h('div', { class: 'tab-content', id: 'tab-content', role: 'tabpanel', 'aria-labelledby': `tab-${tab}` });
  replace(main, productHeader(product), tabs(product, tab), content);
  document.title = `${product.name ?? product.id} · Weft`;
  try {
    switch (tab) {
      case 'schema': return replace(content, schemaTab(product));
      case 'quality': return await qualityTab(content, product, ctx);
      case 'lineage': return await lineageTab(content, product, ctx);
      case 'dead-letters': return await deadLettersTab(content, product, params, ctx);
      case 'live': return await liveTab(content, product, params, ctx);
      default: return await overviewTab(content, product, ctx);
    }
  } catch (error) {
    // Signing in replaces the page; anything else (not allowed, not found) stays in the tab,
    // under the product's header, which the viewer may see.
    if (error?.status === 401 || ctx.signal.aborted) throw error;
    ctx.showError(content, error);
  }
}

function productHeader(p) {
  const dl = totalDeadLetters(p);
  return h('header', { class: 'product-head' },
    h('p', { class: 'breadcrumbs' }, h('a', { href: '#/' }, 'Products'), ' / ', p.domain ? h('a', { href: `#/domains` }, p.domain) : 'no domain'),
    h('h1', { id: 'product-name' }, p.name || p.id),
    h('p', { class: 'meta' },
      h('code', { class: 'product-id' }, p.id), ' ',
      p.status ? badge(p.status, p.status === 'active' ? 'ok' : 'muted') : null, ' ',
      p.version ? badge(`v${p.version}`, 'muted') : null, ' ',
      freshnessSummaryBadge(p), ' ',
      dl ? h('a', { href: productHref(p.id, 'dead-letters'), class: 'badge badge-danger' }, `${count(dl)} dead letter${dl === 1 ? '' : 's'}`) : null),
    describe(p.description) ? h('p', { class: 'description', id: 'product-description' }, describe(p.description)) : null,
    (p.tags ?? []).length ? h('p', { class: 'tags' }, p.tags.map((t) => h('a', { class: 'tag', href: `#/search?${new URLSearchParams({ tag: t })}` }, t))) : null);
}

function tabs(p, active) {
  return h('nav', { class: 'tabs', 'aria-label': 'Product sections' },
    h('ul', { role: 'tablist' }, PRODUCT_TABS.map((t) => h('li', { role: 'presentation' },
      h('a', {
        role: 'tab', id: `tab-${t.id}`, href: productHref(p.id, t.id), 'aria-selected': String(t.id === active),
        'aria-current': t.id === active ? 'page' : null, class: t.id === active ? 'active' : null,
      }, t.label, t.id === 'dead-letters' && totalDeadLetters(p) ? h('span', { class: 'count' }, count(totalDeadLetters(p))) : null)))));
}

const totalDeadLetters = (p) => (p.streams ?? []).reduce((sum, st) => sum + (st.stats?.dead_letters ?? st.dead_letters ?? 0), 0);

// ---- freshness ---------------------------------------------------------------------------

const FRESHNESS_TEXT = { on_time: 'On time', late: 'Late', no_sla: 'No latency SLA', no_events: 'No events yet' };
const FRESHNESS_KIND = { on_time: 'ok', late: 'danger', no_sla: 'muted', no_events: 'muted' };

function freshnessBadge(freshness) {
  if (!freshness) return badge('Freshness unknown', 'muted');
  const status = freshness.status;
  let text = FRESHNESS_TEXT[status] ?? String(status);
  if (status === 'late' && freshness.late_since) text += ` since ${time(freshness.late_since)}`;
  return h('span', { class: ['badge', `badge-${FRESHNESS_KIND[status] ?? 'muted'}`, 'freshness'], 'data-status': status }, text);
}

/** The worst freshness of the product's streams, for the header. */
function freshnessSummaryBadge(p) {
  const all = (p.streams ?? []).map((st) => st.stats?.freshness).filter(Boolean);
  if (!all.length) return null;
  const order = ['late', 'on_time', 'no_events', 'no_sla'];
  all.sort((a, b) => order.indexOf(a.status) - order.indexOf(b.status));
  return freshnessBadge(all[0]);
}

function recordFreshness(product) {
  const now = Date.now();
  for (const st of product.streams ?? []) {
    const age = st.stats?.freshness?.age_ms;
    if (typeof age !== 'number') continue;
    const samples = freshnessHistory.get(st.name) ?? [];
    samples.push({ at: now, age_ms: age });
    if (samples.length > FRESHNESS_SAMPLES_MAX) samples.shift();
    freshnessHistory.set(st.name, samples);
  }
}

// ---- overview ----------------------------------------------------------------------------

function contractsOf(p) {
  return p.contracts ?? [];
}

function slaRows(p) {
  const rows = [];
  for (const c of contractsOf(p)) {
    for (const sla of c.contract?.slaProperties ?? []) {
      rows.push([sla.property ?? '—', `${sla.value ?? ''}${sla.unit ? ` ${sla.unit}` : ''}`, sla.element ?? c.name ?? c.id]);
    }
  }
  return rows;
}

function classifications(p) {
  const byClass = new Map();
  for (const c of contractsOf(p)) {
    for (const topic of c.topics ?? []) {
      for (const cp of topic.classified_properties ?? []) {
        if (!byClass.has(cp.classification)) byClass.set(cp.classification, new Set());
        byClass.get(cp.classification).add(cp.path);
      }
    }
  }
  return byClass;
}

function supportList(p) {
  const channels = [...(p.support ?? []), ...contractsOf(p).flatMap((c) => c.contract?.support ?? [])];
  const seen = new Set();
  const unique = channels.filter((ch) => {
    const key = `${ch.channel}|${ch.url}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  if (!unique.length) return h('span', { class: 'muted' }, 'No support channel declared');
  return h('ul', { class: 'plain-list' }, unique.map((ch) => {
    const url = safeUrl(ch.url);
    const label = [ch.channel, ch.tool ? `(${ch.tool})` : null].filter(Boolean).join(' ');
    return h('li', null, url ? h('a', { href: url, rel: 'noopener noreferrer', target: '_blank' }, label || ch.url) : label || String(ch.url ?? '—'));
  }));
}

function teamText(p) {
  const team = p.team ?? contractsOf(p)[0]?.contract?.team;
  if (!team) return '—';
  const members = (team.members ?? []).map((m) => `${m.username ?? m.name ?? '?'}${m.role ? ` (${m.role})` : ''}`);
  return [team.name, members.length ? ` — ${members.join(', ')}` : ''].join('');
}

function overviewFacts(p) {
  const classes = classifications(p);
  const slas = slaRows(p);
  return section('About this product', 'about',
    h('dl', { class: 'facts' },
      h('dt', null, 'Owners'), h('dd', { id: 'owners' }, (p.owners ?? []).length ? p.owners.join(', ') : '—'),
      h('dt', null, 'Team'), h('dd', null, teamText(p)),
      h('dt', null, 'Support'), h('dd', { id: 'support' }, supportList(p)),
      h('dt', null, 'SLAs'), h('dd', { id: 'slas' }, slas.length
        ? h('ul', { class: 'plain-list' }, slas.map(([prop, value]) => h('li', null, h('strong', null, prop), ` ${value}`)))
        : h('span', { class: 'muted' }, 'None declared')),
      h('dt', null, 'Classifications'), h('dd', { id: 'classifications' }, classes.size
        ? h('ul', { class: 'plain-list' }, [...classes].map(([cls, paths]) => h('li', null, classificationBadge(cls), ' ', [...paths].join(', '))))
        : h('span', { class: 'muted' }, 'No classified fields')),
      h('dt', null, 'Inputs'), h('dd', null, (p.input_ports ?? []).length
        ? h('ul', { class: 'plain-list' }, p.input_ports.map((port) => h('li', null,
          port.product ? h('a', { href: productHref(port.product) }, port.name ?? port.product) : (port.name ?? '—'),
          h('span', { class: 'muted' }, ` ${port.contract_id ?? ''}`))))
        : h('span', { class: 'muted' }, 'None (a source product)'))));
}

function streamCard(p, st) {
  const stats = st.stats;
  const samples = st.samples ?? (p.samples && !Array.isArray(p.samples) ? p.samples[st.name] : null) ?? [];
  const fresh = stats?.freshness;
  const topic = contractsOf(p).flatMap((c) => c.topics ?? []).find((t) => t.stream === st.name);
  const slaMs = fresh?.latency_sla_ms ?? topic?.latency_ms ?? null;
  return h('section', { class: 'card stream', 'data-stream': st.name, 'aria-label': `Stream ${st.name}` },
    h('div', { class: 'stream-head' },
      h('h2', null, h('span', { class: 'muted' }, 'Stream '), h('code', null, st.name)),
      h('div', { class: 'stream-actions' },
        h('a', { href: `#/streams/${seg(st.name)}/live?product=${encodeURIComponent(p.id)}`, class: 'button-link' }, 'Live tail'))),
    h('div', { class: 'kpis' },
      kpi('Freshness', freshnessBadge(fresh), fresh ? [
        fresh.age_ms != null ? `newest event ${duration(fresh.age_ms)} old` : null,
        slaMs ? ` · SLA ${duration(slaMs)}` : null,
      ] : null, 'freshness'),
      kpi('Last event', stats?.last_event_at ? time(stats.last_event_at) : '—', stats?.last_event_at ? ago(stats.last_event_at) : null, 'last-event'),
      kpi('Last minute', count(stats?.events_last_minute), 'events', 'last-minute'),
      kpi('Last hour', count(stats?.events_last_hour), 'events', 'last-hour'),
      kpi('Total', count(stats?.events_total ?? st.events), stats?.bytes_total != null ? bytes(stats.bytes_total) : `${st.partitions ?? '?'} partitions`, 'total'),
      kpi('Dead letters', (stats?.dead_letters ?? st.dead_letters)
        ? h('a', { href: productHref(p.id, 'dead-letters') }, count(stats?.dead_letters ?? st.dead_letters)) : '0', 'refused by the contract', 'dead-letters')),
    stats ? h('div', { class: 'charts' },
      throughputChart(stats.throughput ?? []),
      freshnessChart(freshnessHistory.get(st.name) ?? [], slaMs, { label: 'Age of the newest event, since this page opened' })) : notice('info', null, 'This server does not report throughput and freshness yet.'),
    h('div', { class: 'two-col' },
      h('div', null, h('h3', null, 'Consumer groups'), consumerGroups(stats?.consumer_groups)),
      h('div', null, h('h3', null, 'Sample events'), samplesList(samples, st.samples_withheld))));
}

function kpi(label, value, sub, key) {
  return h('div', { class: 'kpi', 'data-kpi': key }, h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, value), sub ? h('div', { class: 'kpi-sub muted' }, sub) : null);
}

function consumerGroups(groups) {
  if (!groups) return h('p', { class: 'muted' }, 'Not reported by this server.');
  if (!groups.length) return h('p', { class: 'muted' }, 'No consumer group reads this stream yet.');
  const max = Math.max(...groups.map((g) => g.lag ?? 0));
  return table(['Group', 'Lag'], groups.map((g) => [h('code', null, g.group), h('span', { class: (g.lag ?? 0) > 0 && g.lag === max ? 'lag lag-high' : 'lag' }, `${count(g.lag)} events`)]), { class: 'groups' });
}

function samplesList(samples, withheld) {
  if (withheld) return h('p', { class: 'muted' }, `Samples are event data, shown to those who may consume the stream (${withheld}).`);
  if (!samples.length) return h('p', { class: 'muted' }, 'No events yet (samples are masked for you where the contract classifies a field).');
  return h('ol', { class: 'samples' }, samples.map((envelope) => h('li', null,
    h('p', { class: 'muted sample-meta' }, `partition ${envelope.partition ?? '?'} · offset ${envelope.offset ?? '?'}${envelope.timestamp ? ` · ${time(envelope.timestamp)}` : ''}`),
    jsonView(envelope.event?.data ?? envelope.data ?? envelope.event ?? envelope))));
}

async function overviewTab(content, product, ctx) {
  const streamsBox = h('div', { class: 'streams', id: 'streams' });
  const updated = h('p', { class: 'muted refreshed', role: 'status' }, `Updated ${time(new Date())}`);
  const draw = (p) => replace(streamsBox, (p.streams ?? []).length ? p.streams.map((st) => streamCard(p, st)) : notice('info', 'No streams', h('p', null, 'This product has no output stream.')));
  replace(content, overviewFacts(product), updated, streamsBox);
  draw(product);
  const timer = setInterval(async () => {
    try {
      const fresh = await getJson(`/api/v1/products/${seg(product.id)}`, { signal: ctx.signal });
      recordFreshness(fresh);
      draw(fresh);
      updated.textContent = `Updated ${time(new Date())}`;
    } catch (error) {
      if (!ctx.signal.aborted) updated.textContent = `Could not refresh: ${error.message}`;
    }
  }, OVERVIEW_REFRESH_MS);
  ctx.signal.addEventListener('abort', () => clearInterval(timer), { once: true });
}

// ---- schema ------------------------------------------------------------------------------

/** Flattens nested ODCS properties (objects and array items) into rows with dotted paths. */
function flattenProperties(properties, prefix = '', depth = 0, rows = []) {
  for (const prop of properties ?? []) {
    const path = prefix ? `${prefix}.${prop.name}` : String(prop.name);
    rows.push({ prop, path, depth });
    if (depth < 8) {
      if (prop.properties) flattenProperties(prop.properties, path, depth + 1, rows);
      if (prop.items?.properties) flattenProperties(prop.items.properties, `${path}[]`, depth + 1, rows);
    }
  }
  return rows;
}

function typeText(prop) {
  const options = prop.logicalTypeOptions ?? {};
  const parts = [prop.logicalType ?? prop.physicalType ?? '—'];
  if (options.format) parts.push(`(${options.format})`);
  if (prop.logicalType === 'array' && prop.items?.logicalType) parts.push(`of ${prop.items.logicalType}`);
  return parts.join(' ');
}

function constraintsText(prop) {
  const o = prop.logicalTypeOptions ?? {};
  const parts = [];
  for (const key of ['minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'pattern']) if (o[key] !== undefined) parts.push(`${key} ${o[key]}`);
  for (const q of prop.quality ?? []) if (q.arguments?.validValues) parts.push(`one of ${q.arguments.validValues.join(', ')}`);
  if (prop.primaryKey) parts.push('primary key');
  if (prop.unique) parts.push('unique');
  return parts.join(' · ');
}

function schemaTable(object) {
  const rows = flattenProperties(object.properties);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'schema', 'aria-label': `Schema of ${object.name}` },
    h('thead', null, h('tr', null, ['Field', 'Type', 'Required', 'Classification', 'Description and rules'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, rows.map(({ prop, path, depth }) => h('tr', { class: prop.classification ? 'classified' : null, 'data-field': path },
      h('th', { scope: 'row', class: `depth-${Math.min(depth, 4)}` }, h('code', null, path)),
      h('td', { 'data-label': 'Type' }, typeText(prop)),
      h('td', { 'data-label': 'Required' }, prop.required ? badge('required', 'strong') : h('span', { class: 'muted' }, 'optional')),
      h('td', { 'data-label': 'Classification', class: prop.classification ? null : 'unclassified' }, prop.classification ? classificationBadge(prop.classification) : h('span', { class: 'muted' }, '—')),
      h('td', { 'data-label': 'Rules', class: prop.description || constraintsText(prop) ? null : 'empty' }, prop.description ? h('div', null, prop.description) : null, constraintsText(prop) ? h('div', { class: 'muted small' }, constraintsText(prop)) : null))))));
}

function changelog(c) {
  const entries = c.changelog ?? [];
  if (!entries.length) return h('p', { class: 'muted' }, (c.versions ?? []).length > 1 ? 'No field changed between versions.' : 'Only one version so far: no changes yet.');
  return h('ol', { class: 'changelog', reversed: true }, [...entries].reverse().map((entry) => h('li', null,
    h('h4', null, `${entry.from} → ${entry.to}`),
    (entry.changes ?? []).length
      ? table(['Field', 'Change', 'Breaks readers', 'Breaks writers', 'Why'], entry.changes.map((ch) => [
        h('code', null, ch.field || '(root)'), ch.change ?? '',
        ch.breaks_readers ? badge('yes', 'danger') : badge('no', 'ok'),
        ch.breaks_writers ? badge('yes', 'danger') : badge('no', 'ok'),
        ch.reason ?? '']), { class: 'changes' })
      : h('p', { class: 'muted' }, 'No field-level change.'))));
}

function schemaTab(p) {
  const contracts = contractsOf(p);
  if (!contracts.length) return notice('info', 'No contract', h('p', null, 'This product has no output port with a data contract.'));
  return h('div', { class: 'schema-tab' }, contracts.map((c) => {
    const versions = (c.versions ?? [c.version]).map((v) => (typeof v === 'object' && v !== null ? v.version : v));
    return h('section', { class: 'card contract', 'aria-label': `Contract ${c.name ?? c.id}` },
      h('h2', null, c.name ?? c.id, ' ', badge(`v${c.version}`, 'muted'), ' ', c.status ? badge(c.status, c.status === 'active' ? 'ok' : 'muted') : null),
      h('p', { class: 'muted' }, h('code', null, c.id)),
      describe(c.contract?.description) ? h('p', null, describe(c.contract.description)) : null,
      h('p', { class: 'versions' }, h('strong', null, 'Versions: '), versions.map((v, i) => [i ? ', ' : '', v === c.version ? h('strong', { 'aria-current': 'true' }, `${v} (current)`) : v])),
      (c.contract?.schema ?? []).map((object) => {
        const topic = (c.topics ?? []).find((t) => t.object === object.name) ?? {};
        return h('div', { class: 'schema-object' },
          h('h3', null, object.name, topic.stream ? [' ', h('span', { class: 'muted' }, '→ stream '), h('code', null, topic.stream)] : null),
          object.description ? h('p', null, object.description) : null,
          h('p', { class: 'muted small' }, [
            topic.compatibility ? `compatibility ${topic.compatibility}` : null,
            topic.latency_ms != null ? `latency SLA ${duration(topic.latency_ms)}` : null,
            topic.retention_ms != null ? `retention ${duration(topic.retention_ms)}` : null,
          ].filter(Boolean).join(' · ')),
          schemaTable(object),
          (topic.not_checked_at_the_edge ?? []).length ? h('details', { class: 'deferred' },
            h('summary', null, `${topic.not_checked_at_the_edge.length} rule(s) not checked at the edge`),
            h('ul', null, topic.not_checked_at_the_edge.map((r) => h('li', null, h('code', null, r.property || '(object)'), ` ${r.label ?? r.rule ?? ''}: ${r.reason ?? ''}`)))) : null);
      }),
      h('h3', null, 'Changelog'),
      changelog(c));
  }));
}

// ---- quality -----------------------------------------------------------------------------

async function qualityTab(content, p, ctx) {
  const streams = p.streams ?? [];
  const needsSummary = streams.some((st) => !st.stats);
  const summary = needsSummary ? await getJson(`/api/v1/products/${seg(p.id)}/dead-letters`, { signal: ctx.signal }).catch(() => null) : null;
  replace(content, streams.length ? streams.map((st) => {
    const stats = st.stats;
    const reasons = stats?.rejected_by_reason
      ? Object.entries(stats.rejected_by_reason).map(([reason, n]) => ({ label: reason, value: n }))
      : (summary?.streams?.find((x) => x.stream === st.name)?.reasons ?? []).map((r) => ({ label: r.reason, value: r.count }));
    reasons.sort((a, b) => b.value - a.value);
    const accepted = stats?.events_total ?? st.events ?? 0;
    const rejected = stats?.rejected_total ?? reasons.reduce((sum, r) => sum + r.value, 0);
    const total = accepted + rejected;
    const share = total ? (accepted / total) * 100 : 100;
    return h('section', { class: 'card quality', 'data-stream': st.name, 'aria-label': `Quality of ${st.name}` },
      h('h2', null, h('span', { class: 'muted' }, 'Stream '), h('code', null, st.name)),
      h('div', { class: 'kpis' },
        kpi('Accepted', count(accepted), 'events passed the contract', 'accepted'),
        kpi('Rejected', count(rejected), 'events refused to the dead-letter stream', 'rejected'),
        kpi('Acceptance', total ? `${share.toFixed(share === 100 || share === 0 ? 0 : 1)} %` : '—', `of ${count(total)} produced`, 'acceptance')),
      barList([{ label: 'accepted', value: accepted, kind: 'ok' }, { label: 'rejected', value: rejected, kind: 'danger' }]),
      h('h3', null, 'Top rejection reasons'),
      reasons.length
        ? barList(reasons.slice(0, 10).map((r) => ({ ...r, kind: 'danger' })))
        : h('p', { class: 'muted' }, 'No event was rejected.'),
      reasons.length ? h('p', null, h('a', { href: productHref(p.id, 'dead-letters') }, 'See the dead letters with their failing fields →')) : null);
  }) : notice('info', 'No streams'));
}

// ---- lineage -----------------------------------------------------------------------------

const LINEAGE_DEPTH = 2;

async function lineageTab(content, p, ctx) {
  let graph;
  try {
    graph = await getJson(`/api/v1/lineage/${seg(p.id)}?depth=${LINEAGE_DEPTH}`, { signal: ctx.signal });
  } catch (error) {
    if (!error.routeMissing) throw error;
    const { products } = await getJson('/api/v1/products', { signal: ctx.signal });
    graph = lineageFromProducts(p.id, products);
  }
  const disagreements = graph.disagreements ?? [];
  replace(content,
    section('Lineage', 'lineage',
      h('p', { class: 'muted' }, 'Upstream on the left, downstream on the right. Select a product to follow its lineage.'),
      (graph.nodes ?? []).length ? lineageGraph(graph, { root: graph.root ?? p.id, hrefFor: (id) => productHref(id, 'lineage') }) : h('p', { class: 'muted' }, 'No lineage is known for this product.'),
      disagreements.length ? h('div', { class: 'notice warn disagreements', role: 'note' },
        h('strong', { class: 'notice-title' }, `${disagreements.length} disagreement${disagreements.length === 1 ? '' : 's'} between declared and observed lineage`),
        h('ul', null, disagreements.map((d) => h('li', null, h('code', null, d.kind ?? 'disagreement'), ` ${d.from ?? '?'} → ${d.to ?? '?'}: ${d.message ?? ''}`)))) : null));
}

// ---- live --------------------------------------------------------------------------------

async function liveTab(content, p, params, ctx) {
  const streams = p.streams ?? [];
  if (!streams.length) return replace(content, notice('info', 'No streams'));
  const chosen = streams.find((st) => st.name === params.get('stream')) ?? streams[0];
  const picker = streams.length > 1 ? h('p', { class: 'stream-picker' }, 'Stream: ', streams.map((st, i) => [i ? ' · ' : '',
    st.name === chosen.name ? h('strong', null, st.name) : h('a', { href: `${productHref(p.id, 'live')}?stream=${encodeURIComponent(st.name)}` }, st.name)])) : null;
  const box = h('div');
  replace(content, picker, box);
  liveTail(box, chosen.name, params, ctx);
}
