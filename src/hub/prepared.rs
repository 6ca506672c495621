//! A frame encoded once for many recipients, with its compressed form made
//! at most once (RFC 7692 permessage-deflate).
//!
//! A server frame is unmasked, so the same bytes serve every member of a
//! room. With permessage-deflate negotiated with `server_no_context_takeover`
//! (see [`crate::ws::deflate`]), every compressed message is its own DEFLATE
//! stream, so the same *compressed* bytes serve every member that
//! negotiated it too. A [`PreparedFrame`] frame carries the plain bytes and, made
//! lazily by the first recipient that wants it, the compressed bytes; later
//! recipients share them. A room of plain clients never pays for
//! compression.

use std::sync::{Arc, Mutex, OnceLock};

use super::peer::Bytes;
use crate::ws::deflate::{Agreement, Compressor, Encoding, RSV1, encode_compressed_frame};
use crate::ws::{FrameHeader, OpCode};

/// What one connection negotiated: its window, and the size below which
/// messages go to it uncompressed (`--deflate-min-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerDeflate {
    /// The agreement of the handshake.
    pub agreement: Agreement,
    /// Payloads shorter than this are sent plain.
    pub min_size: usize,
}

/// A server frame encoded once, and its compressed form once needed.
/// Cloning it is a reference count.
#[derive(Debug, Clone)]
pub struct PreparedFrame(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    plain: Bytes,
    /// The payload's length and where it starts in `plain`, when the frame
    /// is a whole unmasked text or binary message (the only kind that may
    /// be compressed, RFC 7692 §6.1).
    payload: Option<(usize, usize)>,
    /// The compressed frame, and whether it is smaller than the plain one.
    deflated: OnceLock<(Bytes, bool)>,
}

/// Compressors kept for reuse. Each holds a few hundred KiB of tables,
/// reset for every message (no context takeover), so any thread can use any
/// of them: the hub for broadcasts, `/echo` connections for their echoes.
static POOL: Mutex<Vec<Compressor>> = Mutex::new(Vec::new());

/// Most idle compressors kept in the pool; more are made while more
/// threads compress at once, and dropped after.
pub const POOL_MAX: usize = 4;

/// Stack of the short-lived thread that compresses for a connection
/// thread: miniz_oxide builds and resets its 85 KiB output buffer through
/// the stack (in debug builds at least), more than the 128 KiB of a
/// connection thread can spare.
const COMPRESS_STACK: usize = 1024 * 1024;

/// Compress one whole message on this thread with a pooled compressor (see
/// [`Compressor::compress`]). Only for a thread with a full-sized stack:
/// the hub.
pub fn compress_here(payload: &[u8], out: &mut Vec<u8>) -> bool {
    let pooled = POOL.lock().unwrap_or_else(|e| e.into_inner()).pop();
    let mut compressor = pooled.unwrap_or_default();
    let done = compressor.compress(payload, out);
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < POOL_MAX {
        pool.push(compressor);
    }
    done
}

/// Compress one whole message from a connection thread (`/echo`): on a
/// short-lived helper thread with room on its stack, which costs a thread
/// start per message (tens of µs; /echo is for conformance suites, the
/// chat's messages are compressed by the hub). `false` if no thread could
/// be started: the message then goes plain.
pub fn compress(payload: &[u8], out: &mut Vec<u8>) -> bool {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("wschat-deflate".into())
            .stack_size(COMPRESS_STACK)
            .spawn_scoped(scope, || compress_here(payload, out))
            .ok()
            .and_then(|helper| helper.join().ok())
            .unwrap_or(false)
    })
}

impl PreparedFrame {
    /// Wrap encoded frame bytes.
    pub fn new(plain: Bytes) -> PreparedFrame {
        let payload = FrameHeader::parse(&plain).and_then(|(header, at)| {
            let whole = header.fin
                && header.rsv == 0
                && header.mask.is_none()
                && matches!(header.opcode, OpCode::Text | OpCode::Binary)
                && header.payload_len == (plain.len() - at) as u64;
            whole.then_some((plain.len() - at, at))
        });
        PreparedFrame(Arc::new(Inner {
            plain,
            payload,
            deflated: OnceLock::new(),
        }))
    }

    /// The plain frame.
    pub fn plain(&self) -> &Bytes {
        &self.0.plain
    }

