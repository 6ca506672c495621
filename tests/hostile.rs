//! Hostile input over real sockets: each case starts a server in this
//! process, tuned for the case, attacks it on 127.0.0.1, and checks that the
//! attacker gets the documented answer (an HTTP status or a close code) while
//! the server keeps serving a well-behaved client and gives back what the
//! attacker held (connections, memory). docs/security.md explains the threat
//! model and lists what each case proves.
//!
//! Every wait is bounded: reads have a timeout (`common::READ_TIMEOUT`
//! unless a case sets a tighter one), and server-side counters are polled
//! with a limit (`common::eventually`). No case asserts how fast anything
//! is; where a deadline matters, the attacker's own progress is the clock
//! (the slowloris is answered before its request is complete).
//!
//! The cases that measure the process's memory (`VmHWM`/`VmRSS` in
//! `/proc/self/status`: the server runs in this process) or that open
//! thousands of sockets run alone; the others run side by side.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{
    RawClient, assert_eof, client_frame, config, eventually, read_http_reply, request, start, tcp,
    upgrade_lines, upgrade_request,
};
use serde_json::Value;
use wschat::config::Config;
use wschat::server::ServerHandle;
use wschat::ws::frame::{OpCode, encode_frame};
use wschat::ws::{CloseFrame, Connection, Decoder, Limits, Message, ProtocolError, Role};

// ---------------------------------------------------------------------------
// Running alone or side by side
// ---------------------------------------------------------------------------

/// Cases that read the process's memory, or open thousands of sockets and
/// threads, take this for writing; all others take it for reading.
static GATE: RwLock<()> = RwLock::new(());

/// For a case that may run beside others.
fn alongside_others() -> RwLockReadGuard<'static, ()> {
    GATE.read().unwrap_or_else(|e| e.into_inner())
}

/// For a case that must run alone in this process.
fn alone() -> RwLockWriteGuard<'static, ()> {
    GATE.write().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Memory of this process (the server is in it)
// ---------------------------------------------------------------------------

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .strip_prefix(':')?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The process's peak memory from now on: writing `5` to
/// `/proc/self/clear_refs` resets `VmHWM` (the peak resident set) to the
/// current RSS, so `VmHWM` later is the highest point reached in between.
/// Where that is refused, the RSS at the end is used instead (weaker: it
/// misses a peak that was freed again).
struct Peak {
    baseline_kib: u64,
    hwm: bool,
}

impl Peak {
    fn start() -> Peak {
        let hwm = std::fs::write("/proc/self/clear_refs", "5").is_ok();
        if !hwm {
            eprintln!("note: cannot reset VmHWM; comparing VmRSS at the end instead");
        }
        Peak {
            baseline_kib: status_kib("VmRSS"),
            hwm,
        }
    }

    /// How far memory rose above the baseline, in KiB.
    fn growth_kib(&self) -> u64 {
        let now = status_kib(if self.hwm { "VmHWM" } else { "VmRSS" });
        now.saturating_sub(self.baseline_kib)
    }
}

// ---------------------------------------------------------------------------
// Bytes, frames and clients
// ---------------------------------------------------------------------------

/// A deterministic PRNG (SplitMix64), so that a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// A masked frame (the RFC key) whose first byte (FIN, RSV1-3, opcode) is
/// given whole, to set what `encode_frame` never would.
fn frame_with_first_byte(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = client_frame(true, OpCode::Binary, payload);
    out[0] = first;
    out
}

/// A masked frame header with the 64-bit length form declaring `len`.
fn long_header(first: u8, len: u64) -> Vec<u8> {
    let mut out = vec![first, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&common::MASK);
    out
}

/// Write `bytes` from another thread, `chunk` bytes per write, stopping at
/// the first failed write (the server may rightly close first) or when
/// `stop` is set. Returns the bytes written.
fn write_in_background(
    stream: &TcpStream,
    bytes: Vec<u8>,
    chunk: usize,
    stop: Option<Arc<AtomicBool>>,
) -> JoinHandle<usize> {
    let mut stream = stream.try_clone().expect("clone the socket");
    std::thread::spawn(move || {
        let mut written = 0;
        for part in bytes.chunks(chunk) {
            if stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
                break;
            }
            if stream.write_all(part).is_err() {
                break;
            }
            written += part.len();
        }
        written
    })
}

/// Read frames until the server's Close, skipping everything else (chat
/// notices, echoes, pongs); check that the server then ends the stream.
/// Returns the Close's status code, `None` for a Close without one. Fails
/// if the stream ends without a Close, or a read times out.
fn close_code(raw: &mut RawClient) -> Option<u16> {
    loop {
        let Some((frame, _)) = raw.try_read_frame() else {
            panic!("the server ended the stream without a Close frame");
        };
        if frame.header.opcode == OpCode::Close {
            let code = CloseFrame::parse(&frame.payload)
                .expect("the server's Close payload is valid")
                .map(|close| close.code.0);
            raw.expect_eof();
            return code;
        }
    }
}

/// The next text message from the server as JSON; pings and pongs are
/// skipped, a Close or the end of the stream fails the test.
fn next_json(raw: &mut RawClient) -> Value {
    loop {
        let frame = raw.read_frame();
        match frame.header.opcode {
            OpCode::Text => {
                assert!(frame.header.fin, "a fragmented server message");
                return serde_json::from_slice(&frame.payload).unwrap_or_else(|e| {
                    panic!(
                        "server text is not JSON ({e}): {}",
                        String::from_utf8_lossy(&frame.payload)
                    )
                });
            }
            OpCode::Ping | OpCode::Pong => {}
            OpCode::Close => panic!(
                "the server closed the connection: {:?}",
                CloseFrame::parse(&frame.payload)
            ),
            other => panic!("unexpected {other:?} frame from the chat"),
        }
    }
}

