// The seeds' own client pages (tests/browser/seeds/, copied unchanged from
// shared/seeds/) talk to each other through wschat. They send plain text;
// wschat answers with JSON, which these pages show as it is, so each test
// checks that the text one page sends shows up in another page; the
// nodejs-websocket page, which shows every message as it comes, also shows
// the room's join and leave notices (issue 24: a small room still names
// who comes and goes).
//
// wschat has permessage-deflate on (its default) and Chromium offers it: each
// test checks, from the 101 Chromium received, that it was negotiated.
//
// The only change is the WebSocket address, replaced as the page is served
// (see seeds/README.md).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { HERE, freePort, launch, recordHandshakes, server, tag } from './helpers.mjs';

let browser, srv, pages;
const SEEDS = path.join(HERE, 'seeds');

before(async () => {
  [browser, srv] = await Promise.all([launch(), server()]);
  const wsBase = srv.url.replace(/^http/, 'ws');
  // A tiny static server: the seed pages, with their one WebSocket address
  // pointed at the server under test; 404 for anything else.
  const port = await freePort();
  pages = http.createServer((req, res) => {
    const name = decodeURIComponent(req.url.slice(1).split('?')[0]);
    if (!/^\d{3}-client\.html$/.test(name)) { res.writeHead(404).end(); return; }
    const page = readFileSync(path.join(SEEDS, name), 'utf8');
    const addresses = page.match(/ws:\/\/(?:localhost|127\.0\.0\.1):\d+/g) || [];
    assert.equal(addresses.length, 1, `${name} should hold exactly one WebSocket address`);
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(page.replace(addresses[0], wsBase));
  });
  await new Promise((resolve) => pages.listen(port, '127.0.0.1', resolve));
  pages.base = `http://127.0.0.1:${port}`;
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  await new Promise((resolve) => (pages ? pages.close(resolve) : resolve()));
});

async function open(file) {
  const context = await browser.newContext({ locale: 'zh-CN' });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.on('dialog', (d) => { page.dialogs = (page.dialogs || []).concat(d.message()); d.dismiss(); });
  page.handshakes = await recordHandshakes(page);
  await page.goto(`${pages.base}/${file}`);
  return page;
}

/**
 * The pages' WebSockets negotiated permessage-deflate (RFC 7692): Chromium
 * offers it and wschat, on by default, accepts, so these messages went
 * compressed where that made them smaller.
 */
function assertDeflate(...ps) {
  for (const p of ps) {
    const accepted = p.handshakes.filter((h) => h.status === 101);
    assert.ok(accepted.length > 0, 'a handshake was seen');
    for (const h of accepted) assert.match(h.extensions || '', /^permessage-deflate\b/, JSON.stringify(h));
  }
}

/** Wait until the page's text holds `text`; return the chat message that carried it. */
async function received(page, selector, text) {
  await page.waitForFunction(([s, t]) => document.querySelector(s)?.textContent.includes(t), [selector, text]);
  const raw = await page.$eval(selector, (e) => e.textContent);
  // The page shows wschat's JSON as it came: find the object around the text.
  const at = raw.indexOf(text);
  for (let start = raw.lastIndexOf('{', at); start >= 0; start = raw.lastIndexOf('{', start - 1)) {
    for (let end = raw.indexOf('}', at); end >= 0; end = raw.indexOf('}', end + 1)) {
      try {
        const m = JSON.parse(raw.slice(start, end + 1));
        if (typeof m.text === 'string' && m.text.includes(text)) return m;
      } catch (_) { /* not this slice */ }
    }
  }
  throw new Error(`no JSON message around ${JSON.stringify(text)} in ${JSON.stringify(raw.slice(0, 500))}`);
}

/**
 * Wait until a seed-000 page (one `div` per message, as it came) shows a
 * wschat message of `type` naming the user `id` among its `users`.
 */
