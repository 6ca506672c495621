//! Fuzz target `dissect`: the dissector (`wschat dissect`, `/inspect`)
//! and the decoder apply the same rules to the same untrusted bytes.
//!
//! Input layout: byte 0 chooses the direction (bit 0: client → server, so
//! the receiver is a server, or server → client), the [`LIMITS`]
//! (bits 1-2) and permessage-deflate (bit 3: RSV1 marks compressed
//! messages, RFC 7692 §6); byte 1 is the chunk size (0 means one byte at a time); the
//! rest is the byte stream.
//!
//! What it proves: fed the same bytes in the same chunks, the
//! [`Decoder`] in the receiver's role fails with exactly the error that
//! the [`Dissector`] reports as the stream's first violation (up to and
//! including the first Close frame, after which a receiver reads nothing,
//! §5.5.1); and when the decoder does not fail, the dissector finds no
//! violation there either. Neither panics or hangs.
//!
//! With permessage-deflate, the decoder inflates and checks UTF-8 a
//! network read at a time and the dissector a frame at a time, so when
//! inflating a frame both breaks UTF-8 and fails (corrupt data, or past the
//! limit) the two may name different ones of those three rules: then both
//! must fail, on one of them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::dissect::{Direction, Dissector, FrameReport, Options};
use wschat::ws::frame::OpCode;
use wschat::ws::{Decoder, Message, ProtocolError};

#[path = "shared/limits.rs"]
mod limits;
use limits::LIMITS;

fuzz_target!(|data: &[u8]| {
    let [config, chunk, stream @ ..] = data else {
        return;
    };
    let direction = if config & 1 == 0 {
        Direction::ClientToServer
    } else {
        Direction::ServerToClient
    };
    let limits = LIMITS[usize::from((config >> 1) & 3)];
    let chunk = usize::from(*chunk).max(1);
    let deflate = config & 0b1000 != 0;

    // The decoder, as the receiver.
    let mut decoder = Decoder::new(direction.receiver(), limits);
    decoder.set_deflate(deflate);
    let mut decoder_error: Option<ProtocolError> = None;
    'feed: for piece in stream.chunks(chunk) {
        let mut input = piece;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(Message::Close(_))) => break 'feed,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    decoder_error = Some(e);
                    break 'feed;
                }
            }
            if input.is_empty() {
                break;
            }
        }
    }

    // The dissector, on the same chunks.
    let mut dissector = Dissector::new(Options {
        direction,
        limits,
        deflate,
    });
    let mut reports: Vec<FrameReport> = Vec::new();
    for piece in stream.chunks(chunk) {
        reports.extend(dissector.feed(piece));
    }
    let (last, _) = dissector.finish();
    reports.extend(last);
    // What a receiver reads: up to and including the first Close.
    let read = match reports
        .iter()
        .position(|r| r.header.opcode == OpCode::Close)
    {
        Some(close) => &reports[..=close],
        None => &reports[..],
    };
    let first = read.iter().find_map(|r| r.violations.first().cloned());
    let inflating = |e: &Option<ProtocolError>| {
        matches!(
            e,
            Some(
                ProtocolError::InvalidUtf8
                    | ProtocolError::BadCompressedData
                    | ProtocolError::MessageTooBig { .. }
            )
        )
    };
    if deflate && inflating(&first) && inflating(&decoder_error) {
        return;
    }
    assert_eq!(
        first, decoder_error,
        "the dissector's first violation is not the decoder's error"
    );
});
