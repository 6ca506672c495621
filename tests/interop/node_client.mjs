// wschat against the Node `ws` library, as a client.
//
// Run by .ci/interop.sh: `node node_client.mjs ws://127.0.0.1:PORT`. Each
// check prints one line, `PASS node: NAME` or `FAIL node: NAME: WHY`, and
// the last line counts them. Exit status 1 when any check failed.

import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';

// Longest wait for any one thing the server should do, in ms.
const TIMEOUT = 10_000;
const LABEL = 'node';

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// A ws client whose messages, pongs and close can be awaited in order.
class Client {
  static open(url) {
    return withTimeout(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { handshakeTimeout: TIMEOUT });
        const client = new Client(ws);
        ws.once('open', () => resolve(client));
        ws.once('error', reject);
        ws.once('unexpected-response', (_, res) =>
          reject(new Error(`HTTP ${res.statusCode} instead of 101 from ${url}`)),
        );
      }),
      TIMEOUT,
      `open ${url}`,
    );
  }

  constructor(ws) {
    this.ws = ws;
    this.queue = [];
    this.waiters = [];
    this.error = null;
    ws.on('message', (data, isBinary) => this.push({ data, isBinary }));
    ws.on('error', (e) => {
      this.error = e;
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        resolve({ code, reason: reason.toString() });
        this.push(null);
      });
    });
  }

  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.queue.push(item);
  }

  // The next message: { data: Buffer, isBinary }.
  async recv() {
    const item = this.queue.length
      ? this.queue.shift()
      : await withTimeout(new Promise((r) => this.waiters.push(r)), TIMEOUT, 'a message');
    if (item === null) {
      this.queue.push(null);
      throw new Error(`connection closed${this.error ? ` (${this.error.message})` : ''}`);
    }
    return item;
  }

  // The next server message of type `type` passing `test`, skipping others.
  async recvJson(type, test = () => true) {
    for (;;) {
      const { data, isBinary } = await this.recv();
      expect(!isBinary, 'expected a text message, got binary');
      const message = JSON.parse(data.toString('utf8'));
      expect(message && typeof message.type === 'string', `not a typed JSON object: ${data}`);
      if (message.type === type && test(message)) return message;
    }
  }

  send(data, options = {}) {
    return new Promise((resolve, reject) =>
      this.ws.send(data, options, (e) => (e ? reject(e) : resolve())),
    );
  }

  // Close with `code` and `reason`; resolves with the server's close code.
  async close(code, reason = '') {
    this.ws.close(code, reason);
    const { code: got } = await withTimeout(this.closed, TIMEOUT, 'the close handshake');
    return got;
  }
}

async function echoText(base) {
  const c = await Client.open(`${base}/echo`);
  for (const text of ['hello', 'héllo, 世界 👋', '', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(70_000)]) {
    await c.send(text);
    const { data, isBinary } = await c.recv();
    expect(!isBinary, 'binary came back for text');
    expect(data.toString('utf8') === text, `echo of ${text.length} chars differs`);
  }
  expect((await c.close(1000)) === 1000, 'close code');
}

