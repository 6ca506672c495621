#!/usr/bin/env python3
"""Three wschat nodes behind nginx, seen by clients of the nginx port only.

Run by .ci/cluster.sh with the deployment of docs/cluster.md: nginx (its
`cluster-nginx` site) in front of three nodes started as the systemd unit
and its drop-in would start them, on one redis-server. Each check prints
`PASS cluster: NAME` or `FAIL cluster: NAME: WHY`; the last line counts them.

    cluster_client.py --url ws://127.0.0.1:8080 --node 3001:PID --node 3002:PID --node 3003:PID

Which node nginx gave a client is read from the nodes' own /metrics
(`wschat_websockets_open`), the clients being opened one at a time. A node
is killed with SIGKILL by the PID given for it.
"""

import argparse
import asyncio
import os
import secrets
import signal
import sys
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from python_client import TIMEOUT, Checks, expect, recv_json


def websockets_open(port):
    """The node's `wschat_websockets_open`, or None if it does not answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("wschat_websockets_open "):
            return int(float(line.split()[1]))
    raise AssertionError(f"node {port}: no wschat_websockets_open in /metrics")


class Cluster:
    def __init__(self, url, nodes):
        self.url = url.rstrip("/")
        self.nodes = nodes  # port -> pid
        self.room = "deploy" + secrets.token_hex(3)
        self.dead = set()

    async def gauges(self):
        return {
            p: await asyncio.to_thread(websockets_open, p) for p in self.nodes if p not in self.dead
        }

    async def open(self, since=None):
        """A client of the nginx port in this run's room: (ws, first
        message, the node nginx gave it)."""
        before = await self.gauges()
        target = f"/?room={self.room}" + (f"&since={since}" if since is not None else "")
        ws = await connect(self.url + target, proxy=None, open_timeout=TIMEOUT, close_timeout=1)
        first = await recv_json(ws, "resume" if since is not None else "history")
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            after = await self.gauges()
            rose = [p for p in after if after[p] is not None and after[p] == (before.get(p) or 0) + 1]
            if len(rose) == 1:
                return ws, first, rose[0]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no one node took the connection: {before} -> {after}")
            await asyncio.sleep(0.05)


class Client:
    """A chat client that keeps every chat message it receives, in order."""

    def __init__(self, ws, node):
        self.ws = ws
        self.node = node
        self.chats = []  # (id, text)

    async def chat(self, test):
        """Read until a chat message passing `test` arrives; keep every chat."""
        while True:
            m = await recv_json(self.ws, "chat")
            self.chats.append((m["id"], m["text"]))
            if test(m):
                return m

    async def send(self, text):
        """Send and wait until the message comes back stored: its id."""
        await self.ws.send(text)
        m = await self.chat(lambda m: m["text"] == text)
        return m["id"]


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--node", action="append", required=True, help="PORT:PID")
    args = parser.parse_args()
    nodes = {}
    for n in args.node:
        port, pid = n.split(":")
        nodes[int(port)] = int(pid)
    cluster = Cluster(args.url, nodes)
    checks = Checks("cluster")
    state = {}

    async def spread():
        # Round robin gives three clients three nodes; up to six are opened
        # in case another connection took a turn.
        clients = {}
        for _ in range(6):
            ws, _, node = await cluster.open()
            if node in clients:
                await ws.close()
            else:
                clients[node] = Client(ws, node)
            if len(clients) == 3:
                break
        expect(len(clients) == 3, f"clients reached only nodes {sorted(clients)}")
        state["clients"] = clients

    await checks.run("nginx spreads three clients over the three nodes (no stickiness)", spread())

    async def chat():
        clients = list(state["clients"].values())
        texts = []
        for c in clients:
            text = f"hello from the node on {c.node}"
            await c.send(text)
            texts.append(text)
        for c in clients:
            while not all(any(t == text for _, t in c.chats) for text in texts):
                await c.chat(lambda m: True)
        first = clients[0].chats
        expect(sorted(t for _, t in first) == sorted(texts), f"not each once: {first}")
        expect([i for i, _ in first] == sorted(i for i, _ in first), f"ids not increasing: {first}")
        for c in clients[1:]:
            expect(c.chats == first, f"node {c.node}'s client got {c.chats}, node {clients[0].node}'s {first}")

    await checks.run("a chat through nginx across the three nodes: each message once, one order", chat())

    async def resume():
        clients = list(state["clients"].values())
        victim, sender, third = clients[1], clients[0], clients[2]
        last = victim.chats[-1][0]
        os.kill(cluster.nodes[victim.node], signal.SIGKILL)
        cluster.dead.add(victim.node)
        print(f"killed node {victim.node} (PID {cluster.nodes[victim.node]})", flush=True)
        try:
            while True:
                await asyncio.wait_for(victim.ws.recv(), TIMEOUT)
        except ConnectionClosed:
            pass
        # Sent while the victim is away; each confirmed (stored) on its node.
        missed = []
        for n in range(3):
            text = f"while away {n}"
            missed.append((await sender.send(text), text))
        ws, resumed, node = await cluster.open(since=last)
        expect(node != victim.node, "the client came back to the dead node")
        expect(resumed.get("complete") is True, f"resume not complete: {resumed}")
        got = [(m["id"], m["text"]) for m in resumed["messages"] if m.get("type") == "chat"]
        expect(got == missed, f"resumed {got}, wanted exactly {missed}")
        back = Client(ws, node)
        live = "after the resume"
        await third.send(live)
        m = await back.chat(lambda m: True)
        expect(m["text"] == live, f"the next chat after the resume was {m}")
        state["resumed"] = (node, third.node)

    await checks.run("a node killed (SIGKILL): its client resumes through nginx on another node, no gap, no repeat",
                     resume())
    if "resumed" in state:
        node, sender = state["resumed"]
        print(f"cluster-client: resumed on the node on {node}, live message from the node on {sender}")
    print(f"cluster-client: {checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
