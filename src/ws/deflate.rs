//! Compression, RFC 7692 "permessage-deflate": the negotiation (§5, §7.1),
//! and compressing and inflating one message (§7.2), sans-I/O.
//!
//! A client offers the extension in `Sec-WebSocket-Extensions`; the server
//! picks the first offer it can keep ([`negotiate`]) and answers
//!
//! ```text
//! Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover
//! ```
//!
//! Both parameters ask for *no context takeover*: every message is its own
//! raw DEFLATE stream (RFC 1951), started afresh. For the server's messages
//! (§7.1.1.1) that lets one compressed frame go to every member of a room,
//! and no compressor is kept per connection. For the client's messages
//! (§7.1.1.2: a server may include `client_no_context_takeover` whether or
//! not the client offered it) the server needs an inflater only while a
//! compressed message is arriving, not the 32 KiB window of the client's
//! last messages for the life of each connection.
//!
//! On the wire (§7.2.1) a compressed message has RSV1 set on its first frame
//! and its payload is the DEFLATE output with the final `00 00 ff ff` of a
//! sync flush cut off; the receiver puts those four bytes back before it
//! inflates. [`Compressor`] and [`Inflater`] do each side; the frame rules
//! (RSV1, fragments) are in [`crate::ws::message`].

use super::frame::{FrameHeader, OpCode};
use super::mask::apply_mask;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// RSV1 in [`crate::ws::FrameHeader::rsv`]: set on the first frame of a
/// compressed message (§6).
pub const RSV1: u8 = 0b100;

/// The extension's name in `Sec-WebSocket-Extensions` (§5).
pub const EXTENSION: &str = "permessage-deflate";

/// What a sync flush ends with, cut off by the sender and put back by the
/// receiver (§7.2.1, §7.2.2).
pub const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The LZ77 window the compressor uses: 2^15 = 32 KiB (the DEFLATE
/// maximum, and what a peer assumes when it does not limit it).
pub const MAX_WINDOW_BITS: u8 = 15;

/// The smallest window a peer may ask for (§7.1.2.1).
pub const MIN_WINDOW_BITS: u8 = 8;

/// Compression level of the compressor (1 fastest … 9 smallest). Chat
/// messages are short: level 6 (zlib's default) costs little more than 1
/// on them and saves more on history pages.
pub const LEVEL: u32 = 6;

/// Default size below which a message goes uncompressed (`--deflate-min-size`).
/// Measured with zlib at level 6: a 27-byte notice does not shrink at all,
/// a 103-byte chat message shrinks by 18 bytes (17 %), a 139-byte one by
/// 26. Below 64 bytes the few bytes saved are not worth compressing for.
pub const DEFAULT_MIN_SIZE: usize = 64;

/// Most offers considered in one handshake; the rest are declined, so a
/// header of a thousand offers costs no more than eight.
pub const MAX_OFFERS: usize = 8;

/// What the server agreed to for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// The LZ77 window the server's messages may use, as a power of two:
    /// 15 unless the client asked for less with `server_max_window_bits`
    /// (§7.1.2.1).
    pub server_max_window_bits: u8,
}

