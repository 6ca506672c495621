//! The `/echo` endpoint over real sockets: messages of every size and kind
//! come back unchanged, control frames are answered, the close handshake
//! completes, and every rule of RFC 6455 broken on the wire fails the
//! connection with its close code (§7.1.7, §7.4.1) and a closed socket.

mod common;

use std::time::Duration;

use common::{RawClient, config, start, start_default};
use wschat::client;
use wschat::config::Config;
use wschat::ws::frame::{OpCode, encode_frame};
use wschat::ws::{CloseCode, CloseFrame, Message};
use wschat::{Error, WebSocket};

/// A client of wschat's own on `/echo` of `server`.
fn connect(server: &wschat::server::ServerHandle) -> WebSocket<std::net::TcpStream> {
    let ws = client::connect(&common::ws_url(server, "/echo")).expect("connect");
    ws.get_ref()
        .set_read_timeout(Some(common::READ_TIMEOUT))
        .unwrap();
    ws
}

/// A payload of `len` bytes that is not all one value.
fn bytes_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// Valid UTF-8 text of exactly `len` bytes, mostly multi-byte characters.
fn text_of(len: usize) -> String {
    let mut s = String::with_capacity(len);
    let chars = ['中', 'é', '𝄞', 'a'];
    let mut i = 0;
    while s.len() < len {
        let c = chars[i % chars.len()];
        if s.len() + c.len_utf8() <= len {
            s.push(c);
        } else {
            s.push('x');
        }
        i += 1;
    }
    s
}

/// The sizes where the frame header changes form (§5.2): 7-bit, 16-bit,
/// 64-bit lengths.
const BOUNDARIES: [usize; 7] = [0, 1, 125, 126, 65535, 65536, 100_000];

#[test]
fn the_client_gets_text_and_binary_back_at_every_length_boundary() {
    let server = start_default();
    let mut ws = connect(&server);
    for len in BOUNDARIES {
        let text = text_of(len);
        assert_eq!(text.len(), len);
        ws.send(Message::Text(text.clone())).unwrap();
        assert_eq!(
            ws.read_message().unwrap(),
            Message::Text(text),
            "text of {len}"
        );
        let data = bytes_of(len);
        ws.send(Message::Binary(data.clone())).unwrap();
        assert_eq!(
            ws.read_message().unwrap(),
            Message::Binary(data),
            "binary of {len}"
        );
    }
    let greeting = "你好, κόσμε, 𝄞 🎉".to_string();
    ws.send(Message::Text(greeting.clone())).unwrap();
    assert_eq!(ws.read_message().unwrap(), Message::Text(greeting));
}

