//! The JSON forms of a dissection (`wschat dissect --json`, `/inspect`).

use serde::{Serialize, Serializer};

use super::Dissection;
use super::report::{FrameReport, Part};
use super::text::hex;
use crate::ws::error::ProtocolError;
use crate::ws::frame::LengthForm;

impl Part {
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
            compressed: self.compressed,
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
            inflated: self.inflated.as_ref().map(|i| InflatedJson {
                len: i.payload.len(),
                payload_hex: hex(&i.payload),
                text: i.text.as_deref(),
            }),
            violations: self.violations.iter().map(ViolationJson::new).collect(),
            notes: &self.notes,
            one_line: self.one_line(),
            valid: self.is_valid(),
        }
        .serialize(serializer)
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
    /// Only with permessage-deflate: absent otherwise, so the JSON of a
    /// capture without it is what it always was.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    compressed: bool,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    inflated: Option<InflatedJson<'a>>,
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
struct InflatedJson<'a> {
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
