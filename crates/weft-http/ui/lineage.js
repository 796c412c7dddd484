// The lineage graph: a layered left-to-right layout (sources on the left, consumers on the right)
// drawn as SVG. Declared edges are solid, observed edges dashed, and edges or nodes named by a
// disagreement are drawn in the alarm colour. Product nodes are links to their product's lineage.

import { h, s } from './dom.js';

const NODE_W = 188;
const NODE_H = 46;
const GAP_X = 84;
const GAP_Y = 18;
const PAD = 16;
const LABEL_CHARS_MAX = 24;
/** Graphs larger than this are cut (the rest is listed as a count), so layout stays instant. */
export const NODES_MAX = 400;

/** The product id a node links to, or null for a node that is not a product. */
export function productIdOf(node) {
  if (node.kind !== 'product') return null;
  const id = String(node.id);
  return id.startsWith('product:') ? id.slice('product:'.length) : id;
}

/** Assigns each node a layer: the longest path to it from a node without inputs. */
function layers(nodes, edges) {
  const ids = new Set(nodes.map((n) => n.id));
  const preds = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) if (ids.has(e.from) && ids.has(e.to) && e.from !== e.to) preds.get(e.to).push(e.from);
  const layer = new Map();
  const visiting = new Set();
  const visit = (id) => {
    if (layer.has(id)) return layer.get(id);
    if (visiting.has(id)) return 0; // A cycle: cut it here.
    visiting.add(id);
    let l = 0;
    for (const p of preds.get(id)) l = Math.max(l, visit(p) + 1);
    visiting.delete(id);
    layer.set(id, l);
    return l;
  };
  for (const n of nodes) visit(n.id);
  return { layer, preds };
}

/** Positions every node: columns by layer, rows ordered by the mean row of their neighbours. */
export function layout(graph) {
  const nodes = graph.nodes.slice(0, NODES_MAX);
  const ids = new Set(nodes.map((n) => n.id));
  const edges = graph.edges.filter((e) => ids.has(e.from) && ids.has(e.to));
  const { layer } = layers(nodes, edges);
  const columns = [];
  for (const n of nodes) {
    const l = layer.get(n.id);
    (columns[l] ??= []).push(n);
  }
  const row = new Map();
  columns.forEach((col) => col.forEach((n, i) => row.set(n.id, i)));
  const neighbours = new Map(nodes.map((n) => [n.id, []]));
  for (const e of edges) {
    neighbours.get(e.from).push(e.to);
    neighbours.get(e.to).push(e.from);
  }
  // A few sweeps of the barycenter heuristic reduce crossings well enough for catalog graphs.
  for (let sweep = 0; sweep < 4; sweep += 1) {
    for (const col of columns) {
      if (!col) continue;
      const key = (n) => {
        const ns = neighbours.get(n.id);
        return ns.length ? ns.reduce((sum, id) => sum + row.get(id), 0) / ns.length : row.get(n.id);
      };
      const keys = new Map(col.map((n) => [n.id, key(n)]));
      col.sort((a, b) => keys.get(a.id) - keys.get(b.id) || a.id.localeCompare(b.id));
      col.forEach((n, i) => row.set(n.id, i));
    }
  }
  const tallest = Math.max(1, ...columns.map((c) => c?.length ?? 0));
  const height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y;
  const positions = new Map();
  columns.forEach((col, l) => {
    if (!col) return;
    const colHeight = col.length * NODE_H + (col.length - 1) * GAP_Y;
    const top = (height - colHeight) / 2;
    col.forEach((n, i) => positions.set(n.id, { x: PAD + l * (NODE_W + GAP_X), y: top + i * (NODE_H + GAP_Y) }));
  });
  const width = PAD * 2 + columns.length * NODE_W + Math.max(columns.length - 1, 0) * GAP_X;
  return { nodes, edges, positions, width, height, cut: graph.nodes.length - nodes.length };
}

const truncate = (text) => (text.length > LABEL_CHARS_MAX ? `${text.slice(0, LABEL_CHARS_MAX - 1)}…` : text);