#[test]
fn the_echo_uses_the_shortest_length_form_on_the_wire() {
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    // (payload length, the header the server must send for a binary frame)
    let cases: [(usize, &[u8]); 6] = [
        (0, &[0x82, 0x00]),
        (125, &[0x82, 0x7d]),
        (126, &[0x82, 0x7e, 0x00, 0x7e]),
        (65535, &[0x82, 0x7e, 0xff, 0xff]),
        (65536, &[0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
        (100_000, &[0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x86, 0xa0]),
    ];
    for (len, header) in cases {
        let data = bytes_of(len);
        ws.send_frame(true, OpCode::Binary, &data);
        let (frame, raw) = ws.read_frame_raw();
        assert_eq!(&raw[..header.len()], header, "header for {len} bytes");
        assert_eq!(raw.len(), header.len() + len);
        assert_eq!(frame.payload, data);
    }
    // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d, echoed unmasked.
    ws.send(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    let (_, raw) = ws.read_frame_raw();
    assert_eq!(raw, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
}

#[test]
fn a_longer_length_form_than_needed_is_accepted() {
    // §5.2 asks senders for the minimal form and names no failure for a
    // receiver; wschat reads what the length says.
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    let mut bytes = vec![0x81, 0xfe, 0x00, 0x02];
    bytes.extend_from_slice(&common::MASK);
    bytes.extend([b'o' ^ 0x37, b'k' ^ 0xfa]);
    ws.send(&bytes);
    assert_eq!(ws.expect(OpCode::Text), b"ok");
}

#[test]
fn a_ping_between_fragments_is_answered_at_once_then_the_message_is_echoed() {
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send_frame(false, OpCode::Text, "Hé".as_bytes());
    ws.send_frame(true, OpCode::Ping, b"between");
    // The pong comes before the message is complete (§5.4, §5.5.3).
    assert_eq!(ws.expect(OpCode::Pong), b"between");
    ws.send_frame(false, OpCode::Continuation, b"l");
    ws.send_frame(true, OpCode::Continuation, "lo 中".as_bytes());
    assert_eq!(ws.expect(OpCode::Text), "Héllo 中".as_bytes());

    // Binary messages are reassembled too, and an empty ping gets an empty
    // pong.
    ws.send_frame(false, OpCode::Binary, &[1, 2]);
    ws.send_frame(true, OpCode::Ping, b"");
    ws.send_frame(false, OpCode::Continuation, &[]);
    ws.send_frame(true, OpCode::Continuation, &[3]);
    assert_eq!(ws.expect(OpCode::Pong), b"");
    assert_eq!(ws.expect(OpCode::Binary), [1, 2, 3]);
}

#[test]
fn a_character_split_across_fragments_is_valid() {
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    let euro = "€".as_bytes(); // e2 82 ac
    ws.send_frame(false, OpCode::Text, &euro[..1]);
    ws.send_frame(false, OpCode::Continuation, &euro[1..2]);
    ws.send_frame(true, OpCode::Continuation, &euro[2..]);
    assert_eq!(ws.expect(OpCode::Text), euro);
}

#[test]
fn an_unsolicited_pong_is_ignored() {
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send_frame(true, OpCode::Pong, b"heartbeat");
    ws.send_frame(true, OpCode::Text, b"after");
    assert_eq!(ws.expect(OpCode::Text), b"after");
}

#[test]
fn close_with_a_code_is_answered_with_the_same_code_then_tcp_closes() {
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice("bye 再见".as_bytes());
    ws.send_frame(true, OpCode::Close, &payload);
    ws.expect_close(1000);

    // A code from the private range is echoed too (§7.4.2).
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send_frame(true, OpCode::Close, &4321u16.to_be_bytes());
    ws.expect_close(4321);
}

#[test]
fn an_empty_close_is_answered_with_an_empty_close() {
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send_frame(true, OpCode::Close, &[]);
    let frame = ws.read_frame();
    assert_eq!(frame.header.opcode, OpCode::Close);
    assert_eq!(frame.payload, b"");
    ws.expect_eof();
}

#[test]
fn the_client_close_handshake_completes() {
    let server = start_default();
    let mut ws = connect(&server);
    ws.send(Message::Text("last words".into())).unwrap();
    assert_eq!(
        ws.read_message().unwrap(),
        Message::Text("last words".into())
    );
    ws.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(
        ws.read_message().unwrap(),
        Message::Close(Some(CloseFrame::new(CloseCode::NORMAL, "")))
    );
    assert!(matches!(ws.read_message(), Err(Error::ConnectionClosed)));
    // The server closed TCP after its Close.
    let mut stream = ws.into_inner();
    common::assert_eof(&mut stream);
}

#[test]
fn frames_after_the_close_are_not_processed() {
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    let mut bytes = common::client_frame(true, OpCode::Close, &1000u16.to_be_bytes());
    bytes.extend(common::client_frame(true, OpCode::Text, b"too late"));
    bytes.extend(common::client_frame(true, OpCode::Ping, b"too late"));
    ws.send(&bytes);
    ws.expect_close(1000);
}

/// A raw client on a server with `config`, that sends `bytes` and expects a
/// Close with `code`, then the end of the stream.
fn fails_with(config: Config, bytes: &[u8], code: u16) -> CloseFrame {
    let server = start(config);
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send(bytes);
    ws.expect_close(code)
}

/// As [`fails_with`] on a default server.
fn default_fails_with(bytes: &[u8], code: u16) -> CloseFrame {
    fails_with(config(), bytes, code)
}

fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    common::client_frame(fin, opcode, payload)
}

fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

#[test]
fn an_unmasked_client_frame_fails_with_1002() {
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, true, OpCode::Text, b"Hello", None);
    let close = default_fails_with(&bytes, 1002);
    assert!(close.reason.contains("mask"), "{close:?}");
}

#[test]
fn each_rsv_bit_fails_with_1002() {
    for bit in [0x40, 0x20, 0x10] {
        let mut bytes = frame(true, OpCode::Text, b"x");
        bytes[0] |= bit;
        default_fails_with(&bytes, 1002);
    }
}

#[test]
fn reserved_opcodes_fail_with_1002() {
    for op in [0x3, 0x7, 0xB, 0xF] {
        let bytes = frame(true, OpCode::Reserved(op), b"");
        let close = default_fails_with(&bytes, 1002);
        assert!(close.reason.contains("opcode"), "{close:?}");
    }
}

#[test]
fn a_control_frame_of_126_bytes_fails_with_1002() {
    for op in [OpCode::Ping, OpCode::Pong, OpCode::Close] {
        let mut payload = vec![b'p'; 126];
        if op == OpCode::Close {
            payload[..2].copy_from_slice(&1000u16.to_be_bytes());
        }
        default_fails_with(&frame(true, op, &payload), 1002);
    }
    // 125 is still fine.
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send_frame(true, OpCode::Ping, &[b'p'; 125]);
    assert_eq!(ws.expect(OpCode::Pong), [b'p'; 125]);
}

#[test]
fn a_fragmented_ping_fails_with_1002() {
    let close = default_fails_with(&frame(false, OpCode::Ping, b"part"), 1002);
    assert!(close.reason.contains("fragmented"), "{close:?}");
}

#[test]
fn a_continuation_with_nothing_to_continue_fails_with_1002() {
    default_fails_with(&frame(true, OpCode::Continuation, b"orphan"), 1002);
    // Also right after a complete message.
    let bytes = concat(&[
        frame(true, OpCode::Text, b"whole"),
        frame(true, OpCode::Continuation, b"orphan"),
    ]);
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send(&bytes);
    assert_eq!(ws.expect(OpCode::Text), b"whole");
    ws.expect_close(1002);
}

#[test]
fn a_new_data_frame_inside_a_fragmented_message_fails_with_1002() {
    for op in [OpCode::Text, OpCode::Binary] {
        let bytes = concat(&[frame(false, OpCode::Text, b"Hel"), frame(true, op, b"lo")]);
        default_fails_with(&bytes, 1002);
    }
}

#[test]
fn invalid_utf8_fails_with_1007() {
    // A lone continuation byte, an overlong encoding, a surrogate, a code
    // point above U+10FFFF.
    for bad in [
        &[0x80][..],
        &[0xc0, 0xaf],
        &[0xed, 0xa0, 0x80],
        &[0xf4, 0x90, 0x80, 0x80],
    ] {
        let mut payload = b"ok ".to_vec();
        payload.extend_from_slice(bad);
        default_fails_with(&frame(true, OpCode::Text, &payload), 1007);
    }
}

#[test]
fn a_text_message_ending_inside_a_character_fails_with_1007() {
    default_fails_with(&frame(true, OpCode::Text, &[b'a', 0xe2, 0x82]), 1007);
}

#[test]
fn invalid_utf8_split_mid_character_across_fragments_fails_with_1007() {
    // e2 82 starts a valid 3-byte character; the next fragment's first byte
    // (0x28, '(') cannot continue it.
    let bytes = concat(&[
        frame(false, OpCode::Text, &[b'a', 0xe2, 0x82]),
        frame(true, OpCode::Continuation, &[0x28, b'b']),
    ]);
    default_fails_with(&bytes, 1007);
}

#[test]
fn invalid_utf8_fails_before_the_message_is_complete() {
    // §8.1: fail fast. The final fragment is never sent; the server must
    // not wait for it.
    default_fails_with(&frame(false, OpCode::Text, &[b'a', 0xff]), 1007);
}

#[test]
fn binary_messages_are_not_checked_for_utf8() {
    let server = start_default();
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send_frame(true, OpCode::Binary, &[0xff, 0xfe, 0x80]);
    assert_eq!(ws.expect(OpCode::Binary), [0xff, 0xfe, 0x80]);
}

#[test]
fn a_close_payload_of_one_byte_fails_with_1002() {
    default_fails_with(&frame(true, OpCode::Close, &[0x03]), 1002);
}

#[test]
fn close_codes_that_may_not_be_sent_fail_with_1002() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
        let close = default_fails_with(&frame(true, OpCode::Close, &code.to_be_bytes()), 1002);
        assert!(close.reason.contains(&code.to_string()), "{close:?}");
    }
}

