//! The frame dissector: the library on every RFC 6455 §5.7 example, on
//! broken and truncated input, and `wschat dissect` run as a program.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use wschat::dissect::{Direction, Dissector, Options, Part, dissect};
use wschat::ws::frame::{LengthForm, OpCode, encode_frame};
use wschat::ws::{CloseCode, ProtocolError};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn from_client(bytes: &[u8]) -> wschat::dissect::Dissection {
    dissect(bytes, &Options::new(Direction::ClientToServer))
}

fn from_server(bytes: &[u8]) -> wschat::dissect::Dissection {
    dissect(bytes, &Options::new(Direction::ServerToClient))
}

fn frame(fin: bool, op: OpCode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, fin, op, payload, mask);
    out
}

// ---- RFC 6455 §5.7, every example ----

#[test]
fn rfc_single_frame_unmasked_text() {
    let d = from_server(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert!(d.is_valid());
    let f = &d.frames[0];
    assert!(f.header.fin);
    assert_eq!(f.header.rsv, 0);
    assert_eq!(f.header.opcode, OpCode::Text);
    assert_eq!(f.header.mask, None);
    assert_eq!(f.length_form, LengthForm::Short);
    assert!(f.length_minimal);
    assert_eq!(f.header_bytes, [0x81, 0x05]);
    assert_eq!(f.wire_payload, b"Hello");
    assert_eq!(f.text.as_deref(), Some("Hello"));
    assert_eq!(f.part, Part::Whole);
    assert_eq!(f.one_line(), r#"text fin=1 rsv=000 mask=- len=5 "Hello""#);
}

#[test]
fn rfc_single_frame_masked_text() {
    let d = from_client(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert!(d.is_valid());
    let f = &d.frames[0];
    assert_eq!(f.header.mask, Some(KEY));
    assert_eq!(f.header.payload_len, 5);
    assert_eq!(f.wire_payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    assert_eq!(f.payload, b"Hello");
    assert_eq!(
        f.one_line(),
        r#"text fin=1 rsv=000 mask=37fa213d len=5 "Hello""#
    );
    let text = d.to_text();
    assert!(text.contains("37 fa 21 3d"), "{text}");
    assert!(text.contains("7f 9f 4d 51 58"), "{text}");
    assert!(text.contains("\"Hello\""), "{text}");
    assert!(text.contains("every rule kept"), "{text}");
}

#[test]
fn rfc_fragmented_unmasked_text() {
    let d = from_server(&[0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
    assert!(d.is_valid());
    assert_eq!(d.frames.len(), 2);
    assert_eq!(
        d.frames[0].part,
        Part::Fragment {
            message: OpCode::Text,
            number: 1,
            last: false
        }
    );
    assert_eq!(d.frames[0].text.as_deref(), Some("Hel"));
    assert_eq!(
        d.frames[1].part,
        Part::Fragment {
            message: OpCode::Text,
            number: 2,
            last: true
        }
    );
    let message = d.frames[1]
        .message
        .as_ref()
        .expect("the reassembled message");
    assert_eq!(message.frames, 2);
    assert_eq!(message.text.as_deref(), Some("Hello"));
    assert_eq!(d.open_message, None);
    assert_eq!(
        d.frames[1].one_line(),
        r#"continuation fin=1 rsv=000 mask=- len=2 "lo""#
    );
}

#[test]
fn rfc_unmasked_ping_and_masked_pong() {
    let ping = from_server(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert!(ping.is_valid());
    assert_eq!(ping.frames[0].header.opcode, OpCode::Ping);
    assert_eq!(
        ping.frames[0].part,
        Part::Control {
            between_fragments: false
        }
    );
    let pong = from_client(&[
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ]);
    assert!(pong.is_valid());
    assert_eq!(pong.frames[0].header.opcode, OpCode::Pong);
    assert_eq!(pong.frames[0].payload, b"Hello");
}

#[test]
fn rfc_256_bytes_use_the_16_bit_length() {
    let mut bytes = vec![0x82, 0x7E, 0x01, 0x00];
    bytes.extend((0..=255u8).collect::<Vec<_>>());
    let d = from_server(&bytes);
    assert!(d.is_valid());
    let f = &d.frames[0];
    assert_eq!(f.length_form, LengthForm::Medium);
    assert!(f.length_minimal);
    assert_eq!(f.header.payload_len, 256);
    assert_eq!(f.payload.len(), 256);
    assert!(
        f.one_line()
            .starts_with("binary fin=1 rsv=000 mask=- len=256 0x0001")
    );
}

#[test]
fn rfc_64_kib_use_the_64_bit_length() {
    let mut bytes = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0];
    bytes.extend(std::iter::repeat_n(0xAB, 65536));
    let d = from_server(&bytes);
    assert!(d.is_valid());
    let f = &d.frames[0];
    assert_eq!(f.length_form, LengthForm::Long);
    assert!(f.length_minimal);
    assert_eq!(f.header.payload_len, 65536);
    // The text form shows a capped dump and says how much is left out.
    assert!(d.to_text().contains("65280 more bytes"));
}

// ---- broken rules ----

#[test]
fn a_non_minimal_length_is_noted_but_breaks_nothing() {
    // "Hi" with a 16-bit length.
    let d = from_server(&[0x81, 0x7E, 0x00, 0x02, b'H', b'i']);
    assert!(d.is_valid());
    assert!(!d.frames[0].length_minimal);
    assert_eq!(d.frames[0].length_form, LengthForm::Medium);
    assert_eq!(d.frames[0].notes.len(), 1);
    assert!(d.to_text().contains("NOT minimal"));
}

#[test]
fn masking_is_checked_against_the_direction() {
    let unmasked = frame(true, OpCode::Text, b"hi", None);
    let d = from_client(&unmasked);
    assert_eq!(d.frames[0].violations, [ProtocolError::UnmaskedFrame]);
    let masked = frame(true, OpCode::Text, b"hi", Some(KEY));
    let d = from_server(&masked);
    assert_eq!(d.frames[0].violations, [ProtocolError::MaskedFrame]);
    assert_eq!(d.first_violation().unwrap().1.close_code(), CloseCode(1002));
}

#[test]
fn message_rules_span_frames() {
    // A continuation with nothing to continue.
    let d = from_client(&frame(true, OpCode::Continuation, b"x", Some(KEY)));
    assert_eq!(
        d.frames[0].violations,
        [ProtocolError::UnexpectedContinuation]
    );
    assert_eq!(d.frames[0].part, Part::Stray);

    // A new text frame inside a fragmented message; a ping between is fine.
    let mut bytes = frame(false, OpCode::Text, b"a", Some(KEY));
    bytes.extend(frame(true, OpCode::Ping, b"", Some(KEY)));
    bytes.extend(frame(true, OpCode::Text, b"b", Some(KEY)));
    let d = from_client(&bytes);
    assert!(d.frames[0].violations.is_empty());
    assert_eq!(
        d.frames[1].part,
        Part::Control {
            between_fragments: true
        }
    );
    assert!(d.frames[1].violations.is_empty());
    assert_eq!(
        d.frames[2].violations,
        [ProtocolError::ExpectedContinuation]
    );
    assert_eq!(d.first_violation().map(|(i, _)| i), Some(2));

    // UTF-8 is checked over the whole message: "é" split across frames is
    // fine, a bad second byte fails on the frame that carries it.
    let mut ok = frame(false, OpCode::Text, &[b'a', 0xC3], Some(KEY));
    ok.extend(frame(true, OpCode::Continuation, &[0xA9], Some(KEY)));
    let d = from_client(&ok);
    assert!(d.is_valid());
    assert_eq!(
        d.frames[1].message.as_ref().unwrap().text.as_deref(),
        Some("aé")
    );
    let mut bad = frame(false, OpCode::Text, &[b'a', 0xC3], Some(KEY));
    bad.extend(frame(true, OpCode::Continuation, &[0x28], Some(KEY)));
    let d = from_client(&bad);
    assert!(d.frames[0].violations.is_empty());
    assert_eq!(d.frames[1].violations, [ProtocolError::InvalidUtf8]);
    assert_eq!(d.first_violation().unwrap().1.close_code(), CloseCode(1007));

    // A text message that ends in the middle of a character.
    let d = from_client(&frame(true, OpCode::Text, &[b'a', 0xE2, 0x82], Some(KEY)));
    assert_eq!(d.frames[0].violations, [ProtocolError::InvalidUtf8]);

    // Binary is not UTF-8 checked.
    assert!(from_client(&frame(true, OpCode::Binary, &[0xFF], Some(KEY))).is_valid());
}

#[test]
fn close_payload_rules() {
    let good = from_client(&frame(
        true,
        OpCode::Close,
        &[0x03, 0xe8, b'b', b'y', b'e'],
        Some(KEY),
    ));
    assert!(good.is_valid());
    let close = good.frames[0].close.as_ref().unwrap();
    assert_eq!(close.code, Some(CloseCode::NORMAL));
    assert_eq!(close.reason, "bye");
    assert_eq!(
        good.frames[0].one_line(),
        format!(
            r#"close fin=1 rsv=000 mask={} len=5 code=1000 "bye""#,
            wschat::dissect::hex(&KEY)
        )
    );

    let empty = from_client(&frame(true, OpCode::Close, &[], Some(KEY)));
    assert!(empty.is_valid());
    assert_eq!(empty.frames[0].close.as_ref().unwrap().code, None);

    let cases: [(&[u8], ProtocolError); 3] = [
        (&[0x03], ProtocolError::CloseFrameOneByte),
        (&[0x03, 0xed], ProtocolError::InvalidCloseCode(1005)),
        (&[0x03, 0xe8, 0xff], ProtocolError::InvalidUtf8),
    ];
    for (payload, error) in cases {
        let d = from_client(&frame(true, OpCode::Close, payload, Some(KEY)));
        assert_eq!(d.frames[0].violations, [error], "{payload:02x?}");
    }

    // Frames after a Close are reported with a note, not a new rule.
    let mut bytes = frame(true, OpCode::Close, &[], Some(KEY));
    bytes.extend(frame(true, OpCode::Text, b"late", Some(KEY)));
    let d = from_client(&bytes);
    assert!(d.is_valid());
    assert_eq!(d.frames[1].notes.len(), 1);
}

#[test]
fn every_broken_header_rule_is_listed_with_its_code() {
    // FIN=0, RSV2, opcode 0xB (reserved control), unmasked, 126-byte payload.
    let mut bytes = vec![0x2B, 0x7E, 0x00, 0x7E];
    bytes.extend([0u8; 126]);
    let d = from_client(&bytes);
    let v = &d.frames[0].violations;
    assert_eq!(
        v,
        &[
            ProtocolError::UnmaskedFrame,
            ProtocolError::ReservedBits(0b010),
            ProtocolError::ReservedOpcode(0xB),
            ProtocolError::ControlFrameTooLong(126),
            ProtocolError::FragmentedControlFrame,
        ]
    );
    assert!(v.iter().all(|e| e.close_code() == CloseCode(1002)));
    let text = d.to_text();
    for needle in ["§5.1", "§5.2", "§5.5", "reserved opcode 0xB", "close 1002"] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
}

#[test]
fn limits_and_the_length_high_bit() {
    let mut huge = vec![0x82, 0xFF];
    huge.extend((1u64 << 63).to_be_bytes());
    huge.extend(KEY);
    huge.extend([1, 2, 3]);
    let d = from_client(&huge);
    let f = &d.frames[0];
    assert!(f.violations.contains(&ProtocolError::LengthHighBit));
    assert!(
        f.violations
            .iter()
            .any(|e| matches!(e, ProtocolError::FrameTooBig { .. }))
    );
    assert_eq!(f.wire_payload.len(), 3);
    assert_eq!(f.missing, (1u64 << 63) - 3);

    let options = Options {
        direction: Direction::ClientToServer,
        limits: wschat::ws::Limits {
            max_frame_size: 10,
            max_message_size: 15,
        },
        deflate: false,
    };
    let mut bytes = frame(false, OpCode::Binary, &[0; 10], Some(KEY));
    bytes.extend(frame(true, OpCode::Continuation, &[0; 10], Some(KEY)));
    let d = dissect(&bytes, &options);
    assert!(d.frames[0].violations.is_empty());
    assert_eq!(
        d.frames[1].violations,
        [ProtocolError::MessageTooBig { len: 20, limit: 15 }]
    );
    assert_eq!(d.frames[1].violations[0].close_code(), CloseCode(1009));
}

// ---- truncated input ----

#[test]
fn a_truncated_payload_says_how_many_bytes_are_missing() {
    let d = from_client(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f]);
    assert!(!d.is_valid());
    assert!(d.is_truncated());
    let f = &d.frames[0];
    assert_eq!(f.missing, 3);
    assert!(f.violations.is_empty());
    assert_eq!(f.payload, b"He");
    assert!(
        f.one_line().ends_with("[3 bytes missing]"),
        "{}",
        f.one_line()
    );
    assert!(d.to_text().contains("3 bytes missing"));
    // A first fragment cut short leaves its message open.
    let d = from_server(&[0x01, 0x03, b'H', b'e']);
    assert_eq!(d.frames[0].missing, 1);
    assert_eq!(d.open_message, Some((OpCode::Text, 1)));
    assert!(d.to_text().contains("still open"));
}

#[test]
fn a_truncated_header_says_how_many_bytes_are_missing() {
    let cases: [(&[u8], usize, bool); 5] = [
        (&[0x81], 1, true),
        (&[0x81, 0x85, 0x37], 3, false),
        (&[0x81, 0x7E, 0x00], 1, false),
        (&[0x82, 0x7F, 0, 0], 6, false),
        (&[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x37], 3, false),
    ];
    for (bytes, missing, at_least) in cases {
        let d = from_client(bytes);
        assert!(d.frames.is_empty());
        let p = d.partial_header.as_ref().expect("a partial header");
        assert_eq!((p.missing, p.at_least), (missing, at_least), "{bytes:02x?}");
        assert_eq!(p.bytes, bytes);
        assert!(d.is_truncated() && !d.is_valid());
        assert!(d.to_text().contains("TRUNCATED"));
    }
    // After whole frames, the offset points at the cut one.
    let mut bytes = frame(true, OpCode::Ping, b"", Some(KEY));
    bytes.push(0x81);
    let d = from_client(&bytes);
    assert_eq!(d.frames.len(), 1);
    assert_eq!(d.partial_header.unwrap().offset, 6);
}

#[test]
fn no_input_and_garbage_never_panic() {
    let d = from_client(&[]);
    assert!(d.frames.is_empty() && d.is_valid());
    // Every prefix of a stream, and pseudo-random bytes, in both directions.
    let mut stream = frame(false, OpCode::Text, "héllo".as_bytes(), Some(KEY));
    stream.extend(frame(true, OpCode::Close, &[0x03, 0xe8], Some(KEY)));
    for end in 0..=stream.len() {
        let _ = from_client(&stream[..end]).to_text();
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..300 {
        let len = (x % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for d in [from_client(&bytes), from_server(&bytes)] {
            let _ = (d.to_text(), d.to_json());
            for f in &d.frames {
                let _ = f.one_line();
            }
        }
    }
}

#[test]
fn streaming_gives_the_same_reports_as_one_piece() {
    let mut stream = frame(false, OpCode::Text, b"Hel", Some(KEY));
    stream.extend(frame(true, OpCode::Ping, b"p", Some(KEY)));
    stream.extend(frame(true, OpCode::Continuation, b"lo", Some([1, 2, 3, 4])));
    stream.extend(frame(true, OpCode::Binary, &[9; 300], Some(KEY)));
    let whole = from_client(&stream).frames;
    for split in 0..=stream.len() {
        let mut d = Dissector::new(Options::default());
        let mut got = d.feed(&stream[..split]);
        got.extend(d.feed(&stream[split..]));
        assert_eq!(got, whole, "split at {split}");
    }
}

#[test]
fn json_has_the_fields() {
    let d = from_client(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x80, 0x80,
    ]);
    let j = serde_json::to_value(&d).unwrap();
    assert_eq!(j["direction"], "client-to-server");
    assert_eq!(j["frames"][0]["mask_key"], "37fa213d");
    assert_eq!(j["frames"][0]["text"], "Hello");
    assert_eq!(j["frames"][0]["wire_payload_hex"], "7f9f4d5158");
    assert_eq!(j["frames"][0]["length_form"], "7-bit");
    assert_eq!(j["partial_header"]["missing"], 4);
    assert_eq!(j["valid"], false);
}

/// The fields of a frame's JSON, in the order it is written: the position
/// first, the header's fields as they come on the wire, the payload, then
/// what the frame means and what it breaks.
const FRAME_FIELDS: [&str; 27] = [
    "index",
    "offset",
    "header_hex",
    "fin",
    "rsv",
    "rsv1",
    "rsv2",
    "rsv3",
    "opcode",
    "opcode_name",
    "control",
    "masked",
    "mask_key",
    "length_form",
    "length_minimal",
    "payload_len",
    "missing",
    "wire_payload_hex",
    "payload_hex",
    "text",
    "part",
    "close",
    "message",
    "violations",
    "notes",
    "one_line",
    "valid",
];

#[test]
fn json_fields_come_in_reading_order() {
    let d = from_client(&[
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x80, 0x80,
    ]);
    let text = d.to_json();
    assert_eq!(
        common::top_level_keys(&text),
        [
            "direction",
            "len",
            "valid",
            "truncated",
            "fails_at",
            "frames",
            "partial_header",
            "open_message"
        ]
    );
    assert_eq!(common::top_level_keys(&d.frames[0].to_json()), FRAME_FIELDS);
    // The same text as serde_json's own view of it, field for field.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value, serde_json::to_value(&d).unwrap());
    assert!(
        text.contains(r#""part":{"kind":"whole"}"#),
        "the part's kind comes first: {text}"
    );
}

#[test]
fn inspect_answers_each_frame_with_its_dissection_in_reading_order() {
    let server = common::start_default();
    let mut client = common::RawClient::connect(server.addr(), "/inspect");
    client.send_frame(true, OpCode::Text, b"Hello");
    let text = String::from_utf8(client.expect(OpCode::Text)).expect("UTF-8");
    assert_eq!(common::top_level_keys(&text), ["type", "frame"], "{text}");
    let frame = text
        .strip_prefix(r#"{"type":"frame","frame":"#)
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or_else(|| panic!("a frame message: {text}"));
    assert_eq!(common::top_level_keys(frame), FRAME_FIELDS);
    let value: serde_json::Value = serde_json::from_str(frame).unwrap();
    assert_eq!(value["text"], "Hello");
    assert_eq!(value["masked"], true);
    assert_eq!(value["valid"], true);
    assert_eq!(value["part"]["kind"], "whole");
}

// ---- `wschat dissect`, the program ----

/// Run `wschat ARGS` with `stdin`; (exit code, stdout, stderr), with a
/// timeout on everything.
fn run(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wschat");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let (tx, rx) = mpsc::channel();
    for (n, mut pipe) in [
        (
            0,
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        ),
        (1, Box::new(child.stderr.take().unwrap())),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            let _ = tx.send((n, s));
        });
    }
    let mut out = [String::new(), String::new()];
    for _ in 0..2 {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((n, s)) => out[n] = s,
            Err(_) => {
                let _ = child.kill();
                panic!("wschat {args:?} did not finish");
            }
        }
    }
    let status = child.wait().expect("wait for wschat");
    let [stdout, stderr] = out;
    (status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn cli_dissects_the_rfc_masked_hello() {
    let (code, out, err) = run(&["dissect", "818537fa213d7f9f4d5158"], b"");
    assert_eq!(code, 0, "{out}{err}");
    for needle in [
        "text",
        "FIN      1",
        "masking key 37 fa 21 3d",
        "7-bit form, minimal",
        "7f 9f 4d 51 58",
        "48 65 6c 6c 6f",
        "\"Hello\"",
        "every rule kept",
    ] {
        assert!(out.contains(needle), "{needle:?} in\n{out}");
    }
}

#[test]
fn cli_names_the_broken_rule_and_its_close_code() {
    // (hex, direction flag, what the output must name)
    let cases: [(&str, &[&str], &[&str]); 4] = [
        // An unmasked client frame.
        ("81 05 48 65 6c 6c 6f", &[], &["not masked", "§5.1", "1002"]),
        // A reserved opcode.
        (
            "0x83 0x80 0x01 0x02 0x03 0x04",
            &[],
            &["reserved opcode 0x3", "§5.2", "1002"],
        ),
        // RSV1 without an extension.
        ("c18001020304", &[], &["RSV=100", "§5.2", "1002"]),
        // A masked frame from a server.
        (
            "818537fa213d7f9f4d5158",
            &["--server"],
            &["server frame is masked", "1002"],
        ),
    ];
    for (hex, flags, needles) in cases {
        let mut args = vec!["dissect"];
        args.extend(flags);
        args.push(hex);
        let (code, out, err) = run(&args, b"");
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        for needle in needles {
            assert!(out.contains(needle), "{needle:?} for {hex} in\n{out}");
        }
    }
    // Invalid UTF-8 in text: 1007.
    let (code, out, _) = run(&["dissect", "8181 01020304 fe"], b"");
    assert_eq!(code, 1);
    assert!(
        out.contains("invalid UTF-8") && out.contains("1007"),
        "{out}"
    );
}

#[test]
fn cli_reads_stdin_and_files_and_knows_the_server_direction() {
    let (code, out, _) = run(&["dissect", "--server"], b"81 05 48 65\n6c 6c 6f\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("server → client") && out.contains("\"Hello\""));
    let (code, out, _) = run(&["dissect", "-"], b"818537fa213d7f9f4d5158");
    assert_eq!(code, 0, "{out}");

    let path = std::env::temp_dir().join(format!("wschat-dissect-{}.bin", std::process::id()));
    std::fs::write(&path, [0x89, 0x80, 1, 2, 3, 4, 0x81, 0x85, 0x37]).unwrap();
    let (code, out, _) = run(&["dissect", "--file", path.to_str().unwrap()], b"");
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("ping") && out.contains("TRUNCATED"), "{out}");

    let (code, out, _) = run(&["dissect", "--json", "818537fa213d7f9f4d5158"], b"");
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["frames"][0]["text"], "Hello");
    let keys = common::top_level_keys(&out);
    assert_eq!(keys.first().map(String::as_str), Some("direction"), "{out}");
}

#[test]
fn cli_usage_errors_exit_2() {
    for args in [
        &["dissect", "zz"][..],
        &["dissect", "818"],
        &["dissect", "--bogus"],
        &["dissect", "--file"],
        &["dissect", "--file", "/nonexistent/wschat-capture"],
        &["dissect", "81", "--file", "x"],
    ] {
        let (code, _, err) = run(args, b"");
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("Usage"), "{err}");
    }
    let (code, _, _) = run(&["dissect", "-"], b"");
    assert_eq!(code, 2, "empty input");
    let (code, out, _) = run(&["dissect", "--help"], b"");
    assert_eq!(code, 0);
    assert!(out.contains("wschat dissect"));
}

/// `wschat dissect … | head`: when the reader of its output goes away, it
/// ends as Unix tools do (by SIGPIPE), without a panic message.
#[cfg(unix)]
#[test]
fn cli_ends_quietly_when_its_output_is_closed() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["dissect", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wschat");
    // The output's reader is gone before wschat has anything to write: it
    // waits for its input first.
    drop(child.stdout.take());
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"818537fa213d7f9f4d5158").unwrap();
    drop(input);
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    let Ok(err) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("wschat dissect did not finish");
    };
    let status = child.wait().expect("wait for wschat");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}: {err}");
}

