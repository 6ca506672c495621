// socket.io 4 with @socket.io/redis-adapter: one node of a cluster whose
// nodes share a room through Redis pub/sub, the peer of wschat's `--redis`
// in bench/run.sh's `cluster` scenario.
//
//   node socketio-redis-server.js PORT redis://127.0.0.1:6379
//
// Every socket joins the room "lobby"; a "chat" event from any socket is
// emitted to the room, on every node (the adapter PUBLISHes it once, each
// node's subscriber emits it to its own members), the sender included, as
// wschat does. WebSocket transport only (no HTTP long-polling), no
// compression, and Engine.IO pings far apart so that a 10 s run measures
// the chat alone.
"use strict";

const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.argv[2]);
const url = process.argv[3];
if (!port || !url) {
  console.error("usage: node socketio-redis-server.js PORT REDIS_URL");
  process.exit(2);
}

async function main() {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (e) => console.error("redis:", e.message));
  }
  await Promise.all([pub.connect(), sub.connect()]);

  const server = http.createServer();
  const io = new Server(server, {
    adapter: createAdapter(pub, sub),
    transports: ["websocket"],
    perMessageDeflate: false,
    serveClient: false,
    pingInterval: 60000,
    pingTimeout: 60000,
  });
  io.on("connection", (socket) => {
    socket.join("lobby");
    socket.on("chat", (text) => {
      if (typeof text === "string") io.to("lobby").emit("chat", text);
    });
  });
  server.listen(port, "127.0.0.1", () => console.log(`socket.io + redis-adapter on ${port}`));
  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
