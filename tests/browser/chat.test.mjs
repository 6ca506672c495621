// wschat's own chat page, driven like people use it: names, messages typed
// and sent with Enter, the member list, private messages, the typing
// indicator, rooms.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { bubbles, chatPage, launch, memberNames, say, server, tag, waitMessage, waitText } from './helpers.mjs';

let browser, srv;
before(async () => { [browser, srv] = await Promise.all([launch(), server()]); });
after(async () => { await browser?.close(); await srv?.stop(); });

const members = (page, names) => page.waitForFunction(
  (want) => { const have = [...document.querySelectorAll('#users li .n')].map((n) => n.textContent); return want.every((w) => have.includes(w)); },
  names,
);

test('two pages chat, see each other, whisper, and switch rooms', { timeout: 90_000 }, async () => {
  const t = tag();
  const ann = 'Ann-' + t, bob = '小明-' + t, cat = 'Cat-' + t;
  const a = await chatPage(browser, srv.url, ann, { locale: 'zh-CN' });
  const b = await chatPage(browser, srv.url, bob);
  const c = await chatPage(browser, srv.url, cat);

  // Connection state in words, in each page's language.
  await waitText(a, '#statusText', '已连接');
  await waitText(b, '#statusText', 'Connected');
  // The name is kept for the next visit.
  assert.equal(await a.evaluate(() => localStorage.getItem('wschat.name')), ann);

  // Both see each other in the member list; a join notice names the newcomer.
  await members(a, [ann, bob, cat]);
  await members(b, [ann, bob, cat]);
  await a.waitForFunction((n) => [...document.querySelectorAll('#messages .notice b')].some((e) => e.textContent === n), cat);

  // A message typed and sent with Enter reaches the other page, with the
  // sender's name and an hh:mm time; the sender sees it as its own.
  const hello = `hello from Ann ${t}`;
  await say(a, hello);
  await waitMessage(b, hello);
  await waitMessage(a, hello);
  const seenByB = await b.$eval(`#messages li[data-id]:last-of-type`, (li) => ({
    who: li.querySelector('.who')?.textContent, time: li.querySelector('time').textContent, mine: li.classList.contains('mine'),
  }));
  assert.equal(seenByB.who, ann);
  assert.match(seenByB.time, /^\d\d:\d\d$/);
  assert.equal(seenByB.mine, false);
  assert.equal(await a.$eval('#messages li[data-id]:last-of-type', (li) => li.classList.contains('mine')), true);
  assert.equal(await a.inputValue('#input'), '', 'the box is emptied after sending');

  // Shift+Enter makes a new line instead of sending.
  await a.fill('#input', 'line one');
  await a.press('#input', 'Shift+Enter');
  await a.type('#input', 'line two');
  await a.press('#input', 'Enter');
  await waitMessage(b, 'line one\nline two');

  // Typing indicator: Bob types, Ann sees "… 正在输入…"; it goes when he sends.
  await b.type('#input', 'typing something', { delay: 40 });
  await waitText(a, '#typing', `${bob} 正在输入…`);
  await b.press('#input', 'Enter');
  await waitMessage(a, 'typing something');
  await waitText(a, '#typing', '');

  // A private message: Ann clicks Bob in the list; only Bob gets it, and both
  // see it marked private. Cat, in the same room, does not.
  const secret = `just for Bob ${t}`;
  await a.click(`#users li:has(.n:text-is("${bob}"))`);
  assert.equal(await a.isVisible('#pmBar'), true);
  await say(a, secret);
  await waitMessage(b, secret);
  await waitMessage(a, secret);
  assert.equal(await b.$eval('#messages li.private:last-of-type .ptag', (e) => e.textContent), 'Private');
  assert.equal(await a.$eval('#messages li.private:last-of-type .ptag', (e) => e.textContent), `私聊给 ${bob}`);
  await a.click('#pmCancel');
  // Messages to Cat's room after the private one arrive in order: once Cat
  // has the later one, the private one would have arrived first.
  const after1 = `after the secret ${t}`;
  await say(a, after1);
  await waitMessage(c, after1);
  assert.ok(!(await bubbles(c)).includes(secret), 'a third page must not see a private message');
  assert.equal(await c.$$eval('#messages li.private', (l) => l.length), 0);

  // Bob answers privately by clicking Ann's name on her message.
  await b.click(`#messages li:not(.mine) .who:text-is("${ann}")`);
  await say(b, `reply to Ann ${t}`);
  await waitMessage(a, `reply to Ann ${t}`);
  await b.click('#pmCancel');

  // Rooms: Ann goes to another room; she stays in the lobby too (listed in
  // her sidebar), but what she sees is the room: the two do not mix, and
  // the lobby's new message is an unread badge.
  const room = 'room-' + t;
  await a.fill('#roomInput', room);
  await a.press('#roomInput', 'Enter');
  await waitText(a, '#roomName', room);
  await waitText(a, '#userCount', '1');
  await a.waitForSelector(`#rooms li[data-room="${room}"] button[aria-current="true"]`);
  await a.waitForSelector('#rooms li[data-room="lobby"]');
  const lobbyOnly = `lobby only ${t}`;
  await say(b, lobbyOnly);
  await waitMessage(c, lobbyOnly);
  await waitText(a, '#rooms li[data-room="lobby"] .badge', '1');
  await b.fill('#roomInput', room);
  await b.press('#roomInput', 'Enter');
  await waitText(b, '#roomName', room);
  await members(a, [ann, bob]);
  await waitText(a, '#userCount', '2');
  assert.deepEqual((await memberNames(b)).sort(), [ann, bob].sort());
  const inRoom = `in the room ${t}`;
  await say(b, inRoom);
  await waitMessage(a, inRoom);
  assert.ok(!(await bubbles(a)).includes(lobbyOnly), 'a room must not see the lobby');
  // Bob leaves the room with the button: back in the lobby; Cat sees what
  // he says next, and never saw what was said in the room.
  await b.click('#leaveBtn');
  await waitText(b, '#roomName', 'lobby');
  await b.waitForSelector(`#rooms li[data-room="${room}"]`, { state: 'detached' });
  await a.waitForFunction((n) => ![...document.querySelectorAll('#users li .n')].some((e) => e.textContent === n), bob);
  const back = `back in the lobby ${t}`;
  await say(b, back);
  await waitMessage(c, back);
  assert.ok(!(await bubbles(c)).includes(inRoom), 'the lobby must not see a room');
  // The room's history is shown to whoever enters it.
  await c.fill('#roomInput', room);
  await c.press('#roomInput', 'Enter');
  await waitMessage(c, inRoom);

  // Renaming: Cat renames; Ann (same room now) sees the notice and the new name.
  const kitty = 'Kitty-' + t;
  await c.fill('#nameInput', kitty);
  await c.press('#nameInput', 'Enter');
  await members(a, [kitty]);
  await a.waitForFunction((n) => [...document.querySelectorAll('#messages .notice b')].some((e) => e.textContent === n), kitty);
  assert.equal(await c.evaluate(() => localStorage.getItem('wschat.name')), kitty);

  for (const p of [a, b, c]) assert.deepEqual(p.errors || [], []);
});