impl Default for Agreement {
    fn default() -> Agreement {
        Agreement {
            server_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl Agreement {
    /// The value of the response's `Sec-WebSocket-Extensions` header
    /// (§7.1): no context takeover either way, and the client's window
    /// limit repeated if it set one (§7.1.2.1 requires it). No
    /// `client_max_window_bits`: the inflater takes any window (§7.1.2.2
    /// lets the server leave it out).
    ///
    /// ```
    /// use wschat::ws::deflate::Agreement;
    /// assert_eq!(
    ///     Agreement::default().response(),
    ///     "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    /// );
    /// ```
    pub fn response(&self) -> String {
        let mut out =
            format!("{EXTENSION}; server_no_context_takeover; client_no_context_takeover");
        if self.server_max_window_bits < MAX_WINDOW_BITS {
            out.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        out
    }

    /// Whether a compressed form of a `len`-byte payload may go to this
    /// peer. The compressor's window is 32 KiB; a peer that asked for a
    /// smaller one gets compressed only messages no longer than its window,
    /// whose DEFLATE stream cannot refer further back than that (every
    /// stream starts afresh). Longer ones go uncompressed, which §6 allows.
    ///
    /// ```
    /// use wschat::ws::deflate::Agreement;
    /// let small = Agreement { server_max_window_bits: 8 };
    /// assert!(small.may_compress(256) && !small.may_compress(257));
    /// assert!(Agreement::default().may_compress(1 << 20));
    /// ```
    pub fn may_compress(&self, len: usize) -> bool {
        self.server_max_window_bits >= MAX_WINDOW_BITS
            || len <= 1usize << self.server_max_window_bits
    }

    /// How a `len`-byte text or binary message goes to this peer, given the
    /// size below which messages go plain (`--deflate-min-size`).
    ///
    /// A minimum size of 0 means *every* message goes compressed, even
    /// where that does not make it smaller, and as stored blocks
    /// (§7.2.3.3) where the peer's window is too small for the compressor:
    /// Autobahn's runner mistakes any uncompressed text message on a
    /// compressed connection, so `.ci/autobahn.sh` runs that way. Any other
    /// minimum sends a message plain when it is shorter, when the window
    /// is too small, or when compressing does not make it smaller (§6
    /// lets a sender leave any message uncompressed).
    ///
    /// ```
    /// use wschat::ws::deflate::{Agreement, Encoding};
    /// let full = Agreement::default();
    /// assert_eq!(full.encoding(10, 64), Encoding::Plain);
    /// assert_eq!(full.encoding(100, 64), Encoding::Deflate { if_smaller: true });
    /// assert_eq!(full.encoding(10, 0), Encoding::Deflate { if_smaller: false });
    /// let small = Agreement { server_max_window_bits: 8 };
    /// assert_eq!(small.encoding(1000, 64), Encoding::Plain);
    /// assert_eq!(small.encoding(1000, 0), Encoding::Stored);
    /// ```
    pub fn encoding(&self, len: usize, min_size: usize) -> Encoding {
        match (min_size, self.may_compress(len)) {
            (0, true) => Encoding::Deflate { if_smaller: false },
            (0, false) => Encoding::Stored,
            (min, true) if len >= min => Encoding::Deflate { if_smaller: true },
            _ => Encoding::Plain,
        }
    }
}

/// How one message goes on the wire with permessage-deflate on (see
/// [`Agreement::encoding`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Uncompressed: RSV1 clear (§6).
    Plain,
    /// Compressed with [`Compressor`]; when `if_smaller`, sent plain
    /// instead unless that made it smaller.
    Deflate {
        /// Fall back to plain when compressing does not pay.
        if_smaller: bool,
    },
    /// In DEFLATE stored blocks ([`store`]): RSV1 set, no back-references,
    /// so valid for any window.
    Stored,
}

/// Append `payload` as DEFLATE stored blocks (RFC 1951 §3.2.4), ending as
/// a sync flush would, with its `00 00 ff ff` cut off (RFC 7692 §7.2.1):
/// a "compressed" message with no compression, which any window accepts.
///
/// ```
/// // RFC 7692 §7.2.3.3: "Hello" in a block with no compression.
/// let mut out = Vec::new();
/// wschat::ws::deflate::store(b"Hello", &mut out);
/// assert_eq!(out, [0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]);
/// ```
pub fn store(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + payload.len() / 0xFFFF * 5 + 6);
    for block in payload.chunks(0xFFFF) {
        let len = block.len() as u16;
        // BFINAL 0, BTYPE 00, then LEN and NLEN, little-endian.
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    // The empty stored block of a sync flush, less its 00 00 ff ff.
    out.push(0x00);
}

/// One extension offer: its name and parameters as written, quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The extension token, such as `permessage-deflate`.
    pub name: String,
    /// Each parameter and its value, if it has one.
    pub params: Vec<(String, Option<String>)>,
}

/// Why an offer is declined (§7.1: the server declines, it does not fail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decline {
    /// Another extension.
    OtherExtension,
    /// A parameter RFC 7692 does not define.
    UnknownParameter(String),
    /// The same parameter twice.
    DuplicateParameter(String),
    /// A parameter with a value it may not have, or without one it needs.
    BadValue(String),
}

impl std::fmt::Display for Decline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Decline::OtherExtension => write!(f, "not {EXTENSION}"),
            Decline::UnknownParameter(p) => write!(f, "unknown parameter {p:?} (§7.1)"),
            Decline::DuplicateParameter(p) => write!(f, "parameter {p:?} given twice (§7.1)"),
            Decline::BadValue(p) => write!(f, "invalid value for {p:?} (§7.1.1, §7.1.2)"),
        }
    }
}

