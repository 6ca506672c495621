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
  tokens.carol = await addAgent('carol', dataDir);
  tokens.sam = await addAgent('sam', dataDir, ['--role', 'supervisor']);
  [browser, srv] = await Promise.all([launch(), startServer(undefined, { dataDir })]);
});
after(async () => {
  await browser?.close();
  await srv?.stop();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

async function newPage(opts) {
  const context = await browser.newContext({
    locale: opts.locale || 'en-US',
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

  // alice transfers to bob with a note (typed beside the target).
  const note = `refund for order #${t}, parcel late`;
  await alice.selectOption('#to', 'bob');
  assert.equal(await alice.getAttribute('#note', 'placeholder'), 'Note for the next agent (optional)');
  await alice.fill('#note', note);
  await alice.click('#transfer');
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

  // The visitor gives 4 stars with a comment: thanked, the rating bar goes
  // away, and bob, who resolved it, is told.
  await visitor.click('#stars button[title="4"]');
  await visitor.fill('#comment', 'Quick refund, thanks');
  await visitor.click('#rate-send');
  await waitNote(bob, `${visitorName} rated ★★★★: “Quick refund, thanks”`);
  // The transfer target and note were cleared for the next conversation.
  assert.equal(await alice.inputValue('#to'), '');
  assert.equal(await alice.inputValue('#note'), '');
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
  // Signed out, so that the next test's visitors wait for its agents.
  for (const p of [alice, bob, visitor, other]) await p.context().close();
});

/** The row of list `list` (#queue, #mine, #all) whose name is `name`. */
function row(page, list, name) {
  return page.locator(`#${list} .item`, { has: page.locator('.name', { hasText: new RegExp(`^${name}$`) }) });
}

/** A page of a shop with widget.js on it, sized as `opts` says. */
async function shopPage(opts) {
  const page = await newPage(opts);
  await page.goto(srv.url + '/nothing-here');
  await page.setContent(`<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1"><title>Shop</title><h1>Shop</h1><script src="${srv.url}/widget.js"></script>`);
  await page.waitForSelector('[data-wschat="bubble"]', WAIT);
  return page;
}

test('a supervisor, a claim from the queue, the contact panel and the widget on a page', { timeout: 120_000 }, async () => {
  const t = tag();
  // carol and sam (a supervisor) are away: visitors wait in the queue.
  const carol = await agentConsole('carol', tokens.carol);
  const sam = await agentConsole('sam', tokens.sam);
  for (const p of [carol, sam]) await p.selectOption('#presence', 'away');
  await sam.waitForFunction(() => [...document.querySelectorAll('#agents .item')].filter((r) =>
    r.querySelector('.meta').textContent.startsWith('Away')).length === 2, null, WAIT);
  // Only the supervisor has the list of everyone's conversations.
  assert.equal(await sam.isVisible('#h-all'), true);
  assert.equal(await carol.isVisible('#h-all'), false);

  // A visitor gives a name and an address in the pre-chat form, and waits.
  const lin = `Lin${t}`;
  const visitor = await newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true });
  await visitor.goto(srv.url + '/support?page=' + encodeURIComponent('https://shop.example/cart'));
  await visitor.waitForSelector('#pre', { state: 'visible', ...WAIT });
  await visitor.fill('#name-in', lin);
  await visitor.fill('#email', 'lin@example.com');
  await write(visitor, 'Can I change the size of my order?');
  await visitor.waitForSelector('#pre', { state: 'hidden', ...WAIT });
  await visitor.waitForSelector('#end', { state: 'visible', ...WAIT });

  // carol claims it from the queue; its contact panel shows who it is.
  await row(carol, 'queue', lin).locator('button.claim').click();
  await row(carol, 'mine', lin).waitFor(WAIT);
  await waitText(carol, '#conv-title', lin);
  await waitText(visitor, '#status', 'carol is helping you');
  await carol.click('#contact summary');
  await carol.waitForFunction(() => document.getElementById('contact-body').textContent.includes('No earlier conversations'), null, WAIT);
  const contact = await carol.textContent('#contact-body');
  assert.match(contact, /lin@example\.com/);
  assert.match(contact, /https:\/\/shop\.example\/cart/);
  await write(carol, 'Yes: which size would you like?');
  await waitMsg(visitor, 'Yes: which size would you like?', 'carol');

  // sam sees carol's conversation, read only, and takes it over.
  await row(sam, 'all', lin).waitFor(WAIT);
  assert.equal(await row(sam, 'all', lin).locator('.meta').textContent(), 'with carol');
  await row(sam, 'all', lin).click();
  await waitText(sam, '#watching', "carol's conversation (read only). Take it over to reply.");
  await waitMsg(sam, 'Yes: which size would you like?', 'carol');
  assert.equal(await sam.isDisabled('#text'), true);
  await sam.screenshot({ path: path.join(OUT, 'agent-supervisor.png') });
  await sam.click('#take');
  await row(sam, 'mine', lin).waitFor(WAIT);
  await waitNote(carol, 'Transferred to sam');
  await waitText(visitor, '#status', 'sam is helping you');
  await write(sam, 'sam here: size M is on its way.');
  await waitMsg(visitor, 'sam here: size M is on its way.', 'sam');

  // The visitor ends the chat; sam's console says so.
  await visitor.click('#end');
  await waitNote(sam, 'The visitor ended the conversation');
  await waitText(visitor, '#status', 'This conversation is closed.');

  // The visitor comes back: carol claims the new conversation and sees the
  // earlier one, with its transcript.
  await write(visitor, 'One more thing: can I pay by invoice?');
  await row(carol, 'queue', lin).locator('button.claim').click();
  await row(carol, 'mine', lin).waitFor(WAIT);
  await carol.waitForFunction(() => document.getElementById('contact-body').textContent.includes('Earlier conversations (1)'), null, WAIT);
  await carol.click('#contact .prev summary');
  assert.match(await carol.textContent('#contact .prev'), /sam here: size M is on its way\./);
  await carol.screenshot({ path: path.join(OUT, 'agent-contact.png') });
  await carol.setViewportSize({ width: 390, height: 844 });
  // On a phone the lists are a drawer, closed while a conversation is open
  // (wait for its slide to end), opened with ☰, closed by a choice.
  const drawerAt = (edge) => carol.waitForFunction((e) => {
    const r = document.getElementById('lists').getBoundingClientRect();
    return e === 'out' ? r.right <= 0 : r.left === 0;
  }, edge, WAIT);
  await drawerAt('out');
  await carol.screenshot({ path: path.join(OUT, 'agent-console-phone.png') });
  await carol.click('#drawer');
  await drawerAt('in');
  await carol.screenshot({ path: path.join(OUT, 'agent-console-phone-drawer.png') });
  await row(carol, 'mine', lin).click();
  await carol.waitForFunction(() => !document.getElementById('lists').classList.contains('open'), null, WAIT);
  await carol.setViewportSize({ width: 1280, height: 800 });
  await carol.click('#resolve');

  // The widget on a shop's page: closed, it counts replies on its bubble
  // and in the page's title.
  const shop = await shopPage({ viewport: { width: 1280, height: 800 } });
  await shop.click('[data-wschat="bubble"]');
  const frame = await (async () => {
    await shop.waitForSelector('iframe', WAIT);
    return (await shop.$('iframe')).contentFrame();
  })();
  await frame.waitForSelector('#close', { state: 'visible', ...WAIT });
  const kim = `Kim${t}`;
  await frame.fill('#name-in', kim);
  await frame.fill('#text', 'Is the blue one in stock?');
  await frame.press('#text', 'Enter');
  await row(carol, 'queue', kim).locator('button.claim').click();
  await row(carol, 'mine', kim).waitFor(WAIT);
  await frame.click('#close');
  await shop.waitForSelector('iframe', { state: 'hidden', ...WAIT });
  await write(carol, 'It is, in every size.');
  await shop.waitForFunction(() => document.querySelector('[data-wschat="badge"]').textContent === '1', null, WAIT);
  assert.equal(await shop.title(), '(1) Shop');
  await shop.screenshot({ path: path.join(OUT, 'widget-badge.png') });
  // The frame marks the reply seen (localStorage, the server's origin, as
  // this page's) once the page told it it is open: a message that crosses
  // after the page cleared its badge. Wait for it before leaving the page.
  const SEEN = 'wschat.support.seen';
  const seenBefore = await shop.evaluate((k) => localStorage.getItem(k), SEEN);
  await shop.click('[data-wschat="bubble"]');
  await shop.waitForFunction(() => document.title === 'Shop', null, WAIT);
  assert.equal(await shop.isVisible('[data-wschat="badge"]'), false);
  await shop.waitForFunction(([k, b]) => localStorage.getItem(k) !== b, [SEEN, seenBefore], WAIT);

  // The next page of the shop, never opened: with a conversation open, the
  // frame is there from the start, hidden, so a reply counts at once.
  const shopAgain = async () => {
    const p = await shop.context().newPage();
    p.errors = [];
    p.on('pageerror', (e) => p.errors.push(String(e)));
    await p.goto(srv.url + '/nothing-here');
    await p.setContent(`<!doctype html><title>Shop</title><h1>Cart</h1><script src="${srv.url}/widget.js"></script>`);
    await p.waitForSelector('[data-wschat="bubble"]', WAIT);
    return p;
  };
  await shop.close();
  const cart = await shopAgain();
  await cart.waitForSelector('iframe', { state: 'attached', ...WAIT });
  assert.equal(await cart.isVisible('iframe'), false, 'the frame waits hidden');
  const cartFrame = await (await cart.$('iframe')).contentFrame();
  await cartFrame.waitForFunction(() => document.getElementById('status').textContent === 'carol is helping you', null, WAIT);
  assert.equal(await cart.isVisible('[data-wschat="badge"]'), false, 'what was seen on the last page is not counted again');
  await write(carol, 'The green one too.');
  await cart.waitForFunction(() => document.querySelector('[data-wschat="badge"]').textContent === '1', null, WAIT);
  assert.equal(await cart.title(), '(1) Shop');
  assert.equal(await cart.isVisible('iframe'), false, 'never opened on this page');
  await cart.screenshot({ path: path.join(OUT, 'widget-badge-unopened.png') });
  // A reply while no page of the shop is open counts on the next one.
  await cart.close();
  await write(carol, 'Shall I put one aside for you?');
  const later = await shopAgain();
  await later.waitForFunction(() => document.querySelector('[data-wschat="badge"]')?.textContent === '2', null, WAIT);
  assert.equal(await later.title(), '(2) Shop');
  await later.click('[data-wschat="bubble"]');
  await later.waitForFunction(() => document.title === 'Shop', null, WAIT);
  // Opened on a desktop page: the frame beside the bubble.
  await later.screenshot({ path: path.join(OUT, 'widget-desktop.png') });
  // Resolved: the shop's pages stop making the frame before a click.
  await carol.click('#resolve');
  await later.waitForFunction(() => localStorage.getItem('wschat.widget.active') === null, null, WAIT);
  const after = await shopAgain();
  assert.equal(await after.$('iframe'), null, 'no conversation: no frame until a click');
  for (const p of [later, after]) assert.deepEqual(p.errors, []);

  // On a phone the widget fills the screen, and closes with its button.
  const phone = await shopPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true });
  await phone.click('[data-wschat="bubble"]');
  await phone.waitForSelector('iframe', WAIT);
  const box = await (await phone.$('iframe')).boundingBox();
  assert.deepEqual([box.x, box.y, box.width, box.height], [0, 0, 390, 844]);
  assert.equal(await phone.isVisible('[data-wschat="bubble"]'), false);
  const pf = await (await phone.$('iframe')).contentFrame();
  await pf.waitForSelector('#status', WAIT);
  await pf.waitForFunction(() => document.getElementById('status').textContent !== 'Connecting…', null, WAIT);
  await phone.screenshot({ path: path.join(OUT, 'widget-phone.png') });
  await pf.click('#close');
  await phone.waitForSelector('[data-wschat="bubble"]', { state: 'visible', ...WAIT });

  // In Chinese, a long message is counted in bytes as the server counts
  // them (1,400 characters are 4,200 bytes) and refused before sending.
  const zhPage = await newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, locale: 'zh-CN' });
  await zhPage.goto(srv.url + '/support');
  await waitText(zhPage, '#status', '请留言,客服将尽快回复。');
  await zhPage.fill('#text', '好'.repeat(1400));
  await waitText(zhPage, '#count', '4200/4096 字节');
  await zhPage.press('#text', 'Enter');
  await waitNote(zhPage, '消息太长:最多 4096 字节。');
  await zhPage.fill('#text', '');
  await zhPage.screenshot({ path: path.join(OUT, 'support-widget-zh.png') });

  for (const p of [carol, sam, visitor, phone, zhPage]) assert.deepEqual(p.errors, []);
});
