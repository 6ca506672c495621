// Peer server on Node's `ws`: /echo echoes; / relays every text message,
// as it is, to every client of / (the sender included).
// Usage: node ws-server.js PORT   (listens on 127.0.0.1)
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 3000);
const server = http.createServer((req, res) => {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1 << 20 });
const room = new Set();

wss.on('connection', (socket, req) => {
  const path = req.url.split('?')[0];
  socket.on('error', () => {});
  if (path === '/echo') {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
  } else if (path === '/') {
    room.add(socket);
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      for (const client of room) client.send(data, { binary: false });
    });
    socket.on('close', () => room.delete(socket));
  } else {
    socket.close(1008, 'no such endpoint');
  }
});

server.listen(port, '127.0.0.1', () => console.log(`ws peer on 127.0.0.1:${port}`));