/// Parse `Sec-WebSocket-Extensions` header values into offers (RFC 6455
/// §9.1: a comma list of `name *(";" param ["=" (token / quoted-string)])`).
/// `None` when the syntax is broken: then no offer can be trusted and all
/// are declined.
///
/// ```
/// use wschat::ws::deflate::parse_offers;
/// let offers = parse_offers(["permessage-deflate; client_max_window_bits, x-foo;a=\"1\""]).unwrap();
/// assert_eq!(offers.len(), 2);
/// assert_eq!(offers[0].params, [("client_max_window_bits".to_string(), None)]);
/// assert_eq!(offers[1].params, [("a".to_string(), Some("1".to_string()))]);
/// assert_eq!(parse_offers(["permessage-deflate; =1"]), None);
/// ```
pub fn parse_offers<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Vec<Offer>> {
    let mut offers = Vec::new();
    for value in values {
        let mut lexer = Lexer {
            bytes: value.as_bytes(),
            at: 0,
        };
        loop {
            lexer.skip_ws();
            if lexer.eat(b',') {
                continue; // an empty list element (RFC 9110 §5.6.1)
            }
            if lexer.done() {
                break;
            }
            let name = lexer.token()?;
            let mut params = Vec::new();
            loop {
                lexer.skip_ws();
                if lexer.done() || lexer.eat(b',') {
                    break;
                }
                if !lexer.eat(b';') {
                    return None;
                }
                lexer.skip_ws();
                let key = lexer.token()?;
                lexer.skip_ws();
                let value = if lexer.eat(b'=') {
                    lexer.skip_ws();
                    Some(lexer.token_or_quoted()?)
                } else {
                    None
                };
                params.push((key, value));
            }
            offers.push(Offer { name, params });
        }
    }
    Some(offers)
}

/// Check one offer and say what accepting it means (§7.1).
///
/// Declined: another extension; an unknown or repeated parameter;
/// `server_no_context_takeover` or `client_no_context_takeover` with a
/// value; `server_max_window_bits` without a value or outside 8-15;
/// `client_max_window_bits` with a value outside 8-15. A value is a decimal
/// integer without leading zeros (§7.1.2.1), quoted or not.
pub fn accept_offer(offer: &Offer) -> Result<Agreement, Decline> {
    if !offer.name.eq_ignore_ascii_case(EXTENSION) {
        return Err(Decline::OtherExtension);
    }
    let mut agreement = Agreement::default();
    let mut seen: Vec<&str> = Vec::new();
    for (key, value) in &offer.params {
        let key = key.as_str();
        if seen.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(Decline::DuplicateParameter(key.to_string()));
        }
        seen.push(key);
        let bad = || Decline::BadValue(key.to_string());
        match key.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" | "client_no_context_takeover" => {
                if value.is_some() {
                    return Err(bad());
                }
            }
            "server_max_window_bits" => {
                let bits = value.as_deref().and_then(window_bits).ok_or_else(bad)?;
                agreement.server_max_window_bits = bits;
            }
            "client_max_window_bits" => {
                if let Some(v) = value {
                    window_bits(v).ok_or_else(bad)?;
                }
            }
            _ => return Err(Decline::UnknownParameter(key.to_string())),
        }
    }
    Ok(agreement)
}

