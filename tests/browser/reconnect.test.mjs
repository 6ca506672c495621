// The page reconnects by itself when the server goes away and comes back,
// says so in words meanwhile, and returns to the same name and room.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT, bubbles, chatPage, launch, say, startServer, tag, waitMessage, waitText } from './helpers.mjs';

let browser, srv;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); await srv?.stop(); });

test('reconnects with backoff after the server restarts, keeping name and room', { timeout: 60_000 }, async () => {
  // A server of this test's own, since it is stopped and started again.
  srv = await startServer();
  const t = tag();
  const room = 'again-' + t;
  const a = await chatPage(browser, srv.url, '重连-' + t, { locale: 'zh-CN', room });
  await waitText(a, '#statusText', '已连接');
  await say(a, 'before ' + t);
  await waitMessage(a, 'before ' + t);

  // Record every change of the connection state, with its time.
  await a.evaluate(() => {
    const s = document.getElementById('status');
    window.__states = [];
    new MutationObserver(() => window.__states.push([s.dataset.state, performance.now()]))
      .observe(s, { attributes: true, attributeFilter: ['data-state'] });
  });
  const port = srv.port;
  await srv.stop();
  await a.waitForSelector('#status[data-state="closed"]');
  assert.match(await a.textContent('#statusText'), /^已断开 · \d+ 秒后重连$/);
  // While disconnected, sending keeps the text and says why.
  await say(a, 'while down');
  await a.waitForSelector('#toast.show.err');
  assert.equal(await a.inputValue('#input'), 'while down');
  mkdirSync(path.join(ROOT, 'target/screenshots'), { recursive: true });
  await a.screenshot({ path: path.join(ROOT, 'target/screenshots/disconnected.png') });
  await a.fill('#input', '');
  // Attempts keep failing while the server is down; the page keeps trying,
  // waiting longer each time (0.25-0.5 s, 0.5-1 s, 1-2 s, … with jitter).
  await a.waitForFunction(() => window.__states.filter(([s]) => s === 'reconnecting').length >= 3, null, { timeout: 15_000 });
  const tries = (await a.evaluate(() => window.__states)).filter(([s]) => s === 'reconnecting').map(([, at]) => at);
  const gaps = tries.slice(1).map((at, i) => at - tries[i]);
  assert.ok(gaps[0] >= 450 && gaps[1] > gaps[0], `the waits grow: ${gaps.map(Math.round)}`);

  srv = await startServer(port);
  await waitText(a, '#statusText', '已连接');
  await waitText(a, '#roomName', room);
  const b = await chatPage(browser, srv.url, 'Other-' + t, { room });
  await b.waitForFunction((n) => [...document.querySelectorAll('#users li .n')].some((e) => e.textContent === n), '重连-' + t);
  await say(a, 'after ' + t);
  await waitMessage(b, 'after ' + t);
  // What was on screen before the restart is still there.
  await waitMessage(a, 'before ' + t);
  assert.deepEqual(a.errors || [], []);
});

test('a dropped connection comes back to its room and resumes what it missed', { timeout: 60_000 }, async () => {
  const t = tag();
  const room = 'resume-' + t;
  // The page's sockets go through a route, so the test can drop one and
  // hold the next until messages were sent in between.
  const routes = [];
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const handler = async (ws) => {
    routes.push(ws);
    if (routes.length > 1) await held;
    ws.server = ws.connectToServer();
  };
  const a = await chatPage(browser, srv.url, 'Away-' + t, { room, routeWebSocket: handler });
  const b = await chatPage(browser, srv.url, 'Stay-' + t, { room });
  await say(a, 'first ' + t);
  await waitMessage(b, 'first ' + t);
  await waitMessage(a, 'first ' + t);

  await routes[0].server.close();
  await routes[0].close({ code: 1006 });
  await a.waitForSelector('#status[data-state="closed"]');
  await b.waitForFunction((n) => ![...document.querySelectorAll('#users li .n')].some((e) => e.textContent === n), 'Away-' + t);
  await say(b, 'missed one ' + t);
  await say(b, 'missed two ' + t);
  await waitMessage(b, 'missed two ' + t);

  // The page tries again, asking for its room and what came after the last
  // message it saw, with its session.
  const deadline = Date.now() + 15_000;
  while (routes.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const again = new URL(routes[1].url());
  assert.equal(again.searchParams.get('room'), room);
  assert.equal(again.searchParams.get('name'), 'Away-' + t);
  assert.match(again.searchParams.get('since') || '', /^\d+$/);
  assert.match(again.searchParams.get('session') || '', /.+/);
  release();

  await waitText(a, '#statusText', 'Connected');
  await waitMessage(a, 'missed one ' + t);
  await waitMessage(a, 'missed two ' + t);
  const texts = await bubbles(a);
  assert.equal(texts.filter((x) => x === 'first ' + t).length, 1, 'nothing is shown twice');
  assert.deepEqual(texts.slice(-3), ['first ' + t, 'missed one ' + t, 'missed two ' + t]);
  // Its own message is still its own.
  assert.equal(await a.$eval('#messages li.msg[data-id]', (li) => li.classList.contains('mine')), true);
  await say(a, 'back ' + t);
  await waitMessage(b, 'back ' + t);
});
