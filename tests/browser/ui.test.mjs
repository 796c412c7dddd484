// The web UI in a real browser: Debian's headless Chromium driven by playwright-core, against
// the real `weft serve` with the example mesh. The tests prove what a person can do: sign in,
// search, open a product, read its schema and freshness, follow the lineage graph, see why
// events were refused, watch a live tail, and that hostile strings stay text on any screen.
// They wait on page state (locators), never on fixed sleeps; screenshots go to
// target/browser-screenshots/ so a person can look at them.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CUSTOMERS, CUSTOMERS_STREAM, HOSTILE_NAME, HOSTILE_PURPOSE, INSIGHTS, REPO, WeftServer } from './weft-server.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOTS = join(REPO, 'target/browser-screenshots');
/** Longest wait for any page state. */
const STATE_TIMEOUT_MS = 15000;

let server;
let browser;
let userDataDir;
let context;

const productUrl = (id, tab = '') => `${server.url}/#/products/${encodeURIComponent(id)}${tab ? `/${tab}` : ''}`;

async function shot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** A page whose browser already holds the token, as after signing in once. */
async function signedInPage(viewport = { width: 1280, height: 900 }) {
  // A persistent context ignores newPage() options, so the viewport is set on the page.
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.setDefaultTimeout(STATE_TIMEOUT_MS);
  const errors = [];
  page.on('pageerror', (error) => errors.push(error));
  page.errors = errors;
  return page;
}

before(async () => {
  await mkdir(SCREENSHOTS, { recursive: true });
  server = await WeftServer.start();
  await server.seed();
  userDataDir = await mkdtemp(join(tmpdir(), 'weft-chromium-'));
  // A persistent context gives the browser the fresh user-data-dir the suite asks for.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  browser = context.browser();
  if (server.token) {
    await context.addInitScript((token) => localStorage.setItem('weft.token', token), server.token);
  }
});

after(async () => {
  await context?.close();
  await browser?.close();
  if (userDataDir) await rm(userDataDir, { recursive: true, force: true });
  await server?.stop();
});

