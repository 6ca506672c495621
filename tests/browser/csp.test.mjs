// The pages' Content-Security-Policy (src/server/http.rs, page_policy):
// each page's own script and style work under it, nothing a page does is
// refused by it, and a script that got into a page some other way does not
// run.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chatPage, launch, say, server, tag, waitMessage } from './helpers.mjs';

let browser, srv;
before(async () => { [browser, srv] = await Promise.all([launch(), server()]); });
after(async () => { await browser?.close(); await srv?.stop(); });

/** Record every refusal of the policy in the pages of `context`. */
async function watch(context) {
  await context.addInitScript(() => {
    window.__refused = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__refused.push(`${e.effectiveDirective} ${e.blockedURI}`);
    });
  });
}

const refused = (page) => page.evaluate(() => window.__refused);

/** Put an inline script into the page, as an injection would; did it run? */
async function slipIn(page) {
  return page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.__slipped = 1';
    document.body.append(s);
    await new Promise((r) => setTimeout(r, 100));
    return window.__slipped === 1;
  });
}

test('the chat works under its policy; a slipped-in script does not run', { timeout: 60_000 }, async () => {
  const t = tag();
  // chatPage makes its own context: watch it from the first document on.
  const newContext = browser.newContext.bind(browser);
  const watched = { newContext: async (o) => { const c = await newContext(o); await watch(c); return c; } };
  const ann = await chatPage(watched, srv.url, 'Ann-' + t);
  await say(ann, 'under the policy ' + t);
  await waitMessage(ann, 'under the policy ' + t);
  // The page's own style applies: the message bubble is laid out by it.
  const radius = await ann.$eval('#messages .bubble', (e) => getComputedStyle(e).borderTopLeftRadius);
  assert.notEqual(radius, '0px');
  assert.deepEqual(await refused(ann), []);
  assert.equal(await slipIn(ann), false);
  const after = await refused(ann);
  assert.equal(after.length, 1, JSON.stringify(after));
  assert.match(after[0], /^script-src-elem inline$/);
  assert.deepEqual(ann.errors || [], []);
  await ann.context().close();
});

test('the desk, the agent console and the inspector work under theirs', { timeout: 60_000 }, async () => {
  for (const path of ['/support', '/agent', '/inspect']) {
    const context = await browser.newContext({ locale: 'zh-CN' });
    await watch(context);
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(srv.url + path);
    // The page's script ran: it turned the page (served as English) Chinese.
    await page.waitForFunction(() => document.documentElement.lang === 'zh-CN');
    await page.waitForLoadState('networkidle');
    assert.deepEqual(await refused(page), [], path);
    assert.equal(await slipIn(page), false, path);
    assert.deepEqual(errors, [], path);
    await context.close();
  }
});
