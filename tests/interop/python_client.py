#!/usr/bin/env python3
"""wschat against the Python `websockets` library, as a client.

Run by .ci/interop.sh (straight to wschat) and .ci/nginx.sh (through nginx,
over ws:// and wss://). Each check prints one line, `PASS python: NAME` or
`FAIL python: NAME: WHY`, and the last line counts them. Exit status 1 when
any check failed.

    python_client.py ws://127.0.0.1:3000
    python_client.py wss://127.0.0.1:8443 --ca ca.pem --http --quiet 6
"""

import argparse
import asyncio
import json
import re
import secrets
import ssl
import sys
import traceback
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

# Longest wait for any one thing the server should do.
TIMEOUT = 10.0

LABEL = "python"


class Checks:
    """Runs named checks, prints a line for each, counts them."""

    def __init__(self, label):
        self.label = label
        self.passed = 0
        self.failed = 0

    async def run(self, name, coro):
        try:
            await asyncio.wait_for(coro, 4 * TIMEOUT)
        except Exception as e:  # every failure is reported, none stops the run
            self.failed += 1
            why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            print(f"FAIL {self.label}: {name}: {why}", flush=True)
            if not isinstance(e, (AssertionError, asyncio.TimeoutError)):
                traceback.print_exc(file=sys.stderr)
        else:
            self.passed += 1
            print(f"PASS {self.label}: {name}", flush=True)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


class Client:
    """Where to connect, and how."""

    def __init__(self, base, ca, source=None):
        self.base = base.rstrip("/")
        # The local address to connect from (another loopback address makes
        # the client tell apart from a proxy on 127.0.0.1).
        self.options = {"local_addr": (source, 0)} if source else {}
        self.tls = None
        if self.base.startswith("wss://"):
            # Verify the server's certificate against the given CA only, as
            # strictly as Python's newest defaults (VERIFY_X509_STRICT).
            self.tls = ssl.create_default_context(cafile=ca)
            if hasattr(ssl, "VERIFY_X509_STRICT"):
                self.tls.verify_flags |= ssl.VERIFY_X509_STRICT

    def connect(self, path, **options):
        # proxy=None: never go through an HTTP proxy from the environment.
        return connect(
            self.base + path,
            ssl=self.tls,
            proxy=None,
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
            **self.options,
            **options,
        )

    def http_base(self):
        return "http" + self.base[2:]

    def get(self, path):
        """A plain GET: (status, content type, body)."""
        request = urllib.request.Request(self.http_base() + path)
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=self.tls),
        )
        with opener.open(request, timeout=TIMEOUT) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()


async def recv(ws, what="a message"):
    try:
        return await asyncio.wait_for(ws.recv(), TIMEOUT)
    except asyncio.TimeoutError:
        raise asyncio.TimeoutError(f"no {what} from the server within {TIMEOUT:g} s") from None


async def recv_json(ws, wanted, test=lambda m: True):
    """The next server message of type `wanted` that passes `test`,
    skipping others (join notices, user lists, history, …)."""
    while True:
        raw = await recv(ws, f"{wanted!r} message")
        expect(isinstance(raw, str), f"expected a text message, got {type(raw).__name__}")
        message = json.loads(raw)
        expect(isinstance(message, dict) and "type" in message, f"not a typed JSON object: {raw!r}")
        if message["type"] == wanted and test(message):
            return message


async def closed_with(ws, code, reason=""):
    """Close with `code` (and `reason`) and check both Close frames: the one
    sent and the server's answer, which repeats the code (RFC 6455 §5.5.1;
    the reason need not come back)."""
    await ws.close(code, reason)
    sent, received = ws.protocol.close_sent, ws.protocol.close_rcvd
    expect(sent is not None and sent.code == code, f"sent close {sent}, wanted {code}")
    expect(received is not None, "the server sent no Close frame")
    expect(received.code == code, f"the server closed with {received.code}, wanted {code}")
    expect(ws.close_code == code, f"close_code is {ws.close_code}, wanted {code}")


# --- /echo ---------------------------------------------------------------


async def echo_text(c):
    async with c.connect("/echo") as ws:
        for text in ["hello", "héllo, 世界 👋", "", "x" * 125, "y" * 126, "z" * 70_000]:
            await ws.send(text)
            back = await recv(ws)
            expect(isinstance(back, str), f"a {type(back).__name__} came back for text")
            expect(back == text, f"echo of {len(text)} chars differs ({len(back)} back)")


async def echo_binary(c):
    async with c.connect("/echo") as ws:
        for data in [bytes(range(256)), b"", b"\x00" * 65_536, secrets.token_bytes(200_000)]:
            await ws.send(data)
            back = await recv(ws)
            expect(isinstance(back, bytes), f"a {type(back).__name__} came back for binary")
            expect(back == data, f"echo of {len(data)} bytes differs ({len(back)} back)")


async def echo_fragmented_text(c):
    fragments = ["frag-1 ", "片段-2 ", "", "fragment three"]
    async with c.connect("/echo") as ws:
        await ws.send(fragments)  # a list of str: one text message, 4 frames
        back = await recv(ws)
        expect(back == "".join(fragments), f"got {back!r}")


async def echo_fragmented_binary(c):
    fragments = [b"\x01\x02", secrets.token_bytes(3000), b"\xff"]

    async def chunks():
        for fragment in fragments:
            yield fragment
            await asyncio.sleep(0.01)  # so they do not arrive in one read

    async with c.connect("/echo") as ws:
        await ws.send(chunks())
        back = await recv(ws)
        expect(back == b"".join(fragments), f"got {len(back)} bytes")