async function echoBinary(base) {
  const c = await Client.open(`${base}/echo`);
  const all = Buffer.alloc(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  for (const payload of [all, Buffer.alloc(0), Buffer.alloc(65_536), randomBytes(200_000)]) {
    await c.send(payload, { binary: true });
    const { data, isBinary } = await c.recv();
    expect(isBinary, 'text came back for binary');
    expect(data.equals(payload), `echo of ${payload.length} bytes differs (${data.length} back)`);
  }
  expect((await c.close(1000)) === 1000, 'close code');
}

async function echoFragmented(base) {
  const c = await Client.open(`${base}/echo`);
  // Text: three frames (fin false, false, true), the 2nd split inside a
  // UTF-8 sequence, which is legal across fragments.
  const text = Buffer.from('frag-1 片段-2 fragment three', 'utf8');
  const cut = 'frag-1 '.length + 1; // inside 片
  await c.send(text.subarray(0, cut), { fin: false, binary: false });
  await c.send(text.subarray(cut, cut + 6), { fin: false, binary: false });
  await c.send(text.subarray(cut + 6), { fin: true, binary: false });
  let back = await c.recv();
  expect(!back.isBinary && back.data.equals(text), `text came back as ${back.data}`);
  // Binary: two frames.
  const parts = [randomBytes(1000), randomBytes(3)];
  await c.send(parts[0], { fin: false, binary: true });
  await c.send(parts[1], { fin: true, binary: true });
  back = await c.recv();
  expect(back.isBinary && back.data.equals(Buffer.concat(parts)), 'binary echo differs');
  expect((await c.close(1000)) === 1000, 'close code');
}

async function echoPing(base) {
  const c = await Client.open(`${base}/echo`);
  for (const payload of [Buffer.from('x'), Buffer.from('负载'), randomBytes(125)]) {
    const pong = withTimeout(
      new Promise((resolve) => c.ws.once('pong', resolve)),
      TIMEOUT,
      'a pong',
    );
    c.ws.ping(payload);
    const data = await pong;
    expect(data.equals(payload), `pong payload ${data.toString('hex')}, sent ${payload.toString('hex')}`);
  }
  expect((await c.close(1000)) === 1000, 'close code');
}

async function echoClose(base) {
  const c = await Client.open(`${base}/echo`);
  await c.send('bye soon');
  expect((await c.recv()).data.toString() === 'bye soon', 'echo differs');
  const code = await c.close(4000, 'done here');
  expect(code === 4000, `the close event says ${code}, wanted 4000`);
}

async function chat(base) {
  const nonce = randomBytes(4).toString('hex');
  const a = await Client.open(`${base}/?name=node-a-${nonce}`);
  const welcomeA = await a.recvJson('welcome');
  const meA = welcomeA.user;
  expect(Number.isInteger(meA.id), `welcome without a user id: ${JSON.stringify(welcomeA)}`);
  const b = await Client.open(`${base}/chat?name=node-b-${nonce}`);
  const welcomeB = await b.recvJson('welcome');
  const meB = welcomeB.user;
  expect(meB.id !== meA.id, 'two users with one id');
  expect(welcomeB.room === welcomeA.room, '/ and /chat put users in different rooms');
  await a.recvJson('join', (m) => m.users.some((u) => u.id === meB.id));

  const text = `你好 from node ${nonce} <i>&lt;</i>`;
  await b.send(text);
  for (const c of [a, b]) {
    const m = await c.recvJson('chat', (m) => m.text === text);
    expect(m.user.id === meB.id, `chat from the wrong user: ${JSON.stringify(m)}`);
    expect(m.room === welcomeA.room, `chat in the wrong room: ${JSON.stringify(m)}`);
    expect(Number.isInteger(m.id) && Number.isInteger(m.time), JSON.stringify(m));
  }
  expect((await b.close(1000)) === 1000, 'b: close code');
  await a.recvJson('leave', (m) => m.users.some((u) => u.id === meB.id));
  expect((await a.close(1000)) === 1000, 'a: close code');
}

async function main() {
  const base = (process.argv[2] || 'ws://127.0.0.1:3000').replace(/\/$/, '');
  let passed = 0;
  let failed = 0;
  const checks = [
    ['echo text (7- 16- and 64-bit lengths, UTF-8)', echoText],
    ['echo binary', echoBinary],
    ['echo fragmented text and binary (fin: false)', echoFragmented],
    ['ping with payload, matching pong', echoPing],
    ['close 4000 with a reason: /echo answers 4000', echoClose],
    ['chat: welcome, broadcast to both, leave, close 1000', chat],
  ];
  for (const [name, check] of checks) {
    try {
      await withTimeout(check(base), 4 * TIMEOUT, name);
      passed++;
      console.log(`PASS ${LABEL}: ${name}`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${LABEL}: ${name}: ${e.message}`);
    }
  }
  console.log(`${LABEL}: ${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main();
