//! What the dissector knows of one frame: its header as sent, its payload
//! masked and unmasked, where it stands in the message stream, and the
//! rules it breaks.

use std::fmt::Write as _;

use crate::ws::close::CloseCode;
use crate::ws::error::ProtocolError;
use crate::ws::frame::{FrameHeader, LengthForm, OpCode};

/// Where a frame stands in the message stream (§5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A text or binary message in a single frame.
    Whole,
    /// One fragment of a text or binary message.
    Fragment {
        /// The message's opcode (text or binary), from its first frame.
        message: OpCode,
        /// The fragment's number in the message, from 1.
        number: usize,
        /// Whether it is the final fragment (FIN set).
        last: bool,
    },
    /// A control frame (§5.5); these may come between fragments.
    Control {
        /// Whether a fragmented message was open when it came.
        between_fragments: bool,
    },
    /// A frame that belongs to no message: a continuation with nothing to
    /// continue, or a reserved non-control opcode.
    Stray,
}

/// A close frame's payload as far as it can be read, valid or not (the
/// rules it breaks are in [`FrameReport::violations`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseSummary {
    /// The status code, when the payload has two bytes or more.
    pub code: Option<CloseCode>,
    /// The reason, with invalid UTF-8 replaced by U+FFFD.
    pub reason: String,
}

/// A fragmented message, reassembled, reported on its final fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// Text or binary.
    pub opcode: OpCode,
    /// How many frames carried it.
    pub frames: usize,
    /// The whole payload, unmasked.
    pub payload: Vec<u8>,
    /// The payload as text, for a text message that is valid UTF-8.
    pub text: Option<String>,
}

/// A compressed message inflated (RFC 7692 §7.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflated {
    /// The message as the sender wrote it, before compression.
    pub payload: Vec<u8>,
    /// The same as text, for a text message that is valid UTF-8.
    pub text: Option<String>,
}

/// One frame, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameReport {
    /// The frame's number in the capture, from 0.
    pub index: usize,
    /// Where the frame starts in the capture.
    pub offset: usize,
    /// The header's bytes as they were on the wire (2 to 14).
    pub header_bytes: Vec<u8>,
    /// The decoded header: FIN, RSV1-3, opcode, masking key, length.
    pub header: FrameHeader,
    /// The length form the sender used (§5.2).
    pub length_form: LengthForm,
    /// Whether that form is the shortest one for the length, as §5.2 asks.
    pub length_minimal: bool,
    /// The payload as sent (masked, when there is a key); only the bytes
    /// present when the capture is cut short.
    pub wire_payload: Vec<u8>,
    /// The payload with the mask removed.
    pub payload: Vec<u8>,
    /// The payload as text, when it is non-empty valid UTF-8.
    pub text: Option<String>,
    /// Payload bytes the header promised but the capture does not hold
    /// (0 for a whole frame).
    pub missing: u64,
    /// Where the frame stands in the message stream.
    pub part: Part,
    /// For a close frame, its code and reason.
    pub close: Option<CloseSummary>,
    /// On the final fragment of a fragmented message, the whole message.
    pub message: Option<MessageSummary>,
    /// Whether RSV1 marks this frame's message as compressed
    /// (permessage-deflate, RFC 7692 §6; only with [`super::Options::deflate`]).
    pub compressed: bool,
    /// On the last frame of a compressed message, the message inflated
    /// (RFC 7692 §7.2.2), when it inflates within the limit.
    pub inflated: Option<Inflated>,
    /// Every rule the frame breaks, each with its close code
    /// ([`ProtocolError::close_code`]) and section
    /// ([`ProtocolError::rfc_section`]).
    pub violations: Vec<ProtocolError>,
    /// Remarks that fail nothing (a length in a longer form than needed,
    /// a frame after the Close, …).
    pub notes: Vec<String>,
}

impl FrameReport {
    /// Whether the frame keeps every rule and is whole.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty() && self.missing == 0
    }

    /// The frame on one line, as trace logs show frames:
    /// `text fin=1 rsv=000 mask=37fa213d len=5 "Hello"`, then any missing
    /// bytes and broken rules.
    pub fn one_line(&self) -> String {
        let kind = match self.part {
            Part::Fragment { message, .. } => message,
            _ => self.header.opcode,
        };
        let mut line = self
            .header
            .line(Some(&self.payload))
            .previewed_as(kind)
            .to_string();
        if let Some(inflated) = &self.inflated {
            let _ = write!(line, " [inflated to {} bytes", inflated.payload.len());
            if let Some(text) = &inflated.text {
                let _ = write!(
                    line,
                    ": {}",
                    super::text::quote(text, super::ONE_LINE_CHARS)
                );
            }
            line.push(']');
        }
        if self.missing > 0 {
            let _ = write!(line, " [{} bytes missing]", self.missing);
        }
        for v in &self.violations {
            let _ = write!(
                line,
                " [breaks §{}: {} -> {}]",
                v.rfc_section(),
                v,
                v.close_code().0
            );
        }
        line
    }

    /// The frame as JSON, its fields in the order of [`FrameReport`]'s
    /// (`index`, `offset`, the header's fields, the payload, where the
    /// frame stands, the rules it breaks); `serde_json::to_value` gives the
    /// same fields as a `Value`.
    ///
    /// ```
    /// use wschat::dissect::{dissect, Options};
    /// let d = dissect(&[0x89, 0x80, 1, 2, 3, 4], &Options::default());
    /// let json = d.frames[0].to_json();
    /// assert!(json.starts_with(r#"{"index":0,"offset":0,"header_hex":"898001020304","fin":true,"#));
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The start of a frame whose header the capture cuts short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialHeader {
    /// Where it starts in the capture.
    pub offset: usize,
    /// The header bytes present.
    pub bytes: Vec<u8>,
    /// How many more header bytes are needed.
    pub missing: usize,
    /// When fewer than 2 bytes are present the header's size is not known
    /// yet: `missing` is then a lower bound.
    pub at_least: bool,
}
