//! Small helpers outside the protocol: random numbers and time stamps.

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
/// what masking keys (RFC 6455 §5.3) and handshake nonces (§4.1) need. No
/// extra crate is needed for it.
pub fn random_u64() -> u64 {
    RANDOM.with(|(keys, counter)| {
        let n = counter.get().wrapping_add(1);
        counter.set(n);
        let mut hasher = keys.build_hasher();
        hasher.write_u64(n);
        hasher.finish()
    })
}

/// A fresh masking key for a client frame (RFC 6455 §5.3).
pub fn random_mask() -> [u8; 4] {
    (random_u64() as u32).to_ne_bytes()
}

/// 16 random bytes, for a `Sec-WebSocket-Key` or a token.
pub fn random_16() -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&random_u64().to_ne_bytes());
    out[8..].copy_from_slice(&random_u64().to_ne_bytes());
    out
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
