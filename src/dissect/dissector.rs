//! The streaming dissector: bytes in, a [`FrameReport`] per frame out, with
//! the rules that span frames.

use super::Options;
use super::report::{CloseSummary, FrameReport, Inflated, MessageSummary, Part, PartialHeader};
use crate::ws::Role;
use crate::ws::close::{CloseCode, CloseFrame};
use crate::ws::deflate::{InflateError, Inflater, RSV1};
use crate::ws::error::ProtocolError;
use crate::ws::frame::{FrameHeader, LengthForm, MAX_HEADER_LEN, OpCode};
use crate::ws::mask::apply_mask;
use crate::ws::utf8::Utf8Validator;

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
    /// RSV1 was set on its first frame, with permessage-deflate on: this
    /// inflates it as its frames come (RFC 7692 §7.2.2), into `inflated`.
    inflater: Option<Inflater>,
    inflated: Vec<u8>,
    /// Inflating failed (corrupt or over the limit): reported once.
    inflate_failed: bool,
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

        // RFC 7692 §6: with permessage-deflate, RSV1 marks a compressed
        // message, on its first frame only (§6.1); the other rules apply
        // to the rest of the header as ever.
        let rsv1 = self.options.deflate && header.rsv & RSV1 != 0;
        let mut rest = header;
        if rsv1 {
            rest.rsv &= !RSV1;
        }
        let mut violations = header_violations(&rest, self.options.direction.receiver());
        if rsv1 && !matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            violations.push(ProtocolError::MisplacedCompressionBit(header.opcode.name()));
        }
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
        let mut inflated = None;
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
                    inflater: rsv1.then(Inflater::new),
                    inflated: Vec::new(),
                    inflate_failed: false,
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
            // A compressed message is measured as it inflates, below.
            let compressed = m.inflater.is_some();
            if !compressed && !m.too_big && !frame_too_big && m.len > limits.max_message_size as u64
            {
                m.too_big = true;
                violations.push(ProtocolError::MessageTooBig {
                    len: m.len,
                    limit: limits.max_message_size,
                });
            }
            if let Some(inflater) = m.inflater.as_mut()
                && !m.inflate_failed
            {
                let before = m.inflated.len();
                let limit = limits.max_message_size;
                let mut result = inflater.feed(&payload, &mut m.inflated, limit);
                if result.is_ok() && header.fin && complete {
                    result = inflater.finish(&mut m.inflated, limit);
                }
                if let Err(e) = result {
                    m.inflate_failed = true;
                    violations.push(match e {
                        InflateError::TooBig { len } => ProtocolError::MessageTooBig { len, limit },
                        InflateError::Corrupt => ProtocolError::BadCompressedData,
                    });
                }
                // UTF-8 is checked on the inflated text (§7.2.2).
                if m.opcode == OpCode::Text && !m.utf8_failed && !m.inflate_failed {
                    let broken = m.utf8.feed(&m.inflated[before..]).is_err()
                        || (header.fin && complete && !m.utf8.is_complete());
                    if broken {
                        m.utf8_failed = true;
                        violations.push(ProtocolError::InvalidUtf8);
                    }
                }
            }
            if !compressed && m.opcode == OpCode::Text && !m.utf8_failed {
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
            if header.fin && complete && m.inflater.is_some() && !m.inflate_failed {
                let text = (m.opcode == OpCode::Text)
                    .then(|| String::from_utf8(m.inflated.clone()).ok())
                    .flatten();
                inflated = Some(Inflated {
                    payload: std::mem::take(&mut m.inflated),
                    text,
                });
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
            compressed: rsv1 && matches!(header.opcode, OpCode::Text | OpCode::Binary),
            inflated,
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
