// Pretty-printed JSON as DOM nodes, with the values at given JSON pointers highlighted:
// the dead-letter view marks the fields a contract rejected.

import { h } from './dom.js';

/** Escapes one JSON pointer reference token (RFC 6901). */
const escapeToken = (token) => String(token).replace(/~/g, '~0').replace(/\//g, '~1');
const unescapeToken = (token) => token.replace(/~1/g, '/').replace(/~0/g, '~');

/** Nesting deeper than this is shown as "…", so a hostile document cannot exhaust the page. */
const DEPTH_MAX = 32;

/**
 * Renders `value` as indented JSON. `marks` maps JSON pointers to messages; the line of each
 * marked value gets the class "failing" and the message as its title. A pointer that names a
 * missing member of an object is shown as an extra "(missing)" line in that object.
 */
export function jsonView(value, marks = new Map()) {
  const lines = [];
  const missing = missingMembers(value, marks);
  render(value, '', null, 0, lines, marks, missing, true);
  return h('pre', { class: 'json', tabindex: '0' }, lines);
}

function missingMembers(value, marks) {
  const byParent = new Map();
  for (const pointer of marks.keys()) {
    if (!pointer) continue;
    const tokens = pointer.split('/').slice(1).map(unescapeToken);
    let node = value;
    let parent = '';
    for (let i = 0; i < tokens.length; i += 1) {
      const token = tokens[i];
      const present = node !== null && typeof node === 'object' && Object.prototype.hasOwnProperty.call(node, token);
      if (!present) {
        if (i === tokens.length - 1 && node !== null && typeof node === 'object' && !Array.isArray(node)) {
          if (!byParent.has(parent)) byParent.set(parent, []);
          byParent.get(parent).push({ key: token, pointer });
        }
        break;
      }
      node = node[token];
      parent += `/${escapeToken(token)}`;
    }
  }
  return byParent;
}

function line(depth, parts, pointer, marks) {
  const message = marks.get(pointer);
  const failing = message !== undefined;
  return h('span', {
    class: ['json-line', failing && 'failing'],
    'data-pointer': pointer || '/',
    title: failing ? message : null,
  }, '  '.repeat(depth), parts, failing ? h('span', { class: 'failing-note' }, `  ← ${message}`) : null, '\n');
}

function keyPart(key) {
  return key === null ? null : [h('span', { class: 'json-key' }, JSON.stringify(key)), ': '];
}

function scalar(value) {
  if (value === null) return h('span', { class: 'json-null' }, 'null');
  switch (typeof value) {
    case 'string': return h('span', { class: 'json-string' }, JSON.stringify(value));
    case 'number': return h('span', { class: 'json-number' }, String(value));
    case 'boolean': return h('span', { class: 'json-bool' }, String(value));
    default: return h('span', null, String(value));
  }
}

function render(value, pointer, key, depth, lines, marks, missing, last) {
  const comma = last ? '' : ',';
  if (value === null || typeof value !== 'object') {
    lines.push(line(depth, [keyPart(key), scalar(value), comma], pointer, marks));
    return;
  }
  const isArray = Array.isArray(value);
  const [open, close] = isArray ? ['[', ']'] : ['{', '}'];
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  const absent = missing.get(pointer) ?? [];
  if (depth >= DEPTH_MAX) {
    lines.push(line(depth, [keyPart(key), `${open}…${close}`, comma], pointer, marks));
    return;
  }
  if (entries.length === 0 && absent.length === 0) {
    lines.push(line(depth, [keyPart(key), open + close, comma], pointer, marks));
    return;
  }
  lines.push(line(depth, [keyPart(key), open], pointer, marks));
  entries.forEach(([k, v], i) => {
    const childLast = i === entries.length - 1 && absent.length === 0;
    render(v, `${pointer}/${escapeToken(k)}`, isArray ? null : k, depth + 1, lines, marks, missing, childLast);
  });
  absent.forEach(({ key: k, pointer: p }) => {
    lines.push(line(depth + 1, [keyPart(k), h('span', { class: 'json-missing' }, '(missing)')], p, marks));
  });
  lines.push(h('span', { class: 'json-line' }, '  '.repeat(depth), close, comma, '\n'));
}
