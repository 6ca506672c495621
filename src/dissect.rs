//! The frame dissector: the bytes of one direction of a WebSocket
//! connection, taken apart field by field, with every rule of RFC 6455 that
//! they break and the close code a receiver would answer with.
//!
//! It is sans-I/O like [`crate::ws`], on which it is built: bytes go in,
//! [`FrameReport`]s come out. [`FrameHeader::parse`] reads the header
//! without judging it, [`FrameHeader::check`] applies the per-frame rules
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

use std::fmt::Write as _;

use serde::{Serialize, Serializer};

use crate::ws::Role;
use crate::ws::close::{CloseCode, CloseFrame};
use crate::ws::error::ProtocolError;
use crate::ws::frame::{FrameHeader, LengthForm, MAX_HEADER_LEN, OpCode};
use crate::ws::mask::apply_mask;
use crate::ws::message::Limits;
use crate::ws::utf8::Utf8Validator;

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
}

impl Options {
    /// Options for bytes going `direction`, with the default limits.
    pub fn new(direction: Direction) -> Options {
        Options {
            direction,
            limits: Limits::default(),
        }
    }
}

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

impl Part {
    fn describe(self) -> String {
        match self {
            Part::Whole => "a whole message in one frame".into(),
            Part::Fragment {
                message, number: 1, ..
            } => format!("the first fragment of a {} message", message.name()),
            Part::Fragment {
                message,
                number,
                last,
            } => format!(
                "fragment {number}{} of a {} message",
                if last { " (the final one)" } else { "" },
                message.name()
            ),
            Part::Control {
                between_fragments: true,
            } => "a control frame, between the fragments of a message".into(),
            Part::Control { .. } => "a control frame".into(),
            Part::Stray => "part of no message".into(),
        }
    }

    fn json(self) -> PartJson {
        match self {
            Part::Whole => PartJson::Whole,
            Part::Fragment {
                message,
                number,
                last,
            } => PartJson::Fragment {
                message: message.name(),
                number,
                last,
            },
            Part::Control { between_fragments } => PartJson::Control { between_fragments },
            Part::Stray => PartJson::Stray,
        }
    }
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