// ---- permessage-deflate (RFC 7692) ----

fn deflated(bytes: &[u8], direction: Direction) -> wschat::dissect::Dissection {
    dissect(bytes, &Options::new(direction).with_deflate(true))
}

#[test]
fn rfc_7692_examples_are_shown_inflated() {
    // §7.2.3.1, §7.2.3.3 (stored block) and §7.2.3.4 (BFINAL set): one
    // frame each, "Hello" once inflated.
    for hex in [
        "c1 07 f2 48 cd c9 c9 07 00",
        "c1 0b 00 05 00 fa ff 48 65 6c 6c 6f 00",
        "c1 08 f3 48 cd c9 c9 07 00 00",
    ] {
        let bytes = wschat::cli::parse_hex(hex).unwrap();
        let d = deflated(&bytes, Direction::ServerToClient);
        assert!(d.is_valid(), "{hex}: {}", d.to_text());
        let f = &d.frames[0];
        assert!(f.compressed && f.header.rsv == 0b100);
        let inflated = f.inflated.as_ref().expect("inflated");
        assert_eq!(inflated.payload, b"Hello");
        assert_eq!(inflated.text.as_deref(), Some("Hello"));
        assert!(
            f.one_line().ends_with(r#"[inflated to 5 bytes: "Hello"]"#),
            "{}",
            f.one_line()
        );
        let text = d.to_text();
        for needle in [
            "RSV1: a compressed message",
            "inflated 5 bytes",
            "\"Hello\"",
        ] {
            assert!(text.contains(needle), "{needle:?} in\n{text}");
        }
        // Without the extension, the same bytes break RFC 6455 §5.2.
        let plain = from_server(&bytes);
        assert_eq!(
            plain.frames[0].violations.first(),
            Some(&ProtocolError::ReservedBits(0b100))
        );
        assert!(!plain.frames[0].compressed && plain.frames[0].inflated.is_none());
    }
    // §7.2.3.1 fragmented: RSV1 on the first frame only, inflated on the last.
    let d = deflated(
        &[
            0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
        ],
        Direction::ServerToClient,
    );
    assert!(d.is_valid(), "{}", d.to_text());
    assert!(d.frames[0].compressed && d.frames[0].inflated.is_none());
    assert!(!d.frames[1].compressed);
    let inflated = d.frames[1].inflated.as_ref().expect("inflated on the last");
    assert_eq!(inflated.text.as_deref(), Some("Hello"));
    assert_eq!(d.frames[1].message.as_ref().unwrap().payload.len(), 7);
}

#[test]
fn compressed_frames_keep_the_rules_of_rfc_7692() {
    let mut hello = Vec::new();
    wschat::ws::deflate::Compressor::new().compress(b"Hello", &mut hello);
    let with = |rsv: u8, op: OpCode, payload: &[u8], fin: bool| {
        let mut out = frame(fin, op, payload, Some(KEY));
        out[0] |= rsv << 4;
        out
    };
    // RSV1 on a continuation, and on a ping: 1002 (§6.1).
    let mut bytes = with(0b100, OpCode::Text, &hello[..2], false);
    bytes.extend(with(0b100, OpCode::Continuation, &hello[2..], true));
    let d = deflated(&bytes, Direction::ClientToServer);
    assert_eq!(
        d.frames[1].violations,
        [ProtocolError::MisplacedCompressionBit("continuation")]
    );
    let d = deflated(
        &with(0b100, OpCode::Ping, b"", true),
        Direction::ClientToServer,
    );
    assert_eq!(
        d.frames[0].violations,
        [ProtocolError::MisplacedCompressionBit("ping")]
    );
    assert_eq!(d.first_violation().unwrap().1.close_code().0, 1002);
    // Not DEFLATE data: 1007.
    let d = deflated(
        &with(0b100, OpCode::Binary, &[0xff; 8], true),
        Direction::ClientToServer,
    );
    assert_eq!(d.frames[0].violations, [ProtocolError::BadCompressedData]);
    assert_eq!(d.first_violation().unwrap().1.close_code().0, 1007);
    // Inflated invalid UTF-8 in a text message: 1007.
    let mut bad = Vec::new();
    wschat::ws::deflate::Compressor::new().compress(&[b'a', 0xff], &mut bad);
    let d = deflated(
        &with(0b100, OpCode::Text, &bad, true),
        Direction::ClientToServer,
    );
    assert_eq!(d.frames[0].violations, [ProtocolError::InvalidUtf8]);
    // A bomb: measured inflated, against the message limit (1009), in
    // one frame and in fragments.
    let mut bomb = Vec::new();
    wschat::ws::deflate::Compressor::new().compress(&vec![0u8; 4 << 20], &mut bomb);
    assert!(bomb.len() < 8 << 10);
    let d = deflated(
        &with(0b100, OpCode::Binary, &bomb, true),
        Direction::ClientToServer,
    );
    let limit = wschat::ws::Limits::default().max_message_size;
    assert_eq!(
        d.frames[0].violations,
        [ProtocolError::MessageTooBig {
            len: limit as u64 + 1,
            limit
        }]
    );
    let mut bytes = Vec::new();
    let pieces: Vec<&[u8]> = bomb.chunks(1000).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let (rsv, op) = if i == 0 {
            (0b100, OpCode::Binary)
        } else {
            (0, OpCode::Continuation)
        };
        bytes.extend(with(rsv, op, piece, i + 1 == pieces.len()));
    }
    let d = deflated(&bytes, Direction::ClientToServer);
    let (_, v) = d.first_violation().expect("stopped");
    assert_eq!(v.close_code().0, 1009);
}

