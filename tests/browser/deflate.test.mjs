// permessage-deflate (RFC 7692) with a real browser: Chromium offers it,
// wschat accepts, and two chat pages talk as ever, long messages and the
// history page included. The proof that it was negotiated is the 101 as
// Chromium received it (CDP Network events): its Sec-WebSocket-Extensions.
// A server started with --deflate off must show none, so the assertion can
// fail. The frame inspector, with its compression switch on, shows the
// browser's own compressed frame, RSV1 set, and the text inflated.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chatPage, launch, recordHandshakes, say, server, startServer, tag, waitMessage } from './helpers.mjs';

let browser, srv;
before(async () => { [browser, srv] = await Promise.all([launch(), server()]); });
after(async () => { await browser?.close(); await srv?.stop(); });

/** The handshake of the chat's WebSocket, once Chromium has it. */
async function chatHandshake(page) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const hs = page.handshakes.find((h) => h.status === 101 && /^wss?:\/\/[^/]+\/(\?|#|$)/.test(h.url || ''));
    if (hs) return hs;
    assert.ok(Date.now() < deadline, `no chat handshake among ${JSON.stringify(page.handshakes)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('Chromium negotiates permessage-deflate with the chat page, and the chat works', { timeout: 90_000 }, async () => {
  const room = `deflate-${tag()}`;
  const ann = await chatPage(browser, srv.url, `Ann${tag()}`, { room, recordHandshakes: true });
  const hs = await chatHandshake(ann);
  assert.match(hs.extensions || '', /^permessage-deflate\b/, `the 101 accepted deflate: ${JSON.stringify(hs)}`);
  assert.match(hs.extensions, /server_no_context_takeover/);
  assert.match(hs.extensions, /client_no_context_takeover/);

  // Short and long messages (the long ones go compressed both ways).
  const short = `hi ${tag()}`;
  const long = `A longer line, long enough to be compressed by both sides: ${'la '.repeat(60)}${tag()}`;
  await say(ann, short);
  await say(ann, long);
  // Bob joins later: his history page holds both, and he chats back.
  const bob = await chatPage(browser, srv.url, `Bob${tag()}`, { room, recordHandshakes: true });
  assert.match((await chatHandshake(bob)).extensions || '', /^permessage-deflate\b/);
  await waitMessage(bob, short);
  await waitMessage(bob, long);
  const reply = `Got it, and here is a long answer as well: ${'ok '.repeat(50)}${tag()}`;
  await say(bob, reply);
  await waitMessage(ann, reply);
  assert.deepEqual([ann.errors, bob.errors], [undefined, undefined]);
  await ann.context().close();
  await bob.context().close();
});

test('with --deflate off the 101 has no Sec-WebSocket-Extensions, and the chat works', { timeout: 90_000 }, async () => {
  const off = await startServer(0, { args: ['--deflate', 'off'] });
  try {
    const page = await chatPage(browser, off.url, `Off${tag()}`, { recordHandshakes: true });
    const hs = await chatHandshake(page);
    assert.equal(hs.extensions, null, JSON.stringify(hs));
    const text = `plain ${'words '.repeat(30)}${tag()}`;
    await say(page, text);
    await waitMessage(page, text);
    await page.context().close();
  } finally {
    await off.stop();
  }
});

test('the inspector shows the browser\'s compressed frame and its inflated text', { timeout: 60_000 }, async () => {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const handshakes = await recordHandshakes(page);
  await page.goto(srv.url + '/inspect');
  await page.waitForSelector('#status[data-state="open"]');
  await page.check('#deflateToggle');
  await page.waitForFunction(() => [...document.querySelectorAll('#log .event')]
    .some((e) => e.textContent.includes('permessage-deflate')));
  const deflated = handshakes.find((h) => (h.url || '').endsWith('/inspect?deflate=on'));
  assert.match(deflated?.extensions || '', /^permessage-deflate\b/, JSON.stringify(handshakes));
  assert.equal(handshakes.find((h) => (h.url || '').endsWith('/inspect')).extensions, null,
    'plain /inspect declines compression');
  await page.waitForSelector('#status[data-state="open"]');
  const message = `Compressed by the browser, inflated by the server: ${'abc '.repeat(30)}${tag()}`;
  await page.fill('#textInput', message);
  await page.click('#sendText');
  await page.waitForFunction((t) => [...document.querySelectorAll('article.frame')]
    .some((c) => c.querySelector('[data-field="inflated_text"]')?.textContent === t), message);
  const card = await page.evaluateHandle((t) => [...document.querySelectorAll('article.frame')]
    .find((c) => c.querySelector('[data-field="inflated_text"]')?.textContent === t), message);
  const oneLine = await card.evaluate((c) => c.querySelector('[data-field="one_line"]').textContent);
  assert.match(oneLine, /^text fin=1 rsv=100 /, oneLine);
  const wireHex = await card.evaluate((c) => c.querySelector('[data-field="wire_payload_hex"]').textContent.replace(/\s+/g, ''));
  assert.ok(wireHex.length / 2 < Buffer.byteLength(message), 'fewer bytes on the wire than typed');
  const rsv1 = await card.evaluate((c) => c.querySelector('[data-field="RSV1"] td:last-child')?.textContent);
  assert.match(rsv1 || '', /compressed/, `RSV1's meaning: ${rsv1}`);
  await context.close();
});