    /// The frame as annotated text, several lines (what `wschat dissect`
    /// prints for each frame).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let h = &self.header;
        let end = self.offset + self.header_bytes.len() + self.wire_payload.len();
        let _ = writeln!(
            out,
            "frame {}, bytes {}..{}: {}, {}",
            self.index + 1,
            self.offset,
            end,
            h.opcode.name(),
            self.part.describe()
        );
        let _ = writeln!(out, "  header   {}", spaced_hex(&self.header_bytes));
        let fin_note = if h.fin {
            "final frame of its message"
        } else {
            "more frames follow"
        };
        let _ = writeln!(out, "  FIN      {:<9} {fin_note}", u8::from(h.fin));
        let rsv_note = if h.rsv == 0 {
            "no extension bits"
        } else {
            "extension bits set, with no extension negotiated"
        };
        let _ = writeln!(out, "  RSV1-3   {:03b}       {rsv_note}", h.rsv);
        let op_note = match h.opcode {
            OpCode::Reserved(_) if h.opcode.is_control() => "reserved (control range)".into(),
            OpCode::Reserved(_) => "reserved (data range)".to_string(),
            op if op.is_control() => format!("{}, a control frame", op.name()),
            op => op.name().to_string(),
        };
        let _ = writeln!(
            out,
            "  opcode   {:<9} {op_note}",
            format!("0x{:X}", h.opcode.as_u8())
        );
        match h.mask {
            Some(key) => {
                let _ = writeln!(out, "  MASK     1         masking key {}", spaced_hex(&key));
            }
            None => {
                let _ = writeln!(out, "  MASK     0         not masked");
            }
        }
        let form = match self.length_form {
            LengthForm::Short => "7-bit form",
            LengthForm::Medium => "16-bit form (126, then 2 bytes)",
            LengthForm::Long => "64-bit form (127, then 8 bytes)",
        };
        let minimal = if self.length_minimal {
            "minimal"
        } else {
            "NOT minimal"
        };
        let _ = writeln!(out, "  length   {:<9} {form}, {minimal}", h.payload_len);
        if self.missing > 0 {
            let _ = writeln!(
                out,
                "  payload  {} of {} bytes: TRUNCATED, {} bytes missing",
                self.wire_payload.len(),
                h.payload_len,
                self.missing
            );
        } else {
            let _ = writeln!(out, "  payload  {} bytes", self.payload.len());
        }
        if !self.payload.is_empty() {
            if h.mask.is_some() {
                hex_block(&mut out, "as sent", &self.wire_payload);
                hex_block(&mut out, "unmasked", &self.payload);
            } else {
                hex_block(&mut out, "hex", &self.payload);
            }
            if let Some(text) = &self.text {
                let _ = writeln!(out, "    {:<9} {}", "text", quote(text, TEXT_SHOWN_BYTES));
            }
        }
        if let Some(close) = &self.close {
            match close.code {
                Some(code) => {
                    let _ = writeln!(out, "  close    code {code}, reason {:?}", close.reason);
                }
                None => {
                    let _ = writeln!(out, "  close    no status code (the receiver reports 1005)");
                }
            }
        }
        if let Some(m) = &self.message {
            let _ = write!(
                out,
                "  message  {} in {} frames, {} bytes",
                m.opcode.name(),
                m.frames,
                m.payload.len()
            );
            match &m.text {
                Some(text) => {
                    let _ = writeln!(out, ": {}", quote(text, TEXT_SHOWN_BYTES));
                }
                None => out.push('\n'),
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note     {note}");
        }
        for v in &self.violations {
            let _ = writeln!(
                out,
                "  BROKEN   RFC 6455 §{}: {} -> close {}",
                v.rfc_section(),
                v,
                v.close_code()
            );
        }
        if self.violations.is_empty() && self.missing == 0 {
            let _ = writeln!(out, "  ok       every rule kept");
        }
        out
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

impl Serialize for FrameReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let h = &self.header;
        FrameJson {
            index: self.index,
            offset: self.offset,
            header_hex: hex(&self.header_bytes),
            fin: h.fin,
            rsv: h.rsv,
            rsv1: h.rsv & 0b100 != 0,
            rsv2: h.rsv & 0b010 != 0,
            rsv3: h.rsv & 0b001 != 0,
            opcode: h.opcode.as_u8(),
            opcode_name: h.opcode.name(),
            control: h.opcode.is_control(),
            masked: h.mask.is_some(),
            mask_key: h.mask.map(|k| hex(&k)),
            length_form: match self.length_form {
                LengthForm::Short => "7-bit",
                LengthForm::Medium => "16-bit",
                LengthForm::Long => "64-bit",
            },
            length_minimal: self.length_minimal,
            payload_len: h.payload_len,
            missing: self.missing,
            wire_payload_hex: hex(&self.wire_payload),
            payload_hex: hex(&self.payload),
            text: self.text.as_deref(),
            part: self.part.json(),
            close: self.close.as_ref().map(|c| CloseJson {
                code: c.code.map(|c| c.0),
                reason: &c.reason,
            }),
            message: self.message.as_ref().map(|m| MessageJson {
                opcode: m.opcode.name(),
                frames: m.frames,
                len: m.payload.len(),
                payload_hex: hex(&m.payload),
                text: m.text.as_deref(),
            }),
            violations: self.violations.iter().map(ViolationJson::new).collect(),
            notes: &self.notes,
            one_line: self.one_line(),
            valid: self.is_valid(),
        }
        .serialize(serializer)
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

    /// The annotated text that `wschat dissect` prints.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let receiver = match self.direction {
            Direction::ClientToServer => "a server receives them, so every frame must be masked",
            Direction::ServerToClient => "a client receives them, so no frame may be masked",
        };
        let _ = writeln!(
            out,
            "{} bytes, {} ({receiver}, RFC 6455 §5.1)\n",
            self.len,
            self.direction.arrow()
        );
        for frame in &self.frames {
            out.push_str(&frame.to_text());
            out.push('\n');
        }
        if let Some(p) = &self.partial_header {
            let _ = writeln!(
                out,
                "bytes {}..{}: an unfinished frame header {}: TRUNCATED, {}{} more header byte{} needed\n",
                p.offset,
                p.offset + p.bytes.len(),
                spaced_hex(&p.bytes),
                if p.at_least { "at least " } else { "" },
                p.missing,
                if p.missing == 1 { "" } else { "s" }
            );
        }
        let n = self.frames.len();
        let _ = write!(out, "{n} frame{}", if n == 1 { "" } else { "s" });
        match self.first_violation() {
            Some((index, v)) => {
                let broken: usize = self.frames.iter().map(|f| f.violations.len()).sum();
                let _ = writeln!(
                    out,
                    ", {broken} broken rule{}. A receiver fails the connection at frame {} with close {}: {} (RFC 6455 §{}), and reads nothing after it.",
                    if broken == 1 { "" } else { "s" },
                    index + 1,
                    v.close_code(),
                    v,
                    v.rfc_section()
                );
            }
            None => {
                let _ = writeln!(out, ", every rule kept.");
            }
        }
        if self.is_truncated() {
            let _ = writeln!(
                out,
                "The capture ends in the middle of a frame (see TRUNCATED above)."
            );
        }
        if let Some((opcode, frames)) = self.open_message {
            let _ = writeln!(
                out,
                "A fragmented {} message is still open after {frames} frame{} (it needs a final fragment with FIN=1).",
                opcode.name(),
                if frames == 1 { "" } else { "s" }
            );
        }
        out
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

impl Serialize for Dissection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        DissectionJson {
            direction: self.direction.slug(),
            len: self.len,
            valid: self.is_valid(),
            truncated: self.is_truncated(),
            fails_at: self.first_violation().map(|(index, v)| FailsAtJson {
                frame: index,
                violation: ViolationJson::new(v),
            }),
            frames: &self.frames,
            partial_header: self.partial_header.as_ref().map(|p| PartialHeaderJson {
                offset: p.offset,
                hex: hex(&p.bytes),
                missing: p.missing,
                at_least: p.at_least,
            }),
            open_message: self.open_message.map(|(opcode, frames)| OpenMessageJson {
                opcode: opcode.name(),
                frames,
            }),
        }
        .serialize(serializer)
    }
}