test('errors show without breaking the page; binary messages show their size', { timeout: 60_000 }, async () => {
  const t = tag();
  const a = await chatPage(browser, srv.url, 'Err-' + t, { locale: 'zh-CN' });
  // An over-long message: the server answers text_too_long; the page says so.
  await say(a, '长'.repeat(2000)); // 6000 bytes; the default limit is 4096
  await a.waitForSelector('#toast.show.err');
  assert.equal(await a.textContent('#toast'), '消息太长了');
  assert.equal(await a.inputValue('#input'), '长'.repeat(2000), 'a refused message is put back in the box');
  await waitText(a, '#statusText', '已连接');
  // A binary message relayed to the room shows as its size.
  const b = await chatPage(browser, srv.url, 'Bin-' + t);
  await a.evaluate(() => new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}/?name=raw`);
    ws.onopen = () => { ws.send(new Uint8Array(7)); setTimeout(() => { ws.close(); resolve(); }, 200); };
  }));
  await waitMessage(b, '[binary 7 bytes]');
  await waitMessage(a, '[二进制消息 7 字节]');
});

test('a room of more than 100 members shows its count and pages its member list', { timeout: 90_000 }, async () => {
  const t = tag();
  const room = 'crowd-' + t;
  // 101 plain WebSocket clients (from one page, to keep it cheap) fill a room.
  const ctx = await browser.newContext();
  const bots = await ctx.newPage();
  await bots.goto(srv.url + '/healthz');
  const addBots = (from, n) => bots.evaluate(([from, n, room, t]) => Promise.all(Array.from({ length: n }, (_, k) => new Promise((resolve, reject) => {
    const i = from + k;
    const ws = new WebSocket(`ws://${location.host}/?name=bot${i}-${t}`);
    (window.bots ||= []).push(ws);
    ws.onerror = () => reject(new Error('bot ' + i + ' failed'));
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'welcome') ws.send(JSON.stringify({ type: 'join', room }));
      if (m.type === 'users' && m.room === room) resolve();
    };
  }))), [from, n, room, t]);
  await addBots(0, 101);

  const page = await chatPage(browser, srv.url, 'Counter-' + t, { room, locale: 'zh-CN' });
  await waitText(page, '#userCount', '102');
  await waitText(page, '#roomSub', '102 人在线');
  // The first page holds 100 members; the page lists itself as well (it is
  // last in the server's order, so not on page one).
  await page.waitForFunction(() => document.querySelectorAll('#users li').length === 101);
  assert.equal(await page.$eval('#users li.me .n', (e) => e.textContent), 'Counter-' + t);
  await page.waitForSelector('#moreUsers:not([hidden])');
  await page.click('#moreUsers');
  await page.waitForFunction(() => document.querySelectorAll('#users li').length === 102);
  await page.waitForSelector('#moreUsers', { state: 'hidden' });

  // Someone arrives: the count follows (a coalesced presence update), nobody
  // is named in the messages, and the list is paged again on demand, from
  // the keyboard too.
  await addBots(101, 1);
  await waitText(page, '#userCount', '103');
  await waitText(page, '#menuCount', '103');
  await waitText(page, '#roomSub', '103 人在线');
  const notices = await page.$$eval('#messages .notice', (ns) => ns.map((n) => n.textContent));
  assert.ok(!notices.some((n) => n.includes('bot101-' + t)), `no join notice in a crowd: ${notices}`);
  await page.waitForSelector('#refreshUsers:not([hidden])');
  assert.equal(await page.textContent('#refreshUsers'), '刷新成员列表');
  await page.focus('#refreshUsers');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#refreshUsers', { state: 'hidden' });
  await page.waitForSelector('#moreUsers:not([hidden])');
  await page.click('#moreUsers');
  await page.waitForFunction(() => document.querySelectorAll('#users li').length === 103);
  const names = await memberNames(page);
  assert.ok(names.includes('bot101-' + t), 'the newcomer is on the second page');

  // Back to 100 or fewer: the server sends the whole list, and the page
  // shows it.
  await bots.evaluate(() => window.bots.slice(0, 6).forEach((ws) => ws.close()));
  await waitText(page, '#userCount', '97');
  await page.waitForFunction(() => document.querySelectorAll('#users li').length === 97);
  await page.waitForSelector('#refreshUsers', { state: 'hidden' });
  assert.equal(await page.$eval('#moreUsers', (b) => b.hidden), true);
  // And leaving is named again.
  await bots.evaluate(() => window.bots[6].close());
  await waitText(page, '#userCount', '96');
  await page.waitForFunction((n) => [...document.querySelectorAll('#messages .notice b')].some((e) => e.textContent === n), 'bot6-' + t);
  assert.deepEqual(page.errors || [], []);
  await ctx.close();
});

