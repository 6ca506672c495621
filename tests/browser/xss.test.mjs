// Markup in what users send is shown as text, never run or parsed: the page
// renders every piece of user text with textContent.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chatPage, launch, say, server, tag, waitMessage } from './helpers.mjs';

let browser, srv;
before(async () => { [browser, srv] = await Promise.all([launch(), server()]); });
after(async () => { await browser?.close(); await srv?.stop(); });

test('markup in messages, names and rooms stays literal text', { timeout: 60_000 }, async () => {
  const t = tag();
  const evilName = `<b>bold</b>${t}`;
  const probe = '<img src=x onerror="window.__xss=1">';
  const evil = await chatPage(browser, srv.url, evilName);
  const viewer = await chatPage(browser, srv.url, 'Viewer-' + t, { locale: 'zh-CN' });

  await say(evil, probe);
  await waitMessage(viewer, probe);
  // Private, and as the typing indicator's name.
  await evil.click(`#users li:has(.n:text-is("Viewer-${t}"))`);
  await say(evil, `<script>window.__xss=2</script>${t}`);
  await evil.click('#pmCancel');
  await waitMessage(viewer, `<script>window.__xss=2</script>${t}`);
  // Typed over 2.5 s, as a person types: the page announces it once a second.
  await evil.type('#input', '<i>x</i> and then some more', { delay: 100 });
  await viewer.waitForFunction((n) => document.getElementById('typing').textContent === `${n} 正在输入…`, evilName);
  // In the lobby: the name on the messages and the texts are literal.
  const who = await viewer.$$eval('#messages .who', (l) => l.map((e) => e.textContent));
  assert.ok(who.includes(evilName));
  const texts = await viewer.$$eval('#messages .bubble', (l) => l.map((e) => e.textContent));
  assert.ok(texts.includes(probe));
  // The message list holds only the page's own elements.
  const tags = await viewer.$$eval('#messages *', (l) => [...new Set(l.map((e) => e.tagName.toLowerCase()))].sort());
  // (a, code, pre, strong and em are the page's own formatting, built from
  // DOM nodes: docs in chat.test.mjs; every link is http(s) and noopener.)
  assert.deepEqual(tags.filter((x) => !['li', 'div', 'span', 'time', 'b', 'button', 'a', 'code', 'pre', 'strong', 'em'].includes(x)), []);
  const hrefs = await viewer.$$eval('#messages a', (l) => l.map((a) => [a.protocol, a.rel]));
  assert.ok(hrefs.every(([p, rel]) => (p === 'http:' || p === 'https:') && rel === 'noopener noreferrer'), JSON.stringify(hrefs));
  assert.equal(await viewer.$$eval('#messages img', (l) => l.length), 0);

  // A room whose name is markup: shown as text in the title and the notice.
  const evilRoom = `<u>r</u>${t}`;
  await evil.fill('#roomInput', evilRoom);
  await evil.press('#roomInput', 'Enter');
  await evil.waitForFunction((r) => document.getElementById('roomName').textContent === r, evilRoom);
  // Finish with a plain round trip, so anything the markup could have
  // triggered (an image error, say) has had its chance.
  await viewer.fill('#roomInput', evilRoom);
  await viewer.press('#roomInput', 'Enter');
  await say(viewer, 'done ' + t);
  await waitMessage(evil, 'done ' + t);

  for (const page of [viewer, evil]) {
    assert.equal(await page.evaluate(() => window.__xss), undefined);
    assert.equal(await page.$$eval('#messages img, #users img, #messages script, #messages u, #messages i', (l) => l.length), 0);
    // The name shows literally in the member list and on its messages; the
    // only <b> elements are the page's own, each holding a whole name or room.
    assert.ok((await page.$$eval('#users li .n', (l) => l.map((e) => e.textContent))).includes(evilName));
    assert.equal(await page.$$eval('b', (l) => l.filter((e) => e.textContent === 'bold').length), 0);
    assert.equal(await page.$eval('#roomName', (e) => e.textContent), evilRoom);
    assert.deepEqual(page.errors || [], []);
  }
});