#[test]
fn json_shows_compression_only_when_there_is_some() {
    let d = deflated(
        &[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
        Direction::ServerToClient,
    );
    let json = d.frames[0].to_json();
    let keys = common::top_level_keys(&json);
    let at = |k: &str| {
        keys.iter()
            .position(|x| x == k)
            .unwrap_or_else(|| panic!("{k} in {json}"))
    };
    assert!(
        at("rsv3") + 1 == at("compressed") && at("message") + 1 == at("inflated"),
        "{json}"
    );
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["compressed"], true);
    assert_eq!(value["inflated"]["len"], 5);
    assert_eq!(value["inflated"]["payload_hex"], "48656c6c6f");
    assert_eq!(value["inflated"]["text"], "Hello");
    // An uncompressed frame's JSON is what it always was, deflate or not.
    let plain = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(
        deflated(&plain, Direction::ServerToClient).to_json(),
        from_server(&plain).to_json()
    );
    assert_eq!(
        common::top_level_keys(&from_server(&plain).frames[0].to_json()),
        FRAME_FIELDS
    );
}

#[test]
fn cli_inflates_with_deflate() {
    let hello = "c107f248cdc9c90700";
    let (code, out, err) = run(&["dissect", "--server", "--deflate", hello], b"");
    assert_eq!(code, 0, "{out}{err}");
    for needle in [
        "RSV1: a compressed message",
        "inflated 5 bytes",
        "\"Hello\"",
        "every rule kept",
    ] {
        assert!(out.contains(needle), "{needle:?} in\n{out}");
    }
    let (code, out, _) = run(&["dissect", "--server", "--deflate", "--json", hello], b"");
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["frames"][0]["inflated"]["text"], "Hello");
    // Without --deflate, RSV1 is a broken rule.
    let (code, out, _) = run(&["dissect", "--server", hello], b"");
    assert_eq!(code, 1);
    assert!(out.contains("1002"), "{out}");
}