/// A window size value: `8` to `15`, no sign, no leading zero (§7.1.2.1).
fn window_bits(value: &str) -> Option<u8> {
    if value.len() > 2 || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

/// The server's choice among the offers in `Sec-WebSocket-Extensions`
/// header values: the first acceptable `permessage-deflate` offer among the
/// first [`MAX_OFFERS`] (§5.1 lets the server pick any; the client lists
/// them in its order of preference), or `None`.
///
/// ```
/// use wschat::ws::deflate::negotiate;
/// // A bad first offer (a value on a flag) is declined; the second is taken.
/// let chosen = negotiate(["permessage-deflate; server_no_context_takeover=1, \
///                          permessage-deflate; server_max_window_bits=10"]);
/// assert_eq!(chosen.unwrap().server_max_window_bits, 10);
/// assert_eq!(negotiate(["x-webkit-deflate-frame"]), None);
/// ```
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Agreement> {
    parse_offers(values)?
        .iter()
        .take(MAX_OFFERS)
        .find_map(|offer| accept_offer(offer).ok())
}

/// What a client offers (§5, §7.1): `server_no_context_takeover`, because
/// its inflater starts afresh with every message, as wschat's decoder does;
/// no `client_max_window_bits`, so the server may not limit the client's
/// window (§7.1.2.2) and its compressor keeps the full 32 KiB.
pub const CLIENT_OFFER: &str = "permessage-deflate; server_no_context_takeover";

/// A client's check of the server's answer to [`CLIENT_OFFER`] (§7.1): what
/// it agreed to, or why the client must fail the connection (§9.1: an
/// extension not offered, or parameters the offer did not allow).
///
/// The answer must name `permessage-deflate` once and include
/// `server_no_context_takeover` (§7.1.1.1: a server that accepts the offer
/// includes it); it may add `client_no_context_takeover` (the client's
/// messages are independent anyway) and `server_max_window_bits` (the
/// inflater takes any window). It may not add `client_max_window_bits`,
/// which was not offered (§7.1.2.2). The returned [`Agreement`]'s window
/// is the limit for the messages *this* side sends: here 15, nothing
/// having limited the client's compressor.
///
/// ```
/// use wschat::ws::deflate::{Agreement, accept_response};
/// let full = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
/// assert_eq!(accept_response(full), Ok(Agreement::default()));
/// assert!(accept_response("permessage-deflate").is_err());
/// assert!(accept_response("permessage-deflate; server_no_context_takeover; client_max_window_bits=10").is_err());
/// ```
pub fn accept_response(value: &str) -> Result<Agreement, String> {
    let offers = parse_offers([value]).ok_or("a malformed Sec-WebSocket-Extensions answer")?;
    let [answer] = offers.as_slice() else {
        return Err(format!(
            "the server answered {} extensions; {EXTENSION} alone was offered",
            offers.len()
        ));
    };
    accept_offer(answer).map_err(|d| format!("the server's answer: {d}"))?;
    let has = |name: &str| {
        answer
            .params
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    };
    if !has("server_no_context_takeover") {
        return Err("the server's answer lacks server_no_context_takeover (§7.1.1.1)".into());
    }
    if has("client_max_window_bits") {
        return Err(
            "the server limited client_max_window_bits, which was not offered (§7.1.2.2)".into(),
        );
    }
    Ok(Agreement::default())
}

/// A cursor over one header value.
struct Lexer<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Lexer<'_> {
    fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn skip_ws(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.bytes.get(self.at) == Some(&byte);
        self.at += usize::from(hit);
        hit
    }

    /// A `token` (RFC 9110 §5.6.2).
    fn token(&mut self) -> Option<String> {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(|&b| is_tchar(b)) {
            self.at += 1;
        }
        (self.at > start).then(|| String::from_utf8_lossy(&self.bytes[start..self.at]).into())
    }

    /// A token, or a quoted-string whose content must itself be a token
    /// (RFC 6455 §9.1).
    fn token_or_quoted(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return self.token();
        }
        let mut out = Vec::new();
        loop {
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    break;
                }
                b'\\' => {
                    out.push(*self.bytes.get(self.at + 1)?);
                    self.at += 2;
                }
                b => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
        (!out.is_empty() && out.iter().all(|&b| is_tchar(b)))
            .then(|| String::from_utf8_lossy(&out).into())
    }
}

/// A character of a `token` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Compresses whole messages, each as its own DEFLATE stream (no context
/// takeover, §7.1.1.1).
///
/// It holds zlib-sized tables (a few hundred KiB), so make one per thread
/// that compresses, not one per connection.
///
/// ```
/// use wschat::ws::deflate::Compressor;
/// let mut c = Compressor::new();
/// let mut out = Vec::new();
/// assert!(c.compress(b"Hello", &mut out));
/// // RFC 7692 §7.2.3.1: "Hello" is f2 48 cd c9 c9 07 00.
/// assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
/// ```
pub struct Compressor {
    inner: Compress,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compressor")
    }
}

impl Default for Compressor {
    fn default() -> Compressor {
        Compressor::new()
    }
}

impl Compressor {
    /// A raw DEFLATE compressor at [`LEVEL`].
    ///
    /// Never inlined: miniz_oxide builds its buffers through the stack, and
    /// inlined into a connection's read loop that would make the loop's
    /// frame, resident for the connection's life, tens of KiB larger
    /// (tests/stack.rs).
    #[inline(never)]
    pub fn new() -> Compressor {
        Compressor {
            inner: Compress::new(Compression::new(LEVEL), false),
        }
    }