// The JSON forms, one struct per object: serde writes a struct's fields in
// the order they are declared (a `serde_json::Value` would sort them).

#[derive(Serialize)]
struct DissectionJson<'a> {
    direction: &'static str,
    len: usize,
    valid: bool,
    truncated: bool,
    fails_at: Option<FailsAtJson>,
    frames: &'a [FrameReport],
    partial_header: Option<PartialHeaderJson>,
    open_message: Option<OpenMessageJson>,
}

/// The first broken rule, and the frame a receiver fails the connection on.
#[derive(Serialize)]
struct FailsAtJson {
    frame: usize,
    #[serde(flatten)]
    violation: ViolationJson,
}

#[derive(Serialize)]
struct PartialHeaderJson {
    offset: usize,
    hex: String,
    missing: usize,
    at_least: bool,
}

#[derive(Serialize)]
struct OpenMessageJson {
    opcode: &'static str,
    frames: usize,
}

#[derive(Serialize)]
struct FrameJson<'a> {
    index: usize,
    offset: usize,
    header_hex: String,
    fin: bool,
    rsv: u8,
    rsv1: bool,
    rsv2: bool,
    rsv3: bool,
    opcode: u8,
    opcode_name: &'static str,
    control: bool,
    masked: bool,
    mask_key: Option<String>,
    length_form: &'static str,
    length_minimal: bool,
    payload_len: u64,
    missing: u64,
    wire_payload_hex: String,
    payload_hex: String,
    text: Option<&'a str>,
    part: PartJson,
    close: Option<CloseJson<'a>>,
    message: Option<MessageJson<'a>>,
    violations: Vec<ViolationJson>,
    notes: &'a [String],
    one_line: String,
    valid: bool,
}

/// [`Part`] as JSON: `{"kind": "whole"}`, `{"kind": "fragment", …}`, ….
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PartJson {
    Whole,
    Fragment {
        message: &'static str,
        number: usize,
        last: bool,
    },
    Control {
        between_fragments: bool,
    },
    Stray,
}

#[derive(Serialize)]
struct CloseJson<'a> {
    code: Option<u16>,
    reason: &'a str,
}

#[derive(Serialize)]
struct MessageJson<'a> {
    opcode: &'static str,
    frames: usize,
    len: usize,
    payload_hex: String,
    text: Option<&'a str>,
}

#[derive(Serialize)]
struct ViolationJson {
    rule: String,
    section: &'static str,
    close_code: u16,
}

