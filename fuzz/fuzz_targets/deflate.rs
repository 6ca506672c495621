//! Fuzz target `deflate`: permessage-deflate (RFC 7692) from a peer: the
//! `Sec-WebSocket-Extensions` offers, compressed frames through the
//! streaming [`Decoder`], and the [`Inflater`] against a reference inflater.
//!
//! Input layout:
//!
//! * byte 0, the configuration: bits 0-1 choose the [`Limits`] (see
//!   [`LIMITS`]), bits 2-4 give `n`, the number of chunk-size bytes (0-7);
//! * bytes 1..=n: chunk sizes, used in a cycle (a 0 is a call with no
//!   bytes); with `n = 0`, or only zeros, the chunked run feeds one byte
//!   at a time;
//! * the rest, the data, read three ways: as header values (split at
//!   newlines), as the byte stream of a client that negotiated deflate, and
//!   as one compressed payload.
//!
//! What it proves:
//!
//! 1. no panic and no hang in [`negotiate`], [`Decoder::decode`] and
//!    [`Inflater`], whatever the bytes;
//! 2. an accepted offer has a window of 8 to 15 bits, and wschat's own
//!    answer, read back as an offer, is accepted with the same window;
//! 3. the decoder's memory stays bounded by the message limit (plus one
//!    byte the inflater may write past it to see it is over, and 125 bytes
//!    of control payload), and every error is 1002, 1007 or 1009;
//! 4. the split does not matter: one piece and chunks give the same results
//!    (but a compressed message broken two ways, too big, not UTF-8 or
//!    corrupt, may be found broken either way first);
//! 5. differential: what [`Inflater`] makes of a payload fed in chunks is
//!    a prefix of what miniz_oxide's one-shot inflater makes of it whole
//!    (closed with an empty final block), the same when the payload ends
//!    as a sync flush does, and a message the inflater calls too big is
//!    over the limit for the reference too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miniz_oxide::inflate::decompress_to_vec_with_limit;
use wschat::ws::deflate::{InflateError, Inflater, TRAILER, accept_offer, negotiate, parse_offers};
use wschat::ws::{Decoder, Limits, Message, ProtocolError, Role};

#[path = "shared/limits.rs"]
mod limits;
use limits::LIMITS;

/// Every result of feeding `data` to a deflate decoder in `chunks`.
fn decode(data: &[u8], chunks: &[usize], limits: Limits) -> Vec<Result<Message, ProtocolError>> {
    let mut decoder = Decoder::new(Role::Server, limits);
    decoder.set_deflate(true);
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let size = if chunks.is_empty() {
            1
        } else {
            chunks[i % chunks.len()]
        };
        i += 1;
        let (piece, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        let mut input = piece;
        loop {
            let before = input.len();
            match decoder.decode(&mut input) {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => {
                    assert!(input.is_empty(), "Ok(None) left input");
                    break;
                }
                Err(e) => {
                    assert!(matches!(e.close_code().0, 1002 | 1007 | 1009), "{e}");
                    out.push(Err(e));
                    return out;
                }
            }
            assert!(input.len() < before || input.is_empty(), "no progress");
            if input.is_empty() {
                break;
            }
        }
        let bound = limits.max_message_size + 1 + 125 + 64 * 1024;
        assert!(
            decoder.buffered_bytes() <= bound,
            "{}",
            decoder.buffered_bytes()
        );
        if decoder.is_done() {
            break;
        }
    }
    out
}

fuzz_target!(|input: &[u8]| {
    let Some((&config, rest)) = input.split_first() else {
        return;
    };
    let limits = LIMITS[usize::from(config & 0x03)];
    let n = usize::from((config >> 2) & 0x07).min(rest.len());
    let mut chunks: Vec<usize> = rest[..n].iter().map(|&b| usize::from(b)).collect();
    if chunks.iter().all(|&c| c == 0) {
        chunks.clear(); // one byte at a time, rather than no progress
    }
    let data = &rest[n..];

    // 1, 2: the offers.
    let text = String::from_utf8_lossy(data);
    if let Some(agreement) = negotiate(text.split('\n')) {
        assert!((8..=15).contains(&agreement.server_max_window_bits));
        let answer = agreement.response();
        let offers = parse_offers([answer.as_str()]).expect("the answer parses");
        assert_eq!(offers.len(), 1);
        assert_eq!(accept_offer(&offers[0]), Ok(agreement));
    }

    // 3, 4: a client's byte stream with deflate negotiated.
    let whole = decode(data, &[usize::MAX], limits);
    let chunked = decode(data, &chunks, limits);
    // One exception: a compressed message broken in two ways (too big,
    // not UTF-8, and corrupt further on) may be found broken either way
    // first, depending on how much input the inflater had at hand (it
    // inflates up to 32 KiB ahead into its window).
    let either = |e: &Result<Message, ProtocolError>| {
        matches!(
            e,
            Err(ProtocolError::MessageTooBig { .. }
                | ProtocolError::BadCompressedData
                | ProtocolError::InvalidUtf8)
        )
    };
    match (whole.split_last(), chunked.split_last()) {
        (Some((a, rest_a)), Some((b, rest_b))) if either(a) && either(b) => {
            assert_eq!(rest_a, rest_b)
        }
        _ => assert_eq!(whole, chunked),
    }
    for message in whole.iter().flatten() {
        if let Message::Text(t) = message {
            assert!(t.len() <= limits.max_message_size);
        }
        if let Message::Binary(b) = message {
            assert!(b.len() <= limits.max_message_size);
        }
    }

    // 5: the inflater against miniz_oxide's one-shot inflater.
    let limit = limits.max_message_size;
    let mut inflater = Inflater::new();
    let mut ours = Vec::new();
    let mut result = Ok(());
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() && result.is_ok() {
        let size = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(1)
            .max(1);
        i += 1;
        let (piece, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        result = inflater.feed(piece, &mut ours, limit);
        // One byte past the limit is how the inflater sees a message is
        // over it; it then says so.
        assert!(ours.len() <= limit + 1, "inflated past the limit");
        assert!(
            ours.len() <= limit || matches!(result, Err(InflateError::TooBig { .. })),
            "over the limit without saying so"
        );
    }
    if result.is_ok() {
        result = inflater.finish(&mut ours, limit);
    }
    // The reference gets the payload, the trailer, and an empty final
    // block (03 00), which makes a whole stream of a message that ended as
    // a sync flush ends. Decoding is deterministic, so whatever the
    // inflater gave is a prefix of what the reference gives (equal when
    // the message ended cleanly), and a message it found too big is too
    // big for the reference as well.
    let mut whole = data.to_vec();
    whole.extend_from_slice(&TRAILER);
    whole.extend_from_slice(&[0x03, 0x00]);
    if let Ok(reference) = decompress_to_vec_with_limit(&whole, 4 * limit + 1024) {
        match &result {
            Ok(()) => assert!(reference.starts_with(&ours), "inflated differently"),
            Err(InflateError::TooBig { .. }) => {
                assert!(reference.len() > limit);
                assert!(reference.starts_with(&ours[..limit]));
            }
            Err(InflateError::Corrupt) => {}
        }
    }
    if let Err(InflateError::TooBig { len }) = result {
        assert!(len as usize > limit);
    }
});
