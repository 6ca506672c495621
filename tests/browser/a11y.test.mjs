// Accessibility, as axe-core (npm, run inside the page) sees it: no serious
// or critical violation on the chat page (before and after joining, with
// messages, members and a private conversation), the visitor page, the
// agent console and the inspector.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { HERE, chatPage, launch, say, server, tag, waitMessage } from './helpers.mjs';

const AXE = readFileSync(path.join(HERE, 'node_modules/axe-core/axe.min.js'), 'utf8');
let browser, srv;
before(async () => { [browser, srv] = await Promise.all([launch(), server()]); });
after(async () => { await browser?.close(); await srv?.stop(); });

// The page's own Content-Security-Policy refuses injected scripts; axe is
// injected with it bypassed, in its own context.
async function serious(page) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

for (const [path, locale] of [['/', 'en-US'], ['/', 'zh-CN'], ['/support', 'en-US'], ['/agent', 'zh-CN'], ['/inspect', 'en-US']]) {
  test(`axe finds nothing serious on ${path} (${locale})`, { timeout: 60_000 }, async () => {
    const ctx = await browser.newContext({ bypassCSP: true, locale });
    const page = await ctx.newPage();
    await page.goto(srv.url + path);
    await page.waitForLoadState('networkidle');
    assert.deepEqual(await serious(page), []);
    await ctx.close();
  });
}

test('axe finds nothing serious on the chat page in use, light and dark', { timeout: 60_000 }, async () => {
  const t = tag();
  for (const colorScheme of ['light', 'dark']) {
    const a = await chatPage(browser, srv.url, `Axe-${colorScheme}-${t}`, { colorScheme });
    const b = await chatPage(browser, srv.url, `Other-${colorScheme}-${t}`, { colorScheme });
    await say(a, `hello ${t}`);
    await waitMessage(b, `hello ${t}`);
    await b.click(`#users li:has(.n:text-is("Axe-${colorScheme}-${t}"))`);
    await say(b, `private ${t}`);
    await waitMessage(a, `private ${t}`);
    // chatPage's context enforces the page's CSP: inject axe in a fresh
    // context that bypasses it, on the same server state.
    const ctx = await browser.newContext({ bypassCSP: true, colorScheme });
    const page = await ctx.newPage();
    await page.goto(srv.url + '/');
    await page.fill('#welcomeName', `Checker-${colorScheme}-${t}`);
    await page.press('#welcomeName', 'Enter');
    await page.waitForSelector('#status[data-state="open"]');
    await waitMessage(page, `hello ${t}`);
    // With a private conversation listed (unread) and search results shown.
    await b.click(`#users li:has(.n:text-is("Checker-${colorScheme}-${t}")) button.pick`);
    await say(b, `to the checker ${t}`);
    await waitMessage(page, `to the checker ${t}`);
    await page.waitForSelector('#privs li .badge');
    await page.fill('#findInput', 'Axe-');
    await page.press('#findInput', 'Enter');
    await page.waitForSelector('#found li button.pick');
    assert.deepEqual(await serious(page), [], colorScheme);
    await ctx.close();
    await a.context().close();
    await b.context().close();
  }
});
