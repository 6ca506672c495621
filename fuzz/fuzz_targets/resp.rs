//! `resp`: arbitrary bytes as Redis replies (src/cluster/resp.rs).
//!
//! The first byte picks how the rest is cut into chunks (1 to 256 bytes);
//! the decoder is fed chunk by chunk and drained after each. It never
//! panics, stops at its first error, holds no more than `MAX_REPLY` bytes
//! plus one chunk, and every value it yields encodes back to bytes that
//! decode to the same value. Pushes and published payloads are read from
//! the same values, and must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wschat::cluster::Published;
use wschat::cluster::resp::{Decoder, MAX_REPLY, Push, Value, encode_value};

fn check_round_trip(value: &Value) {
    let mut wire = Vec::new();
    encode_value(&mut wire, value);
    let mut again = Decoder::new();
    again.feed(&wire).expect("a re-encoded value fits");
    assert_eq!(
        again.decode().expect("a re-encoded value decodes").as_ref(),
        Some(value)
    );
    assert_eq!(again.buffered(), 0);
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let chunk = cut as usize + 1;
    let mut decoder = Decoder::new();
    'feed: for piece in rest.chunks(chunk) {
        if decoder.feed(piece).is_err() {
            break;
        }
        assert!(decoder.buffered() <= MAX_REPLY + chunk);
        loop {
            match decoder.decode() {
                Ok(Some(value)) => {
                    check_round_trip(&value);
                    if let Some(Push::Message { payload, .. }) = Push::parse(&value) {
                        let _ = Published::parse(&payload);
                    }
                    if let Some(bytes) = value.as_bytes() {
                        let _ = Published::parse(bytes);
                    }
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
});
