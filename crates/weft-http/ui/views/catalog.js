// The catalog views: all products (home), search results with why-it-matched snippets, and domains.

import { getJson, seg } from '../api.js';
import { badge, h, notice, replace } from '../dom.js';
import { count, describe } from '../format.js';

export const productHref = (id, tab) => `#/products/${seg(id)}${tab && tab !== 'overview' ? `/${tab}` : ''}`;

function productCard(p) {
  const events = (p.streams ?? []).reduce((sum, st) => sum + (st.events ?? 0), 0);
  const deadLetters = (p.streams ?? []).reduce((sum, st) => sum + (st.dead_letters ?? 0), 0);
  return h('li', { class: 'card product-card' },
    h('h2', null, h('a', { href: productHref(p.id) }, p.name || p.id)),
    h('p', { class: 'meta' }, p.domain ? badge(p.domain, 'domain') : null, ' ', p.status ? badge(p.status, p.status === 'active' ? 'ok' : 'muted') : null, ' ', p.version ? h('span', { class: 'muted' }, `v${p.version}`) : null),
    describe(p.description) ? h('p', { class: 'description' }, describe(p.description)) : null,
    h('p', { class: 'stats-line muted' }, `${count(events)} events · ${(p.streams ?? []).length} stream${(p.streams ?? []).length === 1 ? '' : 's'}`,
      deadLetters ? [' · ', h('a', { href: productHref(p.id, 'dead-letters'), class: 'dead-letter-count' }, `${count(deadLetters)} dead letter${deadLetters === 1 ? '' : 's'}`)] : null),
    (p.tags ?? []).length ? h('p', { class: 'tags' }, p.tags.map((t) => h('a', { class: 'tag', href: `#/search?${new URLSearchParams({ tag: t })}` }, t))) : null);
}

export async function homeView(main, { signal }) {
  const { products } = await getJson('/api/v1/products', { signal });
  const sorted = [...products].sort((a, b) => String(a.domain ?? '').localeCompare(String(b.domain ?? '')) || String(a.name).localeCompare(String(b.name)));
  replace(main,
    h('div', { class: 'page-head' }, h('h1', null, 'Data products'), h('p', { class: 'muted' }, `${count(products.length)} products in the mesh`)),
    products.length
      ? h('ul', { class: 'product-grid', 'aria-label': 'Products' }, sorted.map(productCard))
      : notice('info', 'No products yet', h('p', null, 'Apply a data product with '), h('code', null, 'weft apply -f examples/')));
}

export async function domainsView(main, { signal }) {
  const [{ domains }, { products }] = await Promise.all([getJson('/api/v1/domains', { signal }), getJson('/api/v1/products', { signal })]);
  const byId = new Map(products.map((p) => [p.id, p]));
  replace(main,
    h('div', { class: 'page-head' }, h('h1', null, 'Domains'), h('p', { class: 'muted' }, `${count(domains.length)} domains`)),
    domains.length === 0 ? notice('info', 'No domains yet') : null,
    h('ul', { class: 'domain-list' }, domains.map((d) => h('li', { class: 'card domain', id: `domain-${d.name}` },
      h('h2', null, d.name),
      d.description ? h('p', null, describe(d.description)) : null,
      h('dl', { class: 'facts' },
        h('dt', null, 'Owners'), h('dd', null, (d.owners ?? []).length ? d.owners.join(', ') : '—'),
        h('dt', null, 'Team'), h('dd', null, d.team?.name ?? '—')),
      h('h3', null, 'Products'),
      (d.products ?? []).length
        ? h('ul', { class: 'plain-list' }, d.products.map((id) => h('li', null, h('a', { href: productHref(id) }, byId.get(id)?.name ?? id), byId.get(id) ? h('span', { class: 'muted' }, ` — ${describe(byId.get(id).description)}`) : null)))
        : h('p', { class: 'muted' }, 'No products yet.')))));
}

/** Splits `text` into text and <mark> nodes for every query term it contains. */
export function highlight(text, terms) {
  const source = String(text ?? '');
  const words = terms.filter((t) => t.length > 1).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (!words.length) return source;
  const parts = source.split(new RegExp(`(${words.join('|')})`, 'gi'));
  return parts.map((part, i) => (i % 2 ? h('mark', null, part) : part));
}

function hitHref(hit) {
  const product = hit.product ?? (hit.kind === 'product' ? hit.id : null);
  if (product) return productHref(product, ['field', 'property', 'contract'].includes(hit.kind) ? 'schema' : undefined);
  if (hit.kind === 'domain') return '#/domains';
  return null;
}

