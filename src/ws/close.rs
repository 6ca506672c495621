//! Close frames: status codes and reasons, RFC 6455 §5.5.1 and §7.4.
//!
//! A Close frame's payload is either empty, or a 2-byte big-endian status
//! code followed by a UTF-8 reason. A peer that receives a Close answers with
//! a Close (usually echoing the code) and then, on the server, closes TCP.

use std::fmt;

use super::error::ProtocolError;

/// A close status code (RFC 6455 §7.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page closed).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a kind of data the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no code was present. Reported locally, never sent on the wire.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection closed without a Close frame. Never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: data inconsistent with its type (e.g. bad UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client) the server did not negotiate a required extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether this code may appear in a Close frame on the wire (§7.4.1,
    /// §7.4.2): 1000-1003, 1007-1011, and 3000-4999 (registered libraries
    /// and frameworks, and private use). 1004-1006 and 1015 are reserved or
    /// local-only; every other value below 3000 is unassigned.
    ///
    /// ```
    /// use wschat::ws::CloseCode;
    /// assert!(CloseCode(1000).is_allowed_on_wire());
    /// assert!(CloseCode(4001).is_allowed_on_wire());
    /// assert!(!CloseCode(1005).is_allowed_on_wire());
    /// assert!(!CloseCode(999).is_allowed_on_wire());
    /// ```
    pub fn is_allowed_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            1000 => "normal closure",
            1001 => "going away",
            1002 => "protocol error",
            1003 => "unsupported data",
            1005 => "no status received",
            1006 => "abnormal closure",
            1007 => "invalid payload data",
            1008 => "policy violation",
            1009 => "message too big",
            1010 => "mandatory extension",
            1011 => "internal error",
            3000..=3999 => "registered",
            4000..=4999 => "private use",
            _ => "invalid",
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// A Close frame's payload: a code and a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code.
    pub code: CloseCode,
    /// The reason, UTF-8, at most 123 bytes on the wire.
    pub reason: String,
}

/// The longest reason that fits: a control frame holds 125 bytes, 2 of which
/// are the code (§5.5).
pub const MAX_REASON_BYTES: usize = 123;

impl CloseFrame {
    /// A close frame with `code` and `reason`. A reason longer than
    /// [`MAX_REASON_BYTES`] is cut at a character boundary.
    pub fn new(code: CloseCode, reason: &str) -> CloseFrame {
        let mut end = reason.len().min(MAX_REASON_BYTES);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        CloseFrame {
            code,
            reason: reason[..end].to_string(),
        }
    }

    /// Parse a received Close payload (§5.5.1). `Ok(None)` for an empty
    /// payload (no status code).
    ///
    /// ```
    /// use wschat::ws::{CloseCode, CloseFrame, ProtocolError};
    /// let frame = CloseFrame::parse(&[0x03, 0xe8, b'b', b'y', b'e']).unwrap().unwrap();
    /// assert_eq!(frame.code, CloseCode::NORMAL);
    /// assert_eq!(frame.reason, "bye");
    /// assert_eq!(CloseFrame::parse(&[]), Ok(None));
    /// assert_eq!(CloseFrame::parse(&[0x03]), Err(ProtocolError::CloseFrameOneByte));
    /// ```
    pub fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, ProtocolError> {
        match payload {
            [] => Ok(None),
            [_] => Err(ProtocolError::CloseFrameOneByte),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_allowed_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Some(CloseFrame {
                    code,
                    reason: reason.to_string(),
                }))
            }
        }
    }

    /// The payload bytes: the code big-endian, then the reason.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.reason.len());
        out.extend_from_slice(&self.code.0.to_be_bytes());
        out.extend_from_slice(self.reason.as_bytes());
        out
    }
}