impl ViolationJson {
    fn new(v: &ProtocolError) -> ViolationJson {
        ViolationJson {
            rule: v.to_string(),
            section: v.rfc_section(),
            close_code: v.close_code().0,
        }
    }
}

/// A fragmented message being followed across frames.
#[derive(Debug)]
struct OpenMessage {
    opcode: OpCode,
    frames: usize,
    len: u64,
    data: Vec<u8>,
    utf8: Utf8Validator,
    utf8_failed: bool,
    too_big: bool,
}

/// The streaming dissector: feed it bytes in pieces of any size and get a
/// [`FrameReport`] for each frame as soon as its last byte arrives. It keeps
/// the bytes of one frame at a time, and the payload of a fragmented message
/// until its final fragment.
///
/// ```
/// use wschat::dissect::{Dissector, Options};
/// let mut d = Dissector::new(Options::default());
/// let bytes = [0x89, 0x80, 1, 2, 3, 4]; // a masked empty ping
/// assert!(d.feed(&bytes[..3]).is_empty());
/// let reports = d.feed(&bytes[3..]);
/// assert_eq!(reports[0].one_line(), "ping fin=1 rsv=000 mask=01020304 len=0");
/// ```
#[derive(Debug)]
pub struct Dissector {
    options: Options,
    /// The current frame's bytes so far: its header, then its payload.
    pending: Vec<u8>,
    /// The current frame's header and header length, once whole.
    header: Option<(FrameHeader, usize)>,
    /// Where `pending` starts in the stream.
    offset: usize,
    /// Frames reported so far.
    count: usize,
    message: Option<OpenMessage>,
    close_seen: bool,
    failed: bool,
}

impl Dissector {
    /// A dissector at the start of a stream.
    pub fn new(options: Options) -> Dissector {
        Dissector {
            options,
            pending: Vec::new(),
            header: None,
            offset: 0,
            count: 0,
            message: None,
            close_seen: false,
            failed: false,
        }
    }

    /// Feed the next bytes; returns the frames they complete.
    pub fn feed(&mut self, mut input: &[u8]) -> Vec<FrameReport> {
        let mut out = Vec::new();
        while !input.is_empty() {
            match self.header {
                None => {
                    let have = self.pending.len();
                    let take = input.len().min(MAX_HEADER_LEN - have);
                    self.pending.extend_from_slice(&input[..take]);
                    match FrameHeader::parse(&self.pending) {
                        None => input = &input[take..],
                        Some((header, header_len)) => {
                            // Bytes past the header go back to the input.
                            let extra = self.pending.len() - header_len;
                            self.pending.truncate(header_len);
                            input = &input[take - extra..];
                            self.header = Some((header, header_len));
                        }
                    }
                }
                Some((header, header_len)) => {
                    let got = (self.pending.len() - header_len) as u64;
                    let want = header.payload_len - got;
                    let take = (input.len() as u64).min(want) as usize;
                    self.pending.extend_from_slice(&input[..take]);
                    input = &input[take..];
                }
            }
            if let Some((header, header_len)) = self.header
                && (self.pending.len() - header_len) as u64 == header.payload_len
            {
                out.push(self.report(header, header_len, 0));
            }
        }
        out
    }

    /// The fragmented message open now, if any: its opcode and how many
    /// frames it has had.
    pub fn open_message(&self) -> Option<(OpCode, usize)> {
        self.message.as_ref().map(|m| (m.opcode, m.frames))
    }