/** Draws the graph; `root` is the id of the product the page is about. */
export function lineageGraph(graph, { root, hrefFor }) {
  const { nodes, edges, positions, width, height, cut } = layout(graph);
  const rootNode = nodes.find((n) => productIdOf(n) === root)?.id ?? root;
  const disagreements = graph.disagreements ?? [];
  const disputedEdge = (e) => disagreements.some((d) => d.from === e.from && d.to === e.to);
  const disputedNodes = new Set(disagreements.flatMap((d) => [d.from, d.to]).filter(Boolean));
  const edgePaths = edges.map((e) => {
    const a = positions.get(e.from);
    const b = positions.get(e.to);
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x;
    const y2 = b.y + NODE_H / 2;
    const bend = Math.max(Math.abs(x2 - x1) / 2, 40);
    const observed = e.kind === 'observed';
    const disputed = disputedEdge(e);
    return s('path', {
      class: ['edge', observed ? 'observed' : 'declared', disputed && 'disputed'],
      d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2 - 6},${y2}`,
      'marker-end': `url(#arrow-${disputed ? 'disputed' : observed ? 'observed' : 'declared'})`,
      'data-from': e.from,
      'data-to': e.to,
    }, s('title', null, `${e.from} → ${e.to}${e.relation ? ` (${e.relation})` : ''}, ${observed ? 'observed' : 'declared'}`));
  });
  const nodeShapes = nodes.map((n) => {
    const p = positions.get(n.id);
    const label = String(n.label ?? n.id);
    const kind = String(n.kind ?? 'node');
    const productId = productIdOf(n);
    const shape = s('g', {
      class: ['node', `node-${kind.replace(/[^a-z0-9-]/gi, '')}`, n.id === rootNode && 'root', disputedNodes.has(n.id) && 'disputed'],
      transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`,
      'data-node-id': n.id,
      'data-product': productId,
    },
    s('title', null, `${kind}: ${label}${n.domain ? ` (domain ${n.domain})` : ''}${n.product && !productId ? `, for product ${n.product}` : ''}`),
    s('rect', { width: NODE_W, height: NODE_H, rx: kind === 'stream' ? 23 : 8 }),
    s('text', { x: 12, y: 19, class: 'node-label' }, truncate(label)),
    s('text', { x: 12, y: 36, class: 'node-kind' }, truncate(`${kind}${n.domain ? ` · ${n.domain}` : ''}`)));
    if (productId && n.id !== rootNode && hrefFor) {
      return s('a', { href: hrefFor(productId), class: 'node-link', 'aria-label': `${label}, ${kind}: open its lineage` }, shape);
    }
    return shape;
  });
  const marker = (id) => s('marker', { id: `arrow-${id}`, viewBox: '0 0 10 10', refX: 8, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse', class: `marker-${id}` },
    s('path', { d: 'M0,0 L10,5 L0,10 z' }));
  const svg = s('svg', {
    class: 'lineage', viewBox: `0 0 ${width} ${height}`, width, height, role: 'group',
    'aria-label': `Lineage graph with ${nodes.length} nodes and ${edges.length} edges`,
  }, s('defs', null, marker('declared'), marker('observed'), marker('disputed')), edgePaths, nodeShapes);
  return h('div', { class: 'lineage-wrap' },
    h('div', { class: 'lineage-scroll', tabindex: '0', 'aria-label': 'Lineage graph, scrolls sideways' }, svg),
    cut > 0 ? h('p', { class: 'muted' }, `${cut} more nodes are not drawn.`) : null,
    h('ul', { class: 'legend', 'aria-label': 'Legend' },
      h('li', null, s('svg', { width: 36, height: 10, 'aria-hidden': 'true' }, s('line', { x1: 0, x2: 36, y1: 5, y2: 5, class: 'edge declared' })), ' declared'),
      h('li', null, s('svg', { width: 36, height: 10, 'aria-hidden': 'true' }, s('line', { x1: 0, x2: 36, y1: 5, y2: 5, class: 'edge observed' })), ' observed'),
      h('li', null, s('svg', { width: 36, height: 10, 'aria-hidden': 'true' }, s('line', { x1: 0, x2: 36, y1: 5, y2: 5, class: 'edge disputed' })), ' disagreement')));
}

/**
 * Lineage built in the browser from the products list, for servers without
 * `/api/v1/lineage`: upstream products → their streams → this product → its streams →
 * downstream products, all declared by input and output ports.
 */
export function lineageFromProducts(rootId, products) {
  const byId = new Map(products.map((p) => [p.id, p]));
  const root = byId.get(rootId);
  const nodes = new Map();
  const edges = [];
  const pid = (id) => `product:${id}`;
  const addProduct = (p) => nodes.set(pid(p.id), { id: pid(p.id), kind: 'product', label: p.name || p.id, domain: p.domain });
  const addStream = (name, domain) => nodes.set(`stream:${name}`, { id: `stream:${name}`, kind: 'stream', label: name, domain });
  if (!root) return { root: rootId, nodes: [], edges: [], disagreements: [] };
  addProduct(root);
  const upstreamIds = new Set((root.input_ports ?? []).map((port) => port.product).filter((id) => id && byId.has(id)));
  for (const id of upstreamIds) {
    const up = byId.get(id);
    addProduct(up);
    for (const st of up.streams ?? []) {
      addStream(st.name, up.domain);
      edges.push({ from: pid(up.id), to: `stream:${st.name}`, kind: 'declared', relation: 'produces' });
      edges.push({ from: `stream:${st.name}`, to: pid(root.id), kind: 'declared', relation: 'consumes' });
    }
  }
  for (const st of root.streams ?? []) {
    addStream(st.name, root.domain);
    edges.push({ from: pid(root.id), to: `stream:${st.name}`, kind: 'declared', relation: 'produces' });
    for (const down of products) {
      if ((down.input_ports ?? []).some((port) => port.product === root.id)) {
        addProduct(down);
        edges.push({ from: `stream:${st.name}`, to: pid(down.id), kind: 'declared', relation: 'consumes' });
      }
    }
  }
  return { root: root.id, nodes: [...nodes.values()], edges, disagreements: [] };
}