async def echo_ping(c):
    async with c.connect("/echo", ping_interval=None) as ws:
        # The pong waiter completes only on a Pong carrying the same payload.
        for payload in [b"x", "负载".encode(), secrets.token_bytes(125)]:
            pong = await ws.ping(payload)
            await asyncio.wait_for(pong, TIMEOUT)
        await ws.send("after pings")
        expect(await recv(ws) == "after pings", "echo after pings differs")


async def echo_close_code(c):
    async with c.connect("/echo") as ws:
        await ws.send("bye soon")
        expect(await recv(ws) == "bye soon", "echo differs")
        await closed_with(ws, 4000, "done here")


async def echo_quiet(c, seconds):
    """A connection that sends nothing for `seconds` stays open: wschat's
    pings keep proxies (nginx's proxy_read_timeout) from dropping it."""
    async with c.connect("/echo", ping_interval=None) as ws:
        await asyncio.sleep(seconds)
        await ws.send("still here")
        expect(await recv(ws) == "still here", "echo after the quiet spell differs")
        await closed_with(ws, 1000)


# --- the chat --------------------------------------------------------------


def chat_checks(c):
    """The chat on / and /chat: welcome, a broadcast, leave, clean closes."""

    async def chat():
        nonce = secrets.token_hex(4)
        async with c.connect(f"/?name=py-a-{nonce}") as a:
            welcome_a = await recv_json(a, "welcome")
            me_a = welcome_a["user"]
            expect(isinstance(me_a.get("id"), int), f"welcome without a user id: {welcome_a}")
            async with c.connect(f"/chat?name=py-b-{nonce}") as b:
                welcome_b = await recv_json(b, "welcome")
                me_b = welcome_b["user"]
                expect(me_b["id"] != me_a["id"], "two users with one id")
                expect(welcome_b["room"] == welcome_a["room"], "/ and /chat put users in different rooms")
                await recv_json(a, "join", lambda m: any(u["id"] == me_b["id"] for u in m["users"]))

                text = f"你好 from python {nonce} <b>&amp;</b>"
                await a.send(text)  # plain text: a chat message to the room
                for ws in (a, b):
                    chat = await recv_json(ws, "chat", lambda m: m.get("text") == text)
                    expect(chat["user"]["id"] == me_a["id"], f"chat from the wrong user: {chat}")
                    expect(chat["room"] == welcome_a["room"], f"chat in the wrong room: {chat}")
                    expect(isinstance(chat["id"], int) and isinstance(chat["time"], int), f"{chat}")

                await closed_with(b, 1000)
            await recv_json(a, "leave", lambda m: any(u["id"] == me_b["id"] for u in m["users"]))
            await closed_with(a, 1000)

    return chat()


# --- plain HTTP (through a proxy) -----------------------------------------


async def http_pages(c):
    status, kind, body = await asyncio.to_thread(c.get, "/healthz")
    expect(status == 200 and body == b"ok\n", f"/healthz: {status} {body!r}")
    status, kind, body = await asyncio.to_thread(c.get, "/")
    expect(status == 200 and kind.startswith("text/html"), f"/: {status} {kind}")
    expect(b"<html" in body.lower(), "/ is not the chat page")


def closes_sent(c, code):
    """wschat_closes_sent_total{code=...} from /metrics."""
    _, _, body = c.get("/metrics")
    match = re.search(rf'^wschat_closes_sent_total{{code="{code}"}} (\d+)$', body.decode(), re.M)
    expect(match is not None, f"/metrics has no wschat_closes_sent_total for {code}")
    return int(match.group(1))


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", help="ws://HOST:PORT or wss://HOST:PORT")
    parser.add_argument("--ca", help="CA certificate to verify wss:// against")
    parser.add_argument("--http", action="store_true", help="also check /healthz, / and /metrics over HTTP(S)")
    parser.add_argument("--quiet", type=float, default=0, help="hold a silent connection this many seconds")
    parser.add_argument("--source-address", help="local address to connect from, e.g. 127.0.0.2")
    parser.add_argument("--label", default=LABEL, help="name printed on each line")
    args = parser.parse_args()

    c = Client(args.base, args.ca, args.source_address)
    checks = Checks(args.label)
    if args.http:
        await checks.run("GET /healthz and / (plain HTTP)", http_pages(c))
    await checks.run("echo text (7- 16- and 64-bit lengths, UTF-8)", echo_text(c))
    await checks.run("echo binary", echo_binary(c))
    await checks.run("echo fragmented text", echo_fragmented_text(c))
    await checks.run("echo fragmented binary (async iterator)", echo_fragmented_binary(c))
    await checks.run("ping with payload, matching pong", echo_ping(c))
    await checks.run("close 4000 with a reason: /echo answers 4000", echo_close_code(c))
    before = None
    if args.http:
        try:
            before = await asyncio.to_thread(closes_sent, c, 1000)
        except Exception as e:
            print(f"{args.label}: cannot read /metrics before the chat: {e}", file=sys.stderr)
    await checks.run("chat: welcome, broadcast to both, leave, close 1000", chat_checks(c))
    if args.http:

        async def server_closed():
            expect(before is not None, "/metrics could not be read before the chat")
            after = await asyncio.to_thread(closes_sent, c, 1000)
            expect(after - before >= 2, f"wschat counted {after - before} closes 1000 sent, wanted 2")

        await checks.run("chat: the server sent close 1000 to both (/metrics)", server_closed())
    if args.quiet:
        await checks.run(f"a silent connection stays open {args.quiet:g} s", echo_quiet(c, args.quiet))
    print(f"{args.label}: {checks.passed} passed, {checks.failed} failed", flush=True)
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
