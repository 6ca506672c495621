// Screenshots of the chat page as people see it, into target/screenshots/:
// a desktop in light mode (English) and a phone in dark mode (Chinese), each
// in the middle of a conversation (history, notices, a private message, the
// typing indicator), plus the phone's member drawer.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT, chatPage, launch, say, server, tag, waitMessage, waitText } from './helpers.mjs';

const OUT = path.join(ROOT, 'target/screenshots');
let browser, srv;
before(async () => { mkdirSync(OUT, { recursive: true }); [browser, srv] = await Promise.all([launch(), server()]); });
after(async () => { await browser?.close(); await srv?.stop(); });

async function conversation(viewer, room, others) {
  const [mei, tom] = others;
  await say(mei, '大家好！今晚八点发布 0.2 版本');
  await say(tom, 'Nice. Did the backpressure fix make it in?');
  await say(mei, '合进去了。慢客户端的 outbox 满了会直接 1008 断开，不会拖慢别人。');
  await say(viewer, 'Great — I will update the docs and the changelog.');
  await say(tom, 'I ran the benchmark on two cores:\n250k deliveries/s, about 4 µs each.');
  await waitMessage(viewer, 'I ran the benchmark on two cores:\n250k deliveries/s, about 4 µs each.');
  // Mei answers Tom's numbers with a reply (a quote above it), and Tom and
  // the viewer react to her news.
  const item = (p, text) => p.locator('#messages li.msg', { has: p.locator('.bubble', { hasText: text }) });
  await item(mei, '250k deliveries').locator('.act').first().click();
  await say(mei, '比上个版本快了一倍 🚀');
  await waitMessage(viewer, '比上个版本快了一倍 🚀');
  await item(tom, '合进去了').locator('.act').nth(1).click();
  await viewer.waitForFunction(() => [...document.querySelectorAll('#messages .react')].some((r) => r.textContent.endsWith(' 1')));
  await item(viewer, '合进去了').locator('.react').click();
  await viewer.waitForFunction(() => [...document.querySelectorAll('#messages .react')].some((r) => r.textContent.endsWith(' 2')));
  // A private message from Mei to the viewer.
  const meiName = await mei.evaluate(() => document.getElementById('nameInput').value);
  const viewerName = await viewer.evaluate(() => document.getElementById('nameInput').value);
  await mei.click(`#users li:has(.n:text-is("${viewerName}"))`);
  await say(mei, '发布前帮我看一下 README 好吗？');
  await mei.click('#pmCancel');
  await waitMessage(viewer, '发布前帮我看一下 README 好吗？');
  // The viewer answers privately, by clicking her name on that message.
  await viewer.click(`#messages li.private .who:text-is("${meiName}")`);
  await say(viewer, 'Sure, sending comments in 10 minutes.');
  await waitMessage(mei, 'Sure, sending comments in 10 minutes.');
  // Tom starts typing.
  await tom.type('#input', 'one more thing to check', { delay: 100 });
  await viewer.waitForFunction(() => document.getElementById('typing').textContent.length > 0);
  return meiName;
}

test('screenshots: desktop light, phone dark', { timeout: 90_000 }, async () => {
  const t = tag();
  const room = 'release-' + t;
  const mei = await chatPage(browser, srv.url, '小美', { locale: 'zh-CN', room });
  const tom = await chatPage(browser, srv.url, 'Tom', { room });

  // Desktop 1280×800, light, English.
  const desk = await chatPage(browser, srv.url, 'Alex', { room, viewport: { width: 1280, height: 800 } });
  await conversation(desk, room, [mei, tom]);
  await desk.screenshot({ path: path.join(OUT, 'desktop-light.png') });
  await tom.fill('#input', '');
  await tom.press('#input', 'Enter');

  // Phone 390×844, dark, Chinese; joins later and sees the history.
  const phone = await chatPage(browser, srv.url, '小王', {
    room, locale: 'zh-CN', colorScheme: 'dark', viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2, isMobile: true,
  });
  await say(mei, '欢迎小王');
  await say(phone, '谢谢！这个页面在手机上也挺好用的');
  await waitMessage(mei, '谢谢！这个页面在手机上也挺好用的');
  await mei.click('#users li:has(.n:text-is("小王"))');
  await say(mei, '私聊：晚上一起吃饭？');
  await mei.click('#pmCancel');
  await waitMessage(phone, '私聊：晚上一起吃饭？');
  await tom.type('#input', 'typing a long answer…', { delay: 100 });
  await phone.waitForFunction(() => document.getElementById('typing').textContent.includes('Tom'));
  await waitText(phone, '#statusText', '已连接');
  const sideRight = () => phone.evaluate(() => document.getElementById('side').getBoundingClientRect().right);
  assert.ok((await sideRight()) <= 0, 'on a phone the member list is behind a button');
  await phone.screenshot({ path: path.join(OUT, 'phone-dark.png') });
  await phone.click('#menuBtn');
  await phone.waitForFunction(() => {
    const r = document.getElementById('side').getBoundingClientRect();
    return r.left >= 0 && r.width > 0;
  });
  await phone.waitForTimeout(300); // let the drawer's slide-in transition finish for the picture
  assert.ok((await sideRight()) > 200);
  await phone.screenshot({ path: path.join(OUT, 'phone-dark-members.png') });

  // The same two in the other scheme, for a look at both palettes.
  const deskDark = await chatPage(browser, srv.url, 'Dana', { room, colorScheme: 'dark', viewport: { width: 1280, height: 800 } });
  await say(tom, 'Dark mode check.');
  await waitMessage(deskDark, 'Dark mode check.');
  await deskDark.screenshot({ path: path.join(OUT, 'desktop-dark.png') });
  const phoneLight = await chatPage(browser, srv.url, 'Lee', { room, viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true });
  await phoneLight.screenshot({ path: path.join(OUT, 'phone-light.png') });

  for (const p of [mei, tom, desk, phone, deskDark, phoneLight]) assert.deepEqual(p.errors || [], []);
  // The welcome dialog, as a first visit sees it.
  const ctx = await browser.newContext({ locale: 'zh-CN', viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true });
  const first = await ctx.newPage();
  await first.goto(srv.url + '/');
  await first.waitForSelector('#welcome:not([hidden])');
  await first.screenshot({ path: path.join(OUT, 'phone-welcome.png') });
});