test('earlier messages load above the recent ones', { timeout: 60_000 }, async () => {
  const t = tag();
  const room = 'old-' + t;
  // 60 messages in a room, from three plain clients (20 each, inside the
  // default rate limit), one after another so their order is known.
  const ctx = await browser.newContext();
  const bots = await ctx.newPage();
  await bots.goto(srv.url + '/healthz');
  await bots.evaluate(async ([room, t]) => {
    const open = (i) => new Promise((resolve) => {
      const ws = new WebSocket(`ws://${location.host}/?room=${room}&name=old${i}-${t}`);
      ws.onmessage = (e) => { if (JSON.parse(e.data).type === 'history') resolve(ws); };
    });
    const socks = [await open(0), await open(1), await open(2)];
    for (let n = 1; n <= 60; n++) {
      const ws = socks[(n - 1) % 3];
      await new Promise((resolve) => {
        const text = `old message ${n}`;
        const seen = (e) => { if (JSON.parse(e.data).text === text) { ws.removeEventListener('message', seen); resolve(); } };
        ws.addEventListener('message', seen);
        ws.send(text);
      });
    }
  }, [room, t]);

  const page = await chatPage(browser, srv.url, 'Reader-' + t, { room });
  await waitMessage(page, 'old message 60');
  assert.equal((await bubbles(page)).length, 50, 'a room shows its last 50 messages');
  await page.waitForSelector('#messages li.older:not([hidden]) button');
  await page.click('#messages li.older button');
  await waitMessage(page, 'old message 1');
  const texts = await bubbles(page);
  assert.deepEqual(texts, Array.from({ length: 60 }, (_, i) => `old message ${i + 1}`));
  await page.waitForSelector('#messages li.older', { state: 'hidden' });
  await ctx.close();
});

