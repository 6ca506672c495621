//! The frame header, RFC 6455 §5.2: decode from any prefix of bytes, encode
//! for either role.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! |     Extended payload length continued, if payload len == 127  |
//! + - - - - - - - - - - - - - - - +-------------------------------+
//! |                               |Masking-key, if MASK set to 1  |
//! +-------------------------------+-------------------------------+
//! | Masking-key (continued)       |          Payload Data         |
//! +-------------------------------- - - - - - - - - - - - - - - - +
//! ```
//!
//! [`FrameHeader::parse`] reads what the bytes say and never fails on their
//! content: it only asks for more bytes when the header is not all there.
//! [`FrameHeader::check`] then applies the rules a receiver enforces. Keeping
//! the two apart lets the dissector show a broken header field by field.

use super::Role;
use super::error::ProtocolError;
use super::mask::apply_mask;

/// The largest header: 2 bytes, an 8-byte length and a 4-byte mask.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload of a control frame (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode (§5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close the connection.
    Close,
    /// 0x9: ping; the peer answers with a pong.
    Ping,
    /// 0xA: pong.
    Pong,
    /// 0x3-0x7 and 0xB-0xF: reserved for future use; a receiver fails the
    /// connection.
    Reserved(u8),
}

impl OpCode {
    /// The opcode of a 4-bit value.
    pub fn from_u8(bits: u8) -> OpCode {
        match bits & 0x0F {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => OpCode::Reserved(other),
        }
    }

    /// The 4-bit value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
            OpCode::Reserved(bits) => bits & 0x0F,
        }
    }

    /// Control frames are those with the high bit of the opcode set (§5.5).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }

    /// A short name: `text`, `binary`, `continuation`, `close`, `ping`,
    /// `pong`, or `reserved`.
    pub fn name(self) -> &'static str {
        match self {
            OpCode::Continuation => "continuation",
            OpCode::Text => "text",
            OpCode::Binary => "binary",
            OpCode::Close => "close",
            OpCode::Ping => "ping",
            OpCode::Pong => "pong",
            OpCode::Reserved(_) => "reserved",
        }
    }
}

/// How the payload length was written (§5.2): in the 7 bits of the second
/// byte, or as 126 and a 16-bit length, or as 127 and a 64-bit length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthForm {
    /// 0-125 in the 7-bit field.
    Short,
    /// 126, then a 16-bit big-endian length.
    Medium,
    /// 127, then a 64-bit big-endian length.
    Long,
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final fragment of a message.
    pub fin: bool,
    /// RSV1, RSV2, RSV3 as three bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

impl FrameHeader {
    /// A header with FIN set, no RSV bits, no mask.
    pub fn new(opcode: OpCode, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Decode a header from the start of `buf`.
    ///
    /// Returns `None` when `buf` does not yet hold the whole header (ask the
    /// socket for more bytes and call again with the longer prefix), or the
    /// header and the number of bytes it took (2 to 14).
    ///
    /// ```
    /// use wschat::ws::frame::{FrameHeader, OpCode};
    /// // RFC 6455 §5.7: the header of a masked "Hello" from a client.
    /// let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    /// assert_eq!(FrameHeader::parse(&bytes[..3]), None); // mask key incomplete
    /// let (header, len) = FrameHeader::parse(&bytes).unwrap();
    /// assert_eq!(len, 6);
    /// assert!(header.fin);
    /// assert_eq!(header.opcode, OpCode::Text);
    /// assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
    /// assert_eq!(header.payload_len, 5);
    /// ```
    pub fn parse(buf: &[u8]) -> Option<(FrameHeader, usize)> {
        let [b0, b1, rest @ ..] = buf else {
            return None;
        };
        let masked = b1 & 0x80 != 0;
        let (payload_len, len_bytes) = match b1 & 0x7F {
            126 => {
                let ext: [u8; 2] = rest.get(..2)?.try_into().ok()?;
                (u64::from(u16::from_be_bytes(ext)), 2)
            }
            127 => {
                let ext: [u8; 8] = rest.get(..8)?.try_into().ok()?;
                (u64::from_be_bytes(ext), 8)
            }
            short => (u64::from(short), 0),
        };
        let mask = if masked {
            let key: [u8; 4] = rest.get(len_bytes..len_bytes + 4)?.try_into().ok()?;
            Some(key)
        } else {
            None
        };
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x07,
            opcode: OpCode::from_u8(*b0),
            mask,
            payload_len,
        };
        Some((header, 2 + len_bytes + if masked { 4 } else { 0 }))
    }