    /// The bytes for a recipient that negotiated `deflate` (or none), as
    /// [`Agreement::encoding`] says: the compressed frame when the payload
    /// is at least its minimum size, its window allows it, and compressing
    /// made it smaller; else the plain frame. The compressed frame is made
    /// by the first call that wants it. (A peer with a small window gets a
    /// long message plain even with a minimum size of 0: only `/echo`
    /// sends stored blocks.)
    pub fn for_peer(&self, deflate: Option<&PeerDeflate>) -> &Bytes {
        let (Some(d), Some((len, _))) = (deflate, self.0.payload) else {
            return &self.0.plain;
        };
        match d.agreement.encoding(len, d.min_size) {
            Encoding::Deflate { if_smaller } => match self.deflated() {
                Some((frame, smaller)) if smaller || !if_smaller => frame,
                _ => &self.0.plain,
            },
            Encoding::Plain | Encoding::Stored => &self.0.plain,
        }
    }

    /// The compressed frame and whether it is smaller than the plain one,
    /// made on first use; `None` for a frame that may not be compressed.
    pub fn deflated(&self) -> Option<(&Bytes, bool)> {
        let (len, at) = self.0.payload?;
        let (frame, smaller) = self.0.deflated.get_or_init(|| {
            let payload = &self.0.plain[at..];
            let mut packed = Vec::new();
            if !compress_here(payload, &mut packed) {
                // Should not happen; the plain frame is always right.
                return (self.0.plain.clone(), false);
            }
            let opcode = OpCode::from_u8(self.0.plain[0]);
            let mut frame = Vec::with_capacity(packed.len() + 10);
            encode_compressed_frame(&mut frame, opcode, &packed, None);
            debug_assert_eq!(frame[0] & (RSV1 << 4), RSV1 << 4);
            (frame.into(), packed.len() < len)
        });
        Some((frame, *smaller))
    }
}

impl From<Vec<u8>> for PreparedFrame {
    fn from(bytes: Vec<u8>) -> PreparedFrame {
        PreparedFrame::new(bytes.into())
    }
}

impl std::ops::Deref for PreparedFrame {
    type Target = [u8];

    /// The plain frame's bytes.
    fn deref(&self) -> &[u8] {
        &self.0.plain
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::Inflater;

    #[test]
    fn the_compressed_form_is_made_once_and_shared() {
        let text = "{\"type\":\"chat\",\"text\":\"hello hello hello hello hello hello\"}";
        let mut plain = Vec::new();
        crate::ws::frame::encode_frame(&mut plain, true, OpCode::Text, text.as_bytes(), None);
        let frame = PreparedFrame::from(plain.clone());
        let on = PeerDeflate {
            agreement: Agreement::default(),
            min_size: 16,
        };
        assert_eq!(&frame.for_peer(None)[..], &plain[..]);
        let a = frame.for_peer(Some(&on)).clone();
        let b = frame.clone().for_peer(Some(&on)).clone();
        assert!(Arc::ptr_eq(&a, &b), "compressed once, shared");
        assert_eq!(a[0], 0xc1, "FIN, RSV1, text");
        let (header, at) = FrameHeader::parse(&a).unwrap();
        assert_eq!(header.payload_len as usize, a.len() - at);
        let mut out = Vec::new();
        let mut inflater = Inflater::new();
        inflater.feed(&a[at..], &mut out, 1 << 20).unwrap();
        inflater.finish(&mut out, 1 << 20).unwrap();
        assert_eq!(out, text.as_bytes());
        // Under the minimum size, or over a small window: plain.
        let big_min = PeerDeflate {
            min_size: 1000,
            ..on
        };
        assert_eq!(&frame.for_peer(Some(&big_min))[..], &plain[..]);
        let small_window = PeerDeflate {
            agreement: Agreement {
                server_max_window_bits: 8,
            },
            ..on
        };
        let long = "x".repeat(300);
        let frame = PreparedFrame::from({
            let mut v = Vec::new();
            crate::ws::frame::encode_frame(&mut v, true, OpCode::Text, long.as_bytes(), None);
            v
        });
        assert_eq!(frame.for_peer(Some(&small_window))[0], 0x81);
        // Control frames are never compressed.
        let mut ping = Vec::new();
        crate::ws::frame::encode_frame(&mut ping, true, OpCode::Ping, &[b'p'; 100], None);
        assert_eq!(PreparedFrame::from(ping).for_peer(Some(&on))[0], 0x89);
    }
}