test('after a reload your earlier messages are still yours, and you are the same user', { timeout: 60_000 }, async () => {
  const t = tag();
  const ann = 'Reload-' + t, room = 'reload-' + t;
  const page = await chatPage(browser, srv.url, ann, { room });
  const first = await page.evaluate(() => localStorage.getItem('wschat.session'));
  assert.ok(first && /^[0-9a-f]{32}$/.test(first), 'the session is kept for the next visit');
  for (const n of [1, 2, 3]) {
    await say(page, `mine ${n} ${t}`);
    await waitMessage(page, `mine ${n} ${t}`);
  }
  await page.reload();
  await page.waitForSelector('#status[data-state="open"]');
  await waitText(page, '#roomName', room);
  await waitMessage(page, `mine 3 ${t}`);
  const mine = await page.$$eval('#messages li[data-id]', (lis) => lis.map((li) => li.classList.contains('mine')));
  assert.deepEqual(mine, [true, true, true], 'every earlier message is on your side');
  assert.equal(await page.evaluate(() => localStorage.getItem('wschat.session')), first, 'the same session');
  // The member list shows the same name, once (the old tab's departure
  // may still be on its way when the history arrives).
  await page.waitForFunction((name) => [...document.querySelectorAll('#users li .n')].filter((n) => n.textContent === name).length === 1, ann);
  await page.context().close();
});

test('a private conversation is still listed, with its messages, after a reload', { timeout: 60_000 }, async () => {
  const t = tag();
  const ann = 'PmAnn-' + t, bob = 'PmBob-' + t, room = 'pm-' + t;
  const a = await chatPage(browser, srv.url, ann, { room });
  const b = await chatPage(browser, srv.url, bob, { room });
  await members(b, [ann, bob]);
  // Bob writes to Ann privately: click her name, type, Enter.
  await b.click(`#users li:has(.n:text-is("${ann}"))`);
  const secret = `just for you ${t}`;
  await say(b, secret);
  await waitMessage(a, secret);
  // Ann's sidebar lists the conversation with Bob, one unread.
  await a.waitForFunction((name) => [...document.querySelectorAll('#privs li .n')].some((n) => n.textContent === name), bob);
  assert.equal(await a.$eval('#privs li .badge', (e) => e.textContent), '1');

  await a.reload();
  await a.waitForSelector('#status[data-state="open"]');
  // Still listed after the reload, with the message as its preview.
  await a.waitForFunction((name) => [...document.querySelectorAll('#privs li .n')].some((n) => n.textContent === name), bob);
  assert.equal(await a.$eval('#privs li .last', (e) => e.textContent), secret);
  // Opening it (with the keyboard) brings its messages back into view.
  await a.focus('#privs li button.pick');
  await a.keyboard.press('Enter');
  await waitMessage(a, secret);
  await a.waitForSelector('#pmBar:not([hidden])');
  await a.waitForSelector('#privs li .badge', { state: 'detached' });
  await a.context().close();
  await b.context().close();
});