#[test]
fn an_invalid_utf8_close_reason_fails_with_1007() {
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(&[b'o', b'k', 0xc3]);
    default_fails_with(&frame(true, OpCode::Close, &payload), 1007);
}

fn small_limits() -> Config {
    Config {
        max_frame_size: 1000,
        max_message_size: 2500,
        ..config()
    }
}

#[test]
fn a_frame_over_max_frame_size_fails_with_1009() {
    // The limit itself is fine ...
    let server = start(small_limits());
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send_frame(true, OpCode::Binary, &[7; 1000]);
    assert_eq!(ws.expect(OpCode::Binary), [7; 1000]);
    // ... one byte more is not. The payload is sent too, and the server
    // must not be confused by it.
    let close = fails_with(
        small_limits(),
        &frame(true, OpCode::Binary, &[7; 1001]),
        1009,
    );
    assert!(close.reason.contains("1001"), "{close:?}");
}

#[test]
fn a_message_over_max_message_size_in_fragments_fails_with_1009() {
    let server = start(small_limits());
    let mut ws = RawClient::connect(server.addr(), "/echo");
    // 1000 + 1000 + 500 = the limit: echoed.
    ws.send(&concat(&[
        frame(false, OpCode::Binary, &[1; 1000]),
        frame(false, OpCode::Continuation, &[2; 1000]),
        frame(true, OpCode::Continuation, &[3; 500]),
    ]));
    assert_eq!(ws.expect(OpCode::Binary).len(), 2500);
    // One byte more, in frames that are each within the frame limit.
    let close = fails_with(
        small_limits(),
        &concat(&[
            frame(false, OpCode::Text, &[b'a'; 1000]),
            frame(false, OpCode::Continuation, &[b'b'; 1000]),
            frame(true, OpCode::Continuation, &[b'c'; 501]),
        ]),
        1009,
    );
    assert!(close.reason.contains("2501"), "{close:?}");
}