    /// The rules a receiver applies to a header (§5.1, §5.2, §5.5), for a
    /// receiver in `role`. The first broken rule is returned.
    ///
    /// ```
    /// use wschat::ws::{Role, ProtocolError};
    /// use wschat::ws::frame::{FrameHeader, OpCode};
    /// let unmasked = FrameHeader::new(OpCode::Text, 5);
    /// assert_eq!(unmasked.check(Role::Client), Ok(()));
    /// assert_eq!(unmasked.check(Role::Server), Err(ProtocolError::UnmaskedFrame));
    /// ```
    pub fn check(&self, role: Role) -> Result<(), ProtocolError> {
        match (role, self.mask) {
            (Role::Server, None) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, Some(_)) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if self.rsv != 0 {
            return Err(ProtocolError::ReservedBits(self.rsv));
        }
        if let OpCode::Reserved(bits) = self.opcode {
            return Err(ProtocolError::ReservedOpcode(bits));
        }
        if self.payload_len >> 63 != 0 {
            return Err(ProtocolError::LengthHighBit);
        }
        if self.opcode.is_control() {
            if self.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong(self.payload_len));
            }
            if !self.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
        }
        Ok(())
    }

    /// The length form this header uses on the wire when encoded minimally.
    pub fn length_form(&self) -> LengthForm {
        match self.payload_len {
            0..=125 => LengthForm::Short,
            126..=0xFFFF => LengthForm::Medium,
            _ => LengthForm::Long,
        }
    }

    /// The header's length in bytes when encoded.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.length_form() {
            LengthForm::Short => 0,
            LengthForm::Medium => 2,
            LengthForm::Long => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encode the header with the shortest length form (§5.2 requires the
    /// minimal number of bytes). Returns the bytes and how many are used.
    ///
    /// ```
    /// use wschat::ws::frame::{FrameHeader, OpCode};
    /// // RFC 6455 §5.7: a 256-byte unmasked binary message.
    /// let (bytes, len) = FrameHeader::new(OpCode::Binary, 256).encode();
    /// assert_eq!(&bytes[..len], &[0x82, 0x7E, 0x01, 0x00]);
    /// ```
    pub fn encode(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut out = [0u8; MAX_HEADER_LEN];
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x07) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut n = 2;
        match self.length_form() {
            LengthForm::Short => out[1] = mask_bit | self.payload_len as u8,
            LengthForm::Medium => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
                n = 4;
            }
            LengthForm::Long => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
                n = 10;
            }
        }
        if let Some(key) = self.mask {
            out[n..n + 4].copy_from_slice(&key);
            n += 4;
        }
        (out, n)
    }
}

impl FrameHeader {
    /// The header on one line, as trace logs show frames, with a preview of
    /// its (unmasked) `payload` when there is one:
    /// `text fin=1 rsv=000 mask=37fa213d len=5 "Hello"`. Without a payload
    /// the line stops after `len=`, which is what a receiver knows when the
    /// header has just arrived.
    ///
    /// ```
    /// use wschat::ws::frame::{FrameHeader, OpCode};
    /// let header = FrameHeader::new(OpCode::Binary, 2);
    /// assert_eq!(header.line(None).to_string(), "binary fin=1 rsv=000 mask=- len=2");
    /// assert_eq!(header.line(Some(&[1, 2])).to_string(), "binary fin=1 rsv=000 mask=- len=2 0x0102");
    /// ```
    pub fn line<'a>(&'a self, payload: Option<&'a [u8]>) -> FrameLine<'a> {
        FrameLine {
            header: self,
            kind: self.opcode,
            payload,
        }
    }
}

/// The header alone on one line: [`FrameHeader::line`] without a payload.
impl std::fmt::Display for FrameHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.line(None).fmt(f)
    }
}

/// Characters of a text payload shown by [`FrameLine`].
pub const ONE_LINE_CHARS: usize = 60;

/// Bytes of a binary payload shown (as hex) by [`FrameLine`].
pub const ONE_LINE_BYTES: usize = 32;

/// A frame on one line, for logs: made by [`FrameHeader::line`], written by
/// its `Display`. The payload preview is a close code and reason for a
/// Close, hex (at most [`ONE_LINE_BYTES`] bytes) for binary, and quoted
/// text (at most [`ONE_LINE_CHARS`] characters) for anything else that is
/// UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct FrameLine<'a> {
    header: &'a FrameHeader,
    kind: OpCode,
    payload: Option<&'a [u8]>,
}

impl FrameLine<'_> {
    /// Preview the payload as a frame of `kind` would be (a continuation
    /// frame shows as text or binary, after its message).
    pub fn previewed_as(mut self, kind: OpCode) -> Self {
        self.kind = kind;
        self
    }
}

