// Peer server on uWebSockets (the native build in
// @trufflesuite/uws-js-unofficial): /echo echoes; / relays every text
// message, as it is, to every client of / (the sender included), with
// uWS's own pub/sub.
// Usage: node uws-server.js PORT [compress]   (listens on 127.0.0.1)
// With `compress`, permessage-deflate is on with uWS.SHARED_COMPRESSOR (no
// context takeover, no compressor per connection) and every publish asks
// for compression, so a message is compressed once for all subscribers;
// without it, compression is off.
'use strict';
const path = require('path');

// Load the native addon itself: the package would otherwise fall back
// silently to a pure-JS implementation, which is not what we measure.
const pkg = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
const binary = path.join(
  pkg, 'binaries',
  `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
let uWS;
try {
  uWS = require(binary);
} catch (e) {
  console.error(`uws peer: no native uWebSockets for this Node (${binary}): ${e.message}`);
  process.exit(1);
}

const port = Number(process.argv[2] || 3000);
const compress = process.argv[3] === 'compress';
const common = {
  compression: compress ? uWS.SHARED_COMPRESSOR : uWS.DISABLED,
  maxPayloadLength: 1 << 20,
  // The same 1 MiB per-client backlog as the tungstenite peer.
  maxBackpressure: 1 << 20,
  idleTimeout: 120,
};
const app = uWS.App();
app.ws('/echo', {
  ...common,
  message: (ws, message, isBinary) => { ws.send(message, isBinary, compress); },
});
app.ws('/', {
  ...common,
  open: (ws) => { ws.subscribe('room'); },
  message: (ws, message, isBinary) => {
    if (!isBinary) app.publish('room', message, false, compress);
  },
});
app.any('/*', (res) => { res.writeStatus('404 Not Found').end('not found\n'); });
app.listen('127.0.0.1', port, (token) => {
  if (!token) {
    console.error(`uws peer: cannot listen on 127.0.0.1:${port}`);
    process.exit(1);
  }
  console.log(`uws peer on 127.0.0.1:${port}${compress ? ' (SHARED_COMPRESSOR)' : ''}`);
});