/// A chat client made of raw frames.
struct ChatClient {
    raw: RawClient,
    /// Its user id, from `welcome`.
    id: u64,
}

impl ChatClient {
    /// Connect to the chat at `/` and read the `welcome`.
    fn connect(addr: SocketAddr) -> ChatClient {
        ChatClient::connect_to(addr, "/")
    }

    /// Connect to the chat at `target` (`/?name=…`) and read the `welcome`.
    fn connect_to(addr: SocketAddr, target: &str) -> ChatClient {
        let mut raw = RawClient::connect(addr, target);
        let welcome = next_json(&mut raw);
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let id = welcome["user"]["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no user id in {welcome}"));
        ChatClient { raw, id }
    }

    /// Send one text message.
    fn say(&mut self, text: &str) {
        self.raw.send_frame(true, OpCode::Text, text.as_bytes());
    }

    /// The next message that is not a room notice (`join`, `leave`,
    /// `users`, `history`, `typing`, `rename`, and `presence`, which a
    /// room of more than 100 members gets on the hub's tick instead of
    /// `join` and `leave`).
    fn next_reply(&mut self) -> Value {
        loop {
            let v = next_json(&mut self.raw);
            match v["type"].as_str() {
                Some("join" | "leave" | "users" | "history" | "typing" | "rename" | "presence") => {
                }
                _ => return v,
            }
        }
    }

    /// The next reply must be an `error` with `code`.
    fn expect_error(&mut self, code: &str, what: &str) {
        let v = self.next_reply();
        assert_eq!(v["type"], "error", "{what}: {v}");
        assert_eq!(v["code"], code, "{what}: {v}");
    }

    /// The next reply must be the chat message `text` from user `from`.
    fn expect_chat(&mut self, from: u64, text: &str) {
        let v = self.next_reply();
        assert_eq!(v["type"], "chat", "waiting for {text:?}: {v}");
        assert_eq!(v["text"], text, "{v}");
        assert_eq!(v["user"]["id"], from, "{v}");
    }

    /// Say `text` and get it back: the chat works for this client.
    fn round_trip(&mut self, text: &str) {
        self.say(text);
        let id = self.id;
        self.expect_chat(id, text);
    }
}

/// A well-behaved client chats on `/` and echoes on `/echo`.
fn good_client_is_served(addr: SocketAddr, what: &str) {
    let mut chat = ChatClient::connect(addr);
    chat.round_trip(&format!("a good client after {what}"));
    let mut echo = RawClient::connect(addr, "/echo");
    echo.send_frame(true, OpCode::Text, what.as_bytes());
    assert_eq!(echo.expect(OpCode::Text), what.as_bytes());
}

/// One connection on each endpoint, closed again, so that a memory baseline
/// taken afterwards includes what any connection costs once (thread stacks
/// reused, allocator arenas set up, the hub's tables grown).
fn warm_up(server: &ServerHandle) {
    good_client_is_served(server.addr(), "the warm-up");
    eventually(
        Duration::from_secs(10),
        "the warm-up connections closed",
        || server.open_connections() == 0,
    );
}

/// The value of one line of `/metrics`, e.g.
/// `wschat_http_responses_total{status="408"}`.
fn metric(server: &ServerHandle, name: &str) -> u64 {
    server
        .metrics()
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ---------------------------------------------------------------------------
// The handshake
// ---------------------------------------------------------------------------

/// A slowloris sends its request one byte every 100 ms: each byte is within
/// any per-read timeout, so only a deadline for the whole head stops it. The
/// server must answer 408 and close before the request is complete (150
/// bytes, 15 s at this pace), within the handshake timeout plus slack.
#[test]
fn a_slowloris_gets_408_before_its_request_is_complete() {
    let _gate = alongside_others();
    let handshake_timeout = ms(500);
    let server = start(Config {
        handshake_timeout,
        ..config()
    });
    let request = upgrade_request(server.addr(), "/");
    assert!(request.len() > 100, "the request must outlast the deadline");
    let mut stream = tcp(server.addr());
    // The server says nothing until it answers, so one read waits for the
    // answer: it must come within the handshake timeout plus slack.
    stream
        .set_read_timeout(Some(handshake_timeout + Duration::from_secs(5)))
        .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        let (sent, stop, request) = (sent.clone(), stop.clone(), request.clone());
        std::thread::spawn(move || {
            for byte in request {
                if stop.load(Ordering::SeqCst) || stream.write_all(&[byte]).is_err() {
                    break;
                }
                sent.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(ms(100));
            }
        })
    };
    if let Err(e) = stream.peek(&mut [0u8; 1]) {
        stop.store(true, Ordering::SeqCst);
        panic!(
            "no answer within the handshake timeout plus 5 s ({e}); the slowloris had sent {} of {} bytes",
            sent.load(Ordering::SeqCst),
            request.len()
        );
    }
    let reply = read_http_reply(&mut stream);
    let sent_by_then = sent.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    assert_eq!(reply.status, 408, "{}", reply.body_text());
    assert!(
        sent_by_then < request.len(),
        "the server waited for the whole request ({sent_by_then} bytes) before answering"
    );
    assert_eof(&mut stream);
    writer.join().unwrap();
    drop(stream);
    eventually(
        Duration::from_secs(10),
        "the slowloris's connection released",
        || server.open_connections() == 0,
    );
    assert_eq!(
        metric(&server, "wschat_http_responses_total{status=\"408\"}"),
        1
    );
    good_client_is_served(server.addr(), "a slowloris");
}

