//! permessage-deflate (RFC 7692) over real sockets: the negotiation's
//! answers, compressed echoes, the frame rules, a bomb, and a chat room
//! where a member that compresses and one that does not read the same
//! message.
//!
//! Frames are read with the codec's plain parser (no rules) and inflated
//! with flate2 directly, not with `ws::deflate`, so that a bug there cannot
//! hide a bug in the server.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{MASK, RFC_ACCEPT, read_http_reply, request, start, tcp, upgrade_lines};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::Value;
use wschat::config::Config;
use wschat::ws::frame::{Frame, FrameHeader, OpCode, encode_frame};
use wschat::ws::mask::apply_mask;

/// The answer every acceptable offer gets (RFC 7692 §7.1.1).
const ANSWER: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

fn config() -> Config {
    common::config()
}

/// Upgrade on `path` with these `Sec-WebSocket-Extensions` lines; the
/// answer's extensions header, and the stream.
fn upgrade(addr: SocketAddr, path: &str, offers: &[&str]) -> (Option<String>, Client) {
    let mut lines = upgrade_lines(&addr.to_string());
    for offer in offers {
        lines.push(format!("Sec-WebSocket-Extensions: {offer}"));
    }
    let mut stream = tcp(addr);
    stream
        .write_all(&request(&format!("GET {path} HTTP/1.1"), &lines))
        .unwrap();
    let reply = read_http_reply(&mut stream);
    assert_eq!(reply.status, 101, "{reply:?}");
    assert_eq!(reply.header("Sec-WebSocket-Accept"), Some(RFC_ACCEPT));
    let extensions = reply.header("Sec-WebSocket-Extensions").map(str::to_string);
    (
        extensions,
        Client {
            stream,
            buf: reply.leftover,
        },
    )
}

/// A raw client that reads frames and inflates compressed messages itself.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A message as read: whether its first frame had RSV1, its opcode, and
/// its (inflated) payload.
#[derive(Debug)]
struct Read_ {
    compressed: bool,
    opcode: OpCode,
    payload: Vec<u8>,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn frame(&mut self) -> Option<Frame> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((frame, used)) = Frame::parse(&self.buf) {
                self.buf.drain(..used);
                assert_eq!(frame.header.mask, None, "a server frame is masked");
                return Some(frame);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading a frame: {e}"),
            }
        }
    }

    /// The next data message or Close (pings and pongs skipped).
    fn message(&mut self) -> Read_ {
        let mut first: Option<FrameHeader> = None;
        let mut payload = Vec::new();
        loop {
            let frame = self.frame().expect("a frame, not the end of the stream");
            let h = frame.header;
            if matches!(h.opcode, OpCode::Ping | OpCode::Pong) {
                continue;
            }
            if h.opcode == OpCode::Close {
                assert_eq!(h.rsv, 0, "a compressed Close");
                return Read_ {
                    compressed: false,
                    opcode: OpCode::Close,
                    payload: frame.payload,
                };
            }
            if first.is_none() {
                first = Some(h);
            } else {
                assert_eq!(h.rsv, 0, "RSV1 on a continuation frame");
            }
            payload.extend_from_slice(&frame.payload);
            if h.fin {
                let first = first.unwrap();
                let compressed = first.rsv == 0b100;
                assert!(first.rsv == 0 || compressed, "{first:?}");
                if compressed {
                    payload = inflate(&payload);
                }
                return Read_ {
                    compressed,
                    opcode: first.opcode,
                    payload,
                };
            }
        }
    }

    /// The next message must be a Close with `code`.
    fn expect_close(&mut self, code: u16) {
        let m = self.message();
        assert_eq!(m.opcode, OpCode::Close, "{m:?}");
        assert_eq!(
            u16::from_be_bytes([m.payload[0], m.payload[1]]),
            code,
            "{:?}",
            String::from_utf8_lossy(&m.payload[2..])
        );
    }
}

/// Inflate a message's payload as RFC 7692 §7.2.2 says: append 00 00 ff ff.
fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(payload.len() * 8 + 1024);
    loop {
        let before = d.total_in();
        d.decompress_vec(
            &input[d.total_in() as usize..],
            &mut out,
            FlushDecompress::Sync,
        )
        .expect("the server's compressed message inflates");
        if d.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        if d.total_in() == before && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity());
    }
}