test('an administrator deletes a message and kicks a member from the page; others see no such buttons', { timeout: 60_000 }, async () => {
  const { startServer } = await import('./helpers.mjs');
  const { createHmac } = await import('node:crypto');
  const secret = 'browser-secret';
  const own = await startServer(0, { args: ['--jwt-secret', secret] });
  try {
    const b64 = (s) => Buffer.from(s).toString('base64url');
    const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64(JSON.stringify({ sub: 'mod-1', name: 'Moderator', role: 'admin', exp: Math.floor(Date.now() / 1000) + 600 }));
    const token = `${head}.${body}.${createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')}`;
    const t = tag();
    const spam = await chatPage(browser, own.url, 'Spam-' + t);
    const admin = await browser.newPage();
    await admin.goto(`${own.url}/?token=${token}`);
    await admin.waitForSelector('#status[data-state="open"]');
    const text = `buy now ${t}`;
    await say(spam, text);
    await waitMessage(admin, text);
    assert.equal(await spam.$$eval('button.mod', (bs) => bs.length), 0, 'no admin buttons for others');
    // Delete: the message goes from both pages.
    await admin.click(`#messages li.msg:has(.bubble:text-is("${text}")) button.mod`);
    await spam.waitForFunction((x) => ![...document.querySelectorAll('#messages .bubble')].some((b) => b.textContent === x), text);
    // Kick, from the member list: the spammer's page loses its connection.
    await admin.click(`#users li:has(.n:text-is("Spam-${t}")) button.mod >> nth=0`);
    await waitText(spam, '#statusText', 'Refused: kicked by an administrator');
    assert.notEqual(await spam.$eval('#status', (e) => e.dataset.state), 'open', 'a kicked page does not knock again by itself');
    await admin.context().close();
    await spam.context().close();
  } finally {
    await own.stop();
  }
});

test('someone in another room is found by name and written to privately', { timeout: 60_000 }, async () => {
  const t = tag();
  const a = await chatPage(browser, srv.url, 'Finder-' + t, { room: 'here-' + t });
  const b = await chatPage(browser, srv.url, 'Faraway-' + t, { room: 'there-' + t });
  await a.fill('#findInput', 'faraway-' + t);
  await a.press('#findInput', 'Enter');
  await a.waitForSelector('#found li button.pick');
  await a.focus('#found li button.pick');
  await a.keyboard.press('Enter');
  await a.waitForSelector('#pmBar:not([hidden])');
  const text = `across rooms ${t}`;
  await say(a, text);
  await waitMessage(b, text);
  await a.context().close();
  await b.context().close();
});

test('links, code, bold and italics are built from DOM nodes; anything else stays text', { timeout: 60_000 }, async () => {
  const t = tag();
  const a = await chatPage(browser, srv.url, 'Fmt-' + t);
  const b = await chatPage(browser, srv.url, 'Reader-' + t);
  const text = `see https://example.com/a?b=1, run \`cargo test\`, **bold** _it_ javascript:alert(1) <img src=x onerror="window.pwned=1"> ${t}`;
  await say(a, text);
  await b.waitForFunction((t) => [...document.querySelectorAll('#messages .bubble')].some((x) => x.textContent.includes(t)), t);
  const got = await b.$eval(`#messages li.msg:last-of-type .bubble`, (x) => ({
    links: [...x.querySelectorAll('a')].map((l) => [l.getAttribute('href'), l.rel, l.target, l.textContent]),
    code: [...x.querySelectorAll('code')].map((c) => c.textContent),
    strong: [...x.querySelectorAll('strong')].map((c) => c.textContent),
    em: [...x.querySelectorAll('em')].map((c) => c.textContent),
    imgs: x.querySelectorAll('img').length,
    text: x.textContent,
  }));
  assert.deepEqual(got.links, [['https://example.com/a?b=1', 'noopener noreferrer', '_blank', 'https://example.com/a?b=1']]);
  assert.deepEqual(got.code, ['cargo test']);
  assert.deepEqual(got.strong, ['bold']);
  assert.deepEqual(got.em, ['it']);
  assert.equal(got.imgs, 0, 'markup stays text');
  assert.ok(got.text.includes('javascript:alert(1) <img src=x onerror="window.pwned=1">'), got.text);
  assert.equal(await b.evaluate(() => window.pwned), undefined);
  await a.context().close();
  await b.context().close();
});