/// Cross-site WebSocket hijacking: a page elsewhere makes a visitor's
/// browser open the chat (the browser is the bridge into a network the
/// attacker cannot reach, and it speaks as the visitor). Browsers always
/// send `Origin` and a page cannot forge it, so with `--allowed-origin`
/// every other origin is refused with 403 on every endpoint: a lookalike,
/// another scheme or port, the opaque `null` of a sandboxed frame. The
/// allowed origin is accepted (ASCII case aside), a request without
/// `Origin` (not a browser) too; the pages themselves stay public.
#[test]
fn cross_site_websocket_hijacking_is_refused_by_the_origin_allowlist() {
    let _gate = alongside_others();
    let server = start(Config {
        allowed_origins: vec!["https://chat.example.com".to_string()],
        ..config()
    });
    let addr = server.addr();
    let with_origin = |path: &str, origin: Option<&str>| {
        let mut lines = upgrade_lines(&addr.to_string());
        if let Some(origin) = origin {
            lines.push(format!("Origin: {origin}"));
        }
        request(&format!("GET {path} HTTP/1.1"), &lines)
    };
    let evil_origins = [
        "https://evil.example",
        "https://chat.example.com.evil.example",
        "https://evil.example/https://chat.example.com",
        "http://chat.example.com",
        "https://chat.example.com:8443",
        "null",
        "",
    ];
    let paths = ["/", "/chat", "/echo", "/inspect"];
    for path in paths {
        for evil in evil_origins {
            let reply = common::http_exchange(addr, &with_origin(path, Some(evil)));
            assert_eq!(reply.status, 403, "Origin {evil:?} on {path}: {reply:?}");
            assert!(reply.header("Sec-WebSocket-Accept").is_none());
        }
        for good in [
            Some("https://chat.example.com"),
            Some("HTTPS://Chat.Example.COM"),
            None,
        ] {
            let raw = RawClient::connect_with(addr, &with_origin(path, good));
            drop(raw);
        }
    }
    let page = common::http_exchange(
        addr,
        &request(
            "GET / HTTP/1.1",
            &[
                format!("Host: {addr}"),
                "Origin: https://evil.example".into(),
            ],
        ),
    );
    assert_eq!(page.status, 200);
    assert_eq!(
        metric(&server, "wschat_http_responses_total{status=\"403\"}"),
        (paths.len() * evil_origins.len()) as u64
    );
    good_client_is_served(addr, "cross-site upgrades");
}

