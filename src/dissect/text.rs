//! The annotated text of a dissection (`wschat dissect`), and the
//! helpers that print bytes.

use std::fmt::Write as _;

use super::report::{FrameReport, Part};
use super::{Direction, Dissection, TEXT_SHOWN_BYTES};
use crate::ws::deflate::RSV1;
use crate::ws::frame::{FrameHeader, LengthForm, OpCode};

impl Part {
    pub(super) fn describe(self) -> String {
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
}

impl FrameReport {
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
        let rsv_note = if self.compressed && h.rsv == RSV1 {
            "RSV1: a compressed message (permessage-deflate, RFC 7692 §6)"
        } else if self.compressed {
            "RSV1: compressed (RFC 7692 §6); RSV2-3 set, with no extension for them"
        } else if h.rsv == 0 {
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
        if let Some(inflated) = &self.inflated {
            let _ = writeln!(
                out,
                "  inflated {} bytes, the message before compression (RFC 7692 §7.2.2)",
                inflated.payload.len()
            );
            match &inflated.text {
                Some(text) => {
                    let _ = writeln!(out, "    {:<9} {}", "text", quote(text, TEXT_SHOWN_BYTES));
                }
                None if !inflated.payload.is_empty() => {
                    hex_block(&mut out, "hex", &inflated.payload);
                }
                None => {}
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
}

impl Dissection {
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
pub(super) fn quote(text: &str, max: usize) -> String {
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