test('mentions and private messages notify once allowed, only while the page is not in front', { timeout: 60_000 }, async () => {
  const t = tag();
  const ann = 'Note-' + t;
  const ctx = await browser.newContext({ locale: 'en-US' });
  // A stand-in for the Notification API (headless Chromium shows none):
  // what the page would show is recorded; the browser has granted it.
  await ctx.addInitScript(() => {
    window.__notes = [];
    class FakeNotification { constructor(title, opts) { window.__notes.push({ title, body: opts && opts.body }); } close() {} }
    FakeNotification.permission = 'granted';
    FakeNotification.requestPermission = async () => 'granted';
    window.Notification = FakeNotification;
  });
  const a = await ctx.newPage();
  await a.goto(srv.url + '/');
  await a.fill('#welcomeName', ann);
  await a.press('#welcomeName', 'Enter');
  await a.waitForSelector('#status[data-state="open"]');
  await waitText(a, '#notifyBtn', 'Turn on notifications');
  await a.click('#notifyBtn');
  await waitText(a, '#notifyBtn', 'Notifications on');
  assert.equal(await a.getAttribute('#notifyBtn', 'aria-pressed'), 'true');
  const b = await chatPage(browser, srv.url, 'Pinger-' + t);

  // In front: nothing, even for a mention.
  await say(b, `hey @${ann} in front`);
  await waitMessage(a, `hey @${ann} in front`);
  // Behind other windows: a mention and a private message notify, a plain
  // message does not.
  await a.evaluate(() => { Object.defineProperty(document, 'hidden', { configurable: true, get: () => true }); document.dispatchEvent(new Event('visibilitychange')); });
  await say(b, `plain ${t}`);
  await waitMessage(a, `plain ${t}`);
  await say(b, `hey @${ann.toLowerCase()}, look`);
  await waitMessage(a, `hey @${ann.toLowerCase()}, look`);
  await b.click(`#users li:has(.n:text-is("${ann}"))`);
  await say(b, `secret ${t}`);
  await waitMessage(a, `secret ${t}`);
  const notes = await a.evaluate(() => window.__notes);
  assert.deepEqual(notes, [
    { title: `Pinger-${t} mentioned you`, body: `hey @${ann.toLowerCase()}, look` },
    { title: `Pinger-${t} wrote to you`, body: `secret ${t}` },
  ]);
  // Mentions stand out, in front or not.
  assert.deepEqual(await a.$$eval('#messages li.mention .bubble', (es) => es.map((e) => e.textContent)),
    [`hey @${ann} in front`, `hey @${ann.toLowerCase()}, look`]);
  await ctx.close();
  await b.context().close();
});

test('a member is reached with the keyboard: Tab to the name, Enter, type, Enter', { timeout: 60_000 }, async () => {
  const t = tag();
  const room = 'kb-' + t;
  const a = await chatPage(browser, srv.url, 'Keys-' + t, { room });
  const b = await chatPage(browser, srv.url, 'Target-' + t, { room });
  const item = `#users li:has(.n:text-is("Target-${t}")) button.pick`;
  await a.waitForSelector(item);
  await a.focus(item);
  await a.keyboard.press('Enter');
  await a.waitForSelector('#pmBar:not([hidden])');
  assert.equal(await a.evaluate(() => document.activeElement.id), 'input');
  await a.keyboard.type(`by keyboard ${t}`);
  await a.keyboard.press('Enter');
  await waitMessage(b, `by keyboard ${t}`);
  await a.context().close();
  await b.context().close();
});

