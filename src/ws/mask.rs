//! Payload masking, RFC 6455 §5.3.
//!
//! Every frame a client sends is masked: each payload byte `i` is XORed with
//! byte `i % 4` of a 4-byte masking key chosen at random for that frame.
//! Masking is its own inverse, so the same function masks and unmasks.
//!
//! Why it exists: a client's bytes are chosen by script on a web page. Without
//! masking, a page could craft bytes that a transparent proxy in the middle
//! misreads as an HTTP request and response, and poison that proxy's cache.
//! With an unpredictable key per frame, the script cannot control what goes
//! on the wire.
//!
//! The work is done eight bytes at a time: the 4-byte key is repeated into a
//! 64-bit word (rotated to the current offset), and the payload is XORed with
//! that word, which the compiler turns into wide SIMD instructions. Only the
//! last 0-7 bytes go byte by byte.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static KEYS: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
}

/// A fresh masking key for a client frame (RFC 6455 §5.3): 32 bits an
/// observer cannot predict.
///
/// The standard library seeds each `RandomState` with keys from the
/// operating system's random source; hashing a counter with SipHash under
/// those secret keys gives a stream an observer cannot predict, which is
/// what masking keys need. No extra crate is needed for it, and nothing
/// outside the codec.
pub fn random_key() -> [u8; 4] {
    let bits = KEYS.with(|(keys, counter)| {
        let n = counter.get().wrapping_add(1);
        counter.set(n);
        let mut hasher = keys.build_hasher();
        hasher.write_u64(n);
        hasher.finish()
    });
    (bits as u32).to_ne_bytes()
}

/// XOR `buf` in place with `key`, starting at position `offset` of the key
/// stream (the number of payload bytes of this frame already processed).
///
/// Returns the offset for the next call, so a payload that arrives in pieces
/// can be unmasked piece by piece.
///
/// ```
/// use wschat::ws::mask::apply_mask;
/// // RFC 6455 §5.7: "Hello" masked with key 37 fa 21 3d.
/// let mut data = *b"Hello";
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(&data, b"Hello");
/// ```
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) -> usize {
    let phase = offset % 4;
    let word = key_word(key, phase);
    let mut words = buf.chunks_exact_mut(8);
    for chunk in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    // A whole word is two whole key cycles, so the phase is unchanged here;
    // the last 0-7 bytes go one at a time.
    let mut phase = phase;
    for b in words.into_remainder() {
        *b ^= key[phase];
        phase = (phase + 1) % 4;
    }
    phase
}

/// Append `src` to `dst` with the mask applied, in one pass (a copy and an
/// unmask fused). Returns the next key offset, as [`apply_mask`] does.
///
/// This is what the decoder uses to move payload bytes from the read buffer
/// into the message being assembled: each byte is read once and written
/// once, eight at a time.
///
/// ```
/// use wschat::ws::mask::extend_masked;
/// let mut out = b"ab".to_vec();
/// let next = extend_masked(&mut out, &[0x7f, 0x9f, 0x4d, 0x51, 0x58], [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(out, b"abHello");
/// assert_eq!(next, 1);
/// ```
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) -> usize {
    let phase = offset % 4;
    let word = key_word(key, phase);
    dst.reserve(src.len());
    let start = dst.len();
    let spare = &mut dst.spare_capacity_mut()[..src.len()];
    let mut out_words = spare.chunks_exact_mut(8);
    let mut in_words = src.chunks_exact(8);
    for (out, inp) in (&mut out_words).zip(&mut in_words) {
        let mut w = [0u8; 8];
        w.copy_from_slice(inp);
        let masked = (u64::from_ne_bytes(w) ^ word).to_ne_bytes();
        for (o, b) in out.iter_mut().zip(masked) {
            o.write(b);
        }
    }
    // A whole word is two whole key cycles: the phase is unchanged here.
    let mut phase = phase;
    for (o, &b) in out_words
        .into_remainder()
        .iter_mut()
        .zip(in_words.remainder())
    {
        o.write(b ^ key[phase]);
        phase = (phase + 1) % 4;
    }
    // SAFETY: the loops above wrote all src.len() bytes after `start`
    // (the chunked part and its remainder cover the slice exactly), within
    // the capacity reserved above.
    unsafe { dst.set_len(start + src.len()) };
    phase
}

/// The key repeated to 64 bits in memory order, starting at `phase`.
fn key_word(key: [u8; 4], phase: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = key[(phase + i) % 4];
    }
    u64::from_ne_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_the_byte_by_byte_definition_at_every_length_offset_and_alignment() {
        let key = [0x12, 0x34, 0x56, 0x78];
        let backing: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for start in 0..9 {
            for len in 0..70 {
                for offset in 0..5 {
                    let mut fast = backing[start..start + len].to_vec();
                    let mut slow = fast.clone();
                    // Unaligned slices of the same buffer exercise head/tail.
                    let mut shifted = backing.clone();
                    let next = apply_mask(&mut shifted[start..start + len], key, offset);
                    apply_mask(&mut fast, key, offset);
                    naive(&mut slow, key, offset);
                    assert_eq!(fast, slow);
                    assert_eq!(&shifted[start..start + len], &slow[..]);
                    assert_eq!(next, (offset + len) % 4);
                }
            }
        }
    }

    #[test]
    fn piecewise_masking_equals_masking_at_once() {
        let key = [9, 8, 7, 6];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        let mut out = Vec::new();
        let mut off = 0;
        for piece in data.chunks(7) {
            off = extend_masked(&mut out, piece, key, off);
        }
        assert_eq!(out, whole);
    }
}
