//! Fuzz target `frame`: arbitrary bytes from a peer through the streaming
//! [`Decoder`] (RFC 6455 §5.2-§5.6), for a decoder in each role, fed in one
//! piece and in chunks whose sizes the input chooses.
//!
//! Input layout:
//!
//! * byte 0, the configuration: bits 0-1 choose the [`Limits`] (see
//!   [`LIMITS`]), bits 2-4 give `n`, the number of chunk-size bytes (0-7);
//! * bytes 1..=n: chunk sizes, used in a cycle (a 0 is a call with no
//!   bytes); with `n = 0` the chunked run feeds one byte at a time;
//! * the rest: the byte stream the peer sent.
//!
//! What it proves, for every input and both roles:
//!
//! 1. no panic and no hang: each `decode` call returns a message, returns an
//!    error, or consumes all of its input (the contract of
//!    [`Decoder::decode`]);
//! 2. memory stays bounded: after every call, `buffered_bytes()` is at most
//!    the message limit plus 125 bytes of control payload (§5.5);
//! 3. every error fails the connection with 1002, 1007 or 1009 (§7.4.1);
//! 4. after an error or a Close, nothing more comes out and further input is
//!    discarded (§5.5.1, §7.1.7);
//! 5. every message keeps the rules: data within the message limit, ping and
//!    pong payloads of at most 125 bytes, close codes allowed on the wire
//!    with reasons of at most 123 bytes (§5.5, §7.4);
//! 6. the split does not matter: one piece and chunks give the same results;
//! 7. [`Frame::parse`] never panics on the same bytes, and a frame it parses
//!    encodes back to itself (byte for byte when the length was minimal);
//! 8. [`Decoder::decode_in_place`], which lends whole frames from the input
//!    instead of copying them, yields the same messages and errors as
//!    `decode`, in one piece and in chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::ws::frame::{Frame, FrameHeader, MAX_CONTROL_PAYLOAD};
use wschat::ws::{Decoder, Limits, Message, ProtocolError, Role};

#[path = "shared/limits.rs"]
mod limits;
use limits::LIMITS;

/// What one `decode` call can yield, apart from "need more bytes".
type Outcome = Result<Message, ProtocolError>;

fuzz_target!(|data: &[u8]| {
    let Some((&config, rest)) = data.split_first() else {
        return;
    };
    let limits = LIMITS[usize::from(config & 0b11)];
    let n = usize::from((config >> 2) & 0b111).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let sizes: Vec<usize> = if sizes.iter().all(|&s| s == 0) {
        vec![1]
    } else {
        sizes.iter().map(|&s| usize::from(s)).collect()
    };

    for role in [Role::Server, Role::Client] {
        let whole = run(role, limits, stream, &mut std::iter::once(stream.len()));
        let chunked = run(role, limits, stream, &mut sizes.iter().copied().cycle());
        assert_eq!(
            whole, chunked,
            "{role:?}: one piece and chunks {sizes:?} disagree"
        );
        let in_place = run_in_place(role, limits, stream, &mut std::iter::once(stream.len()));
        assert_eq!(whole, in_place, "{role:?}: decode_in_place disagrees");
        let in_place = run_in_place(role, limits, stream, &mut sizes.iter().copied().cycle());
        assert_eq!(
            whole, in_place,
            "{role:?}: decode_in_place in chunks {sizes:?} disagrees"
        );
    }

    check_frame_parse(stream);
});

/// Feed `stream` to a fresh decoder in `role`, cut into pieces whose sizes
/// come from `chunks`, checking the invariants after every call; return
/// everything it yielded.
fn run(
    role: Role,
    limits: Limits,
    stream: &[u8],
    chunks: &mut dyn Iterator<Item = usize>,
) -> Vec<Outcome> {
    let mut decoder = Decoder::new(role, limits);
    let mut out = Vec::new();
    let mut stopped = false;
    for chunk in pieces(stream, chunks) {
        feed(&mut decoder, limits, chunk, &mut out, &mut stopped);
    }
    out
}

