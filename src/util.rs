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

/// Give back to the kernel the pages of this thread's stack that lie below
/// the current frame (with a safety margin): they held frames that have
/// returned, such as the handshake's, and a parked thread does not need
/// them. Stack pages a thread touched otherwise stay resident for its whole
/// life, which on a server with thousands of idle connections is most of
/// their memory. The next call that goes that deep simply gets fresh zeroed
/// pages. Does nothing where the stack bounds cannot be read.
#[cfg(target_os = "linux")]
pub fn trim_stack() {
    const PAGE: usize = 4096;
    // Stay well clear of the frames that are live while madvise runs.
    const MARGIN: usize = 2 * 1024;
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread, which
    // we destroy after reading the stack bounds. The range passed to madvise
    // lies inside this thread's own stack mapping, strictly below every live
    // frame (the current one minus MARGIN), so no live data is discarded.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return;
        }
        let mut base: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let mut guard: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut base, &mut size) == 0
            && libc::pthread_attr_getguardsize(&attr, &mut guard) == 0;
        libc::pthread_attr_destroy(&mut attr);
        if !ok {
            return;
        }
        let low = (base as usize + guard).div_ceil(PAGE) * PAGE;
        let high = (sp.saturating_sub(MARGIN)) / PAGE * PAGE;
        if high > low && sp < base as usize + size {
            libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
        }
    }
}

/// Elsewhere, nothing to do.
#[cfg(not(target_os = "linux"))]
pub fn trim_stack() {}

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
