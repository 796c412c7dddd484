// Starts the real `weft serve` on free loopback ports with a fresh data directory, applies the
// example mesh plus a product with hostile strings, and produces valid and invalid events over
// HTTP, so the browser tests run against the same binary people run.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');
const BINARY = process.env.WEFT_BINARY ?? join(REPO, 'target/debug/weft');
/** Longest wait for the server to print its address and answer /healthz. */
const START_DEADLINE_MS = 30000;

export const HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">Hostile & "quoted"';
export const HOSTILE_PURPOSE = '<script>window.__pwned=2</script><b>not bold</b> {{constructor}}';
export const CUSTOMERS = 'urn:weft:product:customers';
export const INSIGHTS = 'urn:weft:product:customer-sales-insights';
export const CUSTOMERS_STREAM = 'customers.customer-created.v1';
export const SALES_STREAM = 'sales.orders.v1';

async function yamlFiles(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await yamlFiles(path)));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

const hostileProduct = `
apiVersion: v1.0.0
kind: DataProduct
id: urn:weft:product:hostile
name: '${HOSTILE_NAME.replace(/'/g, "''")}'
version: 1.0.0
status: active
domain: insights
description:
  purpose: '${HOSTILE_PURPOSE.replace(/'/g, "''")}'
tags: ['<svg onload=alert(1)>']
`;

export class WeftServer {
  constructor(child, url, dataDir, token) {
    this.child = child;
    this.url = url;
    this.dataDir = dataDir;
    this.token = token;
  }

  static async start() {
    const dataDir = await mkdtemp(join(tmpdir(), 'weft-browser-'));
    const child = spawn(BINARY, ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--kafka-listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: 'warn,weft=info' },
    });
    let log = '';
    const address = await new Promise((resolveAddress, reject) => {
      const timer = setTimeout(() => reject(new Error(`weft did not start within ${START_DEADLINE_MS} ms:\n${log}`)), START_DEADLINE_MS);
      const onData = (chunk) => {
        log += chunk;
        const match = /http=http:\/\/([0-9.]+:[0-9]+)/.exec(log.replace(/\x1b\[[0-9;]*m/g, ''));
        if (match) {
          clearTimeout(timer);
          resolveAddress(match[1]);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`weft exited with ${code} before it was ready:\n${log}`));
      });
    });
    const url = `http://${address}`;
    const deadline = Date.now() + START_DEADLINE_MS;
    for (;;) {
      try {
        if ((await fetch(`${url}/healthz`)).ok) break;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) throw new Error(`weft at ${url} did not answer /healthz in time`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Servers with governance write the first admin token here; older ones need none.
    const tokenFile = join(dataDir, 'admin.token');
    const token = await stat(tokenFile).then(() => readFile(tokenFile, 'utf8'), () => '');
    return new WeftServer(child, url, dataDir, token.trim());
  }

  headers(extra = {}) {
    return this.token ? { Authorization: `Bearer ${this.token}`, ...extra } : extra;
  }

  async request(method, path, body, contentType = 'application/json') {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: this.headers(body === undefined ? {} : { 'Content-Type': contentType }),
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // Not JSON.
    }
    return { status: response.status, json, text };
  }

  async produce(stream, data) {
    return this.request('POST', `/api/v1/streams/${encodeURIComponent(stream)}/events`, data);
  }

  /** Applies examples/ plus the hostile product, then produces valid and invalid events. */
  async seed() {
    const files = await yamlFiles(join(REPO, 'examples'));
    const sources = await Promise.all(files.map(async (path) => ({ name: path.slice(REPO.length + 1), text: await readFile(path, 'utf8') })));
    sources.push({ name: 'tests/browser/hostile.odps.yaml', text: hostileProduct });
    const applied = await this.request('POST', '/api/v1/apply', { sources });
    if (applied.status !== 200) throw new Error(`apply failed: ${applied.status} ${applied.text}`);

    // A second version of the customers contract, so the schema tab has a changelog.
    const v1 = await readFile(join(REPO, 'examples/customers/customer-created.odcs.yaml'), 'utf8');
    const v2 = v1.replace(/^version: 1\.0\.0$/m, 'version: 1.1.0')
      .replace(/^slaProperties:/m, '      - name: loyalty_tier\n        logicalType: string\n        description: Bronze, silver or gold.\nslaProperties:');
    const second = await this.request('POST', '/api/v1/apply', { sources: [{ name: 'customer-created-v1.1.0.odcs.yaml', text: v2 }] });
    if (second.status !== 200) throw new Error(`apply of v1.1.0 failed: ${second.status} ${second.text}`);

    const now = new Date().toISOString();
    for (let i = 0; i < 12; i += 1) {
      const ok = await this.produce(CUSTOMERS_STREAM, {
        customer_id: `0191b3f2-7c1e-7a4b-9e0f-${String(i).padStart(12, '0')}`,
        email: `person${i}@example.com`, name: `Person ${i}`, country: 'DE', created_at: now,
      });
      if (ok.status >= 300) throw new Error(`valid customer refused: ${ok.status} ${ok.text}`);
    }
    // Invalid customers: a bad email, a missing name, a lowercase country.
    await this.produce(CUSTOMERS_STREAM, { customer_id: '0191b3f2-7c1e-7a4b-9e0f-aaaaaaaaaaaa', email: 'not-an-email', name: 'Bad Email', created_at: now });
    await this.produce(CUSTOMERS_STREAM, { customer_id: '0191b3f2-7c1e-7a4b-9e0f-bbbbbbbbbbbb', email: 'b@example.com', created_at: now });
    await this.produce(CUSTOMERS_STREAM, { customer_id: '0191b3f2-7c1e-7a4b-9e0f-cccccccccccc', email: 'c@example.com', name: 'C', country: 'de', created_at: now });
    for (let i = 0; i < 6; i += 1) {
      await this.produce(SALES_STREAM, {
        order_id: `0191b3f2-7c1e-7a4b-9e0f-${String(100 + i).padStart(12, '0')}`, amount: 10 + i, currency: i === 5 ? 'XXX' : 'EUR', quantity: 1,
        placed_at: now, customer: { customer_id: '0191b3f2-7c1e-7a4b-9e0f-000000000001', email: 'person1@example.com' },
        lines: [{ sku: 'SKU-1', quantity: 1 }],
      });
    }
    // A consumer group that read some customers and then fell behind, so lag shows.
    await this.request('POST', `/api/v1/streams/${CUSTOMERS_STREAM}/groups/billing/poll`, { member: 'billing-1', max_events: 5 });
  }

  /** A token for a principal that owns no domain: it may read the catalog, not dead letters. */
  async viewerToken() {
    const principal = await this.request('POST', '/api/v1/principals', { name: 'viewer' });
    if (principal.status !== 201) throw new Error(`creating a principal failed: ${principal.status} ${principal.text}`);
    const token = await this.request('POST', '/api/v1/tokens', { principal: 'viewer' });
    if (token.status !== 201) throw new Error(`creating a token failed: ${token.status} ${token.text}`);
    return token.json.token;
  }

  async stop() {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once('exit', r));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10000);
      await exited;
      clearTimeout(timer);
    }
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
