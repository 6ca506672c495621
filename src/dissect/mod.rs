//! The frame dissector: the bytes of one direction of a WebSocket
//! connection, taken apart field by field, with every rule of RFC 6455 that
//! they break and the close code a receiver would answer with.
//!
//! It is sans-I/O like [`crate::ws`], on which it is built: bytes go in,
//! [`FrameReport`]s come out. [`FrameHeader::parse`](crate::ws::frame::FrameHeader::parse) reads the header
//! without judging it, [`FrameHeader::check`](crate::ws::frame::FrameHeader::check) applies the per-frame rules
//! (§5.1, §5.2, §5.5), and the [`Dissector`] adds the rules that span
//! frames, as the [`crate::ws::Decoder`] does: fragments (§5.4), UTF-8 across
//! a whole text message (§8.1), close payloads (§5.5.1, §7.4) and the size
//! limits (§7.4.1, 1009). Unlike the decoder it does not stop at the first
//! broken rule: it reports every frame, and says which frame a receiver
//! would have failed the connection on.
//!
//! ```
//! use wschat::dissect::{dissect, Options};
//! // RFC 6455 §5.7: a single-frame masked text message, "Hello".
//! let bytes = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
//! let d = dissect(&bytes, &Options::default());
//! assert!(d.is_valid());
//! assert_eq!(d.frames[0].payload, b"Hello");
//! assert_eq!(d.frames[0].one_line(), r#"text fin=1 rsv=000 mask=37fa213d len=5 "Hello""#);
//! ```
//!
//! Three renderings: [`Dissection::to_text`] (annotated, several lines per
//! frame, for `wschat dissect`), [`FrameReport::one_line`] and [`one_line`]
//! (for traces and logs), and [`Dissection::to_json`].
//!
//! The module's parts: [`report`] (what is known of a frame), the
//! streaming [`Dissector`] that builds the reports, and the text and JSON
//! renderings.

mod dissector;
mod json;
pub mod report;
mod text;

use crate::ws::Role;
use crate::ws::error::ProtocolError;
use crate::ws::frame::OpCode;
use crate::ws::message::Limits;

pub use dissector::Dissector;
pub use report::{CloseSummary, FrameReport, Inflated, MessageSummary, Part, PartialHeader};
pub use text::{hex, one_line};

/// Payload bytes shown by [`Dissection::to_text`] before it says how many
/// more there are ([`Dissection::to_json`] shows them all).
pub const TEXT_SHOWN_BYTES: usize = 256;

/// Characters of a text payload shown by the one-line form.
pub use crate::ws::frame::ONE_LINE_CHARS;

/// Bytes of a binary payload shown (as hex) by the one-line form.
pub use crate::ws::frame::ONE_LINE_BYTES;

/// Which way the captured bytes travelled. It decides who receives them, and
/// so the masking rule (§5.1): frames to a server must be masked, frames to
/// a client must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Sent by a client, received by a server (the default).
    #[default]
    ClientToServer,
    /// Sent by a server, received by a client.
    ServerToClient,
}

impl Direction {
    /// The role of the endpoint that receives these bytes, which is the role
    /// whose rules apply.
    pub fn receiver(self) -> Role {
        match self {
            Direction::ClientToServer => Role::Server,
            Direction::ServerToClient => Role::Client,
        }
    }

    /// `client → server` or `server → client`.
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client → server",
            Direction::ServerToClient => "server → client",
        }
    }

    /// `client-to-server` or `server-to-client`, for JSON.
    pub fn slug(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client-to-server",
            Direction::ServerToClient => "server-to-client",
        }
    }
}

/// What the dissector checks against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Which way the bytes went.
    pub direction: Direction,
    /// The size limits of the receiver (1009 past them); wschat's defaults
    /// unless told otherwise.
    pub limits: Limits,
    /// permessage-deflate was negotiated (RFC 7692): RSV1 on the first
    /// frame of a text or binary message marks it compressed, and the
    /// message is inflated (within [`Options::limits`]) to be checked and
    /// shown. Off, RSV1 is a reserved bit like the others (RFC 6455 §5.2).
    pub deflate: bool,
}

impl Options {
    /// Options for bytes going `direction`, with the default limits, no
    /// extension.
    pub fn new(direction: Direction) -> Options {
        Options {
            direction,
            limits: Limits::default(),
            deflate: false,
        }
    }

    /// The same options with permessage-deflate negotiated, or not.
    ///
    /// ```
    /// use wschat::dissect::{dissect, Direction, Options};
    /// // RFC 7692 §7.2.3.1: "Hello" compressed, from a server.
    /// let bytes = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    /// let d = dissect(&bytes, &Options::new(Direction::ServerToClient).with_deflate(true));
    /// assert!(d.is_valid() && d.frames[0].compressed);
    /// assert_eq!(d.frames[0].inflated.as_ref().unwrap().text.as_deref(), Some("Hello"));
    /// // Without the extension, RSV1 is a reserved bit: 1002.
    /// assert!(!dissect(&bytes, &Options::new(Direction::ServerToClient)).is_valid());
    /// ```
    pub fn with_deflate(mut self, on: bool) -> Options {
        self.deflate = on;
        self
    }
}

/// A whole capture, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dissection {
    /// Which way the bytes went.
    pub direction: Direction,
    /// The capture's length in bytes.
    pub len: usize,
    /// Every frame, in order; the last one may be cut short
    /// ([`FrameReport::missing`]).
    pub frames: Vec<FrameReport>,
    /// A header the capture ends in the middle of.
    pub partial_header: Option<PartialHeader>,
    /// A fragmented message still waiting for its final fragment at the end
    /// of the capture: its opcode and the frames seen. Not a broken rule.
    pub open_message: Option<(OpCode, usize)>,
}