async function shows(page, type, id) {
  await page.waitForFunction(([t, i]) => [...document.querySelectorAll('body > div')].some((d) => {
    try {
      const m = JSON.parse(d.textContent);
      return m.type === t && (m.users || []).some((u) => u.id === i);
    } catch (_) { return false; }
  }), [type, id]);
}

/** The id of the user a seed-000 page was welcomed as. */
async function welcomedAs(page) {
  const handle = await page.waitForFunction(() => {
    for (const d of document.querySelectorAll('body > div')) {
      try {
        const m = JSON.parse(d.textContent);
        if (m.type === 'welcome') return m.user.id;
      } catch (_) { /* not a message */ }
    }
    return undefined;
  });
  return handle.jsonValue();
}

test('seed 000 (nodejs-websocket demo page): two pages exchange messages, and see each other join and leave', { timeout: 60_000 }, async () => {
  const [a, b] = [await open('000-client.html'), await open('000-client.html')];
  for (const p of [a, b]) {
    await p.click('text=打开服务');
    await p.waitForFunction(() => document.getElementById('board').textContent === '已连接');
  }
  // The page shows the room's notices as they come: A sees B enter.
  const [aId, bId] = [await welcomedAs(a), await welcomedAs(b)];
  assert.notEqual(aId, bId);
  await shows(a, 'join', bId);
  const t = tag();
  await a.fill('#sendText', `你好，我是 A ${t}`);
  await a.click('button:text-is("发送")');
  const m = await received(b, 'body', `你好，我是 A ${t}`);
  assert.equal(m.type, 'chat');
  assert.equal(m.text, `你好，我是 A ${t}`);
  await b.fill('#sendText', `B here ${t}`);
  await b.click('button:text-is("发送")');
  await received(a, 'body', `B here ${t}`);
  assertDeflate(a, b);
  // Its "关闭服务" button closes the connection, and the page says so.
  await a.click('text=关闭服务');
  await a.waitForFunction(() => document.getElementById('board').textContent === '已断开');
  // ... and B sees A leave.
  await shows(b, 'leave', aId);
});

test('seed 003 (two-person chat page): two pages exchange messages', { timeout: 60_000 }, async () => {
  const [a, b] = [await open('003-client.html'), await open('003-client.html')];
  // The page wants a Chinese name of 2 to 10 characters, and sends it first.
  for (const [p, name] of [[a, '张三'], [b, '李四']]) {
    await p.fill('#name', name);
    await p.click('#conn');
    // It lets one type once the server has said something.
    await p.waitForFunction(() => !document.getElementById('value1').readOnly);
  }
  const t = tag();
  await a.fill('#value1', `你好 ${t}`);
  await a.click('#send');
  const m = await received(b, '#mess', `张三说:你好 ${t}`);
  assert.equal(m.type, 'chat');
  assert.equal(m.text, `张三说:你好 ${t}`);
  // The other way, with the page's Enter key handler.
  await b.fill('#value1', `收到 ${t}`);
  await b.press('#value1', 'Enter');
  await received(a, '#mess', `李四说:收到 ${t}`);
  assertDeflate(a, b);
  assert.deepEqual([a.dialogs, b.dialogs], [undefined, undefined]);
});

test('seed 004 (start_song page): two pages exchange messages', { timeout: 60_000 }, async () => {
  const [a, b] = [await open('004-client.html'), await open('004-client.html')];
  // The page connects at once and sends 'start_song'; wschat relays it as a
  // chat message, which the page shows.
  for (const p of [a, b]) await p.waitForFunction(() => document.getElementById('contact').textContent.includes('"text":"start_song"'));
  const t = tag();
  await a.fill('#msgBox', `song says hi ${t}`);
  await a.click('#btn');
  const m = await received(b, '#contact', `song says hi ${t}`);
  assert.equal(m.type, 'chat');
  await b.fill('#msgBox', `peng answers ${t}`);
  await b.click('#btn');
  await received(a, '#contact', `peng answers ${t}`);
  assertDeflate(a, b);
  assert.equal(await a.inputValue('#msgBox'), '');
});