impl std::fmt::Display for FrameLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = self.header;
        write!(
            f,
            "{} fin={} rsv={:03b} mask=",
            h.opcode.name(),
            u8::from(h.fin),
            h.rsv
        )?;
        match h.mask {
            Some(key) => write_hex(f, &key)?,
            None => f.write_str("-")?,
        }
        write!(f, " len={}", h.payload_len)?;
        if let Some(payload) = self.payload
            && !payload.is_empty()
        {
            f.write_str(" ")?;
            write_preview(f, self.kind, payload)?;
        }
        Ok(())
    }
}

/// A short rendering of a payload: a close code and reason, hex for binary,
/// quoted text for anything else that is UTF-8.
fn write_preview(
    f: &mut std::fmt::Formatter<'_>,
    kind: OpCode,
    payload: &[u8],
) -> std::fmt::Result {
    match kind {
        OpCode::Close if payload.len() >= 2 => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let reason = &payload[2..];
            write!(f, "code={code}")?;
            if !reason.is_empty() {
                f.write_str(" ")?;
                write_preview(f, OpCode::Text, reason)?;
            }
            Ok(())
        }
        OpCode::Binary => write_short_hex(f, payload),
        _ => match std::str::from_utf8(payload) {
            Ok(text) => match text.char_indices().nth(ONE_LINE_CHARS) {
                Some((cut, _)) => write!(f, "{:?}…", &text[..cut]),
                None => write!(f, "{text:?}"),
            },
            Err(_) => write_short_hex(f, payload),
        },
    }
}

/// `0x` and the first [`ONE_LINE_BYTES`] bytes in hex, `…` when there are more.
fn write_short_hex(f: &mut std::fmt::Formatter<'_>, bytes: &[u8]) -> std::fmt::Result {
    let shown = &bytes[..bytes.len().min(ONE_LINE_BYTES)];
    f.write_str("0x")?;
    write_hex(f, shown)?;
    if shown.len() < bytes.len() {
        f.write_str("…")?;
    }
    Ok(())
}

/// Lower-case hex, no separators.
fn write_hex(f: &mut std::fmt::Formatter<'_>, bytes: &[u8]) -> std::fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Append one whole frame to `out`: the header, then the payload, masked
/// with `mask` when one is given (a client must give one, a server must not).
///
/// ```
/// use wschat::ws::frame::{encode_frame, OpCode};
/// let mut out = Vec::new();
/// // RFC 6455 §5.7: "Hello" from a client with the mask 37 fa 21 3d.
/// encode_frame(&mut out, true, OpCode::Text, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d]));
/// assert_eq!(out, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
/// ```
pub fn encode_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin,
        rsv: 0,
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

/// A whole frame: its header and its payload, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header as it was on the wire (the mask key included).
    pub header: FrameHeader,
    /// The payload with the mask removed.
    pub payload: Vec<u8>,
}