describe('weft web UI', () => {
  test('a browser without a token sees a sign-in form and no product data, then signs in', async (t) => {
    const fresh = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await fresh.newPage({ viewport: { width: 1100, height: 700 } });
      page.setDefaultTimeout(STATE_TIMEOUT_MS);
      const response = await page.goto(`${server.url}/`);
      assert.equal(response.status(), 200);
      assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
      if (!server.token) {
        t.diagnostic('this server has no authentication; only checking that the catalog shows');
        await page.locator('.product-card').first().waitFor();
        return;
      }
      await page.locator('#sign-in-form').waitFor();
      await shot(page, '01-sign-in');
      assert.equal(await page.locator('.product-card').count(), 0);
      const text = await page.locator('main').innerText();
      assert.doesNotMatch(text, /Customers|at .*\.js|Error:/, 'no product data and no stack trace');
      await page.locator('#token-input').fill(server.token);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.locator('.product-card').first().waitFor();
      await page.locator('#sign-out').waitFor();
      // A wrong token is refused with a readable message, not a stack trace.
      await page.evaluate(() => localStorage.setItem('weft.token', 'weft_0000000000000000000000000000000000000000000000000000000000000000000000000000000000'));
      await page.reload();
      await page.locator('#sign-in-form .notice').waitFor();
      assert.match(await page.locator('#sign-in-form .notice').innerText(), /not accepted/);
    } finally {
      await fresh.close();
    }
  });

  test('search for "customer email" finds the customers product and says why it matched', async () => {
    const page = await signedInPage();
    await page.goto(`${server.url}/`);
    await page.locator('.product-card').first().waitFor();
    await shot(page, '02-catalog');
    await page.getByRole('searchbox').fill('customer email');
    await page.getByRole('searchbox').press('Enter');
    const hit = page.locator(`.hit[data-product="${CUSTOMERS}"]`).first();
    await hit.waitFor();
    await hit.locator('.matched mark').first().waitFor();
    assert.match(await hit.locator('.matched').innerText(), /email/i);
    await shot(page, '03-search');
    await hit.locator('h2 a').click();
    await page.locator('#product-name').waitFor();
    assert.match(page.url(), /#\/products\/urn%3Aweft%3Aproduct%3Acustomers/);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('a product page shows its schema with classifications and its freshness', async () => {
    const page = await signedInPage();
    await page.goto(productUrl(CUSTOMERS));
    await page.locator('#product-name', { hasText: 'Customers' }).waitFor();
    const freshness = page.locator(`[data-stream="${CUSTOMERS_STREAM}"] [data-kpi="freshness"] .freshness`);
    await freshness.waitFor();
    assert.match(await freshness.getAttribute('data-status'), /^(on_time|late)$/);
    assert.match(await freshness.innerText(), /On time|Late/);
    await page.locator('#owners', { hasText: 'ana@example.com' }).waitFor();
    await page.locator('#support a', { hasText: 'customer-platform' }).waitFor();
    await page.locator('#slas', { hasText: 'latency' }).waitFor();
    await page.locator('.chart-figure svg').first().waitFor();
    await shot(page, '04-product-overview');

    await page.getByRole('tab', { name: 'Schema' }).click();
    const email = page.locator('table.schema tr[data-field="email"]');
    await email.waitFor();
    assert.match(await email.locator('.classification').innerText(), /pii/i);
    assert.match(await page.locator('table.schema tr[data-field="country"]').innerText(), /ISO 3166-1/);
    await page.locator('.versions', { hasText: '1.0.0' }).waitFor();
    await page.locator('.versions', { hasText: '1.1.0 (current)' }).waitFor();
    await page.locator('.changelog li', { hasText: '1.0.0 → 1.1.0' }).locator('code', { hasText: 'loyalty_tier' }).waitFor();
    await shot(page, '05-product-schema');

    await page.getByRole('tab', { name: 'Quality' }).click();
    await page.locator('.quality [data-kpi="rejected"] .kpi-value', { hasText: '3' }).waitFor();
    await shot(page, '06-product-quality');
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('the lineage graph is drawn and a click on an upstream product opens it', async () => {
    const page = await signedInPage();
    await page.goto(productUrl(INSIGHTS, 'lineage'));
    const graph = page.locator('svg.lineage');
    await graph.waitFor();
    assert.ok((await graph.locator('.edge').count()) >= 3, 'edges are drawn');
    await shot(page, '07-lineage');
    const upstream = graph.locator(`a.node-link:has(g[data-product="${CUSTOMERS}"])`);
    await upstream.click();
    await page.locator('#product-name', { hasText: 'Customers' }).waitFor();
    await page.waitForURL(/customers\/lineage$/);
    // The customers product's own graph has the insights product downstream.
    await page.locator(`svg.lineage g.root[data-product="${CUSTOMERS}"]`).waitFor();
    await page.locator(`svg.lineage g[data-product="${INSIGHTS}"]`).waitFor();
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('dead letters are grouped by reason with the failing fields highlighted', async () => {
    const page = await signedInPage();
    await page.goto(productUrl(CUSTOMERS, 'dead-letters'));
    const failing = page.locator('.json-line.failing').first();
    await failing.waitFor();
    assert.ok((await page.locator('section.reason').count()) >= 2, 'more than one reason');
    await page.locator('.json-line.failing[data-pointer="/email"]').waitFor();
    await page.locator('.json-line.failing[data-pointer="/name"]', { hasText: '(missing)' }).waitFor();
    await shot(page, '08-dead-letters');
    await page.close();
  });

  test('the live tail shows an event produced after it opened, and pauses', async () => {
    const page = await signedInPage();
    await page.goto(productUrl(CUSTOMERS, 'live'));
    await page.locator('.live-status[data-state="live"]').waitFor();
    const marker = `live-${Date.now()}@example.com`;
    const produced = await server.produce(CUSTOMERS_STREAM, {
      customer_id: '0191b3f2-7c1e-7a4b-9e0f-dddddddddddd', email: marker, name: 'Live', created_at: new Date().toISOString(),
    });
    assert.ok(produced.status < 300, produced.text);
    await page.locator('.live-event', { hasText: marker }).waitFor();
    await shot(page, '09-live-tail');
    await page.locator('#live-pause').click();
    await page.locator('.live-status[data-state="paused"]').waitFor();
    await page.locator('#live-pause').click();
    await page.locator('.live-status[data-state="live"]').waitFor();
    await page.close();
  });

  test('a viewer who may not read dead letters is told so, with no data and no stack trace', async (t) => {
    if (!server.token) {
      t.skip('this server has no authentication');
      return;
    }
    const viewer = await server.viewerToken();
    const page = await signedInPage();
    await page.goto(`${server.url}/`);
    await page.evaluate((token) => localStorage.setItem('weft.token', token), viewer);
    // The init script puts the admin token back on navigation; this page keeps the viewer's.
    await page.evaluate(() => { location.hash = '#/products/urn%3Aweft%3Aproduct%3Acustomers/dead-letters'; });
    const forbidden = page.locator('.notice.forbidden');
    await forbidden.waitFor();
    assert.match(await forbidden.innerText(), /You may not see this/);
    assert.equal(await page.locator('.json-line').count(), 0);
    assert.doesNotMatch(await page.locator('main').innerText(), /not-an-email|\.js:\d+|Error:/);
    await shot(page, '10-forbidden');
    await page.close();
  });

  test('hostile product strings render as text', async () => {
    const page = await signedInPage();
    await page.goto(productUrl('urn:weft:product:hostile'));
    await page.locator('#product-name').waitFor();
    assert.equal(await page.locator('#product-name').innerText(), HOSTILE_NAME);
    assert.equal(await page.locator('#product-description').innerText(), HOSTILE_PURPOSE);
    assert.equal(await page.locator('main img, main script, main b, main svg[onload]').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    await page.goto(`${server.url}/#/`);
    await page.locator('.product-card', { hasText: 'Hostile' }).waitFor();
    assert.equal(await page.locator('main img, main script').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    await shot(page, '11-hostile');
    await page.close();
  });

  test('at 375 px wide the product page is readable without sideways scrolling', async () => {
    const page = await signedInPage({ width: 375, height: 812 });
    await page.goto(productUrl(CUSTOMERS));
    await page.locator('#product-name', { hasText: 'Customers' }).waitFor();
    await page.locator(`[data-stream="${CUSTOMERS_STREAM}"] .freshness`).waitFor();
    assert.ok(await page.locator('#product-name').isVisible());
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page is ${overflow} px wider than the screen`);
    await shot(page, '12-narrow-overview');
    await page.getByRole('tab', { name: 'Schema' }).click();
    await page.locator('table.schema tr[data-field="email"]').waitFor();
    await shot(page, '13-narrow-schema');
    await page.close();
  });
});