    /// The stream has ended: the report of a frame it cut short (with
    /// [`FrameReport::missing`] set), or the header it cut short. The
    /// dissector is then between frames again.
    pub fn finish(&mut self) -> (Option<FrameReport>, Option<PartialHeader>) {
        if let Some((header, header_len)) = self.header {
            let got = (self.pending.len() - header_len) as u64;
            let missing = header.payload_len - got;
            return (Some(self.report(header, header_len, missing)), None);
        }
        if self.pending.is_empty() {
            return (None, None);
        }
        let bytes = std::mem::take(&mut self.pending);
        let (needed, at_least) = match bytes.as_slice() {
            [_, b1, ..] => {
                let ext = match b1 & 0x7F {
                    126 => 2,
                    127 => 8,
                    _ => 0,
                };
                (2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }, false)
            }
            _ => (2, true),
        };
        let offset = self.offset;
        self.offset += bytes.len();
        let partial = PartialHeader {
            offset,
            missing: needed - bytes.len(),
            bytes,
            at_least,
        };
        (None, Some(partial))
    }

    /// Build the report of the current frame, `missing` payload bytes short,
    /// and apply the rules that span frames.
    fn report(&mut self, header: FrameHeader, header_len: usize, missing: u64) -> FrameReport {
        let raw = std::mem::take(&mut self.pending);
        self.header = None;
        let offset = self.offset;
        self.offset += raw.len();
        let index = self.count;
        self.count += 1;

        let header_bytes = raw[..header_len].to_vec();
        let wire_payload = raw[header_len..].to_vec();
        let mut payload = wire_payload.clone();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        // The second byte says which form the sender chose (§5.2).
        let length_form = match raw[1] & 0x7F {
            126 => LengthForm::Medium,
            127 => LengthForm::Long,
            _ => LengthForm::Short,
        };
        let length_minimal = length_form == header.length_form();
        let complete = missing == 0;

        let mut violations = header_violations(&header, self.options.direction.receiver());
        let limits = self.options.limits;
        let frame_too_big = header.payload_len > limits.max_frame_size as u64;
        if frame_too_big {
            violations.push(ProtocolError::FrameTooBig {
                len: header.payload_len,
                limit: limits.max_frame_size,
            });
        }
        let mut notes = Vec::new();
        if !length_minimal {
            notes.push(format!(
                "the length {} fits a shorter form: §5.2 asks senders for the minimal one (receivers, wschat included, accept it)",
                header.payload_len
            ));
        }
        if header.mask == Some([0; 4]) && !payload.is_empty() {
            notes.push(
                "the masking key is 00000000, so the payload goes in the clear (§5.3 asks for an unpredictable key)"
                    .into(),
            );
        }
        if self.failed {
            notes.push(
                "after a broken rule: a receiver has failed the connection and does not read this (§7.1.7)"
                    .into(),
            );
        } else if self.close_seen {
            notes.push(
                "after the Close frame: nothing may be sent after a Close, and a receiver discards it (§5.5.1)"
                    .into(),
            );
        }

        let mut message = None;
        let part = match header.opcode {
            OpCode::Continuation => match self.message.as_mut() {
                None => {
                    violations.push(ProtocolError::UnexpectedContinuation);
                    Part::Stray
                }
                Some(m) => {
                    m.frames += 1;
                    m.len = m.len.saturating_add(header.payload_len);
                    Part::Fragment {
                        message: m.opcode,
                        number: m.frames,
                        last: header.fin,
                    }
                }
            },
            OpCode::Text | OpCode::Binary => {
                if self.message.is_some() {
                    violations.push(ProtocolError::ExpectedContinuation);
                }
                // The new frame starts a new message either way.
                self.message = Some(OpenMessage {
                    opcode: header.opcode,
                    frames: 1,
                    len: header.payload_len,
                    data: Vec::new(),
                    utf8: Utf8Validator::new(),
                    utf8_failed: false,
                    too_big: false,
                });
                if header.fin {
                    Part::Whole
                } else {
                    Part::Fragment {
                        message: header.opcode,
                        number: 1,
                        last: false,
                    }
                }
            }
            op if op.is_control() => Part::Control {
                between_fragments: self.message.is_some(),
            },
            _ => Part::Stray,
        };

        // The message this data frame belongs to: size, UTF-8, reassembly.
        if matches!(part, Part::Whole | Part::Fragment { .. })
            && let Some(m) = self.message.as_mut()
        {
            if !m.too_big && !frame_too_big && m.len > limits.max_message_size as u64 {
                m.too_big = true;
                violations.push(ProtocolError::MessageTooBig {
                    len: m.len,
                    limit: limits.max_message_size,
                });
            }
            if m.opcode == OpCode::Text && !m.utf8_failed {
                let broken = m.utf8.feed(&payload).is_err()
                    || (header.fin && complete && !m.utf8.is_complete());
                if broken {
                    m.utf8_failed = true;
                    violations.push(ProtocolError::InvalidUtf8);
                }
            }
            if part != Part::Whole {
                m.data.extend_from_slice(&payload);
            }
            if header.fin
                && let Some(m) = self.message.take()
                && part != Part::Whole
            {
                let text = (m.opcode == OpCode::Text && complete)
                    .then(|| String::from_utf8(m.data.clone()).ok())
                    .flatten();
                message = Some(MessageSummary {
                    opcode: m.opcode,
                    frames: m.frames,
                    payload: m.data,
                    text,
                });
            }
        }

        let mut close = None;
        if header.opcode == OpCode::Close {
            close = Some(CloseSummary {
                code: payload
                    .get(..2)
                    .map(|b| CloseCode(u16::from_be_bytes([b[0], b[1]]))),
                reason: String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned(),
            });
            if complete && let Err(e) = CloseFrame::parse(&payload) {
                violations.push(e);
            }
            self.close_seen = true;
        }

        if !violations.is_empty() {
            self.failed = true;
        }
        let text = if payload.is_empty() {
            None
        } else {
            std::str::from_utf8(&payload).ok().map(str::to_string)
        };
        FrameReport {
            index,
            offset,
            header_bytes,
            header,
            length_form,
            length_minimal,
            wire_payload,
            payload,
            text,
            missing,
            part,
            close,
            message,
            violations,
            notes,
        }
    }
}

