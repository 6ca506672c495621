// Peer server on `nodejs-websocket` (the library of the seeds): /echo
// echoes; / relays every text message, as it is, to every client of /
// (the sender included), through server.connections as the seeds do.
// Usage: node nodejs-websocket-server.js PORT   (listens on 127.0.0.1)
'use strict';
const ws = require('nodejs-websocket');

const port = Number(process.argv[2] || 3000);
const server = ws.createServer((conn) => {
  conn.socket.setNoDelay(true);
  conn.on('error', () => {});
  const path = (conn.path || '').split('?')[0];
  if (path === '/echo') {
    conn.on('text', (text) => conn.sendText(text));
    conn.on('binary', (stream) => {
      const parts = [];
      stream.on('data', (d) => parts.push(d));
      stream.on('end', () => conn.sendBinary(Buffer.concat(parts)));
    });
  } else if (path === '/') {
    conn.on('text', (text) => {
      for (const client of server.connections) {
        if (client.path === '/' && client.readyState === client.OPEN) client.sendText(text);
      }
    });
  } else {
    conn.close(1008, 'no such endpoint');
  }
});

server.on('error', (e) => {
  console.error(`nodejs-websocket peer: ${e.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => console.log(`nodejs-websocket peer on 127.0.0.1:${port}`));