    /// Append the compressed form of one whole message payload to `out`:
    /// a fresh DEFLATE stream, sync-flushed, with its final `00 00 ff ff`
    /// cut off (§7.2.1). Returns whether it did; on `false` (the compressor
    /// failed, which it should not) `out` is as it was and the message must
    /// go uncompressed.
    ///
    /// miniz_oxide may return from a sync flush before the flush is done
    /// (with room left in `out`): it is called again until the output ends
    /// with the empty stored block a finished sync flush writes.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        self.inner.reset();
        let start = out.len();
        out.reserve(payload.len() / 2 + 64);
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(64));
            }
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let status = self
                .inner
                .compress_vec(&payload[consumed..], out, FlushCompress::Sync);
            let read = (self.inner.total_in() - in_before) as usize;
            let wrote = self.inner.total_out() - out_before;
            consumed += read;
            let room = out.len() < out.capacity();
            if consumed == payload.len() && room && out[start..].ends_with(&TRAILER) {
                out.truncate(out.len() - TRAILER.len());
                return true;
            }
            if status.is_err() || (read == 0 && wrote == 0 && room) {
                out.truncate(start);
                return false;
            }
        }
    }
}

/// Append a whole compressed message as one frame: FIN and RSV1 set (§6),
/// `payload` already compressed, masked with `mask` if given (a client's).
///
/// ```
/// use wschat::ws::OpCode;
/// use wschat::ws::deflate::encode_compressed_frame;
/// let mut out = Vec::new();
/// // RFC 7692 §7.2.3.1: "Hello" compressed, in one unmasked frame.
/// encode_compressed_frame(&mut out, OpCode::Text, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], None);
/// assert_eq!(out, [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
/// ```
pub fn encode_compressed_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin: true,
        rsv: RSV1,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let (bytes, n) = header.encode();
    out.reserve(n + payload.len());
    out.extend_from_slice(&bytes[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

/// A function that compresses one whole message as [`Compressor::compress`]
/// does: lets the I/O layer choose where compressors live (a compressor is
/// built with large arrays on the stack, too large for a connection
/// thread's small stack; see `crate::server::prepared`).
pub type CompressFn = fn(&[u8], &mut Vec<u8>) -> bool;

/// Why inflating a message stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would be longer than the limit (§7.2.2 leaves
    /// limits to the endpoint; close 1009).
    TooBig {
        /// The bytes the message had reached.
        len: u64,
    },
    /// The payload is not a valid DEFLATE stream (close 1007).
    Corrupt,
}

/// Inflates one compressed message as its frames arrive (§7.2.2), never
/// letting it grow past a limit: output is produced into the message buffer
/// a piece at a time and checked as it grows, so a small payload that would
/// inflate to gigabytes stops at the limit.
///
/// Its state (the 32 KiB window and decoding tables, about 43 KiB) exists
/// only while a compressed message is being read: the decoder makes one at
/// the first frame and drops it at the last, since the client was told not
/// to take its context over (§7.1.1.2).
pub struct Inflater {
    inner: Decompress,
    /// The stream ended (a block with BFINAL set, §7.2.3.4): anything after
    /// it is ignored.
    ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("ended", &self.ended)
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Inflater {
        Inflater::new()
    }
}

/// The first allocation for an inflated message, and the smallest growth.
const INFLATE_STEP: usize = 1024;

impl Inflater {
    /// A raw DEFLATE inflater with a 32 KiB window (it accepts a stream
    /// made with any window size). Never inlined, as [`Compressor::new`].
    #[inline(never)]
    pub fn new() -> Inflater {
        Inflater {
            inner: Decompress::new(false),
            ended: false,
        }
    }

    /// Inflate a piece of a compressed payload (unmasked), appending to
    /// `out`, which may not grow past `limit` bytes.
    ///
    /// ```
    /// use wschat::ws::deflate::{Inflater, InflateError};
    /// let mut inflater = Inflater::new();
    /// let mut out = Vec::new();
    /// inflater.feed(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 100).unwrap();
    /// inflater.finish(&mut out, 100).unwrap();
    /// assert_eq!(out, b"Hello");
    /// // The same with a limit of 4 bytes: stopped.
    /// let mut out = Vec::new();
    /// let mut inflater = Inflater::new();
    /// let r = inflater.feed(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], &mut out, 4)
    ///     .and_then(|()| inflater.finish(&mut out, 4));
    /// assert_eq!(r, Err(InflateError::TooBig { len: 5 }));
    /// ```
    pub fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        self.run(input, out, limit, FlushDecompress::None)
    }

    /// The message's last frame has arrived: inflate the `00 00 ff ff` the
    /// sender cut off (§7.2.2), which flushes what is left.
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        self.run(&TRAILER, out, limit, FlushDecompress::Sync)
    }

    fn run(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        flush: FlushDecompress,
    ) -> Result<(), InflateError> {
        let mut consumed = 0;
        loop {
            if self.ended {
                return Ok(());
            }
            if out.len() == out.capacity() {
                // Room for at most one byte past the limit: enough to see
                // that the message goes over it.
                let ceiling = limit.saturating_add(1);
                if out.len() >= ceiling {
                    return Err(InflateError::TooBig {
                        len: out.len() as u64,
                    });
                }
                let want = (out.capacity()).max(INFLATE_STEP).max(input.len() * 2);
                out.reserve_exact(want.min(ceiling - out.len()));
            }
            let (in_before, out_before) = (self.inner.total_in(), self.inner.total_out());
            let status = match self.inner.decompress_vec(&input[consumed..], out, flush) {
                Ok(status) => status,
                // Past the limit already: that is the error to report,
                // whatever comes after.
                Err(_) if out.len() > limit => {
                    return Err(InflateError::TooBig {
                        len: out.len() as u64,
                    });
                }
                Err(_) => return Err(InflateError::Corrupt),
            };
            consumed += (self.inner.total_in() - in_before) as usize;
            let produced = self.inner.total_out() - out_before;
            if out.len() > limit {
                return Err(InflateError::TooBig {
                    len: out.len() as u64,
                });
            }
            match status {
                Status::StreamEnd => self.ended = true,
                Status::Ok | Status::BufError => {
                    let all_in = consumed == input.len();
                    if all_in && out.len() < out.capacity() {
                        return Ok(());
                    }
                    if produced == 0
                        && (self.inner.total_in() - in_before) == 0
                        && out.len() < out.capacity()
                    {
                        // No progress with room to spare: the input is used up.
                        return Ok(());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(pieces: &[&[u8]], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        for piece in pieces {
            inflater.feed(piece, &mut out, limit)?;
        }
        inflater.finish(&mut out, limit)?;
        Ok(out)
    }

    /// RFC 7692 §7.2.3: every example payload inflates to "Hello", in one
    /// piece and cut at every byte.
    #[test]
    fn rfc_7692_7_2_3_examples_inflate_to_hello() {
        let examples: [&[u8]; 4] = [
            // §7.2.3.1: a message compressed with a fresh window.
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            // §7.2.3.3: a DEFLATE block with no compression.
            &[
                0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
            ],
            // §7.2.3.4: a DEFLATE block with BFINAL set.
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00],
            // §7.2.3.5: two DEFLATE blocks in one message.
            &[
                0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
            ],
        ];
        for example in examples {
            assert_eq!(inflate_all(&[example], 100).unwrap(), b"Hello");
            for cut in 0..=example.len() {
                let (a, b) = example.split_at(cut);
                assert_eq!(
                    inflate_all(&[a, b], 100).unwrap(),
                    b"Hello",
                    "{example:02x?} cut {cut}"
                );
            }
        }
        // §7.2.3.6: an empty message is one empty block, 00.
        assert_eq!(inflate_all(&[&[0x00]], 100).unwrap(), b"");
    }

    /// §7.2.3.1: compressing "Hello" gives the RFC's bytes; §7.2.3.6: an
    /// empty message compresses to something that inflates to nothing.
    #[test]
    fn compressing_gives_the_rfc_bytes_and_round_trips() {
        let mut c = Compressor::new();
        let mut out = Vec::new();
        assert!(c.compress(b"Hello", &mut out));
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        // The same compressor again: no context is taken over.
        let mut again = Vec::new();
        assert!(c.compress(b"Hello", &mut again));
        assert_eq!(again, out);
        let mut empty = Vec::new();
        assert!(c.compress(b"", &mut empty));
        assert_eq!(inflate_all(&[&empty], 10).unwrap(), b"");
        let big: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect();
        let mut packed = Vec::new();
        assert!(c.compress(&big, &mut packed));
        assert_eq!(inflate_all(&[&packed], big.len()).unwrap(), big);
        assert!(matches!(
            inflate_all(&[&packed], big.len() - 1),
            Err(InflateError::TooBig { .. })
        ));
    }

    #[test]
    fn a_bomb_stops_at_the_limit_with_the_buffer_bounded() {
        let zeros = vec![0u8; 20 << 20];
        let mut packed = Vec::new();
        assert!(Compressor::new().compress(&zeros, &mut packed));
        assert!(packed.len() < 64 << 10, "{}", packed.len());
        let mut inflater = Inflater::new();
        let mut out = Vec::new();
        let limit = 1 << 20;
        let mut result = Ok(());
        for piece in packed.chunks(1000) {
            result = inflater.feed(piece, &mut out, limit);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(InflateError::TooBig { .. })));
        assert!(out.capacity() <= limit + 1, "{}", out.capacity());
    }

    #[test]
    fn corrupt_streams_are_errors_not_panics() {
        // BTYPE 11 is reserved.
        assert_eq!(
            inflate_all(&[&[0xff, 0xff]], 100),
            Err(InflateError::Corrupt)
        );
        // §7.2.3.2's second message refers back into the previous message's
        // window, which a fresh inflater does not have: miniz_oxide reads
        // its zeroed window (no error), so the text is not "Hello". A
        // client told client_no_context_takeover never sends this.
        assert_ne!(
            inflate_all(&[&[0xf2, 0x00, 0x11, 0x00, 0x00]], 100),
            Ok(b"Hello".to_vec())
        );
    }

    #[test]
    fn offers_are_parsed_and_checked() {
        let chosen = |h: &str| negotiate([h]);
        let full = Agreement::default();
        assert_eq!(chosen("permessage-deflate"), Some(full));
        assert_eq!(chosen("Permessage-Deflate"), Some(full));
        assert_eq!(
            chosen("permessage-deflate; client_max_window_bits"),
            Some(full)
        );
        assert_eq!(
            chosen("permessage-deflate; client_max_window_bits=\"10\"; server_no_context_takeover"),
            Some(full)
        );
        assert_eq!(
            chosen("permessage-deflate; server_max_window_bits=9")
                .map(|a| a.server_max_window_bits),
            Some(9)
        );
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown",
            "permessage-deflate; server_max_window_bits=\"\"",
            "permessage-deflate; server_max_window_bits=\"1 0\"",
            "permessage-deflate;",
            "permessage-deflate; a=\"unterminated",
            "permessage-deflate x",
            "",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(chosen(bad), None, "{bad:?}");
        }
        // The first acceptable offer wins, across header lines too.
        let two = negotiate([
            "permessage-deflate; foo, permessage-deflate; server_max_window_bits=12",
            "permessage-deflate",
        ]);
        assert_eq!(two.map(|a| a.server_max_window_bits), Some(12));
        assert_eq!(
            Agreement {
                server_max_window_bits: 12
            }
            .response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12"
        );
    }

    /// Compressing and inflating give back every message, whatever its
    /// content: runs of text, noise, and noise that does not compress, at
    /// sizes around miniz_oxide's internal buffers (a sync flush that
    /// returns before it is done once lost the end of a 64 KiB message).
    #[test]
    fn every_message_round_trips_through_both_sides() {
        let mut seed: u32 = 7;
        let mut noise = |n: usize, spread: u32| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    ((seed >> 16) % spread) as u8
                })
                .collect()
        };
        let mut c = Compressor::new();
        for len in [
            0, 1, 100, 4096, 32_768, 65_535, 65_536, 65_537, 100_000, 131_072,
        ] {
            for spread in [2, 16, 64, 256] {
                let message = noise(len, spread);
                let mut packed = Vec::new();
                assert!(c.compress(&message, &mut packed), "{len} {spread}");
                for piece in [7, 256, usize::MAX] {
                    let pieces: Vec<&[u8]> =
                        packed.chunks(piece.min(packed.len().max(1))).collect();
                    let got = inflate_all(&pieces, 1 << 20).unwrap();
                    assert!(
                        got == message,
                        "{len} bytes, spread {spread}, pieces of {piece}"
                    );
                }
            }
        }
    }
}