test('two users in two rooms: unread badges, switching from the sidebar, and counts that survive a reload', { timeout: 90_000 }, async () => {
  const t = tag();
  const ann = 'Ann-' + t, bob = 'Bob-' + t;
  const red = 'red-' + t, blue = 'blue-' + t;
  const a = await chatPage(browser, srv.url, ann, { room: red });
  const b = await chatPage(browser, srv.url, bob, { room: blue });
  // Each joins the other's room from the list of other rooms or the form:
  // both are now in red and blue (and the lobby, where they began).
  await b.fill('#roomInput', red);
  await b.press('#roomInput', 'Enter');
  await waitText(b, '#roomName', red);
  // The list of rooms is fresh once she is about to pick one.
  await a.focus('#roomInput');
  await a.waitForSelector(`#otherRooms li[data-room="${blue}"] button`);
  await a.click(`#otherRooms li[data-room="${blue}"] button`);
  await waitText(a, '#roomName', blue);
  await a.waitForSelector(`#rooms li[data-room="${red}"]`);
  // Ann looks at blue; Bob writes in red: a badge on red for Ann, nothing
  // in her stream.
  const inRed = `in red ${t}`;
  await say(b, inRed);
  await waitMessage(b, inRed);
  await waitText(a, `#rooms li[data-room="${red}"] .badge`, '1');
  assert.ok(!(await bubbles(a)).includes(inRed), 'the room shown is blue');
  // A reload: the badge is the server's count, kept for her identity.
  await a.reload();
  await a.waitForSelector('#status[data-state="open"]');
  await waitText(a, '#roomName', blue);
  await waitText(a, `#rooms li[data-room="${red}"] .badge`, '1');
  // Opening red from the sidebar with the keyboard shows the message and
  // clears the badge, on this page and after another reload.
  await a.focus(`#rooms li[data-room="${red}"] button.pick`);
  await a.keyboard.press('Enter');
  await waitText(a, '#roomName', red);
  await waitMessage(a, inRed);
  await a.waitForSelector(`#rooms li[data-room="${red}"] .badge`, { state: 'detached' });
  await a.reload();
  await a.waitForSelector('#status[data-state="open"]');
  await waitText(a, '#roomName', red);
  await a.waitForSelector(`#rooms li[data-room="${blue}"]`);
  assert.equal(await a.$$eval('#rooms .badge', (l) => l.length), 0);
  // Plain text goes to the room shown; Bob, in red too, sees it.
  const back = `answer in red ${t}`;
  await say(a, back);
  await waitMessage(b, back);
  // Ann leaves blue with its × button: it leaves her list.
  await a.click(`#rooms li[data-room="${blue}"] button.x`);
  await a.waitForSelector(`#rooms li[data-room="${blue}"]`, { state: 'detached' });
  for (const p of [a, b]) assert.deepEqual(p.errors || [], []);
});

