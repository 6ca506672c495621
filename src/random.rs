//! Random numbers for nonces and tokens, from the standard library alone.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static RANDOM: (RandomState, Cell<u64>) = (RandomState::new(), Cell::new(0));
}

/// 64 unpredictable bits.
///
/// The standard library seeds each `RandomState` with keys from the
/// operating system's random source; hashing a counter with SipHash under
/// those secret keys gives a stream an observer cannot predict, which is
/// what handshake nonces (RFC 6455 §4.1) and tokens need. No extra crate is
/// needed for it. (The codec draws its masking keys the same way, on its
/// own: `ws::mask::random_key`.)
pub fn random_u64() -> u64 {
    RANDOM.with(|(keys, counter)| {
        let n = counter.get().wrapping_add(1);
        counter.set(n);
        let mut hasher = keys.build_hasher();
        hasher.write_u64(n);
        hasher.finish()
    })
}

/// 16 random bytes, for a `Sec-WebSocket-Key` or a token.
pub fn random_16() -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&random_u64().to_ne_bytes());
    out[8..].copy_from_slice(&random_u64().to_ne_bytes());
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_values_differ() {
        let a: Vec<u64> = (0..100).map(|_| super::random_u64()).collect();
        let mut b = a.clone();
        b.sort();
        b.dedup();
        assert_eq!(b.len(), a.len());
    }
}
