//! The WebSocket protocol, RFC 6455, sans-I/O.
//!
//! Nothing in this module reads a socket, starts a thread or looks at a
//! clock: bytes go in, frames and messages come out, and the other way
//! round. The server, the client, the tests, the fuzz targets and the docs
//! all drive the same code.
//!
//! | file | RFC 6455 | what it does |
//! |---|---|---|
//! | [`handshake`] | §4 | the HTTP upgrade, `Sec-WebSocket-Accept`, both sides |
//! | [`frame`] | §5.2 | the frame header: decode from any prefix, encode |
//! | [`mask`] | §5.3 | masking, eight bytes at a time; random masking keys |
//! | [`message`] | §5.4-5.6 | streaming decoder: fragments, limits, UTF-8 |
//! | [`utf8`] | §8.1 | UTF-8 validation that fails on the first bad byte |
//! | [`close`] | §5.5.1, §7.4 | close codes and reasons |
//! | [`deflate`] | RFC 7692 | permessage-deflate: negotiation, compress, inflate |
//! | [`error`] | §7.1.7 | every broken rule and the close code it earns |
//! | [`protocol`] | §5.5, §7 | pings, the close handshake, failing a connection |

pub mod close;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
#[allow(unsafe_code)] // the fused copy-and-unmask writes into spare capacity
pub mod mask;
pub mod message;
pub mod protocol;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use error::ProtocolError;
pub use frame::{Frame, FrameHeader, OpCode};
pub use message::{Decoded, Decoder, Limits, Message};
pub use protocol::{Connection, ConnectionState};

/// Which end of the connection this side is. It decides masking (§5.1):
/// a client masks every frame it sends and a server masks none, and each
/// side rejects frames that are masked the wrong way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that accepted the TCP connection.
    Server,
    /// The side that opened it.
    Client,
}