test('edit, delete, reply, reactions and search, seen by the other page; markup in every new field stays text', { timeout: 90_000 }, async () => {
  const t = tag();
  const ann = 'Ann-' + t, bob = 'Bob-' + t;
  const room = 'msgs-' + t;
  const a = await chatPage(browser, srv.url, ann, { room });
  const b = await chatPage(browser, srv.url, bob, { room, locale: 'zh-CN' });
  const probe = `<img src=x onerror="window.__xss=1">`;
  const item = (page, text) => page.locator('#messages li.msg', { has: page.locator('.bubble', { hasText: text }) });

  // Ann writes; Bob replies with the ↩ button: the quote shows Ann's text.
  const first = `first ${t} ${probe}`;
  await say(a, first);
  await waitMessage(b, first);
  await item(b, first).hover();
  await item(b, first).getByRole('button', { name: '回复' }).click();
  await waitText(b, '#refText', `回复 ${ann}: ${first}`.slice(0, `回复 ${ann}: `.length + 80));
  const answer = `answer ${t}`;
  await say(b, answer);
  await waitMessage(a, answer);
  const quoted = await item(a, answer).locator('.quote').textContent();
  assert.equal(quoted, ann + first);

  // Bob reacts 👍 with the keyboard; Ann sees "👍 1" and adds hers: 2.
  await item(b, first).getByRole('button', { name: '用 👍 回应' }).focus();
  await b.keyboard.press('Enter');
  await a.waitForFunction((t) => [...document.querySelectorAll('#messages .react')].some((r) => r.textContent === t), '👍 1');
  await item(a, first).locator('.react').click();
  await b.waitForFunction((t) => [...document.querySelectorAll('#messages .react')].some((r) => r.textContent === t), '👍 2 人');
  assert.equal(await item(a, first).locator('.react').getAttribute('aria-pressed'), 'true');
  // A reaction that is markup (the server takes any short token) stays text.
  const firstId = await item(a, first).getAttribute('data-id');
  await b.evaluate(([room, id]) => new Promise((resolve, reject) => {
    const ws = new WebSocket('ws://' + location.host + '/?room=' + encodeURIComponent(room));
    ws.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'history') ws.send(JSON.stringify({ type: 'react', id, emoji: '<b>x</b>' }));
      if (m.type === 'reactions') { ws.close(); resolve(); }
    };
    ws.onerror = reject;
  }), [room, Number(firstId)]);
  await a.waitForFunction((t) => [...document.querySelectorAll('#messages .react')].some((r) => r.textContent === t), '<b>x</b> 1');
  assert.equal(await a.$$eval('#messages .react b', (l) => l.length), 0);
  // Ann edits her message: Bob sees the new text, marked edited.
  await item(a, first).hover();
  await item(a, first).getByRole('button', { name: 'Edit this message' }).click();
  const changed = `changed ${t} ${probe}`;
  await a.fill('#input', changed);
  await a.press('#input', 'Enter');
  await waitMessage(b, changed);
  await b.waitForSelector(`#messages li.msg[data-id="${firstId}"] .edited`);
  assert.ok(!(await bubbles(b)).includes(first), 'the old text is gone');

  // Bob searches the room, in Chinese and ignoring case: the edited text.
  await b.fill('#searchInput', 'CHANGED ' + t);
  await b.press('#searchInput', 'Enter');
  await b.waitForFunction((t) => [...document.querySelectorAll('#results li')].some((li) => li.textContent.includes(t)), changed);
  await say(a, `天气很好 ${t}`);
  await waitMessage(b, `天气很好 ${t}`);
  await b.fill('#searchInput', '天气');
  await b.press('#searchInput', 'Enter');
  await b.waitForFunction((t) => [...document.querySelectorAll('#results li')].some((li) => li.textContent.includes(t)), `天气很好 ${t}`);

  // Ann deletes her first message: gone from Bob's page.
  await item(a, changed).hover();
  await item(a, changed).getByRole('button', { name: 'Delete this message' }).click();
  await b.waitForSelector(`#messages li.msg[data-id="${firstId}"]`, { state: 'detached' });

  // The probe never ran and made no element, anywhere.
  for (const p of [a, b]) {
    assert.equal(await p.evaluate(() => window.__xss), undefined);
    assert.equal(await p.$$eval('#messages img, #results img, #refText img', (l) => l.length), 0);
    assert.deepEqual(p.errors || [], []);
  }
});

test('a mention from a room you are not looking at notifies, from the server\'s notice', { timeout: 60_000 }, async () => {
  const t = tag();
  const ann = 'Far-' + t;
  const ctx = await browser.newContext({ locale: 'zh-CN' });
  await ctx.addInitScript(() => {
    window.__notes = [];
    class FakeNotification { constructor(title, opts) { window.__notes.push({ title, body: opts && opts.body }); } close() {} }
    FakeNotification.permission = 'granted';
    FakeNotification.requestPermission = async () => 'granted';
    window.Notification = FakeNotification;
  });
  const a = await ctx.newPage();
  await a.goto(srv.url + '/');
  await a.fill('#welcomeName', ann);
  await a.press('#welcomeName', 'Enter');
  await a.waitForSelector('#status[data-state="open"]');
  await a.click('#notifyBtn');
  // Bob is in a room Ann is not in; he names her there.
  const b = await chatPage(browser, srv.url, 'Caller-' + t, { room: 'elsewhere-' + t });
  const text = `@${ann} 看这里`;
  await say(b, text);
  await waitMessage(b, text);
  await a.waitForFunction(() => window.__notes.length > 0);
  assert.deepEqual(await a.evaluate(() => window.__notes), [{ title: `Caller-${t} 提到了你`, body: text }]);
  assert.ok(!(await bubbles(a)).includes(text), 'the message itself is not in her room');
  await ctx.close();
  await b.context().close();
});
