// The HTTP API's effects in real pages (docs/api.md): a message a site's
// backend publishes shows on the chat page under the bot's name with 🤖,
// and a bot's reply to a support conversation shows in the visitor's widget
// and the agent's console the same way.
//
// This file starts its own server (with an API key and an agent), whatever
// WSCHAT_URL says.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addAgent, chatPage, launch, startServer, tag, waitMessage, waitText } from './helpers.mjs';

const KEY = 'browser-api-key';
const WAIT = { timeout: 10_000 };
let browser, srv, tmp, token;

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'wschat-api-'));
  const dataDir = path.join(tmp, 'data');
  token = await addAgent('alice', dataDir);
  [browser, srv] = await Promise.all([launch(), startServer(undefined, { dataDir, args: ['--api-key', KEY] })]);
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** A call of the API with the key; the JSON answer (a 200 is required). */
async function api(method, route, body) {
  const res = await fetch(srv.url + route, {
    method,
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  assert.equal(res.status, 200, JSON.stringify(json));
  return json;
}

test('a published message shows as the bot\'s on the chat page', async () => {
  const page = await chatPage(browser, srv.url, 'Ann' + tag());
  const text = 'Maintenance at 22:00 ' + tag();
  await api('POST', '/api/publish', { room: 'lobby', text, name: 'Ops' });
  await waitMessage(page, text);
  const who = await page.$$eval('#messages li', (lis, t) => {
    const li = lis.find((l) => l.querySelector('.bubble')?.textContent === t);
    return li?.querySelector('.who')?.textContent;
  }, text);
  assert.equal(who, 'Ops 🤖');
  assert.deepEqual(page.errors || [], []);
  await page.context().close();
});

test('a bot\'s desk reply shows in the widget and the console', async () => {
  const context = await browser.newContext({ locale: 'en-US' });
  const console_ = await context.newPage();
  await console_.goto(srv.url + '/agent');
  await console_.waitForSelector('#login', { state: 'visible', ...WAIT });
  await console_.fill('#token', token);
  await console_.click('#login-btn');
  await console_.waitForSelector('#app', { state: 'visible', ...WAIT });

  const visitor = await (await browser.newContext({ locale: 'en-US' })).newPage();
  await visitor.goto(srv.url + '/support');
  await waitText(visitor, '#status', 'Leave a message and an agent will reply soon.');
  const question = 'where is my parcel ' + tag();
  await visitor.fill('#text', question);
  await visitor.press('#text', 'Enter');

  // The conversation, found through the API once alice has it.
  let conversation;
  for (let i = 0; i < 100 && !conversation; i++) {
    const { conversations } = await api('GET', '/api/desk/conversations?state=open');
    conversation = conversations.find((c) => c.agent === 'alice');
    if (!conversation) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(conversation, 'alice got the conversation');
  const reply = 'Your parcel left the depot today ' + tag();
  await api('POST', `/api/desk/conversations/${conversation.id}/messages`, { text: reply, name: 'Helper' });
  const shows = (page) => page.waitForFunction((t) => [...document.querySelectorAll('#log .msg')].some((m) =>
    m.lastElementChild?.textContent === t && m.querySelector('.who')?.textContent.startsWith('Helper 🤖 · ')), reply, WAIT);
  await shows(visitor);
  await console_.click(`#mine .item`);
  await shows(console_);
});
