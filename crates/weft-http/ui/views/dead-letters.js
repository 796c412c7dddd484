// Dead letters grouped by reason, each example with its violations and the event data, the
// failing fields highlighted in place.

import { getJson, seg } from '../api.js';
import { badge, h, notice, replace } from '../dom.js';
import { count, time } from '../format.js';
import { jsonView } from '../json-view.js';

/** Dead letters listed when a person asks for all of one reason. */
const LIST_LIMIT = 50;

function marksOf(letter) {
  const marks = new Map();
  const violations = Array.isArray(letter.violations) ? letter.violations : [];
  for (const v of violations) {
    const path = String(v.path ?? '');
    const text = `${v.code ?? letter.reason}: ${v.message ?? ''}`;
    marks.set(path, marks.has(path) ? `${marks.get(path)}; ${text}` : text);
  }
  if (!violations.length && letter.reason) marks.set('', `${letter.reason}: ${letter.message ?? ''}`);
  return marks;
}

function letterView(letter) {
  const violations = Array.isArray(letter.violations) ? letter.violations : [];
  return h('article', { class: 'dead-letter', 'data-offset': `${letter.partition}:${letter.offset}` },
    h('p', { class: 'muted small' },
      `partition ${letter.partition} · offset ${letter.offset}`,
      letter.rejected_at ? ` · rejected ${time(letter.rejected_at)}` : '',
      letter.producer ? ` · producer ${letter.producer}` : '',
      letter.contract?.version ? ` · contract v${letter.contract.version}` : '',
      letter.replayed_to != null ? ` · replayed to offset ${letter.replayed_to}` : ''),
    letter.message ? h('p', { class: 'dl-message' }, letter.message) : null,
    violations.length ? h('ul', { class: 'violations' }, violations.map((v) => h('li', null,
      h('code', { class: 'violation-path' }, v.path || '(whole event)'), ' ', badge(v.code ?? '?', 'danger'), ' ', v.message ?? ''))) : null,
    letter.data !== undefined
      ? jsonView(letter.data, marksOf(letter))
      : h('p', { class: 'muted' }, letter.data_masked
        ? `The data is not JSON and is hidden from readers without unmask (${count(letter.data_bytes ?? 0)} bytes).`
        : letter.data_base64 !== undefined ? `The data is not JSON (${count(letter.data_base64.length)} base64 characters).` : 'No data.'));
}

function reasonSection(product, stream, reason) {
  const examples = h('div', { class: 'examples' }, (reason.examples ?? []).map(letterView));
  const more = reason.count > (reason.examples ?? []).length
    ? h('button', { type: 'button', class: 'secondary', onclick: async (event) => {
      const button = event.currentTarget;
      button.disabled = true;
      button.textContent = 'Loading…';
      try {
        const query = new URLSearchParams({ reason: reason.reason, limit: String(LIST_LIMIT) });
        const result = await getJson(`/api/v1/products/${seg(product.id)}/dead-letters?${query}`);
        const letters = result.streams?.find((x) => x.stream === stream)?.dead_letters ?? [];
        replace(examples, letters.map(letterView));
        button.remove();
      } catch (error) {
        button.disabled = false;
        button.textContent = `Could not load: ${error.message}. Try again`;
      }
    } }, `Show up to ${LIST_LIMIT} of ${count(reason.count)}`)
    : null;
  return h('section', { class: 'card reason', 'data-reason': reason.reason },
    h('h3', null, h('code', null, reason.reason), ' ', badge(`${count(reason.count)} event${reason.count === 1 ? '' : 's'}`, 'danger')),
    examples, more);
}

export async function deadLettersTab(content, product, params, ctx) {
  const result = await getJson(`/api/v1/products/${seg(product.id)}/dead-letters`, { signal: ctx.signal });
  const streams = result.streams ?? [];
  replace(content, streams.map((st) => h('section', { class: 'dead-letter-stream', 'data-stream': st.stream },
    h('h2', null, h('span', { class: 'muted' }, 'Stream '), h('code', null, st.stream), ' ', badge(`${count(st.total)} dead letter${st.total === 1 ? '' : 's'}`, st.total ? 'danger' : 'ok')),
    (st.reasons ?? []).length
      ? [...st.reasons].sort((a, b) => b.count - a.count).map((r) => reasonSection(product, st.stream, r))
      : notice('info', null, 'No event was refused on this stream.'))),
  streams.length ? null : notice('info', 'No governed streams'));
}
