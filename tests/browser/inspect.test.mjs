// The frame inspector page (GET /inspect) in headless Chromium: a message
// typed and sent shows up as a card with the masked bytes as they arrived,
// the masking key and the unmasked bytes, and the test checks the XOR
// itself. A second test feeds the page made-up dissections (a broken rule,
// markup in every string, a pong) through a routed WebSocket, to check how
// they are shown and that nothing becomes HTML.
//
// Screenshots go to target/screenshots/inspect*.png.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT, launch, server, tag } from './helpers.mjs';

const OUT = path.join(ROOT, 'target/screenshots');
let browser, srv;
before(async () => {
  mkdirSync(OUT, { recursive: true });
  [browser, srv] = await Promise.all([launch(), server()]);
});
after(async () => { await browser?.close(); await srv?.stop(); });

async function inspectorPage(opts = {}) {
  const context = await browser.newContext({
    locale: opts.locale || 'en-US',
    colorScheme: opts.colorScheme || 'light',
    viewport: opts.viewport || { width: 1100, height: 900 },
    deviceScaleFactor: opts.deviceScaleFactor || 1,
    isMobile: !!opts.isMobile,
    hasTouch: !!opts.isMobile,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  if (opts.route) await page.routeWebSocket(/\/inspect$/, opts.route);
  await page.goto(srv.url + '/inspect');
  await page.waitForSelector('#status[data-state="open"]');
  return page;
}

/** The card of the text frame whose text is exactly `text`. */
async function cardWithText(page, text) {
  await page.waitForFunction((t) => [...document.querySelectorAll('article.frame')]
    .some((c) => c.querySelector('[data-field="text"]')?.textContent === t), text);
  return page.evaluateHandle((t) => [...document.querySelectorAll('article.frame')]
    .find((c) => c.querySelector('[data-field="text"]')?.textContent === t), text);
}

/** textContent of the `data-field` element inside `card` (null if none). */
const field = (card, name) =>
  card.evaluate((c, n) => c.querySelector(`[data-field="${n}"]`)?.textContent ?? null, name);

/** Hex as shown on the page (spaced, wrapped) to bytes. */
function bytesOf(shown) {
  const hex = shown.replace(/\s+/g, '');
  assert.match(hex, /^([0-9a-f]{2})*$/, `hex as shown: ${shown}`);
  return Buffer.from(hex, 'hex');
}

/** The header bytes as laid out bit by bit: [hex, bits] per byte. */
const headerBoxes = (card) => card.evaluate((c) =>
  [...c.querySelectorAll('[data-field="header_bytes"] .byte')].map((b) => [
    b.querySelector('.bhex').textContent,
    [...b.querySelectorAll('.bit')].map((x) => x.textContent).join(''),
  ]));

test('a sent message shows its masked bytes, its key and its unmasked text', { timeout: 60_000 }, async () => {
  const page = await inspectorPage();
  const message = `Hello, 帧 ${tag()}`;
  const utf8 = Buffer.from(message, 'utf8');
  await page.fill('#textInput', message);
  await page.click('#sendText');
  const card = await cardWithText(page, message);

  const key = await field(card, 'mask_key');
  assert.match(key, /^[0-9a-f]{8}$/, 'the masking key is 4 bytes as 8 hex digits');
  const wire = bytesOf(await field(card, 'wire_payload_hex'));
  const plain = bytesOf(await field(card, 'payload_hex'));
  assert.equal(wire.length, utf8.length);
  assert.deepEqual(plain, utf8, 'the unmasked bytes are the UTF-8 of the message');
  assert.notDeepEqual(wire, plain, 'the bytes on the wire are masked');
  // Unmask here: byte i XOR key byte i mod 4 (RFC 6455 §5.3).
  const k = Buffer.from(key, 'hex');
  const unmasked = Buffer.from(wire.map((b, i) => b ^ k[i % 4]));
  assert.equal(unmasked.toString('utf8'), message);
  assert.equal(await field(card, 'text'), message);

  // The header, bit by bit: 81 = FIN 1, RSV 000, opcode 0001; then MASK 1
  // and the 7-bit length; then the key (the length fits 7 bits).
  const boxes = await headerBoxes(card);
  assert.equal(boxes.length, 2 + 4);
  assert.deepEqual(boxes[0], ['81', '10000001']);
  assert.deepEqual(boxes[1], [(0x80 | utf8.length).toString(16), '1' + utf8.length.toString(2).padStart(7, '0')]);
  assert.equal(boxes.slice(2).map(([h]) => h).join(''), key);
  assert.equal(boxes.slice(2).map(([, b]) => b).join(''),
    [...k].map((b) => b.toString(2).padStart(8, '0')).join(''));
  const oneLine = await field(card, 'one_line');
  assert.ok(oneLine.startsWith(`text fin=1 rsv=000 mask=${key} len=${utf8.length} `), oneLine);
  // The page's own byte-by-byte unmasking agrees.
  const xor = await card.evaluate((c) => [...c.querySelectorAll('[data-field="xor"] .col:not(.legend)')]
    .map((col) => [...col.querySelectorAll('span')].slice(1, 4).map((s) => parseInt(s.textContent, 16))));
  assert.equal(xor.length, Math.min(utf8.length, 24));
  xor.forEach(([w, kb, p], i) => {
    assert.equal(w, wire[i]);
    assert.equal(kb, k[i % 4]);
    assert.equal(p, w ^ kb);
  });
  await page.screenshot({ path: path.join(OUT, 'inspect.png'), fullPage: true });

  // 200 bytes: the 16-bit length form, 126 then 00 c8.
  await page.click('#send200');
  const big = await page.waitForSelector('article.frame[data-opcode="text"]:has([data-field="one_line"]:text-matches("len=200 "))');
  const bigBoxes = await headerBoxes(big);
  assert.equal(bigBoxes.length, 2 + 2 + 4);
  assert.deepEqual(bigBoxes.slice(1, 4).map(([h]) => h), ['fe', '00', 'c8']);
  const bigKey = Buffer.from(await field(big, 'mask_key'), 'hex');
  const bigWire = bytesOf(await field(big, 'wire_payload_hex'));
  const bigText = Buffer.from(bigWire.map((b, i) => b ^ bigKey[i % 4])).toString('utf8');
  assert.equal(bigText.length, 200);
  assert.equal(await field(big, 'text'), bigText);

  // Close with a code: the close event is shown, and the page works out the
  // Close frame's payload (03 e8 = 1000, then "bye").
  await page.click('#closeBtn');
  await page.waitForSelector('#status[data-state="closed"]');
  const log = await page.$$eval('#log > li', (ls) => ls.map((l) => l.textContent));
  assert.ok(log.some((l) => l.includes('code 1000') && l.includes('clean')), log.slice(0, 4).join('\n'));
  const local = await page.$eval('article[data-opcode="close-local"] .hex', (e) => e.textContent);
  assert.equal(local, '03 e8 62 79 65');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('made-up dissections: rules broken, markup stays text, pongs explained', { timeout: 60_000 }, async () => {
  const evil = '<img src=x onerror="window.__pwned=1">';
  // A server-to-browser route that answers any message with these reports.
  const reports = [
    {
      index: 0, header_hex: 'c105', fin: true, rsv: 4, rsv1: true, rsv2: false, rsv3: false,
      opcode: 1, opcode_name: 'text', control: false, masked: false, mask_key: null,
      length_form: '7-bit', length_minimal: true, payload_len: 5, missing: 0,
      wire_payload_hex: '48656c6c6f', payload_hex: '48656c6c6f', text: evil, part: { kind: 'whole' },
      close: null, message: null,
      violations: [
        { rule: 'client frame is not masked ' + evil, section: '5.1', close_code: 1002 },
        { rule: 'reserved bits set without an extension (RSV=100)', section: '5.2', close_code: 1002 },
      ],
      notes: [evil], one_line: evil, valid: false,
    },
    {
      index: 1, header_hex: '8a8001020304', fin: true, rsv: 0, rsv1: false, rsv2: false, rsv3: false,
      opcode: 10, opcode_name: 'pong', control: true, masked: true, mask_key: '01020304',
      length_form: '7-bit', length_minimal: true, payload_len: 0, missing: 0,
      wire_payload_hex: '', payload_hex: '', text: null, part: { kind: 'control', between_fragments: false },
      close: null, message: null, violations: [], notes: [],
      one_line: 'pong fin=1 rsv=000 mask=01020304 len=0', valid: true,
    },
  ];
  const page = await inspectorPage({
    locale: 'zh-CN',
    colorScheme: 'dark',
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    route: (ws) => ws.onMessage(() => {
      for (const frame of reports) ws.send(JSON.stringify({ type: 'frame', frame }));
    }),
  });
  await page.fill('#textInput', 'x');
  await page.click('#sendText');
  await page.waitForSelector('article.frame[data-opcode="pong"]');
  const bad = await page.$('article.frame.bad');
  assert.ok(bad, 'a frame that breaks a rule is marked');
  const violations = await bad.$$eval('[data-field="violations"] li', (ls) => ls.map((l) => l.textContent));
  assert.equal(violations.length, 2);
  assert.ok(violations[0].includes(evil) && violations[0].includes('§5.1') && violations[0].includes('1002'), violations[0]);
  assert.equal(await field(bad, 'text'), evil);
  assert.equal(await field(bad, 'one_line'), evil);
  assert.equal(await field(bad, 'mask_key'), null, 'an unmasked frame has no key to show');
  // RSV1 is set: the first byte's bits are 1100 0001.
  assert.deepEqual((await headerBoxes(bad))[0], ['c1', '11000001']);
  // Every string stayed text: no element was made from it, nothing ran.
  assert.equal(await page.$$eval('#log img', (imgs) => imgs.length), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  const pong = await page.$('article.frame[data-opcode="pong"]');
  assert.ok((await pong.textContent()).includes('浏览器自动发出'), 'the pong card says the browser sent it');
  // The page fits a phone's width.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
  await bad.screenshot({ path: path.join(OUT, 'inspect-phone-violations.png') });

  // The language follows the browser, and the button switches it.
  assert.equal(await page.textContent('h1'), 'WebSocket 帧检查器');
  await page.click('#langBtn');
  assert.equal(await page.textContent('h1'), 'WebSocket frame inspector');
  assert.ok((await page.textContent('article.frame[data-opcode="pong"]')).includes('Your browser sent this pong'));
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