/// 64 KiB of request headers, as a few long lines (over the 8 KiB byte
/// limit) and as thousands of short ones (over the 100-line limit first):
/// 431 either way, the connection closed, and the server carries on.
#[test]
fn a_64_kib_header_block_gets_431() {
    let _gate = alongside_others();
    let server = start(config());
    let addr = server.addr();
    let mut long_lines = upgrade_lines(&addr.to_string());
    long_lines.extend((0..8).map(|i| format!("X-Pad-{i}: {}", "a".repeat(8 * 1024))));
    let mut many_lines = upgrade_lines(&addr.to_string());
    many_lines.extend((0..2_000).map(|i| format!("X-Pad-{i:04}: {}", "b".repeat(24))));
    for (what, lines) in [
        ("8 long lines", long_lines),
        ("2,000 short lines", many_lines),
    ] {
        let bytes = request("GET / HTTP/1.1", &lines);
        assert!(
            bytes.len() >= 64 * 1024,
            "{what}: only {} bytes",
            bytes.len()
        );
        let mut stream = tcp(addr);
        let writer = write_in_background(&stream, bytes, 4096, None);
        let reply = read_http_reply(&mut stream);
        assert_eq!(reply.status, 431, "{what}: {}", reply.body_text());
        assert_eof(&mut stream);
        writer.join().unwrap();
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    eventually(
        Duration::from_secs(10),
        "the header floods' connections released",
        || server.open_connections() == 0,
    );
    good_client_is_served(addr, "64 KiB header blocks");
}

// ---------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------

/// A frame header claiming 2^63-1 bytes, on `/echo` and on `/`, text and
/// binary: close 1009 from the header alone, and nothing is allocated for
/// it (the process's peak memory stays within a few MiB). A 64-bit length
/// with its high bit set breaks §5.2 itself: 1002. The decoder's own
/// accounting shows the same with the server's limits.
#[test]
fn a_frame_claiming_2_pow_63_bytes_is_closed_1009_and_allocates_nothing() {
    let _gate = alone();
    let cfg = config();
    let limits = cfg.limits();
    let server = start(cfg);
    let addr = server.addr();
    warm_up(&server);
    let peak = Peak::start();
    for path in ["/echo", "/"] {
        for first in [0x82u8, 0x81] {
            let mut raw = RawClient::connect(addr, path);
            let mut bytes = long_header(first, i64::MAX as u64);
            bytes.extend_from_slice(&[0x55; 64]);
            raw.send(&bytes);
            assert_eq!(
                close_code(&mut raw),
                Some(1009),
                "{path}, first byte {first:#04x}"
            );
        }
        let mut raw = RawClient::connect(addr, path);
        raw.send(&long_header(0x82, u64::MAX));
        assert_eq!(close_code(&mut raw), Some(1002), "{path}, 2^64-1");
    }
    let growth = peak.growth_kib();
    assert!(
        growth < 4 * 1024,
        "memory rose by {growth} KiB for frames that declared 2^63-1 bytes"
    );

    // The decoder with the server's limits, fed the header a byte at a
    // time: it holds nothing, then refuses the frame from the header alone.
    let header = long_header(0x82, i64::MAX as u64);
    let mut decoder = Decoder::new(Role::Server, limits);
    let (last, head) = header.split_last().unwrap();
    for byte in head {
        assert_eq!(decoder.decode(&mut &[*byte][..]), Ok(None));
        assert_eq!(decoder.buffered_bytes(), 0);
    }
    assert_eq!(
        decoder.decode(&mut &[*last][..]),
        Err(ProtocolError::FrameTooBig {
            len: i64::MAX as u64,
            limit: limits.max_frame_size
        })
    );
    assert_eq!(decoder.buffered_bytes(), 0);
    // The connection (what /echo runs) queues a Close 1009 and holds
    // nothing either.
    let mut conn = Connection::new(Role::Server, limits);
    assert!(conn.receive(&mut &header[..]).is_err());
    assert_eq!(conn.buffered_bytes(), 0);
    assert_eq!(&conn.take_output()[2..4], &1009u16.to_be_bytes());
    // A frame of exactly the largest allowed size, 1 KiB of it arrived:
    // the decoder reserves for what arrived (at most its 64 KiB first
    // step), not for what the header declares.
    let mut decoder = Decoder::new(Role::Server, limits);
    let mut bytes = long_header(0x82, limits.max_frame_size as u64);
    bytes.extend_from_slice(&[0x55; 1024]);
    assert_eq!(decoder.decode(&mut &bytes[..]), Ok(None));
    assert!(
        decoder.buffered_bytes() <= 64 * 1024,
        "{} bytes held for 1 KiB received",
        decoder.buffered_bytes()
    );

    eventually(Duration::from_secs(10), "connections released", || {
        server.open_connections() == 0
    });
    assert_eq!(server.metrics().outbox_bytes.load(Ordering::SeqCst), 0);
    good_client_is_served(addr, "2^63-byte frames");
}

/// Frames that break §5.1-§5.2 on the chat endpoint (not only /echo):
/// unmasked, with a reserved bit, with a reserved opcode (also inside a
/// fragmented message): each is closed with 1002.
#[test]
fn unmasked_reserved_bit_and_reserved_opcode_frames_on_the_chat_get_1002() {
    let _gate = alongside_others();
    let server = start(config());
    let addr = server.addr();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    let mut unmasked = Vec::new();
    encode_frame(&mut unmasked, true, OpCode::Text, b"hello", None);
    cases.push(("an unmasked text frame".into(), unmasked));
    let mut unmasked = Vec::new();
    encode_frame(&mut unmasked, true, OpCode::Ping, b"hello", None);
    cases.push(("an unmasked ping".into(), unmasked));
    for rsv in [0x40u8, 0x20, 0x10] {
        cases.push((
            format!("RSV bits {:03b}", rsv >> 4),
            frame_with_first_byte(0x81 | rsv, b"hello"),
        ));
    }
    cases.push(("RSV1 on a ping".into(), frame_with_first_byte(0xC9, b"p")));
    for op in (0x3u8..=0x7).chain(0xB..=0xF) {
        cases.push((
            format!("reserved opcode {op:#x}"),
            frame_with_first_byte(0x80 | op, b"x"),
        ));
    }
    let mut inside = client_frame(false, OpCode::Text, b"first half");
    inside.extend(frame_with_first_byte(0x83, b"x"));
    cases.push(("a reserved opcode between fragments".into(), inside));
    for path in ["/", "/chat"] {
        for (what, bytes) in &cases {
            let mut raw = RawClient::connect(addr, path);
            raw.send(bytes);
            assert_eq!(close_code(&mut raw), Some(1002), "{what} on {path}");
        }
    }
    eventually(Duration::from_secs(10), "connections released", || {
        server.open_connections() == 0
    });
    good_client_is_served(addr, "frames that break §5.1-§5.2");
}

/// Invalid UTF-8 in a text message on the chat: 1007, at the first bad
/// byte: a fragmented message whose second fragment is bad is failed
/// without waiting for its last fragment (§8.1 fail fast).
#[test]
fn invalid_utf8_on_the_chat_gets_1007() {
    let _gate = alongside_others();
    let server = start(config());
    let addr = server.addr();
    let mut fragmented = client_frame(false, OpCode::Text, b"ok so far ");
    fragmented.extend(client_frame(
        false,
        OpCode::Continuation,
        &[b'x', 0xC0, 0x80],
    ));
    let mut split_char = client_frame(false, OpCode::Text, &[b'a', 0xE2]);
    split_char.extend(client_frame(true, OpCode::Continuation, &[0x82, 0x28]));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "an overlong NUL",
            client_frame(true, OpCode::Text, &[0xC0, 0x80]),
        ),
        (
            "a 0xFF byte",
            client_frame(true, OpCode::Text, b"hello \xFF"),
        ),
        (
            "a surrogate",
            client_frame(true, OpCode::Text, &[0xED, 0xA0, 0x80]),
        ),
        (
            "above U+10FFFF",
            client_frame(true, OpCode::Text, &[0xF4, 0x90, 0x80, 0x80]),
        ),
        (
            "a message ending inside a character",
            client_frame(true, OpCode::Text, &[b'a', 0xE2, 0x82]),
        ),
        ("a bad byte in an unfinished fragmented message", fragmented),
        ("a character broken across fragments", split_char),
        (
            "a close reason that is not UTF-8",
            client_frame(true, OpCode::Close, &[0x03, 0xE8, 0xFF]),
        ),
    ];
    for (what, bytes) in cases {
        let mut raw = RawClient::connect(addr, "/");
        raw.send(&bytes);
        assert_eq!(close_code(&mut raw), Some(1007), "{what}");
    }
    eventually(Duration::from_secs(10), "connections released", || {
        server.open_connections() == 0
    });
    good_client_is_served(addr, "invalid UTF-8");
}

