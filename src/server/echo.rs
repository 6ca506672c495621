//! The `/echo` endpoint: every text and binary message goes back unchanged.
//! Conformance suites (Autobahn) talk to it.

use std::io;
use std::net::TcpStream;
use std::time::Instant;

use super::driver::{Direct, Endpoint, Flow};
use super::{Behavior, ServerConfig};
use crate::ws::deflate::Agreement;
use crate::ws::{CloseCode, Connection, Decoded};

/// `/echo` as an [`Endpoint`] of the driver: each message back, straight
/// to the socket.
struct Echo<'s> {
    out: Direct<'s>,
}

impl Endpoint for Echo<'_> {
    const BIG_READS: bool = true;

    fn message(&mut self, conn: &mut Connection, message: Decoded<'_>) -> Flow {
        // A message that came whole in one frame is echoed straight from
        // the read buffer, unmasked in place: no copy, no allocation.
        let queued = match message {
            Decoded::Text(text) => conn.send_text(text),
            Decoded::Binary(data) => conn.send_binary(data),
            Decoded::Message(message) => conn.send(&message),
        };
        match queued {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Stop,
        }
    }

    fn write(&mut self, bytes: Vec<u8>, closing: Option<(CloseCode, &str)>) -> io::Result<()> {
        self.out.write(&bytes, closing.is_some())
    }

    fn closing_since(&self) -> Option<Instant> {
        self.out.closing_since()
    }
}

/// Run the echo on a connection whose handshake is done, as `behavior`
/// allows, with permessage-deflate if it was negotiated. Returns the code of the Close
/// the server sent (an echo of the client's, or its own), if any.
pub fn run(
    stream: TcpStream,
    leftover: &mut [u8],
    behavior: &Behavior,
    config: &ServerConfig,
    deflate: Option<Agreement>,
) -> Option<CloseCode> {
    let mut echo = Echo {
        out: Direct::new(&stream),
    };
    let limits = behavior.limits();
    super::serve_direct(
        &stream, leftover, limits, behavior, config, deflate, &mut echo,
    )
}
