// Small SVG charts drawn here (no chart library): throughput per minute, freshness over time,
// and horizontal bars for rejection reasons. They scale with their container via viewBox.

import { h, s } from './dom.js';
import { count, duration, time } from './format.js';

const WIDTH = 600;

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten. */
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

/**
 * Vertical bars, one per minute: points = [{minute (ISO time or label), events}].
 * The newest minute is on the right.
 */
export function throughputChart(points, { label = 'Events per minute, last hour' } = {}) {
  const height = 160;
  const pad = { left: 44, right: 8, top: 10, bottom: 24 };
  const innerW = WIDTH - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...points.map((p) => p.events ?? 0)));
  const n = Math.max(points.length, 1);
  const barW = innerW / n;
  const total = points.reduce((sum, p) => sum + (p.events ?? 0), 0);
  const svg = s('svg', { viewBox: `0 0 ${WIDTH} ${height}`, class: 'chart', role: 'img', 'aria-label': `${label}: ${count(total)} events in total, at most ${count(Math.max(0, ...points.map((p) => p.events ?? 0)))} in one minute` },
    s('title', null, label),
    gridLines(pad, innerW, innerH, max, (v) => count(v)),
    points.map((p, i) => {
      const value = p.events ?? 0;
      const barH = (value / max) * innerH;
      return s('rect', {
        class: 'bar',
        x: (pad.left + i * barW + barW * 0.12).toFixed(1),
        y: (pad.top + innerH - barH).toFixed(1),
        width: Math.max(barW * 0.76, 1).toFixed(1),
        height: Math.max(barH, value > 0 ? 1 : 0).toFixed(1),
      }, s('title', null, `${p.minute ? time(p.minute) : ''}: ${count(value)} events`));
    }),
    s('text', { x: pad.left, y: height - 6, class: 'axis-label' }, points.length ? `${points.length} min ago` : ''),
    s('text', { x: WIDTH - pad.right, y: height - 6, class: 'axis-label', 'text-anchor': 'end' }, 'now'));
  return h('figure', { class: 'chart-figure' }, svg, h('figcaption', null, label));
}

function gridLines(pad, innerW, innerH, max, fmt) {
  return [0, 0.5, 1].map((f) => {
    const y = pad.top + innerH - f * innerH;
    return s('g', { class: 'grid' },
      s('line', { x1: pad.left, x2: pad.left + innerW, y1: y.toFixed(1), y2: y.toFixed(1) }),
      s('text', { x: pad.left - 6, y: (y + 4).toFixed(1), 'text-anchor': 'end', class: 'axis-label' }, fmt(max * f)));
  });
}

/**
 * Age of the newest event over time, against the latency SLA: samples = [{at: ms, age_ms}].
 * Points above the SLA line are late.
 */
export function freshnessChart(samples, slaMs, { label = 'Age of the newest event' } = {}) {
  const height = 160;
  const pad = { left: 56, right: 8, top: 10, bottom: 24 };
  const innerW = WIDTH - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const ages = samples.map((p) => p.age_ms).filter((a) => typeof a === 'number');
  const max = niceMax(Math.max(slaMs ?? 0, ...ages) * 1.1);
  const t0 = samples.length ? samples[0].at : 0;
  const t1 = samples.length ? samples[samples.length - 1].at : 1;
  const span = Math.max(t1 - t0, 1);
  const x = (at) => pad.left + (samples.length < 2 ? innerW : ((at - t0) / span) * innerW);
  const y = (ms) => pad.top + innerH - (Math.min(ms, max) / max) * innerH;
  const path = samples.filter((p) => typeof p.age_ms === 'number')
    .map((p, i) => `${i ? 'L' : 'M'}${x(p.at).toFixed(1)},${y(p.age_ms).toFixed(1)}`).join(' ');
  const svg = s('svg', { viewBox: `0 0 ${WIDTH} ${height}`, class: 'chart', role: 'img', 'aria-label': `${label}${slaMs ? `, latency SLA ${duration(slaMs)}` : ''}` },
    s('title', null, label),
    gridLines(pad, innerW, innerH, max, (v) => duration(v)),
    slaMs ? [
      s('line', { class: 'sla-line', x1: pad.left, x2: pad.left + innerW, y1: y(slaMs).toFixed(1), y2: y(slaMs).toFixed(1) }),
      s('text', { class: 'axis-label sla-label', x: pad.left + innerW, y: (y(slaMs) - 4).toFixed(1), 'text-anchor': 'end' }, `SLA ${duration(slaMs)}`),
    ] : null,
    path ? s('path', { class: 'line', d: path }) : null,
    samples.filter((p) => typeof p.age_ms === 'number').map((p) => s('circle', {
      class: slaMs && p.age_ms > slaMs ? 'dot late' : 'dot', cx: x(p.at).toFixed(1), cy: y(p.age_ms).toFixed(1), r: 3,
    }, s('title', null, `${time(p.at)}: ${duration(p.age_ms)}`))),
    s('text', { x: pad.left, y: height - 6, class: 'axis-label' }, samples.length ? time(t0) : ''),
    s('text', { x: WIDTH - pad.right, y: height - 6, class: 'axis-label', 'text-anchor': 'end' }, samples.length ? time(t1) : ''));
  return h('figure', { class: 'chart-figure' }, svg, h('figcaption', null, label));
}

/** Horizontal bars with labels: items = [{label, value}], largest first. */
export function barList(items, { unit = '' } = {}) {
  const max = Math.max(1, ...items.map((i) => i.value));
  return h('ul', { class: 'bar-list' }, items.map((item) => h('li', null,
    h('span', { class: 'bar-list-label' }, item.label),
    h('span', { class: 'bar-list-track', 'aria-hidden': 'true' },
      s('svg', { viewBox: '0 0 100 10', preserveAspectRatio: 'none', class: 'bar-list-svg' },
        s('rect', { x: 0, y: 0, height: 10, width: ((item.value / max) * 100).toFixed(2), class: item.kind ? `bar ${item.kind}` : 'bar' }))),
    h('span', { class: 'bar-list-value' }, `${count(item.value)}${unit}`))));
}
