#!/usr/bin/env python3
"""Write wschat's seed corpus: fuzz/corpus/<target>/<name>.

    python3 fuzz/make_corpus.py

The seeds are the frames of RFC 6455 §5.7, a few frames that break one rule
each, UTF-8 samples (valid, and each way of being invalid), and opening
handshakes in the shapes real browsers send, the RFC §1.3 example and an old
Hixie-76 request. The file names say what each seed is. Running the script
again rewrites the same bytes; files the fuzzer added are left alone.

Input layouts (see each target's doc comment): `frame` and `utf8` seeds
start with a configuration byte and chunk sizes, `handshake` seeds are raw
requests, `roundtrip` seeds are bytes for `arbitrary` to shape.
"""

import base64
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])  # the key of RFC 6455 §5.7


def write(target, name, data):
    directory = os.path.join(ROOT, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def frame(opcode, payload, fin=True, mask=None, rsv=0, length=None):
    """One frame (RFC 6455 §5.2); `length` overrides the declared length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def frame_config(limits=0, sizes=()):
    """The `frame` target's leading bytes: limits choice and chunk sizes."""
    assert 0 <= limits < 4 and len(sizes) < 8
    return bytes([limits | (len(sizes) << 2)]) + bytes(sizes)


def frame_seeds():
    text, cont, binary, close, ping, pong = 0x1, 0x0, 0x2, 0x8, 0x9, 0xA
    seeds = {
        # RFC 6455 §5.7, byte for byte.
        "rfc-5.7-unmasked-hello": frame(text, b"Hello"),
        "rfc-5.7-masked-hello": frame(text, b"Hello", mask=MASK),
        "rfc-5.7-fragmented-hel-lo": frame(text, b"Hel", fin=False) + frame(cont, b"lo"),
        "rfc-5.7-unmasked-ping": frame(ping, b"Hello"),
        "rfc-5.7-masked-pong": frame(pong, b"Hello", mask=MASK),
        "rfc-5.7-binary-256": frame(binary, bytes(range(256))),
        # The 64 KiB example's header, and the start of its payload.
        "rfc-5.7-binary-65536-header": frame(binary, bytes(16), length=65536),
        # Conversations a server sees: masked fragments with a ping between.
        "masked-fragments-ping-between": frame(text, "héllo ".encode(), fin=False, mask=MASK)
        + frame(ping, b"p", mask=MASK)
        + frame(cont, "wörld 客服".encode(), mask=MASK)
        + frame(binary, b"\x00\x01\x02", mask=MASK),
        "masked-close-1000-bye": frame(text, b"hi", mask=MASK)
        + frame(close, b"\x03\xe8bye", mask=MASK)
        + frame(text, b"after close", mask=MASK),
        "unmasked-close-empty": frame(close, b""),
        "masked-empty-fragments": frame(binary, b"", fin=False, mask=MASK)
        + frame(cont, b"", fin=False, mask=MASK)
        + frame(cont, b"", mask=MASK),
        "medium-length-form-for-5-bytes": bytes([0x81, 0x7E, 0x00, 0x05]) + b"Hello",
        # Broken frames, one rule each.
        "broken-reserved-opcode-3": frame(0x3, b"x", mask=MASK),
        "broken-reserved-opcode-b": frame(0xB, b"", mask=MASK),
        "broken-rsv1-set": frame(text, b"Hello", mask=MASK, rsv=0b100),
        "broken-rsv3-set-unmasked": frame(text, b"Hello", rsv=0b001),
        "broken-length-2-63": bytes([0x82, 0xFF]) + struct.pack(">Q", 1 << 63) + MASK,
        "broken-length-2-63-unmasked": bytes([0x82, 0x7F]) + struct.pack(">Q", 1 << 63),
        "broken-ping-126-bytes": frame(ping, bytes(126), mask=MASK),
        "broken-fragmented-ping": frame(ping, b"", fin=False, mask=MASK),
        "broken-continuation-first": frame(cont, b"x", mask=MASK),
        "broken-text-inside-fragments": frame(text, b"a", fin=False, mask=MASK)
        + frame(text, b"b", mask=MASK),
        "broken-utf8-overlong": frame(text, b"\xc0\xaf", mask=MASK),
        "broken-utf8-surrogate-in-fragment": frame(text, b"ok", fin=False, mask=MASK)
        + frame(cont, b"\xed\xa0\x80", mask=MASK),
        "broken-utf8-truncated-at-end": frame(text, b"a\xe2\x82", mask=MASK),
        "broken-close-one-byte": frame(close, b"\x03", mask=MASK),
        "broken-close-code-1005": frame(close, b"\x03\xed", mask=MASK),
        "broken-close-reason-utf8": frame(close, b"\x03\xe8\xff", mask=MASK),
        "broken-message-over-1k": b"".join(
            frame(binary if i == 0 else cont, bytes(200), fin=i == 5, mask=MASK) for i in range(6)
        ),
    }
    for name, stream in seeds.items():
        write("frame", name, frame_config(0) + stream)
    # A few with other limits and chunkings.
    write("frame", "chunks-1-2-3-fragments", frame_config(0, (1, 2, 3)) + seeds["masked-fragments-ping-between"])
    write("frame", "chunks-7-tiny-limits", frame_config(1, (7,)) + seeds["masked-fragments-ping-between"])
    write("frame", "chunks-0-5-frame-over-message-limit", frame_config(2, (0, 5)) + seeds["broken-message-over-1k"])
    write("frame", "large-limits-65536-header", frame_config(3, (9, 200)) + seeds["rfc-5.7-binary-65536-header"])
    return seeds


UTF8 = {
    "ascii": b"Hello, world",
    "latin": "Hello-µ@ßöäüàá-UTF-8!!".encode(),
    "greek-kosme": "κόσμε".encode(),
    "cjk-and-emoji": "𝄞 music 中文 客服 😀".encode(),
    "max-code-points": "\u007f\u07ff\uffff\U0010ffff".encode(),
    "invalid-lone-continuation": b"a\x80b",
    "invalid-overlong-2": b"\xc0\xaf",
    "invalid-overlong-3": b"\xe0\x80\xaf",
    "invalid-overlong-4": b"\xf0\x80\x80\xaf",
    "invalid-surrogate": b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
    "invalid-above-10ffff": b"\xf4\x90\x80\x80",
    "invalid-f5": b"\xf5",
    "invalid-ff": b"ok\xff",
    "truncated-4-byte": b"\xf0\x9f\x98",
    "truncated-then-ascii": b"\xe2\x82a",
}


def utf8_seeds():
    for name, text in UTF8.items():
        write("utf8", name + "-bytewise", bytes([0]) + text)
        write("utf8", name + "-pieces-1-2-3", bytes([3, 1, 2, 3]) + text)


def key(nonce):
    return base64.b64encode(nonce).decode()


HANDSHAKES = {
    # RFC 6455 §1.3, the example.
    "rfc-1.3-example": (
        "GET /chat HTTP/1.1\r\n"
        "Host: server.example.com\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Origin: http://example.com\r\n"
        "Sec-WebSocket-Protocol: chat, superchat\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ),
    # The shape Chromium-based browsers send (header order and fields).
    "chrome-style": (
        "GET /chat?name=%E5%B0%8F%E6%98%8E HTTP/1.1\r\n"
        "Host: 127.0.0.1:3000\r\n"
        "Connection: Upgrade\r\n"
        "Pragma: no-cache\r\n"
        "Cache-Control: no-cache\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36\r\n"
        "Upgrade: websocket\r\n"
        "Origin: http://127.0.0.1:3000\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Accept-Encoding: gzip, deflate, br, zstd\r\n"
        "Accept-Language: zh-CN,zh;q=0.9,en;q=0.8\r\n"
        f"Sec-WebSocket-Key: {key(bytes(range(16)))}\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "\r\n"
    ),
    # The shape Firefox sends: "Connection: keep-alive, Upgrade" and a
    # capitalised "Upgrade: websocket" at the end.
    "firefox-style": (
        "GET /support HTTP/1.1\r\n"
        "Host: localhost:3000\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        "Accept: */*\r\n"
        "Accept-Language: en-US,en;q=0.5\r\n"
        "Accept-Encoding: gzip, deflate, br, zstd\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Origin: http://localhost:3000\r\n"
        "Sec-WebSocket-Protocol: chat\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate\r\n"
        f"Sec-WebSocket-Key: {key(bytes(range(100, 116)))}\r\n"
        "Connection: keep-alive, Upgrade\r\n"
        "Sec-Fetch-Dest: empty\r\n"
        "Sec-Fetch-Mode: websocket\r\n"
        "Sec-Fetch-Site: same-origin\r\n"
        "Pragma: no-cache\r\n"
        "Cache-Control: no-cache\r\n"
        "Upgrade: websocket\r\n"
        "\r\n"
    ),
    # The old draft (hixie-76), with its 8-byte body after the head.
    "hixie-76": (
        "GET /demo HTTP/1.1\r\n"
        "Host: example.com\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\n"
        "Sec-WebSocket-Protocol: sample\r\n"
        "Upgrade: WebSocket\r\n"
        "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
        "Origin: http://example.com\r\n"
        "\r\n"
        "^n:ds[4U"
    ),
    # A minimal client: lower-case names, and its first frame right after the head.
    "minimal-client-with-frame-after": (
        "GET /echo HTTP/1.1\r\n"
        "host: h\r\n"
        "upgrade: WebSocket\r\n"
        "connection: upgrade\r\n"
        f"sec-websocket-key: {key(b'0123456789abcdef')}\r\n"
        "sec-websocket-version: 13\r\n"
        "\r\n"
        "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    ),
    "version-8-and-13": (
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ),
    "two-keys": (
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ),
    "key-12-bytes": (
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ),
    "http-1.0": (
        "GET / HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ),
    "post": (
        "POST /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        "Content-Length: 0\r\n\r\n"
    ),
    "plain-get-healthz": "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nAccept: */*\r\n\r\n",
    "partial-head": "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n",
    "header-over-1k": "GET / HTTP/1.1\r\nHost: a\r\nCookie: " + "a" * 1100 + "\r\n\r\n",
}


def handshake_seeds():
    for name, text in HANDSHAKES.items():
        write("handshake", name, text.encode("latin-1"))


def roundtrip_seeds(frames):
    # `arbitrary` shapes any bytes into an Input; these give it a start.
    write("roundtrip", "empty", b"")
    write("roundtrip", "counting", bytes(range(256)))
    write("roundtrip", "text-hello", b"\x01\x01\x00" + "Hello 客服 κόσμε".encode() + b"\x03\x02\x01")
    for name in ("rfc-5.7-masked-hello", "masked-fragments-ping-between", "masked-close-1000-bye"):
        write("roundtrip", name, frames[name])


def resp_seeds():
    # Byte 0 picks the chunk size (value + 1); the rest are Redis replies.
    def bulk(b):
        return b"$%d\r\n%s\r\n" % (len(b), b)

    def arr(*items):
        return b"*%d\r\n" % len(items) + b"".join(items)

    replies = {
        "status-error-int": b"+OK\r\n-ERR wrong type\r\n:-42\r\n",
        "bulk-nil-empty": bulk(b"a\r\nb") + b"$-1\r\n*-1\r\n*0\r\n" + bulk(b""),
        "pubsub-message": arr(bulk(b"subscribe"), bulk(b"wschat:room:lobby"), b":1\r\n")
        + arr(bulk(b"message"), bulk(b"wschat:room:lobby"), bulk(b'm 7 3 {"id":7}')),
        "xrange-reply": arr(
            arr(bulk(b"4-0"), arr(bulk(b"p"), bulk(b"0"), bulk(b"m"), bulk(b'{"id":4}'))),
            arr(bulk(b"9-0"), arr(bulk(b"p"), bulk(b"4"), bulk(b"m"), bulk(b'{"id":9}'))),
        ),
        "script-reply": arr(bulk(b"12"), bulk(b"0")) + b"-NOSCRIPT No matching script\r\n",
    }
    for name, data in replies.items():
        write("resp", name + "-whole", b"\xff" + data)
        write("resp", name + "-bytewise", b"\x00" + data)


def desk_command_seeds():
    # Byte 0: bit 0 picks the speaker (0 visitor, 1 agent), the other bits
    # the message limit (0: the default); the rest is the text.
    visitor = {
        "plain": "您好,我的订单还没到",
        "message": '{"type":"message","text":"hi"}',
        "contact": '{"type":"contact","name":"Ann","email":"ann@example.com"}',
        "rate-comment": '{"type":"rate","rating":4,"comment":"quick, thanks"}',
        "rate-bad": '{"type":"rate","rating":9}',
        "typing": '{"type":"typing","active":false}',
        "end": '{"type":"end"}',
        "auth": '{"type":"auth","token":"x.y.z"}',
    }
    agent = {
        "message": '{"type":"message","conversation":7,"text":"您好!"}',
        "transfer-note": '{"type":"transfer","conversation":7,"to":"bob","note":"billing"}',
        "reassign-queue": '{"type":"reassign","conversation":7,"to":null}',
        "presence": '{"type":"presence","status":"away"}',
        "claim": '{"type":"claim","conversation":3}',
        "canned": '{"type":"canned_add","shortcut":"hi","text":"Hello!"}',
        "visitor": '{"type":"visitor","conversation":3}',
        "resolve": '{"type":"resolve","conversation":3}',
    }
    for name, text in visitor.items():
        write("desk_command", "visitor-" + name, b"\x00" + text.encode())
    for name, text in agent.items():
        write("desk_command", "agent-" + name, b"\x01" + text.encode())
    write("desk_command", "visitor-small-limit", b"\x08" + "好好好好".encode())


if __name__ == "__main__":
    frames = frame_seeds()
    utf8_seeds()
    handshake_seeds()
    roundtrip_seeds(frames)
    resp_seeds()
    desk_command_seeds()