/// Take apart `bytes`, the frames of one direction of a connection after the
/// handshake.
///
/// ```
/// use wschat::dissect::{dissect, Direction, Options};
/// use wschat::ws::ProtocolError;
/// // The same "Hello", unmasked: fine from a server, not from a client.
/// let bytes = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
/// assert!(dissect(&bytes, &Options::new(Direction::ServerToClient)).is_valid());
/// let d = dissect(&bytes, &Options::new(Direction::ClientToServer));
/// assert_eq!(d.frames[0].violations, [ProtocolError::UnmaskedFrame]);
/// assert_eq!(d.first_violation().unwrap().1.close_code().0, 1002);
/// ```
pub fn dissect(bytes: &[u8], options: &Options) -> Dissection {
    let mut dissector = Dissector::new(*options);
    let mut frames = dissector.feed(bytes);
    let (last, partial_header) = dissector.finish();
    frames.extend(last);
    let open_message = dissector.open_message();
    Dissection {
        direction: options.direction,
        len: bytes.len(),
        frames,
        partial_header,
        open_message,
    }
}

impl Dissection {
    /// Whether every frame is whole and keeps every rule.
    pub fn is_valid(&self) -> bool {
        self.partial_header.is_none() && self.frames.iter().all(FrameReport::is_valid)
    }

    /// Whether the capture ends in the middle of a frame.
    pub fn is_truncated(&self) -> bool {
        self.partial_header.is_some() || self.frames.iter().any(|f| f.missing > 0)
    }

    /// The first broken rule and the frame (index) that broke it: where a
    /// receiver fails the connection, and the close code it sends
    /// (§7.1.7). A receiver reads nothing after it.
    pub fn first_violation(&self) -> Option<(usize, &ProtocolError)> {
        self.frames
            .iter()
            .find_map(|f| f.violations.first().map(|v| (f.index, v)))
    }

    /// The whole dissection as JSON (for `wschat dissect --json`), its
    /// fields in the order of [`Dissection`]'s after a summary (`direction`,
    /// `len`, `valid`, `truncated`, `fails_at`); each frame as
    /// [`FrameReport::to_json`] writes it.
    ///
    /// ```
    /// use wschat::dissect::{dissect, Options};
    /// let d = dissect(&[0x81, 0x05, b'H', b'e', b'l', b'l', b'o'], &Options::default());
    /// let json = d.to_json();
    /// assert!(json.starts_with(r#"{"direction":"client-to-server","len":7,"valid":false,"#));
    /// let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    /// assert_eq!(value["fails_at"]["close_code"], 1002);
    /// assert_eq!(value["frames"][0]["text"], "Hello");
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `dissect` fuzz target: a continuation whose length has
    /// the high bit set (a broken rule, still reported) added to an open
    /// message's length overflowed it.
    #[test]
    fn a_continuation_with_a_huge_length_is_reported_not_a_panic() {
        let mut d = Dissector::new(Options::new(Direction::ServerToClient));
        let mut bytes = vec![0x01, 0x01, b'a', 0x80, 0x7f];
        bytes.extend([0xff; 8]);
        let mut reports = d.feed(&bytes);
        reports.extend(d.finish().0);
        assert_eq!(reports.len(), 2);
        assert_eq!(
            reports[1].violations.first(),
            Some(&ProtocolError::LengthHighBit)
        );
    }

    fn client(bytes: &[u8]) -> Dissection {
        dissect(bytes, &Options::new(Direction::ClientToServer))
    }

    #[test]
    fn every_rule_of_a_bad_header_is_listed() {
        // RSV1+RSV3, opcode 0xB, not FIN, unmasked, 126 bytes: five rules.
        let mut bytes = vec![0x5B, 0x7E, 0x00, 0x7E];
        bytes.extend([0u8; 126]);
        let d = client(&bytes);
        assert_eq!(
            d.frames[0].violations,
            [
                ProtocolError::UnmaskedFrame,
                ProtocolError::ReservedBits(0b101),
                ProtocolError::ReservedOpcode(0xB),
                ProtocolError::ControlFrameTooLong(126),
                ProtocolError::FragmentedControlFrame,
            ]
        );
    }

    #[test]
    fn byte_at_a_time_gives_the_same_reports() {
        let mut bytes = Vec::new();
        crate::ws::frame::encode_frame(
            &mut bytes,
            false,
            OpCode::Text,
            "hé".as_bytes(),
            Some([1, 2, 3, 4]),
        );
        crate::ws::frame::encode_frame(&mut bytes, true, OpCode::Ping, b"", Some([1, 2, 3, 4]));
        crate::ws::frame::encode_frame(
            &mut bytes,
            true,
            OpCode::Continuation,
            "llo".as_bytes(),
            Some([5, 6, 7, 8]),
        );
        let whole = client(&bytes).frames;
        let mut d = Dissector::new(Options::default());
        let mut pieces = Vec::new();
        for b in &bytes {
            pieces.extend(d.feed(std::slice::from_ref(b)));
        }
        assert_eq!(pieces, whole);
        assert_eq!(whole.len(), 3);
        assert_eq!(
            whole[2].message.as_ref().unwrap().text.as_deref(),
            Some("héllo")
        );
    }
}
