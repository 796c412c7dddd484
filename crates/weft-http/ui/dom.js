// Building DOM nodes without markup strings: every piece of server data becomes a text node
// or an attribute value, so a hostile string renders as the text it is.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Attributes that could carry a script URL; their values are checked by safeUrl(). */
const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'xlink:href']);

/** A URL that is safe to put in href: http(s), mailto, or a fragment/relative path. */
export function safeUrl(url) {
  const text = String(url ?? '').trim();
  if (text.startsWith('#') || text.startsWith('/')) return text;
  try {
    const parsed = new URL(text);
    if (['http:', 'https:', 'mailto:'].includes(parsed.protocol)) return parsed.href;
  } catch {
    // Not a URL at all.
  }
  return null;
}

function append(node, child) {
  if (child === null || child === undefined || child === false) return;
  if (Array.isArray(child)) {
    for (const c of child) append(node, c);
  } else if (child instanceof Node) {
    node.appendChild(child);
  } else {
    node.appendChild(document.createTextNode(String(child)));
  }
}

function setAttributes(node, attrs) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'style') throw new Error('inline style attributes are blocked by the content-security-policy');
    else if (URL_ATTRIBUTES.has(key)) {
      const url = safeUrl(value);
      if (url !== null) node.setAttribute(key, url);
    } else node.setAttribute(key, value === true ? '' : String(value));
  }
}

/** h('a', {href: '#/'}, 'text', child, [children]) */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

/** Replaces a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A notice box: kind is 'info', 'error', 'warn' or 'forbidden'. */
export function notice(kind, title, ...body) {
  return h('div', { class: ['notice', kind], role: kind === 'error' || kind === 'forbidden' ? 'alert' : 'status' },
    title ? h('strong', { class: 'notice-title' }, title) : null,
    body.length ? h('div', null, ...body) : null);
}

export function badge(text, kind) {
  return h('span', { class: ['badge', kind && `badge-${kind}`] }, text);
}

/** A classification badge; pii and other sensitive classes stand out. */
export function classificationBadge(classification) {
  const c = String(classification ?? '').toLowerCase();
  const kind = ['pii', 'sensitive', 'restricted', 'confidential', 'secret', 'phi', 'pci'].includes(c) ? 'danger' : c === 'public' ? 'muted' : 'warn';
  return h('span', { class: ['badge', `badge-${kind}`, 'classification'], title: `classification: ${classification}` }, classification);
}

/** A table from a header row and body rows (arrays of cells: strings or nodes). */
export function table(head, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('thead', null, h('tr', null, head.map((cell) => h('th', { scope: 'col' }, cell)))),
      h('tbody', null, rows.map((row) => h('tr', null, row.map((cell) => h('td', null, cell)))))));
}

export function section(title, id, ...children) {
  const headingId = id ? `${id}-title` : undefined;
  return h('section', { class: 'card', id, 'aria-labelledby': headingId }, h('h2', { id: headingId }, title), ...children);
}