function searchForm(params, domains) {
  const q = params.get('q') ?? '';
  const select = h('select', { name: 'domain', id: 'filter-domain' },
    h('option', { value: '' }, 'All domains'),
    domains.map((d) => h('option', { value: d.name, selected: params.get('domain') === d.name }, d.name)));
  return h('form', { class: 'filters', 'aria-label': 'Search filters', onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const next = new URLSearchParams();
    for (const [k, v] of data) if (String(v).trim()) next.set(k, String(v).trim());
    location.hash = `#/search?${next}`;
  } },
  h('input', { type: 'hidden', name: 'q', value: q }),
  h('label', { for: 'filter-domain' }, 'Domain'), select,
  h('label', { for: 'filter-tag' }, 'Tag'), h('input', { id: 'filter-tag', name: 'tag', value: params.get('tag') ?? '', size: 10 }),
  h('label', { for: 'filter-classification' }, 'Classification'), h('input', { id: 'filter-classification', name: 'classification', value: params.get('classification') ?? '', size: 10, placeholder: 'pii' }),
  h('button', { type: 'submit' }, 'Filter'));
}

export async function searchView(main, params, { signal }) {
  const query = new URLSearchParams();
  for (const key of ['q', 'domain', 'tag', 'classification']) if (params.get(key)) query.set(key, params.get(key));
  const [result, domains] = await Promise.all([
    searchApi(query, signal),
    getJson('/api/v1/domains', { signal }).then((d) => d.domains, () => []),
  ]);
  const terms = (params.get('q') ?? '').split(/\s+/).filter(Boolean);
  const hits = result.hits ?? [];
  replace(main,
    h('div', { class: 'page-head' },
      h('h1', null, terms.length ? ['Results for ', h('q', null, params.get('q'))] : 'Search'),
      h('p', { class: 'muted', role: 'status' }, `${count(hits.length)} result${hits.length === 1 ? '' : 's'}`)),
    searchForm(params, domains),
    hits.length === 0
      ? notice('info', 'Nothing matched', h('p', null, 'Try fewer or other words, or remove a filter.'))
      : h('ol', { class: 'hits', 'aria-label': 'Search results' }, hits.map((hit) => {
        const href = hitHref(hit);
        return h('li', { class: 'card hit', 'data-kind': hit.kind, 'data-product': hit.product ?? '' },
          h('div', { class: 'hit-head' },
            badge(hit.kind ?? 'result', 'kind'),
            h('h2', null, href ? h('a', { href }, hit.name ?? hit.id) : (hit.name ?? hit.id)),
            hit.domain ? badge(hit.domain, 'domain') : null),
          hit.product && hit.product !== hit.id ? h('p', { class: 'muted hit-id' }, `in ${hit.product}`) : null,
          (hit.matched ?? []).length
            ? h('ul', { class: 'matched', 'aria-label': 'Why it matched' }, hit.matched.slice(0, 6).map((m) => h('li', null,
              h('span', { class: 'matched-field' }, m.field), ' ', h('span', { class: 'matched-text' }, highlight(m.text, terms)))))
            : null);
      })));
}

async function searchApi(query, signal) {
  try {
    return await getJson(`/api/v1/search?${query}`, { signal });
  } catch (error) {
    if (error.routeMissing) return searchInBrowser(query, signal);
    throw error;
  }
}

/** Products fetched in full at most, when the server has no search endpoint. */
const FALLBACK_PRODUCTS_MAX = 100;

/**
 * Search for servers without `/api/v1/search`: every query word must appear in the product's
 * name, id, description, tags, streams or contract fields.
 */
async function searchInBrowser(query, signal) {
  const { products } = await getJson('/api/v1/products', { signal });
  const details = await Promise.all(products.slice(0, FALLBACK_PRODUCTS_MAX).map((p) => getJson(`/api/v1/products/${seg(p.id)}`, { signal }).catch(() => p)));
  const terms = (query.get('q') ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  const hits = [];
  for (const p of details) {
    if (query.get('domain') && p.domain !== query.get('domain')) continue;
    if (query.get('tag') && !(p.tags ?? []).includes(query.get('tag'))) continue;
    const fields = [['name', p.name], ['id', p.id], ['description', describe(p.description)], ...(p.tags ?? []).map((t) => ['tag', t]),
      ...(p.streams ?? []).map((st) => ['stream', st.name])];
    const classified = [];
    for (const c of p.contracts ?? []) {
      for (const object of c.contract?.schema ?? []) {
        for (const prop of object.properties ?? []) {
          fields.push(['field', `${object.name}.${prop.name}${prop.classification ? ` (${prop.classification})` : ''}${prop.description ? ` — ${prop.description}` : ''}`]);
          if (prop.classification) classified.push(String(prop.classification).toLowerCase());
        }
      }
    }
    if (query.get('classification') && !classified.includes(query.get('classification').toLowerCase())) continue;
    const matched = [];
    let ok = true;
    for (const term of terms) {
      const found = fields.filter(([, text]) => String(text ?? '').toLowerCase().includes(term));
      if (!found.length) ok = false;
      for (const [field, text] of found) if (!matched.some((m) => m.text === text)) matched.push({ field, text: String(text) });
    }
    if (ok) hits.push({ kind: 'product', id: p.id, product: p.id, domain: p.domain, name: p.name, score: matched.length, matched });
  }
  hits.sort((a, b) => b.score - a.score);
  return { query: query.get('q') ?? '', hits };
}