/// `stream` cut into pieces whose sizes come from `sizes` (the last one
/// may be shorter); an empty stream is one empty piece.
fn pieces<'a>(
    mut rest: &'a [u8],
    sizes: &'a mut dyn Iterator<Item = usize>,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut first = true;
    std::iter::from_fn(move || {
        if rest.is_empty() && !first {
            return None;
        }
        first = false;
        let size = sizes.next().expect("endless chunk sizes").min(rest.len());
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// As [`run`], through `decode_in_place` on a mutable copy of each chunk.
fn run_in_place(
    role: Role,
    limits: Limits,
    stream: &[u8],
    chunks: &mut dyn Iterator<Item = usize>,
) -> Vec<Outcome> {
    let mut decoder = Decoder::new(role, limits);
    let mut out = Vec::new();
    for chunk in pieces(stream, chunks) {
        let mut buf = chunk.to_vec();
        let mut at = 0;
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(
                calls <= chunk.len() + 2,
                "decode_in_place makes no progress"
            );
            match decoder.decode_in_place(&mut buf[at..]) {
                Ok((used, decoded)) => {
                    assert!(at + used <= chunk.len(), "consumed past the input");
                    at += used;
                    match decoded {
                        Some(decoded) => out.push(Ok(decoded.into_message())),
                        None => {
                            assert_eq!(at, chunk.len(), "None left bytes unread");
                            break;
                        }
                    }
                    if at == chunk.len() {
                        break;
                    }
                }
                Err(error) => {
                    assert!(decoder.is_done(), "an error must stop the decoder");
                    out.push(Err(error));
                    break;
                }
            }
        }
    }
    out
}

/// Hand one chunk to the decoder until it is used up.
fn feed(
    decoder: &mut Decoder,
    limits: Limits,
    chunk: &[u8],
    out: &mut Vec<Outcome>,
    stopped: &mut bool,
) {
    let mut input = chunk;
    // Every call that yields a message consumes at least one byte, so more
    // calls than bytes means the decoder is going round in circles.
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls <= chunk.len() + 2, "the decoder makes no progress");
        let result = decoder.decode(&mut input);
        assert!(
            decoder.buffered_bytes() <= limits.max_message_size + MAX_CONTROL_PAYLOAD,
            "{} bytes buffered with {limits:?}",
            decoder.buffered_bytes()
        );
        match result {
            Ok(None) => {
                assert!(input.is_empty(), "Ok(None) left {} bytes", input.len());
                return;
            }
            Ok(Some(message)) => {
                assert!(!*stopped, "{message:?} came out after an error or a Close");
                check_message(&message, limits);
                if matches!(message, Message::Close(_)) {
                    assert!(decoder.is_done(), "a Close must stop the decoder");
                    *stopped = true;
                }
                out.push(Ok(message));
                if input.is_empty() {
                    return;
                }
            }
            Err(error) => {
                assert!(!*stopped, "{error:?} came out after an error or a Close");
                let code = error.close_code().0;
                assert!(
                    matches!(code, 1002 | 1007 | 1009),
                    "{error:?} fails with close code {code}"
                );
                assert!(decoder.is_done(), "an error must stop the decoder");
                assert!(input.is_empty(), "an error must discard the input");
                assert_eq!(decoder.buffered_bytes(), 0, "an error must free buffers");
                *stopped = true;
                out.push(Err(error));
                return;
            }
        }
    }
}

/// The rules every message that comes out of the decoder keeps.
fn check_message(message: &Message, limits: Limits) {
    match message {
        Message::Text(text) => assert!(text.len() <= limits.max_message_size),
        Message::Binary(data) => assert!(data.len() <= limits.max_message_size),
        Message::Ping(data) | Message::Pong(data) => {
            assert!(data.len() <= MAX_CONTROL_PAYLOAD)
        }
        Message::Close(None) => {}
        Message::Close(Some(close)) => {
            assert!(close.code.is_allowed_on_wire(), "{close:?}");
            assert!(2 + close.reason.len() <= MAX_CONTROL_PAYLOAD, "{close:?}");
        }
    }
}

/// Split `stream` into whole frames with [`Frame::parse`], which applies no
/// rule, and check that each one encodes back to itself.
fn check_frame_parse(mut stream: &[u8]) {
    while let Some((frame, used)) = Frame::parse(stream) {
        let (header, header_len) = FrameHeader::parse(stream).expect("a frame has a header");
        assert_eq!(header, frame.header);
        assert_eq!(used, header_len + frame.payload.len());
        assert_eq!(frame.payload.len() as u64, header.payload_len);

        let mut again = Vec::new();
        frame.encode(&mut again);
        assert_eq!(again.len(), header.encoded_len() + frame.payload.len());
        if header.encoded_len() == header_len {
            // The length was written in its shortest form (§5.2): the
            // encoding is the same bytes.
            assert_eq!(again, &stream[..used]);
        }
        let (reparsed, reused) = Frame::parse(&again).expect("an encoded frame parses");
        assert_eq!((reparsed, reused), (frame, again.len()));
        stream = &stream[used..];
    }
}
