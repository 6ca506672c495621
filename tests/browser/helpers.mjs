// Shared helpers for the browser tests: a Chromium to drive, a wschat server
// to talk to, and a chat page that has joined with a name.
//
// The server is the one .ci/browser.sh started (WSCHAT_URL); run alone
// (`node --test tests/browser/`), the tests start their own from
// target/release/wschat (or WSCHAT_BIN) on a free port.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(HERE, '../..');
export const BIN = process.env.WSCHAT_BIN || path.join(ROOT, 'target/release/wschat');

/**
 * Record the opening handshakes of `page`'s WebSockets as Chromium saw them
 * (CDP Network events): an array, filled as they happen, of
 * { url, status, extensions } where extensions is the 101's
 * Sec-WebSocket-Extensions (null when absent). Call before navigating.
 */
export async function recordHandshakes(page) {
  const seen = [];
  const urls = new Map();
  const cdp = await page.context().newCDPSession(page);
  cdp.on('Network.webSocketCreated', (e) => urls.set(e.requestId, e.url));
  cdp.on('Network.webSocketHandshakeResponseReceived', (e) => {
    const headers = e.response.headers || {};
    const name = Object.keys(headers).find((h) => h.toLowerCase() === 'sec-websocket-extensions');
    seen.push({ url: urls.get(e.requestId), status: e.response.status, extensions: name ? headers[name] : null });
  });
  await cdp.send('Network.enable');
  return seen;
}

/** A short random tag, so that names and texts of one run never collide. */
export const tag = () => Math.random().toString(36).slice(2, 8);

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** A TCP port nobody listens on now, above 24000. */
export async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = 24000 + Math.floor(Math.random() * 36000);
    const ok = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port found');
}

async function healthy(url, deadline) {
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url + '/healthz', { signal: AbortSignal.timeout(1000) });
      if (r.ok) return;
    } catch (_) { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`wschat did not answer ${url}/healthz in time`);
}

/**
 * Start `wschat serve` on 127.0.0.1:port (a free one if not given), in a
 * fresh temporary directory, and wait until /healthz answers. Options:
 * dataDir (the --data-dir to use instead of one inside the temporary
 * directory; the caller owns it, stop() leaves it), args (more flags for
 * `serve`, e.g. ['--agent-grace', '5s']).
 */
export async function startServer(port, opts = {}) {
  port = port || (await freePort());
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wschat-browser-'));
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', opts.dataDir || path.join(dir, 'data'), ...(opts.args || [])];
  const child = spawn(BIN, args, {
    cwd: dir,
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await Promise.race([
    healthy(url, Date.now() + 15_000),
    exited.then((code) => { throw new Error(`wschat exited early (${code})`); }),
  ]);
  return {
    url,
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The server under test: WSCHAT_URL, or one started for this test file. */
export async function server() {
  if (process.env.WSCHAT_URL) return { url: process.env.WSCHAT_URL.replace(/\/$/, ''), stop: async () => {} };
  return startServer();
}

/**
 * Open the chat page in a new browser context, enter `name` in the welcome
 * dialog and wait until the page says it is connected. Options: locale,
 * colorScheme, viewport, deviceScaleFactor, isMobile, room (opened as
 * #room), routeWebSocket (a Playwright WebSocket route handler),
 * recordHandshakes (page.handshakes: see recordHandshakes).
 */
export async function chatPage(browser, base, name, opts = {}) {
  const context = await browser.newContext({
    locale: opts.locale || 'en-US',
    colorScheme: opts.colorScheme || 'light',
    viewport: opts.viewport || { width: 1100, height: 760 },
    deviceScaleFactor: opts.deviceScaleFactor || 1,
    isMobile: !!opts.isMobile,
    hasTouch: !!opts.isMobile,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('pageerror', (e) => { page.errors = (page.errors || []).concat(String(e)); });
  if (opts.routeWebSocket) await page.routeWebSocket(() => true, opts.routeWebSocket);
  if (opts.recordHandshakes) page.handshakes = await recordHandshakes(page);
  await page.goto(base + '/' + (opts.room ? '#' + encodeURIComponent(opts.room) : ''));
  await page.fill('#welcomeName', name);
  await page.press('#welcomeName', 'Enter');
  await page.waitForSelector('#status[data-state="open"]');
  if (opts.room) await waitText(page, '#roomName', opts.room);
  return page;
}

/** Send `text` the way a person does: type it, press Enter. */
export async function say(page, text) {
  await page.fill('#input', text);
  await page.press('#input', 'Enter');
}

/** Wait until the element matching `selector` has exactly `text`. */
export function waitText(page, selector, text) {
  return page.waitForFunction(
    ([s, t]) => { const e = document.querySelector(s); return !!e && e.textContent === t; },
    [selector, text],
  );
}

/** Wait until a message bubble in the list has exactly `text`. */
export function waitMessage(page, text) {
  return page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages .bubble')].some((b) => b.textContent === t),
    text,
  );
}

/** The texts of all message bubbles in the list. */
export function bubbles(page) {
  return page.$$eval('#messages .bubble', (bs) => bs.map((b) => b.textContent));
}

/** The names in the member list. */
export function memberNames(page) {
  return page.$$eval('#users li .n', (ns) => ns.map((n) => n.textContent));
}

/**
 * Create a support-desk agent with `wschat agent add NAME --data-dir DIR`
 * and return the login token it prints (only that once).
 */
export function addAgent(name, dataDir, extra = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['agent', 'add', name, '--data-dir', dataDir, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('error', (e) => { clearTimeout(t); reject(e); });
    child.once('exit', (code) => {
      clearTimeout(t);
      const token = out.match(/^\s*([0-9a-f]{32})\s*$/m);
      if (code !== 0 || !token) reject(new Error(`wschat agent add ${name} failed (${code}): ${out}${err}`));
      else resolve(token[1]);
    });
  });
}
