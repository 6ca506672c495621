// The customer-service desk end to end, in real pages: two agents (made with
// `wschat agent add`) sign in to the agent console (/agent), a visitor writes
// from the support widget (/support), alice answers, transfers the
// conversation to bob with a note, bob sees the history and answers, bob
// resolves, and the visitor rates. Screenshots of the console (desktop) and
// of the widget (phone) go to target/screenshots/.
//
// This file starts its own server on its own temporary data directory (the
// agents live in agents.json there), whatever WSCHAT_URL says.
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
  tmp = mkdtempSync(path.join(os.tmpdir(), 'wschat-desk-'));
  const dataDir = path.join(tmp, 'data');
  tokens.alice = await addAgent('alice', dataDir);
  tokens.bob = await addAgent('bob', dataDir);
  [browser, srv] = await Promise.all([launch(), startServer(undefined, { dataDir })]);
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function newPage(opts) {
  const context = await browser.newContext({
    locale: 'en-US',
    colorScheme: 'light',
    viewport: opts.viewport,
    deviceScaleFactor: opts.deviceScaleFactor || 1,
    isMobile: !!opts.isMobile,
    hasTouch: !!opts.isMobile,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  return page;
}

/** The agent console, signed in with `token`, for agent `name`. */
async function agentConsole(name, token) {
  const page = await newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(srv.url + '/agent');
  await page.waitForSelector('#login', { state: 'visible', ...WAIT });
  await page.fill('#token', token);
  await page.click('#login-btn');
  await page.waitForSelector('#app', { state: 'visible', ...WAIT });
  await waitText(page, '#me', name);
  assert.equal(await page.evaluate(() => localStorage.getItem('wschat.agent.token')), token);
  return page;
}

/** The visitor widget on a phone. */
async function visitorPage() {
  const page = await newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true });
  await page.goto(srv.url + '/support');
  await waitText(page, '#status', 'Leave a message and an agent will reply soon.');
  return page;
}