/// Compress a payload as a client would (§7.2.1), at `level`.
fn deflate(payload: &[u8], level: u32) -> Vec<u8> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(payload.len() + 1024);
    while (c.total_in() as usize) < payload.len() {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        c.compress_vec(
            &payload[c.total_in() as usize..],
            &mut out,
            FlushCompress::None,
        )
        .unwrap();
    }
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity());
        }
        c.compress_vec(&[], &mut out, FlushCompress::Sync).unwrap();
        if out.ends_with(&[0x00, 0x00, 0xff, 0xff]) && out.len() < out.capacity() {
            break;
        }
    }
    out.truncate(out.len() - 4);
    out
}

/// A masked client frame with the given RSV bits.
fn frame(fin: bool, rsv: u8, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        fin,
        rsv,
        opcode,
        mask: Some(MASK),
        payload_len: payload.len() as u64,
    };
    let (bytes, n) = header.encode();
    let mut out = bytes[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], MASK, 0);
    out
}

#[test]
fn offers_get_the_answers_rfc_7692_gives() {
    let server = start(config());
    let addr = server.addr();
    let answer = |offers: &[&str]| upgrade(addr, "/echo", offers).0;
    // What Chromium and Firefox send.
    assert_eq!(
        answer(&["permessage-deflate; client_max_window_bits"]).as_deref(),
        Some(ANSWER)
    );
    assert_eq!(answer(&["permessage-deflate"]).as_deref(), Some(ANSWER));
    assert_eq!(answer(&[]), None);
    // §7.1.2.1: a window asked for is granted and repeated.
    assert_eq!(
        answer(&["permessage-deflate; server_max_window_bits=10"]).as_deref(),
        Some(&*format!("{ANSWER}; server_max_window_bits=10"))
    );
    // Bad offers are declined, the first good one taken.
    assert_eq!(
        answer(&["permessage-deflate; server_max_window_bits=20"]),
        None
    );
    assert_eq!(
        answer(&["permessage-deflate; x=1, permessage-deflate; server_no_context_takeover"])
            .as_deref(),
        Some(ANSWER)
    );
    assert_eq!(
        answer(&["permessage-deflate; client_no_context_takeover; client_no_context_takeover"]),
        None
    );
    assert_eq!(answer(&["x-webkit-deflate-frame"]), None);
    // The chat negotiates it too; /inspect shows frames as they are.
    assert_eq!(
        upgrade(addr, "/", &["permessage-deflate"]).0.as_deref(),
        Some(ANSWER)
    );
    assert_eq!(upgrade(addr, "/inspect", &["permessage-deflate"]).0, None);
    // --deflate off.
    let off = start(Config {
        deflate: false,
        ..config()
    });
    assert_eq!(
        upgrade(off.addr(), "/echo", &["permessage-deflate"]).0,
        None
    );
}

#[test]
fn echo_inflates_what_it_reads_and_compresses_what_it_sends() {
    let server = start(config());
    let (_, mut client) = upgrade(server.addr(), "/echo", &["permessage-deflate"]);
    // RFC 7692 §7.2.3.1: "Hello" compressed, masked: echoed plain (it is
    // under --deflate-min-size).
    client.send(&frame(
        true,
        0b100,
        OpCode::Text,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    ));
    let m = client.message();
    assert_eq!((m.compressed, m.payload.as_slice()), (false, &b"Hello"[..]));
    // §7.2.3.1, fragmented: 41 03 f2 48 cd, then 80 04 c9 c9 07 00.
    client.send(&frame(false, 0b100, OpCode::Text, &[0xf2, 0x48, 0xcd]));
    client.send(&frame(
        true,
        0,
        OpCode::Continuation,
        &[0xc9, 0xc9, 0x07, 0x00],
    ));
    assert_eq!(client.message().payload, b"Hello");
    // A longer text, compressed both ways; and a binary message.
    let text = "wschat compresses what is worth compressing. ".repeat(40);
    client.send(&frame(
        true,
        0b100,
        OpCode::Text,
        &deflate(text.as_bytes(), 6),
    ));
    let m = client.message();
    assert!(m.compressed, "a {}-byte echo went plain", text.len());
    assert_eq!(m.payload, text.as_bytes());
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
    let mut wire = Vec::new();
    encode_frame(&mut wire, true, OpCode::Binary, &data, Some(MASK));
    client.send(&wire);
    let m = client.message();
    assert_eq!((m.compressed, m.opcode), (true, OpCode::Binary));
    assert_eq!(m.payload, data);
    // A compressed message in many fragments, with a ping among them.
    let packed = deflate(text.as_bytes(), 9);
    let pieces: Vec<&[u8]> = packed.chunks(7).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let (rsv, op) = if i == 0 {
            (0b100, OpCode::Text)
        } else {
            (0, OpCode::Continuation)
        };
        client.send(&frame(i + 1 == pieces.len(), rsv, op, piece));
        if i == 3 {
            client.send(&frame(true, 0, OpCode::Ping, b"p"));
        }
    }
    assert_eq!(client.message().payload, text.as_bytes());
}

