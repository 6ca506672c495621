//! Inputs the fuzz targets (fuzz/README.md) turned up, minimised, each
//! asserting the property that broke. They run in plain `cargo test`, with
//! no cargo-fuzz needed.

use wschat::ws::frame::{OpCode, encode_frame};
use wschat::ws::handshake::{parse_request, validate_upgrade};
use wschat::ws::{Decoder, Limits, Role};

/// Target `handshake`, property "a 101 only for a request that meets every
/// rule of RFC 6455 §4.2.1".
///
/// The fuzzer's input (minimised by `cargo fuzz tmin`, then trimmed by hand)
/// had `Upgrade:` followed by U+0085 NEL (bytes C2 85), a space and
/// `websocket`. HTTP's optional whitespace around a value or a list element
/// is only space and tab (RFC 9110 §5.6.3; httparse trims only those), so
/// the Upgrade header does not hold the token `websocket`, yet the request
/// was accepted: the handshake trims values with `str::trim`, which also
/// removes every Unicode space. The same leniency lets a NBSP or an
/// ideographic space pass in `Connection`, `Sec-WebSocket-Version` and
/// `Sec-WebSocket-Key`. Each line below must be refused with the status
/// `validate_upgrade` documents for that header.
#[test]
fn handshake_values_are_trimmed_of_http_whitespace_only() {
    const GOOD: [&[u8]; 4] = [
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let cases: [(usize, &[u8], u16); 5] = [
        // The fuzzer's find: NEL before the token.
        (0, b"Upgrade:\xc2\x85 websocket", 400),
        (0, b"Upgrade: websocket\xc2\xa0", 400),
        (1, b"Connection: keep-alive,\xe3\x80\x80Upgrade", 400),
        (2, b"Sec-WebSocket-Version: 13\xc2\xa0", 426),
        (
            3,
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\xe3\x80\x80",
            400,
        ),
    ];
    for (replace, line, status) in cases {
        let mut request = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        for (i, good) in GOOD.iter().enumerate() {
            request.extend_from_slice(if i == replace { line } else { good });
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        let (parsed, _) = parse_request(&request, 1024)
            .expect("an HTTP request")
            .expect("a complete head");
        let shown = String::from_utf8_lossy(line);
        match validate_upgrade(&parsed, &[]) {
            Ok(accept) => panic!(
                "accepted {shown:?} with Sec-WebSocket-Accept {}",
                accept.accept_key
            ),
            Err(rejection) => assert_eq!(rejection.status(), status, "{shown:?}: {rejection}"),
        }
    }
}

/// Target `frame`, property "`buffered_bytes()` never exceeds the message
/// limit plus 125 bytes of control payload" (RFC 6455 §5.5).
///
/// Found by reading `Decoder` and confirmed by the `frame` target with this
/// input (configuration byte 0x02: 1 KiB frames, 256-byte messages, one
/// byte at a time); 120 s of fuzzing had not reached it. A fragmented
/// message fills the whole 256-byte limit, then a 125-byte ping arrives
/// between its fragments in small reads. The ping's payload is appended
/// with `Vec::extend_from_slice`, whose amortised growth takes the
/// capacity 8, 16, 32, 64, 128: 3 bytes more than a control frame can
/// hold, so the decoder holds 384 bytes where 381 is the bound.
#[test]
fn control_payload_read_in_pieces_stays_within_125_bytes() {
    let limits = Limits {
        max_frame_size: 1024,
        max_message_size: 256,
    };
    let mask = Some([0x37, 0xfa, 0x21, 0x3d]);
    let mut stream = Vec::new();
    // A binary message's first fragment, FIN clear, at the message limit.
    encode_frame(&mut stream, false, OpCode::Binary, &[0xAB; 256], mask);
    // A ping of the largest control payload, between the fragments (§5.4).
    encode_frame(&mut stream, true, OpCode::Ping, &[0xCD; 125], mask);

    let mut decoder = Decoder::new(Role::Server, limits);
    let bound = limits.max_message_size + 125;
    for (i, byte) in stream.iter().enumerate() {
        let mut input = std::slice::from_ref(byte);
        decoder.decode(&mut input).expect("valid frames");
        assert!(
            decoder.buffered_bytes() <= bound,
            "{} bytes buffered after byte {i}, bound {bound}",
            decoder.buffered_bytes()
        );
    }
}
