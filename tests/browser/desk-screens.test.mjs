// The agent console (/agent) as an agent sees it all day, in the chat page's
// design language: a desktop in light mode (English) and a phone in dark
// mode (Chinese), first with nothing to do (every list says so), then in a
// conversation; plus the phone's drawer. Pictures go to target/screenshots/
// (agent-desktop-*.png, agent-phone-*.png). On a phone the header is one row.
//
// Own server, own data directory (the agent lives in agents.json there).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, addAgent, launch, startServer, tag, waitText } from './helpers.mjs';

const OUT = path.join(ROOT, 'target/screenshots');
const WAIT = { timeout: 10_000 };
let browser, srv, tmp;
const tokens = {};

before(async () => {
  mkdirSync(OUT, { recursive: true });
  tmp = mkdtempSync(path.join(os.tmpdir(), 'wschat-desk-screens-'));
  const dataDir = path.join(tmp, 'data');
  tokens.mei = await addAgent('美美', dataDir);
  tokens.ann = await addAgent('ann', dataDir);
  [browser, srv] = await Promise.all([launch(), startServer(undefined, { dataDir })]);
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function page(opts) {
  const context = await browser.newContext({
    locale: opts.locale, colorScheme: opts.colorScheme, viewport: opts.viewport,
    deviceScaleFactor: opts.phone ? 2 : 1, isMobile: !!opts.phone, hasTouch: !!opts.phone,
  });
  const p = await context.newPage();
  p.setDefaultTimeout(10_000);
  p.errors = [];
  p.on('pageerror', (e) => p.errors.push(String(e)));
  return p;
}

async function signIn(p, token, name) {
  await p.goto(srv.url + '/agent');
  await p.fill('#token', token);
  await p.click('#login-btn');
  await p.waitForSelector('#app', { state: 'visible', ...WAIT });
  await waitText(p, '#me', name);
}

/** The header's height, and whether its visible children share one row (one horizontal line crosses them all). */
function header(p) {
  return p.evaluate(() => {
    const h = document.querySelector('header.top');
    const boxes = [...h.children].filter((c) => c.offsetParent).map((c) => c.getBoundingClientRect());
    const oneRow = Math.max(...boxes.map((r) => r.top)) < Math.min(...boxes.map((r) => r.bottom));
    return { height: h.getBoundingClientRect().height, oneRow };
  });
}

const emptyLines = (p) => p.$$eval('#lists .empty', (es) => es.map((e) => e.textContent));

test('agent console: desktop light (en) and phone dark (zh), idle and busy', { timeout: 90_000 }, async () => {
  const t = tag();
  const desk = await page({ locale: 'en-US', colorScheme: 'light', viewport: { width: 1280, height: 800 } });
  await signIn(desk, tokens.ann, 'ann');
  const phone = await page({ locale: 'zh-CN', colorScheme: 'dark', viewport: { width: 390, height: 844 }, phone: true });
  await signIn(phone, tokens.mei, '美美');

  // Nothing to do yet: every list says so, in the page's language.
  await desk.waitForFunction(() => document.querySelectorAll('#agents .item').length === 2, null, WAIT);
  assert.deepEqual(await emptyLines(desk), ['No conversations yet. New visitors are assigned to you here.', 'Nobody is waiting']);
  await desk.screenshot({ path: path.join(OUT, 'agent-desktop-idle.png') });
  // On a phone with nothing selected the drawer is open, and says so too.
  await phone.waitForFunction(() => document.querySelectorAll('#agents .item').length === 2, null, WAIT);
  assert.deepEqual(await emptyLines(phone), ['暂无会话。新访客会自动分配到这里。', '没有访客在排队']);
  await phone.waitForFunction(() => document.getElementById('lists').getBoundingClientRect().left === 0, null, WAIT);
  await phone.screenshot({ path: path.join(OUT, 'agent-phone-idle.png') });

  // The header is one row of 60 pixels on both.
  for (const p of [desk, phone]) assert.deepEqual(await header(p), { height: 60, oneRow: true });

  // 美美 steps away, so a visitor goes to ann; ann answers.
  await phone.click('#backdrop', { position: { x: 370, y: 400 } });
  await phone.selectOption('#presence', 'away');
  await desk.waitForFunction(() => [...document.querySelectorAll('#agents .item .meta')].some((m) => m.textContent.startsWith('Away')), null, WAIT);
  const visitor = await page({ locale: 'en-US', colorScheme: 'light', viewport: { width: 390, height: 844 }, phone: true });
  await visitor.goto(srv.url + '/support?page=' + encodeURIComponent('https://shop.example/checkout'));
  await waitText(visitor, '#status', 'Leave a message and an agent will reply soon.');
  const q = `Hello! My discount code SPRING-${t} is refused at checkout.`;
  await visitor.fill('#text', q);
  await visitor.press('#text', 'Enter');
  await desk.waitForFunction(() => document.querySelectorAll('#mine .item').length === 1, null, WAIT);
  assert.deepEqual(await desk.$$eval('#mine .empty', (es) => es.length), 0, 'the empty line goes once there is a conversation');
  await desk.fill('#text', 'Sorry about that! It expired yesterday; I have made you a new one: SPRING2.');
  await desk.press('#text', 'Enter');
  await visitor.waitForFunction(() => document.getElementById('log').textContent.includes('SPRING2'), null, WAIT);
  await visitor.fill('#text', 'That worked, thanks!');
  await visitor.press('#text', 'Enter');
  await desk.waitForFunction(() => document.getElementById('log').textContent.includes('That worked'), null, WAIT);
  await desk.fill('#text', 'You are welcome. /');
  await desk.screenshot({ path: path.join(OUT, 'agent-desktop-busy.png') });
  await desk.fill('#text', '');

  // ann transfers to 美美 once she is back: on the phone, the conversation.
  await phone.selectOption('#presence', 'online');
  await desk.waitForFunction(() => [...document.querySelectorAll('#to option')].some((o) => o.value === '美美'), null, WAIT);
  await desk.selectOption('#to', '美美');
  await desk.fill('#note', 'discount code: sent SPRING2');
  await desk.click('#transfer');
  await phone.waitForFunction(() => document.querySelectorAll('#mine .item').length === 1, null, WAIT);
  await phone.waitForFunction(() => document.getElementById('log').textContent.includes('That worked'), null, WAIT);
  await phone.waitForFunction(() => document.getElementById('lists').getBoundingClientRect().right <= 0, null, WAIT);
  assert.deepEqual(await header(phone), { height: 60, oneRow: true });
  await phone.fill('#text', '还有其他问题吗?');
  await phone.screenshot({ path: path.join(OUT, 'agent-phone-busy.png') });
  await phone.click('#drawer');
  await phone.waitForFunction(() => document.getElementById('lists').getBoundingClientRect().left === 0, null, WAIT);
  await phone.waitForTimeout(300); // the slide's end, for the picture
  await phone.screenshot({ path: path.join(OUT, 'agent-phone-drawer.png') });
  // Escape closes the drawer.
  await phone.keyboard.press('Escape');
  await phone.waitForFunction(() => !document.getElementById('lists').classList.contains('open'), null, WAIT);

  // Dark desktop, for a look at the other palette.
  const dark = await page({ locale: 'en-US', colorScheme: 'dark', viewport: { width: 1280, height: 800 } });
  await signIn(dark, tokens.ann, 'ann');
  await dark.waitForFunction(() => document.querySelectorAll('#agents .item').length === 2, null, WAIT);
  await dark.screenshot({ path: path.join(OUT, 'agent-desktop-dark.png') });

  for (const p of [desk, phone, visitor, dark]) assert.deepEqual(p.errors, []);
});