impl Frame {
    /// Decode one whole frame from the start of `buf`, unmasking its payload.
    /// `None` when `buf` does not hold the whole frame yet; otherwise the
    /// frame and the number of bytes it took. No rule is checked (see
    /// [`FrameHeader::check`]); a declared length that cannot be in `buf`
    /// allocates nothing.
    ///
    /// ```
    /// use wschat::ws::frame::{Frame, OpCode};
    /// let (frame, used) = Frame::parse(&[0x01, 0x03, 0x48, 0x65, 0x6c]).unwrap();
    /// assert_eq!(used, 5);
    /// assert!(!frame.header.fin);
    /// assert_eq!(frame.header.opcode, OpCode::Text);
    /// assert_eq!(frame.payload, b"Hel");
    /// ```
    pub fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
        let (header, header_len) = FrameHeader::parse(buf)?;
        let body = &buf[header_len..];
        if (body.len() as u64) < header.payload_len {
            return None;
        }
        let len = header.payload_len as usize;
        let mut payload = body[..len].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        Some((Frame { header, payload }, header_len + len))
    }

    /// Encode this frame, masking the payload with `header.mask` if set.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut header = self.header;
        header.payload_len = self.payload.len() as u64;
        let (bytes, n) = header.encode();
        out.extend_from_slice(&bytes[..n]);
        let start = out.len();
        out.extend_from_slice(&self.payload);
        if let Some(key) = header.mask {
            apply_mask(&mut out[start..], key, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every example frame of RFC 6455 §5.7, both directions, byte for byte.
    #[test]
    fn rfc_5_7_examples_decode_and_encode_byte_for_byte() {
        let key = Some([0x37, 0xfa, 0x21, 0x3d]);
        type Case = (Vec<u8>, bool, OpCode, Option<[u8; 4]>, Vec<u8>);
        let cases: Vec<Case> = vec![
            // A single-frame unmasked text message.
            (
                vec![0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
                true,
                OpCode::Text,
                None,
                b"Hello".to_vec(),
            ),
            // A single-frame masked text message.
            (
                vec![
                    0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
                ],
                true,
                OpCode::Text,
                key,
                b"Hello".to_vec(),
            ),
            // A fragmented unmasked text message: "Hel" then "lo".
            (
                vec![0x01, 0x03, 0x48, 0x65, 0x6c],
                false,
                OpCode::Text,
                None,
                b"Hel".to_vec(),
            ),
            (
                vec![0x80, 0x02, 0x6c, 0x6f],
                true,
                OpCode::Continuation,
                None,
                b"lo".to_vec(),
            ),
            // Unmasked ping with body "Hello".
            (
                vec![0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
                true,
                OpCode::Ping,
                None,
                b"Hello".to_vec(),
            ),
            // Masked pong with body "Hello", answering it.
            (
                vec![
                    0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
                ],
                true,
                OpCode::Pong,
                key,
                b"Hello".to_vec(),
            ),
        ];
        for (bytes, fin, opcode, mask, payload) in cases {
            let (frame, used) = Frame::parse(&bytes).expect("whole frame");
            assert_eq!(used, bytes.len());
            assert_eq!(frame.header.fin, fin);
            assert_eq!(frame.header.opcode, opcode);
            assert_eq!(frame.header.mask, mask);
            assert_eq!(frame.payload, payload);
            let mut out = Vec::new();
            encode_frame(&mut out, fin, opcode, &payload, mask);
            assert_eq!(out, bytes);
            // Every shorter prefix asks for more bytes.
            for cut in 0..bytes.len() {
                assert!(Frame::parse(&bytes[..cut]).is_none());
            }
        }
    }

    #[test]
    fn rfc_5_7_binary_256_and_64k_headers() {
        let payload = vec![0xAB; 256];
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Binary, &payload, None);
        assert_eq!(&out[..4], &[0x82, 0x7E, 0x01, 0x00]);
        let (frame, used) = Frame::parse(&out).unwrap();
        assert_eq!((frame.payload.len(), used), (256, 260));

        let payload = vec![0xCD; 65536];
        let mut out = Vec::new();
        encode_frame(&mut out, true, OpCode::Binary, &payload, None);
        assert_eq!(
            &out[..10],
            &[0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
        let (frame, used) = Frame::parse(&out).unwrap();
        assert_eq!((frame.payload.len(), used), (65536, 65546));
        assert_eq!(frame.header.length_form(), LengthForm::Long);
    }

    #[test]
    fn every_rule_is_checked() {
        let masked = |mut h: FrameHeader| {
            h.mask = Some([1, 2, 3, 4]);
            h
        };
        let text = masked(FrameHeader::new(OpCode::Text, 3));
        assert_eq!(text.check(Role::Server), Ok(()));
        assert_eq!(text.check(Role::Client), Err(ProtocolError::MaskedFrame));
        let mut rsv = text;
        rsv.rsv = 0b100;
        assert_eq!(rsv.check(Role::Server), Err(ProtocolError::ReservedBits(4)));
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            let h = masked(FrameHeader::new(OpCode::from_u8(op), 0));
            assert_eq!(
                h.check(Role::Server),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        let big_ping = masked(FrameHeader::new(OpCode::Ping, 126));
        assert_eq!(
            big_ping.check(Role::Server),
            Err(ProtocolError::ControlFrameTooLong(126))
        );
        let mut frag_close = masked(FrameHeader::new(OpCode::Close, 2));
        frag_close.fin = false;
        assert_eq!(
            frag_close.check(Role::Server),
            Err(ProtocolError::FragmentedControlFrame)
        );
        let bytes = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        let (h, n) = FrameHeader::parse(&bytes).unwrap();
        assert_eq!(n, 14);
        assert_eq!(h.check(Role::Server), Err(ProtocolError::LengthHighBit));
    }

    #[test]
    fn headers_round_trip_at_the_length_form_boundaries() {
        for len in [
            0u64,
            1,
            125,
            126,
            127,
            0xFFFF,
            0x1_0000,
            u32::MAX as u64 + 7,
        ] {
            for mask in [None, Some([9, 8, 7, 6])] {
                let mut h = FrameHeader::new(OpCode::Binary, len);
                h.mask = mask;
                let (bytes, n) = h.encode();
                assert_eq!(n, h.encoded_len());
                assert_eq!(FrameHeader::parse(&bytes[..n]), Some((h, n)));
                assert_eq!(FrameHeader::parse(&bytes[..n - 1]), None);
            }
        }
    }
}