/// A masked binary frame header that declares `len` bytes (and no payload).
fn header_declaring(len: u64) -> Vec<u8> {
    let mut bytes = vec![0x82, 0xff];
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&common::MASK);
    bytes
}

#[test]
fn a_64_bit_length_with_the_high_bit_set_fails_with_1002() {
    // §5.2: "the most significant bit MUST be 0".
    for len in [1u64 << 63, u64::MAX] {
        let close = default_fails_with(&header_declaring(len), 1002);
        assert!(close.reason.contains("significant bit"), "{close:?}");
    }
}

#[test]
fn a_huge_legal_length_fails_with_1009_without_waiting_for_the_payload() {
    // 2^62 and 2^63-1 are legal lengths, far over any limit: refused from
    // the header alone.
    for len in [1u64 << 62, (1u64 << 63) - 1] {
        default_fails_with(&header_declaring(len), 1009);
    }
}

#[test]
fn a_client_that_never_answers_the_servers_close_is_dropped() {
    // A silent client is pinged and then closed for idleness (1001); it
    // never answers the Close, and the server drops it after close_timeout.
    let server = start(Config {
        ping_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(150),
        close_timeout: Duration::from_millis(200),
        ..config()
    });
    let mut ws = RawClient::connect(server.addr(), "/echo");
    assert_eq!(server.open_connections(), 1);
    let close = loop {
        let frame = ws.read_frame();
        match frame.header.opcode {
            // Pings are not answered: the client is silent.
            OpCode::Ping => continue,
            OpCode::Close => break CloseFrame::parse(&frame.payload).unwrap().unwrap(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(close.code, CloseCode::GOING_AWAY);
    ws.expect_eof();
    // The socket stays open on this side and no Close is sent back; the
    // server still lets go of the connection.
    common::eventually(
        Duration::from_secs(10),
        "the server drops the connection",
        || server.open_connections() == 0,
    );
    drop(ws);
}

#[test]
fn a_pinged_client_that_answers_stays_open() {
    // wschat's client answers pings, so idleness never closes it.
    // Fifteen pings take longer than the idle timeout, so the pongs must be
    // what keeps it open; the margins leave room for a busy machine.
    let server = start(Config {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(600),
        ..config()
    });
    let mut ws = connect(&server);
    let mut pings = 0;
    while pings < 15 {
        match ws.read_message().expect("still open") {
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.send(Message::Text("still here".into())).unwrap();
    loop {
        match ws.read_message().expect("still open") {
            Message::Ping(_) => continue,
            message => break assert_eq!(message, Message::Text("still here".into())),
        }
    }
}

/// Issue 26.2: each mount keeps its own behavior. The same endpoint on two
/// paths, one with a 16-byte message limit: a 32-byte message comes back
/// from the other path and fails the connection with 1009 on this one, and
/// a path nothing is mounted on is refused 404.
#[test]
fn each_mount_keeps_its_own_behavior() {
    use wschat::server::{Behavior, Server, ServerConfig, Service};
    let config = ServerConfig {
        listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let builder = Server::builder(config);
    let roomy = builder.behavior();
    let small = Behavior {
        max_frame_size: 16,
        max_message_size: 16,
        ..roomy
    };
    let server = builder
        .ws("/echo", Service::Echo, roomy)
        .ws("/small", Service::Echo, small)
        .bind(|| Ok(NoApp))
        .unwrap()
        .spawn()
        .unwrap();
    let text = frame(true, OpCode::Text, &[b'a'; 32]);
    let mut ws = RawClient::connect(server.addr(), "/echo");
    ws.send(&text);
    assert_eq!(ws.read_frame().payload, [b'a'; 32]);
    let mut ws = RawClient::connect(server.addr(), "/small");
    ws.send(&text);
    ws.expect_close(1009);
    let reply = common::http_exchange(server.addr(), &common::upgrade_request(server.addr(), "/"));
    assert_eq!(reply.status, 404, "{}", reply.body_text());
    assert_eq!(reply.body_text(), "no WebSocket endpoint at /\n");
}

/// A hub application with nothing mounted on it.
struct NoApp;

impl wschat::hub::App for NoApp {
    fn opened(&mut self, _: &mut wschat::hub::Ctx, _: u64, _: wschat::hub::ConnInfo) {}
    fn text(&mut self, _: &mut wschat::hub::Ctx, _: u64, _: String) {}
    fn closed(&mut self, _: &mut wschat::hub::Ctx, _: u64) {}
}