#[test]
fn compressed_frames_break_no_rule_unnoticed() {
    let server = start(config());
    let addr = server.addr();
    let fails = |offers: &[&str], frames: &[Vec<u8>], code: u16| {
        let (_, mut client) = upgrade(addr, "/echo", offers);
        for f in frames {
            client.send(f);
        }
        client.expect_close(code);
    };
    let on: &[&str] = &["permessage-deflate"];
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    // RSV1 without the extension: a reserved bit (RFC 6455 §5.2).
    fails(&[], &[frame(true, 0b100, OpCode::Text, &hello)], 1002);
    // RFC 7692 §6.1: never on control frames nor on continuations.
    fails(on, &[frame(true, 0b100, OpCode::Ping, b"")], 1002);
    fails(
        on,
        &[
            frame(false, 0b100, OpCode::Text, &hello[..3]),
            frame(true, 0b100, OpCode::Continuation, &hello[3..]),
        ],
        1002,
    );
    // RSV2 and RSV3 stay reserved.
    fails(on, &[frame(true, 0b110, OpCode::Text, &hello)], 1002);
    // Not DEFLATE (BTYPE 11 is reserved): 1007.
    fails(on, &[frame(true, 0b100, OpCode::Text, &[0xff, 0xff])], 1007);
    // Inflates to invalid UTF-8: 1007 (RFC 6455 §8.1 applies inflated).
    fails(
        on,
        &[frame(
            true,
            0b100,
            OpCode::Text,
            &deflate(&[b'a', 0xff, b'b'], 6),
        )],
        1007,
    );
}

/// A `wschat serve` of its own, a child process, so that its memory can be
/// read from /proc apart from the test's; killed and reaped when dropped.
struct ChildServer {
    server: common::ChildServer,
    addr: SocketAddr,
}