/** Type `text` in the page's #text box and press Enter. */
async function write(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** Wait until a message in #log has the body `text` (and, if given, its sender line starts with `who`). */
function waitMsg(page, text, who) {
  return page.waitForFunction(([t, w]) => [...document.querySelectorAll('#log .msg')].some((m) =>
    m.lastElementChild?.textContent === t && (w == null || m.querySelector('.who')?.textContent.startsWith(w + ' · '))),
  [text, who], WAIT);
}

/** Wait until a centred note in #log has exactly `text`. */
function waitNote(page, text) {
  return page.waitForFunction((t) => [...document.querySelectorAll('#log .note')].some((n) => n.textContent === t), text, WAIT);
}

/** The messages in #log: [sender line's name part, body, own?]. */
function transcript(page) {
  return page.$$eval('#log .msg', (ms) => ms.map((m) => [
    m.querySelector('.who').textContent.split(' · ')[0], m.lastElementChild.textContent, m.classList.contains('me'),
  ]));
}

/** Names (and meta) of the rows under #mine, #queue or #agents. */
function rows(page, list) {
  return page.$$eval(`#${list} .item`, (rs) => rs.map((r) => r.querySelector('.name').textContent));
}

test('a visitor talks to alice, is transferred to bob, is resolved and rates', { timeout: 120_000 }, async () => {
  const t = tag();
  const alice = await agentConsole('alice', tokens.alice);
  const bob = await agentConsole('bob', tokens.bob);

  // Both consoles list both agents; nobody has a conversation yet.
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => document.querySelectorAll('#agents .item').length === 2, null, WAIT);
    assert.deepEqual((await rows(p, 'agents')).sort(), ['alice', 'bob']);
    await waitText(p, '#h-queue', 'Queue (0)');
    assert.equal(await p.textContent('#log'), 'Pick a conversation on the left');
  }

  // bob steps away, so the router must give the first visitors to alice;
  // alice's console sees him away.
  await bob.selectOption('#presence', 'away');
  await alice.waitForFunction(() => [...document.querySelectorAll('#agents .item')].some((r) =>
    r.querySelector('.name').textContent === 'bob' && r.querySelector('.meta').textContent.startsWith('Away')), null, WAIT);
  // A transfer can only go to an online agent: bob is not offered now.
  assert.deepEqual(await alice.$$eval('#to option', (os) => os.map((o) => o.value)), ['']);

  // The visitor writes; the message shows as their own, and alice takes it.
  const visitor = await visitorPage();
  const q1 = `Hi, my order #${t} has not arrived yet. It was due on Monday.`;
  await write(visitor, q1);
  await waitMsg(visitor, q1, 'Me');
  await waitText(visitor, '#status', 'alice is helping you');
  assert.equal(await visitor.inputValue('#text'), '', 'the box is emptied after sending');

  // alice's console: the conversation is in "My conversations", selected,
  // with the visitor's message.
  await alice.waitForFunction(() => document.querySelectorAll('#mine .item').length === 1, null, WAIT);
  const visitorName = (await rows(alice, 'mine'))[0];
  // The default name follows the interface language (en-US here).
  assert.match(visitorName, /^Visitor \d+$/);
  await waitText(alice, '#conv-title', visitorName);
  await alice.waitForSelector('#mine .item.sel .dot.on', WAIT);
  await waitMsg(alice, q1, visitorName);
  assert.equal(await bob.$$eval('#mine .item', (r) => r.length), 0, 'bob, away, got nothing');

  // The visitor's typing shows in alice's console.
  await visitor.type('#text', 'Also', { delay: 30 });
  await waitText(alice, '#typing', 'The visitor is typing…');
  await visitor.fill('#text', '');

  // alice replies; the visitor sees it under alice's name.
  const a1 = 'Hello! Sorry about that. Let me look up the order for you.';
  await write(alice, a1);
  await waitMsg(visitor, a1, 'alice');
  await waitMsg(alice, a1, 'alice');
  const q2 = 'Thanks. The tracking page still says "label created".';
  await write(visitor, q2);
  await waitMsg(alice, q2, visitorName);
  await waitText(alice, '#typing', '');
  const a2 = 'It left our warehouse yesterday, so the tracking is just late.\nIt is a refund question now, though: I will pass you to bob from billing.';
  await write(alice, a2);
  await waitMsg(visitor, a2, 'alice');

  // A second visitor writes while alice is busy: her list shows it with an
  // unread badge, the open conversation stays selected.
  const other = await visitorPage();
  const o1 = 'Do you ship to Norway?';
  await write(other, o1);
  await waitText(other, '#status', 'alice is helping you');
  await alice.waitForFunction(() => document.querySelectorAll('#mine .item').length === 2, null, WAIT);
  await alice.waitForSelector('#mine .item:not(.sel) .badge', WAIT);
  assert.equal(await alice.textContent('#mine .item:not(.sel) .badge'), '1');
  await waitText(alice, '#conv-title', visitorName);

  // bob comes back; alice can now transfer to him.
  await bob.selectOption('#presence', 'online');
  await alice.waitForFunction(() => [...document.querySelectorAll('#to option')].some((o) => o.value === 'bob'), null, WAIT);
  assert.deepEqual(await alice.$$eval('#to option', (os) => os.map((o) => o.value)), ['', 'bob']);

  // The console screenshot: alice, a conversation open with its transcript,
  // a second one waiting with a badge, both agents online.
  await alice.fill('#text', 'Transferring you now — bob will have the whole history.');
  await alice.screenshot({ path: path.join(OUT, 'agent-console.png') });
  await alice.fill('#text', '');

  // alice transfers to bob with a note (asked for in a prompt).
  const note = `refund for order #${t}, parcel late`;
  await alice.selectOption('#to', 'bob');
  const dialog = new Promise((resolve) => alice.once('dialog', async (d) => {
    resolve(d.message());
    await d.accept(note);
  }));
  await alice.click('#transfer');
  assert.equal(await dialog, 'Note for the next agent (optional):');
  await waitNote(alice, 'Transferred to bob');
  // alice keeps the other conversation, now selected.
  await alice.waitForFunction(() => document.querySelectorAll('#mine .item').length === 1, null, WAIT);
  await alice.waitForFunction((v) => document.getElementById('conv-title').textContent !== v, visitorName, WAIT);
  await waitMsg(alice, o1);

  // bob's console has it, selected, with who sent it, the note and the history.
  await bob.waitForFunction(() => document.querySelectorAll('#mine .item').length === 1, null, WAIT);
  assert.deepEqual(await rows(bob, 'mine'), [visitorName]);
  await waitText(bob, '#conv-title', visitorName);
  await waitNote(bob, `Transferred by alice: ${note}`);
  await waitMsg(bob, a2, 'alice');
  assert.deepEqual(await transcript(bob), [
    [visitorName, q1, false], ['alice', a1, true], [visitorName, q2, false], ['alice', a2, true],
  ]);
  // The visitor is told who is helping now.
  await waitText(visitor, '#status', 'bob is helping you');

  // bob replies; the visitor sees it under bob's name, after alice's.
  const b1 = 'Hi, bob here. I have refunded the shipping cost; you will see it in 3-5 days.';
  await write(bob, b1);
  await waitMsg(visitor, b1, 'bob');
  assert.deepEqual(await transcript(visitor), [
    ['Me', q1, true], ['alice', a1, false], ['Me', q2, true], ['alice', a2, false], ['bob', b1, false],
  ]);
  const q3 = 'Perfect, thank you!';
  await write(visitor, q3);
  await waitMsg(bob, q3, visitorName);
  // alice, no longer on it, does not get the visitor's messages.
  assert.ok(!(await transcript(alice)).some(([, text]) => text === q3));

  // bob resolves: his console drops it; the visitor is asked for a rating.
  await bob.click('#resolve');
  await waitNote(bob, 'Conversation resolved');
  await bob.waitForFunction(() => document.querySelectorAll('#mine .item').length === 0, null, WAIT);
  await waitText(visitor, '#status', 'This conversation is closed.');
  await visitor.waitForSelector('#rating', { state: 'visible', ...WAIT });
  await waitText(visitor, '#rate-q', 'How did we do?');
  assert.equal(await visitor.$$eval('#stars button', (bs) => bs.length), 5);
  await visitor.waitForFunction(() => { const l = document.getElementById('log'); return l.scrollTop + l.clientHeight >= l.scrollHeight - 2; }, null, WAIT);
  await visitor.screenshot({ path: path.join(OUT, 'support-widget.png') });

  // The visitor gives 4 stars: thanked, and the rating bar goes away.
  await visitor.click('#stars button[title="4"]');
  await waitNote(visitor, 'Thank you for your rating!');
  await visitor.waitForSelector('#rating', { state: 'hidden', ...WAIT });

  // A reload resumes the visitor's session: the whole transcript is back,
  // rated, so no rating is asked again.
  await visitor.reload();
  await waitMsg(visitor, q3, 'Me');
  await waitText(visitor, '#status', 'This conversation is closed.');
  assert.equal((await transcript(visitor)).length, 6);
  assert.equal(await visitor.isVisible('#rating'), false);

  for (const p of [alice, bob, visitor, other]) assert.deepEqual(p.errors, []);
});