/// A message sent as an endless stream of 100-byte fragments (with pings
/// between them) on `/` and `/echo`: the client tries to send 24 MiB; the
/// server closes with 1009 once the message would pass its 1 MiB limit,
/// the process's peak memory stays within twice the limit plus a few MiB,
/// and the chat's reader read little more than the limit's worth of bytes.
#[test]
fn a_message_over_the_limit_in_small_fragments_is_closed_1009_with_memory_bounded() {
    let _gate = alone();
    let cfg = Config {
        close_timeout: Duration::from_secs(2),
        ..config()
    };
    let limits = cfg.limits();
    let limit = limits.max_message_size;
    let server = start(cfg);
    let addr = server.addr();
    const FRAGMENT: usize = 100;
    const PER_BATCH: usize = 600;
    const ATTEMPT: usize = 24 << 20;
    let first = client_frame(false, OpCode::Text, &[b'a'; FRAGMENT]);
    let mut batch = Vec::new();
    for i in 0..PER_BATCH {
        batch.extend(client_frame(false, OpCode::Continuation, &[b'a'; FRAGMENT]));
        if i % 100 == 0 {
            batch.extend(client_frame(true, OpCode::Ping, b"between fragments"));
        }
    }

    warm_up(&server);
    let peak = Peak::start();
    for path in ["/", "/echo"] {
        let bytes_in_before = server.metrics().bytes_in.load(Ordering::SeqCst);
        let mut raw = RawClient::connect(addr, path);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let mut stream = raw.stream.try_clone().unwrap();
            let (stop, first, batch) = (stop.clone(), first.clone(), batch.clone());
            std::thread::spawn(move || {
                let mut payload = 0;
                if stream.write_all(&first).is_err() {
                    return payload;
                }
                payload += FRAGMENT;
                while payload < ATTEMPT && !stop.load(Ordering::SeqCst) {
                    if stream.write_all(&batch).is_err() {
                        break;
                    }
                    payload += PER_BATCH * FRAGMENT;
                }
                payload
            })
        };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| close_code(&mut raw)));
        stop.store(true, Ordering::SeqCst);
        let sent = writer.join().unwrap();
        let Ok(code) = code else {
            panic!(
                "{path}: no Close after {sent} bytes of fragments; memory rose by {} KiB",
                peak.growth_kib()
            );
        };
        assert_eq!(code, Some(1009), "{path} after {sent} bytes of fragments");
        assert!(sent > limit, "{path}: closed after only {sent} bytes");
        if path == "/" {
            // Wire bytes per payload byte, pings included; the reader reads
            // 1 KiB at a time, so it may be one read past the limit.
            let ratio = batch.len() as f64 / (PER_BATCH * FRAGMENT) as f64;
            let bound = (limit as f64 * ratio) as u64 + 64 * 1024;
            let read = server.metrics().bytes_in.load(Ordering::SeqCst) - bytes_in_before;
            assert!(
                read <= bound,
                "the chat read {read} bytes for a {limit}-byte limit (bound {bound})"
            );
        }
    }
    let growth = peak.growth_kib();
    let bound = (2 * limit / 1024 + 4 * 1024) as u64;
    assert!(
        growth < bound,
        "memory rose by {growth} KiB (bound {bound} KiB) for messages over a {limit}-byte limit"
    );
    eventually(Duration::from_secs(10), "connections released", || {
        server.open_connections() == 0
    });
    good_client_is_served(addr, "fragment floods");

    // The decoder with the server's limits: what it holds never passes the
    // limit, and it refuses the fragment that would pass it.
    let mut decoder = Decoder::new(Role::Server, limits);
    assert_eq!(decoder.decode(&mut &first[..]), Ok(None));
    let error = 'feed: loop {
        let mut input = &batch[..];
        while !input.is_empty() {
            match decoder.decode(&mut input) {
                Ok(None) | Ok(Some(Message::Ping(_))) => {}
                Ok(Some(other)) => panic!("unexpected {other:?}"),
                Err(e) => break 'feed e,
            }
            assert!(decoder.buffered_bytes() <= limit);
        }
    };
    assert!(
        matches!(error, ProtocolError::MessageTooBig { .. }),
        "{error:?}"
    );
    assert_eq!(decoder.buffered_bytes(), 0);
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

/// The soft limit on open files, raised towards `wanted` (up to the hard
/// limit) if it is lower.
fn raise_fd_limit(wanted: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    if limit.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; the call only reads it.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    limit.rlim_cur
}

/// 2,000 TCP connections that never send a byte, under a connection cap
/// above 2,000: while they are all open, a good client completes its
/// handshake and chats; after the handshake timeout each of them has been
/// answered 408 and released, and the good client is still served.
#[test]
fn two_thousand_silent_connections_do_not_stop_a_good_client_and_are_released() {
    let _gate = alone();
    const WANTED: usize = 2_000;
    // Both ends of each connection are in this process.
    let fds = raise_fd_limit((2 * WANTED + 1024) as libc::rlim_t);
    let n = WANTED.min((fds as usize).saturating_sub(1024) / 2);
    if n < WANTED {
        eprintln!(
            "WARNING: the open-file limit is {fds}; testing {n} silent connections instead of {WANTED} \
             (raise it with `ulimit -n {}`)",
            2 * WANTED + 1024
        );
    }
    assert!(
        n >= 100,
        "the open-file limit ({fds}) is too low for this test"
    );
    let handshake_timeout = Duration::from_secs(3);
    let server = start(Config {
        max_connections: n + 1_000,
        // They all come from 127.0.0.1: no per-address cap here.
        max_connections_per_ip: 0,
        handshake_timeout,
        close_timeout: Duration::from_secs(1),
        ..config()
    });
    let addr = server.addr();
    // Connect in waves no larger than the listen backlog (std's
    // `TcpListener::bind` asks for 128), waiting for the server to accept
    // each wave: past the backlog the kernel drops SYNs and the client
    // retries a second later, which would test TCP, not the server.
    const WAVE: usize = 100;
    let mut silent: Vec<TcpStream> = Vec::with_capacity(n);
    while silent.len() < n {
        for _ in 0..WAVE.min(n - silent.len()) {
            let i = silent.len();
            silent.push(
                TcpStream::connect_timeout(&addr, common::READ_TIMEOUT)
                    .unwrap_or_else(|e| panic!("silent connection {i}: {e}")),
            );
        }
        let connected = silent.len() as u64;
        eventually(Duration::from_secs(10), "the server accepts a wave", || {
            server.metrics().connections_accepted.load(Ordering::SeqCst) >= connected
        });
    }
    eventually(
        Duration::from_secs(10),
        "the server holds every silent connection",
        || server.open_connections() >= n,
    );

    let mut good = ChatClient::connect(addr);
    good.round_trip("hello through the flood");

    eventually(
        handshake_timeout + Duration::from_secs(20),
        "the silent connections released after the handshake timeout",
        || server.open_connections() == 1,
    );
    for (i, mut stream) in silent.into_iter().enumerate() {
        stream.set_read_timeout(Some(common::READ_TIMEOUT)).unwrap();
        let reply = read_http_reply(&mut stream);
        assert_eq!(reply.status, 408, "silent connection {i}");
        assert_eof(&mut stream);
    }
    assert_eq!(
        metric(&server, "wschat_http_responses_total{status=\"408\"}"),
        n as u64
    );
    good.round_trip("still here after the flood");
    drop(good);
    eventually(Duration::from_secs(10), "the good client released", || {
        server.open_connections() == 0
    });
}