#[test]
fn inspect_shows_a_compressed_frame_and_its_inflated_text() {
    let server = common::start_default();
    let options = wschat::client::Options {
        deflate: true,
        ..Default::default()
    };
    let (mut ws, _) =
        wschat::client::connect_with(&common::ws_url(&server, "/inspect?deflate=on"), &options)
            .unwrap();
    assert!(
        ws.connection().deflate().is_some(),
        "/inspect?deflate=on negotiates deflate"
    );
    // Plain /inspect declines it: the bytes shown are the bytes typed.
    let (plain, _) =
        wschat::client::connect_with(&common::ws_url(&server, "/inspect"), &options).unwrap();
    assert!(plain.connection().deflate().is_none());
    let text = "A message long enough to be compressed, compressed enough to be worth it, it is.";
    ws.send(wschat::ws::Message::Text(text.into())).unwrap();
    let reply = match ws.read_message().unwrap() {
        wschat::ws::Message::Text(t) => t,
        other => panic!("{other:?}"),
    };
    let value: serde_json::Value = serde_json::from_str(&reply).unwrap();
    let frame = &value["frame"];
    assert_eq!(frame["rsv1"], true, "{reply}");
    assert_eq!(frame["compressed"], true);
    assert_eq!(frame["valid"], true);
    assert_eq!(frame["inflated"]["text"], text);
    assert!(frame["payload_len"].as_u64().unwrap() < text.len() as u64);
}
