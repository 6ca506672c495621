//! One error type for every rule a peer can break, each with its close code.
//!
//! RFC 6455 §7.1.7 says a peer that breaks the protocol is answered by
//! *failing the WebSocket connection*: send a Close frame with a status code
//! that names the kind of failure (§7.4.1), then close the TCP connection and
//! read nothing more. Every check in the codec returns a [`ProtocolError`], and
//! [`ProtocolError::close_code`] is the only place that decides which code is
//! sent, so the mapping can be read (and tested) in one screen.

use std::fmt;

use super::close::CloseCode;

/// A rule of RFC 6455 that the peer broke, or a limit it went past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// §5.1: a client must mask every frame it sends to the server.
    UnmaskedFrame,
    /// §5.1: a server must not mask the frames it sends.
    MaskedFrame,
    /// §5.2: RSV1-3 must be 0 unless an extension defines them (none is
    /// negotiated). Holds the three bits, RSV1 as 0b100.
    ReservedBits(u8),
    /// §5.2: opcodes 0x3-0x7 and 0xB-0xF are reserved.
    ReservedOpcode(u8),
    /// §5.2: the most significant bit of a 64-bit length must be 0.
    LengthHighBit,
    /// §5.5: control frames carry at most 125 bytes of payload.
    ControlFrameTooLong(u64),
    /// §5.5: control frames must not be fragmented (FIN must be set).
    FragmentedControlFrame,
    /// §5.4: a continuation frame arrived with no fragmented message open.
    UnexpectedContinuation,
    /// §5.4: a new text or binary frame arrived while a fragmented message
    /// was still waiting for its continuation frames.
    ExpectedContinuation,
    /// §8.1: a text message (or a close reason) is not valid UTF-8.
    InvalidUtf8,
    /// §7.4.1 1009: a frame's declared payload is larger than the limit.
    FrameTooBig {
        /// The length the frame header declared.
        len: u64,
        /// The configured frame size limit.
        limit: usize,
    },
    /// §7.4.1 1009: the message being assembled would pass the limit.
    MessageTooBig {
        /// The size the message would reach with this frame.
        len: u64,
        /// The configured message size limit.
        limit: usize,
    },
    /// §5.5.1: a close payload of exactly one byte (a code needs two).
    CloseFrameOneByte,
    /// §7.4: a close code that may not be sent on the wire.
    InvalidCloseCode(u16),
    /// §5.2 with RFC 7692 §6.1: with permessage-deflate negotiated, RSV1
    /// ("compressed") may be set only on the first frame of a text or
    /// binary message, never on a control frame or a continuation frame.
    /// Holds the opcode's name.
    MisplacedCompressionBit(&'static str),
    /// §9 with RFC 7692 §7.2.2: a compressed message is not a valid
    /// DEFLATE stream.
    BadCompressedData,
}

impl ProtocolError {
    /// The status code (RFC 6455 §7.4.1) sent in the Close frame that fails
    /// the connection for this error.
    ///
    /// ```
    /// use wschat::ws::{CloseCode, ProtocolError};
    /// assert_eq!(ProtocolError::UnmaskedFrame.close_code(), CloseCode::PROTOCOL_ERROR);
    /// assert_eq!(ProtocolError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::BadCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => {
                CloseCode::TOO_BIG
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// The RFC 6455 section that states the rule.
    pub fn rfc_section(&self) -> &'static str {
        match self {
            ProtocolError::UnmaskedFrame | ProtocolError::MaskedFrame => "5.1",
            ProtocolError::ReservedBits(_)
            | ProtocolError::MisplacedCompressionBit(_)
            | ProtocolError::ReservedOpcode(_)
            | ProtocolError::LengthHighBit => "5.2",
            ProtocolError::ControlFrameTooLong(_) | ProtocolError::FragmentedControlFrame => "5.5",
            ProtocolError::UnexpectedContinuation | ProtocolError::ExpectedContinuation => "5.4",
            ProtocolError::InvalidUtf8 => "8.1",
            ProtocolError::FrameTooBig { .. } | ProtocolError::MessageTooBig { .. } => "7.4.1",
            ProtocolError::CloseFrameOneByte => "5.5.1",
            ProtocolError::InvalidCloseCode(_) => "7.4",
            ProtocolError::BadCompressedData => "9",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnmaskedFrame => write!(f, "client frame is not masked"),
            ProtocolError::MaskedFrame => write!(f, "server frame is masked"),
            ProtocolError::ReservedBits(bits) => {
                write!(f, "reserved bits set without an extension (RSV={bits:03b})")
            }
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode 0x{op:X}"),
            ProtocolError::LengthHighBit => {
                write!(f, "64-bit payload length has its most significant bit set")
            }
            ProtocolError::ControlFrameTooLong(len) => {
                write!(f, "control frame payload of {len} bytes (the limit is 125)")
            }
            ProtocolError::FragmentedControlFrame => write!(f, "fragmented control frame"),
            ProtocolError::UnexpectedContinuation => {
                write!(f, "continuation frame with no message to continue")
            }
            ProtocolError::ExpectedContinuation => {
                write!(f, "new data frame inside a fragmented message")
            }
            ProtocolError::InvalidUtf8 => write!(f, "invalid UTF-8 in text"),
            ProtocolError::FrameTooBig { len, limit } => {
                write!(f, "frame of {len} bytes is over the {limit}-byte limit")
            }
            ProtocolError::MessageTooBig { len, limit } => {
                write!(f, "message of {len} bytes is over the {limit}-byte limit")
            }
            ProtocolError::CloseFrameOneByte => write!(f, "close payload of one byte"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::MisplacedCompressionBit(kind) => {
                write!(f, "RSV1 (compressed) set on a {kind} frame (RFC 7692 §6.1)")
            }
            ProtocolError::BadCompressedData => {
                write!(
                    f,
                    "compressed message is not valid DEFLATE data (RFC 7692 §7.2.2)"
                )
            }
        }
    }
}

impl std::error::Error for ProtocolError {}