/// Make closing `stream` reset the connection (RST) instead of ending it
/// (FIN): `SO_LINGER` on with a zero timeout.
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the pointer and size describe `linger`, which outlives the
    // call; the descriptor belongs to `stream`.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}

/// 200 chat clients that reset their TCP connection in the middle of a
/// frame (cut inside the header, the mask, or the payload): the server
/// keeps serving a good client and releases every one of them.
#[test]
fn two_hundred_clients_resetting_mid_frame_are_released() {
    let _gate = alone();
    let server = start(Config {
        close_timeout: Duration::from_secs(1),
        ..config()
    });
    let addr = server.addr();
    let mut good = ChatClient::connect(addr);
    let frame = client_frame(true, OpCode::Text, &[b'x'; 1000]);
    let hostile: Vec<RawClient> = (0..200)
        .map(|i| {
            let mut raw = RawClient::connect(addr, "/");
            let cut = [1, 5, 500][i % 3];
            raw.send(&frame[..cut]);
            reset_on_close(&raw.stream);
            raw
        })
        .collect();
    eventually(Duration::from_secs(10), "all 201 connections open", || {
        server.open_connections() == 201
    });
    drop(hostile);
    good.round_trip("hello after 200 resets");
    eventually(
        Duration::from_secs(20),
        "the reset connections released",
        || {
            server.open_connections() == 1
                && server.metrics().websockets_open.load(Ordering::SeqCst) == 1
        },
    );
    good.round_trip("still here");
    good_client_is_served(addr, "200 resets");
}

// ---------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------

/// How a server must end a connection fed `bytes`, according to the codec:
/// the first error's close code, or the echo of the first Close; `None`
/// while the stream is still open.
fn expected_end(bytes: &[u8], limits: Limits) -> Option<Result<u16, Option<u16>>> {
    let mut decoder = Decoder::new(Role::Server, limits);
    let mut input = bytes;
    while !input.is_empty() {
        match decoder.decode(&mut input) {
            Err(e) => return Some(Ok(e.close_code().0)),
            Ok(Some(Message::Close(frame))) => return Some(Err(frame.map(|f| f.code.0))),
            Ok(_) => {}
        }
    }
    None
}