impl ChildServer {
    fn start(extra: &[&str]) -> ChildServer {
        let dir = std::env::temp_dir().join(format!(
            "wschat-deflate-{}-{}",
            std::process::id(),
            wschat::random::random_u64()
        ));
        let mut args = vec![std::ffi::OsStr::new("--data-dir"), dir.as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let server = common::spawn_serve(args, Duration::from_secs(60));
        let addr = server.addr.parse().expect("the address wschat said");
        ChildServer { server, addr }
    }

    /// A field of /proc/PID/status, in KiB: `VmRSS` (resident now) or
    /// `VmHWM` (the most it was ever resident).
    fn kib(&self, field: &str) -> u64 {
        let pid = self.server.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_bomb_is_closed_1009_at_the_message_limit_whole_and_fragmented() {
    // The server in a process of its own, with the default 1 MiB limit.
    let server = ChildServer::start(&[]);
    let zeros = vec![0u8; 20 << 20];
    let bomb = deflate(&zeros, 9);
    drop(zeros);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    // One compressed message first, so that what any first message costs
    // (thread stacks, allocator arenas) is in the baseline.
    let (_, mut warm) = upgrade(server.addr, "/echo", &["permessage-deflate"]);
    let hello = "a first compressed message, inflated and echoed, hello hello hello";
    warm.send(&frame(
        true,
        0b100,
        OpCode::Text,
        &deflate(hello.as_bytes(), 6),
    ));
    assert_eq!(warm.message().payload, hello.as_bytes());
    let (rss_before, peak_before) = (server.kib("VmRSS"), server.kib("VmHWM"));

    // Whole: one 20 KiB frame that inflates to 20 MiB.
    let (_, mut client) = upgrade(server.addr, "/echo", &["permessage-deflate"]);
    client.send(&frame(true, 0b100, OpCode::Binary, &bomb));
    client.expect_close(1009);
    // Fragmented: 1 KiB fragments.
    let (_, mut client) = upgrade(server.addr, "/echo", &["permessage-deflate"]);
    let pieces: Vec<&[u8]> = bomb.chunks(1024).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let (rsv, op) = if i == 0 {
            (0b100, OpCode::Binary)
        } else {
            (0, OpCode::Continuation)
        };
        // The server stops reading once it has closed: ignore a reset.
        if client
            .stream
            .write_all(&frame(i + 1 == pieces.len(), rsv, op, piece))
            .is_err()
        {
            break;
        }
    }
    client.expect_close(1009);
    // And on the chat, whose limit is the same.
    let (_, mut chat) = upgrade(server.addr, "/", &["permessage-deflate"]);
    chat.send(&frame(true, 0b100, OpCode::Text, &bomb));
    loop {
        let m = chat.message();
        if m.opcode == OpCode::Close {
            assert_eq!(u16::from_be_bytes([m.payload[0], m.payload[1]]), 1009);
            break;
        }
    }
    // The server process held at most about the 1 MiB message limit at a
    // time, never the 20 MiB the bomb unpacks to: neither its peak (VmHWM)
    // nor what it holds now grew by more than a few MiB.
    let (rss_after, peak_after) = (server.kib("VmRSS"), server.kib("VmHWM"));
    eprintln!("server RSS {rss_before} -> {rss_after} KiB, peak {peak_before} -> {peak_after} KiB");
    let peak_grown = peak_after.saturating_sub(peak_before);
    let rss_grown = rss_after.saturating_sub(rss_before);
    assert!(
        peak_grown < 6 * 1024,
        "the server's peak RSS grew by {peak_grown} KiB"
    );
    assert!(
        rss_grown < 6 * 1024,
        "the server's RSS grew by {rss_grown} KiB"
    );
    // Still serving.
    warm.send(&frame(
        true,
        0b100,
        OpCode::Text,
        &deflate(hello.as_bytes(), 6),
    ));
    assert_eq!(warm.message().payload, hello.as_bytes());
}

#[test]
fn a_broadcast_reaches_a_deflate_member_and_a_plain_member_alike() {
    let server = start(config());
    let addr = server.addr();
    let (ext, mut packed) = upgrade(addr, "/?name=Zip&room=deflate", &["permessage-deflate"]);
    assert_eq!(ext.as_deref(), Some(ANSWER));
    // A join notice naming `who`, read by `client`.
    let until_join = |client: &mut Client, who: &str| loop {
        let m = client.message();
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        let names = v["users"]
            .as_array()
            .is_some_and(|users| users.iter().any(|u| u["name"] == who));
        if v["type"] == "join" && names {
            break;
        }
    };
    // Zip is in the room before Flat connects (the hub may otherwise take
    // Flat's arrival first, and Zip would never see it), and both are in
    // before anyone speaks.
    until_join(&mut packed, "Zip");
    let (ext, mut plain) = upgrade(addr, "/?name=Flat&room=deflate", &[]);
    assert_eq!(ext, None);
    until_join(&mut packed, "Flat");
    let text = "Every browser offers permessage-deflate; this chat message is long enough to be compressed.";
    plain.send(&common::client_frame(true, OpCode::Text, text.as_bytes()));
    let chat_of = |client: &mut Client| -> (bool, Value) {
        loop {
            let m = client.message();
            assert_eq!(m.opcode, OpCode::Text, "{m:?}");
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if v["type"] == "chat" && v["text"] == text {
                return (m.compressed, v);
            }
        }
    };
    let (was_packed, for_packed) = chat_of(&mut packed);
    let (was_plain, for_plain) = chat_of(&mut plain);
    assert!(
        was_packed,
        "the deflate member got the message uncompressed"
    );
    assert!(!was_plain, "the plain member got a compressed frame");
    assert_eq!(for_packed, for_plain);
}

#[test]
fn a_small_window_member_gets_long_broadcasts_plain_and_short_ones_compressed() {
    let server = start(config());
    let addr = server.addr();
    // Small asks the server's compressor for a 512-byte window
    // (server_max_window_bits=9, RFC 7692 §7.1.2.1); Full asks nothing.
    let (ext, mut small) = upgrade(
        addr,
        "/?name=Small&room=window",
        &["permessage-deflate; server_max_window_bits=9"],
    );
    assert_eq!(
        ext.as_deref(),
        Some(&*format!("{ANSWER}; server_max_window_bits=9"))
    );
    let until_join = |client: &mut Client, who: &str| loop {
        let m = client.message();
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        if v["type"] == "join"
            && v["users"]
                .as_array()
                .is_some_and(|users| users.iter().any(|u| u["name"] == who))
        {
            break;
        }
    };
    until_join(&mut small, "Small");
    let (ext, mut full) = upgrade(addr, "/?name=Full&room=window", &["permessage-deflate"]);
    assert_eq!(ext.as_deref(), Some(ANSWER));
    until_join(&mut small, "Full");
    until_join(&mut full, "Full");

    // Raw frames as they came, to see RSV1 and inflate with the right window.
    let raw_chat = |client: &mut Client, text: &str| -> (bool, Vec<u8>) {
        loop {
            let frame = client.frame().expect("a frame");
            let h = frame.header;
            if h.opcode != OpCode::Text {
                continue;
            }
            assert!(h.fin, "the server sends chat messages in one frame");
            let compressed = h.rsv == 0b100;
            let json = if compressed {
                inflate(&frame.payload)
            } else {
                frame.payload.clone()
            };
            let v: Value = serde_json::from_slice(&json).unwrap();
            if v["type"] == "chat" && v["text"] == text {
                return (compressed, frame.payload);
            }
        }
    };
    let long = format!(
        "a long broadcast: {}",
        "words repeat, words repeat; ".repeat(60)
    );
    let short = format!("a short one: {}", "la ".repeat(40));
    for text in [&long, &short] {
        full.send(&common::client_frame(true, OpCode::Text, text.as_bytes()));
        let (full_packed, full_bytes) = raw_chat(&mut full, text);
        let (small_packed, small_bytes) = raw_chat(&mut small, text);
        assert!(full_packed, "the full-window member gets it compressed");
        let plain_len = inflate(&full_bytes).len();
        if text == &long {
            assert!(plain_len > 512, "{plain_len}");
            // Longer than Small's window: the shared compressed form is
            // not for Small, who gets the plain frame (§6 allows it).
            assert!(
                !small_packed,
                "a {plain_len}-byte message compressed for a 512-byte window"
            );
            assert_eq!(small_bytes.len(), plain_len);
        } else {
            assert!(plain_len <= 512, "{plain_len}");
            // Within the window: the same compressed bytes as Full's. A
            // fresh DEFLATE stream cannot refer further back than its own
            // length, so they fit a 512-byte window.
            assert!(
                small_packed,
                "the short broadcast was not compressed for Small"
            );
            assert_eq!(small_bytes, full_bytes, "one compressed form for both");
            let v: Value = serde_json::from_slice(&inflate(&small_bytes)).unwrap();
            assert_eq!(v["text"], *text);
        }
    }
}

#[test]
fn the_rust_client_offers_deflate_when_asked_and_reads_and_writes_compressed() {
    let server = start(config());
    let url = common::ws_url(&server, "/echo");
    let on = wschat::client::Options {
        deflate: true,
        ..Default::default()
    };
    let (mut ws, _) = wschat::client::connect_with(&url, &on).unwrap();
    assert_eq!(
        ws.connection().deflate(),
        Some(wschat::ws::deflate::Agreement::default())
    );
    let text = "An echo that goes compressed both ways, compressed both ways, both ways.";
    ws.send(wschat::ws::Message::Text(text.into())).unwrap();
    assert_eq!(
        ws.read_message().unwrap(),
        wschat::ws::Message::Text(text.into())
    );
    // Off by default; and a server with --deflate off answers without it.
    let (ws, _) = wschat::client::connect_with(&url, &Default::default()).unwrap();
    assert_eq!(ws.connection().deflate(), None);
    let mut off = config();
    off.deflate = false;
    let plain = start(off);
    let (mut ws, _) = wschat::client::connect_with(&common::ws_url(&plain, "/echo"), &on).unwrap();
    assert_eq!(ws.connection().deflate(), None);
    ws.send(wschat::ws::Message::Text(text.into())).unwrap();
    assert_eq!(
        ws.read_message().unwrap(),
        wschat::ws::Message::Text(text.into())
    );
}