/// Every rule of [`FrameHeader::check`] that `header` breaks, not only the
/// first: each broken field is set right in a copy and the copy checked
/// again.
fn header_violations(header: &FrameHeader, receiver: Role) -> Vec<ProtocolError> {
    let mut h = *header;
    let mut found = Vec::new();
    // check() knows seven rules; each round fixes one.
    for _ in 0..8 {
        let Err(e) = h.check(receiver) else {
            break;
        };
        match e {
            ProtocolError::UnmaskedFrame => h.mask = Some([0; 4]),
            ProtocolError::MaskedFrame => h.mask = None,
            ProtocolError::ReservedBits(_) => h.rsv = 0,
            // A reserved opcode keeps its class: 0xB-0xF are control
            // opcodes (§5.5), and the control rules still apply to them.
            ProtocolError::ReservedOpcode(bits) => {
                h.opcode = if bits & 0x8 != 0 {
                    OpCode::Ping
                } else {
                    OpCode::Binary
                }
            }
            ProtocolError::LengthHighBit => h.payload_len &= !(1 << 63),
            ProtocolError::ControlFrameTooLong(_) => h.payload_len = 0,
            ProtocolError::FragmentedControlFrame => h.fin = true,
            other => {
                found.push(other);
                break;
            }
        }
        found.push(e);
    }
    found
}

/// A frame header on one line, with a preview of its (unmasked) payload when
/// there is one: `text fin=1 rsv=000 mask=37fa213d len=5 "Hello"`. Without a
/// payload the line stops after `len=`, which is what a receiver knows when
/// the header has just arrived (trace logs print it then). The codec renders
/// it: this is [`FrameHeader::line`] as a `String`.
///
/// ```
/// use wschat::dissect::one_line;
/// use wschat::ws::frame::{FrameHeader, OpCode};
/// let header = FrameHeader::new(OpCode::Binary, 2);
/// assert_eq!(one_line(&header, None), "binary fin=1 rsv=000 mask=- len=2");
/// assert_eq!(one_line(&header, Some(&[1, 2])), "binary fin=1 rsv=000 mask=- len=2 0x0102");
/// ```
pub fn one_line(header: &FrameHeader, payload: Option<&[u8]>) -> String {
    header.line(payload).to_string()
}

/// `text` quoted and escaped, cut after `max` characters with `…`.
fn quote(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

/// Lower-case hex, no separators.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Lower-case hex, a space between bytes.
fn spaced_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A labelled hex dump: one line up to 16 bytes, else 16 per line with
/// offsets; at most [`TEXT_SHOWN_BYTES`].
fn hex_block(out: &mut String, label: &str, bytes: &[u8]) {
    let shown = &bytes[..bytes.len().min(TEXT_SHOWN_BYTES)];
    if bytes.len() <= 16 {
        let _ = writeln!(out, "    {label:<9} {}", spaced_hex(bytes));
    } else {
        for (i, line) in shown.chunks(16).enumerate() {
            let first = if i == 0 { label } else { "" };
            let _ = writeln!(out, "    {first:<9} {:04x}  {}", i * 16, spaced_hex(line));
        }
    }
    if shown.len() < bytes.len() {
        let _ = writeln!(
            out,
            "    {:<9} … {} more bytes (--json shows them all)",
            "",
            bytes.len() - shown.len()
        );
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