/// Garbage for `seed`: even seeds give random bytes; odd seeds give frames
/// that are mostly well formed (masked, known opcodes, some valid text,
/// some Close frames) with random faults, perhaps cut short. Zero bytes are
/// appended when the codec would still be waiting, so that every stream
/// ends the connection (after at most one frame's worth of zeros, an
/// unmasked header follows).
fn garbage(seed: u64, limits: Limits) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    if seed.is_multiple_of(2) {
        let n = 1 + rng.below(4096);
        out = rng.bytes(n);
    } else {
        for _ in 0..1 + rng.below(40) {
            let opcode = match rng.below(12) {
                0..=2 => 0x1,
                3 | 4 => 0x2,
                5 => 0x0,
                6 | 7 => 0x9,
                8 => 0xA,
                9 => 0x8,
                _ => rng.below(16) as u8,
            };
            let fin = if rng.below(4) == 0 { 0 } else { 0x80 };
            let rsv = if rng.below(12) == 0 {
                (rng.below(7) as u8 + 1) << 4
            } else {
                0
            };
            let masked = rng.below(20) != 0;
            let len = match rng.below(10) {
                0..=6 => rng.below(126),
                7 | 8 => rng.below(2_000),
                _ => rng.below(100_000),
            };
            let mut payload = if opcode == 0x8 && rng.below(2) == 0 {
                let code = [1000u16, 1001, 1003, 3000, 4999, 1005, 999, 2999][rng.below(8)];
                let mut p = code.to_be_bytes().to_vec();
                p.extend_from_slice("bye 再见".as_bytes());
                p
            } else if rng.below(2) == 0 {
                rng.bytes(len)
            } else {
                let chars = ['a', 'é', '中', '𝄞', '{', '"', '}'];
                let mut s = String::new();
                while s.len() < len {
                    s.push(chars[rng.below(chars.len())]);
                }
                s.into_bytes()
            };
            if rng.below(8) == 0 {
                // A random fault inside the payload.
                if let Some(i) = (!payload.is_empty()).then(|| rng.below(payload.len())) {
                    payload[i] = rng.byte();
                }
            }
            let len = payload.len();
            out.push(fin | rsv | opcode);
            let mask_bit = if masked { 0x80 } else { 0 };
            if len < 126 {
                out.push(mask_bit | len as u8);
            } else if len < 65_536 {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            } else {
                out.push(mask_bit | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
            if masked {
                let key = [rng.byte(), rng.byte(), rng.byte(), rng.byte()];
                out.extend_from_slice(&key);
                out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            } else {
                out.extend_from_slice(&payload);
            }
        }
        if rng.below(3) == 0 {
            let cut = 1 + rng.below(out.len());
            out.truncate(cut);
        }
    }
    if expected_end(&out, limits).is_none() {
        out.extend(std::iter::repeat_n(0u8, limits.max_frame_size + 64));
    }
    out
}

/// Random garbage after the handshake, 24 seeds on `/` and on `/echo`: the
/// server ends each connection exactly as its codec says: a Close with
/// 1002, 1007 or 1009 for the first broken rule, or the echo of the
/// client's own Close; never a hang, and it still serves afterwards.
#[test]
fn random_garbage_after_the_handshake_ends_in_a_close_never_a_hang() {
    let _gate = alongside_others();
    let cfg = Config {
        rate_limit: 0,
        max_frame_size: 64 * 1024,
        max_message_size: 256 * 1024,
        close_timeout: Duration::from_secs(2),
        ..config()
    };
    let limits = cfg.limits();
    let server = start(cfg);
    let addr = server.addr();
    let mut failures = 0;
    for path in ["/", "/echo"] {
        for seed in 1..=24u64 {
            let bytes = garbage(seed, limits);
            let expected = expected_end(&bytes, limits)
                .unwrap_or_else(|| panic!("seed {seed}: the garbage does not end the stream"));
            let mut raw = RawClient::connect(addr, path);
            let writer = write_in_background(&raw.stream, bytes.clone(), 16 * 1024, None);
            let code = close_code(&mut raw);
            writer.join().unwrap();
            let what = format!("seed {seed} on {path} ({} bytes)", bytes.len());
            match expected {
                Ok(fail) => {
                    failures += 1;
                    assert!(
                        [1002, 1007, 1009].contains(&fail),
                        "{what}: codec says {fail}"
                    );
                    assert_eq!(code, Some(fail), "{what}: the codec fails it with {fail}");
                }
                Err(echo) => assert_eq!(code, echo, "{what}: the client's Close is echoed"),
            }
        }
    }
    assert!(
        failures > 24,
        "the garbage hardly ever broke a rule ({failures})"
    );
    eventually(Duration::from_secs(15), "connections released", || {
        server.open_connections() == 0
    });
    good_client_is_served(addr, "random garbage");
}

// ---------------------------------------------------------------------------
// Floods that are allowed
// ---------------------------------------------------------------------------

/// 10,000 pings with distinct payloads, pipelined in 64 KiB writes while
/// the pongs are read: every pong carries its ping's payload, in order, on
/// `/` (where the message rate limit must not count pings) and on `/echo`;
/// the connection then still works.
#[test]
fn a_10000_ping_flood_gets_every_pong_in_order() {
    let _gate = alongside_others();
    let server = start(config());
    let addr = server.addr();
    let payloads: Vec<Vec<u8>> = (0..10_000)
        .map(|i| format!("ping {i:05}").into_bytes())
        .collect();
    let mut wire = Vec::new();
    for payload in &payloads {
        wire.extend(client_frame(true, OpCode::Ping, payload));
    }
    let flood = |raw: &mut RawClient, path: &str| {
        let writer = write_in_background(&raw.stream, wire.clone(), 64 * 1024, None);
        let mut next = 0;
        while next < payloads.len() {
            let frame = raw.read_frame();
            match frame.header.opcode {
                OpCode::Pong => {
                    assert!(
                        frame.payload == payloads[next],
                        "{path}: pong {next} carries {:?}",
                        String::from_utf8_lossy(&frame.payload)
                    );
                    next += 1;
                }
                // Chat notices arrive between the pongs.
                OpCode::Text if path == "/" => {}
                OpCode::Close => panic!(
                    "{path}: closed after {next} pongs: {:?}",
                    CloseFrame::parse(&frame.payload)
                ),
                other => panic!("{path}: unexpected {other:?} after {next} pongs"),
            }
        }
        writer.join().unwrap()
    };

    let mut chat = ChatClient::connect(addr);
    let written = flood(&mut chat.raw, "/");
    assert_eq!(written, wire.len());
    assert_eq!(
        server.metrics().rate_limited.load(Ordering::SeqCst),
        0,
        "pings were counted by the rate limit"
    );
    chat.round_trip("after 10,000 pings");
    let mut echo = RawClient::connect(addr, "/echo");
    let written = flood(&mut echo, "/echo");
    assert_eq!(written, wire.len());
    echo.send_frame(true, OpCode::Text, b"after 10,000 pings");
    assert_eq!(echo.expect(OpCode::Text), b"after 10,000 pings");
    good_client_is_served(addr, "10,000-ping floods");
}

// ---------------------------------------------------------------------------
// Chat commands
// ---------------------------------------------------------------------------

/// Malformed, unknown and oversized chat commands, including a 1 MiB JSON
/// blob (exactly the frame limit) and JSON nested 100,000 deep: each gets an
/// `error` with its code, the connection stays, and a normal message works
/// afterwards. The hub thread (serde_json stops at depth 128) survives and
/// keeps serving other clients.
#[test]
fn malformed_unknown_and_oversized_commands_get_an_error_and_the_connection_stays() {
    let _gate = alongside_others();
    let cfg = config();
    let frame_limit = cfg.max_frame_size;
    let server = start(cfg);
    let addr = server.addr();
    let mut a = ChatClient::connect(addr);
    let mut b = ChatClient::connect(addr);

    let five_kib = "字".repeat(5 * 1024 / 3 + 1);
    let (prefix, suffix) = (r#"{"type":"chat","text":""#, r#""}"#);
    let blob = format!(
        "{prefix}{}{suffix}",
        "a".repeat(frame_limit - prefix.len() - suffix.len())
    );
    assert_eq!(blob.len(), frame_limit);
    let (prefix, suffix) = (r#"{"type":"upload","data":""#, r#""}"#);
    let unknown_blob = format!(
        "{prefix}{}{suffix}",
        "b".repeat(frame_limit - prefix.len() - suffix.len())
    );
    const DEPTH: usize = 100_000;
    let cases: Vec<(&str, String, &str)> = vec![
        ("bad JSON", r#"{"type": oops}"#.into(), "bad_json"),
        (
            "a truncated object",
            r#"{"type":"chat",}"#.into(),
            "bad_json",
        ),
        (
            "an unknown type",
            r#"{"type":"teleport","to":"mars"}"#.into(),
            "unknown_type",
        ),
        ("no type", r#"{"text":"hi"}"#.into(), "bad_command"),
        (
            "a type that is a number",
            r#"{"type":42}"#.into(),
            "bad_command",
        ),
        (
            "chat without text",
            r#"{"type":"chat"}"#.into(),
            "bad_command",
        ),
        (
            "chat with numeric text",
            r#"{"type":"chat","text":5}"#.into(),
            "bad_command",
        ),
        (
            "private without to",
            r#"{"type":"private","text":"psst"}"#.into(),
            "bad_command",
        ),
        (
            "join without room",
            r#"{"type":"join"}"#.into(),
            "bad_command",
        ),
        ("5 KiB of plain text", five_kib.clone(), "text_too_long"),
        (
            "a chat command with 5 KiB of text",
            serde_json::json!({"type": "chat", "text": five_kib}).to_string(),
            "text_too_long",
        ),
        ("a 1 MiB chat command", blob, "text_too_long"),
        ("a 1 MiB unknown command", unknown_blob, "unknown_type"),
        (
            "arrays nested 100,000 deep",
            format!(
                r#"{{"type":"chat","text":"deep","x":{}{}}}"#,
                "[".repeat(DEPTH),
                "]".repeat(DEPTH)
            ),
            "bad_json",
        ),
        (
            "100,000 unclosed arrays",
            format!(r#"{{"type":"chat","x":{}}}"#, "[".repeat(DEPTH)),
            "bad_json",
        ),
        (
            "objects nested 100,000 deep",
            format!("{}1{}", r#"{"a":"#.repeat(DEPTH), "}".repeat(DEPTH)),
            "bad_json",
        ),
    ];
    // Pipelined: every case followed by a normal message, all written
    // before reading; the replies come back in order.
    for (what, text, _) in &cases {
        a.say(text);
        a.say(&format!("fine after {what}"));
    }
    let a_id = a.id;
    for (what, _, code) in &cases {
        a.expect_error(code, what);
        a.expect_chat(a_id, &format!("fine after {what}"));
    }

    // The hub survived: another client is still served, both ways, and a
    // newcomer gets in and is heard.
    let b_id = b.id;
    b.say("the hub is alive");
    loop {
        let v = b.next_reply();
        assert_eq!(v["type"], "chat", "{v}");
        if v["user"]["id"] == b_id {
            assert_eq!(v["text"], "the hub is alive");
            break;
        }
        assert_eq!(v["user"]["id"], a_id, "{v}");
    }
    a.expect_chat(b_id, "the hub is alive");
    let mut c = ChatClient::connect(addr);
    c.round_trip("a newcomer after the nesting");
    a.expect_chat(c.id, "a newcomer after the nesting");
    assert_eq!(server.metrics().rate_limited.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------

/// A private message goes to one user (docs/chat-protocol.md: `to` is a
/// user id). Names are not identities: anyone may take a name nobody holds
/// at the moment. So a later connection that takes the addressee's name,
/// on the URL or by renaming, must not be handed the message by `resume`.
#[test]
fn a_private_message_is_not_replayed_to_whoever_takes_the_name_later() {
    let _gate = alongside_others();
    let server = start(config());
    let addr = server.addr();
    let secret = "the door code is 4711";
    let mut ann = ChatClient::connect_to(addr, "/?name=Ann");
    let mut bob = ChatClient::connect_to(addr, "/?name=Bob");
    ann.say(&serde_json::json!({"type": "private", "to": bob.id, "text": secret}).to_string());
    let delivered = bob.next_reply();
    assert_eq!(delivered["type"], "private", "{delivered}");
    assert_eq!(delivered["text"], secret);
    let echoed = ann.next_reply();
    assert_eq!(echoed["type"], "private", "{echoed}");
    drop(bob);
    eventually(Duration::from_secs(10), "Bob gone", || {
        server.open_connections() == 1
    });

    let leaked = |v: &Value| {
        v["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("no messages in {v}"))
            .iter()
            .any(|m| m["type"] == "private" && m["text"] == secret)
    };
    // Taking the name on the URL and resuming from the beginning.
    let mut mallory = ChatClient::connect_to(addr, "/?name=Bob&since=0");
    let resume = mallory.next_reply();
    assert_eq!(resume["type"], "resume", "{resume}");
    assert!(
        !leaked(&resume),
        "a stranger who took the name Bob was sent Bob's private message: {resume}"
    );
    drop(mallory);
    eventually(Duration::from_secs(10), "Mallory gone", || {
        server.open_connections() == 1
    });
    // Renaming to the name, then asking to resume.
    let mut eve = ChatClient::connect_to(addr, "/?name=Eve");
    eve.say(r#"{"type":"name","name":"Bob"}"#);
    eve.say(r#"{"type":"resume","since":0}"#);
    let resume = eve.next_reply();
    assert_eq!(resume["type"], "resume", "{resume}");
    assert!(
        !leaked(&resume),
        "a stranger who renamed to Bob was sent Bob's private message: {resume}"
    );
}
